//! Counters: what this peer did, as relaxed atomics (no locks on the hot path).

mod striped;

use self::striped::StripedCounter;

/// One live counter: relaxed atomics striped across threads (so that the cores bumping it on
/// every `get` do not fight over one cache line), and its exported twin when metrics are on.
#[derive(Debug, Default)]
pub(crate) struct Counter {
    value: StripedCounter,
    #[cfg(feature = "metrics")]
    exported: Option<metrics::Counter>,
}

impl Counter {
    #[inline]
    pub(crate) fn increment(&self) {
        self.value.bump();
        #[cfg(feature = "metrics")]
        if let Some(exported) = &self.exported {
            exported.increment(1);
        }
    }

    fn read(&self) -> u64 {
        self.value.read()
    }
}

/// Declares the live counters once: the struct, its snapshot, and (feature `metrics`) the
/// name each is exported under.
macro_rules! counters {
    ($($field:ident => $metric:literal,)*) => {
        /// The live counters, one set per [`Groupcache`](crate::Groupcache).
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub(crate) $field: Counter,)*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> Stats {
                Stats {
                    $($field: self.$field.read(),)*
                    main_cache: TierStats::default(),
                    hot_cache: TierStats::default(),
                }
            }

            /// Counters that are also exported through the `metrics` facade, as
            /// `<prefix>_<name>`.
            #[cfg(feature = "metrics")]
            pub(crate) fn exported(prefix: &str, labels: &[metrics::Label]) -> Self {
                Counters {
                    $($field: Counter {
                        value: StripedCounter::default(),
                        exported: Some(metrics::counter!(
                            format!("{prefix}_{}", $metric),
                            labels.to_vec()
                        )),
                    },)*
                }
            }
        }
    };
}

counters! {
    gets => "gets_total",
    hot_hits => "hot_hits_total",
    main_hits => "main_hits_total",
    loads => "loads_total",
    loads_deduped => "loads_deduped_total",
    local_loads => "local_loads_total",
    local_load_errors => "local_load_errors_total",
    peer_loads => "peer_loads_total",
    peer_errors => "peer_errors_total",
    fallback_loads => "fallback_loads_total",
    auth_failures => "auth_failures_total",
    server_requests => "server_requests_total",
    removes => "removes_total",
    rejected_keys => "rejected_keys_total",
    unauthenticated_requests => "unauthenticated_requests_total",
    timed_out_requests => "timed_out_requests_total",
}

impl Counters {
    #[inline]
    pub(crate) fn bump(counter: &Counter) {
        counter.increment();
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
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
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
    /// Requests from other peers that did not arrive in full and get their answer within this
    /// peer's [`peer_timeout`](crate::GroupcacheBuilder::peer_timeout): answered with
    /// `DeadlineExceeded` (or ended by the asker's own deadline, which it sends along) and
    /// their streams closed. A slow loader raises it together with the askers' `peer_errors`;
    /// rising alone, it means clients that open requests and never finish sending them.
    pub timed_out_requests: u64,
    /// The main cache: values this peer owns.
    pub main_cache: TierStats,
    /// The hot cache: copies of values owned by other peers.
    pub hot_cache: TierStats,
}

/// Size of one cache tier. Approximate: eviction runs in batches.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
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
