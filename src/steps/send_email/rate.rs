//! Messages-per-second pacing shared by all concurrent sends of a step. Each send reserves the
//! next free slot and sleeps until it; no burst, so a provider's per-second quota is never hit.

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

pub struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// `per_second <= 0` or `None` means unlimited.
    pub fn new(per_second: Option<f64>) -> Self {
        let interval = per_second
            .filter(|r| *r > 0.0 && r.is_finite())
            .map(|r| Duration::from_secs_f64(1.0 / r));
        RateLimiter { interval, next: Mutex::new(Instant::now()) }
    }

    pub async fn wait(&self) {
        let Some(interval) = self.interval else { return };
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paces_concurrent_callers() {
        let rl = std::sync::Arc::new(RateLimiter::new(Some(100.0)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..21)
            .map(|_| {
                let rl = rl.clone();
                tokio::spawn(async move { rl.wait().await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let el = start.elapsed();
        assert!(el >= Duration::from_millis(195) && el < Duration::from_millis(600), "{el:?}");
        let free = RateLimiter::new(None);
        let s = Instant::now();
        for _ in 0..1000 {
            free.wait().await;
        }
        assert!(s.elapsed() < Duration::from_millis(50));
    }
}
