//! Spec → Plan: the one place where strings become typed things (durations, cron schedules,
//! compiled templates, step references). `cxflow validate` is exactly `spec::load` + `plan::build`,
//! so every mistake a user can fix shows before anything runs. Pure: no I/O except reading
//! template files and checking that input files exist.

mod durations;
pub mod helpers;
pub mod paths;
pub mod refs;
pub mod schedule;
mod step;
pub mod templates;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::Config;
use crate::spec::diagnostic::did_you_mean;
use crate::spec::{Diagnostic, Diagnostics, SpecFile};
pub use step::{KindPlan, PlannedStep, StepPlanner};
pub use templates::{TemplateRef, Templates};

/// A validated workflow, ready for the engine; `K` is what the step registry made of each
/// step's kind.
#[derive(Debug)]
pub struct Plan<K> {
    pub name: String,
    pub file: PathBuf,
    /// The project folder: relative paths in the workflow resolve against it.
    pub project: PathBuf,
    pub schedule: Option<schedule::PlannedSchedule>,
    pub vars: Map<String, Value>,
    /// Declared parameters with their defaults (`null` when required).
    pub params: Map<String, Value>,
    pub secret_names: Vec<String>,
    pub steps: Vec<PlannedStep<K>>,
    pub templates: Arc<Templates>,
    /// SHA-256 (hex) of the workflow file this plan was built from: a scheduled fire's claim
    /// records it, so nodes running different versions of one file can tell.
    pub source_hash: String,
}

impl<K> Plan<K> {
    pub fn step(&self, id: &str) -> Option<&PlannedStep<K>> {
        self.steps.iter().find(|s| s.id == id)
    }
}

/// Collects diagnostics and compiled templates while a plan is built.
pub struct PlanCx<'a> {
    file: &'a SpecFile,
    config: &'a Config,
    project: &'a Path,
    templates: Templates,
    errors: Vec<Diagnostic>,
    /// Ids of the steps before the one being planned, with their index.
    earlier: HashMap<String, usize>,
    /// Earlier steps that produce no records (sinks), with their kind: nothing can iterate them.
    sinks: HashMap<String, &'static str>,
    current_step: Option<String>,
    /// Column names of steps whose records are known before running (a CSV file with a literal path).
    columns: HashMap<String, (String, Vec<String>)>,
    /// The known fields of `item` for the step being planned, with the file they come from.
    item_fields: Option<(String, Vec<String>)>,
    /// Address lists the workflow writes (a routing team's `email:`), joined with `, `.
    address_lists: Vec<String>,
    /// The earlier steps the inline templates of the step being planned read.
    step_reads: templates::Reads,
}

impl<'a> PlanCx<'a> {
    /// Report an error at the key (or value) at `path`.
    pub fn error(&mut self, path: &str, message: impl Into<String>, help: Option<String>) {
        let d = self.file.diagnostic(path, true, message).with_help(help);
        self.errors.push(d);
    }

    /// Report an error pointing at the key itself (unknown or misplaced keys).
    pub fn error_at_key(&mut self, path: &str, message: impl Into<String>, help: Option<String>) {
        let d = self.file.diagnostic(path, false, message).with_help(help);
        self.errors.push(d);
    }

