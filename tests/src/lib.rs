//! Shared support for the black-box tests in `tests/tests/`: a loopback cluster of real tonic
//! servers, a scripted counting loader, and polling helpers.
//!
//! Every node's gRPC server runs on a runtime of its own, so that [`TestCluster::kill`] can
//! end it the way a crashed process ends: every connection and every task on the server side
//! dropped at once, the port closed.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use groupcache::{
    BoxError, Group, GroupBuilder, Groupcache, GroupcacheBuilder, NotFound, ValueLoader,
};
use tokio::sync::{oneshot, watch};
use tokio::time::error::Elapsed;

pub use cluster::{Cluster, ClusterSpec, Configure, ConfigureGroup, GROUP};

pub mod cluster;
pub mod fuzz_harness;
pub mod grpc_frames;
pub mod log_capture;
pub mod own_process;
pub mod pki;
pub mod rss;
pub mod sim;
pub mod span_capture;

/// Upper bound for any one test body: a hang fails instead of stalling CI.
pub const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Runs `body` under [`TEST_LIMIT`], failing the test if it takes longer.
pub async fn within_limit<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .expect("test body exceeded its time limit")
}

/// How long [`wait_until`] waits before failing, on the clock of the runtime it runs on.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// Polls `cond` every millisecond until it holds; panics after [`WAIT_LIMIT`], naming `what`.
///
/// The one polling helper of these tests, for loopback clusters, paused time and turmoil hosts
/// alike: it sleeps and measures with `tokio::time`, so its limit is real time on loopback,
/// simulated time in a simulation, and auto-advanced time under `start_paused`.
pub async fn wait_until(what: &str, cond: impl FnMut() -> bool) {
    if poll_until(WAIT_LIMIT, cond).await.is_err() {
        panic!("timed out after {WAIT_LIMIT:?} waiting until {what}");
    }
}

/// Polls `cond` every millisecond until it holds or `limit` has passed (on the runtime's clock,
/// as [`wait_until`]), for a wait whose bound is what the test measures.
///
/// # Errors
///
/// [`Elapsed`] if `cond` still did not hold after `limit`.
pub async fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Result<(), Elapsed> {
    tokio::time::timeout(limit, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
}

/// Spawns `cache.get(key)` as a task of its own, like an independent caller.
pub fn spawn_get(
    cache: &Group<String>,
    key: &str,
) -> tokio::task::JoinHandle<Result<String, groupcache::Error>> {
    let (cache, key) = (cache.clone(), key.to_owned());
    tokio::spawn(async move { cache.get(&key).await })
}

// ===== CountingLoader =====

/// What the loader does for a key.
#[derive(Debug, Clone)]
pub enum Script {
    /// Returns [`value_of`] at once.
    Value,
    /// Returns the value after a delay.
    Delay(Duration),
    /// Holds the load open until [`CountingLoader::release`], then does what the key's script
    /// says at that moment (returns the value if it still says `Gate`).
    Gate,
    /// Returns an error with this message.
    Fail(String),
    /// Panics.
    Panic,
    /// Returns [`NotFound`].
    NotFound,
    /// Returns a value of exactly this many bytes of text (its encoding adds a length prefix).
    Size(usize),
}

/// The value the loader produces for `key` at generation `generation`.
pub fn value_of(key: &str, generation: u64) -> String {
    format!("{key}:v{generation}")
}

#[derive(Debug)]
struct LoaderState {
    /// (node, key) -> loads started.
    loads: Mutex<HashMap<(usize, String), u64>>,
    /// (node or `None` for every node, key) -> script.
    scripts: Mutex<HashMap<(Option<usize>, String), Script>>,
    generation: AtomicU64,
    gate: watch::Sender<bool>,
    /// What [`ValueLoader::time_to_live`] reports for every value: `None`, the group's
    /// default, unless a test sets one.
    ttl: Mutex<Option<Duration>>,
}

/// A loader shared by every node of a cluster that counts its calls per node and per key and
/// follows a per-key (optionally per-node) [`Script`], default [`Script::Value`]. It returns
/// [`value_of`] the key at the generation current when the load started.
#[derive(Debug, Clone)]
pub struct CountingLoader {
    node: usize,
    state: Arc<LoaderState>,
}

impl Default for CountingLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl CountingLoader {
    /// A loader for node 0; [`CountingLoader::for_node`] makes the others.
    pub fn new() -> Self {
        CountingLoader {
            node: 0,
            state: Arc::new(LoaderState {
                loads: Mutex::new(HashMap::new()),
                scripts: Mutex::new(HashMap::new()),
                generation: AtomicU64::new(1),
                gate: watch::channel(false).0,
                ttl: Mutex::new(None),
            }),
        }
    }

    /// The same loader (shared counters and scripts), counting as node `node`.
    pub fn for_node(&self, node: usize) -> Self {
        CountingLoader {
            node,
            state: Arc::clone(&self.state),
        }
    }

    /// Sets what loading `key` does from now on, on every node without a script of its own.
    pub fn script(&self, key: &str, script: Script) {
        let mut scripts = self.state.scripts.lock().unwrap();
        scripts.insert((None, key.to_owned()), script);
    }

    /// Sets what loading `key` does on node `node` only.
    pub fn script_on(&self, node: usize, key: &str, script: Script) {
        let mut scripts = self.state.scripts.lock().unwrap();
        scripts.insert((Some(node), key.to_owned()), script);
    }

    /// Opens the gate: every gated load, now and later, proceeds.
    pub fn release(&self) {
        self.state.gate.send_replace(true);
    }

    /// Changes the values the loader returns from now on (to tell fresh from stale).
    pub fn set_generation(&self, generation: u64) {
        self.state.generation.store(generation, Ordering::SeqCst);
    }

    /// Sets the time to live the loader chooses for every value from now on (reported by
    /// [`ValueLoader::time_to_live`], on every node); `None`, the default, leaves it to the
    /// group.
    pub fn set_ttl(&self, ttl: Option<Duration>) {
        *self.state.ttl.lock().unwrap() = ttl;
    }

    /// The current value of `key`.
    pub fn expected(&self, key: &str) -> String {
        value_of(key, self.state.generation.load(Ordering::SeqCst))
    }

    fn script_of(&self, key: &str) -> Script {
        let scripts = self.state.scripts.lock().unwrap();
        scripts
            .get(&(Some(self.node), key.to_owned()))
            .or_else(|| scripts.get(&(None, key.to_owned())))
            .cloned()
            .unwrap_or(Script::Value)
    }

    /// Loads of `key` started on any node.
    pub fn loads(&self, key: &str) -> u64 {
        self.state
            .loads
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, k), _)| k == key)
            .map(|(_, n)| n)
            .sum()
    }

    /// Loads of `key` started on node `node`.
    pub fn loads_on(&self, node: usize, key: &str) -> u64 {
        let loads = self.state.loads.lock().unwrap();
        loads.get(&(node, key.to_owned())).copied().unwrap_or(0)
    }

    /// Loads of any key started on node `node`.
    pub fn total_loads_on(&self, node: usize) -> u64 {
        let loads = self.state.loads.lock().unwrap();
        loads
            .iter()
            .filter(|((n, _), _)| *n == node)
            .map(|(_, c)| c)
            .sum()
    }
}

