//! The workflow file as written: plain serde types, one field per YAML key.
//! Nothing here interprets strings; `plan` does that.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::schedule::ScheduleSpec;

/// One workflow: a named list of steps, run by hand or on a schedule.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Unique name of the workflow; used in the run log and in default idempotency keys.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// When the scheduler (`cxflow serve`) runs this workflow.
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
    /// Constants available to every template as `vars.<name>`.
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// Values given at run time with `--var name=value`, available as `params.<name>`.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Names of environment variables holding secrets, available as `secrets.<NAME>`.
    /// Their values never reach the run log, stdout or an error message.
    #[serde(default)]
    pub secrets: Vec<String>,
    pub steps: Vec<StepSpec>,
}

/// What a step does on an item that fails after its retries.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Log the failed item and go on with the others (the run ends `partial`).
    #[default]
    Continue,
    /// Stop the run after the items in flight finish (the run ends `failed`).
    Stop,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Total attempts, including the first.
    pub attempts: u32,
    /// Wait before the second attempt, doubled for each further one (e.g. `30s`).
    #[serde(default)]
    pub backoff: Option<String>,
}

/// One step: the settings every step has, plus exactly one step kind (`read_csv: ...`,
/// `send_email: ...`), kept as raw YAML here. The kinds are listed only in the step registry
/// (`steps::registry`), which deserializes each kind's value into its own spec type in `plan`;
/// a key that is neither a setting below nor a registered kind is reported there.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// Unique id; later steps refer to this step's records and outputs by it.
    pub id: String,
    /// Run the step only when this template renders to something other than ``, `false`, `0` or `no`.
    pub when: Option<String>,
    /// Run the step once per record of the named earlier step.
    pub for_each: Option<String>,
    /// Stable identity of an item (a template over `item`); resume and the run log use it.
    pub item_key: Option<String>,
    /// Skip an item when this template renders truthy (e.g. `"{{eq item.status 'spam'}}"`).
    pub skip_if: Option<String>,
    pub retry: Option<RetrySpec>,
    /// Time limit for one attempt of one item, e.g. `20s`.
    pub timeout: Option<String>,
    /// How many items run at once (on each node, when items are spread over nodes).
    pub concurrency: Option<u32>,
    /// Items in flight over all nodes at most (`spread_items`).
    pub concurrency_total: Option<u32>,
    pub on_error: Option<OnError>,
    /// Every other key, in file order: the step kind (and, in a broken file, unknown keys).
    pub kinds: Vec<(String, super::Node)>,
}

/// The settings every step has, as the JSON schema shows them (the registry adds the kinds).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "StepSpec")]
#[allow(dead_code)] // only its schema is used
pub(crate) struct StepSettings {
    /// Unique id; later steps refer to this step's records and outputs by it.
    id: String,
    /// Run the step only when this template renders to something other than ``, `false`, `0` or `no`.
    #[serde(default)]
    when: Option<String>,
    /// Run the step once per record of the named earlier step.
    #[serde(default)]
    for_each: Option<String>,
    /// Stable identity of an item (a template over `item`); resume and the run log use it.
    #[serde(default)]
    item_key: Option<String>,
    /// Skip an item when this template renders truthy (e.g. `"{{eq item.status 'spam'}}"`).
    #[serde(default)]
    skip_if: Option<String>,
    #[serde(default)]
    retry: Option<RetrySpec>,
    /// Time limit for one attempt of one item, e.g. `20s`.
    #[serde(default)]
    timeout: Option<String>,
    /// How many items run at once (on each node, when items are spread over nodes).
    #[serde(default)]
    concurrency: Option<u32>,
    /// Items in flight over all nodes at most, when items are spread over nodes (`spread_items`).
    #[serde(default)]
    concurrency_total: Option<u32>,
    #[serde(default)]
    on_error: Option<OnError>,
}

/// The keys of `StepSettings`, in the order the schema lists them.
pub const STEP_SETTINGS: &[&str] =
    &["id", "when", "for_each", "item_key", "skip_if", "retry", "timeout", "concurrency", "concurrency_total", "on_error"];

impl JsonSchema for StepSpec {
    fn schema_name() -> String {
        "StepSpec".into()
    }
    fn json_schema(g: &mut schemars::gen::SchemaGenerator) -> schemars::schema::Schema {
        StepSettings::json_schema(g)
    }
}

/// Reads the settings with their own types (so serde's errors keep their line and column) and
/// keeps every other key as raw YAML for the registry.
impl<'de> Deserialize<'de> for StepSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = StepSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a step: a mapping with `id` and one step kind")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StepSpec, A::Error> {
                let mut s = StepSpec {
                    id: String::new(),
                    when: None,
                    for_each: None,
                    item_key: None,
                    skip_if: None,
                    retry: None,
                    timeout: None,
                    concurrency: None,
                    concurrency_total: None,
                    on_error: None,
                    kinds: Vec::new(),
                };
                let mut id = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "id" => id = Some(map.next_value()?),
                        "when" => s.when = map.next_value()?,
                        "for_each" => s.for_each = map.next_value()?,
                        "item_key" => s.item_key = map.next_value()?,
                        "skip_if" => s.skip_if = map.next_value()?,
                        "retry" => s.retry = map.next_value()?,
                        "timeout" => s.timeout = map.next_value()?,
                        "concurrency" => s.concurrency = map.next_value()?,
                        "concurrency_total" => s.concurrency_total = map.next_value()?,
                        "on_error" => s.on_error = map.next_value()?,
                        _ => {
                            // `spec::parse` fills in the value from the tree, positions and all.
                            map.next_value::<serde::de::IgnoredAny>()?;
                            s.kinds.push((key, super::Node::null()));
                        }
                    }
                }
                s.id = id.ok_or_else(|| serde::de::Error::missing_field("id"))?;
                Ok(s)
            }
        }
        d.deserialize_map(V)
    }
}
