//! One module per step kind, each implementing the step contract (`engine::contract`) and listed
//! once, in `registry.rs`. A kind gets its inputs planned, opens its own clients once per step
//! run (`ItemStep::open`), does one item (or one batch) and returns a typed outcome; none of them
//! reaches the run log: what must happen once goes through the engine's `Delivery`.

pub mod browser;
pub mod command;
pub(crate) mod csv_rows;
pub mod read_csv;
pub mod read_json;
pub mod registry;
pub mod route;
pub mod send_email;
pub mod sql;
pub mod write;

pub use crate::engine::{Artifact, BatchCx, Failed, ItemCx, ItemOutput, RunEnv, StepCx, StepError};
pub use registry::REGISTRY;