#[groupcache::async_trait]
impl ValueLoader for CountingLoader {
    type Value = String;

    async fn load(&self, key: &str) -> Result<String, BoxError> {
        *self
            .state
            .loads
            .lock()
            .unwrap()
            .entry((self.node, key.to_owned()))
            .or_default() += 1;
        // Like a database read that returns slowly: the value is what the source held when
        // the load began.
        let generation = self.state.generation.load(Ordering::SeqCst);
        let mut script = self.script_of(key);
        if let Script::Gate = script {
            let mut open = self.state.gate.subscribe();
            let _ = open.wait_for(|open| *open).await;
            // A test may change the outcome of a load while it is held at the gate.
            script = self.script_of(key);
        }
        match script {
            Script::Value | Script::Gate => {}
            Script::Delay(delay) => tokio::time::sleep(delay).await,
            Script::Fail(message) => return Err(message.into()),
            Script::Panic => panic!("loader exploded on {key}"),
            Script::NotFound => return Err(NotFound.into()),
            Script::Size(bytes) => return Ok("x".repeat(bytes)),
        }
        Ok(value_of(key, generation))
    }

    fn time_to_live(&self, _key: &str, _value: &String) -> Option<Duration> {
        *self.state.ttl.lock().unwrap()
    }
}

// ===== TestCluster =====

/// One node: its peer set, its test group, and the runtime its gRPC server runs on.
pub struct Node {
    /// This node's peer set.
    pub cache: Groupcache,
    /// The group it hosts, [`GROUP`].
    pub group: Group<String>,
    server: Option<tokio::runtime::Runtime>,
    /// While set, this node's server answers every `Invalidate` with `Unavailable`, as a link
    /// that loses them would: see [`TestCluster::drop_invalidations`].
    drops_invalidations: Arc<AtomicBool>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("cache", &self.cache)
            .field("serving", &self.server.is_some())
            .finish()
    }
}

