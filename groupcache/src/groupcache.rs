//! [`Groupcache`]: the handle of one peer's membership of a cluster, and the groups it hosts.

use std::sync::Arc;

use tonic::transport::Server;

use crate::builder::GroupcacheBuilder;
use crate::describe::PeerView;
use crate::group_builder::GroupBuilder;
use crate::peer::server::GroupcacheService;
use crate::peer_set::PeerSet;
use crate::stats::PeerSetStats;
use crate::{Error, Group, GroupcachePeer, ValueLoader};

/// One peer of a cache cluster: its ring of peers, its gRPC service, and the named groups
/// (caches) it hosts, as Go groupcache's `HTTPPool` and its `Group`s.
///
/// Cloning is cheap and every clone is the same peer set. Build it once per process with
/// [`builder`](Self::builder), add each cache with [`group`](Self::group), mount
/// [`grpc_service`](Self::grpc_service) in your tonic server, and feed
/// [`set_peers`](Self::set_peers) from service discovery.
///
/// ```
/// use groupcache::{BoxError, Groupcache, ValueLoader};
///
/// struct Squares;
///
/// #[groupcache::async_trait]
/// impl ValueLoader for Squares {
///     type Value = u64;
///     async fn load(&self, key: &str) -> Result<u64, BoxError> {
///         let n: u64 = key.parse()?;
///         Ok(n * n)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), groupcache::Error> {
/// let me: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
/// let cache = Groupcache::builder(me).build();
/// let squares = cache.group("squares", Squares).build()?;
///
/// // Many tasks ask for one cold key at once: the loader runs once.
/// let asks: Vec<_> = (0..100)
///     .map(|_| {
///         let squares = squares.clone();
///         tokio::spawn(async move { squares.get("12").await })
///     })
///     .collect();
/// for ask in asks {
///     assert_eq!(ask.await.unwrap()?, 144);
/// }
/// assert_eq!(squares.stats().local_loads, 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Groupcache {
    peer_set: Arc<PeerSet>,
}

impl std::fmt::Debug for Groupcache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.peer_set, f)
    }
}

impl Groupcache {
    pub(crate) fn from_peer_set(peer_set: PeerSet) -> Self {
        Groupcache {
            peer_set: Arc::new(peer_set),
        }
    }

    // ===== building =====

    /// Starts building the peer set of peer `me`: the address its gRPC service is reachable
    /// at, as the other peers know it (a `SocketAddr` or a [`GroupcachePeer`]).
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
    /// let cache = Groupcache::builder(me)
    ///     .peer_timeout(Duration::from_millis(500))
    ///     .build();
    /// let names = cache
    ///     .group("names", Db)
    ///     .main_cache_capacity(256 * 1024 * 1024)
    ///     .build()?;
    /// tokio::spawn(
    ///     cache
    ///         .server_builder()?
    ///         .add_service(cache.grpc_service())
    ///         .serve_with_incoming(groupcache::bind(me)?),
    /// );
    /// cache.set_peers(["10.0.0.1:8080".parse::<std::net::SocketAddr>()?, "10.0.0.2:8080".parse()?])?;
    /// assert_eq!(names.get("hello").await?, "HELLO");
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder(me: impl Into<GroupcachePeer>) -> GroupcacheBuilder {
        GroupcacheBuilder::new(me.into())
    }

