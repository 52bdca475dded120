//! The published `groupcache` crate 0.3.0 (renamed `groupcache_crates_io` here), as a cluster
//! of `Setup::nodes` peers on loopback in this process, served exactly as ours is.
//!
//! Its settings are its defaults except where a workload says otherwise: a main cache without
//! a bound, a hot cache of 10,000 entries for 30 s (or none), tonic's default 4 MiB limit on
//! a decoded reply (it has no setting for it: its client is not exposed). Its peer deadlines
//! are set to ours (`Setup::peer_timeout`), through the one setting it offers for them, the
//! tonic endpoint.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use groupcache_crates_io::moka::future::Cache;
use groupcache_crates_io::{Groupcache, GroupcachePeer};
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;

use crate::cluster::{Cluster, Servers, Setup};
use crate::faults::Faulty;
use crate::source::{NodeSource, Source};

pub(crate) struct Published {
    nodes: Vec<Groupcache<Bytes>>,
    servers: Servers,
    source: Arc<Source>,
}

impl Published {
    pub(crate) async fn start(setup: &Setup) -> Self {
        let source = Source::new(setup.nodes, setup.value_size, setup.loader_delay);
        let mut servers = Servers::default();
        let (listeners, addrs) = Servers::bind_many(setup.nodes).await;
        let addrs = servers.advertised(addrs, setup.proxied).await;
        let mut nodes = Vec::new();
        // The same deadlines as ours (see `Setup::peer_timeout`).
        let peer_timeout = setup.peer_timeout;
        let connect_timeout = peer_timeout.min(groupcache::defaults::CONNECT_TIMEOUT);
        for (node, listener) in listeners.into_iter().enumerate() {
            let loader = NodeSource {
                source: Arc::clone(&source),
                node,
            };
            let mut builder = Groupcache::builder(GroupcachePeer::from_socket(addrs[node]), loader)
                .grpc_endpoint_builder(move |endpoint| {
                    endpoint
                        .tcp_nodelay(true)
                        .timeout(peer_timeout)
                        .connect_timeout(connect_timeout)
                });
            if !setup.hot_cache {
                // Capacity 0 alone would still serve an entry until moka's next maintenance
                // run; an immediate expiry makes every read a miss.
                builder = builder.hot_cache(
                    Cache::builder()
                        .max_capacity(0)
                        .time_to_live(Duration::from_nanos(1))
                        .build(),
                );
            }
            let cache = builder.build();
            let service = InterceptedService::new(cache.grpc_service(), servers.counter());
            servers.serve(listener, Routes::new(service));
            nodes.push(cache);
        }
        let peers: HashSet<GroupcachePeer> = addrs
            .iter()
            .map(|a| GroupcachePeer::from_socket(*a))
            .collect();
        for cache in &nodes {
            cache.set_peers(peers.clone()).await.expect("set_peers");
        }
        Published {
            nodes,
            servers,
            source,
        }
    }
}

impl Cluster for Published {
    fn get<'a>(
        &'a self,
        node: usize,
        key: &'a str,
    ) -> impl Future<Output = Result<Bytes, String>> + Send + 'a {
        let cache = &self.nodes[node];
        async move { cache.get(key).await.map_err(|e| e.to_string()) }
    }

    fn source(&self) -> &Source {
        &self.source
    }

    fn rpcs(&self) -> u64 {
        self.servers.count()
    }
}

impl Faulty for Published {
    fn servers(&self) -> &Servers {
        &self.servers
    }
}
