//! [`GroupBuilder`]: what one group caches and how.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::MAX_GROUP_NAME_LEN;
use crate::cache::{CacheBackend, HotCachePolicy, PromoteOneIn, Tier};
use crate::codec::{Codec, Postcard};
use crate::defaults;
use crate::key_rates::KeyRates;
use crate::lookup::{GroupState, Parts};
use crate::peer_set::PeerSet;
use crate::stats::Counters;
use crate::{Error, ErrorKind, Group, ValueLoader};

/// Builds a [`Group`] on a peer set; from [`Groupcache::group`](crate::Groupcache::group).
/// Every setting has a default (listed in [`defaults`](crate::defaults)).
///
/// `C` is the codec's type: [`Postcard`] until [`codec`](Self::codec) sets another. Postcard
/// needs `V: Serialize + DeserializeOwned`; any other value type works with a codec of its own.
/// Every peer must build the group with the same name, codec and value type.
#[must_use = "a builder does nothing until `build` is called"]
pub struct GroupBuilder<V, C = Postcard> {
    peer_set: Arc<PeerSet>,
    name: String,
    loader: Arc<dyn ValueLoader<Value = V>>,
    codec: C,
    main_capacity: u64,
    hot_capacity: Option<u64>,
    main_ttl: Option<Duration>,
    hot_ttl: Option<Duration>,
    ttls: Ttls,
    promotion: Arc<dyn HotCachePolicy>,
    hot_key_threshold: Option<u32>,
    backend: CacheBackend,
    value: PhantomData<fn() -> V>,
}

/// How long what a group keeps lives, beyond the tiers' own times to live.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ttls {
    /// The longest time to live a loader may choose.
    pub(crate) max: Option<Duration>,
    /// The fraction of each main-cache time to live cut off at random (up to).
    pub(crate) jitter: f64,
    /// How long a `NotFound` is cached, if at all.
    pub(crate) not_found: Option<Duration>,
}

impl<V: Clone + Send + Sync + 'static> GroupBuilder<V, Postcard> {
    pub(crate) fn new(
        peer_set: Arc<PeerSet>,
        name: String,
        loader: Arc<dyn ValueLoader<Value = V>>,
    ) -> Self {
        GroupBuilder {
            peer_set,
            name,
            loader,
            codec: Postcard,
            main_capacity: defaults::MAIN_CACHE_CAPACITY,
            hot_capacity: None,
            main_ttl: None,
            hot_ttl: Some(defaults::HOT_CACHE_TTL),
            ttls: Ttls {
                max: None,
                jitter: defaults::TTL_JITTER,
                not_found: None,
            },
            promotion: Arc::new(PromoteOneIn::default()),
            hot_key_threshold: Some(defaults::HOT_KEY_THRESHOLD),
            backend: CacheBackend::default(),
            value: PhantomData,
        }
    }
}

