//! Placeholder until the route step lands: the spec is accepted as any mapping so the schema
//! and the engine's wiring exist, and planning reports that the step is not available yet.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::RunEnv;
use crate::engine::records::RecordSource;
use crate::plan::PlanCx;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct RouteSpec(pub serde_json::Value);

#[derive(Debug)]
pub struct Planned {
    /// The step whose records are routed.
    pub input: String,
}

pub fn plan(_spec: &RouteSpec, path: &str, cx: &mut PlanCx) -> Option<Planned> {
    cx.error_at_key(path, "the `route` step is not available in this build", None);
    None
}

/// Route every record of `input`; the output is one record per team.
pub async fn run(_p: &Planned, _input: RecordSource, _run: &RunEnv) -> anyhow::Result<(RecordSource, Value)> {
    Ok((RecordSource::Values(Arc::new(Vec::new())), Value::Null))
}
