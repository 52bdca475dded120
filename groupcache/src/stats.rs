//! Counters: what a peer did, as relaxed atomics (no locks on the hot path), declared once.
//!
//! [`Stats`] (one group) and [`PeerSetStats`] (the peer set's service, and every group) are
//! snapshots. The two lists below are the only place a counter is named: the live counters,
//! the snapshots, the exported metric names and the wire form of `Describe` all come from
//! them, and a test checks them against the proto.

mod striped;

use groupcache_pb::v2 as pb;

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
    pub(crate) fn bump(&self) {
        self.value.bump();
        #[cfg(feature = "metrics")]
        if let Some(exported) = &self.exported {
            exported.increment(1);
        }
    }

    /// Counts one in the exported twin only (a no-op without metrics): for `gets` on a hit,
    /// whose live count is derived (see [`Counters::hot_hit`]).
    #[inline]
    pub(crate) fn bump_exported_only(&self) {
        #[cfg(feature = "metrics")]
        if let Some(exported) = &self.exported {
            exported.increment(1);
        }
    }

    pub(crate) fn add(&self, n: u64) {
        self.value.add(n);
        #[cfg(feature = "metrics")]
        if let Some(exported) = &self.exported {
            exported.increment(n);
        }
    }

    fn read(&self) -> u64 {
        self.value.read()
    }

    #[cfg(feature = "metrics")]
    fn exported(name: String, labels: &[metrics::Label]) -> Self {
        Counter {
            value: StripedCounter::default(),
            exported: Some(metrics::counter!(name, labels.to_vec())),
        }
    }
}

