//! Per-caller limits: a request rate per key (token buckets, governor) and counted slots for
//! what holds a connection open (long-polls per key, WebSockets per tenant).

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};
use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Requests per second per caller, with a burst; `None` when unlimited.
#[derive(Debug)]
pub(crate) struct RateLimit {
    limiter: Option<DefaultKeyedRateLimiter<Arc<str>>>,
}

/// Buckets kept before idle ones are dropped.
const KEPT_BUCKETS: usize = 10_000;

impl RateLimit {
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter }
    }

    /// `Ok` when `key` may make one more request now; otherwise how long to wait.
    pub(crate) fn check(&self, key: &Arc<str>) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > KEPT_BUCKETS {
            limiter.retain_recent();
        }
        limiter.check_key(key).map_err(|not_until| {
            not_until.wait_time_from(governor::clock::DefaultClock::default().now())
        })
    }
}

/// One client's allowance of something cheap to ask for and costly to pile up (a WebSocket's
/// pings: each queues a pong): a burst, then a steady rate.
#[derive(Debug)]
pub struct Budget {
    limiter: governor::DefaultDirectRateLimiter,
}

impl Budget {
    /// `burst` at once, then `per_second`.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
        }
    }

    /// Takes one from the budget; false when it is spent.
    pub fn take(&self) -> bool {
        self.limiter.check().is_ok()
    }
}

/// Counted slots per key, e.g. open long-polls per API key.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slots {
    taken: Arc<Mutex<HashMap<Arc<str>, usize>>>,
}

/// One taken slot; dropping it gives it back.
#[derive(Debug)]
pub struct Slot {
    slots: Slots,
    key: Arc<str>,
}

impl Slots {
    /// Takes a slot of `key` unless `max` are taken (`max == 0`: unlimited).
    pub(crate) fn take(&self, key: &Arc<str>, max: usize) -> Option<Slot> {
        let mut taken = self
            .taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = taken.entry(Arc::clone(key)).or_default();
        if max != 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: self.clone(),
            key: Arc::clone(key),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut taken = self
            .slots
            .taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = taken.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                taken.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_key_and_given_back() {
        let slots = Slots::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let first = slots.take(&a, 2).expect("free");
        let _second = slots.take(&a, 2).expect("free");
        assert!(slots.take(&a, 2).is_none());
        assert!(slots.take(&b, 2).is_some());
        drop(first);
        assert!(slots.take(&a, 2).is_some());
    }

    #[test]
    fn a_budget_allows_its_burst_then_refuses() {
        let budget = Budget::new(NonZeroU32::MIN, NonZeroU32::new(3).expect("not zero"));
        assert!((0..3).all(|_| budget.take()));
        assert!(!budget.take());
    }

    #[test]
    fn a_burst_past_the_rate_waits() {
        let limit = RateLimit::new(5, 5);
        let key: Arc<str> = Arc::from("k");
        for _ in 0..5 {
            assert!(limit.check(&key).is_ok());
        }
        let wait = limit.check(&key).expect_err("over the burst");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(200));
        assert!(limit.check(&Arc::from("other")).is_ok());
        assert!(RateLimit::new(0, 0).check(&key).is_ok());
    }
}
