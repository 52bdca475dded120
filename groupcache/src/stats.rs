//! Counters: what this peer did, as relaxed atomics (no locks on the hot path).

mod striped;

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use self::striped::StripedCounter;

/// The live counters, one set per [`Groupcache`](crate::Groupcache).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Bumped on every `get`, hits included: striped so cores do not contend on it.
    pub(crate) gets: StripedCounter,
    pub(crate) hot_hits: StripedCounter,
    pub(crate) main_hits: StripedCounter,
    pub(crate) loads: AtomicU64,
    pub(crate) loads_deduped: AtomicU64,
    pub(crate) local_loads: AtomicU64,
    pub(crate) local_load_errors: AtomicU64,
    pub(crate) peer_loads: AtomicU64,
    pub(crate) peer_errors: AtomicU64,
    pub(crate) fallback_loads: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) server_requests: AtomicU64,
    pub(crate) removes: AtomicU64,
    pub(crate) rejected_keys: AtomicU64,
    pub(crate) unauthenticated_requests: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            gets: self.gets.read(),
            hot_hits: self.hot_hits.read(),
            main_hits: self.main_hits.read(),
            loads: read(&self.loads),
            loads_deduped: read(&self.loads_deduped),
            local_loads: read(&self.local_loads),
            local_load_errors: read(&self.local_load_errors),
            peer_loads: read(&self.peer_loads),
            peer_errors: read(&self.peer_errors),
            fallback_loads: read(&self.fallback_loads),
            auth_failures: read(&self.auth_failures),
            server_requests: read(&self.server_requests),
            removes: read(&self.removes),
            rejected_keys: read(&self.rejected_keys),
            unauthenticated_requests: read(&self.unauthenticated_requests),
            main_cache: TierStats::default(),
            hot_cache: TierStats::default(),
        }
    }
}

/// A snapshot of one peer's counters, from [`Groupcache::stats`](crate::Groupcache::stats).
///
/// Counters only grow (from zero when the handle was built); compare two snapshots to get
/// rates. `gets`, `loads`, `loads_deduped`, `local_loads`, `local_load_errors`, `peer_loads`,
/// `peer_errors` and `server_requests` mean what they mean in Go groupcache's `Stats`, with
/// one difference: `gets` here counts only this peer's own callers, not requests from other
/// peers (those are `server_requests`). Go's `CacheHits` is `hot_hits + main_hits`.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls to `get` on this peer, including those refused for their key (see
    /// `rejected_keys`); requests from other peers are `server_requests`.
    pub gets: u64,
    /// `get`s answered from the hot cache.
    pub hot_hits: u64,
    /// `get`s answered from the main cache.
    pub main_hits: u64,
    /// `get`s that missed both caches: `gets - hot_hits - main_hits - rejected_keys`.
    pub loads: u64,
    /// `loads` after deduplication: the misses that started a fetch or load of their own. The
    /// other `loads - loads_deduped` joined one already running.
    pub loads_deduped: u64,
    /// Successful calls to the [`ValueLoader`](crate::ValueLoader) on this peer, as owner (for
    /// its own callers and for other peers) or as a fallback.
    pub local_loads: u64,
    /// Loader calls that returned an error or panicked.
    pub local_load_errors: u64,
    /// Values fetched from their owners (successful `Get` RPCs).
    pub peer_loads: u64,
    /// Peer RPCs that failed in transport (connection refused or reset, no answer within the
    /// peer timeout, `Unavailable`) and led to a local load. Refusals that mean
    /// misconfiguration are returned to the caller instead; only `Unauthenticated` ones are
    /// counted, in `auth_failures`.
    pub peer_errors: u64,
    /// Fetches that fell back to a local load because the owner could not be reached. The
    /// local load may be shared with other callers (or find the value cached), so this can
    /// exceed the loader calls it caused.
    pub fallback_loads: u64,
    /// Peer RPCs this peer sent that the owner refused with `Unauthenticated` (a configuration
    /// error; never bypassed by a local load).
    pub auth_failures: u64,
    /// `Get` and `Remove` requests received from other peers.
    pub server_requests: u64,
    /// Calls to `remove` on this peer.
    pub removes: u64,
    /// Keys refused before any work because they exceed the maximum key length.
    pub rejected_keys: u64,
    /// Requests from other peers that this peer's service refused before any work, for a
    /// missing or unaccepted peer token ([`PeerToken`](crate::PeerToken)). Anything but zero
    /// means a misconfigured peer or someone probing the port.
    pub unauthenticated_requests: u64,
    /// The main cache: values this peer owns.
    pub main_cache: TierStats,
    /// The hot cache: copies of values owned by other peers.
    pub hot_cache: TierStats,
}

/// Size of one cache tier. Approximate: eviction runs in batches.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Entries held.
    pub entries: u64,
    /// Sum of entry weights (encoded value bytes plus key bytes).
    pub weighted_bytes: u64,
    /// Entries evicted to stay within the capacity so far.
    pub evictions: u64,
    /// Entries dropped because their time-to-live had passed so far.
    pub expirations: u64,
}
