//! `cxflow resolve RUN [ITEM_KEY...|--all] --as sent|not-sent`: a person's decision about
//! deliveries a run left uncertain, recorded in the run log with who and when.

use super::{exit, CliError, Project, Result};
use crate::store::{Resolution, ResolveError};

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
    let by = a.by.or_else(|| std::env::var("USER").ok()).or_else(|| std::env::var("LOGNAME").ok()).unwrap_or_else(|| "unknown".into());
    let store = project.store().await?;
    store.interrupt_orphans().await?;
    let done = store.resolve(a.run_id, &a.items, decision, &by).await.map_err(|e| match e {
        ResolveError::Store(s) => CliError::from(s),
        other => CliError::Invalid(other.to_string()),
    })?;
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
