//! The workflow file: YAML in, plain structs out, with positions kept for error messages.
//! This module knows YAML and nothing else: no clock, no network, no database. `config_file`
//! is `cxflow.yaml` read the same way.

pub mod config_file;
pub mod diagnostic;
pub mod document;
pub mod kinds;
pub mod mask;
pub mod model;
mod node_de;
pub mod positions;
pub mod schedule;
pub mod schema;
pub mod serde_error;
pub mod yaml;

use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, Diagnostics};
pub use model::{StepSpec, WorkflowSpec};
pub use positions::Positions;
pub use yaml::Node;

/// A workflow file read and deserialized, with what is needed to point into it.
#[derive(Debug, Clone)]
pub struct SpecFile {
    /// The path as the user gave it (errors show this, so it matches what they typed).
    pub path: PathBuf,
    pub source: String,
    pub spec: WorkflowSpec,
    pub positions: Positions,
}

impl SpecFile {
    /// A diagnostic pointing at the key (or, with `at_value`, the value) at `path` in this file.
    pub fn diagnostic(&self, yaml_path: &str, at_value: bool, message: impl Into<String>) -> Diagnostic {
        let (line, col) = if at_value { self.positions.value(yaml_path) } else { self.positions.key(yaml_path) };
        Diagnostic::new(&self.path, line, col, message).with_source(&self.source)
    }
}

/// Read and deserialize one workflow file. Fails with a positioned diagnostic on unreadable
/// files, YAML syntax errors, unknown keys and wrong types.
pub fn load(path: &Path) -> Result<SpecFile, Diagnostics> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::new(path, 1, 1, format!("cannot read the workflow file: {e}"))
            .with_help(Some("check the path; workflows live in the `workflows/` folder".into()))])
    })?;
    parse(path, source)
}

/// Deserialize workflow `source` read from `path`.
pub fn parse(path: &Path, source: String) -> Result<SpecFile, Diagnostics> {
    let source = document::strip_bom(source);
    if source.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Err(Diagnostics(vec![Diagnostic::new(path, 1, 1, "the workflow file is empty")
            .with_help(Some("a workflow needs at least `name:` and `steps:`".into()))]));
    }
    let doc = document::read::<WorkflowSpec>(path, &source)?;
    let mut spec = doc.value;
    // Serde checked the settings of each step; its kind stays raw YAML for the registry.
    for (i, step) in spec.steps.iter_mut().enumerate() {
        let node = doc.tree.get("steps").and_then(|s| match &s.value {
            yaml::Value::Seq(items) => items.get(i),
            _ => None,
        });
        for (key, value) in &mut step.kinds {
            if let Some(v) = node.and_then(|n| n.get(key)) {
                *value = v.clone();
            }
        }
    }
    Ok(SpecFile { path: path.to_path_buf(), source, spec, positions: doc.positions })
}
