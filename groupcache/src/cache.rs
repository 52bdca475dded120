//! The two cache tiers: main (values this peer owns) and hot (copies of other peers' values).
//!
//! Both are moka caches bounded by weight in bytes: an entry weighs its encoded value plus its
//! key. An entry is shared as an `Arc`, so a hit costs a reference-count bump plus a clone of
//! `V` (make `V` an `Arc` or `Bytes` if it is large).
//!
//! Expiry is kept here, not in moka: moka reads `std::time::Instant`, which paused tokio time
//! in tests cannot move. Each entry carries its deadline as a `tokio::time::Instant`, checked on
//! read; moka's own bound is size only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use moka::notification::RemovalCause;
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;
use tokio::time::Instant;

use crate::flight::Superseded;
use crate::stats::TierStats;

/// One cached value: decoded for local callers, encoded for peers and for weighing.
#[derive(Debug)]
pub(crate) struct Entry<V> {
    pub(crate) value: V,
    pub(crate) encoded: Bytes,
    expires_at: Option<Instant>,
}

impl<V> Entry<V> {
    pub(crate) fn new(value: V, encoded: Bytes, ttl: Option<Duration>) -> Arc<Self> {
        Arc::new(Entry {
            value,
            encoded,
            expires_at: ttl.map(|ttl| Instant::now() + ttl),
        })
    }

    fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= Instant::now())
    }
}

/// A size-bounded tier. A tier of capacity zero stores nothing.
pub(crate) struct Tier<V> {
    cache: Option<Cache<String, Arc<Entry<V>>>>,
    capacity: u64,
    ttl: Option<Duration>,
    /// Entries dropped for size, counted by moka's eviction listener.
    evictions: Arc<AtomicU64>,
    /// Entries found expired on read (expiry is ours, not moka's).
    expirations: AtomicU64,
}

impl<V: Send + Sync + 'static> Tier<V> {
    pub(crate) fn new(name: &str, capacity_bytes: u64, ttl: Option<Duration>) -> Self {
        let evictions = Arc::new(AtomicU64::new(0));
        let cache = (capacity_bytes > 0).then(|| {
            let counter = Arc::clone(&evictions);
            Cache::builder()
                .name(name)
                .max_capacity(capacity_bytes)
                .weigher(|key: &String, entry: &Arc<Entry<V>>| {
                    u32::try_from(key.len() + entry.encoded.len()).unwrap_or(u32::MAX)
                })
                .eviction_listener(move |_key, _entry, cause| {
                    if cause == RemovalCause::Size {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .build()
        });
        Tier {
            cache,
            capacity: capacity_bytes,
            ttl,
            evictions,
            expirations: AtomicU64::new(0),
        }
    }

    /// The live entry for `key`, if any. An expired entry is dropped and reported as a miss.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Entry<V>>> {
        let cache = self.cache.as_ref()?;
        let entry = cache.get(key)?;
        if entry.is_expired() {
            // Conditional: a fresh value stored since our read must survive.
            if self.remove_if_same(key, &entry) {
                self.expirations.fetch_add(1, Ordering::Relaxed);
            }
            return None;
        }
        Some(entry)
    }

    /// Stores a value under this tier's time-to-live, unless `superseded` is set: the flight
    /// that read the value learned that the key was removed meanwhile.
    ///
    /// The check and the store happen under moka's per-key lock, as does [`Tier::remove`].
    /// `remove(key)` sets the flag before removing, so either this store comes first and the
    /// removal deletes it, or it comes after and sees the flag: a value read before a removal
    /// is never visible after the removal returned.
    ///
    /// moka may still decline to keep the value (a cold key when the tier is full), and a value
    /// heavier than the whole tier is not stored at all: moka would admit it and serve it until
    /// its next maintenance run.
    pub(crate) fn insert(
        &self,
        key: &str,
        value: V,
        encoded: Bytes,
        superseded: &Superseded,
    ) -> Arc<Entry<V>> {
        let entry = Entry::new(value, encoded, self.ttl);
        let weight = (key.len() + entry.encoded.len()) as u64;
        if let Some(cache) = self.cache.as_ref().filter(|_| weight <= self.capacity) {
            cache.entry_by_ref(key).and_compute_with(|_| {
                if superseded.is_set() {
                    Op::Nop
                } else {
                    Op::Put(Arc::clone(&entry))
                }
            });
        }
        entry
    }

    /// Removes `key` only if it still maps to `entry` (not a newer value stored since).
    /// Returns whether it was removed.
    pub(crate) fn remove_if_same(&self, key: &str, entry: &Arc<Entry<V>>) -> bool {
        let Some(cache) = &self.cache else {
            return false;
        };
        let result = cache
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                Some(current) if Arc::ptr_eq(current.value(), entry) => Op::Remove,
                _ => Op::Nop,
            });
        matches!(result, CompResult::Removed(_))
    }

    /// Removes `key`, under moka's per-key lock (see [`Tier::insert`]).
    pub(crate) fn remove(&self, key: &str) {
        if let Some(cache) = &self.cache {
            cache.entry_by_ref(key).and_compute_with(|_| Op::Remove);
        }
    }

    /// Drops every entry whose key `keep` rejects; returns how many were dropped. A full scan:
    /// meant for rare events such as a membership change.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) -> usize {
        let Some(cache) = &self.cache else {
            return 0;
        };
        let mut dropped = 0;
        for (key, _) in cache.iter() {
            if !keep(&key) {
                cache.invalidate(key.as_str());
                dropped += 1;
            }
        }
        dropped
    }

    pub(crate) fn stats(&self) -> TierStats {
        let Some(cache) = &self.cache else {
            return TierStats::default();
        };
        cache.run_pending_tasks();
        TierStats {
            entries: cache.entry_count(),
            weighted_bytes: cache.weighted_size(),
            evictions: self.evictions.load(Ordering::Relaxed),
            expirations: self.expirations.load(Ordering::Relaxed),
        }
    }
}

