//! [`Groupcache`]: the handle applications hold, and the lookup path behind it.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use tracing::field::Empty;

use crate::builder::{Config, GroupcacheBuilder};
use crate::cache::{Entry, Tier};
use crate::codec::Codec;
use crate::flight::{FlightGroup, Role, Superseded};
use crate::log_throttle::{LogThrottle, REPEATED_FAILURE_LOG_INTERVAL};
use crate::outcome::Outcome;
use crate::peer::client::PeerClient;
use crate::peer::server::GroupcacheService;
use crate::peer::status::PeerFailure;
use crate::promotion::HotCachePolicy;
use crate::routing::{Route, Routing};
use crate::stats::{Counters, Stats};
use crate::telemetry::Telemetry;
use crate::{Error, ErrorKind, GroupcachePeer, NotFound, TraceContext, TraceKeys, ValueLoader};

/// A distributed read-through cache: one peer of a cluster.
///
/// Cloning is cheap and every clone is the same cache. See the [crate docs](crate) for the
/// semantics; [`get`](Self::get) and [`remove`](Self::remove) state their contracts.
pub struct Groupcache<V> {
    inner: Arc<Inner<V>>,
}

/// Shared state of one peer. Everything here is immutable or internally synchronised.
pub(crate) struct Inner<V> {
    pub(crate) loader: Arc<dyn ValueLoader<Value = V>>,
    pub(crate) codec: Arc<dyn Codec<V>>,
    /// Values this peer owns.
    pub(crate) main: Tier<V>,
    /// Copies of values other peers own (and of values loaded here as a fallback).
    pub(crate) hot: Tier<V>,
    pub(crate) promotion: Arc<dyn HotCachePolicy>,
    /// One flight per key for this peer's own `get`s: fetch from the owner or load here.
    pub(crate) fetches: Arc<FlightGroup<Fetched<V>>>,
    /// One flight per key for loader calls, shared by this peer's `get`s, fallbacks and
    /// requests from other peers. Kept apart from `fetches` so that a peer request never waits
    /// on a fetch that is itself waiting on another peer (rule 6: no loops, no deadlocks).
    pub(crate) loads: Arc<FlightGroup<Arc<Entry<V>>>>,
    pub(crate) routing: Routing,
    pub(crate) config: Config,
    /// Shared with the peer service, which counts the requests it refuses.
    pub(crate) counters: Arc<Counters>,
    /// Latency histograms and cache gauges (feature `metrics`), if exported.
    pub(crate) telemetry: Option<Arc<Telemetry>>,
    /// How keys appear in spans.
    pub(crate) trace_keys: TraceKeys,
    /// Which loader panics are logged: the first, then one line per interval.
    pub(crate) panic_log: LogThrottle,
}

/// What a fetch flight hands every caller that joined it: the entry, and how it was found.
pub(crate) struct Fetched<V> {
    entry: Arc<Entry<V>>,
    outcome: Outcome,
}

impl<V> Clone for Fetched<V> {
    fn clone(&self) -> Self {
        Fetched {
            entry: Arc::clone(&self.entry),
            outcome: self.outcome,
        }
    }
}

