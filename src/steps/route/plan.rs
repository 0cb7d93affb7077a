//! Validation of a `route` step before anything runs: the input step, the rule file (parse
//! errors and rule errors both point into that file), `as_of`, and the digest templates.

use std::path::PathBuf;
use std::sync::Arc;

use super::compile::{compile, CompileInput, RuleError};
use super::digest::DigestTemplates;
use super::rules::{DigestSpec, FieldsSpec, Mode, RouteSpec, RulesFile, TeamSpec};
use super::values::parse_timestamp;
use crate::plan::PlanCx;
use crate::spec::{Diagnostic, Positions};

#[derive(Debug)]
pub struct Planned {
    pub step_id: String,
    /// The step whose records are routed.
    pub input: String,
    pub teams: Vec<TeamSpec>,
    pub mode: Mode,
    pub unmatched: Option<String>,
    pub fields: FieldsSpec,
    pub reroute: bool,
    /// Fixed reference time (seconds since epoch); the run's start when `None`.
    pub as_of: Option<i64>,
    pub digest: DigestSpec,
    pub out_dir: Option<PathBuf>,
    pub templates: Arc<DigestTemplates>,
}

pub(crate) fn plan(raw: &crate::spec::Node, path: &str, cx: &mut PlanCx) -> Option<Box<dyn crate::engine::BatchStep>> {
    let spec: RouteSpec = cx.spec(raw, path)?;
    plan_spec(&spec, path, cx).map(|p| Box::new(p) as Box<dyn crate::engine::BatchStep>)
}

fn plan_spec(spec: &RouteSpec, path: &str, cx: &mut PlanCx) -> Option<Planned> {
    let step_id = cx.current_step().unwrap_or("route").to_string();
    let input_ok = cx.require_records(&format!("{path}.input"), &spec.input);
    let teams = match (&spec.rules, &spec.teams) {
        (Some(_), Some(_)) => {
            cx.error_at_key(&format!("{path}.teams"), "give either `rules:` (a file) or inline `teams:`, not both", None);
            None
        }
        (None, None) => {
            cx.error_at_key(path, "the route step has no rules", Some("add `rules: routing/teams.yaml` or inline `teams:`".into()));
            None
        }
        (None, Some(teams)) => {
            check(cx, teams, &format!("{path}.teams"), spec, path, None);
            Some(teams.clone())
        }
        (Some(file), None) => load_rules_file(cx, file, spec, path),
    };
    // `to: "{{item.team.email}}"` renders a team's addresses joined: a list the workflow wrote.
    for t in teams.iter().flatten() {
        cx.allow_address_list(&t.email.to_vec());
    }
    let as_of = match &spec.as_of {
        None => None,
        Some(s) => {
            let t = parse_timestamp(s.as_bytes());
            if t.is_none() {
                cx.error(&format!("{path}.as_of"), format!("`{s}` is not a date"), Some("write `2024-05-01T09:00:00Z`".into()));
            }
            t
        }
    };
    let templates = DigestTemplates::load(cx, &spec.digest.template, &format!("{path}.digest.template"));
    let out_dir = spec.digest.out_dir.as_deref().map(|d| cx.resolve(d));
    if !input_ok {
        return None;
    }
    Some(Planned {
        step_id,
        input: spec.input.clone(),
        teams: teams?,
        mode: spec.mode,
        unmatched: spec.unmatched.clone(),
        fields: spec.fields.clone(),
        reroute: spec.reroute,
        as_of,
        digest: spec.digest.clone(),
        out_dir,
        templates: Arc::new(templates?),
    })
}

fn load_rules_file(cx: &mut PlanCx, file: &str, spec: &RouteSpec, path: &str) -> Option<Vec<TeamSpec>> {
    let full = cx.resolve(file);
    let src = match std::fs::read_to_string(&full) {
        Ok(s) => s,
        Err(e) => {
            cx.error(
                &format!("{path}.rules"),
                format!("cannot read the rules file `{file}`: {e}"),
                Some(format!("paths are relative to the project folder `{}`", cx.base_dir().display())),
            );
            return None;
        }
    };
    match crate::spec::document::read::<RulesFile>(&full, &src) {
        Ok(doc) => {
            check(cx, &doc.value.teams, "teams", spec, path, Some((&full, &src)));
            Some(doc.value.teams)
        }
        Err(ds) => {
            ds.0.into_iter().for_each(|d| cx.push(d));
            None
        }
    }
}

/// Compiles the rules once to report their errors now; `file` is the rule file they came from
/// (`None`: inline in the workflow).
fn check(cx: &mut PlanCx, teams: &[TeamSpec], teams_path: &str, spec: &RouteSpec, path: &str, file: Option<(&PathBuf, &str)>) {
    let unmatched_path = format!("{path}.unmatched");
    let input = CompileInput {
        teams,
        teams_path,
        fields: &spec.fields,
        unmatched: spec.unmatched.as_deref(),
        unmatched_path: &unmatched_path,
        as_of: 0,
    };
    let Err(errors) = compile(&input) else { return };
    let positions = file.map(|(_, src)| Positions::index(src));
    for RuleError { path: p, message, help } in errors {
        match (file, &positions) {
            (Some((f, src)), Some(pos)) if p != unmatched_path => {
                let (line, col) = pos.value(&p);
                cx.push(Diagnostic::new(f, line, col, message).with_help(help).with_source(src));
            }
            _ => cx.error(&p, message, help),
        }
    }
}
