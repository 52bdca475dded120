//! [`GroupcacheBuilder`]: configuration with documented defaults.

use std::sync::Arc;
use std::time::Duration;

use crate::TraceKeys;
use crate::cache::{CacheBackend, Tier};
use crate::codec::{Codec, Postcard};
use crate::flight::FlightGroup;
use crate::handle::{Groupcache, Inner};
use crate::log_throttle::LogThrottle;
use crate::peer::client::ChannelConfig;
use crate::peer::token::AcceptedTokens;
use crate::promotion::{HotCachePolicy, PromoteOneIn};
use crate::ring::DEFAULT_VNODES;
use crate::routing::Routing;
use crate::stats::Counters;
use crate::telemetry::Telemetry;
use crate::{GroupcachePeer, LazyConnector, PeerConnector, PeerToken, ValueLoader};

/// Default main cache capacity: 64 MiB of encoded values and keys.
pub const DEFAULT_MAIN_CACHE_CAPACITY: u64 = 64 * 1024 * 1024;
/// Default time-to-live of hot cache entries: 60 s.
pub const DEFAULT_HOT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default deadline of a peer request: 2 s.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(2);
/// Default deadline for opening a connection to a peer: 1 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default maximum key length: 1 KiB.
pub const DEFAULT_MAX_KEY_LEN: usize = 1024;
/// Default number of points per peer on the hash ring.
pub const DEFAULT_VIRTUAL_NODES: usize = crate::ring::DEFAULT_VNODES;
/// Default maximum encoded value size: 8 MiB.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 8 * 1024 * 1024;

/// Default limit of concurrent requests on one peer connection (HTTP/2 streams): 1024.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 1024;

/// Default prefix of exported metric names (feature `metrics`): `groupcache`.
pub const DEFAULT_METRICS_PREFIX: &str = "groupcache";

/// Room for protobuf framing around the largest value in a gRPC message.
const MESSAGE_OVERHEAD: usize = 1024;

/// Settings fixed at build time.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) max_key_len: usize,
    pub(crate) max_value_size: usize,
    /// Tokens the peer service accepts; none means no check.
    pub(crate) accepted_tokens: AcceptedTokens,
    pub(crate) max_concurrent_streams: u32,
    /// How long a peer's request may take to arrive and be answered by this peer's service.
    pub(crate) peer_timeout: Duration,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::PeerTls>,
}

impl Config {
    /// Limit of a reply message: the largest value plus framing.
    pub(crate) fn max_reply_size(&self) -> usize {
        self.max_value_size.saturating_add(MESSAGE_OVERHEAD)
    }

    /// Limit of a request message: a request carries only a key, so a server never buffers
    /// more than this per request, however large values may be.
    pub(crate) fn max_request_size(&self) -> usize {
        self.max_key_len.saturating_add(MESSAGE_OVERHEAD)
    }
}

/// Builds a [`Groupcache`]; see [`Groupcache::builder`]. Every setting has a default.
///
/// Peers of one cluster should share `max_key_len`, `max_value_size`, `virtual_nodes` and the
/// codec: the ring only agrees across peers built with the same number of virtual nodes.
#[must_use = "a builder does nothing until `build` is called"]
pub struct GroupcacheBuilder<V> {
    me: GroupcachePeer,
    loader: Arc<dyn ValueLoader<Value = V>>,
    codec: Arc<dyn Codec<V>>,
    main_capacity: u64,
    hot_capacity: Option<u64>,
    main_ttl: Option<Duration>,
    hot_ttl: Option<Duration>,
    promotion: Arc<dyn HotCachePolicy>,
    peer_timeout: Duration,
    connect_timeout: Duration,
    max_key_len: usize,
    max_value_size: usize,
    vnodes: usize,
    connector: Arc<dyn PeerConnector>,
    token: Option<PeerToken>,
    also_accepted: Vec<PeerToken>,
    max_concurrent_streams: u32,
    #[cfg(feature = "tls")]
    tls: Option<crate::PeerTls>,
    trace_keys: TraceKeys,
    #[cfg(feature = "metrics")]
    metrics_prefix: Option<String>,
    #[cfg(feature = "metrics")]
    metrics_labels: Vec<(String, String)>,
    backend: CacheBackend,
}

