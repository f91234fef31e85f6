//! The login-attempt and email-limit counters in Redis, shared by every instance: each check
//! is one atomic script, so three instances lock an account at the same count as one.
//!
//! An attempt's slot is a member of a sorted set scored by its deadline: one that an instance
//! never resolves (it crashed mid-check) frees itself after [`SLOT_LIFETIME`].

use super::Redis;
use super::scripts;
use crate::store::StoreResult;
use crate::store::counters::{
    Admission, AttemptCounters, AttemptPolicy, BUSY_RETRY, IDLE_FORGET, RateLimiter,
};
use async_trait::async_trait;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long an unresolved attempt may hold its slot.
const SLOT_LIFETIME: Duration = Duration::from_secs(30);

pub struct RedisAttempts {
    redis: Arc<Redis>,
    kind: &'static str,
    /// Slot ids: unique per instance (the instance id) and per attempt (the counter).
    instance: u64,
    next_slot: AtomicU64,
}

impl RedisAttempts {
    pub(super) fn new(redis: Arc<Redis>, kind: &'static str) -> Self {
        RedisAttempts {
            redis,
            kind,
            instance: rand_u64(),
            next_slot: AtomicU64::new(0),
        }
    }

    fn keys(&self, key: &str) -> [String; 2] {
        let layout = &self.redis.keys;
        [
            layout.counter("lock", self.kind, key),
            layout.counter("slots", self.kind, key),
        ]
    }

    fn slot_member(&self, slot: u64) -> String {
        format!("{:016x}{slot:016x}", self.instance)
    }

    fn timed<T>(&self, started: Instant, result: StoreResult<T>) -> StoreResult<T> {
        super::super::observe(&self.redis.series, "lockout", started, result)
    }
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the OS random source");
    u64::from_le_bytes(bytes)
}

fn ms(duration: Duration) -> Vec<u8> {
    duration.as_millis().to_string().into_bytes()
}

#[async_trait]
impl AttemptCounters for RedisAttempts {
    async fn begin(&self, key: &str, policy: &AttemptPolicy) -> StoreResult<Admission> {
        let started = Instant::now();
        let [state, slots] = self.keys(key);
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let member = self.slot_member(slot);
        let threshold = policy.threshold.to_string();
        let args: [&[u8]; 4] = [
            threshold.as_bytes(),
            member.as_bytes(),
            &ms(SLOT_LIFETIME),
            &ms(BUSY_RETRY),
        ];
        let result = self
            .redis
            .run_script::<u64>(&scripts::ATTEMPT_BEGIN, &[&state, &slots], &args, false)
            .await;
        let wait_ms = self.timed(started, result)?;
        Ok(match wait_ms {
            0 => Admission::Admitted(slot),
            wait => Admission::Wait(Duration::from_millis(wait)),
        })
    }

    fn release(&self, key: &str, slot: u64) {
        let [_, slots] = self.keys(key);
        let member = self.slot_member(slot);
        let link = self.redis.link.clone();
        // Fire and forget: a slot not given back frees itself at its deadline.
        self.redis.link.runtime().spawn(async move {
            let released = link
                .call(|mut connection| async move {
                    redis::cmd("ZREM")
                        .arg(&slots)
                        .arg(&member)
                        .exec_async(&mut connection)
                        .await
                })
                .await;
            if let Err(error) = released {
                tracing::debug!(%error, "a login slot was not given back");
            }
        });
    }

    async fn fail(&self, key: &str, slot: u64, policy: &AttemptPolicy) -> StoreResult<()> {
        let started = Instant::now();
        let [state, slots] = self.keys(key);
        let member = self.slot_member(slot);
        let threshold = policy.threshold.to_string();
        let args: [&[u8]; 5] = [
            member.as_bytes(),
            threshold.as_bytes(),
            &ms(policy.base),
            &ms(policy.max),
            &ms(IDLE_FORGET),
        ];
        let result = self
            .redis
            .run_script::<u64>(&scripts::ATTEMPT_FAIL, &[&state, &slots], &args, true)
            .await;
        self.timed(started, result).map(drop)
    }

    async fn reset(&self, key: &str, _slot: u64) -> StoreResult<()> {
        let started = Instant::now();
        let [state, slots] = self.keys(key);
        let result = self
            .redis
            .link
            .call(|mut connection| async move {
                redis::cmd("DEL")
                    .arg(&state)
                    .arg(&slots)
                    .exec_async(&mut connection)
                    .await
            })
            .await;
        self.timed(started, result)
    }
}

pub struct RedisRateLimiter {
    redis: Arc<Redis>,
    name: &'static str,
    /// The GCRA emission interval, in whole ms, and the burst.
    interval_ms: Vec<u8>,
    burst: Vec<u8>,
}

impl RedisRateLimiter {
    pub(super) fn new(
        redis: Arc<Redis>,
        name: &'static str,
        burst: NonZeroU32,
        period: Duration,
    ) -> Self {
        let interval = period.as_millis().div_ceil(u128::from(burst.get())).max(1);
        RedisRateLimiter {
            redis,
            name,
            interval_ms: interval.to_string().into_bytes(),
            burst: burst.to_string().into_bytes(),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn admit(&self, key: &str) -> StoreResult<Option<Duration>> {
        let started = Instant::now();
        let limit_key = self.redis.keys.counter("rate", self.name, key);
        let args: [&[u8]; 2] = [&self.interval_ms, &self.burst];
        let result = self
            .redis
            .run_script::<u64>(&scripts::RATE_ADMIT, &[&limit_key], &args, true)
            .await;
        let wait_ms = super::super::observe(&self.redis.series, "rate_limit", started, result)?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }
}
