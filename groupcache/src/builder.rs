//! [`GroupcacheBuilder`]: the settings of a peer set, shared by all of its groups.

use std::sync::Arc;
use std::time::Duration;

use crate::defaults;
use crate::node::Node;
use crate::peer::breaker::BreakerConfig;
use crate::peer::client::{ChannelConfig, CoalesceConfig};
use crate::peer::token::AcceptedTokens;
use crate::peer::{LazyConnector, PeerConnector};
use crate::peer_set::PeerSet;
use crate::routing::Routing;
use crate::security::PeerToken;
use crate::stats::PeerSetCounters;
use crate::telemetry::MetricNames;
use crate::trace::TraceKeys;
use crate::{Groupcache, GroupcachePeer};

/// Room for protobuf framing around the largest value in a gRPC message.
const MESSAGE_OVERHEAD: usize = 1024;

/// Longest cool-down or handoff window taken (longer ones are cut to it): a day, far from
/// where adding it to an instant could overflow.
const MAX_SPAN: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest coalescing window taken: a wait longer than this is no batching window.
const MAX_COALESCE_WINDOW: Duration = Duration::from_millis(100);

/// Longest group name, in bytes: it travels in every request.
pub(crate) const MAX_GROUP_NAME_LEN: usize = 128;

/// Settings fixed at build time, shared by every group of a peer set.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) max_key_len: usize,
    pub(crate) max_value_size: usize,
    /// Tokens the peer service accepts; none means no check.
    pub(crate) accepted_tokens: AcceptedTokens,
    pub(crate) max_concurrent_streams: u32,
    /// How long a peer's request may take to arrive and be answered by this peer's service.
    pub(crate) peer_timeout: Duration,
    /// How long hot copies of an owner's values are served after it last answered.
    pub(crate) hot_copy_lease: Duration,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::security::PeerTls>,
}

impl Config {
    /// Limit of a reply message: the largest value plus framing.
    pub(crate) fn max_reply_size(&self) -> usize {
        self.max_value_size.saturating_add(MESSAGE_OVERHEAD)
    }

    /// Limit of a read request message: a `Get`, `Describe` or `Lease` carries only a group
    /// name and a key, so a server never buffers more than this for a read, however large
    /// values may be.
    pub(crate) fn max_request_size(&self) -> usize {
        self.max_key_len
            .saturating_add(MAX_GROUP_NAME_LEN)
            .saturating_add(MESSAGE_OVERHEAD)
    }

    /// Limit of a `GetMany` request message: as large as [`MAX_BATCH_KEYS`] read requests, so
    /// that a batch of keys of the maximum length always fits (about 290 KiB by default).
    ///
    /// [`MAX_BATCH_KEYS`]: crate::defaults::MAX_BATCH_KEYS
    pub(crate) fn max_batch_request_size(&self) -> usize {
        self.max_request_size()
            .saturating_mul(crate::defaults::MAX_BATCH_KEYS)
    }

    /// Limit of a write request message (`Set`, `Remove`, `Invalidate`): a value of the
    /// maximum size, or a batch of keys as large, plus framing.
    pub(crate) fn max_write_size(&self) -> usize {
        self.max_reply_size().max(self.max_request_size())
    }
}

/// Builds a [`Groupcache`], the peer set; see [`Groupcache::builder`]. Every setting has a
/// default (listed in [`defaults`](crate::defaults)). What each group caches, and how, is set
/// on its own builder: [`Groupcache::group`].
///
/// Peers of one cluster should share `max_key_len`, `max_value_size` and `virtual_nodes`: the
/// ring only agrees across peers built with the same number of virtual nodes.
#[must_use = "a builder does nothing until `build` is called"]
pub struct GroupcacheBuilder {
    me: GroupcachePeer,
    peer_timeout: Duration,
    connect_timeout: Duration,
    max_key_len: usize,
    max_value_size: usize,
    vnodes: usize,
    connector: Arc<dyn PeerConnector>,
    token: Option<PeerToken>,
    also_accepted: Vec<PeerToken>,
    max_concurrent_streams: u32,
    breaker: BreakerConfig,
    handoff_window: Duration,
    hedge_percentile: Option<f64>,
    coalesce_gets: bool,
    coalesce_window: Duration,
    hot_copy_lease: Duration,
    #[cfg(feature = "tls")]
    tls: Option<crate::security::PeerTls>,
    trace_keys: TraceKeys,
    #[cfg(feature = "metrics")]
    metrics_prefix: Option<String>,
    #[cfg(feature = "metrics")]
    metrics_labels: Vec<(String, String)>,
}

