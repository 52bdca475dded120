//! A tier held by moka (`sync::Cache`), bounded by weight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::notification::RemovalCause;
use moka::ops::compute::{CompResult, Op};
use moka::sync::Cache;

use super::Entry;
use crate::flight::Superseded;

pub(super) struct MokaStore<V> {
    cache: Cache<String, Arc<Entry<V>>>,
}

impl<V: Send + Sync + 'static> MokaStore<V> {
    /// `evictions` counts entries dropped for size, from moka's eviction listener.
    pub(super) fn new(name: &str, capacity_bytes: u64, evictions: &Arc<AtomicU64>) -> Self {
        let counter = Arc::clone(evictions);
        let cache = Cache::builder()
            .name(name)
            .max_capacity(capacity_bytes)
            .weigher(|key: &String, entry: &Arc<Entry<V>>| {
                u32::try_from(entry.weight(key)).unwrap_or(u32::MAX)
            })
            .eviction_listener(move |_key, _entry, cause| {
                if cause == RemovalCause::Size {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        MokaStore { cache }
    }

    #[inline]
    pub(super) fn get(&self, key: &str) -> Option<Arc<Entry<V>>> {
        self.cache.get(key)
    }

    /// Stores `entry` unless `superseded` is set, the check and the store under moka's
    /// per-key lock (the one [`MokaStore::remove`] takes).
    pub(super) fn insert(&self, key: &str, entry: &Arc<Entry<V>>, superseded: &Superseded) {
        self.cache.entry_by_ref(key).and_compute_with(|_| {
            if superseded.is_set() {
                Op::Nop
            } else {
                Op::Put(Arc::clone(entry))
            }
        });
    }

    pub(super) fn remove_if_same(&self, key: &str, entry: &Arc<Entry<V>>) -> bool {
        let result = self
            .cache
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                Some(current) if Arc::ptr_eq(current.value(), entry) => Op::Remove,
                _ => Op::Nop,
            });
        matches!(result, CompResult::Removed(_))
    }

    pub(super) fn remove(&self, key: &str) {
        self.cache
            .entry_by_ref(key)
            .and_compute_with(|_| Op::Remove);
    }

    pub(super) fn retain(&self, keep: impl Fn(&str) -> bool) -> usize {
        let mut dropped = 0;
        for (key, _) in &self.cache {
            if !keep(&key) {
                self.cache.invalidate(key.as_str());
                dropped += 1;
            }
        }
        dropped
    }

    /// Every entry whose key `pick` accepts, left in place.
    pub(super) fn entries_where(
        &self,
        pick: impl Fn(&str) -> bool,
    ) -> Vec<(String, Arc<Entry<V>>)> {
        (&self.cache)
            .into_iter()
            .filter(|(key, _)| pick(key))
            .map(|(key, entry)| (key.as_ref().clone(), entry))
            .collect()
    }

    /// `(entries, weighted bytes)`, after moka's pending maintenance has run.
    /// What the entries weigh together, as of moka's last maintenance (none is run here).
    pub(super) fn weight(&self) -> u64 {
        self.cache.weighted_size()
    }

    pub(super) fn size(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.entry_count(), self.cache.weighted_size())
    }
}
