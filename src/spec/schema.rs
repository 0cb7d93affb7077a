//! JSON Schema of the workflow format, for editors (VS Code's YAML extension) to check as people type.

use schemars::gen::SchemaGenerator;
use schemars::schema::{Schema, SchemaObject};

use super::model::WorkflowSpec;

/// The schema of a step kind's value, as the step registry provides it.
pub type KindSchema = fn(&mut SchemaGenerator) -> Schema;

/// The schema of a workflow whose steps take the given kinds (name, schema of its value).
pub fn workflow_schema(kinds: &[(&str, KindSchema)]) -> serde_json::Value {
    let mut g = schemars::gen::SchemaSettings::draft07().into_generator();
    let kind_schemas: Vec<(String, Schema)> = kinds.iter().map(|(name, f)| (name.to_string(), f(&mut g))).collect();
    let mut root = g.into_root_schema_for::<WorkflowSpec>();
    if let Some(Schema::Object(SchemaObject { object: Some(obj), .. })) = root.definitions.get_mut("StepSpec") {
        for (name, s) in kind_schemas {
            obj.properties.insert(name, s);
        }
    }
    serde_json::to_value(root).expect("a JSON schema always serializes")
}