    /// Report a diagnostic about another file the step reads (e.g. a routing rule file).
    pub fn push(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    /// The project folder (where `cxflow.yaml`, `workflows/`, `templates/` live).
    pub fn base_dir(&self) -> &Path {
        self.project
    }

    /// Record an address list the workflow writes (`a@x.org, b@x.org`): a later address field that
    /// renders exactly this text may address all of them; any other rendered list is refused.
    pub fn allow_address_list(&mut self, addresses: &[String]) {
        if addresses.len() > 1 {
            self.address_lists.push(addresses.join(", "));
        }
    }

    /// The address lists recorded by earlier steps (`allow_address_list`).
    pub fn address_lists(&self) -> &[String] {
        &self.address_lists
    }

    /// Resolve a path written in the workflow against the project folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.project.join(p)
        }
    }

    /// The record size limit, for kinds that peek at an input file while planning.
    pub(crate) fn max_record_bytes(&self) -> usize {
        self.config.max_record_bytes
    }

    pub fn templates_dir(&self) -> PathBuf {
        self.config.path(self.project, &self.config.templates_dir)
    }

    /// Is `id` a step that comes before the one being planned?
    pub fn is_earlier_step(&self, id: &str) -> bool {
        self.earlier.contains_key(id)
    }

    /// Check that `id` (found at `path`) names an earlier step; report a positioned error if not.
    pub fn require_earlier_step(&mut self, path: &str, id: &str) -> bool {
        if self.earlier.contains_key(id) {
            return true;
        }
        let later = self.file.spec.steps.iter().any(|s| s.id == id);
        let (msg, help) = if later {
            (format!("step `{id}` comes later; a step can only use the steps before it"), Some(format!("move step `{id}` above this one")))
        } else {
            let names: Vec<&str> = self.earlier.keys().map(String::as_str).collect();
            let help = match did_you_mean(id, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if names.is_empty() => "this is the first step; add a step that reads records before it".into(),
                None => format!("earlier steps are: {}", sorted(&names).join(", ")),
            };
            (format!("there is no step `{id}` before this one"), Some(help))
        };
        self.error(path, msg, help);
        false
    }

    /// Like `require_earlier_step`, for a step whose records are read (`for_each`, `from:`,
    /// `input:`): a step that produces none (a `write_csv`) would give zero items, and a run
    /// that did nothing would say `succeeded`.
    pub fn require_records(&mut self, path: &str, id: &str) -> bool {
        if !self.require_earlier_step(path, id) {
            return false;
        }
        let Some(kind) = self.sinks.get(id).copied() else { return true };
        let mut with: Vec<&str> = self.earlier.keys().filter(|k| !self.sinks.contains_key(*k)).map(String::as_str).collect();
        with.sort_by_key(|k| self.earlier[*k]);
        let help = if with.is_empty() {
            "no step before this one produces records; add a source (`read_csv`, `read_json`, `sql`) first".to_string()
        } else {
            format!("steps before this one that produce records: {}", with.join(", "))
        };
        self.error(path, format!("step `{id}` is a `{kind}` step, which produces no records to read"), Some(help));
        false
    }

    /// Records that the step being planned (`id`, a `kind` step) produces no records.
    pub(crate) fn mark_sink(&mut self, id: &str, kind: &'static str) {
        self.sinks.insert(id.to_string(), kind);
    }

    /// Compile an inline template at `path` and check the variables it uses.
    pub fn template(&mut self, path: &str, src: &str) -> Option<TemplateRef> {
        self.check_refs(path, src, &[]);
        match self.templates.add(path, src) {
            Ok(t) => {
                self.step_reads.add(&self.templates.reads_of(&t));
                Some(t)
            }
            Err(e) => {
                self.error(
                    path,
                    format!("template does not compile: {e}"),
                    Some("templates look like `{{item.email}}`; check the braces".into()),
                );
                None
            }
        }
    }

    /// Compile a path field: its template, and the rule its rendered value must follow.
    pub fn path_template(&mut self, path: &str, src: &str) -> Option<paths::PathTemplate> {
        Some(paths::PathTemplate { tpl: self.template(path, src)?, rule: paths::PathRule::of(src) })
    }

    /// Compile a template file `name` under the templates folder (registered as `file:<name>`).
    pub fn template_file(&mut self, path: &str, name: &str) -> Option<TemplateRef> {
        let file = self.templates_dir().join(name);
        let src = match std::fs::read_to_string(&file) {
            Ok(s) => s,
            Err(_) => {
                let msg = format!("template file `{}` does not exist", file.display());
                self.error(path, msg, Some("create it, or fix the name".into()));
                return None;
            }
        };
        self.check_refs(path, &src, &[]);
        match self.templates.add(&format!("file:{name}"), &src) {
            Ok(t) => {
                self.step_reads.add(&self.templates.reads_of(&t));
                Some(t)
            }
            Err(e) => {
                self.error(path, format!("template file `{}` does not compile: {e}", file.display()), None);
                None
            }
        }
    }

    /// Report variables that can never be defined: unknown roots, undeclared vars/params/secrets,
    /// steps that are not earlier. `extra_roots` are names a step adds to its templates' context.
    pub fn check_refs(&mut self, path: &str, src: &str, extra_roots: &[&str]) {
        let spec = &self.file.spec;
        for r in refs::var_refs(src, extra_roots) {
            if r.call {
                let (message, help) = refs::unknown_helper(&r.path);
                self.error(path, message, Some(help));
                continue;
            }
            let first = r.first().unwrap_or("").to_string();
            let problem = match r.root() {
                "run" if !["id", "workflow", "trigger"].contains(&first.as_str()) => Some((
                    "run",
                    vec!["id".into(), "workflow".into(), "trigger".into()],
                    "the run (`run.id`, `run.workflow`, `run.trigger`)",
                )),
                "item" => {
                    if let Some((file, fields)) = &self.item_fields {
                        if !first.is_empty() && !r.guarded && !fields.contains(&first) {
                            let help = match did_you_mean(&first, fields.iter().map(String::as_str)) {
                                Some(s) => format!("did you mean `item.{s}`?"),
                                None => format!("its columns are: {}", fields.join(", ")),
                            };
                            self.error(path, format!("`{}` is not a column of `{file}`", r.path), Some(help));
                        }
                    }
                    None
                }
                "vars" if !spec.vars.contains_key(&first) => Some(("vars", keys(&spec.vars), "vars:")),
                "params" if !spec.params.contains_key(&first) => Some(("params", keys(&spec.params), "params:")),
                "secrets" if !spec.secrets.contains(&first) => Some(("secrets", spec.secrets.clone(), "secrets:")),
                "steps" if !self.earlier.contains_key(&first) => {
                    Some(("steps", self.earlier.keys().cloned().collect(), "an earlier step with that id"))
                }
                "vars" | "params" | "secrets" | "steps" | "run" => None,
                _ => {
                    let other = &r.path;
                    let help = format!("templates start from vars, params, secrets, steps, item or run: did you mean `item.{other}`?");
                    self.error(path, format!("unknown variable `{}` in template", r.path), Some(help));
                    continue;
                }
            };
            if let Some((root, mut names, where_)) = problem {
                // `{{#each steps}}`, `{{json vars}}`: the whole group, which a template cannot
                // take (`secrets` whole would print every secret): say so, not "define ``".
                if first.is_empty() {
                    names.sort_unstable();
                    let help = match names.len() {
                        0 => format!("there is nothing under `{root}` here"),
                        n if n > 8 => {
                            format!("for example `{root}.{}` ({n} names in all)", names[..8].join(format!("`, `{root}.").as_str()))
                        }
                        _ => format!("one of `{root}.{}`", names.join(format!("`, `{root}.").as_str())),
                    };
                    self.error(
                        path,
                        format!("`{root}` is a group of values: a template names one of them, like `{root}.<name>`"),
                        Some(help),
                    );
                    continue;
                }
                let help = match did_you_mean(&first, names.iter().map(String::as_str)) {
                    Some(s) => format!("did you mean `{root}.{s}`?"),
                    None => format!("define `{first}` under {where_}"),
                };
                self.error(path, format!("`{}` is never defined", r.path), Some(help));
            }
        }
    }

    /// Item keys and output paths are stored in the run log as they render, where redaction
    /// cannot reach them (a redacted key would no longer identify the item on resume), so a
    /// template there must not reach a secret, by any path. Returns whether it refused.
    pub fn forbid_secrets(&mut self, path: &str, src: &str, what: &str) -> bool {
        let found = refs::secret_path(src);
        if let Some(expr) = &found {
            self.error(
                path,
                format!("`{{{{{expr}}}}}` cannot be used in {what}: it can reach `secrets`, and {what} is written to the run log as is"),
                Some("secrets are never logged; use a field of the record or a parameter instead".into()),
            );
        }
        found.is_some()
    }

    pub fn current_step(&self) -> Option<&str> {
        self.current_step.as_deref()
    }

    /// Deserialize a step kind's raw value (at YAML path `path`) into its spec type; serde's
    /// errors are reported at their own line and column, worded like the spec layer's.
    pub fn spec<T: serde::de::DeserializeOwned>(&mut self, raw: &crate::spec::Node, path: &str) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(raw) {
            Ok(v) => Some(v),
            Err(e) => {
                let inner = e.path().to_string();
                let msg = e.inner().to_string();
                // An error about the kind's whole value (its shape) points at the step, as the
                // spec layer does for a step that does not parse.
                let prefix = if inner == "." { path.rsplit_once('.').map_or(path, |(s, _)| s) } else { path };
                let (at, line_path, key) = crate::spec::serde_error::locate(prefix, &inner, &msg);
                let (message, help) = crate::spec::serde_error::explain(Some(&at), &msg);
                let d = self.file.diagnostic(&line_path, !key, message).with_help(help);
                self.errors.push(d);
                None
            }
        }
    }

    /// A literal input path that does not exist is a mistake worth catching before the night's
    /// run; templated paths are checked when the step runs.
    pub fn check_input_file(&mut self, path: &str, file: &str) {
        if file.contains("{{") {
            return;
        }
        if !self.resolve(file).exists() {
            let help = format!("paths are relative to the project folder `{}`", self.project.display());
            self.error(path, format!("input file `{file}` does not exist"), Some(help));
        }
    }

    /// The step being planned yields records with these fields (`label` names where they come
    /// from): templates of the steps that run `for_each` over it are checked against them.
    pub fn known_fields(&mut self, label: &str, fields: Vec<String>) {
        if let Some(id) = self.current_step.clone() {
            self.columns.insert(id, (label.to_string(), fields));
        }
    }
}

