//! `route` step: sends each piece of feedback to the right team(s) and builds one digest bucket
//! per team. See docs/routing.md for the rule syntax.
//!
//! plan.rs validates the step and its rule file before anything runs; run.rs streams the input
//! through the router (a parallel typed path for CSV, JSON maps otherwise), then digest.rs turns
//! each team's bucket into the record the next step iterates over, with its files and webhook.

pub mod bucket;
pub mod chart;
pub mod compile;
pub mod counter;
mod digest;
pub mod matcher;
mod output;
pub mod parallel;
mod plan;
pub mod router;
pub use crate::spec::kinds::route as rules;
mod run;
pub mod seen;
pub mod source;
pub mod values;
mod webhook;
pub mod words;

pub(crate) use plan::plan;
pub use plan::Planned;
pub use rules::RouteSpec;

#[cfg(test)]
mod tests;
