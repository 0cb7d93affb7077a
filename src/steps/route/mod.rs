//! `route` step: sends each piece of feedback to the right team(s) and builds one digest bucket
//! per team. See docs/routing.md for the rule syntax.

pub mod bucket;
pub mod chart;
pub mod compile;
pub mod counter;
pub mod matcher;
pub mod parallel;
pub mod router;
pub mod rules;
pub mod seen;
pub mod source;
pub mod values;

#[cfg(test)]
mod tests;
