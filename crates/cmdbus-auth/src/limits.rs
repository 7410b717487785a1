//! Per-caller limits: a request rate per key (token buckets, governor) and counted slots for
//! what a caller holds (long-polls per key; WebSockets and followed ids per tenant and per
//! subject, whose bounds `shares.rs` sets).

use crate::AuthError;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};
use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
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

    /// `Ok` when `key` may make `n` more requests now (a batch's items beyond the request that
    /// carried them), all or none; otherwise how long to wait, or `None` when `n` is more than
    /// the burst, which no wait makes room for.
    pub(crate) fn check_n(&self, key: &Arc<str>, n: u32) -> Result<(), Option<Duration>> {
        let (Some(limiter), Some(n)) = (&self.limiter, NonZeroU32::new(n)) else {
            return Ok(());
        };
        match limiter.check_key_n(key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Some(
                not_until.wait_time_from(governor::clock::DefaultClock::default().now()),
            )),
            Err(_) => Err(None),
        }
    }
}

/// Failed authentications per client address, a leaky bucket each: `burst` at once, then
/// `per_second`. An address past its burst is refused before its credential is even looked up,
/// so that guessing keys costs the guesser, not the key lookups real clients wait for.
#[derive(Debug)]
pub(crate) struct FailedAuth {
    per_second: f64,
    burst: f64,
    /// Each address's level and when it was last brought up to date.
    levels: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Addresses kept before those whose level has drained are dropped.
const KEPT_ADDRESSES: usize = 100_000;

impl FailedAuth {
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            levels: Mutex::new(HashMap::new()),
        }
    }

    /// The address's level now, drained since it was last brought up to date.
    fn level(&self, levels: &mut HashMap<IpAddr, (f64, Instant)>, address: IpAddr) -> f64 {
        let now = Instant::now();
        let Some((level, at)) = levels.get_mut(&address) else {
            return 0.0;
        };
        *level = (*level - now.duration_since(*at).as_secs_f64() * self.per_second).max(0.0);
        *at = now;
        *level
    }

    /// `Err(wait)` while `address` has spent its failures.
    pub(crate) fn check(&self, address: IpAddr) -> Result<(), Duration> {
        if self.per_second == 0.0 {
            return Ok(());
        }
        let mut levels = self.levels.lock().unwrap_or_else(|p| p.into_inner());
        // One more failure may bring the level up to the burst, not past it.
        let over = self.level(&mut levels, address) + 1.0 - self.burst;
        if over <= 0.0 {
            return Ok(());
        }
        Err(Duration::from_secs_f64(over / self.per_second))
    }

    /// Counts one failed authentication of `address`.
    pub(crate) fn failed(&self, address: IpAddr) {
        if self.per_second == 0.0 {
            return;
        }
        let mut levels = self.levels.lock().unwrap_or_else(|p| p.into_inner());
        let level = self.level(&mut levels, address);
        if levels.len() >= KEPT_ADDRESSES && !levels.contains_key(&address) {
            let rate = self.per_second;
            levels.retain(|_, (level, at)| *level > at.elapsed().as_secs_f64() * rate);
        }
        levels.insert(address, (level + 1.0, Instant::now()));
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

/// Counted holdings per key, e.g. open long-polls per API key, or a tenant's sockets and those
/// of one of its subjects at once (`shares.rs`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Slots {
    taken: Arc<Mutex<HashMap<Arc<str>, usize>>>,
}

/// One bound a holding counts against: at most `max` held under `key` by everyone together, and
/// the refusal of a holding that would pass it.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub(crate) key: Arc<str>,
    pub(crate) max: usize,
    pub(crate) refusal: AuthError,
}