impl GroupcacheBuilder {
    pub(crate) fn new(me: GroupcachePeer) -> Self {
        GroupcacheBuilder {
            me,
            peer_timeout: defaults::PEER_TIMEOUT,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            max_key_len: defaults::MAX_KEY_LEN,
            max_value_size: defaults::MAX_VALUE_SIZE,
            vnodes: defaults::VIRTUAL_NODES,
            connector: Arc::new(LazyConnector),
            token: None,
            also_accepted: Vec::new(),
            max_concurrent_streams: defaults::MAX_CONCURRENT_STREAMS,
            breaker: BreakerConfig {
                threshold: defaults::PEER_FAILURE_THRESHOLD,
                cool_down: defaults::PEER_COOL_DOWN,
            },
            handoff_window: defaults::HANDOFF_WINDOW,
            hedge_percentile: None,
            coalesce_gets: defaults::COALESCE_GETS,
            coalesce_window: defaults::COALESCE_WINDOW,
            hot_copy_lease: defaults::HOT_COPY_LEASE,
            #[cfg(feature = "tls")]
            tls: None,
            trace_keys: TraceKeys::default(),
            #[cfg(feature = "metrics")]
            metrics_prefix: Some(defaults::METRICS_PREFIX.to_owned()),
            #[cfg(feature = "metrics")]
            metrics_labels: Vec::new(),
        }
    }

    /// Deadline of every request to a peer, including waiting for a connection. When it
    /// passes, this peer asks the key's substitute (see
    /// [`peer_failure_threshold`](Self::peer_failure_threshold)), and loads the value itself
    /// if that one does not answer either. Default: [`defaults::PEER_TIMEOUT`] (2 s).
    ///
    /// It also bounds, on this peer's [service](Groupcache::grpc_service), how long a request
    /// from a peer may take to arrive in full and be answered: a request still unanswered then
    /// gets `DeadlineExceeded` and its stream is closed (counted in
    /// [`PeerSetStats::timed_out_requests`](crate::stats::PeerSetStats::timed_out_requests)),
    /// so that a client opening streams and never sending their bodies cannot hold them open.
    /// A load it was waiting for goes on and fills the cache. The asking peer, with the same
    /// timeout, has given up by then anyway: give every peer the same peer timeout, or an owner
    /// with a shorter one cuts its askers short and they load the value themselves.
    ///
    /// # Panics
    ///
    /// If `timeout` is zero.
    pub fn peer_timeout(mut self, timeout: Duration) -> Self {
        assert!(!timeout.is_zero(), "peer_timeout must be greater than zero");
        self.peer_timeout = timeout;
        self
    }

