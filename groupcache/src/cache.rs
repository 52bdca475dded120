//! How a group caches: its two tiers, main (values this peer owns) and hot (copies of other
//! peers' values), the [`CacheBackend`] that holds them, and the [`HotCachePolicy`] that
//! decides which fetched values become hot copies.
//!
//! Each tier is held by the chosen [`CacheBackend`] (`quick_cache` by default, or moka), bounded
//! by weight in bytes: an entry weighs its encoded value plus its key. An entry is shared as an
//! `Arc`, so a hit costs a reference-count bump plus a clone of `V` (make `V` an `Arc` or
//! `Bytes` if it is large).
//!
//! Expiry is kept here, not in the backend: moka reads `std::time::Instant`, which paused
//! tokio time in tests cannot move, and `quick_cache` has none. Each entry carries its deadline
//! as a `tokio::time::Instant`, checked on read; the backend's own bound is size only.

mod backend;
mod moka_store;
mod quick_store;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

pub use self::backend::CacheBackend;
use self::moka_store::MokaStore;
use self::quick_store::QuickStore;
use crate::flight::Superseded;
use crate::peer::lease::{LeaseTag, Standing};
pub use crate::promotion::{FetchedValue, HotCachePolicy, PromoteOneIn};
use crate::stats::TierStats;

/// The longest time to live kept (longer ones, from a loader, a setting or a peer's reply, are
/// cut to it): a day, far from where adding it to an instant could overflow.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// [`MAX_TTL`] in milliseconds, as replies carry it.
pub(crate) const MAX_TTL_MS: u64 = 24 * 60 * 60 * 1000;

/// The deadline of an entry stored now with time to live `ttl` (at most [`MAX_TTL`]).
fn deadline(ttl: Option<Duration>) -> Option<Instant> {
    ttl.map(|ttl| Instant::now() + ttl.min(MAX_TTL))
}

/// One cached value: decoded for local callers, encoded for peers.
#[derive(Debug)]
pub(crate) struct Entry<V> {
    pub(crate) value: V,
    /// The encoded value, as peers receive it. Empty in an entry the hot tier keeps: a hot
    /// copy never answers a peer (rule 6), so it keeps the decoded value only.
    pub(crate) encoded: Bytes,
    /// The encoded value's length: with the key's, what the entry weighs in a tier.
    encoded_len: usize,
    expires_at: Option<Instant>,
    /// A hot copy of a value fetched from its owner: served only under this lease.
    lease: Option<LeaseTag>,
}

impl<V> Entry<V> {
    pub(crate) fn new(value: V, encoded: Bytes, ttl: Option<Duration>) -> Arc<Self> {
        Arc::new(Entry {
            value,
            encoded_len: encoded.len(),
            encoded,
            expires_at: deadline(ttl),
            lease: None,
        })
    }

    /// What this entry has left to live, if it expires: what a reply to a peer says, so that
    /// a copy never outlives it.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.expires_at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// What this entry weighs under `key`: key plus encoded value, in bytes, at least 1
    /// (`quick_cache` never evicts an entry of weight 0).
    pub(crate) fn weight(&self, key: &str) -> u64 {
        (key.len() + self.encoded_len).max(1) as u64
    }

    /// Whether the entry has a deadline at all.
    pub(crate) fn expires(&self) -> bool {
        self.expires_at.is_some()
    }

    fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= Instant::now())
    }
}

/// The backend holding a tier's entries.
enum Store<V> {
    Quick(QuickStore<V>),
    Moka(MokaStore<V>),
}

/// A size-bounded tier. A tier of capacity zero stores nothing.
pub(crate) struct Tier<V> {
    store: Option<Store<V>>,
    /// Set before the first entry goes into `store`, never cleared: until then [`Tier::get`]
    /// answers a miss without probing the backend. A main hit probes the hot tier first, and
    /// on a peer that keeps no hot copies (or none yet) that probe is all cost.
    ///
    /// Relaxed is enough. An insert that happens before a get (same thread, or ordered by
    /// whatever told the getter the value is there: a flight's answer, a lock, a join) stores
    /// the flag before it inserts, so by coherence the get's load sees `true` and it probes the
    /// backend, whose own locks make the entry visible. A get concurrent with the first insert
    /// may miss it, as it may miss it in the backend.
    stored: AtomicBool,
    capacity: u64,
    /// The heaviest entry stored; a heavier one is returned to its callers but not kept.
    max_entry: u64,
    ttl: Option<Duration>,
    /// Entries dropped for size, counted by the backend's eviction hook.
    evictions: Arc<AtomicU64>,
    /// Entries found expired on read (expiry is ours, not the backend's).
    expirations: AtomicU64,
    /// Hot copies not served because their owner's lease had run out or been revoked.
    lapsed: AtomicU64,
    /// What stored entries keep of their encoded bytes.
    encoded: KeepEncoded,
}

