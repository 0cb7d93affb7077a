//! `cxflow pause`, `cxflow unpause` and `cxflow cancel`: the dashboard's actions at the command
//! line, through the same `Control` (so they are recorded in the run log's audit table too).

use tokio_util::sync::CancellationToken;

use super::{exit, Project, Result};
use crate::control::{Actor, Control};

async fn control(project: &Project) -> Result<Control> {
    Ok(Control::new(project, project.store().await?, CancellationToken::new()))
}

/// `cxflow pause WORKFLOW [--reason TEXT] [--by NAME]`.
pub async fn pause(project: &Project, workflow: &str, reason: Option<String>, by: Option<String>) -> Result<i32> {
    let p = control(project).await?.pause(&Actor::cli(by), workflow, reason).await?;
    termln!("{workflow}: {}", p.skip_reason());
    termln!("its scheduled fires are recorded as skipped until `cxflow unpause {workflow}`; fires during the pause are not caught up");
    Ok(exit::OK)
}

/// `cxflow unpause WORKFLOW [--by NAME]`.
pub async fn unpause(project: &Project, workflow: &str, by: Option<String>) -> Result<i32> {
    let p = control(project).await?.unpause(&Actor::cli(by), workflow).await?;
    termln!("{workflow}: unpaused (was {}); its next fire runs", p.skip_reason());
    Ok(exit::OK)
}

/// `cxflow cancel RUN_ID [--by NAME]`.
pub async fn cancel(project: &Project, run_id: i64, by: Option<String>) -> Result<i32> {
    let r = control(project).await?.cancel(&Actor::cli(by), run_id).await?;
    termln!("run {run_id}: cancel requested by {} at {}", r.by, r.at);
    termln!("it starts no new items and ends `interrupted` once the items in flight finish; `cxflow resume {run_id}` continues it");
    Ok(exit::OK)
}
