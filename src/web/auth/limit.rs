//! Failed logins, counted per user name and per client address over a sliding window: past the
//! limit, logins are refused (429) until the oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub(crate) const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures for one user name: guessing a password gets 5 tries per 15 minutes.
pub(crate) const PER_NAME: usize = 5;
/// Failures from one address (trying many names): higher, since people behind one proxy or NAT
/// share an address.
pub(crate) const PER_ADDRESS: usize = 20;
/// Keys kept at most; past it, keys with no failure in the window are forgotten.
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
pub(crate) struct Limiter {
    failures: HashMap<String, VecDeque<Instant>>,
}

impl Limiter {
    /// How long until a login for these `(key, limit)`s may be tried; None: now.
    pub(crate) fn wait(&mut self, keys: &[(String, usize)], now: Instant) -> Option<Duration> {
        keys.iter()
            .filter_map(|(k, limit)| {
                let q = self.failures.get_mut(k)?;
                while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                    q.pop_front();
                }
                (q.len() >= *limit).then(|| WINDOW.saturating_sub(now.duration_since(q[q.len() - limit])))
            })
            .max()
    }

    pub(crate) fn fail(&mut self, keys: &[(String, usize)], now: Instant) {
        if self.failures.len() >= MAX_KEYS {
            self.failures.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        for (k, _) in keys {
            self.failures.entry(k.clone()).or_default().push_back(now);
        }
    }

    /// A successful login forgets the name's failures (not the address's).
    pub(crate) fn forget(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_a_name_until_the_first_leaves_the_window() {
        let mut l = Limiter::default();
        let keys = [("user:alice".to_string(), PER_NAME)];
        let t0 = Instant::now();
        for i in 0..PER_NAME {
            assert_eq!(l.wait(&keys, t0), None);
            l.fail(&keys, t0 + Duration::from_secs(i as u64 * 60));
        }
        let now = t0 + Duration::from_secs(300);
        assert_eq!(l.wait(&keys, now), Some(WINDOW - Duration::from_secs(300)));
        assert_eq!(l.wait(&keys, t0 + WINDOW), None);
        l.forget("user:alice");
        assert_eq!(l.wait(&keys, now), None);
    }
}
