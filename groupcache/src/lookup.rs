//! The read path of one group: [`GroupState`], from a `get` to the value.
//!
//! `get` → [`GroupState::lookup`]: hot tier, main tier, then one fetch flight per key
//! ([`GroupState::fetch`]): the owner over gRPC, or [`GroupState::load`] here (one load flight
//! per key, shared with peers' requests), which calls the loader, encodes once and stores.
//! Peers' requests enter at `serve_get`. The user's code (loader, codec, hot cache policy) runs
//! under `user_code`, where its panics are caught (the only other catches guard against a
//! panicking tonic reply decoder, in `peer/client.rs`, and a discovery provider). The loader
//! runs inside the trace context of the `get` or peer request that started its load, so that
//! clients it calls with [`PropagateTrace`](crate::trace::PropagateTrace) join that trace.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tracing::Instrument;

use crate::cache::{Entry, Tier};
use crate::codec::Codec;
use crate::flight::{FlightGroup, Role, Superseded};
use crate::group_builder::Ttls;
use crate::key_rates::KeyRates;
use crate::log_throttle::{LogThrottle, REPEATED_FAILURE_LOG_INTERVAL};
use crate::node::Node;
use crate::outcome::Outcome;
use crate::peer::client::{PeerClient, Removal, Reply};
use crate::peer::status::PeerFailure;
use crate::promotion::{FetchedValue, HotCachePolicy};
use crate::routing::Route;
use crate::stats::{Counters, Stats};
use crate::telemetry::Telemetry;
use crate::trace::TraceContext;
use crate::{Error, ErrorKind, GroupcachePeer, NotFound, ValueLoader};

mod batch;
mod write;

pub use self::write::Invalidated;

/// One group on one peer: its caches, flights, counters, and the user's loader and codec.
pub(crate) struct GroupState<V> {
    name: Arc<str>,
    node: Arc<Node>,
    loader: Arc<dyn ValueLoader<Value = V>>,
    codec: Arc<dyn Codec<V>>,
    /// Values this peer owns.
    main: Tier<V>,
    /// Copies of values other peers own (and of values loaded here as a fallback).
    hot: Tier<V>,
    /// Values this peer owned before the last membership change, kept for the handoff window
    /// for their new owner to ask for; never read by this peer's own lookups.
    handoff: Tier<V>,
    /// Keys removed here during the open handoff window.
    removed: std::sync::Mutex<RemovedSince>,
    /// `NotFound`s cached by the owner (empty unless negative caching is on).
    negatives: Tier<()>,
    ttls: Ttls,
    promotion: Arc<dyn HotCachePolicy>,
    /// As the owner: how often peers ask for each key, to mark the hot ones in answers.
    key_rates: Option<KeyRates>,
    /// One flight per key for this peer's own `get`s: fetch from the owner or load here.
    fetches: Arc<FlightGroup<Fetched<V>>>,
    /// One flight per key for loader calls, shared by this peer's `get`s, fallbacks and
    /// requests from other peers. Kept apart from `fetches` so that a peer request never waits
    /// on a fetch that is itself waiting on another peer (rule 6: no loops, no deadlocks).
    loads: Arc<FlightGroup<Arc<Entry<V>>>>,
    counters: Counters,
    /// Latency histograms and cache gauges (feature `metrics`), if exported.
    telemetry: Option<Telemetry>,
    /// Which panics of the user's code are logged: the first, then one line per interval.
    panic_log: LogThrottle,
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

/// The parts a [`GroupBuilder`](crate::GroupBuilder) assembles.
pub(crate) struct Parts<V> {
    pub(crate) name: Arc<str>,
    pub(crate) node: Arc<Node>,
    pub(crate) loader: Arc<dyn ValueLoader<Value = V>>,
    pub(crate) codec: Arc<dyn Codec<V>>,
    pub(crate) main: Tier<V>,
    pub(crate) hot: Tier<V>,
    pub(crate) handoff: Tier<V>,
    pub(crate) negatives: Tier<()>,
    pub(crate) ttls: Ttls,
    pub(crate) promotion: Arc<dyn HotCachePolicy>,
    pub(crate) key_rates: Option<KeyRates>,
    pub(crate) counters: Counters,
    pub(crate) telemetry: Option<Telemetry>,
}

/// How long a new owner waits for the previous owner's answer in a warm handoff before it
/// loads (at most the peer timeout): long enough for a round trip to a busy peer (a 250 ms
/// deadline missed 19 of 97 asks in a test on an overloaded 2-core machine), short enough that
/// a previous owner that is gone costs little; and after 16 misses in a row, asking stops.
const HANDOFF_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Most keys a group remembers as removed during one handoff window; past it, the group takes
/// nothing over until the next membership change.
const MAX_REMOVED_TRACKED: usize = 4096;

/// The keys a group removed during one handoff window (membership change `change`).
#[derive(Debug, Default)]
struct RemovedSince {
    change: u64,
    keys: std::collections::HashSet<String>,
    overflowed: bool,
}

/// How a hedged fetch was answered: by a peer (the owner or the substitute asked), or by the
/// load this peer ran as the substitute.
enum Hedged<V> {
    Asked(Result<Reply, PeerFailure>, Arc<PeerClient>),
    Loaded(Result<Arc<Entry<V>>, Error>),
}

/// Where a load keeps its value when this peer is not the key's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// At most a hot copy, if the hot cache policy says so (a fallback, a disagreeing ring).
    AsUsual,
    /// In the main cache for at most the hot cache's time to live: this peer is the
    /// substitute of an owner that is out.
    AsSubstitute,
    /// In the handoff tier (for the handoff window, never read by this peer's own lookups):
    /// a peer asked for a key this peer's ring does not give it, so their rings disagree,
    /// which lasts until both have seen the same membership change. Further asks in the
    /// meantime, and the key's owner once it has the new ring, find it there.
    ForAsker,
}

