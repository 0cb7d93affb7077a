//! Schedule logic with no clock, no I/O beyond reading calendar files, and no daemon: cron in
//! crontab's meaning, holiday calendars, the overlap / catch-up policies, and the state machine
//! that turns fire times into starts and skips. `plan` validates `schedule:` blocks with it and
//! the scheduler daemon (`scheduler`) drives it with a real or virtual clock.

pub mod calendar;
pub mod compile;
pub mod cron_expr;
pub mod policy;
pub mod state;
