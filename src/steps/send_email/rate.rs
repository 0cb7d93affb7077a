//! Messages-per-second pacing shared by all concurrent sends of a step. Each send reserves the
//! next free slot and sleeps until it; no burst, so a provider's per-second quota is never hit.
//! Slots are on tokio's clock (`tokio::time::Instant`), so tests can pause it and check the
//! spacing exactly.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// `per_second <= 0` or `None` means unlimited.
    pub fn new(per_second: Option<f64>) -> Self {
        let interval = per_second.filter(|r| *r > 0.0 && r.is_finite()).map(|r| Duration::from_secs_f64(1.0 / r));
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
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The clock is paused: it only moves when every task waits on a timer, and then jumps to the
    // next one, so each send's instant can be checked to the nanosecond.

    #[tokio::test(start_paused = true)]
    async fn paces_concurrent_callers() {
        let rl = std::sync::Arc::new(RateLimiter::new(Some(100.0)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..21)
            .map(|_| {
                let rl = rl.clone();
                tokio::spawn(async move {
                    rl.wait().await;
                    Instant::now()
                })
            })
            .collect();
        let mut at = Vec::new();
        for t in tasks {
            at.push(t.await.unwrap() - start);
        }
        let el = start.elapsed();
        assert!(el >= Duration::from_millis(195) && el < Duration::from_millis(600), "{el:?}");
        // One slot every 10 ms, the first one right away: no two callers share a slot.
        at.sort();
        let want: Vec<Duration> = (0..21).map(|i| Duration::from_millis(10 * i)).collect();
        assert_eq!(at, want);
        assert_eq!(el, Duration::from_millis(200));
        let free = RateLimiter::new(None);
        let s = Instant::now();
        for _ in 0..1000 {
            free.wait().await;
        }
        assert!(s.elapsed() < Duration::from_millis(50));
        assert_eq!(s.elapsed(), Duration::ZERO, "unlimited never sleeps");
    }

    #[tokio::test(start_paused = true)]
    async fn sequential_sends_are_exactly_one_interval_apart() {
        let rl = RateLimiter::new(Some(50.0));
        let start = Instant::now();
        for i in 0..11 {
            rl.wait().await;
            assert_eq!(start.elapsed(), Duration::from_millis(20 * i), "send {i}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_time_is_not_saved_up_for_a_burst() {
        let rl = RateLimiter::new(Some(10.0));
        rl.wait().await;
        // A pause far longer than the interval: the next send goes at once, and the ones after
        // it are paced again, not let through together.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let resumed = Instant::now();
        for i in 0..4 {
            rl.wait().await;
            assert_eq!(resumed.elapsed(), Duration::from_millis(100 * i), "send {i} after the pause");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_waits_less_than_an_interval_waits_only_the_rest() {
        let rl = RateLimiter::new(Some(4.0));
        let start = Instant::now();
        rl.wait().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        rl.wait().await;
        assert_eq!(start.elapsed(), Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_negative_and_non_finite_rates_mean_unlimited() {
        for rate in [None, Some(0.0), Some(-5.0), Some(f64::NAN), Some(f64::INFINITY)] {
            let rl = RateLimiter::new(rate);
            let start = Instant::now();
            for _ in 0..100 {
                rl.wait().await;
            }
            assert_eq!(start.elapsed(), Duration::ZERO, "{rate:?}");
        }
    }
}