/// Which of the user's code panicked: named in the error and the log line.
#[derive(Debug, Clone, Copy)]
enum UserCode {
    Loader,
    Codec,
    HotCachePolicy,
}

impl<V> std::fmt::Debug for GroupState<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.name)
            .field("me", self.node.me())
            .field("main", &self.main)
            .field("hot", &self.hot)
            .finish_non_exhaustive()
    }
}

impl<V: Clone + Send + Sync + 'static> GroupState<V> {
    pub(crate) fn new(parts: Parts<V>) -> Self {
        GroupState {
            name: parts.name,
            node: parts.node,
            loader: parts.loader,
            codec: parts.codec,
            main: parts.main,
            hot: parts.hot,
            handoff: parts.handoff,
            removed: std::sync::Mutex::default(),
            negatives: parts.negatives,
            ttls: parts.ttls,
            promotion: parts.promotion,
            key_rates: parts.key_rates,
            fetches: Arc::new(FlightGroup::new()),
            loads: Arc::new(FlightGroup::new()),
            counters: parts.counters,
            telemetry: parts.telemetry,
            panic_log: LogThrottle::default(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    pub(crate) fn telemetry(&self) -> Option<&Telemetry> {
        self.telemetry.as_ref()
    }

    /// The key check of every entry point, counted in `rejected_keys`.
    pub(crate) fn check_key(&self, key: &str) -> Result<(), Error> {
        self.node.check_key(key).map_err(|err| {
            self.counters.rejected_keys.bump();
            err.with_group(&self.name)
        })
    }

    /// The counters and cache sizes. No side effects.
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.counters.snapshot();
        stats.main_cache = self.main.stats();
        stats.hot_cache = self.hot.stats();
        stats
    }

    /// Fetch flights and load flights running now.
    #[cfg(feature = "test-util")]
    pub(crate) fn inflight_len(&self) -> usize {
        self.fetches.len() + self.loads.len()
    }

    #[cfg(feature = "test-util")]
    pub(crate) fn fetch_waiters(&self, key: &str) -> usize {
        self.fetches.waiters(key)
    }

    #[cfg(feature = "test-util")]
    pub(crate) fn load_waiters(&self, key: &str) -> usize {
        self.loads.waiters(key)
    }

    /// The lookup behind `get`: the value, and how it was found.
    pub(crate) async fn lookup(
        self: &Arc<Self>,
        key: &str,
        context: Option<TraceContext>,
    ) -> (Result<V, Error>, Outcome) {
        // A hit bumps its hit counter alone; `gets` adds the hits in the snapshot.
        if let Err(err) = self.check_key(key) {
            self.counters.get_not_hit();
            return (Err(err), Outcome::Error);
        }
        if let Some(entry) = self.hot.get(key) {
            self.counters.hot_hit();
            return (Ok(entry.value.clone()), Outcome::HotHit);
        }
        if let Some(entry) = self.main.get(key) {
            self.counters.main_hit();
            return (Ok(entry.value.clone()), Outcome::MainHit);
        }
        self.counters.get_not_hit();
        self.counters.loads.bump();
        let this = Arc::clone(self);
        let owned = key.to_owned();
        // This caller awaits the ticket at once: the fetch runs in its task unless it gives up.
        let ticket = self.fetches.join_inline(key, move |superseded| {
            // A child of the leader's `get` span; waiters that join later share it.
            let span = crate::trace::debug_span_if_on!("groupcache.fetch");
            async move { this.fetch(owned, superseded, context).await }.instrument(span)
        });
        if ticket.role() == Role::Leader {
            self.counters.loads_deduped.bump();
        }
        match ticket.wait().await {
            Ok(fetched) => (Ok(fetched.entry.value.clone()), fetched.outcome),
            Err(err) => (Err(self.tag_abandoned(err, key)), Outcome::Error),
        }
    }

    /// As a key's owner, within the handoff window: tells the key's previous owner to drop the
    /// copy it keeps for handoff, which would otherwise bring the removed value back on the
    /// next miss. Best effort: a previous owner that cannot be told cannot hand over either.
    async fn tell_previous_owner(&self, key: &str) {
        if !self.node.owns(key) {
            return;
        }
        // Short: a write waits for it, and must answer its asker within the peer timeout.
        let within = HANDOFF_TIMEOUT.min(self.node.config().peer_timeout / 4);
        if let Some(previous) = self.node.routing().previous_owner(key)
            && let Err(PeerFailure::Answer(err) | PeerFailure::Transport(err)) = previous
                .remove(&self.name, Removal::FromNewOwner(key), within)
                .await
        {
            tracing::debug!(group = %self.name, previous_owner = %previous.peer(), error = %err,
                "could not tell the previous owner to drop its handoff copy");
        }
    }

    pub(crate) fn count_answer(&self, client: &PeerClient, err: Error) -> Error {
        if matches!(
            err.kind(),
            ErrorKind::UnknownGroup
                | ErrorKind::WrongService
                | ErrorKind::InvalidRequest
                | ErrorKind::Codec
        ) {
            self.counters.peer_refusals.bump();
            if let Some(since_last) = client.log_misconfigured() {
                tracing::error!(
                    group = %self.name,
                    error = %err,
                    similar_since_last = since_last,
                    "the owner's answer means the peers are configured apart (repeats are \
                     logged at most every {:?}; Stats::peer_refusals counts each)",
                    REPEATED_FAILURE_LOG_INTERVAL
                );
            }
        }
        if err.kind() == ErrorKind::Unauthenticated {
            self.counters.auth_failures.bump();
            if let Some(since_last) = client.log_refused() {
                tracing::error!(
                    group = %self.name,
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
        let route = self.node.route(&key);
        let started = tokio::time::Instant::now();
        self.fetch_routed(key, superseded, context, route, (started, 0))
            .await
    }

    /// [`GroupState::fetch`] from `route` on, at attempt `first` of the fetch that started at
    /// `started` (a batched fetch whose request failed goes on at attempt 1).
    async fn fetch_routed(
        self: Arc<Self>,
        key: String,
        superseded: Superseded,
        context: Option<TraceContext>,
        mut route: Route,
        (started, first): (tokio::time::Instant, usize),
    ) -> Result<Fetched<V>, Error> {
        let found = |entry, outcome| Ok(Fetched { entry, outcome });
        let peer_context = context.as_ref().map(TraceContext::child);
        // At most two peers are asked, within one peer timeout in all (rule 10): the owner
        // (or its substitute, if the owner is out), then, if that one does not answer and
        // time is left, the next substitute. Then this peer loads.
        let budget = self.node.config().peer_timeout;
        for attempt in first..2 {
            let left = budget.saturating_sub(started.elapsed());
            if attempt > 0
                && left < budget / 10
                && !matches!(route, Route::Local | Route::Substitute { via: None, .. })
            {
                // The owner used up the deadline (it timed out rather than refused): no time
                // to ask another peer.
                break;
            }
            let (client, substitute_for) = match route {
                Route::Local => {
                    let outcome = self.local_outcome(attempt);
                    // Boxed, here and below: a load's state is larger than an ask's, and this
                    // fetch's future (moved into a box by the flight) would be as large.
                    return found(
                        Box::pin(self.load(&key, context, Keep::AsUsual)).await?,
                        outcome,
                    );
                }
                Route::Substitute { via: None, .. } => {
                    // This peer is the substitute: it loads, and keeps the value as the owner
                    // would, so that the owner's absence costs one load per key, not one per
                    // peer and get.
                    self.counters.rerouted_gets.bump();
                    let outcome = self.local_outcome(attempt);
                    return found(
                        Box::pin(self.load(&key, context, Keep::AsSubstitute)).await?,
                        outcome,
                    );
                }
                Route::Substitute {
                    owner,
                    via: Some(substitute),
                } => {
                    self.counters.rerouted_gets.bump();
                    (substitute, Some(owner))
                }
                Route::Remote(client) => (client, None),
            };
            let asked_owner = substitute_for.is_none();
            let target = Arc::clone(&client);
            let asked = self
                .ask(
                    client,
                    &key,
                    substitute_for.as_ref(),
                    left,
                    peer_context.as_ref(),
                )
                .await;
            let (asked, client) = match asked {
                Hedged::Asked(asked, client) => (asked, client),
                Hedged::Loaded(loaded) => return found(loaded?, Outcome::LocalLoad),
            };
            let err = match asked {
                Ok(reply) => match self.decode(&key, reply.value.clone()) {
                    Ok(value) => {
                        self.counters.peer_loads.bump();
                        if reply.coalesced {
                            self.counters.coalesced_gets.bump();
                        }
                        // A substitute's copy is no fresher than a hot copy: another copy made
                        // of it here would add its time to live to the substitute's.
                        let from_owner = asked_owner && Arc::ptr_eq(&client, &target);
                        let entry = if from_owner {
                            self.keep_fetched(&key, value, reply, &superseded)
                        } else {
                            Entry::new(value, reply.value, None)
                        };
                        return found(entry, Outcome::PeerLoad);
                    }
                    // Every peer must use the same codec: a reply that does not decode means
                    // they do not (or the value type changed in a rolling deploy). Loading
                    // locally would hide that, and multiply database load by the number of
                    // peers.
                    Err(err) => {
                        return Err(self.count_answer(&client, err.with_peer(client.peer())));
                    }
                },
                Err(PeerFailure::Answer(err)) => return Err(self.count_answer(&client, err)),
                Err(PeerFailure::Transport(err)) => err,
            };
            self.counters.peer_errors.bump();
            // While an owner is down every request for its keys fails: one line, then one
            // per interval with the count, or the logs drown. (Its breaker soon opens, and
            // then no request goes to it.)
            if let Some(since_last) = client.log_unreachable() {
                tracing::warn!(
                    group = %self.name,
                    key = self.node.trace_keys().show(&key).as_deref(),
                    peer = %client.peer(),
                    error = %err,
                    similar_since_last = since_last,
                    "peer not answering; asking the key's substitute (repeats are logged at \
                     most every {:?}; Stats::peer_errors counts each)",
                    REPEATED_FAILURE_LOG_INTERVAL
                );
            }
            route = self.node.routing().route_around(&key, client.peer());
        }
        // Neither the owner nor its substitute answered: load here, keeping at most a hot copy.
        self.counters.fallback_loads.bump();
        found(
            Box::pin(self.load(&key, context, Keep::AsUsual)).await?,
            Outcome::Fallback,
        )
    }

    /// Asks `client` for `key` within `within`: hedged if it is the owner and hedging is on
    /// and there is time for it, once otherwise.
    async fn ask(
        self: &Arc<Self>,
        client: Arc<PeerClient>,
        key: &str,
        substitute_for: Option<&GroupcachePeer>,
        within: std::time::Duration,
        context: Option<&TraceContext>,
    ) -> Hedged<V> {
        match (substitute_for, client.hedge_delay()) {
            // Boxed: its state (two requests and a load at once) is several times a single
            // ask's, and would otherwise make every fetch's future that large.
            (None, Some(delay)) if delay < within => {
                Box::pin(self.ask_hedged(client, key, delay, within, context)).await
            }
            (None, _) => {
                let asked = client
                    .get_from_owner(&self.name, key, within, context)
                    .await;
                Hedged::Asked(asked, client)
            }
            (substitute_for, _) => {
                let asked = client
                    .get(&self.name, key, substitute_for, within, context)
                    .await;
                Hedged::Asked(asked, client)
            }
        }
    }

    /// Asks the owner; if it has not answered within `delay`, asks the key's substitute too
    /// (or, if that is this peer, loads the key as the substitute) and takes the first answer
    /// (a failure of one waits for the other). The request not taken is dropped, which cancels
    /// it; a load it started on that peer, or here, still finishes (rule 3).
    async fn ask_hedged(
        self: &Arc<Self>,
        owner: Arc<PeerClient>,
        key: &str,
        delay: std::time::Duration,
        within: std::time::Duration,
        context: Option<&TraceContext>,
    ) -> Hedged<V> {
        let first = owner.get(&self.name, key, None, within, context);
        tokio::pin!(first);
        tokio::select! {
            asked = &mut first => return Hedged::Asked(asked, Arc::clone(&owner)),
            () = tokio::time::sleep(delay) => {}
        }
        let (owner_peer, substitute) = match self.node.routing().route_around(key, owner.peer()) {
            Route::Substitute {
                owner,
                via: Some(substitute),
            } => (owner, substitute),
            Route::Substitute { via: None, .. } => {
                self.counters.hedged_gets.bump();
                let local = self.load(key, None, Keep::AsSubstitute);
                tokio::pin!(local);
                return tokio::select! {
                    asked = &mut first => match asked {
                        Err(PeerFailure::Transport(_)) => Hedged::Loaded(local.await),
                        asked => Hedged::Asked(asked, Arc::clone(&owner)),
                    },
                    loaded = &mut local => match loaded {
                        Ok(entry) => {
                            self.counters.hedge_wins.bump();
                            Hedged::Loaded(Ok(entry))
                        }
                        Err(_) => Hedged::Asked(first.await, Arc::clone(&owner)),
                    },
                };
            }
            Route::Local | Route::Remote(_) => {
                return Hedged::Asked(first.await, Arc::clone(&owner));
            }
        };
        self.counters.hedged_gets.bump();
        let second = substitute.get(
            &self.name,
            key,
            Some(&owner_peer),
            within.saturating_sub(delay),
            context,
        );
        tokio::pin!(second);
        tokio::select! {
            asked = &mut first => match asked {
                Err(PeerFailure::Transport(_)) => {
                    Hedged::Asked(second.await, Arc::clone(&substitute))
                }
                asked => Hedged::Asked(asked, Arc::clone(&owner)),
            },
            asked = &mut second => match asked {
                Ok(reply) => {
                    self.counters.hedge_wins.bump();
                    Hedged::Asked(Ok(reply), Arc::clone(&substitute))
                }
                Err(_) => Hedged::Asked(first.await, Arc::clone(&owner)),
            },
        }
    }

    /// How a load here answers a fetch: as planned, or after a peer did not answer.
    fn local_outcome(&self, attempt: usize) -> Outcome {
        if attempt == 0 {
            Outcome::LocalLoad
        } else {
            self.counters.fallback_loads.bump();
            Outcome::Fallback
        }
    }

    /// Runs a piece of the user's code, turning a panic into its error (logged, throttled).
    fn user_code<T>(
        &self,
        which: UserCode,
        key: &str,
        run: impl FnOnce() -> T,
    ) -> Result<T, Error> {
        std::panic::catch_unwind(AssertUnwindSafe(run))
            .map_err(|panic| self.panicked(which, key, &*panic))
    }

    fn panicked(&self, which: UserCode, key: &str, panic: &(dyn Any + Send)) -> Error {
        let message = crate::flight::panic_message(panic);
        let (kind, what, counted) = match which {
            UserCode::Loader => (
                ErrorKind::LoaderPanicked,
                "loader",
                "Stats::local_load_errors counts each",
            ),
            UserCode::Codec => (ErrorKind::Codec, "codec", "each caller gets the error"),
            UserCode::HotCachePolicy => (
                ErrorKind::Codec,
                "hot cache policy",
                "the value was not promoted",
            ),
        };
        // Code that panics on every key would log at the request rate.
        if let Some(since_last) = self.panic_log.admit() {
            tracing::error!(
                group = %self.name,
                key = self.node.trace_keys().show(key).as_deref(),
                panic = %message,
                similar_since_last = since_last,
                "{what} panicked (repeats are logged at most every {:?}; {counted})",
                REPEATED_FAILURE_LOG_INTERVAL
            );
        }
        Error::new(kind, format!("{what} panicked: {message}"))
            .with_group(&self.name)
            .with_key(key)
    }

    pub(crate) fn decode(&self, key: &str, bytes: Bytes) -> Result<V, Error> {
        self.user_code(UserCode::Codec, key, || self.codec.decode(bytes))?
            .map_err(|e| {
                Error::new(
                    ErrorKind::Codec,
                    format!(
                        "the owner's reply could not be decoded: {e}; \
                         every peer must use the same codec and value type for this group"
                    ),
                )
                .with_group(&self.name)
                .with_key(key)
                .with_source(e)
            })
    }

    pub(crate) fn encode(&self, key: &str, value: &V) -> Result<Bytes, Error> {
        self.user_code(UserCode::Codec, key, || self.codec.encode(value))?
            .map_err(|e| {
                Error::new(
                    ErrorKind::Codec,
                    format!("the value could not be encoded: {e}"),
                )
                .with_group(&self.name)
                .with_key(key)
                .with_source(e)
            })
    }

    /// The value-size check of every value stored: loaded, or written with `set`.
    pub(crate) fn check_size(&self, key: &str, encoded_len: usize) -> Result<(), Error> {
        let max_value_size = self.node.config().max_value_size;
        if encoded_len > max_value_size {
            return Err(Error::new(
                ErrorKind::ValueTooLarge,
                format!(
                    "encoded value of {encoded_len} bytes exceeds the maximum value size of \
                     {max_value_size} bytes (GroupcacheBuilder::max_value_size)"
                ),
            )
            .with_group(&self.name)
            .with_key(key));
        }
        Ok(())
    }

    /// Whether the policy keeps a hot copy of a value fetched from its owner (which marked it
    /// hot or not); a panicking policy keeps none.
    fn should_promote(&self, key: &str, encoded_len: usize, marked_hot: bool) -> bool {
        let weight = (key.len() + encoded_len) as u64;
        let room = || self.hot.has_room_for(weight);
        let fetched = FetchedValue::new(key, encoded_len, marked_hot).with_room(&room);
        self.user_code(UserCode::HotCachePolicy, key, || {
            self.promotion.should_promote_fetched(&fetched)
        })
        .unwrap_or(false)
    }

    /// As the owner, counts a peer's request for `key`: whether the answer marks it hot.
    fn observe_asked(&self, key: &str) -> bool {
        let hot = self
            .key_rates
            .as_ref()
            .is_some_and(|rates| rates.observe(key));
        if hot {
            self.counters.hot_marks.bump();
        }
        hot
    }

    /// Wraps a value fetched from its owner, keeping a hot copy if the policy says so (and
    /// the owner's answer allows one: see `peer/lease.rs`), for no longer than the owner's
    /// entry has left.
    fn keep_fetched(
        &self,
        key: &str,
        value: V,
        reply: Reply,
        superseded: &Superseded,
    ) -> Arc<Entry<V>> {
        let encoded = reply.value;
        let Some(lease) = reply.lease else {
            return Entry::new(value, encoded, None);
        };
        if !self.should_promote(key, encoded.len(), reply.hot) {
            return Entry::new(value, encoded, None);
        }
        // Not kept if `remove(key)` ran while we fetched: what we read may predate it.
        let entry = self
            .hot
            .insert_copy(key, value, encoded, superseded, reply.expires_in, lease);
        // A membership change may have made this peer the owner since the fetch began, after
        // its scan of the hot cache: lookups read the hot cache first, so drop the copy.
        if self.node.owns(key) {
            self.hot.remove_if_same(key, &entry);
        }
        self.publish_sizes();
        entry
    }

    /// Publishes the tiers' sizes as gauges (feature `metrics`): after each insert or removal,
    /// so that a scrape sees them without anyone calling `stats`. Never on a hit.
    pub(crate) fn publish_sizes(&self) {
        if let Some(telemetry) = &self.telemetry {
            telemetry.publish_tiers(&self.main.stats(), &self.hot.stats());
        }
    }

    /// Loads `key` with the loader, one flight per key, shared with peer requests.
    /// `context` is the trace of the caller that starts the load, if any: the loader runs in
    /// a child of it (a caller that joins a running load shares the leader's).
    async fn load(
        self: &Arc<Self>,
        key: &str,
        context: Option<TraceContext>,
        keep: Keep,
    ) -> Result<Arc<Entry<V>>, Error> {
        let this = Arc::clone(self);
        let owned = key.to_owned();
        let ticket = self.loads.join(key, move |superseded| {
            // A child of the span that started the load: a fetch, or a peer's request.
            let span = tracing::debug_span!("groupcache.load");
            async move {
                let load = this.load_now(owned, superseded, keep);
                match context {
                    Some(context) => context.child().scope(load).await,
                    None => load.await,
                }
            }
            .instrument(span)
        });
        ticket
            .wait()
            .await
            .map_err(|err| self.tag_abandoned(err, key))
    }

    /// An `Abandoned` error (made for each waiter by the flight) names its group and key.
    fn tag_abandoned(&self, err: Error, key: &str) -> Error {
        if err.kind() == ErrorKind::Abandoned {
            err.with_group(&self.name).with_key(key)
        } else {
            err
        }
    }

    /// A load flight: calls the loader, encodes once, stores.
    async fn load_now(
        self: Arc<Self>,
        key: String,
        superseded: Superseded,
        keep: Keep,
    ) -> Result<Arc<Entry<V>>, Error> {
        // A new leader re-checks: the previous load may have stored the value just now. The
        // main cache only: this load may be answering a peer, which never gets a hot copy.
        if let Some(entry) = self.main.get(&key) {
            return Ok(entry);
        }
        if self.negatives.get(&key).is_some() {
            self.counters.negative_hits.bump();
            return Err(Error::new(ErrorKind::NotFound, String::new())
                .with_group(&self.name)
                .with_key(&key));
        }
        if let Some(entry) = self.handed_over(&key, &superseded).await {
            return Ok(entry);
        }
        let loaded = match self.user_code(UserCode::Loader, &key, || self.loader.load(&key)) {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
            Err(err) => {
                self.counters.local_load_errors.bump();
                return Err(err);
            }
        };
        let value = match loaded {
            Ok(Ok(value)) => {
                self.counters.local_loads.bump();
                value
            }
            Ok(Err(source)) => {
                self.counters.local_load_errors.bump();
                let (kind, detail) = if source.is::<NotFound>() {
                    if self.node.owns(&key) {
                        // Kept only if negative caching is on (a tier of zero keeps nothing),
                        // and not if the key was written meanwhile.
                        self.negatives.insert(&key, (), Bytes::new(), &superseded);
                    }
                    (ErrorKind::NotFound, String::new())
                } else {
                    (ErrorKind::Loader, source.to_string())
                };
                return Err(Error::new(kind, detail)
                    .with_group(&self.name)
                    .with_key(&key)
                    .with_source(source));
            }
            Err(panic) => {
                self.counters.local_load_errors.bump();
                return Err(self.panicked(UserCode::Loader, &key, &*panic));
            }
        };
        let encoded = self.encode(&key, &value)?;
        self.check_size(&key, encoded.len())?;
        // Rule 5: only the owner's main cache holds a value; a fallback or a request routed
        // here by a disagreeing ring is at most a hot copy.
        // Neither is kept if `remove(key)` ran during the load: what we read may predate it.
        let lease = self.node.config().hot_copy_lease;
        if self.node.owns(&key) {
            let ttl = self.entry_ttl(&key, &value);
            let entry = self
                .main
                .insert_with_ttl(&key, value, encoded, &superseded, ttl);
            // A membership change may have taken the key from us since the check above, after
            // its scan of the main cache.
            if !self.node.owns(&key) {
                self.main.remove_if_same(&key, &entry);
            }
            self.publish_sizes();
            Ok(entry)
        } else if keep == Keep::AsSubstitute {
            // The owner is out and this peer stands in for it. Its removals do not reach
            // this copy once it is back, so the copy lives no longer than a hot copy would,
            // nor than a lease (its writes may not reach this peer), nor the value's own
            // time to live.
            let ttl = [self.hot.ttl(), Some(lease), self.entry_ttl(&key, &value)]
                .into_iter()
                .flatten()
                .min();
            let entry = self
                .main
                .insert_within(&key, value, encoded, &superseded, ttl);
            self.publish_sizes();
            Ok(entry)
        } else if keep == Keep::ForAsker {
            // A copy of exactly its bytes: the handoff tier keeps what it is given (rule 19).
            // For at most a lease: this peer is not the key's owner, so writes of it may not
            // reach this peer.
            let encoded = Bytes::copy_from_slice(&encoded);
            Ok(self
                .handoff
                .insert_within(&key, value, encoded, &superseded, Some(lease)))
        } else if self.should_promote(&key, encoded.len(), false) {
            // The hot copy keeps the decoded value only; the caller, perhaps a peer being
            // answered, gets the bytes too.
            // Loaded here, not fetched from the owner: no lease to serve it under, so it lives
            // no longer than one would last.
            let entry = Entry::new(value.clone(), encoded.clone(), None);
            let ttl = [Some(lease), self.entry_ttl(&key, &value)]
                .into_iter()
                .flatten()
                .min();
            self.hot
                .insert_within(&key, value, encoded, &superseded, ttl);
            self.publish_sizes();
            Ok(entry)
        } else {
            Ok(Entry::new(value, encoded, None))
        }
    }

    /// How long the owner keeps `value`: the loader's choice or the main cache's time to live,
    /// at most the group's maximum, shortened by up to the jitter.
    pub(crate) fn entry_ttl(&self, key: &str, value: &V) -> Option<std::time::Duration> {
        let chosen = self
            .user_code(UserCode::Loader, key, || {
                self.loader.time_to_live(key, value)
            })
            .ok()
            .flatten()
            .or(self.main.ttl());
        let capped = match (chosen, self.ttls.max) {
            (Some(ttl), Some(max)) => Some(ttl.min(max)),
            (chosen, max) => chosen.or(max),
        }?;
        Some(
            capped
                .min(crate::cache::MAX_TTL)
                .mul_f64(1.0 - self.ttls.jitter * fastrand::f64()),
        )
    }

    /// Warm handoff: if this peer became the owner of `key` in the last membership change,
    /// the value from the key's previous owner, if it still holds it (asked once, under a
    /// short deadline), stored as a load would store it.
    async fn handed_over(&self, key: &str, superseded: &Superseded) -> Option<Arc<Entry<V>>> {
        if !self.node.owns(key) || self.removed_since_change(key) {
            return None;
        }
        let routing = self.node.routing();
        let previous = routing.previous_owner(key)?;
        // A quarter of the peer timeout at most: a peer asking this one for the key must get
        // its answer, handed over or loaded, before its own deadline.
        let within = HANDOFF_TIMEOUT.min(self.node.config().peer_timeout / 4);
        let held = previous
            .held(&self.name, key, within)
            .await
            .and_then(|bytes| self.decode(key, bytes.clone()).ok().map(|v| (v, bytes)));
        routing.handoff_result(held.is_some());
        let Some((value, encoded)) = held else {
            self.counters.handoff_misses.bump();
            return None;
        };
        self.counters.handoff_hits.bump();
        let entry = self.main.insert(key, value, encoded, superseded);
        if !self.node.owns(key) {
            self.main.remove_if_same(key, &entry);
        }
        self.publish_sizes();
        Some(entry)
    }

    /// Notes that `key` was removed here during the open handoff window, if any: it must not
    /// be taken over from the previous owner, which may not have heard of the removal.
    pub(crate) fn note_removed(&self, key: &str) {
        let Some(mut removed) = self.removed_in_window() else {
            return;
        };
        if removed.keys.len() >= MAX_REMOVED_TRACKED {
            removed.overflowed = true;
        } else {
            removed.keys.insert(key.to_owned());
        }
    }

    /// Whether `key` (or, past the bound, any key) was removed during the open handoff window.
    fn removed_since_change(&self, key: &str) -> bool {
        self.removed_in_window()
            .is_some_and(|removed| removed.overflowed || removed.keys.contains(key))
    }

    /// The keys removed during the open handoff window (emptied if they were noted in an
    /// earlier one), or `None` if no window is open.
    fn removed_in_window(&self) -> Option<std::sync::MutexGuard<'_, RemovedSince>> {
        let change = self.node.routing().handoff_change()?;
        let mut removed = self
            .removed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if removed.change != change {
            *removed = RemovedSince {
                change,
                ..RemovedSince::default()
            };
        }
        Some(removed)
    }

    /// Answers a peer's `Get`: from the main cache or the loader, never forwarded (rule 6).
    /// Never from the hot cache: a hot copy is only as fresh as its TTL allows, and the asker
    /// would keep it for a TTL of its own, so staleness would add up from peer to peer.
    /// Asked as the substitute of `substitute_for` (the asker found it out), this peer keeps
    /// what it loads, provided its own ring agrees that peer owns the key.
    async fn serve_get_now(
        self: Arc<Self>,
        key: String,
        substitute_for: Option<GroupcachePeer>,
        context: Option<TraceContext>,
    ) -> Result<Served, Error> {
        self.check_key(&key)?;
        let hot = self.observe_asked(&key);
        let keep = match substitute_for {
            Some(owner)
                if owner != *self.node.me() && self.node.routing().owner_of(&key) == owner =>
            {
                self.counters.substitute_serves.bump();
                Keep::AsSubstitute
            }
            _ if !self.node.owns(&key) => Keep::ForAsker,
            _ => Keep::AsUsual,
        };
        // The handoff tier too: what this peer owned until a membership change the asker has
        // not seen yet, or loaded for another asker whose ring disagrees with this one's.
        let entry = match self.main.get(&key).or_else(|| self.handoff.get(&key)) {
            Some(entry) => entry,
            None => self.load(&key, context, keep).await?,
        };
        Ok(Served {
            value: entry.encoded.clone(),
            expires_in: entry.remaining(),
            hot,
        })
    }

    /// Drops this peer's copies of `key`, and makes flights running for it start afresh for
    /// new callers and not keep what they read. Flights first: a flight that stores its value
    /// before being marked has it removed by the tier removals that follow. Flights again
    /// after: one that started in between may have read a copy just before it was removed.
    pub(crate) fn drop_local(&self, key: &str) {
        self.fetches.forget(key);
        self.loads.forget(key);
        self.note_removed(key);
        self.hot.remove(key);
        self.main.remove(key);
        self.handoff.remove(key);
        self.negatives.remove(key);
        self.fetches.forget(key);
        self.loads.forget(key);
        self.publish_sizes();
    }

    /// [`GroupState::drop_local`] for every key: `clear`.
    pub(crate) fn drop_all(&self) {
        self.fetches.forget_all();
        self.loads.forget_all();
        self.forget_handoffs();
        self.hot.clear();
        self.main.clear();
        self.handoff.clear();
        self.negatives.clear();
        self.fetches.forget_all();
        self.loads.forget_all();
        self.publish_sizes();
    }

    /// Takes nothing over from a previous owner until the next membership change.
    fn forget_handoffs(&self) {
        if let Some(mut removed) = self.removed_in_window() {
            removed.keys.clear();
            removed.overflowed = true;
        }
    }
}

/// A peer's `Get` answered: the encoded value and what the entry has left to live.
pub(crate) struct Served {
    pub(crate) value: Bytes,
    pub(crate) expires_in: Option<std::time::Duration>,
    /// This peer, as the owner, marks the key hot (see `key_rates.rs`).
    pub(crate) hot: bool,
}

/// What the peer service needs of a group, whatever its value type.
pub(crate) trait HostedGroup: Send + Sync + 'static {
    /// Answers a peer's `Get` with the encoded value; a load it starts runs in `context`.
    fn serve_get(
        self: Arc<Self>,
        key: String,
        substitute_for: Option<GroupcachePeer>,
        context: Option<TraceContext>,
    ) -> BoxFuture<'static, Result<Served, Error>>;
    /// Answers a peer's `GetMany`: each key as `serve_get` answers it, concurrently; one
    /// result per key, in order.
    fn serve_get_many(
        self: Arc<Self>,
        keys: Vec<String>,
        context: Option<TraceContext>,
    ) -> BoxFuture<'static, Vec<Result<Served, Error>>>;
    /// Answers a peer's `held_only` `Get`: the encoded value if this peer holds it.
    fn serve_held(&self, key: &str) -> Result<Option<Bytes>, Error>;
    /// Answers a peer's `Remove` of `keys` (or of every key, `clear`) as their owner: the
    /// members that did not acknowledge the invalidation. `from_new_owner` when the key's new
    /// owner sends it: then the keys are dropped here and no one else is told.
    fn serve_remove(
        self: Arc<Self>,
        keys: Vec<String>,
        clear: bool,
        from_new_owner: bool,
    ) -> BoxFuture<'static, Result<Vec<GroupcachePeer>, Error>>;
    /// Answers a peer's `Set` as the key's owner, as `serve_remove` does.
    fn serve_set(
        self: Arc<Self>,
        key: String,
        encoded: Bytes,
    ) -> BoxFuture<'static, Result<Vec<GroupcachePeer>, Error>>;
    /// Applies an owner's invalidation: drops this peer's copies of `key` (every key if `None`).
    fn invalidated(&self, key: Option<&str>);
    /// The group's stats.
    fn stats(&self) -> Stats;
    /// Drops what the new ring no longer lets this peer keep; returns how many values.
    fn membership_changed(&self) -> usize;
    /// The state itself, for [`Groupcache::get_group`](crate::Groupcache::get_group).
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<V: Clone + Send + Sync + 'static> HostedGroup for GroupState<V> {
    fn serve_get(
        self: Arc<Self>,
        key: String,
        substitute_for: Option<GroupcachePeer>,
        context: Option<TraceContext>,
    ) -> BoxFuture<'static, Result<Served, Error>> {
        self.counters.server_requests.bump();
        Box::pin(self.serve_get_now(key, substitute_for, context))
    }

    fn serve_get_many(
        self: Arc<Self>,
        keys: Vec<String>,
        context: Option<TraceContext>,
    ) -> BoxFuture<'static, Vec<Result<Served, Error>>> {
        self.counters.server_requests.bump();
        Box::pin(self.serve_get_many_now(keys, context))
    }

    fn serve_held(&self, key: &str) -> Result<Option<Bytes>, Error> {
        self.check_key(key)?;
        // Never a hot copy (its value may predate a removal the owner saw), nor a substitute's
        // copy or anything else with a deadline (the new owner would give it a fresh one).
        let owned = self
            .main
            .get(key)
            .filter(|entry| !entry.expires() && self.node.owns(key));
        Ok(owned
            .or_else(|| self.handoff.get(key))
            .map(|entry| entry.encoded.clone()))
    }

    fn serve_remove(
        self: Arc<Self>,
        keys: Vec<String>,
        clear: bool,
        from_new_owner: bool,
    ) -> BoxFuture<'static, Result<Vec<GroupcachePeer>, Error>> {
        Box::pin(async move {
            self.counters.server_requests.bump();
            if clear {
                return Ok(self.apply_clear().await);
            }
            for key in &keys {
                self.check_key(key)?;
            }
            if from_new_owner {
                for key in &keys {
                    self.drop_local(key);
                }
                return Ok(Vec::new());
            }
            Ok(self.apply_removal(&keys).await)
        })
    }

    fn serve_set(
        self: Arc<Self>,
        key: String,
        encoded: Bytes,
    ) -> BoxFuture<'static, Result<Vec<GroupcachePeer>, Error>> {
        Box::pin(async move {
            self.counters.server_requests.bump();
            self.check_key(&key)?;
            self.check_size(&key, encoded.len())?;
            let value = self.decode(&key, encoded.clone())?;
            Ok(self.apply_set(&key, value, encoded).await)
        })
    }

    fn invalidated(&self, key: Option<&str>) {
        match key {
            Some(key) => self.drop_local(key),
            None => self.drop_all(),
        }
    }

    fn stats(&self) -> Stats {
        GroupState::stats(self)
    }

    fn membership_changed(&self) -> usize {
        // Hot copies of values now owned leave the hot cache, which lookups read first: the
        // main cache is now their only home. Values no longer owned leave the main cache for the
        // handoff tier, which this peer's own lookups never read: it hands them to their new
        // owner when that one asks (warm handoff), for the handoff window.
        // Copies kept for a handoff of keys this peer owns again are dropped too: removals
        // sent to the other owner meanwhile did not reach them.
        // Every hot copy goes: one made under the lease of a peer that no longer owns its key
        // would be renewed by that peer while writes go to the new owner. Refilling costs a
        // fetch per key, never a load.
        let mut dropped = self.hot.clear() + self.handoff.retain(|key| !self.node.owns(key));
        let leaving = self.main.entries_where(|key| !self.node.owns(key));
        dropped += leaving.len();
        let never = Superseded::default();
        for (key, entry) in leaving {
            // An entry with a deadline is not handed over: the new owner would give it a
            // fresh one (replies do not carry remaining life yet). Nor is a substitute's copy
            // (it has the hot cache's deadline).
            if entry.expires() {
                self.main.remove_if_same(&key, &entry);
                continue;
            }
            // Copied first, then removed from the main cache only if still the same: a
            // `remove(key)` meanwhile (which clears the main cache, then the handoff tier)
            // either finds the copy or makes the removal here fail, and then the copy goes.
            let copy =
                self.handoff
                    .insert(&key, entry.value.clone(), entry.encoded.clone(), &never);
            if !self.main.remove_if_same(&key, &entry) {
                self.handoff.remove_if_same(&key, &copy);
            }
        }
        self.publish_sizes();
        dropped
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
