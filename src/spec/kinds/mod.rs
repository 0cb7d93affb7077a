//! The YAML shape of each step kind: plain serde types, one module per kind (or family).
//! Which key names which kind is the step registry's business (`steps::registry`), not this module's.

pub mod browser;
pub mod records;
pub mod route;
pub mod send_email;
