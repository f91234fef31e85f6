//! Counters that limit logins and emails: in this process for one instance (the SQLite
//! backend), in Redis for a fleet, so N instances allow what one would.
//!
//! Two kinds. [`AttemptCounters`]: login attempts per key (an account digest or a client
//! address): attempts in flight and failures since the last success, with a lock that doubles
//! from `base` up to `max` and lifts by itself. [`RateLimiter`]: a GCRA limit of `burst`
//! events per `period` per key.

use super::StoreResult;
use super::redis::Redis;
use async_trait::async_trait;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use moka::sync::Cache;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters kept at most in memory; idle ones are forgotten after a day (also in Redis).
const MAX_TRACKED: u64 = 100_000;
pub(crate) const IDLE_FORGET: Duration = Duration::from_secs(24 * 3600);
/// What a client is told to wait when every slot of the window is taken by attempts in flight.
pub const BUSY_RETRY: Duration = Duration::from_secs(1);
/// Forget idle rate-limit keys after this many checks, so the in-memory maps stay bounded.
const RETAIN_EVERY: u64 = 4096;

/// When attempts lock a key.
#[derive(Debug, Clone, Copy)]
pub struct AttemptPolicy {
    /// Failures that lock; before the first lock, also the attempts allowed in flight at once.
    pub threshold: u32,
    /// The first lock; each further failure doubles it.
    pub base: Duration,
    pub max: Duration,
}

impl AttemptPolicy {
    /// The lock after `failures` failures, if any.
    pub(crate) fn lock_for(&self, failures: u32) -> Option<Duration> {
        let doublings = failures.checked_sub(self.threshold)?.min(30);
        Some(self.base.saturating_mul(1 << doublings).min(self.max))
    }
}

/// The answer to [`AttemptCounters::begin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A slot is held by this id until the attempt is resolved.
    Admitted(u64),
    /// Locked, or every slot is taken: retry after this long.
    Wait(Duration),
}

#[async_trait]
pub trait AttemptCounters: Send + Sync {
    /// Takes a slot for an attempt on `key`, before any password work.
    async fn begin(&self, key: &str, policy: &AttemptPolicy) -> StoreResult<Admission>;
    /// The attempt could not be checked: its slot back, uncounted (fire and forget).
    fn release(&self, key: &str, slot: u64);
    /// A wrong password: counted, locking at the threshold.
    async fn fail(&self, key: &str, slot: u64, policy: &AttemptPolicy) -> StoreResult<()>;
    /// The right password: the key starts over.
    async fn reset(&self, key: &str, slot: u64) -> StoreResult<()>;
}

#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one event for `key`: `Ok(None)` admitted, `Ok(Some(wait))` over the limit.
    async fn admit(&self, key: &str) -> StoreResult<Option<Duration>>;
}

/// Makes the counters of the configured backend. Made once per process: a reload asks it again
/// and gets the same counters, so a reload never forgives a failed login or a sent email.
#[derive(Clone)]
pub enum CounterBackend {
    /// In this process (SQLite, or no store at all).
    Local(Arc<LocalCounters>),
    /// Shared by every instance on one Redis.
    Redis(Arc<Redis>),
}