/// What a tier keeps of an entry's encoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeepEncoded {
    /// A copy of exactly their length: the main tier, which answers peers.
    Copy,
    /// The bytes as they are: a main tier whose codec says they may be kept so
    /// ([`Codec::keep_encoded_as_is`](crate::codec::Codec::keep_encoded_as_is)).
    AsIs,
    /// Nothing, only the decoded value: the hot tier.
    Nothing,
}

impl<V: Send + Sync + 'static> Tier<V> {
    /// A tier on the default backend in which an entry as heavy as the whole tier fits.
    #[cfg(test)]
    pub(crate) fn new(name: &str, capacity_bytes: u64, ttl: Option<Duration>) -> Self {
        Self::with_backend(
            CacheBackend::default(),
            name,
            capacity_bytes,
            capacity_bytes,
            ttl,
        )
    }

    /// A tier on `backend`, sized so that an entry of `max_entry_bytes` (key plus encoded
    /// value) still fits when the capacity allows it.
    pub(crate) fn with_backend(
        backend: CacheBackend,
        name: &str,
        capacity_bytes: u64,
        max_entry_bytes: u64,
        ttl: Option<Duration>,
    ) -> Self {
        let evictions = Arc::new(AtomicU64::new(0));
        let store = (capacity_bytes > 0).then(|| match backend {
            CacheBackend::QuickCache => Store::Quick(QuickStore::new(
                capacity_bytes,
                max_entry_bytes.min(capacity_bytes),
                &evictions,
            )),
            CacheBackend::Moka => Store::Moka(MokaStore::new(name, capacity_bytes, &evictions)),
        });
        let max_entry = match &store {
            Some(Store::Quick(quick)) => quick.max_entry(),
            _ => capacity_bytes,
        };
        Tier {
            store,
            stored: AtomicBool::new(false),
            capacity: capacity_bytes,
            max_entry,
            ttl,
            evictions,
            expirations: AtomicU64::new(0),
            lapsed: AtomicU64::new(0),
            encoded: KeepEncoded::Copy,
        }
    }

    /// This tier, keeping only the decoded value of each entry: for the hot tier, whose
    /// entries never answer peers. The entry [`Tier::insert`] returns is the one stored, so
    /// its `encoded` is empty (when it was stored).
    pub(crate) fn keeping_decoded_only(self) -> Self {
        Tier {
            encoded: KeepEncoded::Nothing,
            ..self
        }
    }

    /// This tier, keeping encoded bytes as they are instead of a copy: for the main tier of a
    /// group whose codec returns bytes that share the value's buffer (which the entry keeps
    /// alive anyway), such as [`Raw`](crate::codec::Raw) for `Bytes`.
    pub(crate) fn keeping_encoded_as_is(self) -> Self {
        Tier {
            encoded: KeepEncoded::AsIs,
            ..self
        }
    }

    /// The live entry for `key`, if any. An expired entry is dropped and reported as a miss;
    /// so is a hot copy whose lease was revoked. A hot copy whose lease ran out is reported as
    /// a miss and left in place (a renewed lease serves it again, unless a fetch replaced it).
    /// The clock is read only for an entry that expires or has a lease.
    #[inline]
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Entry<V>>> {
        if !self.stored.load(Ordering::Relaxed) {
            return None;
        }
        let entry = match self.store.as_ref()? {
            Store::Quick(store) => store.get(key),
            Store::Moka(store) => store.get(key),
        }?;
        if entry.expires_at.is_none() && entry.lease.is_none() {
            return Some(entry);
        }
        let now = Instant::now();
        if entry.expires_at.is_some_and(|at| at <= now) {
            // Conditional: a fresh value stored since our read must survive.
            if self.remove_if_same(key, &entry) {
                self.expirations.fetch_add(1, Ordering::Relaxed);
            }
            return None;
        }
        match entry.lease.as_ref().map(|lease| lease.standing(now)) {
            None | Some(Standing::Valid) => Some(entry),
            Some(Standing::Lapsed) => {
                self.lapsed.fetch_add(1, Ordering::Relaxed);
                None
            }
            Some(Standing::Revoked) => {
                self.lapsed.fetch_add(1, Ordering::Relaxed);
                self.remove_if_same(key, &entry);
                None
            }
        }
    }

    /// Stores a value under this tier's time-to-live, unless `superseded` is set: the flight
    /// that read the value learned that the key was removed meanwhile.
    ///
    /// The check and the store happen under a per-key lock that [`Tier::remove`] also takes
    /// (moka's own; striped locks beside `quick_cache`). `remove(key)` sets the flag before
    /// removing, so either this store comes first and the removal deletes it, or it comes
    /// after and sees the flag: a value read before a removal is never visible after the
    /// removal returned.
    ///
    /// The backend may still decline to keep the value or evict it soon (a cold key when the
    /// tier is full), and a value heavier than the tier (or than a `quick_cache` shard, sized
    /// for the maximum value size) is not stored at all.
    ///
    /// What the tier keeps owns exactly its bytes (rule 19): `encoded` may be a slice of a
    /// larger buffer (a network frame, a `Vec` with spare capacity), and keeping the slice
    /// would keep that whole buffer alive. The main tier keeps a copy of exactly the encoded
    /// length; the hot tier keeps no encoded bytes at all. A copy costs one `memcpy` per store
    /// (once per load or promotion, never per hit).
    pub(crate) fn insert(
        &self,
        key: &str,
        value: V,
        encoded: Bytes,
        superseded: &Superseded,
    ) -> Arc<Entry<V>> {
        self.insert_for(key, value, encoded, superseded, self.ttl, None)
    }

    /// [`Tier::insert`], living at most `max_ttl` (and at most the tier's time-to-live).
    pub(crate) fn insert_within(
        &self,
        key: &str,
        value: V,
        encoded: Bytes,
        superseded: &Superseded,
        max_ttl: Option<Duration>,
    ) -> Arc<Entry<V>> {
        self.insert_for(
            key,
            value,
            encoded,
            superseded,
            self.ttl_within(max_ttl),
            None,
        )
    }

    /// [`Tier::insert`] of a hot copy fetched from its owner: served only under `lease`, and
    /// living at most `max_ttl` (what the owner's entry had left) and the tier's time-to-live.
    pub(crate) fn insert_copy(
        &self,
        key: &str,
        value: V,
        encoded: Bytes,
        superseded: &Superseded,
        max_ttl: Option<Duration>,
        lease: LeaseTag,
    ) -> Arc<Entry<V>> {
        let ttl = self.ttl_within(max_ttl);
        self.insert_for(key, value, encoded, superseded, ttl, Some(lease))
    }

    /// [`Tier::insert`] with exactly this time-to-live (`None`: none), whatever the tier's.
    pub(crate) fn insert_with_ttl(
        &self,
        key: &str,
        value: V,
        encoded: Bytes,
        superseded: &Superseded,
        ttl: Option<Duration>,
    ) -> Arc<Entry<V>> {
        self.insert_for(key, value, encoded, superseded, ttl, None)
    }

    fn ttl_within(&self, max_ttl: Option<Duration>) -> Option<Duration> {
        match (self.ttl, max_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The time-to-live of this tier's entries, if they expire.
    pub(crate) fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    fn insert_for(
        &self,
        key: &str,
        value: V,
        encoded: Bytes,
        superseded: &Superseded,
        ttl: Option<Duration>,
        lease: Option<LeaseTag>,
    ) -> Arc<Entry<V>> {
        let kept = match &self.store {
            Some(store) if (key.len() + encoded.len()) as u64 <= self.max_entry => store,
            _ => return Entry::new(value, encoded, ttl),
        };
        let encoded_len = encoded.len();
        let encoded = match self.encoded {
            KeepEncoded::Copy => Bytes::copy_from_slice(&encoded),
            KeepEncoded::AsIs => encoded,
            KeepEncoded::Nothing => Bytes::new(),
        };
        let entry = Arc::new(Entry {
            value,
            encoded,
            encoded_len,
            expires_at: deadline(ttl),
            lease,
        });
        // Read first: a store on every insert would take the line `get` reads from every core.
        if !self.stored.load(Ordering::Relaxed) {
            self.stored.store(true, Ordering::Relaxed);
        }
        match kept {
            Store::Quick(store) => store.insert(key, &entry, superseded),
            Store::Moka(store) => store.insert(key, &entry, superseded),
        }
        entry
    }

    /// Removes `key` only if it still maps to `entry` (not a newer value stored since).
    /// Returns whether it was removed.
    pub(crate) fn remove_if_same(&self, key: &str, entry: &Arc<Entry<V>>) -> bool {
        match &self.store {
            Some(Store::Quick(store)) => store.remove_if_same(key, entry),
            Some(Store::Moka(store)) => store.remove_if_same(key, entry),
            None => false,
        }
    }

    /// Drops every entry; returns how many.
    pub(crate) fn clear(&self) -> usize {
        self.retain(|_| false)
    }

    /// Removes `key`, under the per-key lock (see [`Tier::insert`]).
    pub(crate) fn remove(&self, key: &str) {
        match &self.store {
            Some(Store::Quick(store)) => store.remove(key),
            Some(Store::Moka(store)) => store.remove(key),
            None => {}
        }
    }

    /// Drops every entry whose key `keep` rejects; returns how many were dropped. A full scan:
    /// meant for rare events such as a membership change.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) -> usize {
        match &self.store {
            Some(Store::Quick(store)) => store.retain(keep),
            Some(Store::Moka(store)) => store.retain(keep),
            None => 0,
        }
    }

    /// Every live entry whose key `pick` accepts, left in place. A full scan, like
    /// [`Tier::retain`].
    pub(crate) fn entries_where(
        &self,
        pick: impl Fn(&str) -> bool,
    ) -> Vec<(String, Arc<Entry<V>>)> {
        let mut picked = match &self.store {
            Some(Store::Quick(store)) => store.entries_where(pick),
            Some(Store::Moka(store)) => store.entries_where(pick),
            None => Vec::new(),
        };
        picked.retain(|(_, entry)| !entry.is_expired());
        picked
    }

    /// Whether an entry of `weight` bytes fits in this tier beside what it holds, so that
    /// storing it evicts nothing. Approximate while other threads insert; never probes more
    /// than the backend's shard totals (no pending maintenance is run).
    pub(crate) fn has_room_for(&self, weight: u64) -> bool {
        let held = match &self.store {
            Some(Store::Quick(store)) => store.weight(),
            Some(Store::Moka(store)) => store.weight(),
            None => return false,
        };
        weight <= self.max_entry && held.saturating_add(weight) <= self.capacity
    }

    pub(crate) fn stats(&self) -> TierStats {
        let (entries, weighted_bytes) = match &self.store {
            Some(Store::Quick(store)) => store.size(),
            Some(Store::Moka(store)) => store.size(),
            None => return TierStats::default(),
        };
        TierStats {
            entries,
            weighted_bytes,
            evictions: self.evictions.load(Ordering::Relaxed),
            expirations: self.expirations.load(Ordering::Relaxed),
            lapsed: self.lapsed.load(Ordering::Relaxed),
        }
    }
}

