//! A client-side token bucket that paces a service's mutating calls: EC2's
//! for every job (one bucket per execution environment), Route 53's for the
//! eip job's record changes.
//!
//! EC2 meters mutating calls per account and region with a bucket of about
//! 50 requests refilled at 5 per second, shared with the cluster's own
//! route controller. Pacing our writes below that keeps a large resync from
//! provoking `RequestLimitExceeded`, for us and for the controller. The pace
//! learns: a throttled call halves it, calls that go through win it back.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::aws::error::ThrottleCounter;
use crate::shared::config::WriteRate;

#[derive(Debug)]
pub struct WriteLimiter {
    rate: WriteRate,
    bucket: Mutex<Bucket>,
    /// Throttled attempts the SDK retried by itself (and so hid from the
    /// caller), and how many of them the pace has already answered.
    retried: Option<(ThrottleCounter, std::sync::atomic::AtomicUsize)>,
}

#[derive(Debug)]
struct Bucket {
    /// May go negative: callers reserve a token and wait for it to be paid.
    tokens: f64,
    refilled_at: Instant,
    /// The pace now: the configured one, or less after throttling.
    per_second: f64,
    /// Throttles seen so far: a caller that waited through one takes its
    /// turn again at the slower pace.
    throttles: u64,
}

impl WriteLimiter {
    pub fn new(rate: WriteRate) -> Self {
        let bucket = Bucket {
            tokens: f64::from(rate.burst),
            refilled_at: Instant::now(),
            per_second: rate.per_second,
            throttles: 0,
        };
        WriteLimiter { rate, bucket: Mutex::new(bucket), retried: None }
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
        wait_for(bucket.tokens - 1.0, bucket.per_second)
    }

    /// EC2 refused a write for its request rate: whoever else shares the
    /// account's bucket (the cluster's own route controller) is taking
    /// more than we thought. Halve the pace (down to a sixteenth of the
    /// configured one) and give up any saved burst.
    pub async fn throttled(&self) {
        if !self.is_enabled() {
            return;
        }
        let mut bucket = self.bucket.lock().await;
        self.refill(&mut bucket);
        bucket.per_second = (bucket.per_second / 2.0).max(self.rate.per_second / 16.0);
        bucket.tokens = bucket.tokens.min(0.0);
        bucket.throttles += 1;
    }

    /// Also learns from the throttled attempts the SDK retried on its own:
    /// a write that succeeded after one counts as throttled.
    pub fn learning_from(mut self, throttled: ThrottleCounter) -> Self {
        let seen = throttled.count();
        self.retried = Some((throttled, std::sync::atomic::AtomicUsize::new(seen)));
        self
    }

    /// A write went through: win back the pace slowly (a fiftieth of the
    /// configured pace per write), up to the configured one.
    pub async fn succeeded(&self) {
        if !self.is_enabled() {
            return;
        }
        if let Some((counter, seen)) = &self.retried {
            let now = counter.count();
            if seen.swap(now, std::sync::atomic::Ordering::Relaxed) < now {
                return self.throttled().await;
            }
        }
        let mut bucket = self.bucket.lock().await;
        bucket.per_second = (bucket.per_second + self.rate.per_second / 50.0).min(self.rate.per_second);
    }

    /// The pace now, in writes per second.
    pub async fn pace(&self) -> f64 {
        self.bucket.lock().await.per_second
    }

    /// Takes one token, waiting until it is available. Callers are served
    /// in the order they arrive.
    pub async fn acquire(&self) {
        if !self.is_enabled() {
            return;
        }
        loop {
            let (wait, throttles) = {
                let mut bucket = self.bucket.lock().await;
                self.refill(&mut bucket);
                bucket.tokens -= 1.0;
                (wait_for(bucket.tokens, bucket.per_second), bucket.throttles)
            };
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
            // A turn taken before a throttle was priced at the old pace.
            if self.bucket.lock().await.throttles == throttles {
                return;
            }
        }
    }

    fn refill(&self, bucket: &mut Bucket) {
        let now = Instant::now();
        let earned = now.duration_since(bucket.refilled_at).as_secs_f64() * bucket.per_second;
        bucket.tokens = (bucket.tokens + earned).min(f64::from(self.rate.burst));
        bucket.refilled_at = now;
    }
}

fn wait_for(tokens_after: f64, per_second: f64) -> Duration {
    if tokens_after >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-tokens_after / per_second) }
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

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_pace_and_writes_win_it_back_slowly() {
        let limiter = WriteLimiter::new(WriteRate { per_second: 4.0, burst: 10 });
        limiter.throttled().await;
        assert_eq!(limiter.pace().await, 2.0);
        limiter.throttled().await;
        limiter.throttled().await;
        limiter.throttled().await;
        limiter.throttled().await;
        assert_eq!(limiter.pace().await, 0.25, "never below a sixteenth");
        // The saved burst is gone: the next write waits for its token.
        let start = Instant::now();
        limiter.acquire().await;
        assert_eq!(start.elapsed().as_millis(), 4000);
        for _ in 0..100 {
            limiter.succeeded().await;
        }
        assert_eq!(limiter.pace().await, 4.0, "never above the configured pace");
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_the_sdk_retried_by_itself_still_slows_the_pace() {
        let counter = ThrottleCounter::default();
        let limiter = WriteLimiter::new(WriteRate { per_second: 4.0, burst: 10 }).learning_from(counter.clone());
        limiter.succeeded().await;
        assert_eq!(limiter.pace().await, 4.0);
        counter.record();
        limiter.succeeded().await;
        assert_eq!(limiter.pace().await, 2.0, "the write succeeded, after a throttled attempt");
        limiter.succeeded().await;
        assert!(limiter.pace().await > 2.0, "each throttle is answered once");
    }
}