/// A limit's name, burst and period.
type RateLimit = (&'static str, u32, Duration);

/// The in-process counters handed out so far, by name (and limit).
#[derive(Default)]
pub struct LocalCounters {
    attempts: Mutex<HashMap<&'static str, Arc<LocalAttempts>>>,
    rate_limiters: Mutex<HashMap<RateLimit, Arc<LocalRateLimiter>>>,
}

impl CounterBackend {
    /// Counters in this process's memory.
    pub fn local() -> Self {
        CounterBackend::Local(Arc::default())
    }

    /// Attempt counters whose keys are named `kind` (`account`, `client`).
    pub fn attempts(&self, kind: &'static str) -> Arc<dyn AttemptCounters> {
        match self {
            CounterBackend::Local(local) => {
                let mut attempts = local.attempts.lock().expect("counters lock");
                attempts.entry(kind).or_default().clone()
            }
            CounterBackend::Redis(redis) => Arc::new(redis.attempt_counters(kind)),
        }
    }

    /// A limit of `burst` events per `period` per key, its keys named `name`. In this process,
    /// a changed limit starts its counts over.
    pub fn rate_limiter(
        &self,
        name: &'static str,
        burst: NonZeroU32,
        period: Duration,
    ) -> Arc<dyn RateLimiter> {
        match self {
            CounterBackend::Local(local) => {
                let mut limiters = local.rate_limiters.lock().expect("counters lock");
                limiters
                    .entry((name, burst.get(), period))
                    .or_insert_with(|| Arc::new(LocalRateLimiter::new(burst, period)))
                    .clone()
            }
            CounterBackend::Redis(redis) => Arc::new(redis.rate_limiter(name, burst, period)),
        }
    }
}

#[derive(Debug, Default)]
struct Attempts {
    /// Failed attempts since the last success.
    failures: u32,
    /// Attempts begun and not yet resolved.
    in_flight: u32,
    locked_until: Option<Instant>,
}

/// Attempt counters in this process's memory (bounded, idle keys forgotten).
pub struct LocalAttempts {
    counters: Cache<String, Arc<Mutex<Attempts>>>,
}

impl Default for LocalAttempts {
    fn default() -> Self {
        LocalAttempts {
            counters: Cache::builder()
                .max_capacity(MAX_TRACKED)
                .time_to_idle(IDLE_FORGET)
                .build(),
        }
    }
}

impl LocalAttempts {
    fn counter(&self, key: &str) -> Arc<Mutex<Attempts>> {
        self.counters.get_with_by_ref(key, Default::default)
    }

    /// Takes a slot, or says how long to wait: while locked, or when the attempts in flight
    /// already fill what the window allows (before the first lock: the failures left to the
    /// threshold; after it: one at a time).
    fn try_begin(&self, key: &str, policy: &AttemptPolicy, now: Instant) -> Admission {
        let counter = self.counter(key);
        let mut attempts = counter.lock().expect("attempt counter lock");
        if let Some(remaining) = attempts
            .locked_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|remaining| !remaining.is_zero())
        {
            return Admission::Wait(remaining);
        }
        let allowed = policy.threshold.saturating_sub(attempts.failures).max(1);
        if attempts.in_flight >= allowed {
            return Admission::Wait(BUSY_RETRY);
        }
        attempts.in_flight += 1;
        Admission::Admitted(0)
    }

    /// Lifts `key`'s lock now, as time would (for tests of what follows a lock).
    #[cfg(test)]
    pub(crate) fn lift(&self, key: &str) {
        self.counter(key).lock().unwrap().locked_until = None;
    }
}

#[async_trait]
impl AttemptCounters for LocalAttempts {
    async fn begin(&self, key: &str, policy: &AttemptPolicy) -> StoreResult<Admission> {
        Ok(self.try_begin(key, policy, Instant::now()))
    }

    fn release(&self, key: &str, _slot: u64) {
        if let Some(counter) = self.counters.get(key) {
            let mut attempts = counter.lock().expect("attempt counter lock");
            attempts.in_flight = attempts.in_flight.saturating_sub(1);
        }
    }

    async fn fail(&self, key: &str, _slot: u64, policy: &AttemptPolicy) -> StoreResult<()> {
        let counter = self.counter(key);
        let mut attempts = counter.lock().expect("attempt counter lock");
        attempts.in_flight = attempts.in_flight.saturating_sub(1);
        attempts.failures = attempts.failures.saturating_add(1);
        if let Some(lock) = policy.lock_for(attempts.failures) {
            attempts.locked_until = Some(Instant::now() + lock);
        }
        Ok(())
    }

    async fn reset(&self, key: &str, _slot: u64) -> StoreResult<()> {
        self.counters.invalidate(key);
        Ok(())
    }
}

/// GCRA limits in this process's memory, from `governor`.
pub struct LocalRateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl LocalRateLimiter {
    pub fn new(burst: NonZeroU32, period: Duration) -> Self {
        let replenish = period / burst.get();
        let quota = Quota::with_period(replenish.max(Duration::from_nanos(1)))
            .expect("a positive period")
            .allow_burst(burst);
        LocalRateLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn admit(&self, key: &str) -> StoreResult<Option<Duration>> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
        }
        Ok(self
            .limiter
            .check_key(&key.to_owned())
            .err()
            .map(|not_until| not_until.wait_time_from(DefaultClock::default().now())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AttemptPolicy {
        AttemptPolicy {
            threshold: 3,
            base: Duration::from_secs(2),
            max: Duration::from_secs(5),
        }
    }

    #[test]
    fn locks_double_from_the_base_up_to_the_max() {
        let policy = policy();
        assert_eq!(policy.lock_for(2), None);
        assert_eq!(policy.lock_for(3), Some(Duration::from_secs(2)));
        assert_eq!(policy.lock_for(4), Some(Duration::from_secs(4)));
        assert_eq!(policy.lock_for(5), Some(Duration::from_secs(5)));
        assert_eq!(policy.lock_for(u32::MAX), Some(Duration::from_secs(5)));
    }

    #[tokio::test]
    async fn local_rate_limits_allow_the_burst_then_say_when() {
        let limiter = LocalRateLimiter::new(NonZeroU32::new(2).unwrap(), Duration::from_secs(3600));
        assert_eq!(limiter.admit("a").await.unwrap(), None);
        assert_eq!(limiter.admit("a").await.unwrap(), None);
        let wait = limiter.admit("a").await.unwrap().expect("over the limit");
        assert!(
            wait > Duration::from_secs(1700) && wait <= Duration::from_secs(1800),
            "{wait:?}"
        );
        assert_eq!(limiter.admit("b").await.unwrap(), None);
    }
}
