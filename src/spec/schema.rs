//! JSON Schema of the workflow format, for editors (VS Code's YAML extension) to check as people type.

use super::model::WorkflowSpec;

pub fn workflow_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(WorkflowSpec);
    serde_json::to_value(schema).expect("a JSON schema always serializes")
}