impl<V> Clone for Groupcache<V> {
    fn clone(&self) -> Self {
        Groupcache {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V> std::fmt::Debug for Groupcache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groupcache")
            .field("me", self.inner.routing.me())
            .field("routing", &self.inner.routing)
            .field("main", &self.inner.main)
            .field("hot", &self.inner.hot)
            .finish_non_exhaustive()
    }
}

impl<V> Groupcache<V>
where
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Starts building the cache of peer `me` (the address its gRPC service is reachable at,
    /// as the other peers know it), with `loader` as the source of truth.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use groupcache::{BoxError, Groupcache, ValueLoader};
    ///
    /// struct Db;
    ///
    /// #[groupcache::async_trait]
    /// impl ValueLoader for Db {
    ///     type Value = String;
    ///     async fn load(&self, key: &str) -> Result<String, BoxError> {
    ///         Ok(key.to_uppercase())
    ///     }
    /// }
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let me: std::net::SocketAddr = "10.0.0.1:8080".parse()?;
    /// let cache = Groupcache::builder(me, Db)
    ///     .main_cache_capacity(256 * 1024 * 1024)
    ///     .peer_timeout(Duration::from_millis(500))
    ///     .build();
    /// tokio::spawn(
    ///     cache
    ///         .server_builder()?
    ///         .add_service(cache.grpc_service())
    ///         .serve(me),
    /// );
    /// let peers: [std::net::SocketAddr; 2] = ["10.0.0.1:8080".parse()?, "10.0.0.2:8080".parse()?];
    /// cache.set_peers(peers).await?;
    /// assert_eq!(cache.get("hello").await?, "HELLO");
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(
        me: impl Into<GroupcachePeer>,
        loader: impl ValueLoader<Value = V>,
    ) -> GroupcacheBuilder<V> {
        GroupcacheBuilder::new(me.into(), Arc::new(loader))
    }
}

impl<V: Clone + Send + Sync + 'static> Groupcache<V> {
    pub(crate) fn from_inner(inner: Inner<V>) -> Self {
        Groupcache {
            inner: Arc::new(inner),
        }
    }

    /// Returns the value of `key`, from the first place that has it (a hit clones `V`: make a
    /// large value an `Arc` or `Bytes` so that a hit is a reference-count bump):
    ///
    /// 1. this peer's hot cache, then its main cache;
    /// 2. if this peer owns `key`: the loader, and the value is stored in the main cache;
    /// 3. otherwise the owning peer, over gRPC; the value may be kept in the hot cache
    ///    (see [`HotCachePolicy`]).
    ///
    /// # Concurrent calls for one key
    ///
    /// Callers that miss while a load of `key` is running wait for that load instead of
    /// starting another: one loader call per key on the owner, and at most one request per key
    /// from each other peer, however many callers ask at once (rule 2).
    ///
    /// # Giving up
    ///
    /// The load runs in its own task. A caller that stops waiting (a timeout around `get`, a
    /// dropped future, an aborted task) does not cancel it: the other callers still get the
    /// value, and it still fills the cache (rule 3).
    ///
    /// # Errors
    ///
    /// * [`ErrorKind::KeyTooLong`]: `key` exceeds the maximum key length; nothing was sent.
    /// * [`ErrorKind::NotFound`], [`ErrorKind::Loader`], [`ErrorKind::LoaderPanicked`]: the
    ///   loader's answer, here or on the owner. All callers of one load get the same error
    ///   ([`Error::ptr_eq`]); errors are never cached, so the next `get` tries again (rule 4).
    /// * [`ErrorKind::ValueTooLarge`]: the value's encoding exceeds the maximum value size.
    /// * [`ErrorKind::InvalidRequest`]: the owner refused the request (its key limit is
    ///   smaller than this peer's).
    /// * [`ErrorKind::Abandoned`]: the runtime shut down while the load was running.
    /// * [`ErrorKind::Unauthenticated`], [`ErrorKind::Codec`], [`ErrorKind::Config`]: the
    ///   owner refused this peer's credentials, its reply did not decode, or no groupcache
    ///   service answers at its address. Configuration errors: returned as they are, never
    ///   hidden behind a local load.
    ///
    /// If the owner cannot be reached (connection refused, no answer within the peer
    /// timeout, `Unavailable`), this peer loads the value itself (deduplicated as above),
    /// counts a peer error and returns the value; it is not stored in the main cache, since
    /// this peer does not own it (rule 5). A `get` with a dead or slow owner therefore returns
    /// within the peer timeout plus the load time.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime: loads run as tokio tasks.
    pub async fn get(&self, key: &str) -> Result<V, Error> {
        let inner = &self.inner;
        let started = inner.telemetry.as_ref().map(|_| Instant::now());
        let span = tracing::debug_span!(
            "groupcache.get",
            key = Empty,
            owner = Empty,
            outcome = Empty,
            trace_id = Empty,
            span_id = Empty,
        );
        let (result, outcome) = if span.is_disabled() {
            // Nobody listens: no trace context unless the caller set one.
            inner.lookup(key, TraceContext::current()).await
        } else {
            let context = TraceContext::current()
                .map(|c| c.child())
                .unwrap_or_else(TraceContext::new_root);
            if let Some(shown) = inner.trace_keys.show(key) {
                span.record("key", shown.as_str());
            }
            span.record("trace_id", context.trace_id().as_str());
            span.record("span_id", context.span_id().as_str());
            span.record("owner", inner.routing.owner_of(key).to_string().as_str());
            let found = inner
                .lookup(key, Some(context))
                .instrument(span.clone())
                .await;
            span.record("outcome", found.1.as_str());
            found
        };
        if let (Some(telemetry), Some(started)) = (&inner.telemetry, started) {
            telemetry.observe_get(outcome, started.elapsed());
        }
        result
    }

