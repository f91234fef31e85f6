//! The credential caches' container: a bounded map from a secret's SHA-256 to what was learned
//! about it, each entry forgotten at its own deadline (never later than the cache's
//! time-to-live).
//!
//! Built on `quick_cache` (S3-FIFO eviction, sharded, no background work), chosen by
//! measurement against moka: a hit costs a hash probe, one clock read and a clone of `V`, and an
//! entry costs tens of bytes beyond `V` (`cargo bench --bench jwt`, `examples/cache_rss.rs`).
//! Keep `V` small and cheap to clone (an `Arc`, or a struct of `Arc`s): at a large working set
//! every separate allocation a hit touches is a likely cache miss.

use crate::store::SecretKey;
use std::time::{Duration, Instant};

/// A cache of `V` by secret, with a capacity and a time-to-live from insertion.
pub struct CredentialCache<V> {
    entries: quick_cache::sync::Cache<SecretKey, Entry<V>>,
    ttl: Duration,
}

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
        }
    }

    /// The value cached for `key`, unless its deadline has passed (then it is gone).
    pub fn get(&self, key: &SecretKey) -> Option<V> {
        let entry = self.entries.get(key)?;
        if Instant::now() < entry.expires_at {
            return Some(entry.value);
        }
        self.entries.remove(key);
        None
    }

    /// Caches `value` for the time-to-live, or for `valid_for` when that is shorter.
    pub fn insert(&self, key: SecretKey, value: V, valid_for: Duration) {
        let entry = Entry {
            expires_at: Instant::now() + valid_for.min(self.ttl),
            value,
        };
        self.entries.insert(key, entry);
    }

    pub fn invalidate(&self, key: &SecretKey) {
        self.entries.remove(key);
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
        cache.insert(a, 1, Duration::MAX);
        cache.insert(b, 2, Duration::MAX);
        cache.insert(c, 3, Duration::from_millis(20));
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
    fn capacity_bounds_the_entries() {
        let cache = CredentialCache::new(100, Duration::from_secs(60));
        for n in 0..1000u32 {
            cache.insert(SecretKey::of(&n.to_le_bytes()), n, Duration::MAX);
        }
        let kept = (0..1000u32)
            .filter(|n| cache.get(&SecretKey::of(&n.to_le_bytes())).is_some())
            .count();
        assert!((1..=100).contains(&kept), "{kept} kept");
    }
}
