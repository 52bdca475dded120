//! Support for the criterion benches in `benches/benches/`: a loader that counts its calls and
//! answers at once, and a loopback cluster of real tonic servers whose peers each host one
//! group of `String` values.
//!
//! It is the benches' own, not `groupcache-tests`' `TestCluster`, so that the benches build
//! against the library alone. It sets the cluster up the way that one did (each node's
//! server on a runtime of its own with one worker, `server_builder` and `incoming`, every
//! node given the whole peer list), so that figures stay comparable with earlier runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use groupcache::{BoxError, Group, GroupBuilder, Groupcache, ValueLoader};
use tokio::sync::oneshot;

/// The one group every node of a [`BenchCluster`] hosts.
pub const GROUP: &str = "bench";

// ===== BenchLoader =====

/// A loader that counts its calls per node and per key, and returns `"{key}:v1"` at once: a
/// load costs a locked map update and a small allocation, not a database.
#[derive(Debug, Clone, Default)]
pub struct BenchLoader {
    node: usize,
    /// (node, key) -> loads started. A `std` mutex: it is never held across an `.await`.
    loads: Arc<Mutex<HashMap<(usize, String), u64>>>,
}

impl BenchLoader {
    /// A loader for node 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same loader (shared counts), counting as node `node`.
    pub fn for_node(&self, node: usize) -> Self {
        BenchLoader {
            node,
            loads: Arc::clone(&self.loads),
        }
    }

    /// Loads of any key started on any node.
    pub fn total_loads(&self) -> u64 {
        self.loads.lock().unwrap().values().sum()
    }
}

#[groupcache::async_trait]
impl ValueLoader for BenchLoader {
    type Value = String;

    async fn load(&self, key: &str) -> Result<String, BoxError> {
        *self
            .loads
            .lock()
            .unwrap()
            .entry((self.node, key.to_owned()))
            .or_default() += 1;
        Ok(format!("{key}:v1"))
    }
}

// ===== BenchCluster =====

/// `n` peers on loopback, each a real tonic server on `127.0.0.1:0` hosting the group
/// [`GROUP`], all given the same peer list.
#[derive(Debug)]
pub struct BenchCluster {
    caches: Vec<Groupcache>,
    groups: Vec<Group<String>>,
    /// Each node's server runtime; dropping it ends the server.
    servers: Vec<tokio::runtime::Runtime>,
    /// The loader shared by all nodes (node `i` counts as `i`).
    pub loader: BenchLoader,
}

impl BenchCluster {
    /// Starts `n` nodes with default settings.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, |builder| builder).await
    }

    /// Starts `n` nodes, each node's group builder passed through `configure` first.
    pub async fn start_with(
        n: usize,
        configure: impl Fn(GroupBuilder<String>) -> GroupBuilder<String>,
    ) -> Self {
        let loader = BenchLoader::new();
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..n {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            addrs.push(listener.local_addr().expect("local addr"));
            listeners.push(listener);
        }
        let mut cluster = BenchCluster {
            caches: Vec::new(),
            groups: Vec::new(),
            servers: Vec::new(),
            loader,
        };
        for (i, listener) in listeners.into_iter().enumerate() {
            let cache = Groupcache::builder(addrs[i]).build();
            let group = configure(cache.group(GROUP, cluster.loader.for_node(i)))
                .build()
                .expect("the only group of a new peer set");
            cluster.servers.push(serve(cache.clone(), listener).await);
            cluster.caches.push(cache);
            cluster.groups.push(group);
        }
        for cache in &cluster.caches {
            cache.set_peers(addrs.iter().copied()).expect("set_peers");
        }
        cluster
    }

    /// Node `i`'s group.
    pub fn node(&self, i: usize) -> &Group<String> {
        &self.groups[i]
    }

    /// All nodes' groups.
    pub fn groups(&self) -> Vec<Group<String>> {
        self.groups.clone()
    }

    /// The index of the node owning `key` (by node 0's ring; all agree).
    pub fn owner_of(&self, key: &str) -> usize {
        let owner = self.caches[0].owner_of(key);
        self.caches
            .iter()
            .position(|c| c.addr() == owner.addr())
            .expect("owner is a member")
    }

    /// A key owned by node `owner`, made from `prefix`.
    pub fn key_owned_by(&self, owner: usize, prefix: &str) -> String {
        (0..)
            .map(|i| format!("{prefix}-{i}"))
            .find(|k| self.owner_of(k) == owner)
            .expect("some key maps to every node")
    }

    /// Stops every server and checks that no flight was left behind.
    pub async fn shutdown(self) {
        for runtime in self.servers {
            tokio::task::spawn_blocking(move || {
                runtime.shutdown_timeout(std::time::Duration::from_secs(5))
            })
            .await
            .expect("runtime shutdown");
        }
        for (i, group) in self.groups.iter().enumerate() {
            assert_eq!(group.inflight_len(), 0, "node {i} left flights behind");
        }
    }
}

/// Serves `cache` on `listener` from a runtime of its own (one worker thread), so that the
/// servers' work does not queue behind the bench's own tasks.
async fn serve(cache: Groupcache, listener: std::net::TcpListener) -> tokio::runtime::Runtime {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-node-server")
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
            .add_service(cache.grpc_service())
            .serve_with_incoming(incoming)
            .await;
        if let Err(err) = result {
            eprintln!("bench node server failed: {err}");
        }
    });
    ready_rx.await.expect("server started");
    runtime
}