/// A [`ClusterSpec`] running on loopback: each node a real tonic server on `127.0.0.1:0`, all
/// given the same peer list. The shared queries (`owner_of`, `key_owned_by`, `addr`, `len`)
/// come from the [`Cluster`] trait.
pub struct TestCluster {
    nodes: Vec<Node>,
    addrs: Vec<SocketAddr>,
    /// The loader shared by all nodes (node `i` counts as `i`).
    pub loader: CountingLoader,
    spec: ClusterSpec,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

impl Cluster for TestCluster {
    fn len(&self) -> usize {
        self.nodes.len()
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// Every node: a killed node's cache handle lives on (only its server is gone).
    fn running(&self) -> Vec<(usize, Group<String>)> {
        self.nodes
            .iter()
            .map(|n| n.group.clone())
            .enumerate()
            .collect()
    }
}

impl TestCluster {
    /// Starts `n` nodes with default settings.
    pub async fn start(n: usize) -> Self {
        ClusterSpec::new(n).start().await
    }

    /// Starts `n` nodes that keep a hot copy of every value they fetch from another peer.
    pub async fn start_keeping_hot_copies(n: usize) -> Self {
        ClusterSpec::new(n).keeping_hot_copies().start().await
    }

    /// Starts `n` nodes, each peer-set builder passed through `configure` first.
    pub async fn start_with(
        n: usize,
        configure: impl Fn(usize, GroupcacheBuilder) -> GroupcacheBuilder + Send + Sync + 'static,
    ) -> Self {
        ClusterSpec::new(n).configure(configure).start().await
    }

    /// Starts `n` nodes, each group builder passed through `configure` first.
    pub async fn start_with_group(
        n: usize,
        configure: impl Fn(usize, GroupBuilder<String>) -> GroupBuilder<String> + Send + Sync + 'static,
    ) -> Self {
        ClusterSpec::new(n).configure_group(configure).start().await
    }

    /// Starts the nodes `spec` describes (see [`ClusterSpec::start`]).
    pub(crate) async fn start_spec(spec: ClusterSpec) -> Self {
        let mut incomings = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..spec.len() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            addrs.push(listener.local_addr().expect("local addr"));
            incomings.push(listener);
        }
        let mut nodes = Vec::new();
        for (i, listener) in incomings.into_iter().enumerate() {
            let (cache, group) = spec.build_node(i, addrs[i], |b| b, |g| g);
            let drops_invalidations = Arc::new(AtomicBool::new(false));
            let server = serve(cache.clone(), listener, Arc::clone(&drops_invalidations)).await;
            nodes.push(Node {
                cache,
                group,
                server: Some(server),
                drops_invalidations,
            });
        }
        let cluster = TestCluster {
            nodes,
            addrs,
            loader: spec.shared_loader().clone(),
            spec,
        };
        for i in 0..cluster.len() {
            cluster.set_peers_on(i, &cluster.addrs).await;
        }
        cluster
    }

    /// Node `i`'s test group, where tests `get`.
    pub fn node(&self, i: usize) -> &Group<String> {
        &self.nodes[i].group
    }

    /// Node `i`'s peer set: membership, its service, its `PeerSetStats`.
    pub fn peer_set(&self, i: usize) -> &Groupcache {
        &self.nodes[i].cache
    }

    /// All nodes' test groups.
    pub fn caches(&self) -> Vec<Group<String>> {
        self.nodes.iter().map(|n| n.group.clone()).collect()
    }

    // The [`Cluster`] queries, callable without importing the trait (the benches use them).

    /// Number of nodes.
    pub fn len(&self) -> usize {
        Cluster::len(self)
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        Cluster::is_empty(self)
    }

    /// Node `i`'s address.
    pub fn addr(&self, i: usize) -> SocketAddr {
        Cluster::addr(self, i)
    }

    /// The index of the node owning `key` (by node 0's ring; all agree).
    pub fn owner_of(&self, key: &str) -> usize {
        Cluster::owner_of(self, key)
    }

    /// A key owned by node `owner`, made from `prefix`.
    pub fn key_owned_by(&self, owner: usize, prefix: &str) -> String {
        Cluster::key_owned_by(self, owner, prefix)
    }

    /// `n` keys owned by node `owner`, made from `prefix`.
    pub fn keys_owned_by(&self, owner: usize, prefix: &str, n: usize) -> Vec<String> {
        Cluster::keys_owned_by(self, owner, prefix, n)
    }

    /// Replaces node `i`'s peer list.
    pub async fn set_peers_on(&self, i: usize, peers: &[SocketAddr]) {
        self.nodes[i]
            .cache
            .set_peers(peers.iter().copied())
            .expect("set_peers");
    }

