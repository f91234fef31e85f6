//! The credential caches' container: a bounded map from a secret's SHA-256 to what was learned
//! about it, each entry forgotten at its own deadline (never later than the cache's
//! time-to-live).
//!
//! Built on `quick_cache` (S3-FIFO eviction, sharded, no background work), chosen by
//! measurement against moka: a hit costs a hash probe, one clock read and a clone of `V`, and an
//! entry costs tens of bytes beyond `V` (`cargo bench --bench jwt`, `examples/cache_rss.rs`).
//! Keep `V` small and cheap to clone (an `Arc`, or a struct of `Arc`s): at a large working set
//! every separate allocation a hit touches is a likely cache miss.
//!
//! A cache in front of a store that others write (Redis) hears of changes as an
//! [`InvalidationSink`]. Two rules keep it from serving what the store no longer holds: a value
//! read from the store is kept only if no invalidation arrived since the read began (a
//! [`FillTicket`] carries the generation it began in), and while changes cannot be heard the
//! cache is empty and keeps nothing.

use crate::store::{InvalidationSink, SecretKey};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A cache of `V` by secret, with a capacity and a time-to-live from insertion.
pub struct CredentialCache<V> {
    entries: quick_cache::sync::Cache<SecretKey, Entry<V>>,
    ttl: Duration,
    /// Bumped by every invalidation: a fill that began in an older generation is not kept.
    generation: AtomicU64,
    trusted: AtomicBool,
}

/// Permission to keep a value read from the store, taken before the read.
#[must_use]
pub struct FillTicket(u64);

#[derive(Clone)]
struct Entry<V> {
    expires_at: Instant,
    value: V,
}

impl<V: Clone> CredentialCache<V> {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        CredentialCache {
            entries: quick_cache::sync::Cache::new(capacity.max(1) as usize),
            ttl,
            generation: AtomicU64::new(0),
            trusted: AtomicBool::new(true),
        }
    }

    /// The value cached for `key`, unless its deadline has passed (then it is gone).
    pub fn get(&self, key: &SecretKey) -> Option<V> {
        if !self.trusted.load(Ordering::Acquire) {
            return None;
        }
        let entry = self.entries.get(key)?;
        if Instant::now() < entry.expires_at {
            return Some(entry.value);
        }
        self.entries.remove(key);
        None
    }

    /// Take before reading the store; `None` while the cache may keep nothing.
    pub fn fill_ticket(&self) -> Option<FillTicket> {
        let generation = self.generation.load(Ordering::Acquire);
        self.trusted
            .load(Ordering::Acquire)
            .then_some(FillTicket(generation))
    }

    /// Caches `value` read under `ticket` for the time-to-live, or for `valid_for` when that is
    /// shorter, unless an invalidation arrived since the ticket was taken.
    pub fn fill(&self, ticket: FillTicket, key: SecretKey, value: V, valid_for: Duration) {
        let entry = Entry {
            expires_at: Instant::now() + valid_for.min(self.ttl),
            value,
        };
        self.entries.insert(key, entry);
        // An invalidation bumps the generation before it removes: if it raced the insert
        // above, either it removes the entry or this check does.
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            self.entries.remove(&key);
        }
    }

    /// Forgets `key`; a fill of it that is in flight is not kept either.
    pub fn invalidate(&self, key: &SecretKey) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.remove(key);
    }

    fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.clear();
    }
}

impl<V: Clone + Send + Sync> InvalidationSink for CredentialCache<V> {
    fn invalidate(&self, key: &SecretKey) {
        CredentialCache::invalidate(self, key);
    }

    fn invalidate_all(&self) {
        self.clear();
    }

    fn set_trusted(&self, trusted: bool) {
        if trusted {
            // Fills begun while untrusted carry no ticket; a new generation starts here.
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.trusted.store(true, Ordering::Release);
        } else {
            self.trusted.store(false, Ordering::Release);
            self.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_at_their_deadline_or_the_ttl_and_can_be_invalidated() {
        let cache = CredentialCache::new(10, Duration::from_millis(80));
        let (a, b, c) = (
            SecretKey::of(b"a"),
            SecretKey::of(b"b"),
            SecretKey::of(b"c"),
        );
        cache.fill(cache.fill_ticket().unwrap(), a, 1, Duration::MAX);
        cache.fill(cache.fill_ticket().unwrap(), b, 2, Duration::MAX);
        cache.fill(
            cache.fill_ticket().unwrap(),
            c,
            3,
            Duration::from_millis(20),
        );
        assert_eq!(cache.get(&a), Some(1));
        cache.invalidate(&b);
        assert_eq!(cache.get(&b), None);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get(&c), None, "its own deadline");
        assert_eq!(cache.get(&a), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&a), None, "the ttl");
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_not_kept() {
        let cache = CredentialCache::new(10, Duration::from_secs(60));
        let (a, b) = (SecretKey::of(b"a"), SecretKey::of(b"b"));
        // A read of `a` begins, then `b` (any key) is invalidated before the read returns.
        let ticket = cache.fill_ticket().unwrap();
        cache.invalidate(&b);
        cache.fill(ticket, a, 1, Duration::MAX);
        assert_eq!(cache.get(&a), None, "read before the invalidation");
        let ticket = cache.fill_ticket().unwrap();
        cache.fill(ticket, a, 2, Duration::MAX);
        assert_eq!(cache.get(&a), Some(2));
    }

    #[test]
    fn an_untrusted_cache_answers_nothing_and_keeps_nothing() {
        let cache = CredentialCache::new(10, Duration::from_secs(60));
        let a = SecretKey::of(b"a");
        cache.fill(cache.fill_ticket().unwrap(), a, 1, Duration::MAX);
        let before_loss = cache.fill_ticket().unwrap();
        InvalidationSink::set_trusted(&cache, false);
        assert_eq!(cache.get(&a), None);
        assert!(cache.fill_ticket().is_none(), "no fills while untrusted");
        InvalidationSink::set_trusted(&cache, true);
        assert_eq!(cache.get(&a), None, "emptied, not hidden");
        cache.fill(before_loss, a, 2, Duration::MAX);
        assert_eq!(
            cache.get(&a),
            None,
            "a read from before the loss is not kept"
        );
        cache.fill(cache.fill_ticket().unwrap(), a, 3, Duration::MAX);
        assert_eq!(cache.get(&a), Some(3));
        InvalidationSink::invalidate_all(&cache);
        assert_eq!(cache.get(&a), None, "a flush empties it");
    }

    #[test]
    fn capacity_bounds_the_entries() {
        let cache = CredentialCache::new(100, Duration::from_secs(60));
        for n in 0..1000u32 {
            let ticket = cache.fill_ticket().unwrap();
            cache.fill(ticket, SecretKey::of(&n.to_le_bytes()), n, Duration::MAX);
        }
        let kept = (0..1000u32)
            .filter(|n| cache.get(&SecretKey::of(&n.to_le_bytes())).is_some())
            .count();
        assert!((1..=100).contains(&kept), "{kept} kept");
    }
}