impl<V> std::fmt::Debug for Tier<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let backend = match &self.store {
            Some(Store::Quick(_)) => Some(CacheBackend::QuickCache),
            Some(Store::Moka(_)) => Some(CacheBackend::Moka),
            None => None,
        };
        f.debug_struct("Tier")
            .field("backend", &backend)
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
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

    // Regression test for issue 10, item 2: a kept slice of a network frame kept the frame.
    #[test]
    fn what_a_tier_keeps_never_shares_the_buffer_it_came_in() {
        let frame = Bytes::from(vec![7u8; 8192]);
        let slice = frame.slice(100..200);
        let main = Tier::new("main", 1 << 20, None);
        main.insert("k", 1u8, slice.clone(), &Superseded::default());
        let kept = main.get("k").unwrap();
        assert_eq!(
            kept.encoded, slice,
            "the main tier keeps the bytes peers are sent"
        );
        assert_ne!(
            kept.encoded.as_ptr(),
            slice.as_ptr(),
            "a copy, not the slice"
        );

        let hot = Tier::new("hot", 1 << 20, None).keeping_decoded_only();
        hot.insert("k", 1u8, slice.clone(), &Superseded::default());
        let kept = hot.get("k").unwrap();
        assert!(
            kept.encoded.is_empty(),
            "a hot copy keeps the decoded value only"
        );
        assert_eq!(
            kept.weight("k"),
            101,
            "and still weighs key plus encoded value"
        );
        assert_eq!(hot.stats().weighted_bytes, 101);
    }

    // A raw-bytes group (codec::Raw): value and encoded bytes are one buffer, kept once.
    #[test]
    fn a_main_tier_keeping_bytes_as_is_shares_the_values_buffer() {
        let value = Bytes::from(vec![3u8; 1000]);
        let main = Tier::new("main", 1 << 20, None).keeping_encoded_as_is();
        main.insert("k", value.clone(), value.clone(), &Superseded::default());
        let kept = main.get("k").unwrap();
        assert_eq!(kept.value.as_ptr(), value.as_ptr(), "no copy of the value");
        assert_eq!(
            kept.encoded.as_ptr(),
            value.as_ptr(),
            "nor of the bytes peers get"
        );
        assert_eq!(kept.weight("k"), 1001);
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
    fn a_tier_that_never_stored_misses_and_the_first_insert_is_seen_by_other_threads() {
        for backend in BACKENDS {
            let tier = Tier::with_backend(backend, "t", 1 << 20, 1 << 20, None);
            assert!(tier.get("k").is_none(), "{backend:?}");
            // Inserted on one thread, read on another after the join (a happens-before edge).
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    tier.insert("k", 1u8, Bytes::from_static(b"1"), &Superseded::default())
                });
            });
            let seen = std::thread::scope(|scope| scope.spawn(|| tier.get("k").is_some()).join());
            assert!(seen.unwrap(), "{backend:?}: the first insert was not seen");
            // Emptied again, the tier still probes: a later insert is found.
            tier.clear();
            tier.insert("j", 2u8, Bytes::from_static(b"2"), &Superseded::default());
            assert_eq!(tier.get("j").unwrap().value, 2, "{backend:?}");
        }
    }

    #[test]
    fn a_zero_capacity_tier_stores_nothing() {
        let tier = Tier::new("t", 0, None);
        tier.insert("k", 1u8, Bytes::from_static(b"1"), &Superseded::default());
        assert!(tier.get("k").is_none());
        assert_eq!(tier.stats(), TierStats::default());
    }

    const BACKENDS: [CacheBackend; 2] = [CacheBackend::QuickCache, CacheBackend::Moka];

    #[test]
    fn every_backend_keeps_the_tier_contract() {
        for backend in BACKENDS {
            let tier = Tier::with_backend(backend, "t", 1 << 20, 1 << 20, None);
            let superseded = Superseded::default();
            superseded.set();
            tier.insert("late", 1u8, Bytes::from_static(b"1"), &superseded);
            assert!(
                tier.get("late").is_none(),
                "{backend:?}: superseded value stored"
            );

            let fresh = Superseded::default();
            let old = tier.insert("k", 1u8, Bytes::from_static(b"1"), &fresh);
            let new = tier.insert("k", 2u8, Bytes::from_static(b"2"), &fresh);
            assert!(
                !tier.remove_if_same("k", &old),
                "{backend:?}: removed a newer value"
            );
            assert_eq!(tier.get("k").unwrap().value, 2, "{backend:?}");
            assert!(tier.remove_if_same("k", &new), "{backend:?}");

            for i in 0..4 {
                tier.insert(&format!("r{i}"), i, Bytes::from_static(b"v"), &fresh);
            }
            assert_eq!(tier.retain(|key| key != "r2"), 1, "{backend:?}");
            tier.remove("r0");
            let left: Vec<bool> = (0..4)
                .map(|i| tier.get(&format!("r{i}")).is_some())
                .collect();
            assert_eq!(left, [false, true, false, true], "{backend:?}");
            assert_eq!(tier.stats().entries, 2, "{backend:?}");
        }
    }

    #[test]
    fn every_backend_counts_evictions_and_stays_within_capacity() {
        for backend in BACKENDS {
            let tier = Tier::with_backend(backend, "t", 10_000, 1_000, None);
            for i in 0..100u32 {
                let key = format!("key-{i:03}");
                tier.insert(&key, i, Bytes::from(vec![0u8; 993]), &Superseded::default());
            }
            let stats = tier.stats();
            assert!(stats.weighted_bytes <= 10_000, "{backend:?}: {stats:?}");
            assert!(stats.evictions >= 90, "{backend:?}: {stats:?}");
        }
    }

    #[test]
    fn a_value_of_the_maximum_size_is_kept_in_a_sharded_tier() {
        let max_value = 8 << 20;
        for backend in BACKENDS {
            let tier = Tier::with_backend(backend, "t", 64 << 20, max_value + 1024, None);
            let value = Bytes::from(vec![0u8; max_value as usize]);
            tier.insert("big", 0u8, value, &Superseded::default());
            assert!(
                tier.get("big").is_some(),
                "{backend:?}: an 8 MiB value was dropped"
            );
        }
    }
}
