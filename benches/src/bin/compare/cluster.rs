//! What the workloads need from a cluster, whichever crate runs it: `get` on a node, the
//! source's load counts, and the number of peer requests served. Also the one way every
//! contender's server is started (same tonic settings for all), and where a node is put behind
//! a [`FaultProxy`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::fault_proxy::{Fault, FaultProxy};
use crate::source::Source;

/// The peer timeout of every workload but the faults: 64 replies of 8 MiB in flight on one
/// connection take longer than our 2 s default. Both crates are given the same.
pub(crate) const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// How a cluster is set up for one workload.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) nodes: usize,
    pub(crate) value_size: usize,
    pub(crate) loader_delay: Option<Duration>,
    /// Whether values fetched from another peer may be kept in a hot cache (each crate's
    /// default policy), or never.
    pub(crate) hot_cache: bool,
    /// Largest value the cluster must move (limits are raised to fit it where the crate can).
    pub(crate) max_value: usize,
    /// Deadline of a request to a peer, the same for both crates (ours: `peer_timeout`;
    /// 0.3.0: the tonic endpoint's request timeout). Both connect within the smaller of this
    /// and our default connect timeout, 1 s.
    pub(crate) peer_timeout: Duration,
    /// The node that every node, itself included, knows by the address of a [`FaultProxy`] in
    /// front of its server, so that a workload can cut it off with [`Servers::fault`].
    pub(crate) proxied: Option<usize>,
    /// Ours only: hedged gets at this percentile of each peer's recent answer times
    /// (`hedge_at_percentile`); `None` (the default, and 0.3.0's only way) for none.
    pub(crate) hedge_percentile: Option<f64>,
}

/// A running cluster of one contender.
pub(crate) trait Cluster: Send + Sync + 'static {
    /// `get(key)` on node `node`; the value's length on success.
    fn get<'a>(
        &'a self,
        node: usize,
        key: &'a str,
    ) -> impl Future<Output = Result<Bytes, String>> + Send + 'a;

    fn source(&self) -> &Source;

    /// Peer `Get` requests served, summed over the cluster.
    fn rpcs(&self) -> u64;
}

/// The servers of one cluster and what they count.
#[derive(Debug, Default)]
pub(crate) struct Servers {
    tasks: Vec<JoinHandle<()>>,
    pub(crate) rpcs: Arc<AtomicU64>,
    proxy: Option<FaultProxy>,
}

impl Servers {
    pub(crate) async fn bind() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        (listener, addr)
    }

    /// `n` loopback listeners and their addresses, bound before any node is built so that
    /// every node can be given the whole peer list.
    pub(crate) async fn bind_many(n: usize) -> (Vec<TcpListener>, Vec<SocketAddr>) {
        let mut listeners = Vec::with_capacity(n);
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            let (listener, addr) = Self::bind().await;
            listeners.push(listener);
            addrs.push(addr);
        }
        (listeners, addrs)
    }

    /// The addresses the nodes are known by, ring and peer lists alike: `addrs`, except node
    /// `proxied`'s, which is that of a [`FaultProxy`] relaying to its server (kept here).
    pub(crate) async fn advertised(
        &mut self,
        mut addrs: Vec<SocketAddr>,
        proxied: Option<usize>,
    ) -> Vec<SocketAddr> {
        if let Some(node) = proxied {
            let proxy = FaultProxy::start(addrs[node]).await;
            addrs[node] = proxy.addr();
            self.proxy = Some(proxy);
        }
        addrs
    }

    /// Cuts off (or lets through) the node behind the proxy.
    ///
    /// # Panics
    ///
    /// If the cluster was started without `Setup::proxied`.
    pub(crate) fn fault(&self, fault: Fault) {
        self.proxy
            .as_ref()
            .expect("a cluster started with Setup::proxied")
            .set(fault);
    }

    /// Serves `routes` on `listener` with `TCP_NODELAY`, as every contender is served.
    pub(crate) fn serve(&mut self, listener: TcpListener, routes: Routes) {
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        self.tasks.push(tokio::spawn(async move {
            let _ = Server::builder()
                .tcp_nodelay(true)
                .add_routes(routes)
                .serve_with_incoming(incoming)
                .await;
        }));
    }

    /// A request counter for `tonic::service::interceptor`.
    pub(crate) fn counter(
        &self,
    ) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>
    + Clone
    + Send
    + Sync
    + 'static {
        let rpcs = Arc::clone(&self.rpcs);
        move |request| {
            rpcs.fetch_add(1, Ordering::Relaxed);
            Ok(request)
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.rpcs.load(Ordering::Relaxed)
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// `count` keys owned by node `owner`, found (and warmed) by asking node `asker` and seeing
/// which node's loader ran: this works the same for both crates, whatever their ring.
pub(crate) async fn keys_owned_by<C: Cluster>(
    cluster: &C,
    asker: usize,
    owner: usize,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    let mut keys = Vec::with_capacity(count);
    let mut i = 0u64;
    while keys.len() < count {
        let key = format!("{prefix}-{i}");
        i += 1;
        let before = cluster.source().loads_on(owner);
        cluster.get(asker, &key).await.expect("warm-up get");
        if cluster.source().loads_on(owner) > before {
            keys.push(key);
        }
        assert!(i < 100_000, "no key owned by node {owner} found");
    }
    keys
}