    /// Starts building the group `name` on this peer set, with `loader` as its source of truth
    /// (Go groupcache's `NewGroup`). Every peer must create the same groups, with the same
    /// names, codecs and value types: a peer asked for a group it does not host answers with
    /// [`ErrorKind::UnknownGroup`](crate::ErrorKind::UnknownGroup).
    ///
    /// A group's settings (capacities, time to live, hot cache policy, codec) are its own; the
    /// ring, peer timeout, key and value limits, token and TLS are the peer set's. Build every
    /// group before the server serves and discovery advertises this peer.
    ///
    /// A loader that reads other groups should hold their [`Group`] handles, not the
    /// `Groupcache`: the peer set holds its groups, so a loader holding the peer set makes a
    /// cycle that is never freed.
    ///
    /// ```
    /// # use groupcache::{BoxError, Groupcache, ValueLoader};
    /// # struct Users;
    /// # #[groupcache::async_trait]
    /// # impl ValueLoader for Users {
    /// #     type Value = String;
    /// #     async fn load(&self, key: &str) -> Result<String, BoxError> { Ok(key.into()) }
    /// # }
    /// # struct Sessions;
    /// # #[groupcache::async_trait]
    /// # impl ValueLoader for Sessions {
    /// #     type Value = Vec<u8>;
    /// #     async fn load(&self, key: &str) -> Result<Vec<u8>, BoxError> { Ok(key.into()) }
    /// # }
    /// use std::time::Duration;
    ///
    /// let cache = Groupcache::builder("127.0.0.1:8080".parse::<std::net::SocketAddr>()?).build();
    /// let users = cache.group("users", Users).build()?;
    /// let sessions = cache
    ///     .group("sessions", Sessions)
    ///     .codec(groupcache::codec::Raw)
    ///     .main_cache_capacity(16 * 1024 * 1024)
    ///     .main_cache_ttl(Some(Duration::from_secs(300)))
    ///     .build()?;
    /// assert_eq!(cache.group_names(), ["sessions", "users"]);
    /// # let _ = (users, sessions);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn group<V: Clone + Send + Sync + 'static>(
        &self,
        name: impl Into<String>,
        loader: impl ValueLoader<Value = V>,
    ) -> GroupBuilder<V> {
        GroupBuilder::new(Arc::clone(&self.peer_set), name.into(), Arc::new(loader))
    }

    /// The group `name`, if this peer set hosts one with values of type `V` (Go groupcache's
    /// `GetGroup`); `None` if there is none of that name, or its values are of another type.
    ///
    /// ```
    /// # use groupcache::{BoxError, Groupcache, ValueLoader};
    /// # struct Users;
    /// # #[groupcache::async_trait]
    /// # impl ValueLoader for Users {
    /// #     type Value = String;
    /// #     async fn load(&self, key: &str) -> Result<String, BoxError> { Ok(key.into()) }
    /// # }
    /// let cache = Groupcache::builder("127.0.0.1:8080".parse::<std::net::SocketAddr>()?).build();
    /// cache.group("users", Users).build()?;
    /// let users = cache.get_group::<String>("users").expect("built above");
    /// assert_eq!(users.name(), "users");
    /// assert!(cache.get_group::<u64>("users").is_none(), "another value type");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_group<V: Clone + Send + Sync + 'static>(&self, name: &str) -> Option<Group<V>> {
        self.peer_set.typed::<V>(name).map(Group::from_state)
    }

    /// The names of the groups this peer set hosts, sorted.
    #[must_use]
    pub fn group_names(&self) -> Vec<String> {
        self.peer_set.group_names()
    }

    // ===== serving =====

    /// The gRPC service through which other peers fetch from this one, for every group. Mount
    /// it once in your tonic server, ideally one from [`server_builder`](Self::server_builder)
    /// or [`configure_server`](Self::configure_server); the library never binds a port. It
    /// checks the peer token (if one is configured) and the content type of every request
    /// before reading its body.
    #[must_use]
    pub fn grpc_service(&self) -> GroupcacheService {
        GroupcacheService::new(Arc::clone(&self.peer_set))
    }

    /// A tonic server builder with the settings peer traffic needs; see
    /// [`configure_server`](Self::configure_server), which it applies to `Server::builder()`.
    ///
    /// ```
    /// # async fn run(cache: groupcache::Groupcache) -> Result<(), Box<dyn std::error::Error>> {
    /// let incoming = groupcache::bind(cache.addr())?;
    /// cache
    ///     .server_builder()?
    ///     .add_service(cache.grpc_service())
    ///     .serve_with_incoming(incoming)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`configure_server`](Self::configure_server).
    pub fn server_builder(&self) -> Result<Server, Error> {
        self.configure_server(Server::builder())
    }

    /// Applies the settings peer traffic needs to a tonic server of your own: HTTP/2
    /// keep-alive pings, at most
    /// [`max_concurrent_streams`](crate::GroupcacheBuilder::max_concurrent_streams) requests
    /// per connection, headers up to 16 KiB, `tcp_nodelay`, and TLS when
    /// [`GroupcacheBuilder::tls`] is set (feature `tls`). Settings you made before that these
    /// do not name are kept.
    ///
    /// tonic applies `tcp_nodelay` only in `serve(addr)`: with `serve_with_incoming`, give it
    /// a listener from [`bind`](crate::bind) or [`incoming`](crate::incoming), which set
    /// `TCP_NODELAY` on every connection. Without it replies can wait ~40 ms on Nagle's
    /// algorithm. The request deadline needs nothing here: the
    /// [service](Self::grpc_service) enforces the peer timeout itself, on any server.
    ///
    /// ```
    /// # fn run(cache: groupcache::Groupcache) -> Result<(), groupcache::Error> {
    /// use std::time::Duration;
    ///
    /// let server = tonic::transport::Server::builder().timeout(Duration::from_secs(30));
    /// let server = cache.configure_server(server)?;
    /// # let _ = server;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if TLS is configured without a
    /// certificate to serve with, or tonic refuses the TLS settings.
    ///
    /// [`GroupcacheBuilder::tls`]: crate::GroupcacheBuilder
    pub fn configure_server(&self, server: Server) -> Result<Server, Error> {
        crate::peer::server::configure(self.peer_set.node().config(), server)
    }

    /// The peer token check of this peer's service as a tower layer, for services of your own
    /// that only peers may call; see [`PeerTokenLayer`](crate::security::PeerTokenLayer).
    #[must_use]
    pub fn peer_token_layer(&self) -> crate::security::PeerTokenLayer {
        crate::security::PeerTokenLayer::new(self.peer_set.token_check())
    }

    /// A tower layer for your own server that handles each request carrying a `traceparent`
    /// header inside that trace, so that the `get`s its handlers make join the caller's
    /// trace; see [`TraceLayer`](crate::trace::TraceLayer). The peer service needs none: it
    /// reads the header itself.
    #[must_use]
    pub fn trace_layer(&self) -> crate::trace::TraceLayer {
        crate::trace::TraceLayer::new()
    }

    // ===== membership =====

    /// Replaces the cluster membership with exactly `peers`: [`GroupcachePeer`]s or
    /// `SocketAddr`s (order and duplicates do not matter). Include this peer's own address: a
    /// peer missing from the list owns no keys and asks the others for everything. An empty
    /// list makes this peer load every key itself.
    ///
    /// The new ring is swapped in atomically: a `get` running concurrently routes by either the
    /// old or the new ring, never a mix. Channels to peers that stay are kept. In every group,
    /// values in the main cache whose key this peer no longer owns are dropped, and so are hot
    /// copies of keys it now owns: a scan of the caches, run inline, so expect a few
    /// milliseconds per hundred thousand entries. Nothing is awaited.
    ///
    /// Channels to new peers are opened lazily, and their background tasks run on the tokio
    /// runtime that calls this method: call it from the runtime that serves your requests.
    ///
    /// ```no_run
    /// # fn run(cache: groupcache::Groupcache) -> Result<(), groupcache::Error> {
    /// use groupcache::GroupcachePeer;
    ///
    /// let peers = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"];
    /// cache.set_peers(peers.map(|p| p.parse::<GroupcachePeer>().unwrap()))?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Connect`](crate::ErrorKind::Connect) if the peer connector cannot open a
    /// channel to a new peer; the membership is then left as it was.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime when a new peer needs a channel.
    pub fn set_peers(
        &self,
        peers: impl IntoIterator<Item = impl Into<GroupcachePeer>>,
    ) -> Result<(), Error> {
        self.peer_set
            .set_peers(peers.into_iter().map(Into::into).collect())
    }

    /// Adds one peer to the membership (no change if it is already a member), for push-based
    /// discovery.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), groupcache::Error> {
    /// use std::net::SocketAddr;
    ///
    /// let me: SocketAddr = "10.0.0.1:8080".parse().unwrap();
    /// let other: SocketAddr = "10.0.0.2:8080".parse().unwrap();
    /// let cache = groupcache::Groupcache::builder(me).build();
    /// cache.add_peer(me)?;
    /// cache.add_peer(other)?; // a pod became ready
    /// assert_eq!(cache.peers().len(), 2);
    /// cache.remove_peer(other)?; // it is terminating
    /// assert_eq!(cache.peers(), [me.into()]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`set_peers`](Self::set_peers).
    pub fn add_peer(&self, peer: impl Into<GroupcachePeer>) -> Result<(), Error> {
        self.peer_set.add_peer(peer.into())
    }

    /// Removes one peer from the membership (no change if it is not a member).
    ///
    /// # Errors
    ///
    /// As [`set_peers`](Self::set_peers).
    pub fn remove_peer(&self, peer: impl Into<GroupcachePeer>) -> Result<(), Error> {
        self.peer_set.remove_peer(&peer.into())
    }

    /// The current members, sorted by address.
    #[must_use]
    pub fn peers(&self) -> Vec<GroupcachePeer> {
        self.peer_set.node().routing().peers()
    }

    /// This peer's address, as given to the builder.
    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        self.me().addr()
    }

    /// This peer's identity on the ring.
    #[must_use]
    pub fn me(&self) -> &GroupcachePeer {
        self.peer_set.node().me()
    }

    /// The peer that owns `key` according to this peer's current ring (this peer itself when
    /// the ring is empty). The same in every group: placement depends on the key only.
    #[must_use]
    pub fn owner_of(&self, key: &str) -> GroupcachePeer {
        self.peer_set.node().routing().owner_of(key)
    }

    /// The peer a get of `key` asks now: its owner, or, while this peer considers the owner
    /// out (see [`GroupcacheBuilder::peer_failure_threshold`]), the owner's substitute; this
    /// peer itself when it loads the key here. Every peer that sees the same peers out names
    /// the same one.
    ///
    /// [`GroupcacheBuilder::peer_failure_threshold`]: crate::GroupcacheBuilder::peer_failure_threshold
    #[must_use]
    pub fn route_of(&self, key: &str) -> GroupcachePeer {
        self.peer_set.node().routing().route_of(key)
    }

    // ===== introspection =====

    /// What this peer knows of every other member's health: whether its breaker is closed
    /// (requests go to it), open (it stopped answering; its keys go to substitutes) or probing,
    /// with its failures in a row and how often it has been found out. In ring order.
    ///
    /// ```
    /// # fn run(cache: &groupcache::Groupcache) {
    /// use groupcache::peer::BreakerState;
    ///
    /// for health in cache.peer_health() {
    ///     if health.state != BreakerState::Closed {
    ///         eprintln!("{} is out ({} failures in a row)", health.peer, health.consecutive_failures);
    ///     }
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn peer_health(&self) -> Vec<crate::peer::PeerHealth> {
        self.peer_set.node().routing().health()
    }

    /// A snapshot of this peer's counters: its service's, and every group's with its cache
    /// sizes. Reads only.
    ///
    /// ```
    /// # use groupcache::{BoxError, Groupcache, ValueLoader};
    /// # struct Users;
    /// # #[groupcache::async_trait]
    /// # impl ValueLoader for Users {
    /// #     type Value = String;
    /// #     async fn load(&self, key: &str) -> Result<String, BoxError> { Ok(key.into()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = Groupcache::builder("127.0.0.1:8080".parse::<std::net::SocketAddr>()?).build();
    /// let users = cache.group("users", Users).build()?;
    /// users.get("ada").await?;
    /// let stats = cache.stats();
    /// assert_eq!(stats.unknown_group_requests, 0);
    /// assert_eq!(stats.group("users").map(|s| s.local_loads), Some(1));
    /// // As JSON, e.g. for a /stats endpoint: {"groups":{"users":{...}},"timed_out_requests":0,...}
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn stats(&self) -> PeerSetStats {
        self.peer_set.stats()
    }

    /// This peer's view of the cluster; with `key`, also who owns it here.
    ///
    /// ```
    /// let me: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
    /// let cache = groupcache::Groupcache::builder(me).build();
    /// let view = cache.describe(Some("user-42"));
    /// assert_eq!(view.owner, Some(me.into()), "with no ring, every key is this peer's");
    /// assert_eq!(view.virtual_nodes, groupcache::defaults::VIRTUAL_NODES);
    /// ```
    #[must_use]
    pub fn describe(&self, key: Option<&str>) -> PeerView {
        crate::describe::local(&self.peer_set, key)
    }

    /// Another member's view of the cluster, asked over its gRPC service (the `Describe` RPC),
    /// within the peer timeout. `peer` may be this peer, which answers locally.
    ///
    /// ```
    /// # async fn run(cache: groupcache::Groupcache) -> Result<(), groupcache::Error> {
    /// let view = cache.describe(Some("user-42"));
    /// println!("{} peers; user-42 belongs to {:?}", view.peers.len(), view.owner);
    /// for peer in &view.peers {
    ///     let theirs = cache.describe_peer(peer, Some("user-42")).await?;
    ///     assert_eq!(theirs.owner, view.owner, "{peer} disagrees");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::KeyTooLong`](crate::ErrorKind::KeyTooLong) if `key` is longer than the
    /// maximum key length (nothing is sent); [`ErrorKind::NotAMember`](crate::ErrorKind::NotAMember)
    /// if `peer` is not a member of this peer's ring; [`ErrorKind::Peer`](crate::ErrorKind::Peer)
    /// if it cannot be reached or its reply is malformed; its refusal otherwise (for example
    /// [`ErrorKind::Unauthenticated`](crate::ErrorKind::Unauthenticated)).
    pub async fn describe_peer(
        &self,
        peer: &GroupcachePeer,
        key: Option<&str>,
    ) -> Result<PeerView, Error> {
        crate::describe::remote(&self.peer_set, peer, key).await
    }
}
