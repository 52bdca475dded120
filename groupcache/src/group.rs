//! [`Group`]: the handle of one named cache, where applications `get` values.

use std::sync::Arc;
use std::time::Instant;

use crate::trace::debug_spans_may_be_on as debug_may_be_on;
use tracing::Instrument;
use tracing::field::Empty;

use crate::lookup::GroupState;
use crate::stats::Stats;
use crate::trace::TraceContext;
use crate::{Error, GroupcachePeer};

/// One named cache of a peer set, with its own loader, value type, codec and capacities (Go
/// groupcache's `Group`). From [`Groupcache::group`](crate::Groupcache::group).
///
/// Cloning is cheap and every clone is the same group. See the [crate docs](crate) for the
/// semantics; [`get`](Self::get), [`get_many`](Self::get_many) and [`remove`](Self::remove)
/// state their contracts.
pub struct Group<V> {
    state: Arc<GroupState<V>>,
}

impl<V> Clone for Group<V> {
    fn clone(&self) -> Self {
        Group {
            state: Arc::clone(&self.state),
        }
    }
}

impl<V> std::fmt::Debug for Group<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.state, f)
    }
}

impl<V: Clone + Send + Sync + 'static> Group<V> {
    pub(crate) fn from_state(state: Arc<GroupState<V>>) -> Self {
        Group { state }
    }

    /// Returns the value of `key`, from the first place that has it (a hit clones `V`: make a
    /// large value an `Arc` or `Bytes` so that a hit is a reference-count bump):
    ///
    /// 1. this peer's hot cache, then its main cache;
    /// 2. if this peer owns `key`: the loader, and the value is stored in the main cache;
    /// 3. otherwise the owning peer, over gRPC; the value may be kept in the hot cache
    ///    (see [`HotCachePolicy`](crate::cache::HotCachePolicy)).
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
    /// * [`ErrorKind::Codec`]: the value did not encode, or the owner's reply did not decode.
    /// * [`ErrorKind::Abandoned`]: the runtime shut down while the load was running.
    /// * Configuration errors, returned as they are, never hidden behind a local load:
    ///   [`ErrorKind::UnknownGroup`] (the owner does not host this group),
    ///   [`ErrorKind::Unauthenticated`] (it refused this peer's credentials),
    ///   [`ErrorKind::InvalidRequest`] (it refused the request: its key limit is smaller than
    ///   this peer's), [`ErrorKind::WrongService`] (no groupcache service answers at its
    ///   address).
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
    ///
    /// # Example
    ///
    /// ```
    /// # use groupcache::{BoxError, Groupcache, NotFound, ValueLoader};
    /// # struct Users;
    /// # #[groupcache::async_trait]
    /// # impl ValueLoader for Users {
    /// #     type Value = String;
    /// #     async fn load(&self, key: &str) -> Result<String, BoxError> {
    /// #         key.strip_prefix("user-").map(|id| format!("user #{id}")).ok_or_else(|| NotFound.into())
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let cache = Groupcache::builder("127.0.0.1:8080".parse::<std::net::SocketAddr>()?).build();
    /// # let users = cache.group("users", Users).build()?;
    /// use groupcache::ErrorKind;
    ///
    /// assert_eq!(users.get("user-42").await?, "user #42");
    /// match users.get("nobody").await {
    ///     Err(err) if err.kind() == ErrorKind::NotFound => {} // an answer, not a failure
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// [`ErrorKind::KeyTooLong`]: crate::ErrorKind::KeyTooLong
    /// [`ErrorKind::NotFound`]: crate::ErrorKind::NotFound
    /// [`ErrorKind::Loader`]: crate::ErrorKind::Loader
    /// [`ErrorKind::LoaderPanicked`]: crate::ErrorKind::LoaderPanicked
    /// [`ErrorKind::ValueTooLarge`]: crate::ErrorKind::ValueTooLarge
    /// [`ErrorKind::Codec`]: crate::ErrorKind::Codec
    /// [`ErrorKind::Abandoned`]: crate::ErrorKind::Abandoned
    /// [`ErrorKind::UnknownGroup`]: crate::ErrorKind::UnknownGroup
    /// [`ErrorKind::Unauthenticated`]: crate::ErrorKind::Unauthenticated
    /// [`ErrorKind::InvalidRequest`]: crate::ErrorKind::InvalidRequest
    /// [`ErrorKind::WrongService`]: crate::ErrorKind::WrongService
    pub async fn get(&self, key: &str) -> Result<V, Error> {
        let state = &self.state;
        let started = state.telemetry().map(|_| Instant::now());
        let span = debug_may_be_on()
            .then(|| {
                tracing::debug_span!(
                    "groupcache.get",
                    group = %state.name(),
                    key = Empty,
                    owner = Empty,
                    outcome = Empty,
                    trace_id = Empty,
                    span_id = Empty,
                )
            })
            .filter(|span| !span.is_disabled());
        let (result, outcome) = if let Some(span) = span {
            let context =
                TraceContext::current().map_or_else(TraceContext::new_root, |c| c.child());
            if let Some(shown) = state.node().trace_keys().show(key) {
                span.record("key", shown.as_str());
            }
            span.record("trace_id", context.trace_id().as_str());
            span.record("span_id", context.span_id().as_str());
            span.record(
                "owner",
                state.node().routing().owner_of(key).to_string().as_str(),
            );
            let found = state
                .lookup(key, Some(context))
                .instrument(span.clone())
                .await;
            span.record("outcome", found.1.as_str());
            found
        } else {
            // Nobody listens: no trace context unless the caller set one.
            state.lookup(key, TraceContext::current()).await
        };
        if let (Some(telemetry), Some(started)) = (state.telemetry(), started) {
            telemetry.observe_get(outcome, started.elapsed());
        }
        result
    }

    /// Returns the values of `keys`, in their order, with one result each: one request to
    /// each owner for all of its keys instead of one per key.
    ///
    /// Each key is looked up as by [`get`](Self::get): hits in this peer's hot and main
    /// caches are answered without a request; keys this peer owns are loaded here. The missing
    /// keys of each other owner are asked for in one `GetMany` request (of at most
    /// [`MAX_BATCH_KEYS`](crate::defaults::MAX_BATCH_KEYS) keys: more are split into several
    /// requests, sent at once; not hedged). Keys whose owner is out go to its substitute one by
    /// one, as a `get` sends them. A duplicate key shares its first occurrence's lookup.
    ///
    /// # Concurrent calls, giving up
    ///
    /// Each key joins the same flights as a `get` of it: a key already being fetched (by a
    /// `get` or another `get_many`) waits for that fetch, and a `get` that starts while this
    /// call fetches a key waits for this call's. So each key is still loaded once in the
    /// cluster and asked for at most once per peer (rule 2), however batches and single gets
    /// overlap. The requests run in tasks of their own: a caller that stops waiting cancels
    /// none of them (rule 3).
    ///
    /// # Errors
    ///
    /// Per key: one key's error does not fail the others. Each error is the one
    /// [`get`](Self::get) would have returned for that key (for example
    /// [`ErrorKind::KeyTooLong`](crate::ErrorKind::KeyTooLong) for that key alone, or the
    /// owner's loader error). If an owner's batch request fails in transport, each of its keys
    /// goes on as a `get` of it would after its request failed (the key's substitute, then a
    /// load here), within the same peer timeout.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime: fetches run as tokio tasks.
    ///
    /// # Example
    ///
    /// ```
    /// # use groupcache::{BoxError, Groupcache, NotFound, ValueLoader};
    /// # struct Users;
    /// # #[groupcache::async_trait]
    /// # impl ValueLoader for Users {
    /// #     type Value = String;
    /// #     async fn load(&self, key: &str) -> Result<String, BoxError> {
    /// #         key.strip_prefix("user-").map(|id| format!("user #{id}")).ok_or_else(|| NotFound.into())
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let cache = Groupcache::builder("127.0.0.1:8080".parse::<std::net::SocketAddr>()?).build();
    /// # let users = cache.group("users", Users).build()?;
    /// use groupcache::ErrorKind;
    ///
    /// let found = users.get_many(["user-1", "nobody", "user-2", "user-1"]).await;
    /// assert_eq!(found[0].as_deref().ok(), Some("user #1"));
    /// assert_eq!(found[1].as_ref().unwrap_err().kind(), ErrorKind::NotFound);
    /// assert_eq!(found[2].as_deref().ok(), Some("user #2"));
    /// assert_eq!(found[3].as_deref().ok(), Some("user #1"));
    /// assert_eq!(users.stats().local_loads, 2, "user-1 loaded once");
    /// # Ok(()) }
    /// ```
    pub async fn get_many<K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Vec<Result<V, Error>> {
        let keys: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
        let state = &self.state;
        let started = state.telemetry().map(|_| Instant::now());
        let span = debug_may_be_on()
            .then(|| {
                tracing::debug_span!(
                    "groupcache.get_many",
                    group = %state.name(),
                    keys = keys.len(),
                    trace_id = Empty,
                    span_id = Empty,
                )
            })
            .filter(|span| !span.is_disabled());
        let found = if let Some(span) = span {
            let context =
                TraceContext::current().map_or_else(TraceContext::new_root, |c| c.child());
            span.record("trace_id", context.trace_id().as_str());
            span.record("span_id", context.span_id().as_str());
            state.get_many(&keys, Some(context)).instrument(span).await
        } else {
            state.get_many(&keys, TraceContext::current()).await
        };
        // Every key took as long as the whole call.
        if let (Some(telemetry), Some(started)) = (state.telemetry(), started) {
            let elapsed = started.elapsed();
            for (_, outcome) in &found {
                telemetry.observe_get(*outcome, elapsed);
            }
        }
        found.into_iter().map(|(result, _)| result).collect()
    }

    /// Removes `key` everywhere: from its owner, and from every peer's copies.
    ///
    /// The key's owner drops it and tells every other member to drop its copy (one batched,
    /// numbered invalidation per member; see the README's Consistency section). `remove`
    /// returns once every member has acknowledged, or once the owner has waited three quarters
    /// of the peer timeout ([`GroupcacheBuilder::peer_timeout`](crate::GroupcacheBuilder::peer_timeout))
    /// for them (within the handoff window after a membership change, plus at most a quarter
    /// for telling the key's previous owner), plus the trip to a remote owner;
    /// [`Invalidated::unacknowledged`](crate::Invalidated::unacknowledged) names the members
    /// that did not answer in time. Then a `get` of `key` that starts on any member that
    /// acknowledged returns the new value, unless that member routes the owner's keys to a
    /// substitute because the owner does not answer it; a member that did not acknowledge, or
    /// routes around the owner, serves old values for at most the hot copy lease
    /// ([`GroupcacheBuilder::hot_copy_lease`](crate::GroupcacheBuilder::hot_copy_lease)) more.
    ///
    /// Loads and fetches already running for `key` anywhere still answer their current
    /// callers, but new callers start afresh, and nothing the old ones read is kept.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::KeyTooLong`](crate::ErrorKind::KeyTooLong) (nothing is done); otherwise
    /// this peer's copies are removed in any case, and the error says why the owner could not be
    /// told: [`ErrorKind::Peer`](crate::ErrorKind::Peer) (not reachable; if its breaker is
    /// open, its substitute was told instead, which told the others), or its refusal (for
    /// example [`ErrorKind::UnknownGroup`](crate::ErrorKind::UnknownGroup) or
    /// [`ErrorKind::Unauthenticated`](crate::ErrorKind::Unauthenticated)).
    ///
    /// ```
    /// # use groupcache::{BoxError, Groupcache, NotFound, ValueLoader};
    /// # struct Users;
    /// # #[groupcache::async_trait]
    /// # impl ValueLoader for Users {
    /// #     type Value = String;
    /// #     async fn load(&self, key: &str) -> Result<String, BoxError> {
    /// #         key.strip_prefix("user-").map(|id| format!("user #{id}")).ok_or_else(|| NotFound.into())
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let cache = Groupcache::builder("127.0.0.1:8080".parse::<std::net::SocketAddr>()?).build();
    /// # let users = cache.group("users", Users).build()?;
    /// users.get("user-7").await?;
    /// let removed = users.remove("user-7").await?; // after a write to the database
    /// assert!(removed.everywhere()); // no other member to tell here
    /// assert_eq!(users.get("user-7").await?, "user #7"); // loaded again
    /// assert_eq!(users.stats().local_loads, 2);
    /// # Ok(()) }
    /// ```
    pub async fn remove(&self, key: &str) -> Result<crate::Invalidated, Error> {
        self.state.remove_keys(vec![key.to_owned()]).await
    }

    /// [`remove`](Self::remove) for many keys: one request to each owner for all of its keys
    /// (and one invalidation batch from each owner to each member). The members that did not
    /// acknowledge are gathered from every owner.
    ///
    /// # Errors
    ///
    /// As [`remove`](Self::remove); a key that is too long fails the call before anything is
    /// done. If one owner cannot be told, the others still are, and the error names that one.
    ///
    /// ```
    /// # use groupcache::{BoxError, Groupcache, NotFound, ValueLoader};
    /// # struct Users;
    /// # #[groupcache::async_trait]
    /// # impl ValueLoader for Users {
    /// #     type Value = String;
    /// #     async fn load(&self, key: &str) -> Result<String, BoxError> {
    /// #         key.strip_prefix("user-").map(|id| format!("user #{id}")).ok_or_else(|| NotFound.into())
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let cache = Groupcache::builder("127.0.0.1:8080".parse::<std::net::SocketAddr>()?).build();
    /// # let users = cache.group("users", Users).build()?;
    /// users.get("user-1").await?;
    /// users.get("user-2").await?;
    /// users.remove_many(["user-1", "user-2"]).await?;
    /// assert_eq!(users.stats().main_cache.entries, 0);
    /// # Ok(()) }
    /// ```
    pub async fn remove_many<K: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<crate::Invalidated, Error> {
        let keys = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
        self.state.remove_keys(keys).await
    }

    /// Removes every key of this group, everywhere: every member drops what it owns and tells
    /// the others to drop their copies, as [`remove`](Self::remove) does for one key. A
    /// value that a member still serving the old state hands out meanwhile is dropped again
    /// by the invalidations that follow, so once `clear` returns no member that acknowledged
    /// holds anything from before it.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Peer`](crate::ErrorKind::Peer) or a refusal, for the first member that
    /// could not be told (its keys stay cached there); the others are cleared.
    pub async fn clear(&self) -> Result<crate::Invalidated, Error> {
        self.state.clear().await
    }

    /// Stores `value` for `key` without loading it (write-through): encoded once, here (the
    /// owner decodes it to keep the value beside the bytes, which it keeps as they came), stored
    /// in the owner's main cache with the time to live the loader chooses for it
    /// ([`ValueLoader::time_to_live`](crate::ValueLoader::time_to_live)), then every other
    /// member's copies are dropped as by [`remove`](Self::remove). A load or fetch of `key`
    /// that began before `set` stores nothing. Write the source of truth first: if the owner's
    /// entry is evicted, the next `get` loads it from there.
    ///
    /// # Errors
    ///
    /// As [`remove`](Self::remove), and [`ErrorKind::Codec`](crate::ErrorKind::Codec) or
    /// [`ErrorKind::ValueTooLarge`](crate::ErrorKind::ValueTooLarge) (nothing is done). If the
    /// owner is out, the value is not stored anywhere; its copies are removed.
    ///
    /// ```
    /// # use groupcache::{BoxError, Groupcache, NotFound, ValueLoader};
    /// # struct Users;
    /// # #[groupcache::async_trait]
    /// # impl ValueLoader for Users {
    /// #     type Value = String;
    /// #     async fn load(&self, key: &str) -> Result<String, BoxError> {
    /// #         key.strip_prefix("user-").map(|id| format!("user #{id}")).ok_or_else(|| NotFound.into())
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let cache = Groupcache::builder("127.0.0.1:8080".parse::<std::net::SocketAddr>()?).build();
    /// # let users = cache.group("users", Users).build()?;
    /// users.set("user-7", "Ada".to_owned()).await?;
    /// assert_eq!(users.get("user-7").await?, "Ada");
    /// assert_eq!(users.stats().local_loads, 0, "no load ran");
    /// # Ok(()) }
    /// ```
    pub async fn set(&self, key: &str, value: V) -> Result<crate::Invalidated, Error> {
        self.state.set(key, value).await
    }

    /// The group's name, as every peer knows it.
    #[must_use]
    pub fn name(&self) -> &str {
        self.state.name()
    }

    /// The peer that owns `key` according to this peer's current ring.
    #[must_use]
    pub fn owner_of(&self, key: &str) -> GroupcachePeer {
        self.state.node().routing().owner_of(key)
    }

    /// The peer a get of `key` asks now: the owner, its substitute while the owner is out, or
    /// this peer; see [`Groupcache::route_of`](crate::Groupcache::route_of).
    #[must_use]
    pub fn route_of(&self, key: &str) -> GroupcachePeer {
        self.state.node().routing().route_of(key)
    }

    /// A snapshot of this group's counters and cache sizes on this peer. Reads only.
    ///
    /// ```
    /// # use groupcache::{BoxError, Groupcache, NotFound, ValueLoader};
    /// # struct Users;
    /// # #[groupcache::async_trait]
    /// # impl ValueLoader for Users {
    /// #     type Value = String;
    /// #     async fn load(&self, key: &str) -> Result<String, BoxError> {
    /// #         key.strip_prefix("user-").map(|id| format!("user #{id}")).ok_or_else(|| NotFound.into())
    /// #     }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let cache = Groupcache::builder("127.0.0.1:8080".parse::<std::net::SocketAddr>()?).build();
    /// # let users = cache.group("users", Users).build()?;
    /// users.get("user-1").await?;
    /// users.get("user-1").await?;
    /// let stats = users.stats();
    /// assert_eq!((stats.gets, stats.main_hits, stats.local_loads), (2, 1, 1));
    /// assert_eq!(stats.main_cache.entries, 1);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.state.stats()
    }
}

/// Accessors for black-box tests: whether flights are left behind, how many callers wait.
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
impl<V: Clone + Send + Sync + 'static> Group<V> {
    /// Flights (fetches and loads) running on this peer now. `0` when idle: a flight never
    /// outlives its task.
    #[must_use]
    pub fn inflight_len(&self) -> usize {
        self.state.inflight_len()
    }

    /// Local `get` callers waiting on the fetch flight for `key`.
    #[must_use]
    pub fn inflight_waiters(&self, key: &str) -> usize {
        self.state.fetch_waiters(key)
    }

    /// Callers (local fetches and peer requests) waiting on the loader flight for `key`.
    #[must_use]
    pub fn inflight_load_waiters(&self, key: &str) -> usize {
        self.state.load_waiters(key)
    }

    /// Gets (of any group on this peer set) queued to share a request to their owner, with
    /// [`coalesce_gets`](crate::GroupcacheBuilder::coalesce_gets) on.
    #[must_use]
    pub fn queued_gets(&self) -> usize {
        self.state
            .node()
            .routing()
            .clients()
            .iter()
            .map(|client| client.queued_gets())
            .sum()
    }
}
