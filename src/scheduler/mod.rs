//! `cxflow serve`: the daemon that runs every workflow on its cron, unattended. The pure
//! schedule logic it drives lives in `crate::schedule`.

pub mod alerts;
pub mod catalog;
pub mod clock;
pub mod launch;
pub mod lock;
pub mod runner;
pub mod watch;

pub use crate::schedule::{calendar, compile, cron_expr, policy, state};