fn keys(m: &Map<String, Value>) -> Vec<String> {
    m.keys().cloned().collect()
}

fn sorted<'s>(v: &[&'s str]) -> Vec<&'s str> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

/// Parse a duration like `30s`, `5m`, `1h 30m`; reports at `path`.
pub fn duration(cx: &mut PlanCx, path: &str, s: &str) -> Option<Duration> {
    let help = || Some("write it like `30s`, `5m` or `1h 30m`".into());
    let Some(d) = durations::parse(s) else {
        cx.error(path, format!("`{s}` is not a duration"), help());
        return None;
    };
    if let Some(m) = crate::config::limits::duration_problem(s, d) {
        cx.error(path, m, help());
        return None;
    }
    Some(d)
}

/// Validate a loaded workflow and turn it into a plan; collects every error, not just the first.
pub fn build<P: StepPlanner>(file: Arc<SpecFile>, config: &Config, project: &Path, planner: &P) -> Result<Plan<P::Kind>, Diagnostics> {
    let mut cx = PlanCx {
        file: &file,
        config,
        project,
        templates: Templates::new(),
        errors: Vec::new(),
        earlier: HashMap::new(),
        sinks: HashMap::new(),
        current_step: None,
        columns: HashMap::new(),
        item_fields: None,
        address_lists: Vec::new(),
        step_reads: templates::Reads::none(),
    };
    let spec = &file.spec;
    if spec.name.trim().is_empty() {
        cx.error("name", "the workflow name is empty", Some("give it a short name like `ticket-follow-up`".into()));
    }
    for (i, name) in spec.secrets.iter().enumerate() {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            cx.error(
                &format!("secrets[{i}]"),
                format!("`{name}` is not an environment variable name"),
                Some("use letters, digits and `_`, like `SMTP_PASSWORD`".into()),
            );
        }
    }
    let schedule = spec.schedule.as_ref().and_then(|s| schedule::plan(&spec.name, s, &mut cx));
    let mut steps = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    if spec.steps.is_empty() {
        cx.error("steps", "the workflow has no steps", Some("add at least one step under `steps:`".into()));
    }
    for (i, s) in spec.steps.iter().enumerate() {
        let path = format!("steps[{i}]");
        if let Some(first) = seen.get(s.id.as_str()) {
            let line = file.positions.value(&format!("steps[{first}].id")).0;
            cx.error(
                &format!("{path}.id"),
                format!("duplicate step id `{}` (first used on line {line})", s.id),
                Some("give each step its own id".into()),
            );
        } else {
            seen.insert(&s.id, i);
        }
        cx.current_step = Some(s.id.clone());
        cx.step_reads = templates::Reads::none();
        cx.item_fields = s.for_each.as_ref().and_then(|f| cx.columns.get(f).cloned());
        if let Some(p) = step::plan(s, i, &path, planner, &mut cx) {
            steps.push(p);
        }
        cx.earlier.insert(s.id.clone(), i);
    }
    if !cx.errors.is_empty() {
        cx.errors.sort_by_key(|d| (d.line, d.col));
        cx.errors.dedup();
        return Err(Diagnostics(cx.errors));
    }
    // A scheduler holds a plan per workflow for as long as it runs: no room to grow.
    steps.shrink_to_fit();
    Ok(Plan {
        name: spec.name.clone(),
        file: file.path.clone(),
        project: project.to_path_buf(),
        schedule,
        vars: spec.vars.clone(),
        params: spec.params.clone(),
        secret_names: spec.secrets.clone(),
        steps,
        templates: Arc::new(cx.templates),
        source_hash: {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(file.source.as_bytes()))
        },
    })
}