    /// Removes `key` from this peer's caches and from the owner's.
    ///
    /// After `remove` returns `Ok`, a `get` of `key` on this peer or on the owner loads it
    /// again: loads already running for `key` on either peer still answer their current
    /// callers, but new callers start a new load, and what the old loads read is not kept.
    ///
    /// Other peers are not told: a hot copy they fetched earlier stays valid until it expires
    /// (the hot cache TTL, 60 s by default) or is evicted, so they may serve the old value for
    /// that long (rule 9).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::KeyTooLong`] (nothing is done); otherwise the local copies are removed in
    /// any case, and the error says why the owner could not be told: [`ErrorKind::Peer`] (not
    /// reachable), or its refusal ([`ErrorKind::Unauthenticated`], [`ErrorKind::Config`],
    /// [`ErrorKind::InvalidRequest`]).
    pub async fn remove(&self, key: &str) -> Result<(), Error> {
        let inner = &self.inner;
        inner.check_key(key)?;
        Counters::bump(&inner.counters.removes);
        inner.drop_local(key);
        let Route::Remote(client) = inner.routing.route(key) else {
            return Ok(());
        };
        let told = client.remove(key).await;
        // A `get` that ran while the owner was being told may have fetched the old value
        // again: drop it once more now that the owner no longer has it.
        inner.drop_local(key);
        told.map_err(|failure| match failure {
            PeerFailure::Answer(err) => inner.count_answer(&client, err),
            PeerFailure::Transport(err) => {
                Counters::bump(&inner.counters.peer_errors);
                err
            }
        })
    }

    /// The gRPC service through which other peers fetch from this one. Mount it in your tonic
    /// server, ideally one from [`server_builder`](Self::server_builder); the library never
    /// binds a port. It checks the peer token (if one is configured) and the content type of
    /// every request before reading its body.
    pub fn grpc_service(&self) -> GroupcacheService<V> {
        GroupcacheService::new(Arc::clone(&self.inner))
    }

    /// This peer's address, as given to the builder.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.inner.routing.me().addr()
    }

    /// This peer's identity on the ring.
    pub fn me(&self) -> &GroupcachePeer {
        self.inner.routing.me()
    }

    /// The peer that owns `key` according to this peer's current ring (this peer itself when
    /// the ring is empty).
    pub fn owner_of(&self, key: &str) -> GroupcachePeer {
        self.inner.routing.owner_of(key)
    }

    /// A snapshot of this peer's counters and cache sizes.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    pub(crate) fn inner(&self) -> &Inner<V> {
        &self.inner
    }
}

/// Accessors for black-box tests: whether flights are left behind, how many callers wait.
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
impl<V: Clone + Send + Sync + 'static> Groupcache<V> {
    /// Flights (fetches and loads) running on this peer now. `0` when idle: a flight never
    /// outlives its task.
    pub fn inflight_len(&self) -> usize {
        self.inner.fetches.len() + self.inner.loads.len()
    }

    /// Local `get` callers waiting on the fetch flight for `key`.
    pub fn inflight_waiters(&self, key: &str) -> usize {
        self.inner.fetches.waiters(key)
    }

    /// Callers (local fetches and peer requests) waiting on the loader flight for `key`.
    pub fn inflight_load_waiters(&self, key: &str) -> usize {
        self.inner.loads.waiters(key)
    }
}

