//! Placeholder until the send_email step lands: the spec is accepted as any mapping so the schema
//! and the engine's wiring exist, and planning reports that the step is not available yet.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{ItemEnv, ItemOutput, RunEnv, StepError};
use crate::plan::PlanCx;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct SendEmailSpec(pub serde_json::Value);

#[derive(Debug)]
pub struct Planned;

pub fn plan(_spec: &SendEmailSpec, path: &str, cx: &mut PlanCx) -> Option<Planned> {
    cx.error_at_key(path, "the `send_email` step is not available in this build", None);
    None
}

pub struct Runner;

pub async fn open(_p: &Planned, _run: &RunEnv) -> anyhow::Result<Runner> {
    Ok(Runner)
}

impl Runner {
    pub async fn run_item(&self, _env: &ItemEnv<'_>) -> Result<ItemOutput, StepError> {
        Err(StepError::Fatal("send_email is not available".into()))
    }
    pub async fn close(self) {}
}
