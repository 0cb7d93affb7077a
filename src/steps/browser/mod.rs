//! The `browser` step: fills portal forms in a real Chromium through WebDriver, once per item.
//!
//! spec.rs (YAML) → plan.rs (validated, templates compiled) → runner.rs (per item: take a
//! logged-in session, render and run the actions, save artifacts on failure) on top of
//! session.rs (pool of sessions), driver.rs (chromedriver process) and exec.rs (one action).

pub mod action;
pub mod artifacts;
pub mod driver;
pub mod exec;
pub mod plan;
mod profiles;
pub mod runner;
pub mod selector;
pub mod session;
pub use crate::spec::kinds::browser as spec;

pub(crate) use plan::plan;
pub use spec::BrowserSpec;