impl<V: Clone + Send + Sync + 'static> GroupcacheBuilder<V> {
    pub(crate) fn new(me: GroupcachePeer, loader: Arc<dyn ValueLoader<Value = V>>) -> Self
    where
        Postcard: Codec<V>,
    {
        GroupcacheBuilder {
            me,
            loader,
            codec: Arc::new(Postcard),
            main_capacity: DEFAULT_MAIN_CACHE_CAPACITY,
            hot_capacity: None,
            main_ttl: None,
            hot_ttl: Some(DEFAULT_HOT_CACHE_TTL),
            promotion: Arc::new(PromoteOneIn::default()),
            peer_timeout: DEFAULT_PEER_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_key_len: DEFAULT_MAX_KEY_LEN,
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            vnodes: DEFAULT_VNODES,
            connector: Arc::new(LazyConnector),
            token: None,
            also_accepted: Vec::new(),
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            #[cfg(feature = "tls")]
            tls: None,
            trace_keys: TraceKeys::default(),
            #[cfg(feature = "metrics")]
            metrics_prefix: Some(DEFAULT_METRICS_PREFIX.to_owned()),
            #[cfg(feature = "metrics")]
            metrics_labels: Vec::new(),
            backend: CacheBackend::default(),
        }
    }

    /// Capacity of the main cache (values this peer owns), in bytes: the sum of encoded value
    /// lengths plus key lengths. Default: [`DEFAULT_MAIN_CACHE_CAPACITY`] (64 MiB). `0` disables
    /// it: every `get` of an owned key then calls the loader (still one call per flight).
    ///
    /// A value heavier than the whole cache is returned but not kept. When the cache is full,
    /// the [backend](Self::cache_backend) decides what stays: see [`CacheBackend`].
    pub fn main_cache_capacity(mut self, bytes: u64) -> Self {
        self.main_capacity = bytes;
        self
    }

    /// Capacity of the hot cache (copies of values owned by other peers), in bytes. Default:
    /// 1/8 of the main cache capacity. `0` disables it.
    pub fn hot_cache_capacity(mut self, bytes: u64) -> Self {
        self.hot_capacity = Some(bytes);
        self
    }

    /// How long a value stays in the main cache after it was loaded. Default: no limit (only
    /// eviction by size, as in Go groupcache). Measured on tokio's clock, so a test can move it
    /// with `tokio::time::pause` and `advance`.
    pub fn main_cache_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.main_ttl = ttl;
        self
    }

    /// How long a hot copy of another peer's value is served. This bounds how stale a hot copy
    /// can be after the owner's value was removed. Default: [`DEFAULT_HOT_CACHE_TTL`] (60 s);
    /// `None` keeps hot copies until evicted by size.
    pub fn hot_cache_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.hot_ttl = ttl;
        self
    }

    /// Which values fetched from other peers are kept in the hot cache. Default:
    /// [`PromoteOneIn(10)`](PromoteOneIn), one in ten at random, as Go groupcache.
    pub fn hot_cache_policy(mut self, policy: impl HotCachePolicy) -> Self {
        self.promotion = Arc::new(policy);
        self
    }

    /// Deadline of every request to a peer, including waiting for a connection. When it
    /// passes, this peer loads the value itself. Default: [`DEFAULT_PEER_TIMEOUT`] (2 s).
    ///
    /// It also bounds, on this peer's [service](Groupcache::grpc_service), how long a request
    /// from a peer may take to arrive in full and be answered: a request still unanswered then
    /// gets `DeadlineExceeded` and its stream is closed (counted in
    /// [`Stats::timed_out_requests`](crate::Stats::timed_out_requests)), so that a client
    /// opening streams and never sending their bodies cannot hold them open. A load it was
    /// waiting for goes on and fills the cache. The asking peer, with the same timeout, has
    /// given up by then anyway: give every peer the same peer timeout, or an owner with a
    /// shorter one cuts its askers short and they load the value themselves.
    ///
    /// # Panics
    ///
    /// If `timeout` is zero.
    pub fn peer_timeout(mut self, timeout: Duration) -> Self {
        assert!(!timeout.is_zero(), "peer_timeout must be greater than zero");
        self.peer_timeout = timeout;
        self
    }

    /// Deadline for opening a TCP connection to a peer. Default: [`DEFAULT_CONNECT_TIMEOUT`]
    /// (1 s), capped at the peer timeout.
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

    /// Longest accepted key, in bytes. Longer keys are refused with
    /// [`ErrorKind::KeyTooLong`](crate::ErrorKind::KeyTooLong) before any work or RPC.
    /// Default: [`DEFAULT_MAX_KEY_LEN`] (1 KiB).
    ///
    /// # Panics
    ///
    /// If `len` is zero.
    pub fn max_key_len(mut self, len: usize) -> Self {
        assert!(len > 0, "max_key_len must be greater than zero");
        self.max_key_len = len;
        self
    }

    /// Largest accepted encoded value, in bytes. A loaded value over it is an error
    /// ([`ErrorKind::ValueTooLarge`](crate::ErrorKind::ValueTooLarge)) on every peer and is not
    /// cached. Also sets the gRPC message limits of the peer client and service. Default:
    /// [`DEFAULT_MAX_VALUE_SIZE`] (8 MiB).
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
    /// more memory and lookup time. Default: [`DEFAULT_VIRTUAL_NODES`] (768), which kept the
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

    /// The value codec. Default: [`Postcard`]. Must be the same on every peer.
    pub fn codec(mut self, codec: impl Codec<V>) -> Self {
        self.codec = Arc::new(codec);
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
    /// caller (counted in [`Stats::auth_failures`](crate::Stats::auth_failures)), never
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
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`), applied by
    /// [`Groupcache::server_builder`]. A peer sending more waits for a request to finish; it is
    /// not refused. Default: [`DEFAULT_MAX_CONCURRENT_STREAMS`] (1024).
    ///
    /// # Panics
    ///
    /// If `n` is zero.
    pub fn max_concurrent_streams(mut self, n: u32) -> Self {
        assert!(n > 0, "max_concurrent_streams must be greater than zero");
        self.max_concurrent_streams = n;
        self
    }

    /// TLS for links between peers, both ways (feature `tls`). Default: none, plaintext
    /// `http`, fine on loopback or inside a trusted network.
    ///
    /// This peer then connects to others over `https`, verifying their certificates, and
    /// [`Groupcache::server_builder`] serves TLS. Every peer of a cluster needs TLS once one
    /// has it: a plaintext peer cannot talk to a TLS one.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::PeerTls) -> Self {
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
    /// `groupcache_gets_total`. Default: [`DEFAULT_METRICS_PREFIX`]. Give each cache in one
    /// process its own prefix, or their counts add up. The metrics are registered with the
    /// recorder installed when [`build`](Self::build) runs: install yours (for example
    /// `metrics-exporter-prometheus`) first.
    #[cfg(feature = "metrics")]
    pub fn metrics_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.metrics_prefix = Some(prefix.into());
        self
    }

    /// Labels added to every exported metric (feature `metrics`), for example
    /// `[("peer", "10.0.0.7:8080")]` when several caches share one process and one prefix.
    /// Default: none.
    #[cfg(feature = "metrics")]
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
    /// still counts.
    #[cfg(feature = "metrics")]
    pub fn without_metrics(mut self) -> Self {
        self.metrics_prefix = None;
        self
    }

    /// The cache implementation behind the main and hot caches. Default:
    /// [`CacheBackend::QuickCache`], whose hits cost a fraction of moka's; see
    /// [`CacheBackend`] for what each keeps when full.
    ///
    /// ```
    /// # use groupcache::{BoxError, CacheBackend, Groupcache, ValueLoader};
    /// # struct Db;
    /// # #[groupcache::async_trait]
    /// # impl ValueLoader for Db {
    /// #     type Value = String;
    /// #     async fn load(&self, key: &str) -> Result<String, BoxError> { Ok(key.into()) }
    /// # }
    /// let me: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
    /// let cache = Groupcache::builder(me, Db)
    ///     .cache_backend(CacheBackend::Moka)
    ///     .build();
    /// ```
    pub fn cache_backend(mut self, backend: CacheBackend) -> Self {
        self.backend = backend;
        self
    }

    /// Builds the cache. Its ring is empty: until [`Groupcache::set_peers`] is called, every key
    /// is loaded locally.
    pub fn build(self) -> Groupcache<V> {
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
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
        };
        let mut channel = ChannelConfig {
            connect_timeout: self.connect_timeout.min(self.peer_timeout),
            request_timeout: self.peer_timeout,
            max_request_size: config.max_request_size(),
            max_reply_size: config.max_reply_size(),
            token: self.token,
            #[cfg(feature = "tls")]
            tls: self.tls,
            telemetry: None,
        };
        #[cfg(feature = "metrics")]
        let (telemetry, counters) = match &self.metrics_prefix {
            Some(prefix) => {
                let labels: Vec<metrics::Label> = self
                    .metrics_labels
                    .iter()
                    .map(|(k, v)| metrics::Label::new(k.clone(), v.clone()))
                    .collect();
                (
                    Some(Arc::new(Telemetry::new(prefix, &labels))),
                    Counters::exported(prefix, &labels),
                )
            }
            None => (None, Counters::default()),
        };
        #[cfg(not(feature = "metrics"))]
        let (telemetry, counters): (Option<Arc<Telemetry>>, _) = (None, Counters::default());
        channel.telemetry = telemetry.clone();
        let hot_capacity = self.hot_capacity.unwrap_or(self.main_capacity / 8);
        // The heaviest entry a tier must be able to keep: a key and a value at their limits.
        let max_entry = (self.max_key_len + self.max_value_size) as u64;
        let routing = Routing::new(self.me, self.vnodes, channel, self.connector);
        Groupcache::from_inner(Inner {
            loader: self.loader,
            codec: self.codec,
            main: Tier::with_backend(
                self.backend,
                "groupcache-main",
                self.main_capacity,
                max_entry,
                self.main_ttl,
            ),
            hot: Tier::with_backend(
                self.backend,
                "groupcache-hot",
                hot_capacity,
                max_entry,
                self.hot_ttl,
            )
            .keeping_decoded_only(),
            promotion: self.promotion,
            fetches: Arc::new(FlightGroup::new()),
            loads: Arc::new(FlightGroup::new()),
            routing,
            config,
            counters: Arc::new(counters),
            telemetry,
            trace_keys: self.trace_keys,
            panic_log: LogThrottle::default(),
        })
    }
}

impl<V> std::fmt::Debug for GroupcacheBuilder<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupcacheBuilder")
            .field("me", &self.me)
            .field("main_capacity", &self.main_capacity)
            .field("hot_capacity", &self.hot_capacity)
            .field("main_ttl", &self.main_ttl)
            .field("hot_ttl", &self.hot_ttl)
            .field("promotion", &self.promotion)
            .field("peer_timeout", &self.peer_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_key_len", &self.max_key_len)
            .field("max_value_size", &self.max_value_size)
            .field("virtual_nodes", &self.vnodes)
            .field("connector", &self.connector)
            .field("peer_token", &self.token)
            .field("accepted_peer_tokens", &self.also_accepted.len())
            .field("max_concurrent_streams", &self.max_concurrent_streams)
            .field("trace_keys", &self.trace_keys)
            .field("cache_backend", &self.backend)
            .finish_non_exhaustive()
    }
}