    /// Kills node `i`'s server like a crashed process: its runtime is shut down, dropping every
    /// connection and every task of the server (including loads it was running).
    pub async fn kill(&mut self, i: usize) {
        if let Some(runtime) = self.nodes[i].server.take() {
            tokio::task::spawn_blocking(move || runtime.shutdown_timeout(Duration::from_secs(5)))
                .await
                .expect("runtime shutdown");
        }
    }

    /// Restarts node `i` on the same address as a fresh process: a new cache (empty), the same
    /// loader and the cluster's peer list.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i).await;
        let addr = self.addrs[i];
        let listener = std::net::TcpListener::bind(addr).expect("rebind the same address");
        let (cache, group) = self.spec.build_node(i, addr, |b| b, |g| g);
        let drops_invalidations = Arc::new(AtomicBool::new(false));
        let server = serve(cache.clone(), listener, Arc::clone(&drops_invalidations)).await;
        self.nodes[i] = Node {
            cache,
            group,
            server: Some(server),
            drops_invalidations,
        };
        self.set_peers_on(i, &self.addrs.clone()).await;
    }

    /// While `drop` is set, node `i` loses every invalidation sent to it: its server answers
    /// `Invalidate` with `Unavailable` before the library sees it (the owner counts it
    /// unacknowledged); everything else gets through.
    pub fn drop_invalidations(&self, i: usize, drop: bool) {
        self.nodes[i]
            .drops_invalidations
            .store(drop, Ordering::SeqCst);
    }

    /// Stops every server and checks that no flight was left behind.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i).await;
        }
        self.assert_no_flights();
    }
}

/// Starts `n` peers the way the README's quick start does, on this runtime: each binds
/// `127.0.0.1:0` with `groupcache::bind`, is built by `build` for that address, serves its
/// `grpc_service` from `server_builder`, and is given every peer as members. `build` returns
/// the peer set and the group the test uses.
/// (`tests/quick_start.rs` keeps its own copy of that code: it tests the text itself.)
pub async fn start_like_the_quick_start<V>(
    n: usize,
    build: impl Fn(SocketAddr) -> (Groupcache, Group<V>),
) -> Vec<(Groupcache, Group<V>)>
where
    V: Clone + Send + Sync + 'static,
{
    let mut peers = Vec::new();
    for _ in 0..n {
        let incoming = groupcache::bind("127.0.0.1:0".parse().unwrap()).expect("bind loopback");
        let (cache, group) = build(incoming.local_addr().expect("local addr"));
        tokio::spawn(
            cache
                .server_builder()
                .expect("the peer's server settings")
                .add_service(cache.grpc_service())
                .serve_with_incoming(incoming),
        );
        peers.push((cache, group));
    }
    let members: Vec<groupcache::GroupcachePeer> =
        peers.iter().map(|(c, _)| c.me().clone()).collect();
    for (cache, _) in &peers {
        cache.set_peers(members.clone()).expect("set peers");
    }
    peers
}

/// Serves `cache` on `listener` from a runtime of its own (one worker thread).
async fn serve(
    cache: Groupcache,
    listener: std::net::TcpListener,
    drops_invalidations: Arc<AtomicBool>,
) -> tokio::runtime::Runtime {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("test-node-server")
        .enable_all()
        .build()
        .expect("server runtime");
    let (ready_tx, ready_rx) = oneshot::channel();
    runtime.spawn(async move {
        listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let incoming = groupcache::incoming(listener);
        let _ = ready_tx.send(());
        let result = cache
            .server_builder()
            .expect("the node's server settings")
            .add_service(LossyInvalidations {
                inner: cache.grpc_service(),
                dropping: drops_invalidations,
            })
            .serve_with_incoming(incoming)
            .await;
        if let Err(err) = result {
            tracing::error!(%err, "test node server failed");
        }
    });
    ready_rx.await.expect("server started");
    runtime
}

/// The peer service, losing `Invalidate` requests while `dropping` is set.
#[derive(Clone)]
struct LossyInvalidations {
    inner: groupcache::peer::GroupcacheService,
    dropping: Arc<AtomicBool>,
}

impl tonic::server::NamedService for LossyInvalidations {
    const NAME: &'static str =
        <groupcache::peer::GroupcacheService as tonic::server::NamedService>::NAME;
}

impl tower::Service<http::Request<tonic::body::Body>> for LossyInvalidations {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if self.dropping.load(Ordering::SeqCst) && request.uri().path().ends_with("/Invalidate") {
            let lost = tonic::Status::unavailable("the test link lost this invalidation");
            return Box::pin(std::future::ready(Ok(lost.into_http())));
        }
        Box::pin(tower::Service::call(&mut self.inner, request))
    }
}
