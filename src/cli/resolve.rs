//! `cxflow resolve RUN [ITEM_KEY...|--all] --as sent|not-sent`: a person's decision about
//! deliveries a run left uncertain, recorded in the run log with who and when.

use super::{exit, CliError, Project, Result};
use crate::store::Resolution;

pub struct ResolveArgs {
    pub run_id: i64,
    pub items: Vec<String>,
    pub all: bool,
    pub decision: String,
    pub by: Option<String>,
}

pub async fn resolve(project: &Project, a: ResolveArgs) -> Result<i32> {
    let decision = match a.decision.as_str() {
        "sent" => Resolution::Sent,
        "not-sent" => Resolution::NotSent,
        other => return Err(CliError::Invalid(format!("`--as {other}`: use `--as sent` or `--as not-sent`"))),
    };
    if a.items.is_empty() != a.all {
        return Err(CliError::Invalid(match a.all {
            true => "give item keys or `--all`, not both".into(),
            false => format!("name the items to resolve (`cxflow show {}` lists the uncertain ones), or pass `--all`", a.run_id),
        }));
    }
    let actor = crate::control::Actor::cli(a.by);
    let by = actor.name.clone();
    let control = crate::control::Control::new(project, project.store().await?, Default::default());
    let done = control.resolve(&actor, a.run_id, &a.items, decision).await?;
    for r in &done {
        termln!("{}  {}  {}  resolved as {} by {by}", r.step_id, r.item_key, r.key, decision.as_str());
    }
    match decision {
        Resolution::Sent => termln!("{} delivery(ies) recorded as sent; no run sends them again", done.len()),
        Resolution::NotSent => {
            termln!("{} delivery(ies) recorded as not sent; `cxflow resume {}` sends them", done.len(), a.run_id)
        }
    }
    Ok(exit::OK)
}
