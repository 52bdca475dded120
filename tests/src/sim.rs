//! Deterministic network simulation with [turmoil]: many hosts on one thread, simulated time,
//! a seeded network (latency, ordering), partitions, held links, crashes and restarts.
//!
//! * Adapters between tonic and turmoil's TCP ([`SimStream`], [`incoming`], [`serve`],
//!   [`TurmoilConnector`]), after `tokio-rs/turmoil: examples/grpc`.
//! * [`SimCluster`]: a groupcache node on each of several turmoil hosts, gets run on the nodes'
//!   own runtimes, crashes and restarts requested from inside the simulation.
//! * Seeds: [`run_seeded`] runs one simulation and names its seed if it fails; [`sweep`] runs
//!   a scenario over the seeds [`seeds`] picks from the environment:
//!   `GROUPCACHE_SIM_SEED=<n>` replays seed `n`, `GROUPCACHE_SIM_SEEDS=<N>` runs seeds `0..N`
//!   (default [`DEFAULT_SEEDS`]).
//!
//! Every host runs on a current-thread tokio runtime with paused time that turmoil advances one
//! tick (1 ms) at a time, so `tokio::time` (the library's deadlines, [`Script::Delay`]) is
//! simulated time, and a duration measured with `tokio::time::Instant` on a host is exact to a
//! tick. Only traffic through `turmoil::net` is simulated: all peer traffic here goes through
//! [`TurmoilConnector`] and [`serve`].
//!
//! What the seed does not fix: tokio's own RNG (`select!` branch order) is seeded only under
//! `--cfg tokio_unstable`, and `HashMap`s use random hashing, so a replay follows the same
//! network schedule but not always the same task interleaving. Nodes built by [`SimCluster`]
//! keep no hot copies by default: `PromoteOneIn` draws from an unseeded generator.
//!
//! [`Script::Delay`]: crate::Script::Delay

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_util::Stream;
use groupcache::cache::PromoteOneIn;
use groupcache::peer::PeerConnector;
use groupcache::stats::Stats;
use groupcache::{BoxError, Error, Group, Groupcache, GroupcachePeer};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Server, Uri};
use turmoil::Sim;
use turmoil::net::{TcpListener, TcpStream};

use crate::{Cluster, ClusterSpec, CountingLoader, wait_until};

/// The port every simulated node serves groupcache on.
pub const GRPC_PORT: u16 = 9000;

/// Seeds a sweep runs when `GROUPCACHE_SIM_SEEDS` is not set.
pub const DEFAULT_SEEDS: u64 = 5;

/// Simulated time after which a simulation that has not finished fails.
pub const SIM_DURATION: Duration = Duration::from_secs(120);

/// Longest one-way latency of a message on a healthy link. Latencies are drawn by the seeded
/// RNG between 0 and this (exponentially, mostly short). Small enough that a healthy request,
/// connection setup included, always fits well within a 500 ms peer timeout.
pub const MAX_LATENCY: Duration = Duration::from_millis(20);

// ===== tonic over turmoil =====

/// The address of host `host`'s groupcache service: `turmoil::lookup(host)` and
/// [`GRPC_PORT`]. Call it inside the simulation (on a host or a client).
pub fn node_addr(host: &str) -> SocketAddr {
    SocketAddr::new(turmoil::lookup(host), GRPC_PORT)
}

/// A connection accepted by a simulated server, in a form tonic's
/// [`Server::serve_with_incoming`] takes.
#[derive(Debug)]
pub struct SimStream(pub TcpStream);

/// What a [`SimStream`] tells the server about its connection (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConnectInfo {
    /// This end of the connection.
    pub local_addr: Option<SocketAddr>,
    /// The peer's end.
    pub remote_addr: Option<SocketAddr>,
}

impl Connected for SimStream {
    type ConnectInfo = SimConnectInfo;

    fn connect_info(&self) -> SimConnectInfo {
        SimConnectInfo {
            local_addr: self.0.local_addr().ok(),
            remote_addr: self.0.peer_addr().ok(),
        }
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The connections `listener` accepts, as a stream for [`Server::serve_with_incoming`].
pub fn incoming(listener: TcpListener) -> impl Stream<Item = io::Result<SimStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| SimStream(stream));
        Some((accepted, listener))
    })
}

/// Serves `cache`'s gRPC service on `listener` until the host stops.
pub async fn serve(
    cache: Groupcache,
    listener: TcpListener,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .add_service(cache.grpc_service())
        .serve_with_incoming(incoming(listener))
        .await
}