    /// Deadline for opening a TCP connection to a peer. Default:
    /// [`defaults::CONNECT_TIMEOUT`] (1 s), capped at the peer timeout.
    ///
    /// # Panics
    ///
    /// If `timeout` is zero.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "connect_timeout must be greater than zero"
        );
        self.connect_timeout = timeout;
        self
    }

    /// Longest accepted key, in bytes, in every group. Longer keys are refused with
    /// [`ErrorKind::KeyTooLong`](crate::ErrorKind::KeyTooLong) before any work or RPC.
    /// Default: [`defaults::MAX_KEY_LEN`] (1 KiB).
    ///
    /// # Panics
    ///
    /// If `len` is zero.
    pub fn max_key_len(mut self, len: usize) -> Self {
        assert!(len > 0, "max_key_len must be greater than zero");
        self.max_key_len = len;
        self
    }

    /// Largest accepted encoded value, in bytes, in every group. A loaded value over it is an
    /// error ([`ErrorKind::ValueTooLarge`](crate::ErrorKind::ValueTooLarge)) on every peer and
    /// is not cached. Also sets the gRPC message limits of the peer client and service.
    /// Default: [`defaults::MAX_VALUE_SIZE`] (8 MiB).
    ///
    /// # Panics
    ///
    /// If `bytes` is zero.
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        assert!(bytes > 0, "max_value_size must be greater than zero");
        self.max_value_size = bytes;
        self
    }

    /// Points per peer on the hash ring. More points balance keys better and cost a little
    /// more memory and lookup time. Default: [`defaults::VIRTUAL_NODES`] (768), which kept the
    /// busiest peer within 1.114x the mean share over 189 peer sets of 2 to 64 members. Must
    /// be the same on every peer: peers with different counts disagree on owners.
    ///
    /// # Panics
    ///
    /// If `n` is zero.
    pub fn virtual_nodes(mut self, n: usize) -> Self {
        assert!(n > 0, "virtual_nodes must be greater than zero");
        self.vnodes = n;
        self
    }

    /// How channels to peers are opened. Default: [`LazyConnector`].
    pub fn peer_connector(mut self, connector: impl PeerConnector) -> Self {
        self.connector = Arc::new(connector);
        self
    }

    /// The shared secret this peer sends with every peer request, and which its own service
    /// then requires from every peer. Default: none (no token sent or checked).
    ///
    /// A request without an accepted token is refused with `Unauthenticated` before any work;
    /// the asking peer returns that as [`ErrorKind::Unauthenticated`](crate::ErrorKind) to its
    /// caller (counted in [`Stats::auth_failures`](crate::stats::Stats::auth_failures)), never
    /// falling back to a local load, since a misconfigured cluster should fail loudly.
    ///
    /// To rotate the secret without downtime, in three rolling deploys: every peer sends the
    /// old token and also accepts the new one; every peer sends the new one and accepts the
    /// old one; every peer sends and accepts only the new one.
    pub fn peer_token(mut self, token: PeerToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Another token this peer's service accepts, besides its own
    /// ([`peer_token`](Self::peer_token)): for rotating the secret. May be called several
    /// times. Accepting tokens without sending one is allowed (a peer that only serves).
    pub fn accept_peer_token(mut self, token: PeerToken) -> Self {
        self.also_accepted.push(token);
        self
    }

    /// Most requests one peer connection may have open at once (HTTP/2
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`), applied by [`Groupcache::server_builder`] and
    /// [`Groupcache::configure_server`]. A peer sending more waits for a request to finish; it
    /// is not refused. Default: [`defaults::MAX_CONCURRENT_STREAMS`] (1024).
    ///
    /// # Panics
    ///
    /// If `n` is zero.
    pub fn max_concurrent_streams(mut self, n: u32) -> Self {
        assert!(n > 0, "max_concurrent_streams must be greater than zero");
        self.max_concurrent_streams = n;
        self
    }

    /// How many transport failures in a row (no answer within the peer timeout, a refused or
    /// reset connection) make this peer consider another one out. Default:
    /// [`defaults::PEER_FAILURE_THRESHOLD`] (3). Answers never count, errors included: a
    /// peer that says "not found" or "my loader failed" is there.
    ///
    /// While a peer is out (its breaker open), this peer sends it nothing and routes its keys
    /// to their *substitute*: the next peer after the owner on the ring that is not out, the
    /// same on every peer that sees the same peers out. The substitute loads each key once and
    /// keeps it, so a dead owner costs one load per key cluster-wide, and no request waits for
    /// the owner's timeout. After [`peer_cool_down`](Self::peer_cool_down), one probe in the
    /// background asks whether it is back. [`Groupcache::peer_health`] shows each peer's
    /// state; [`PeerSetStats::breaker_opened`](crate::stats::PeerSetStats::breaker_opened)
    /// counts the openings, and each is logged once.
    ///
    /// # Panics
    ///
    /// If `failures` is zero.
    pub fn peer_failure_threshold(mut self, failures: u32) -> Self {
        assert!(
            failures > 0,
            "peer_failure_threshold must be greater than zero"
        );
        self.breaker.threshold = failures;
        self
    }

    /// How long a peer found out (see [`peer_failure_threshold`](Self::peer_failure_threshold))
    /// is routed around before one background probe asks whether it is back; each peer's
    /// cool-down is stretched or shortened by up to 20% at random, so that peers do not probe
    /// in step. An answered probe sends the peer's keys back to it; a failed one starts
    /// another cool-down. Default: [`defaults::PEER_COOL_DOWN`] (5 s).
    ///
    /// # Panics
    ///
    /// If `cool_down` is zero.
    pub fn peer_cool_down(mut self, cool_down: Duration) -> Self {
        assert!(
            !cool_down.is_zero(),
            "peer_cool_down must be greater than zero"
        );
        self.breaker.cool_down = cool_down.min(MAX_SPAN);
        self
    }

    /// For how long after a membership change a peer that became a key's owner, and misses it,
    /// first asks the key's previous owner whether it still holds the value (under a short
    /// deadline), instead of loading it again: a rolling deploy then does not send every
    /// moved key to the database. A peer that joins treats the members before it as the
    /// previous ring. Default: [`defaults::HANDOFF_WINDOW`] (30 s); zero turns it off.
    pub fn handoff_window(mut self, window: Duration) -> Self {
        self.handoff_window = window.min(MAX_SPAN);
        self
    }

    /// Hedged gets: when the owner has not answered within `percentile` (for example `95.0`)
    /// of its recent answer times, a get also asks the key's substitute (with the same
    /// deadline), and takes whichever answers first; the other request is cancelled (a load it
    /// started still finishes and fills that peer's cache). Default: off.
    ///
    /// It trades load for tail latency: each hedge can cost a second load of the key, on the
    /// substitute, which then keeps the value as it does for an owner that is out (for at most
    /// the hot cache's time to live), so a key hedged again is answered from there. Counted in
    /// [`Stats::hedged_gets`](crate::stats::Stats::hedged_gets) and
    /// [`Stats::hedge_wins`](crate::stats::Stats::hedge_wins). The delay is read from a
    /// histogram of each peer's last few thousand answers in power-of-two buckets, so it errs
    /// late by up to 2x; no get is hedged before 32 answers were timed.
    ///
    /// # Panics
    ///
    /// If `percentile` is not between 50 and 100 (exclusive).
    pub fn hedge_at_percentile(mut self, percentile: f64) -> Self {
        assert!(
            percentile > 50.0 && percentile < 100.0,
            "hedge_at_percentile takes a percentile between 50 and 100, not {percentile}"
        );
        self.hedge_percentile = Some(percentile);
        self
    }

    /// Coalescing: concurrent gets for one owner share one `GetMany` request. Default:
    /// [`defaults::COALESCE_GETS`] (off).
    ///
    /// While [`defaults::COALESCE_IN_FLIGHT`] gets to an owner are in flight, further gets
    /// for it (of any group) queue; when one of those requests ends, everything queued goes
    /// out at once, one `GetMany` per group, split into batches of at most
    /// [`defaults::MAX_BATCH_KEYS`] keys and of about 256 KiB of recent values. A get to an
    /// idle owner goes out at once (unless a [`coalesce_window`](Self::coalesce_window) is
    /// set), so coalescing adds no latency when the link is idle, and under load saves the
    /// owner and this peer most of the per-request work. Each get still waits at most the
    /// peer timeout, counted from its own start, and a caller that gives up cancels nothing.
    /// Gets to a substitute, hedged gets and a warm handoff's asks are sent on their own.
    /// Counted in [`Stats::coalesced_gets`](crate::stats::Stats::coalesced_gets).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let me: std::net::SocketAddr = "127.0.0.1:8080".parse()?;
    /// let cache = groupcache::Groupcache::builder(me).coalesce_gets(true).build();
    /// # drop(cache);
    /// # Ok(()) }
    /// ```
    pub fn coalesce_gets(mut self, on: bool) -> Self {
        self.coalesce_gets = on;
        self
    }

    /// With [`coalesce_gets`](Self::coalesce_gets) on: how long the first get to an idle
    /// owner waits for others to share its request (as gubernator batches its peer calls in a
    /// 500 µs window). It adds up to `window` to that get's latency, and can save requests
    /// when gets arrive in bursts too short to overlap a request. Default:
    /// [`defaults::COALESCE_WINDOW`] (zero: no wait; requests in flight are the only reason
    /// to queue). At most 100 ms.
    pub fn coalesce_window(mut self, window: Duration) -> Self {
        self.coalesce_window = window.min(MAX_COALESCE_WINDOW);
        self
    }

    /// The partition bound: how long this peer serves hot copies of another peer's values
    /// after that peer last answered it with no invalidation missing. A peer cut off from an
    /// owner (which cannot hear of that owner's `remove`s and `set`s) stops serving its copies
    /// of the owner's values at most this long after the owner last answered, and fetches
    /// them again (or, while the owner is out, asks its substitute). Reads of a copy in the
    /// lease's second half renew it in the background with one small `Lease` request to the
    /// owner; a get that the owner answers renews it too. It also caps how long a substitute
    /// or a fallback load keeps a value. Default: [`defaults::HOT_COPY_LEASE`] (5 s). See the
    /// README's Consistency section.
    ///
    /// # Panics
    ///
    /// If `lease` is zero.
    pub fn hot_copy_lease(mut self, lease: Duration) -> Self {
        assert!(!lease.is_zero(), "hot_copy_lease must be greater than zero");
        self.hot_copy_lease = lease.min(MAX_SPAN);
        self
    }

    /// TLS for links between peers, both ways (feature `tls`). Default: none, plaintext
    /// `http`, fine on loopback or inside a trusted network.
    ///
    /// This peer then connects to others over `https`, verifying their certificates, and
    /// [`Groupcache::server_builder`] serves TLS. Every peer of a cluster needs TLS once one
    /// has it: a plaintext peer cannot talk to a TLS one.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: crate::security::PeerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How keys appear in this peer's spans and log fields: hashed (the default), as they
    /// are, or not at all. Error messages still name the key.
    pub fn trace_keys(mut self, keys: TraceKeys) -> Self {
        self.trace_keys = keys;
        self
    }

    /// The prefix of every exported metric name (feature `metrics`), e.g. `groupcache` for
    /// `groupcache_gets_total`. Default: [`defaults::METRICS_PREFIX`]. Each group's metrics
    /// carry a `group` label. Give each peer set in one process its own prefix or
    /// [labels](Self::metrics_labels), or their counts add up. The metrics are registered with
    /// the recorder installed when [`build`](Self::build) (and [`GroupBuilder::build`] for a
    /// group's) runs: install yours (for example `metrics-exporter-prometheus`) first.
    ///
    /// [`GroupBuilder::build`]: crate::GroupBuilder::build
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.metrics_prefix = Some(prefix.into());
        self
    }

    /// Labels added to every exported metric (feature `metrics`), for example
    /// `[("peer", "10.0.0.7:8080")]` when several peer sets share one process and one prefix.
    /// Default: none.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn metrics_labels<K: Into<String>, L: Into<String>>(
        mut self,
        labels: impl IntoIterator<Item = (K, L)>,
    ) -> Self {
        self.metrics_labels = labels
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Exports nothing through the `metrics` facade (feature `metrics`); [`Groupcache::stats`]
    /// and [`Group::stats`](crate::Group::stats) still count.
    #[cfg(feature = "metrics")]
    #[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
    pub fn without_metrics(mut self) -> Self {
        self.metrics_prefix = None;
        self
    }

    /// Builds the peer set. It hosts no group yet (add them with [`Groupcache::group`]), and
    /// its ring is empty: until [`Groupcache::set_peers`] is called, every key is loaded
    /// locally.
    pub fn build(self) -> Groupcache {
        let accepted: Vec<PeerToken> = self
            .token
            .iter()
            .chain(&self.also_accepted)
            .cloned()
            .collect();
        let config = Config {
            max_key_len: self.max_key_len,
            max_value_size: self.max_value_size,
            accepted_tokens: AcceptedTokens::new(accepted),
            max_concurrent_streams: self.max_concurrent_streams,
            peer_timeout: self.peer_timeout,
            hot_copy_lease: self.hot_copy_lease,
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
        };
        #[cfg(feature = "metrics")]
        let (metrics, counters) = match &self.metrics_prefix {
            Some(prefix) => {
                let labels: Vec<metrics::Label> = self
                    .metrics_labels
                    .iter()
                    .map(|(k, v)| metrics::Label::new(k.clone(), v.clone()))
                    .collect();
                let counters = Arc::new(PeerSetCounters::exported(prefix, &labels));
                (
                    Some(Arc::new(MetricNames::new(prefix.clone(), labels))),
                    counters,
                )
            }
            None => (None, Arc::new(PeerSetCounters::default())),
        };
        #[cfg(not(feature = "metrics"))]
        let (metrics, counters): (Option<Arc<MetricNames>>, _) =
            (None, Arc::new(PeerSetCounters::default()));
        let channel = ChannelConfig {
            connect_timeout: self.connect_timeout.min(self.peer_timeout),
            request_timeout: self.peer_timeout,
            max_request_size: config.max_write_size(),
            max_reply_size: config.max_reply_size(),
            token: self.token,
            #[cfg(feature = "tls")]
            tls: self.tls,
            telemetry: metrics.clone(),
            breaker: self.breaker,
            counters: Arc::clone(&counters),
            hedge_percentile: self.hedge_percentile,
            lease_bound: self.hot_copy_lease,
            me: self.me.clone(),
            coalesce: self.coalesce_gets.then(|| CoalesceConfig {
                in_flight: defaults::COALESCE_IN_FLIGHT,
                window: self.coalesce_window,
                max_request: config.max_batch_request_size(),
            }),
        };
        let routing = Routing::new(
            self.me,
            self.vnodes,
            self.handoff_window,
            channel,
            self.connector,
        );
        let node = Node::new(routing, config, self.trace_keys, metrics, &counters);
        Groupcache::from_peer_set(PeerSet::new(node, counters))
    }
}

impl std::fmt::Debug for GroupcacheBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupcacheBuilder")
            .field("me", &self.me)
            .field("peer_timeout", &self.peer_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_key_len", &self.max_key_len)
            .field("max_value_size", &self.max_value_size)
            .field("virtual_nodes", &self.vnodes)
            .field("connector", &self.connector)
            .field("peer_token", &self.token)
            .field("accepted_peer_tokens", &self.also_accepted.len())
            .field("max_concurrent_streams", &self.max_concurrent_streams)
            .field("peer_failure_threshold", &self.breaker.threshold)
            .field("peer_cool_down", &self.breaker.cool_down)
            .field("handoff_window", &self.handoff_window)
            .field("hedge_percentile", &self.hedge_percentile)
            .field("coalesce_gets", &self.coalesce_gets)
            .field("coalesce_window", &self.coalesce_window)
            .field("hot_copy_lease", &self.hot_copy_lease)
            .field("trace_keys", &self.trace_keys)
            .finish_non_exhaustive()
    }
}
