//! Client-side limits on the controller's writes to the API server: a token bucket for the rate
//! and a semaphore for how many are in flight at once.

use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// A token bucket: `qps` tokens a second, up to `burst` saved. Callers reserve a token and wait
/// until it is due, so waiters are served in order.
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps: if qps.is_finite() { qps.max(0.01) } else { 0.01 },
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                updated: Instant::now(),
            }),
        }
    }

    /// Reserves one token at `now`; returns how long to wait before using it.
    pub fn reserve(&self, now: Instant) -> Duration {
        let mut bucket = match self.state.lock() {
            Ok(bucket) => bucket,
            Err(poisoned) => poisoned.into_inner(),
        };
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.qps).min(self.burst);
        bucket.updated = now;
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-bucket.tokens / self.qps).unwrap_or(Duration::MAX)
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The limits every write goes through.
#[derive(Debug)]
pub struct WriteLimits {
    bucket: TokenBucket,
    in_flight: Semaphore,
}

impl WriteLimits {
    /// At most `qps` writes a second (bursts of `burst`), `in_flight` at a time.
    pub fn new(qps: f64, burst: u32, in_flight: usize) -> Self {
        Self {
            bucket: TokenBucket::new(qps, burst),
            in_flight: Semaphore::new(in_flight.max(1)),
        }
    }

    /// Waits until one more write may start; the write may run while the permit lives.
    pub async fn permit(&self) -> Option<SemaphorePermit<'_>> {
        let permit = self.in_flight.acquire().await.ok()?;
        self.bucket.acquire().await;
        Some(permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_serves_the_burst_then_paces_at_the_rate() {
        let bucket = TokenBucket::new(10.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(bucket.reserve(start), Duration::ZERO);
        }
        assert_eq!(bucket.reserve(start), Duration::from_millis(100));
        assert_eq!(bucket.reserve(start), Duration::from_millis(200));
    }

    #[test]
    fn tokens_refill_over_time_up_to_the_burst() {
        let bucket = TokenBucket::new(10.0, 2);
        let start = Instant::now();
        bucket.reserve(start);
        bucket.reserve(start);
        let later = start + Duration::from_secs(10);
        assert_eq!(bucket.reserve(later), Duration::ZERO);
        assert_eq!(bucket.reserve(later), Duration::ZERO);
        assert_eq!(bucket.reserve(later), Duration::from_millis(100));
    }

    #[test]
    fn nonsense_rates_do_not_panic() {
        for qps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let bucket = TokenBucket::new(qps, 0);
            let now = Instant::now();
            bucket.reserve(now);
            assert!(
                bucket.reserve(now) > Duration::ZERO,
                "{qps}: a slow bucket, not a panic"
            );
        }
    }

    #[tokio::test]
    async fn permits_bound_the_writes_in_flight() {
        let limits = WriteLimits::new(1000.0, 1000, 2);
        let a = limits.permit().await.expect("permit");
        let _b = limits.permit().await.expect("permit");
        let third = tokio::time::timeout(Duration::from_millis(20), limits.permit()).await;
        assert!(third.is_err(), "a third write waits");
        drop(a);
        assert!(limits.permit().await.is_some());
    }
}