/// A holding of `amount` under each of its bounds' keys; dropping it gives it back.
#[derive(Debug)]
pub struct Slot {
    slots: Slots,
    bounds: Vec<Bound>,
    amount: usize,
}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, usize>> {
        self.taken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A holding of nothing yet under `bounds`; `Slot::resize` takes more.
    pub(crate) fn empty(&self, bounds: Vec<Bound>) -> Slot {
        Slot {
            slots: self.clone(),
            bounds,
            amount: 0,
        }
    }

    /// Holds `amount` under every bound at once, or nothing: the refusal of the first bound it
    /// would pass.
    pub(crate) fn hold(&self, bounds: Vec<Bound>, amount: usize) -> Result<Slot, AuthError> {
        let mut slot = self.empty(bounds);
        slot.resize(amount)?;
        Ok(slot)
    }
}

impl Slot {
    /// What this slot holds.
    pub fn amount(&self) -> usize {
        self.amount
    }

    /// Holds `amount` now: less is always given back; more is taken under every bound or not at
    /// all (the refusal of the first bound it would pass; the holding stays as it was).
    pub fn resize(&mut self, amount: usize) -> Result<(), AuthError> {
        let mut taken = self.slots.lock();
        if amount > self.amount {
            let more = amount - self.amount;
            for bound in &self.bounds {
                let held = taken.get(&bound.key).copied().unwrap_or(0);
                if held.saturating_add(more) > bound.max {
                    return Err(bound.refusal.clone());
                }
            }
            for bound in &self.bounds {
                *taken.entry(Arc::clone(&bound.key)).or_default() += more;
            }
        } else {
            let less = self.amount - amount;
            for bound in &self.bounds {
                if let Some(count) = taken.get_mut(&bound.key) {
                    *count = count.saturating_sub(less);
                    if *count == 0 {
                        taken.remove(&bound.key);
                    }
                }
            }
        }
        self.amount = amount;
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = self.resize(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(key: &str, max: usize) -> Bound {
        Bound {
            key: Arc::from(key),
            max,
            refusal: AuthError::Unauthorized(if key == "subject" { "subject" } else { "other" }),
        }
    }

    fn refused_by(refused: Result<(), AuthError>) -> Option<&'static str> {
        match refused {
            Err(AuthError::Unauthorized(which)) => Some(which),
            _ => None,
        }
    }

    #[test]
    fn slots_are_counted_per_key_and_given_back() {
        let slots = Slots::default();
        let first = slots.hold(vec![bound("a", 2)], 1).expect("free");
        let _second = slots.hold(vec![bound("a", 2)], 1).expect("free");
        assert!(slots.hold(vec![bound("a", 2)], 1).is_err());
        assert!(slots.hold(vec![bound("b", 2)], 1).is_ok());
        drop(first);
        assert!(slots.hold(vec![bound("a", 2)], 1).is_ok());
    }

    #[test]
    fn a_holding_counts_under_every_bound_and_grows_only_within_all() {
        let slots = Slots::default();
        let mut one = slots
            .hold(vec![bound("tenant", 10), bound("subject", 4)], 3)
            .expect("within both");
        assert_eq!(refused_by(one.resize(5)), Some("subject"));
        assert_eq!(one.amount(), 3, "a refused growth holds what it held");
        let mut other = slots
            .hold(vec![bound("tenant", 10)], 7)
            .expect("the tenant holds 10");
        assert_eq!(refused_by(other.resize(8)), Some("other"));
        one.resize(1).expect("shrinks");
        other.resize(9).expect("what one gave back");
        drop(other);
        assert!(slots.hold(vec![bound("tenant", 10)], 9).is_ok());
    }

    #[test]
    fn failed_authentications_are_counted_per_address() {
        let failures = FailedAuth::new(1, 3);
        let (bad, good): (IpAddr, IpAddr) = (
            "127.0.0.2".parse().expect("address"),
            "127.0.0.3".parse().expect("address"),
        );
        for _ in 0..3 {
            assert!(failures.check(bad).is_ok());
            failures.failed(bad);
        }
        let wait = failures.check(bad).expect_err("past the burst");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(failures.check(good).is_ok(), "another address pays nothing");
        let unlimited = FailedAuth::new(0, 1);
        unlimited.failed(bad);
        unlimited.failed(bad);
        assert!(unlimited.check(bad).is_ok());
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
