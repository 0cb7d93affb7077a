//! Placeholder until the browser step lands: the spec is accepted as any mapping so the schema
//! and the engine's wiring exist, and planning reports that the step is not available yet.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{ItemEnv, ItemOutput, RunEnv, StepError};
use crate::plan::PlanCx;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct BrowserSpec(pub serde_json::Value);

#[derive(Debug)]
pub struct Planned;

pub fn plan(_spec: &BrowserSpec, path: &str, cx: &mut PlanCx) -> Option<Planned> {
    cx.error_at_key(path, "the `browser` step is not available in this build", None);
    None
}

pub struct Runner;

pub async fn open(_p: &Planned, _run: &RunEnv) -> anyhow::Result<Runner> {
    Ok(Runner)
}

impl Runner {
    pub async fn run_item(&self, _env: &ItemEnv<'_>) -> Result<ItemOutput, StepError> {
        Err(StepError::Fatal("browser is not available".into()))
    }
    pub async fn close(self) {}
}
