//! This library, as a cluster of `Setup::nodes` peers on loopback in this process.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use groupcache::{Groupcache, PromoteOneIn};
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;

use crate::cluster::{Cluster, Servers, Setup};
use crate::source::{NodeSource, Source};

/// Room for the encoding's length prefix and the gRPC framing above the value itself.
const LIMIT_SLACK: usize = 64 * 1024;

pub(crate) struct Ours {
    nodes: Vec<Groupcache<Bytes>>,
    servers: Servers,
    source: Arc<Source>,
}

impl Ours {
    pub(crate) async fn start(setup: &Setup) -> Self {
        let source = Source::new(setup.nodes, setup.value_size, setup.loader_delay);
        let mut servers = Servers::default();
        let (listeners, addrs) = Servers::bind_many(setup.nodes).await;
        let mut nodes = Vec::new();
        for (node, listener) in listeners.into_iter().enumerate() {
            let loader = NodeSource {
                source: Arc::clone(&source),
                node,
            };
            let mut builder = Groupcache::builder(addrs[node], loader)
                // No eviction: every workload's values fit.
                .main_cache_capacity(1 << 30)
                .max_value_size(setup.max_value + LIMIT_SLACK)
                // 64 replies of 8 MiB in flight on one connection take longer than the 2 s
                // default; the 0.3.0 crate is given the same 10 s.
                .peer_timeout(Duration::from_secs(10));
            builder = if setup.hot_cache {
                builder.hot_cache_capacity(128 << 20)
            } else {
                builder.hot_cache_policy(PromoteOneIn(0))
            };
            let cache = builder.build();
            let service = InterceptedService::new(cache.grpc_service(), servers.counter());
            servers.serve(listener, Routes::new(service));
            nodes.push(cache);
        }
        for cache in &nodes {
            cache
                .set_peers(addrs.iter().copied())
                .await
                .expect("set_peers");
        }
        Ours {
            nodes,
            servers,
            source,
        }
    }

    /// Node `node`'s cache, for workloads that read its counters.
    pub(crate) fn node(&self, node: usize) -> &Groupcache<Bytes> {
        &self.nodes[node]
    }
}

impl Cluster for Ours {
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
