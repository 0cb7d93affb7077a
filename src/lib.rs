//! cxflow runs customer-experience back-office workflows written in YAML: by hand (`cxflow run`),
//! on a cron (`cxflow serve`), and resumable after a crash or Ctrl-C (`cxflow resume`).
//!
//! ```text
//! workflows/x.yaml ─spec::load─▶ SpecFile ─plan::build─▶ Plan ─engine::run─▶ steps::<kind> ─▶ outcomes
//!                  (strict serde,           (validated:      (order, items,   (ItemStep or BatchStep:
//!                   positions kept)          cron, templates, retry, timeout,  email, browser, route,
//!                                            refs)            cancel, resume)  read, write, command)
//!                                               ▲                   │                 │
//!                steps::REGISTRY (KINDS) ───────┘                   │ Arc<dyn RunLog> │ Delivery, RouteLog
//!                one line per kind: name, plan fn, schema           ▼                 ▼ (engine, over RunLog)
//!                                                    store::Store (SQLite / PostgreSQL): runs, steps, items,
//!                                                    artifacts, delivery ledger, routed ids, digests
//!
//! cxflow.yaml + CXFLOW_* ─spec::config_file, config─▶ Config      (read once per project)
//! cli:       validate = spec + plan; run / resume = spec + plan + engine; runs / show read the store
//! scheduler: cron + Clock ─▶ engine::run, for each workflow with a `schedule:`
//! ```
//!
//! Knowledge flows one way: a module names its own layer or an earlier one (spec → plan → engine
//! → steps → store; the app layer wires them), and `tests/layers.rs` fails on any other `crate::`
//! path. The modules, by layer:
//!
//! - [`spec`]: workflow files and `cxflow.yaml` as written: plain serde types with positions for
//!   errors. Knows YAML and nothing else; step kinds stay raw YAML until planned.
//! - [`plan`]: spec → `Plan`, the one place strings become typed things (durations, templates,
//!   step references, cron). `cxflow validate` is exactly spec + plan.
//! - [`config`]: project settings: `cxflow.yaml` with `CXFLOW_*` over it → `Config`, one pass.
//! - [`secrets`]: secret values from the environment, and their redaction from all output.
//! - [`schedule`]: schedule logic with no clock: cron, calendars, policies, the fire state machine.
//! - [`engine`]: runs a `Plan` (items, retries, timeouts, cancellation, resume); defines the step
//!   contract, the kind table type, `RunLog` and the `Delivery` capability. Never sees YAML or SQL.
//! - [`steps`]: one module per step kind, listed once in `steps::registry::KINDS`.
//! - [`store`]: the run log, on SQLite or PostgreSQL: every SQL string and the migrations;
//!   implements `RunLog`.
//! - [`control`]: the actions the CLI and the dashboard share (run, resume, cancel, pause,
//!   resolve), each recorded in the run log with who did it.
//! - [`cli`]: the commands behind `cxflow <command>`; `main.rs` prints errors and picks exit codes.
//! - [`scheduler`]: `cxflow serve`, the daemon: catalog with hot reload, launcher, lock, alerts.
//! - [`web`]: the dashboard, the HTTP API and `/metrics` (`cxflow serve`, `cxflow ui`): pages and
//!   JSON over the store's reads, actions through `control`, who may do what in `web::auth`.
//! - [`metrics`]: `/metrics`, Prometheus text from the run log and the running scheduler.
//! - [`demo_portal`]: a small returns portal on loopback that the `browser` step is tested against.
//!
//! `docs/architecture.md` explains each seam and walks through adding a step kind.

// `println!` and friends panic when a write fails: stdout or stderr a pipe whose reader has gone
// (a closed terminal, `| head`, a stopped log collector) would abort a run half way, leaving it
// `running`. Everything cxflow prints goes through these instead, which drop what cannot be
// written. Defined before the modules so that they can use them by name.

/// `println!` that never panics.
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// `eprint!` that never panics.
#[macro_export]
macro_rules! errprint {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}

pub mod cli;
pub mod config;
pub mod control;
pub mod demo_portal;
pub mod engine;
pub mod metrics;
pub mod plan;
pub(crate) mod process;
pub mod schedule;
pub mod scheduler;
pub mod secrets;
pub mod spec;
pub mod steps;
pub mod store;
pub mod web;
