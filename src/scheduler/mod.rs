//! `cxflow serve`: runs every workflow on its cron, unattended.
pub mod cron_expr;