impl<V> std::fmt::Debug for Tier<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field(
                "capacity",
                &self.cache.as_ref().and_then(|c| c.policy().max_capacity()),
            )
            .field("ttl", &self.ttl)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_on_tokio_time() {
        let tier = Tier::new("t", 1 << 20, Some(Duration::from_secs(10)));
        tier.insert("k", 1u32, Bytes::from_static(b"1"), &Superseded::default());
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(tier.get("k").is_some(), "served before expiry");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(tier.get("k").is_none(), "gone after expiry");
        let stats = tier.stats();
        assert_eq!((stats.expirations, stats.evictions), (1, 0));
    }

    #[test]
    fn weight_is_key_plus_encoded_bytes_and_stays_bounded() {
        let tier = Tier::new("t", 10_000, None);
        for i in 0..100 {
            tier.insert(
                &format!("key-{i:03}"),
                i,
                Bytes::from(vec![0u8; 993]),
                &Superseded::default(),
            );
        }
        let stats = tier.stats();
        assert!(stats.weighted_bytes <= 10_000, "{stats:?}");
        assert!(stats.entries <= 10, "{stats:?}");
        assert!(stats.evictions >= 90, "{stats:?}");
    }

    #[test]
    fn a_value_heavier_than_the_tier_is_not_kept() {
        let tier = Tier::new("t", 100, None);
        tier.insert(
            "big",
            0u8,
            Bytes::from(vec![0u8; 1000]),
            &Superseded::default(),
        );
        assert!(
            tier.get("big").is_none(),
            "not even until the next maintenance run"
        );
    }

    #[test]
    fn a_superseded_value_is_not_stored() {
        let tier = Tier::new("t", 1 << 20, None);
        let superseded = Superseded::default();
        superseded.set();
        tier.insert("k", 1u8, Bytes::from_static(b"1"), &superseded);
        assert!(tier.get("k").is_none());
    }

    #[test]
    fn remove_if_same_spares_a_newer_value() {
        let tier = Tier::new("t", 1 << 20, None);
        let old = tier.insert("k", 1u8, Bytes::from_static(b"1"), &Superseded::default());
        let new = tier.insert("k", 2u8, Bytes::from_static(b"2"), &Superseded::default());
        assert!(!tier.remove_if_same("k", &old));
        assert_eq!(tier.get("k").unwrap().value, 2);
        assert!(tier.remove_if_same("k", &new));
        assert!(tier.get("k").is_none());
    }

    #[test]
    fn retain_drops_exactly_the_rejected_keys() {
        let tier = Tier::new("t", 1 << 20, None);
        for i in 0..10 {
            tier.insert(
                &format!("k{i}"),
                i,
                Bytes::from_static(b"v"),
                &Superseded::default(),
            );
        }
        assert_eq!(tier.retain(|key| key != "k3" && key != "k7"), 2);
        assert!(tier.get("k3").is_none() && tier.get("k7").is_none());
        assert!(
            (0..10)
                .filter(|i| *i != 3 && *i != 7)
                .all(|i| tier.get(&format!("k{i}")).is_some())
        );
    }

    #[test]
    fn a_zero_capacity_tier_stores_nothing() {
        let tier = Tier::new("t", 0, None);
        tier.insert("k", 1u8, Bytes::from_static(b"1"), &Superseded::default());
        assert!(tier.get("k").is_none());
        assert_eq!(tier.stats(), TierStats::default());
    }
}