/// Opens peer channels over turmoil's TCP to the peer's address (which must be a simulated
/// host's, e.g. from [`node_addr`]), with the endpoint groupcache prepared (connect timeout,
/// request timeout, keep-alive). Lazy, as [`PeerConnector`] requires: the first request
/// connects, and tonic reconnects after the connection fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct TurmoilConnector;

impl PeerConnector for TurmoilConnector {
    fn connect(&self, peer: &GroupcachePeer, endpoint: Endpoint) -> Result<Channel, BoxError> {
        let addr = peer.addr();
        let connector = tower::service_fn(move |_: Uri| async move {
            TcpStream::connect(addr).await.map(TokioIo::new)
        });
        Ok(endpoint.connect_with_connector_lazy(connector))
    }
}

// ===== seeds =====

/// The seeds a sweep runs: `GROUPCACHE_SIM_SEED=<n>` gives `[n]`; otherwise
/// `GROUPCACHE_SIM_SEEDS=<N>` gives `0..N`, default `0..DEFAULT_SEEDS`.
///
/// # Panics
///
/// If either variable is set but is not a number.
pub fn seeds() -> Vec<u64> {
    let number = |name: &str| {
        std::env::var(name).ok().map(|value| {
            value
                .trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}={value:?} is not a number"))
        })
    };
    if let Some(seed) = number("GROUPCACHE_SIM_SEED") {
        return vec![seed];
    }
    (0..number("GROUPCACHE_SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect()
}

/// Runs `scenario` once per seed of [`seeds`].
pub fn sweep(scenario: impl Fn(u64)) {
    for seed in seeds() {
        scenario(seed);
    }
}

/// The simulation builder every scenario uses: seeded network RNG, hosts stepped in a
/// seed-chosen order, latency up to [`MAX_LATENCY`], no message loss (turmoil's TCP does not
/// retransmit: model faults with partitions, held links and crashes), a fixed epoch, and a
/// [`SIM_DURATION`] limit.
pub fn sim_builder(seed: u64) -> turmoil::Builder {
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(seed)
        .enable_random_order()
        .simulation_duration(SIM_DURATION)
        .max_message_latency(MAX_LATENCY)
        .epoch(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    builder
}

/// Builds a simulation with [`sim_builder`]`(seed)` and runs `body` on it (which registers
/// hosts and runs the simulation, e.g. with [`SimCluster::run`]).
///
/// If `body` panics or returns an error (a host or client failed, the simulation ran out of
/// time), prints the seed and how to replay it, then fails the test.
pub fn run_seeded(seed: u64, body: impl FnOnce(&mut Sim<'_>) -> turmoil::Result) {
    trace_init();
    let replay = format!("simulation seed {seed} failed; replay with GROUPCACHE_SIM_SEED={seed}");
    let mut sim = sim_builder(seed).build();
    match catch_unwind(AssertUnwindSafe(|| body(&mut sim))) {
        Ok(Ok(())) => {}
        Ok(Err(err)) => panic!("{replay}: {err}"),
        Err(panic) => {
            eprintln!("{replay}");
            resume_unwind(panic);
        }
    }
}

/// Runs one seeded scenario: a [`SimCluster`] on hosts `names` (the [`ClusterSpec`] of that
/// many nodes passed through `spec`, for settings), and `body` as the simulation's client once
/// every node is up. Steps the simulation until `body` finishes; fails naming the seed if
/// anything fails.
pub fn run_scenario<F, Fut>(
    seed: u64,
    names: &[&str],
    spec: impl FnOnce(ClusterSpec) -> ClusterSpec,
    body: F,
) where
    F: FnOnce(SimCluster) -> Fut + 'static,
    Fut: Future<Output = turmoil::Result> + 'static,
{
    run_seeded(seed, |sim| {
        let cluster = spec(ClusterSpec::new(names.len())).start_sim(sim, names);
        let client = cluster.clone();
        sim.client("client", async move {
            client.wait_up().await;
            body(client).await
        });
        cluster.run(sim)
    });
}

/// With `RUST_LOG` set, logs to the test's output with simulated time as the timestamp.
fn trace_init() {
    if std::env::var_os("RUST_LOG").is_none() {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_timer(SimTime)
        .with_test_writer()
        .try_init();
}

/// Formats log timestamps as simulated time since the simulation started.
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{:?}", turmoil::sim_elapsed().unwrap_or_default())
    }
}

// ===== inside the simulation =====

/// Awaits a task, passing its panic on.
///
/// # Panics
///
/// If the task panicked (with its panic) or was cancelled (its host crashed).
pub async fn join<T>(task: JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(err) if err.is_panic() => resume_unwind(err.into_panic()),
        Err(err) => panic!("task ended without an answer: {err}"),
    }
}

/// What a get on a node returned, and how long it took in the node's simulated time.
pub type TimedGet = (Result<String, Error>, Duration);

/// A groupcache node on each of several turmoil hosts, sharing one [`CountingLoader`] (node `i`
/// counts as `i`), each serving `grpc_service()` on [`GRPC_PORT`] over turmoil's TCP with
/// [`TurmoilConnector`] for its peers, and all given the same peer list (every node).
///
/// Handles are cheap clones of one shared state; move one into the simulation's client. The
/// client drives gets on the nodes ([`spawn_get`](Self::spawn_get): they run on the node's own
/// runtime, so a crash of that host ends them) and asks for crashes and restarts
/// ([`crash`](Self::crash), [`bounce`](Self::bounce)), which [`run`](Self::run) applies between
/// simulation steps.
#[derive(Debug, Clone)]
pub struct SimCluster {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    names: Vec<String>,
    spec: ClusterSpec,
    nodes: Mutex<Vec<Slot>>,
    faults: Mutex<VecDeque<Fault>>,
}

/// One node's current incarnation, if its host is running.
#[derive(Debug, Default)]
struct Slot {
    running: Option<Running>,
    /// Times the host has published a started node.
    starts: u64,
    /// Times the host has been crashed.
    crashes: u64,
}

#[derive(Debug)]
struct Running {
    cache: Groupcache,
    group: Group<String>,
    runtime: Handle,
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Crash(usize),
    Bounce(usize),
}

impl Cluster for SimCluster {
    fn len(&self) -> usize {
        self.shared.names.len()
    }

    /// Call inside the simulation.
    fn addr(&self, i: usize) -> SocketAddr {
        node_addr(self.name(i))
    }

    fn running(&self) -> Vec<(usize, Group<String>)> {
        let slots = self.slots();
        let running = slots.iter().enumerate();
        running
            .filter_map(|(i, slot)| Some((i, slot.running.as_ref()?.group.clone())))
            .collect()
    }
}

impl SimCluster {
    /// Registers a host per name on `sim`, each running a node of `spec` (see
    /// [`ClusterSpec::start_sim`]). Each builder gets [`TurmoilConnector`] and
    /// `PromoteOneIn(0)` (no hot copies), then the spec's configuration.
    pub(crate) fn start(sim: &mut Sim<'_>, names: &[&str], spec: ClusterSpec) -> Self {
        let shared = Arc::new(Shared {
            names: names.iter().map(|name| (*name).to_owned()).collect(),
            spec,
            nodes: Mutex::new(names.iter().map(|_| Slot::default()).collect()),
            faults: Mutex::new(VecDeque::new()),
        });
        for (i, name) in names.iter().enumerate() {
            let shared = Arc::clone(&shared);
            sim.host(*name, move || run_node(Arc::clone(&shared), i));
        }
        SimCluster { shared }
    }

    /// Steps `sim` until every client has finished, applying the crashes and restarts the
    /// client asked for after each step.
    ///
    /// # Errors
    ///
    /// As [`Sim::step`]: a host or client failed, or the simulation ran out of time.
    pub fn run(&self, sim: &mut Sim<'_>) -> turmoil::Result {
        loop {
            let finished = sim.step()?;
            loop {
                let Some(fault) = self.shared.faults.lock().unwrap().pop_front() else {
                    break;
                };
                match fault {
                    Fault::Crash(i) => {
                        self.slots()[i].running = None;
                        sim.crash(self.shared.names[i].as_str());
                        self.slots()[i].crashes += 1;
                    }
                    Fault::Bounce(i) => {
                        self.slots()[i].running = None;
                        sim.bounce(self.shared.names[i].as_str());
                    }
                }
            }
            if finished {
                return Ok(());
            }
        }
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.shared.nodes.lock().unwrap()
    }

    /// The loader shared by the nodes.
    pub fn loader(&self) -> &CountingLoader {
        self.shared.spec.shared_loader()
    }

    /// Node `i`'s host name.
    pub fn name(&self, i: usize) -> &str {
        &self.shared.names[i]
    }

    /// Whether node `i`'s host is running a started node.
    pub fn is_up(&self, i: usize) -> bool {
        self.slots()[i].running.is_some()
    }

    /// Waits until every node has started.
    pub async fn wait_up(&self) {
        wait_until("every node started", || {
            (0..self.len()).all(|i| self.is_up(i))
        })
        .await;
    }

    /// Node `i`'s current test group.
    ///
    /// # Panics
    ///
    /// If node `i` is down.
    pub fn cache(&self, i: usize) -> Group<String> {
        let slots = self.slots();
        let running = slots[i].running.as_ref();
        running
            .unwrap_or_else(|| panic!("node {i} is down"))
            .group
            .clone()
    }

    /// Node `i`'s current peer set.
    ///
    /// # Panics
    ///
    /// If node `i` is down.
    pub fn peer_set(&self, i: usize) -> Groupcache {
        let slots = self.slots();
        let running = slots[i].running.as_ref();
        running
            .unwrap_or_else(|| panic!("node {i} is down"))
            .cache
            .clone()
    }

    /// Node `i`'s counters of the test group.
    pub fn stats(&self, i: usize) -> Stats {
        self.cache(i).stats()
    }

    /// Starts `get(key)` on node `i`, as a task on node `i`'s own runtime (so that it ends if
    /// the host crashes), timed with that host's simulated clock.
    ///
    /// # Panics
    ///
    /// If node `i` is down.
    pub fn spawn_get(&self, i: usize, key: &str) -> JoinHandle<TimedGet> {
        let (cache, runtime) = {
            let slots = self.slots();
            let running = slots[i].running.as_ref();
            let running = running.unwrap_or_else(|| panic!("node {i} is down"));
            (running.group.clone(), running.runtime.clone())
        };
        let key = key.to_owned();
        runtime.spawn(async move {
            let started = Instant::now();
            let result = cache.get(&key).await;
            (result, started.elapsed())
        })
    }

    /// `get(key)` on node `i` and how long it took there (see [`spawn_get`](Self::spawn_get)).
    pub async fn timed_get(&self, i: usize, key: &str) -> TimedGet {
        join(self.spawn_get(i, key)).await
    }

    /// `get(key)` on node `i` (see [`spawn_get`](Self::spawn_get)).
    pub async fn get(&self, i: usize, key: &str) -> Result<String, Error> {
        self.timed_get(i, key).await.0
    }

    /// Crashes node `i`'s host (every task and connection on it ends at once, its port
    /// closes) and waits until that happened. The node's state is lost.
    pub async fn crash(&self, i: usize) {
        let before = self.slots()[i].crashes;
        self.shared
            .faults
            .lock()
            .unwrap()
            .push_back(Fault::Crash(i));
        wait_until("the crash was applied", || self.slots()[i].crashes > before).await;
    }

    /// Restarts node `i`'s host (crashed or not) as a fresh process: a new, empty cache on the
    /// same address. Waits until the new node has started.
    pub async fn bounce(&self, i: usize) {
        let before = self.slots()[i].starts;
        self.shared
            .faults
            .lock()
            .unwrap()
            .push_back(Fault::Bounce(i));
        wait_until("the restarted node started", || {
            let slots = self.slots();
            slots[i].starts > before && slots[i].running.is_some()
        })
        .await;
    }
}

/// A node's host software: build the cache, join the cluster, listen, publish, serve.
async fn run_node(shared: Arc<Shared>, i: usize) -> turmoil::Result {
    let me = node_addr(&shared.names[i]);
    let peers: Vec<SocketAddr> = shared.names.iter().map(|name| node_addr(name)).collect();
    let (cache, group) = shared.spec.build_node(
        i,
        me,
        |builder| builder.peer_connector(TurmoilConnector),
        |group| group.hot_cache_policy(PromoteOneIn(0)),
    );
    cache.set_peers(peers)?;
    let listener = TcpListener::bind((IpAddr::V4(Ipv4Addr::UNSPECIFIED), GRPC_PORT)).await?;
    {
        let mut slots = shared.nodes.lock().unwrap();
        slots[i].running = Some(Running {
            cache: cache.clone(),
            group,
            runtime: Handle::current(),
        });
        slots[i].starts += 1;
    }
    serve(cache, listener).await?;
    Ok(())
}