/// Declares a set of counters once: the live struct, its public snapshot (with the docs
/// given here), the exported metric names (feature `metrics`) and the proto conversions.
macro_rules! counters {
    (
        $(#[$live_doc:meta])* live $live:ident;
        $(#[$snap_doc:meta])* snapshot $snapshot:ident { $($(#[$extra_doc:meta])* $extra:ident: $extra_ty:ty,)* }
        proto $proto:ident;
        $($(#[$doc:meta])* $field:ident => $metric:literal,)*
    ) => {
        $(#[$live_doc])*
        #[derive(Debug, Default)]
        pub(crate) struct $live {
            $(pub(crate) $field: Counter,)*
        }

        impl $live {
            /// Every counter's snapshot field name, in declaration order.
            #[cfg(test)]
            pub(crate) const NAMES: &'static [&'static str] = &[$(stringify!($field),)*];

            /// Counters that are also exported through the `metrics` facade, as
            /// `<prefix>_<name>`, with `labels`.
            #[cfg(feature = "metrics")]
            pub(crate) fn exported(prefix: &str, labels: &[metrics::Label]) -> Self {
                $live {
                    $($field: Counter::exported(format!("{prefix}_{}", $metric), labels),)*
                }
            }

            fn read_into(&self, snapshot: &mut $snapshot) {
                $(snapshot.$field = self.$field.read();)*
            }
        }

        $(#[$snap_doc])*
        #[non_exhaustive]
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
        pub struct $snapshot {
            $($(#[$doc])* pub $field: u64,)*
            $($(#[$extra_doc])* pub $extra: $extra_ty,)*
        }

        impl $snapshot {
            /// The counters into their wire form; the caller adds the rest.
            fn counters_to_proto(&self, proto: &mut pb::$proto) {
                $(proto.$field = self.$field;)*
            }

            /// The counters from their wire form; the caller adds the rest.
            fn counters_from_proto(&mut self, proto: &pb::$proto) {
                $(self.$field = proto.$field;)*
            }
        }
    };
}

counters! {
    /// The live counters of one group.
    live Counters;
    /// A snapshot of one group's counters and cache sizes on one peer, from
    /// [`Group::stats`](crate::Group::stats).
    ///
    /// Counters only grow (from zero when the group was built); compare two snapshots to get
    /// rates. `gets`, `loads`, `loads_deduped`, `local_loads`, `local_load_errors`,
    /// `peer_loads`, `peer_errors` and `server_requests` mean what they mean in Go groupcache's
    /// `Stats`, with one difference: `gets` here counts only this peer's own callers, not
    /// requests from other peers (those are `server_requests`). Go's `CacheHits` is
    /// `hot_hits + main_hits`.
    snapshot Stats {
        /// The main cache: values this peer owns.
        main_cache: TierStats,
        /// The hot cache: copies of values owned by other peers.
        hot_cache: TierStats,
    }
    proto GroupStats;
    /// Calls to `get` on this peer, including those refused for their key (see
    /// `rejected_keys`); requests from other peers are `server_requests`.
    gets => "gets_total",
    /// `get`s answered from the hot cache.
    hot_hits => "hot_hits_total",
    /// `get`s answered from the main cache.
    main_hits => "main_hits_total",
    /// `get`s that missed both caches: `gets - hot_hits - main_hits` less the `get`s refused
    /// for their key.
    loads => "loads_total",
    /// `loads` after deduplication: the misses that started a fetch or load of their own. The
    /// other `loads - loads_deduped` joined one already running.
    loads_deduped => "loads_deduped_total",
    /// Successful calls to the [`ValueLoader`](crate::ValueLoader) on this peer, as owner (for
    /// its own callers and for other peers) or as a fallback.
    local_loads => "local_loads_total",
    /// Loader calls that returned an error or panicked.
    local_load_errors => "local_load_errors_total",
    /// Values fetched from their owners (successful `Get` RPCs).
    peer_loads => "peer_loads_total",
    /// Peer RPCs that failed in transport (connection refused or reset, no answer within the
    /// peer timeout, `Unavailable`): a `get` then asks the key's substitute, a `remove` returns
    /// the error.
    /// Refusals that mean misconfiguration are returned to the caller instead, counted in
    /// `auth_failures` and `peer_refusals`.
    peer_errors => "peer_errors_total",
    /// Fetches that fell back to a local load because neither the owner nor its substitute
    /// could be reached (or this peer is the substitute and the owner just failed). The local
    /// load may be shared with other callers (or find the value cached), so this can exceed
    /// the loader calls it caused.
    fallback_loads => "fallback_loads_total",
    /// Peer RPCs this peer sent that the owner refused with `Unauthenticated` (a configuration
    /// error; never bypassed by a local load).
    auth_failures => "auth_failures_total",
    /// `Get`, `GetMany` (one each, however many keys) and `Remove` requests for this group
    /// received from other peers. Not counted: a new owner's warm-handoff asks ("do you still
    /// hold it?"), which that owner counts as `handoff_hits` and `handoff_misses`.
    server_requests => "server_requests_total",
    /// Calls to `remove`, `remove_many` and `clear` on this peer.
    removes => "removes_total",
    /// Keys refused before any work because they exceed the maximum key length: by `get`,
    /// `remove`, and this peer's service for requests from other peers.
    rejected_keys => "rejected_keys_total",
    /// Peer RPCs whose answer means the peers are configured apart, returned to the caller and
    /// never hidden behind a local load: the owner does not host the group, no groupcache
    /// service answers there, the owner refused the request (its key limit is smaller), or the
    /// value did not encode or decode (the peers disagree on the codec or value type).
    /// Refused credentials are `auth_failures`. Anything but zero needs a look at the config.
    peer_refusals => "peer_refusals_total",
    /// Requests sent to the owner's substitute instead of the owner (a fetch may send two),
    /// because the owner's breaker was open on this peer or it refused this fetch: to the next
    /// peer after it on the ring that is not out, or to this peer, which then loads and keeps
    /// the value in its stead.
    rerouted_gets => "rerouted_gets_total",
    /// Requests from other peers that this peer answered as the substitute of an owner they
    /// found out, keeping the value (for at most the hot cache's time to live).
    substitute_serves => "substitute_serves_total",
    /// Loads skipped because the key's previous owner (before the last membership change) still
    /// held the value and handed it over.
    handoff_hits => "handoff_hits_total",
    /// Loads for which the previous owner was asked first, but did not hold the value or did not
    /// answer within the handoff deadline.
    handoff_misses => "handoff_misses_total",
    /// Fetches that also asked the key's substitute because the owner had not answered within
    /// the hedging percentile ([`hedge_at_percentile`](crate::GroupcacheBuilder::hedge_at_percentile)).
    hedged_gets => "hedged_gets_total",
    /// Hedged fetches that the substitute answered first.
    hedge_wins => "hedge_wins_total",
    /// Calls to `set` on this peer.
    sets => "sets_total",
    /// Loads skipped because the owner had cached the key's `NotFound`
    /// ([`GroupBuilder::not_found_ttl`](crate::GroupBuilder::not_found_ttl)).
    negative_hits => "negative_hits_total",
    /// `GetMany` requests this peer sent for [`Group::get_many`](crate::Group::get_many): one
    /// per owner and batch of at most [`MAX_BATCH_KEYS`](crate::defaults::MAX_BATCH_KEYS) keys.
    /// The owner counts each as one of its `server_requests`.
    peer_batches => "peer_batches_total",
    /// Answers this peer gave, as a key's owner, that marked the key hot (peers asked for it
    /// often lately: [`GroupBuilder::hot_key_threshold`](crate::GroupBuilder::hot_key_threshold)),
    /// so that the asker keeps a hot copy if its policy agrees.
    hot_marks => "hot_marks_total",
    /// Fetches from a key's owner that shared one `GetMany` request with other gets for that
    /// owner, because requests to it were in flight
    /// ([`coalesce_gets`](crate::GroupcacheBuilder::coalesce_gets)). The owner counts each
    /// shared request as one of its `server_requests`.
    coalesced_gets => "coalesced_gets_total",
}

counters! {
    /// The live counters of a peer set's service, shared by its groups.
    live PeerSetCounters;
    /// A snapshot of one peer's counters: its service's, and every group's, from
    /// [`Groupcache::stats`](crate::Groupcache::stats).
    snapshot PeerSetStats {
        /// Every group this peer hosts, by name.
        groups: std::collections::BTreeMap<String, Stats>,
    }
    proto PeerSetStats;
    /// Requests from other peers that this peer's service refused before any work, for a
    /// missing or unaccepted peer token ([`PeerToken`](crate::security::PeerToken)). Anything
    /// but zero means a misconfigured peer or someone probing the port.
    unauthenticated_requests => "unauthenticated_requests_total",
    /// Requests from other peers that did not arrive in full and get their answer within this
    /// peer's [`peer_timeout`](crate::GroupcacheBuilder::peer_timeout): answered with
    /// `DeadlineExceeded` (or ended by the asker's own deadline, which it sends along) and
    /// their streams closed. A slow loader raises it together with the askers' `peer_errors`;
    /// rising alone, it means clients that open requests and never finish sending them.
    timed_out_requests => "timed_out_requests_total",
    /// Requests from other peers for a group this peer does not host, answered `NotFound`
    /// (`groupcache-error: unknown-group`). Anything but zero means peers that disagree on
    /// which groups exist: a rolling deploy that adds a group, or a misconfiguration.
    unknown_group_requests => "unknown_group_requests_total",
    /// Times a peer's breaker opened on this peer: it failed
    /// [`peer_failure_threshold`](crate::GroupcacheBuilder::peer_failure_threshold) requests in
    /// a row, and its keys went to substitutes until a probe was answered.
    breaker_opened => "breaker_opened_total",
    /// Times an open breaker closed again: a probe was answered, the peer's keys went back.
    breaker_closed => "breaker_closed_total",
    /// Invalidations this peer sent as an owner after a write, counted once per member sent
    /// to (one batch carries many). Not counted: those not sent to a member that is out.
    invalidations_sent => "invalidations_sent_total",
    /// Invalidations sent that the member acknowledged; the others are what writes report as
    /// unacknowledged, and the member finds a gap when it next hears from this peer.
    invalidations_acknowledged => "invalidations_acknowledged_total",
    /// Invalidations received from owners (each drops this peer's copies of one key, or of a
    /// whole group).
    invalidations_received => "invalidations_received_total",
    /// Gaps found in an owner's invalidations: some never arrived (or the owner restarted),
    /// so every copy of that owner's values held here was dropped.
    invalidation_gaps => "invalidation_gaps_total",
    /// Leases on owners' values renewed by a `Lease` request (reads of hot copies in a
    /// lease's second half send one; answers to `Get`s renew it too, uncounted).
    lease_renewals => "lease_renewals_total",
}

// A hit bumps one live counter, not two: the live `gets` counts only the gets that did not
// hit (misses and rejected keys), and a snapshot adds the hits back, so `Stats::gets` (and the
// wire form of `Describe`, made from the snapshot) still counts every get. The exported
// `gets_total` is bumped on every get, hits included.
impl Counters {
    /// A get answered from the hot cache.
    #[inline]
    pub(crate) fn hot_hit(&self) {
        self.hot_hits.bump();
        self.gets.bump_exported_only();
    }

    /// A get answered from the main cache.
    #[inline]
    pub(crate) fn main_hit(&self) {
        self.main_hits.bump();
        self.gets.bump_exported_only();
    }

    /// A get that did not hit: refused for its key, or a miss.
    #[inline]
    pub(crate) fn get_not_hit(&self) {
        self.gets.bump();
    }

    /// A snapshot of the counters; the caller adds the cache sizes.
    pub(crate) fn snapshot(&self) -> Stats {
        let mut stats = Stats::default();
        self.read_into(&mut stats);
        stats.gets += stats.hot_hits + stats.main_hits;
        stats
    }
}

impl PeerSetCounters {
    /// A snapshot of the counters; the caller adds the groups.
    pub(crate) fn snapshot(&self) -> PeerSetStats {
        let mut stats = PeerSetStats::default();
        self.read_into(&mut stats);
        stats
    }
}

impl Stats {
    /// The wire form of group `name`'s stats, as `Describe` answers.
    pub(crate) fn to_proto(&self, name: &str) -> pb::GroupStats {
        let mut proto = pb::GroupStats {
            name: name.to_owned(),
            main_cache: Some(self.main_cache.to_proto()),
            hot_cache: Some(self.hot_cache.to_proto()),
            ..pb::GroupStats::default()
        };
        self.counters_to_proto(&mut proto);
        proto
    }

    /// Stats from their wire form.
    pub(crate) fn from_proto(proto: &pb::GroupStats) -> Self {
        let mut stats = Stats {
            main_cache: TierStats::from_proto(proto.main_cache.as_ref()),
            hot_cache: TierStats::from_proto(proto.hot_cache.as_ref()),
            ..Stats::default()
        };
        stats.counters_from_proto(proto);
        stats
    }
}

impl PeerSetStats {
    /// The peer set's counters in their wire form (the groups travel separately).
    pub(crate) fn to_proto(&self) -> pb::PeerSetStats {
        let mut proto = pb::PeerSetStats::default();
        self.counters_to_proto(&mut proto);
        proto
    }

    /// Stats from their wire form.
    pub(crate) fn from_proto(proto: &pb::PeerSetStats, groups: &[pb::GroupStats]) -> Self {
        let mut stats = PeerSetStats {
            groups: groups
                .iter()
                .map(|g| (g.name.clone(), Stats::from_proto(g)))
                .collect(),
            ..PeerSetStats::default()
        };
        stats.counters_from_proto(proto);
        stats
    }

    /// The stats of group `name`, if this peer hosts it.
    #[must_use]
    pub fn group(&self, name: &str) -> Option<&Stats> {
        self.groups.get(name)
    }
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
    /// Hot copies not served because this peer's lease on their owner had run out or been
    /// revoked (see the README's Consistency section); zero in the main cache.
    pub lapsed: u64,
}

impl TierStats {
    fn to_proto(self) -> pb::TierStats {
        pb::TierStats {
            entries: self.entries,
            weighted_bytes: self.weighted_bytes,
            evictions: self.evictions,
            expirations: self.expirations,
            lapsed: self.lapsed,
        }
    }

    fn from_proto(proto: Option<&pb::TierStats>) -> Self {
        let proto = proto.copied().unwrap_or_default();
        TierStats {
            entries: proto.entries,
            weighted_bytes: proto.weighted_bytes,
            evictions: proto.evictions,
            expirations: proto.expirations,
            lapsed: proto.lapsed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `uint64` fields of `message` in the proto source, in order.
    fn proto_counters(message: &str) -> Vec<String> {
        let start = groupcache_pb::PROTO
            .find(&format!("message {message} {{"))
            .unwrap_or_else(|| panic!("no message {message} in the proto"));
        let body = &groupcache_pb::PROTO[start..];
        let body = &body[..body.find('}').expect("message ends")];
        body.lines()
            .filter_map(|line| line.trim().strip_prefix("uint64 "))
            .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn gets_count_hits_though_a_hit_bumps_one_live_counter() {
        let counters = Counters::default();
        counters.hot_hit();
        counters.main_hit();
        counters.main_hit();
        counters.get_not_hit();
        counters.loads.bump();
        let stats = counters.snapshot();
        assert_eq!(
            (stats.gets, stats.hot_hits, stats.main_hits, stats.loads),
            (4, 1, 2, 1)
        );
        assert_eq!(
            counters.gets.read(),
            1,
            "the live counter saw the miss only"
        );
    }

    #[test]
    fn group_counters_are_the_protos() {
        assert_eq!(proto_counters("GroupStats"), Counters::NAMES);
    }

    #[test]
    fn peer_set_counters_are_the_protos() {
        assert_eq!(proto_counters("PeerSetStats"), PeerSetCounters::NAMES);
    }

    #[test]
    fn every_counter_survives_the_wire() {
        // Each counter a different value, so a field copied into the wrong one shows.
        let counters = Counters::default();
        for (i, name) in Counters::NAMES.iter().enumerate() {
            let field = match *name {
                "gets" => &counters.gets,
                "hot_hits" => &counters.hot_hits,
                "main_hits" => &counters.main_hits,
                "loads" => &counters.loads,
                "loads_deduped" => &counters.loads_deduped,
                "local_loads" => &counters.local_loads,
                "local_load_errors" => &counters.local_load_errors,
                "peer_loads" => &counters.peer_loads,
                "peer_errors" => &counters.peer_errors,
                "fallback_loads" => &counters.fallback_loads,
                "auth_failures" => &counters.auth_failures,
                "server_requests" => &counters.server_requests,
                "removes" => &counters.removes,
                "rejected_keys" => &counters.rejected_keys,
                "peer_refusals" => &counters.peer_refusals,
                "rerouted_gets" => &counters.rerouted_gets,
                "substitute_serves" => &counters.substitute_serves,
                "handoff_hits" => &counters.handoff_hits,
                "handoff_misses" => &counters.handoff_misses,
                "hedged_gets" => &counters.hedged_gets,
                "hedge_wins" => &counters.hedge_wins,
                "sets" => &counters.sets,
                "negative_hits" => &counters.negative_hits,
                "peer_batches" => &counters.peer_batches,
                "hot_marks" => &counters.hot_marks,
                "coalesced_gets" => &counters.coalesced_gets,
                other => panic!("counter {other} missing from this test"),
            };
            for _ in 0..=i {
                field.bump();
            }
        }
        let mut stats = counters.snapshot();
        stats.main_cache.entries = 7;
        stats.hot_cache.evictions = 9;
        let back = Stats::from_proto(&stats.to_proto("g"));
        assert_eq!(back, stats);
        // The live `gets` leaves out the hits; the snapshot adds them back (1 + 2 + 3).
        assert_eq!(back.gets, 6);
        assert_eq!(back.coalesced_gets, Counters::NAMES.len() as u64);
    }
}
