//! cxflow runs customer-experience back-office workflows written in YAML.
//!
//! ```text
//! workflows/x.yaml ─spec::load──▶ SpecFile ─plan::build──▶ Plan ─engine::run──▶ steps::<kind> ──▶ item outcomes
//!                  (strict serde,            (validated: cron,    (order, items,     (email, route,
//!                   positions kept)           templates, refs)     retry, timeout,    browser, write)
//!                                                                  cancel, resume)
//!                                                                        │
//!                                                                        ▼
//!                                                             store (sqlx): runs, steps,
//!                                                             items, artifacts, ledger
//! cli: validate = spec + plan; run / resume = spec + plan + engine; runs / show read the store
//! config: cxflow.yaml (spec::config_file) + CXFLOW_* → typed settings, built once per project
//! ```
//!
//! Arrows only go right: `spec` knows YAML only, `plan` is pure, `engine` never sees YAML or SQL,
//! steps never write the run log, and `store` owns every SQL string.

pub mod cli;
pub mod config;
pub mod demo_portal;
pub mod engine;
pub mod plan;
pub mod schedule;
pub mod scheduler;
pub mod secrets;
pub mod spec;
pub mod steps;
pub mod store;
