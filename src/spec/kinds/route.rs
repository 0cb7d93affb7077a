//! Serde model of the `route` step and of routing rule files (docs/routing.md).
//!
//! Everything is plain data with `deny_unknown_fields`, so an unknown operator such as
//! `startswith:` is rejected by the YAML parser with its exact position. Semantic checks
//! (bad regex, two operators that make no sense together, unknown team) happen in
//! `compile.rs`, which reports a YAML path that the caller maps to line/column.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `route:` step body.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Id of the earlier step whose records are routed.
    pub input: String,
    /// Rule file (relative to the workflow project), holding `teams:`.
    #[serde(default)]
    pub rules: Option<String>,
    /// Inline teams, instead of `rules:`.
    #[serde(default)]
    pub teams: Option<Vec<TeamSpec>>,
    #[serde(default)]
    pub mode: Mode,
    /// Name of the team that receives what no rule matched; without it such records are dropped
    /// (and counted as `unmatched` in the step output).
    #[serde(default)]
    pub unmatched: Option<String>,
    /// Which record fields play which role in digests.
    #[serde(default)]
    pub fields: FieldsSpec,
    /// Route records again even if an earlier run already routed their id.
    #[serde(default)]
    pub reroute: bool,
    /// Reference time for `within:` / `older_than:` (RFC 3339); defaults to the run's start.
    #[serde(default)]
    pub as_of: Option<String>,
    #[serde(default)]
    pub digest: DigestSpec,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Each record goes to the first team (highest priority, then file order) whose rule matches.
    #[default]
    FirstMatch,
    /// Each record goes to every team whose rule matches.
    AllMatches,
}

/// A rule file: `teams:` plus nothing else, so the file can grow without ambiguity.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    pub teams: Vec<TeamSpec>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    /// Unique team name; `unmatched:` refers to it.
    pub name: String,
    /// One address or a list.
    #[serde(default)]
    pub email: OneOrMany<String>,
    /// Optional Slack/Teams-style incoming webhook that receives the bucket as JSON.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Follow an HTTP redirect from the webhook, POSTing the bucket again to where it points.
    /// Off by default: a redirect fails the delivery, so a moved or hijacked receiver never
    /// gets the team's feedback without someone changing the rule file.
    #[serde(default)]
    pub webhook_follow_redirects: bool,
    /// Higher is checked first in `first_match` mode; ties keep file order. Default 0.
    #[serde(default)]
    pub priority: i64,
    /// Which records this team receives. A team without `when:` only receives records through
    /// `unmatched:`.
    #[serde(default)]
    pub when: Option<Condition>,
    /// Records of this team matching this condition are listed first in the digest.
    #[serde(default)]
    pub urgent: Option<Condition>,
}

/// One condition: either a combinator (`all`, `any`, `not`) or `field:` with one or more
/// operators, which must all hold.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<Condition>>,

    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Equal to this value (case-insensitive for text, numeric for numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Scalar>,
    /// Equal to one of these values (same comparison as `equals`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Scalar>>,
    /// Contains this text, or any of these texts (case-insensitive). The matched text is
    /// reported as a keyword.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<OneOrMany<String>>,
    /// Contains one of these keywords as a whole word, case-insensitively: exactly the regex
    /// `(?i)\b(?:w1|w2|...)\b` (Unicode word boundaries and case folding), matched with one
    /// automaton for all keyword lists on a field. The matched text is reported as a keyword.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<OneOrMany<String>>,
    /// Matches this regular expression (Rust `regex` syntax; add `(?i)` for case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    /// Date/time strictly before this one (`2024-05-01` or RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Date/time at or after this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Date/time within this duration before `as_of` (`1d`, `12h`, `30min`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// Date/time more than this duration before `as_of`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<String>,
}

/// A YAML scalar used by `equals` / `one_of`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Number(f64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}

impl<T: Clone> OneOrMany<T> {
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Which columns hold what the digest needs. Any of them may be absent from the data: the
/// digest then shows `unknown` / no rating. Only fields named by rules are required.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FieldsSpec {
    /// Stable id of a piece of feedback; used to route each record once across runs.
    pub id: String,
    pub text: String,
    pub channel: String,
    pub area: String,
    pub rating: String,
    pub created_at: String,
}

impl Default for FieldsSpec {
    fn default() -> Self {
        FieldsSpec {
            id: "id".into(),
            text: "text".into(),
            channel: "channel".into(),
            area: "product_area".into(),
            rating: "rating".into(),
            created_at: "created_at".into(),
        }
    }
}

/// How digests are built and delivered.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DigestSpec {
    /// Most urgent items listed per team (worst rating, then newest).
    pub urgent_limit: usize,
    /// Random (seeded, reproducible) sample of the non-urgent items per team.
    pub sample_size: usize,
    /// Most frequent matched keywords listed per team.
    pub keywords: usize,
    /// Rows of `by_channel` and `by_area` per team, largest first; the rest is one `other` row.
    pub breakdown: usize,
    /// Template base name under the templates folder: `<name>.html.hbs` and `<name>.txt.hbs`.
    pub template: String,
    /// Folder (relative to the workflow project) receiving `<team>.html` and `<team>.md`;
    /// default: `<artifacts_dir>/run-<id>/<step id>`.
    pub out_dir: Option<String>,
    /// POST each bucket as JSON to its team's `webhook:`.
    pub webhooks: bool,
    /// Chart shown in the digest: feedback by `channel` or by `rating`.
    pub chart: ChartKind,
    /// Also output teams that received nothing (they would get an empty digest).
    pub include_empty: bool,
}

impl Default for DigestSpec {
    fn default() -> Self {
        DigestSpec {
            urgent_limit: 10,
            sample_size: 5,
            keywords: 10,
            breakdown: 10,
            template: "feedback_digest".into(),
            out_dir: None,
            webhooks: true,
            chart: ChartKind::Channel,
            include_empty: false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    #[default]
    Channel,
    Rating,
}
