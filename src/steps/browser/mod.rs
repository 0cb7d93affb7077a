//! The `browser` step: fills portal forms in a real Chromium through WebDriver, once per item.
//!
//! spec.rs (YAML) → plan.rs (validated, templates compiled) → runner.rs (per item: take a
//! logged-in session, render the actions, recover from lost browsers) → item.rs (one try: the
//! actions and the exactly-once protocol around `submit`, with submit.rs reading the page
//! around the click) on top of session.rs (pool of sessions), driver.rs (chromedriver process)
//! and exec.rs (one action, every WebDriver command bounded); grid.rs caps the sessions at a
//! Selenium Grid's Chrome slots.

pub mod action;
pub mod artifacts;
pub mod driver;
pub mod exec;
mod fields;
pub mod grid;
mod item;
mod lookup;
pub mod plan;
mod profiles;
pub mod runner;
pub mod selector;
pub mod session;
mod submit;
pub use crate::spec::kinds::browser as spec;

pub(crate) use plan::plan;
pub use spec::BrowserSpec;