impl<V: Clone + Send + Sync + 'static, C> GroupBuilder<V, C> {
    /// Capacity of the main cache (values this peer owns), in bytes: the sum of encoded value
    /// lengths plus key lengths. Default: [`defaults::MAIN_CACHE_CAPACITY`] (64 MiB). `0`
    /// disables it: every `get` of an owned key then calls the loader (still one call per
    /// flight).
    ///
    /// A value heavier than the whole cache is returned but not kept. When the cache is full,
    /// the [backend](Self::cache_backend) decides what stays: see [`CacheBackend`].
    pub fn main_cache_capacity(mut self, bytes: u64) -> Self {
        self.main_capacity = bytes;
        self
    }

    /// Capacity of the hot cache (copies of values owned by other peers), in bytes. Default:
    /// 1/8 of the main cache capacity (so `main_cache_capacity(0)` alone turns both off: set
    /// this too for a peer that keeps hot copies but owns nothing). `0` disables it.
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
    /// can be after the owner's value was removed. Default: [`defaults::HOT_CACHE_TTL`]
    /// (60 s); `None` keeps hot copies until evicted by size.
    pub fn hot_cache_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.hot_ttl = ttl;
        self
    }

    /// The longest time to live a [loader](crate::ValueLoader::time_to_live) may choose for
    /// a value (longer ones are cut to it). Default: none. The group's
    /// [`main_cache_ttl`](Self::main_cache_ttl) is the time to live of values the loader gives
    /// none.
    pub fn max_ttl(mut self, max: Option<Duration>) -> Self {
        self.ttls.max = max;
        self
    }

    /// Up to what fraction of each main-cache time to live is cut off at random, so that
    /// values loaded together do not all expire (and go to the database) together: with 0.1,
    /// a 60 s time to live becomes 54 to 60 s. Never lengthens one. Default:
    /// [`defaults::TTL_JITTER`] (0.1).
    ///
    /// # Panics
    ///
    /// If `fraction` is not between 0 and 1.
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&fraction),
            "ttl_jitter takes a fraction between 0 and 1, not {fraction}"
        );
        self.ttls.jitter = fraction;
        self
    }

    /// Negative caching: the owner keeps a key's [`NotFound`](crate::NotFound) for `ttl`, and
    /// answers `get`s of it (from any peer) without calling the loader again until then, or
    /// until a [`set`](crate::Group::set) or [`remove`](crate::Group::remove) of the key.
    /// Counted in [`Stats::negative_hits`](crate::stats::Stats::negative_hits). Default:
    /// `None`, off: every `get` of a missing key reaches the loader. The entries share the
    /// main cache's room, weighing their key's length (an eighth of the main cache at most).
    pub fn not_found_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttls.not_found = ttl;
        self
    }

    /// Which values fetched from other peers are kept in the hot cache. Default:
    /// [`PromoteOneIn(10)`](PromoteOneIn): every value while the hot cache has room for it,
    /// every value the owner marks hot, and one in ten of the others at random, as Go
    /// groupcache. A policy that panics keeps no copy (the panic is logged).
    pub fn hot_cache_policy(mut self, policy: impl HotCachePolicy) -> Self {
        self.promotion = Arc::new(policy);
        self
    }

    /// As the owner of keys: from how many requests from peers within its recent window a key
    /// is marked hot in this peer's answers, so that the askers keep a hot copy of it (see
    /// [`FetchedValue::marked_hot`](crate::cache::FetchedValue::marked_hot)). The owner
    /// estimates each key's request rate in a small sketch (32 KiB per group; counts halve
    /// every 81,920 requests, so the window follows the recent rate); a key marked hot is one
    /// peers asked for about `threshold` times among this peer's last 80,000 or so requests.
    /// Counted in [`Stats::hot_marks`](crate::stats::Stats::hot_marks). Default:
    /// [`defaults::HOT_KEY_THRESHOLD`] (4); `None` marks nothing, and peers then keep only what
    /// their policy picks by itself (1 in 10 at random, by default). Values above 255 count as
    /// 255. A hot copy made of a marked value is bounded as any other: by the hot cache's
    /// capacity and time to live, the owner's entry's time to live, and its lease.
    pub fn hot_key_threshold(mut self, threshold: Option<u32>) -> Self {
        self.hot_key_threshold = threshold;
        self
    }

    /// The cache implementation behind the main and hot caches. Default:
    /// [`CacheBackend::QuickCache`], whose hits cost a fraction of moka's; see
    /// [`CacheBackend`] for what each keeps when full.
    pub fn cache_backend(mut self, backend: CacheBackend) -> Self {
        self.backend = backend;
        self
    }

    /// The value codec. Default: [`Postcard`]. Must be the same on every peer.
    ///
    /// ```
    /// # use groupcache::{BoxError, Groupcache, ValueLoader};
    /// use bytes::Bytes;
    /// use groupcache::codec::Raw;
    ///
    /// struct Thumbnails;
    ///
    /// #[groupcache::async_trait]
    /// impl ValueLoader for Thumbnails {
    ///     type Value = Bytes;
    ///     async fn load(&self, key: &str) -> Result<Bytes, BoxError> {
    ///         Ok(Bytes::from(format!("<png of {key}>")))
    ///     }
    /// }
    ///
    /// let cache = Groupcache::builder("127.0.0.1:8080".parse::<std::net::SocketAddr>()?).build();
    /// let thumbnails = cache.group("thumbnails", Thumbnails).codec(Raw).build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn codec<D: Codec<V>>(self, codec: D) -> GroupBuilder<V, D> {
        GroupBuilder {
            peer_set: self.peer_set,
            name: self.name,
            loader: self.loader,
            codec,
            main_capacity: self.main_capacity,
            hot_capacity: self.hot_capacity,
            main_ttl: self.main_ttl,
            hot_ttl: self.hot_ttl,
            ttls: self.ttls,
            promotion: self.promotion,
            hot_key_threshold: self.hot_key_threshold,
            backend: self.backend,
            value: PhantomData,
        }
    }

    /// Builds the group and adds it to the peer set: from now on this peer's service answers
    /// peers' requests for it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::GroupExists`] if the peer set already has a group of that name;
    /// [`ErrorKind::Config`] if the name is empty or longer than 128 bytes.
    pub fn build(self) -> Result<Group<V>, Error>
    where
        C: Codec<V>,
    {
        if self.name.is_empty() || self.name.len() > MAX_GROUP_NAME_LEN {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "a group name must be 1 to {MAX_GROUP_NAME_LEN} bytes long, not {}",
                    self.name.len()
                ),
            )
            .with_group(&self.name));
        }
        let node = Arc::clone(self.peer_set.node());
        let config = node.config();
        let hot_capacity = self.hot_capacity.unwrap_or(self.main_capacity / 8);
        // The heaviest entry a tier must be able to keep: a key and a value at their limits.
        let max_entry = (config.max_key_len + config.max_value_size) as u64;
        let main = Tier::with_backend(
            self.backend,
            "groupcache-main",
            self.main_capacity,
            max_entry,
            self.main_ttl,
        );
        let main = if self.codec.keep_encoded_as_is() {
            main.keeping_encoded_as_is()
        } else {
            main
        };
        let hot = Tier::with_backend(
            self.backend,
            "groupcache-hot",
            hot_capacity,
            max_entry,
            self.hot_ttl,
        )
        .keeping_decoded_only();
        // What this peer owned before a membership change, for its new owner to ask for: as
        // long as the handoff window, in a quarter of the main cache's room (the entries have
        // just left the main cache). Their bytes are main-cache copies already: kept as they are.
        let window = node.routing().handoff_window();
        let handoff = Tier::with_backend(
            self.backend,
            "groupcache-handoff",
            if window.is_zero() {
                0
            } else {
                self.main_capacity / 4
            },
            max_entry,
            Some(window),
        )
        .keeping_encoded_as_is();
        let negatives = Tier::with_backend(
            self.backend,
            "groupcache-not-found",
            if self.ttls.not_found.is_some() {
                self.main_capacity / 8
            } else {
                0
            },
            max_entry,
            self.ttls.not_found,
        )
        .keeping_decoded_only();
        #[cfg(feature = "metrics")]
        let counters = match node.metrics() {
            Some(names) => Counters::exported(names.prefix(), &names.group_labels(&self.name)),
            None => Counters::default(),
        };
        #[cfg(not(feature = "metrics"))]
        let counters = Counters::default();
        let telemetry = node.metrics().map(|names| names.group(&self.name));
        let state = Arc::new(GroupState::new(Parts {
            name: self.name.into(),
            node,
            loader: self.loader,
            codec: Arc::new(self.codec),
            main,
            hot,
            handoff,
            negatives,
            ttls: self.ttls,
            promotion: self.promotion,
            key_rates: self.hot_key_threshold.map(KeyRates::new),
            counters,
            telemetry,
        }));
        self.peer_set.host(Arc::clone(&state))?;
        Ok(Group::from_state(state))
    }
}

impl<V, C> std::fmt::Debug for GroupBuilder<V, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupBuilder")
            .field("name", &self.name)
            .field("codec", &std::any::type_name::<C>())
            .field("main_capacity", &self.main_capacity)
            .field("hot_capacity", &self.hot_capacity)
            .field("main_ttl", &self.main_ttl)
            .field("hot_ttl", &self.hot_ttl)
            .field("ttls", &self.ttls)
            .field("promotion", &self.promotion)
            .field("cache_backend", &self.backend)
            .finish_non_exhaustive()
    }
}
