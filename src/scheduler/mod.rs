//! `cxflow serve`: runs every workflow on its cron, unattended.
pub mod cron_expr;
pub mod calendar;
pub mod clock;
pub mod policy;
pub mod state;
pub mod runner;
pub mod lock;
pub mod alerts;
pub mod watch;
pub mod compile;
pub mod launch;
