//! This library, as a cluster of `Setup::nodes` peers on loopback in this process, each
//! hosting one group, [`GROUP`].

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use groupcache::cache::PromoteOneIn;
use groupcache::codec::Postcard;
use groupcache::{Group, GroupBuilder, Groupcache};
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;

use crate::cluster::{Cluster, Servers, Setup};
use crate::faults::Faulty;
use crate::source::{NodeSource, Source};

/// Room for the encoding's length prefix and the gRPC framing above the value itself.
const LIMIT_SLACK: usize = 64 * 1024;

/// The one group every node hosts: a workload measures a path, not the choice between groups.
/// The echo names it too, so that both send requests of the same size.
pub(crate) const GROUP: &str = "bench";

pub(crate) struct Ours {
    /// Each node's group, where the workloads `get` (it keeps its peer set alive).
    nodes: Vec<Group<Bytes>>,
    /// Each node's address, as the ring names it.
    addrs: Vec<std::net::SocketAddr>,
    servers: Servers,
    source: Arc<Source>,
}

impl Ours {
    pub(crate) async fn start(setup: &Setup) -> Self {
        Self::start_with(setup, |group| group).await
    }

    /// As [`Ours::start`], with each node's group builder passed through `tune` last.
    pub(crate) async fn start_with(
        setup: &Setup,
        tune: impl Fn(GroupBuilder<Bytes, Postcard>) -> GroupBuilder<Bytes, Postcard>,
    ) -> Self {
        Self::launch(setup, false, tune).await
    }

    /// As [`Ours::start`], with concurrent gets for one owner sharing requests
    /// (`GroupcacheBuilder::coalesce_gets`).
    pub(crate) async fn start_coalescing(setup: &Setup) -> Self {
        Self::launch(setup, true, |group| group).await
    }

    async fn launch(
        setup: &Setup,
        coalesce: bool,
        tune: impl Fn(GroupBuilder<Bytes, Postcard>) -> GroupBuilder<Bytes, Postcard>,
    ) -> Self {
        let source = Source::new(setup.nodes, setup.value_size, setup.loader_delay);
        let mut servers = Servers::default();
        let (listeners, addrs) = Servers::bind_many(setup.nodes).await;
        let addrs = servers.advertised(addrs, setup.proxied).await;
        let mut nodes = Vec::new();
        for (node, listener) in listeners.into_iter().enumerate() {
            let loader = NodeSource {
                source: Arc::clone(&source),
                node,
            };
            let builder = Groupcache::builder(addrs[node])
                .max_value_size(setup.max_value + LIMIT_SLACK)
                .peer_timeout(setup.peer_timeout)
                .coalesce_gets(coalesce);
            let cache = match setup.hedge_percentile {
                Some(percentile) => builder.hedge_at_percentile(percentile),
                None => builder,
            }
            .build();
            let group = cache
                .group(GROUP, loader)
                // No eviction: every workload's values fit.
                .main_cache_capacity(1 << 30);
            let group = if setup.hot_cache {
                group.hot_cache_capacity(128 << 20)
            } else {
                group.hot_cache_policy(PromoteOneIn(0))
            };
            let group = tune(group)
                .build()
                .expect("the only group of a new peer set");
            let service = InterceptedService::new(cache.grpc_service(), servers.counter());
            servers.serve(listener, Routes::new(service));
            cache.set_peers(addrs.iter().copied()).expect("set_peers");
            nodes.push(group);
        }
        Ours {
            nodes,
            addrs,
            servers,
            source,
        }
    }

    /// The index of the node that owns `key`.
    pub(crate) fn owner_index(&self, key: &str) -> usize {
        let owner = self.nodes[0].owner_of(key).addr();
        self.addrs
            .iter()
            .position(|&addr| addr == owner)
            .expect("the owner is a node")
    }

    /// Node `node`'s group, for workloads that read its counters.
    pub(crate) fn node(&self, node: usize) -> &Group<Bytes> {
        &self.nodes[node]
    }
}

impl Cluster for Ours {
    fn get<'a>(
        &'a self,
        node: usize,
        key: &'a str,
    ) -> impl Future<Output = Result<Bytes, String>> + Send + 'a {
        let group = &self.nodes[node];
        async move { group.get(key).await.map_err(|e| e.to_string()) }
    }

    fn source(&self) -> &Source {
        &self.source
    }

    fn rpcs(&self) -> u64 {
        self.servers.count()
    }
}

impl Faulty for Ours {
    fn servers(&self) -> &Servers {
        &self.servers
    }
}
