//! A client-side token bucket that paces route writes.
//!
//! EC2 meters mutating calls per account and region with a bucket of about
//! 50 requests refilled at 5 per second, shared with the cluster's own
//! route controller. Pacing our writes below that keeps a large resync from
//! provoking `RequestLimitExceeded`, for us and for the controller.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::shared::config::WriteRate;

#[derive(Debug)]
pub struct WriteLimiter {
    rate: WriteRate,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// May go negative: callers reserve a token and wait for it to be paid.
    tokens: f64,
    refilled_at: Instant,
}

impl WriteLimiter {
    pub fn new(rate: WriteRate) -> Self {
        WriteLimiter { rate, bucket: Mutex::new(Bucket { tokens: f64::from(rate.burst), refilled_at: Instant::now() }) }
    }

    pub fn is_enabled(&self) -> bool {
        self.rate.per_second > 0.0
    }

    /// How long the next caller would wait for a token right now.
    pub async fn delay(&self) -> Duration {
        if !self.is_enabled() {
            return Duration::ZERO;
        }
        let mut bucket = self.bucket.lock().await;
        self.refill(&mut bucket);
        self.wait_for(bucket.tokens - 1.0)
    }

    /// Takes one token, waiting until it is available. Callers are served
    /// in the order they arrive.
    pub async fn acquire(&self) {
        if !self.is_enabled() {
            return;
        }
        let wait = {
            let mut bucket = self.bucket.lock().await;
            self.refill(&mut bucket);
            bucket.tokens -= 1.0;
            self.wait_for(bucket.tokens)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    fn refill(&self, bucket: &mut Bucket) {
        let now = Instant::now();
        let earned = now.duration_since(bucket.refilled_at).as_secs_f64() * self.rate.per_second;
        bucket.tokens = (bucket.tokens + earned).min(f64::from(self.rate.burst));
        bucket.refilled_at = now;
    }

    fn wait_for(&self, tokens_after: f64) -> Duration {
        if tokens_after >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-tokens_after / self.rate.per_second) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Paused tokio time: the clock only moves when every task sleeps, so
    // these check the schedule exactly, not the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let limiter = WriteLimiter::new(WriteRate { per_second: 5.0, burst: 3 });
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // Five more tokens at 5/s: one second.
        assert_eq!(start.elapsed().as_millis(), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_never_waits() {
        let limiter = WriteLimiter::new(WriteRate { per_second: 0.0, burst: 1 });
        let start = Instant::now();
        for _ in 0..100 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(limiter.delay().await, Duration::ZERO);
    }
}
