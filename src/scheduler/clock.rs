//! Where the scheduler gets the time. Production uses the system clock; tests use a virtual clock
//! they move by hand, so no test waits for real time to pass.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Completes at `t` (at once if `t` is past).
    fn sleep_until(&self, t: DateTime<Utc>) -> Sleep;
}

/// Wall-clock time; sleeps on tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> Sleep {
        Box::pin(async move {
            // Re-check after waking: the wall clock may have been stepped (NTP) while asleep.
            loop {
                let left = t - Utc::now();
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left).await;
            }
        })
    }
}

/// A clock that only moves when told to. Sleepers wake when it passes their deadline.
#[derive(Clone)]
pub struct VirtualClock {
    now: Arc<watch::Sender<DateTime<Utc>>>,
    sleepers: Arc<Mutex<Vec<DateTime<Utc>>>>,
}

impl VirtualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        let (tx, _) = watch::channel(start);
        VirtualClock { now: Arc::new(tx), sleepers: Arc::default() }
    }

    pub fn set(&self, t: DateTime<Utc>) {
        self.now.send_replace(t);
    }

    pub fn advance(&self, d: chrono::Duration) {
        let t = *self.now.borrow() + d;
        self.set(t);
    }

    /// The earliest deadline anyone is sleeping towards, if any.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.sleepers.lock().unwrap().iter().min().copied()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> Sleep {
        let mut rx = self.now.subscribe();
        let sleepers = self.sleepers.clone();
        sleepers.lock().unwrap().push(t);
        // Removes the deadline however the sleep ends (woken or dropped by a select!).
        struct Guard(Arc<Mutex<Vec<DateTime<Utc>>>>, DateTime<Utc>);
        impl Drop for Guard {
            fn drop(&mut self) {
                let mut v = self.0.lock().unwrap();
                if let Some(i) = v.iter().position(|x| *x == self.1) {
                    v.swap_remove(i);
                }
            }
        }
        let guard = Guard(sleepers, t);
        Box::pin(async move {
            let _guard = guard;
            loop {
                if *rx.borrow_and_update() >= t {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn virtual_sleep_wakes_when_moved_past() {
        let t0 = DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let clock = VirtualClock::new(t0);
        let sleep = clock.sleep_until(t0 + chrono::Duration::hours(1));
        assert_eq!(clock.next_deadline(), Some(t0 + chrono::Duration::hours(1)));
        let handle = tokio::spawn(sleep);
        clock.advance(chrono::Duration::minutes(30));
        tokio::task::yield_now().await;
        assert!(!handle.is_finished());
        clock.advance(chrono::Duration::minutes(30));
        tokio::time::timeout(std::time::Duration::from_secs(5), handle).await.unwrap().unwrap();
        assert_eq!(clock.next_deadline(), None);
    }

    #[tokio::test]
    async fn system_sleep_in_the_past_returns_at_once() {
        SystemClock.sleep_until(Utc::now() - chrono::Duration::seconds(5)).await;
    }
}