// ===== impl Inner: the lookup path =====

impl<V: Clone + Send + Sync + 'static> Inner<V> {
    pub(crate) fn check_key(&self, key: &str) -> Result<(), Error> {
        if key.len() > self.config.max_key_len {
            Counters::bump(&self.counters.rejected_keys);
            return Err(Error::new(
                ErrorKind::KeyTooLong,
                format!(
                    "{} bytes exceeds the maximum key length of {} bytes \
                     (GroupcacheBuilder::max_key_len)",
                    key.len(),
                    self.config.max_key_len
                ),
            )
            .with_key(key));
        }
        Ok(())
    }

    /// The lookup behind `get`: the value, and how it was found.
    async fn lookup(
        self: &Arc<Self>,
        key: &str,
        context: Option<TraceContext>,
    ) -> (Result<V, Error>, Outcome) {
        Counters::bump(&self.counters.gets);
        if let Err(err) = self.check_key(key) {
            return (Err(err), Outcome::Error);
        }
        if let Some(entry) = self.hot.get(key) {
            Counters::bump(&self.counters.hot_hits);
            return (Ok(entry.value.clone()), Outcome::HotHit);
        }
        if let Some(entry) = self.main.get(key) {
            Counters::bump(&self.counters.main_hits);
            return (Ok(entry.value.clone()), Outcome::MainHit);
        }
        Counters::bump(&self.counters.loads);
        let this = Arc::clone(self);
        let owned = key.to_owned();
        let ticket = self.fetches.join(key, move |superseded| {
            // A child of the leader's `get` span; waiters that join later share it.
            let span = tracing::debug_span!("groupcache.fetch");
            async move { this.fetch(owned, superseded, context).await }.instrument(span)
        });
        if ticket.role() == Role::Leader {
            Counters::bump(&self.counters.loads_deduped);
        }
        match ticket.wait().await {
            Ok(fetched) => (Ok(fetched.entry.value.clone()), fetched.outcome),
            Err(err) => (Err(err), Outcome::Error),
        }
    }

    /// The counters and cache sizes; also publishes the sizes as gauges (feature `metrics`).
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.counters.snapshot();
        stats.main_cache = self.main.stats();
        stats.hot_cache = self.hot.stats();
        if let Some(telemetry) = &self.telemetry {
            telemetry.publish_tiers(&stats.main_cache, &stats.hot_cache);
        }
        stats
    }

    fn count_answer(&self, client: &PeerClient, err: Error) -> Error {
        if err.kind() == ErrorKind::Unauthenticated {
            Counters::bump(&self.counters.auth_failures);
            if let Some(since_last) = client.log_refused() {
                tracing::error!(
                    error = %err,
                    similar_since_last = since_last,
                    "peer refused this peer's credentials (repeats are logged at most every {:?}; \
                     Stats::auth_failures counts each)",
                    REPEATED_FAILURE_LOG_INTERVAL
                );
            }
        }
        err
    }

    /// A fetch flight: the value of `key` from the owner, or loaded here.
    async fn fetch(
        self: Arc<Self>,
        key: String,
        superseded: Superseded,
        context: Option<TraceContext>,
    ) -> Result<Fetched<V>, Error> {
        let found = |entry, outcome| Ok(Fetched { entry, outcome });
        // A previous flight may have filled the cache between the caller's miss and now.
        if let Some(entry) = self.main.get(&key) {
            return found(entry, Outcome::MainHit);
        }
        if let Some(entry) = self.hot.get(&key) {
            return found(entry, Outcome::HotHit);
        }
        let client = match self.routing.route(&key) {
            Route::Local => return found(self.load(&key).await?, Outcome::LocalLoad),
            Route::Remote(client) => client,
        };
        let context = context.map(|c| c.child());
        let failure = match client.get(&key, context.as_ref()).await {
            Ok(bytes) => match self.codec.decode(bytes.clone()) {
                Ok(value) => {
                    Counters::bump(&self.counters.peer_loads);
                    let entry = self.keep_fetched(&key, value, bytes, &superseded);
                    return found(entry, Outcome::PeerLoad);
                }
                // Every peer must use the same codec: a reply that does not decode means they
                // do not (or the value type changed in a rolling deploy). Loading locally would
                // hide that, and multiply database load by the number of peers.
                Err(e) => PeerFailure::Answer(
                    Error::new(
                        ErrorKind::Codec,
                        format!(
                            "the owner's reply could not be decoded: {e}; \
                             every peer must use the same codec and value type"
                        ),
                    )
                    .with_key(&key)
                    .with_peer(client.peer())
                    .with_source(e),
                ),
            },
            Err(failure) => failure,
        };
        match failure {
            PeerFailure::Answer(err) => Err(self.count_answer(&client, err)),
            PeerFailure::Transport(err) => {
                Counters::bump(&self.counters.peer_errors);
                Counters::bump(&self.counters.fallback_loads);
                // While an owner is down every request for its keys fails: one line, then
                // one per interval with the count, or the logs drown.
                if let Some(since_last) = client.log_unreachable() {
                    tracing::warn!(
                        key = self.trace_keys.show(&key).as_deref(),
                        owner = %client.peer(),
                        error = %err,
                        similar_since_last = since_last,
                        "owner unreachable; loading locally (repeats are logged at most every \
                         {:?}; Stats::peer_errors counts each)",
                        REPEATED_FAILURE_LOG_INTERVAL
                    );
                }
                found(self.load(&key).await?, Outcome::Fallback)
            }
        }
    }

    /// Wraps a value fetched from its owner, keeping a hot copy if the policy says so.
    fn keep_fetched(
        &self,
        key: &str,
        value: V,
        encoded: bytes::Bytes,
        superseded: &Superseded,
    ) -> Arc<Entry<V>> {
        if !self.promotion.should_promote(key, encoded.len()) {
            return Entry::new(value, encoded, None);
        }
        // Not kept if `remove(key)` ran while we fetched: what we read may predate it.
        let entry = self.hot.insert(key, value, encoded, superseded);
        self.publish_sizes();
        entry
    }

    /// Publishes the tiers' sizes as gauges (feature `metrics`): after each insert or removal,
    /// so that a scrape sees them without anyone calling `stats`. Never on a hit.
    fn publish_sizes(&self) {
        if let Some(telemetry) = &self.telemetry {
            telemetry.publish_tiers(&self.main.stats(), &self.hot.stats());
        }
    }

    /// Loads `key` with the loader, one flight per key, shared with peer requests.
    async fn load(self: &Arc<Self>, key: &str) -> Result<Arc<Entry<V>>, Error> {
        let this = Arc::clone(self);
        let owned = key.to_owned();
        let ticket = self.loads.join(key, move |superseded| {
            // A child of the span that started the load: a fetch, or a peer's request.
            let span = tracing::debug_span!("groupcache.load");
            async move { this.load_now(owned, superseded).await }.instrument(span)
        });
        ticket.wait().await
    }

    /// A load flight: calls the loader, encodes once, stores.
    async fn load_now(
        self: Arc<Self>,
        key: String,
        superseded: Superseded,
    ) -> Result<Arc<Entry<V>>, Error> {
        // A new leader re-checks: the previous load may have stored the value just now. The
        // main cache only: this load may be answering a peer, which never gets a hot copy.
        if let Some(entry) = self.main.get(&key) {
            return Ok(entry);
        }
        let loaded = AssertUnwindSafe(self.loader.load(&key))
            .catch_unwind()
            .await;
        let value = match loaded {
            Ok(Ok(value)) => {
                Counters::bump(&self.counters.local_loads);
                value
            }
            Ok(Err(source)) => {
                Counters::bump(&self.counters.local_load_errors);
                let (kind, detail) = if source.is::<NotFound>() {
                    (ErrorKind::NotFound, String::new())
                } else {
                    (ErrorKind::Loader, source.to_string())
                };
                return Err(Error::new(kind, detail).with_key(&key).with_source(source));
            }
            Err(panic) => {
                Counters::bump(&self.counters.local_load_errors);
                let message = crate::flight::panic_message(&*panic);
                // A loader that panics on every key would log at the load rate.
                if let Some(since_last) = self.panic_log.admit() {
                    tracing::error!(
                        key = self.trace_keys.show(&key).as_deref(),
                        panic = %message,
                        similar_since_last = since_last,
                        "loader panicked (repeats are logged at most every {:?}; \
                         Stats::local_load_errors counts each)",
                        REPEATED_FAILURE_LOG_INTERVAL
                    );
                }
                return Err(Error::new(
                    ErrorKind::LoaderPanicked,
                    format!("loader panicked: {message}"),
                )
                .with_key(&key));
            }
        };
        let encoded = self.codec.encode(&value).map_err(|e| {
            Error::new(
                ErrorKind::Codec,
                format!("the value could not be encoded: {e}"),
            )
            .with_key(&key)
            .with_source(e)
        })?;
        if encoded.len() > self.config.max_value_size {
            return Err(Error::new(
                ErrorKind::ValueTooLarge,
                format!(
                    "encoded value of {} bytes exceeds the maximum value size of {} bytes \
                     (GroupcacheBuilder::max_value_size)",
                    encoded.len(),
                    self.config.max_value_size
                ),
            )
            .with_key(&key));
        }
        // Rule 5: only the owner's main cache holds a value; a fallback or a request routed
        // here by a disagreeing ring is at most a hot copy.
        // Neither is kept if `remove(key)` ran during the load: what we read may predate it.
        if self.routing.owns(&key) {
            let entry = self.main.insert(&key, value, encoded, &superseded);
            // A membership change may have taken the key from us since the check above, after
            // its scan of the main cache.
            if !self.routing.owns(&key) {
                self.main.remove_if_same(&key, &entry);
            }
            self.publish_sizes();
            Ok(entry)
        } else if self.promotion.should_promote(&key, encoded.len()) {
            // The hot copy keeps the decoded value only; the caller, perhaps a peer being
            // answered, gets the bytes too.
            let entry = Entry::new(value.clone(), encoded.clone(), None);
            self.hot.insert(&key, value, encoded, &superseded);
            self.publish_sizes();
            Ok(entry)
        } else {
            Ok(Entry::new(value, encoded, None))
        }
    }

    // ===== serving other peers =====

    /// Answers a peer's `Get`: from the main cache or the loader, never forwarded (rule 6).
    /// Never from the hot cache: a hot copy is only as fresh as its TTL allows, and the asker
    /// would keep it for a TTL of its own, so staleness would add up from peer to peer.
    pub(crate) async fn serve_peer(self: &Arc<Self>, key: &str) -> Result<Arc<Entry<V>>, Error> {
        Counters::bump(&self.counters.server_requests);
        self.check_key(key)?;
        if let Some(entry) = self.main.get(key) {
            return Ok(entry);
        }
        self.load(key).await
    }

    /// Answers a peer's `Remove`.
    pub(crate) fn remove_for_peer(&self, key: &str) -> Result<(), Error> {
        Counters::bump(&self.counters.server_requests);
        self.check_key(key)?;
        self.drop_local(key);
        Ok(())
    }

    /// Drops this peer's copies of `key`, and makes flights running for it start afresh for
    /// new callers and not keep what they read. Flights first: a flight that stores its value
    /// before being marked has it removed by the tier removals that follow. Flights again
    /// after: one that started in between may have read a copy just before it was removed.
    fn drop_local(&self, key: &str) {
        self.fetches.forget(key);
        self.loads.forget(key);
        self.hot.remove(key);
        self.main.remove(key);
        self.fetches.forget(key);
        self.loads.forget(key);
        self.publish_sizes();
    }
}
