//! What the two cluster harnesses share: [`ClusterSpec`] describes a cluster of N peers, each
//! a peer set hosting one group named [`GROUP`] (one shared [`CountingLoader`]; each node's
//! peer-set builder passed through a [`Configure`], its group builder through a
//! [`ConfigureGroup`]), and the
//! [`Cluster`] trait answers the questions both ask of a running one (who owns a key, a key
//! owned by a node, flights left behind).
//!
//! [`ClusterSpec::start`] runs the cluster on loopback ([`TestCluster`]: real tonic servers on
//! `127.0.0.1:0`), [`ClusterSpec::start_sim`] on turmoil hosts ([`SimCluster`]). The same spec
//! and the same assertions work on both; what differs is the transport each adds to a node's
//! builder and how faults are made (`kill`/`restart` on loopback, `crash`/`bounce`,
//! partitions and held links in the simulation).

use std::net::SocketAddr;
use std::sync::Arc;

use groupcache::cache::PromoteOneIn;
use groupcache::{Group, GroupBuilder, Groupcache, GroupcacheBuilder};

use crate::sim::SimCluster;
use crate::{CountingLoader, TestCluster};

/// The name of the group every test node hosts.
pub const GROUP: &str = "test";

/// Customises each node's peer-set builder: `(node index, builder) -> builder`.
pub type Configure = Arc<dyn Fn(usize, GroupcacheBuilder) -> GroupcacheBuilder + Send + Sync>;

/// Customises each node's group builder: `(node index, builder) -> builder`.
pub type ConfigureGroup =
    Arc<dyn Fn(usize, GroupBuilder<String>) -> GroupBuilder<String> + Send + Sync>;

/// A cluster of `nodes` peers: node `i` is built for its address with the shared loader
/// (counting as node `i`), then passed through the spec's [`Configure`]. All nodes are given
/// the same peer list, every node.
#[derive(Clone)]
pub struct ClusterSpec {
    nodes: usize,
    loader: CountingLoader,
    configure: Configure,
    configure_group: ConfigureGroup,
}

impl std::fmt::Debug for ClusterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSpec")
            .field("nodes", &self.nodes)
            .field("loader", &self.loader)
            .finish_non_exhaustive()
    }
}

impl ClusterSpec {
    /// `nodes` peers with default settings and a fresh loader.
    pub fn new(nodes: usize) -> Self {
        ClusterSpec {
            nodes,
            loader: CountingLoader::new(),
            configure: Arc::new(|_, builder| builder),
            configure_group: Arc::new(|_, builder| builder),
        }
    }

    /// Passes each node's peer-set builder through `configure`, after what was configured
    /// before.
    pub fn configure(
        mut self,
        configure: impl Fn(usize, GroupcacheBuilder) -> GroupcacheBuilder + Send + Sync + 'static,
    ) -> Self {
        let before = self.configure;
        self.configure = Arc::new(move |i, builder| configure(i, before(i, builder)));
        self
    }

    /// Passes each node's group builder through `configure`, after what was configured before.
    pub fn configure_group(
        mut self,
        configure: impl Fn(usize, GroupBuilder<String>) -> GroupBuilder<String> + Send + Sync + 'static,
    ) -> Self {
        let before = self.configure_group;
        self.configure_group = Arc::new(move |i, builder| configure(i, before(i, builder)));
        self
    }

    /// Every node keeps a hot copy of every value it fetches from another peer.
    pub fn keeping_hot_copies(self) -> Self {
        self.configure_group(|_, group| group.hot_cache_policy(PromoteOneIn(1)))
    }

    /// The nodes share `loader` (node `i` counts as `i`) instead of a fresh one.
    pub fn loader(mut self, loader: &CountingLoader) -> Self {
        self.loader = loader.for_node(0);
        self
    }

    /// The loader the nodes share.
    pub fn shared_loader(&self) -> &CountingLoader {
        &self.loader
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes
    }

    /// Whether the cluster has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes == 0
    }

    /// Builds node `i` for address `me`: its peer set through `transport` (what the harness
    /// needs: a connector, settings) then the spec's [`Configure`], and on it the group
    /// [`GROUP`] with the shared loader counting as `i`, through `group` then the spec's
    /// [`ConfigureGroup`]. The spec has the last word.
    ///
    /// # Panics
    ///
    /// If the group cannot be built.
    pub fn build_node(
        &self,
        i: usize,
        me: SocketAddr,
        transport: impl FnOnce(GroupcacheBuilder) -> GroupcacheBuilder,
        group: impl FnOnce(GroupBuilder<String>) -> GroupBuilder<String>,
    ) -> (Groupcache, Group<String>) {
        let cache = (self.configure)(i, transport(Groupcache::builder(me))).build();
        let built = (self.configure_group)(i, group(cache.group(GROUP, self.loader.for_node(i))))
            .build()
            .expect("the test group");
        (cache, built)
    }

    /// Starts the cluster on loopback: each node a real tonic server on `127.0.0.1:0`.
    pub async fn start(self) -> TestCluster {
        TestCluster::start_spec(self).await
    }

    /// Registers the cluster on `sim`, a turmoil host per name (as many names as nodes).
    ///
    /// # Panics
    ///
    /// If there are not as many names as nodes.
    pub fn start_sim(self, sim: &mut turmoil::Sim<'_>, names: &[&str]) -> SimCluster {
        assert_eq!(names.len(), self.nodes, "one host name per node");
        SimCluster::start(sim, names, self)
    }
}

/// A running cluster, on loopback or simulated: the questions every harness answers alike.
pub trait Cluster {
    /// Number of nodes.
    fn len(&self) -> usize;

    /// Whether the cluster has no nodes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Node `i`'s address. In a simulation, call it inside the simulation.
    fn addr(&self, i: usize) -> SocketAddr;

    /// The test groups of the nodes running now, with their indexes.
    fn running(&self) -> Vec<(usize, Group<String>)>;

    /// The index of the node owning `key`, by the ring of the first running node (all nodes
    /// are given the same peers, so all agree).
    ///
    /// # Panics
    ///
    /// If no node runs, or the owner is not a node of the cluster.
    fn owner_of(&self, key: &str) -> usize {
        let (_, cache) = self.running().into_iter().next().expect("a node is up");
        let owner = cache.owner_of(key).addr();
        (0..self.len())
            .find(|&i| self.addr(i) == owner)
            .expect("the owner is a node")
    }

    /// A key owned by node `owner`, made from `prefix`.
    fn key_owned_by(&self, owner: usize, prefix: &str) -> String {
        (0..)
            .map(|n| format!("{prefix}-{n}"))
            .find(|key| self.owner_of(key) == owner)
            .expect("some key maps to every node")
    }

    /// `n` keys owned by node `owner`, made from `prefix` as [`Cluster::key_owned_by`] makes one.
    fn keys_owned_by(&self, owner: usize, prefix: &str, n: usize) -> Vec<String> {
        (0..)
            .map(|i| format!("{prefix}-{i}"))
            .filter(|key| self.owner_of(key) == owner)
            .take(n)
            .collect()
    }

    /// Asserts that no running node has a flight left (invariant I7).
    fn assert_no_flights(&self) {
        for (i, cache) in self.running() {
            assert_eq!(cache.inflight_len(), 0, "node {i} left flights behind");
        }
    }
}
