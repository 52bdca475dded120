//! A tier held by `quick_cache`, bounded by weight.
//!
//! `quick_cache` has no per-key compute for absent keys, so a conditional insert is made atomic
//! against removals of the same key by a small array of striped locks, taken only by inserts
//! and removals: a hit takes none of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use super::Entry;
use crate::flight::Superseded;

/// Striped locks for inserts and removals; a power of two.
const STRIPES: usize = 64;
/// At most this many shards (`quick_cache` read-locks one shard per lookup).
const MAX_SHARDS: u64 = 8;

type Store<V> = Cache<String, Arc<Entry<V>>, ByWeight, DefaultHashBuilder, CountEvictions>;

pub(super) struct QuickStore<V> {
    cache: Store<V>,
    /// Serialises "check `Superseded`, then store" against "remove" for the same key (see
    /// [`Tier::insert`](super::Tier::insert)). A std mutex: held for one map operation, never
    /// across an `.await`.
    stripes: Box<[Mutex<()>]>,
}

/// Weighs an entry as its key plus its encoded value, at least 1 (`quick_cache` never evicts an
/// entry of weight 0).
#[derive(Debug, Clone, Copy)]
struct ByWeight;

impl<V> Weighter<String, Arc<Entry<V>>> for ByWeight {
    fn weight(&self, key: &String, entry: &Arc<Entry<V>>) -> u64 {
        entry.weight(key)
    }
}

/// Counts entries evicted for size.
#[derive(Debug, Clone)]
struct CountEvictions(Arc<AtomicU64>);

impl<K, V> Lifecycle<K, V> for CountEvictions {
    /// Up to two evicted entries, dropped after the shard lock is released.
    type RequestState = [Option<(K, V)>; 2];

    fn on_evict(&self, state: &mut Self::RequestState, key: K, value: V) {
        self.0.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = state.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some((key, value));
        }
    }
}

impl<V: Send + Sync + 'static> QuickStore<V> {
    /// A store of `capacity_bytes` in which an entry of `max_entry_bytes` still fits: each
    /// shard holds an equal part of the capacity and never an entry heavier than its part.
    pub(super) fn new(
        capacity_bytes: u64,
        max_entry_bytes: u64,
        evictions: &Arc<AtomicU64>,
    ) -> Self {
        let mut shards = MAX_SHARDS;
        while shards > 1 && capacity_bytes / shards < max_entry_bytes {
            shards /= 2;
        }
        let options = OptionsBuilder::new()
            .shards(shards as usize)
            .weight_capacity(capacity_bytes)
            // Only a hint for the first allocation; the tables grow as needed.
            .estimated_items_capacity((capacity_bytes / 4096).clamp(32 * shards, 1 << 16) as usize)
            .build()
            .expect("every quick_cache option is set");
        let cache = Cache::with_options(
            options,
            ByWeight,
            DefaultHashBuilder::default(),
            CountEvictions(Arc::clone(evictions)),
        );
        QuickStore {
            cache,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The heaviest entry a shard accepts.
    pub(super) fn max_entry(&self) -> u64 {
        self.cache.shard_capacity()
    }

    fn stripe(&self, key: &str) -> MutexGuard<'_, ()> {
        let i = xxhash_rust::xxh3::xxh3_64(key.as_bytes()) as usize & (STRIPES - 1);
        // Guards no data: a poisoned stripe is as good as a clean one.
        self.stripes[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[inline]
    pub(super) fn get(&self, key: &str) -> Option<Arc<Entry<V>>> {
        self.cache.get(key)
    }

    /// Stores `entry` unless `superseded` is set, the check and the store under the key's
    /// stripe (the one [`QuickStore::remove`] takes).
    pub(super) fn insert(&self, key: &str, entry: &Arc<Entry<V>>, superseded: &Superseded) {
        let _stripe = self.stripe(key);
        if !superseded.is_set() {
            self.cache.insert(key.to_owned(), Arc::clone(entry));
        }
    }

    pub(super) fn remove_if_same(&self, key: &str, entry: &Arc<Entry<V>>) -> bool {
        self.cache
            .remove_if(key, |current| Arc::ptr_eq(current, entry))
            .is_some()
    }

    pub(super) fn remove(&self, key: &str) {
        let _stripe = self.stripe(key);
        self.cache.remove(key);
    }

    pub(super) fn retain(&self, keep: impl Fn(&str) -> bool) -> usize {
        let dropped = AtomicU64::new(0);
        self.cache.retain(|key, _| {
            let kept = keep(key);
            if !kept {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
            kept
        });
        dropped.into_inner() as usize
    }

    /// Every entry whose key `pick` accepts, left in place.
    pub(super) fn entries_where(
        &self,
        pick: impl Fn(&str) -> bool,
    ) -> Vec<(String, Arc<Entry<V>>)> {
        let picked = Mutex::new(Vec::new());
        self.cache.retain(|key, entry| {
            if pick(key) {
                picked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((key.clone(), Arc::clone(entry)));
            }
            true
        });
        picked
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `(entries, weighted bytes)`.
    /// What the entries weigh together.
    pub(super) fn weight(&self) -> u64 {
        self.cache.weight()
    }

    pub(super) fn size(&self) -> (u64, u64) {
        (self.cache.len() as u64, self.cache.weight())
    }
}
