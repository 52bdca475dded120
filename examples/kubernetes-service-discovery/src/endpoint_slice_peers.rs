//! [`EndpointSlicePeers`]: the ready endpoints of a Service, kept current by a watch.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use futures_util::StreamExt;
use groupcache::discovery::ServiceDiscovery;
use groupcache::{BoxError, GroupcachePeer};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::task::JoinHandle;

/// The label kubernetes puts on every EndpointSlice of a Service, naming the Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Which port of an endpoint the peers' gRPC service listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPort {
    /// The Service port with this name (`grpc` in the manifests); a slice without it is
    /// skipped, with a warning.
    Named(String),
    /// This port number on every endpoint.
    Number(u16),
}

/// The peers are the **ready** endpoints of one Service (ideally headless), read from its
/// EndpointSlices: listed once, then kept current by a watch (kube-rs `watcher` feeding a
/// `reflector` store) in a background task, so a poll reads memory and a pod that becomes
/// ready or goes away shows up at the next poll.
///
/// An endpoint counts as ready unless its `ready` condition is `false` (kubernetes says an
/// unset condition means ready). A terminating pod is reported not ready, so it leaves the
/// ring as soon as it starts shutting down. Slices of type `FQDN` are ignored.
///
/// API errors (unreachable API server, missing RBAC permission, an expired watch) are
/// logged as warnings and retried with kube's backoff (0.8 s doubling to 30 s); they never
/// panic. Until the first list succeeds, [`peers`](ServiceDiscovery::peers) waits, and the
/// [`DiscoveryDriver`](groupcache::discovery::DiscoveryDriver)'s poll timeout turns that into a logged,
/// retried failure. Dropping the provider stops the watch.
#[derive(Debug)]
pub struct EndpointSlicePeers {
    service: String,
    port: PeerPort,
    store: Store<EndpointSlice>,
    watch: JoinHandle<()>,
}

impl EndpointSlicePeers {
    /// Starts watching the EndpointSlices of `service` in `namespace`, on the current tokio
    /// runtime.
    pub fn start(client: Client, namespace: &str, service: &str, port: PeerPort) -> Self {
        let api: Api<EndpointSlice> = Api::namespaced(client, namespace);
        let config = watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={service}"));
        let (store, writer) = reflector::store();
        let events = reflector::reflector(writer, watcher(api, config)).default_backoff();
        let (ns, svc) = (namespace.to_owned(), service.to_owned());
        let watch = tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::InitDone) => {
                        tracing::info!(namespace = %ns, service = %svc, "EndpointSlices listed");
                    }
                    Ok(_) => {
                        tracing::debug!(namespace = %ns, service = %svc, "EndpointSlice event")
                    }
                    Err(error) => tracing::warn!(
                        namespace = %ns,
                        service = %svc,
                        %error,
                        "watching EndpointSlices failed; retrying with backoff (check the API \
                         server and that the pod's ServiceAccount may list and watch \
                         endpointslices)"
                    ),
                }
            }
        });
        EndpointSlicePeers {
            service: service.to_owned(),
            port,
            store,
            watch,
        }
    }

    /// The ready endpoints known now, sorted; empty until the first list has succeeded.
    pub fn current(&self) -> Vec<GroupcachePeer> {
        let mut peers = BTreeSet::new();
        for slice in self.store.state() {
            if slice.address_type == "FQDN" {
                continue;
            }
            let port = match &self.port {
                PeerPort::Number(port) => Some(*port),
                PeerPort::Named(name) => slice
                    .ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .and_then(|p| p.port)
                    .and_then(|p| u16::try_from(p).ok()),
            };
            let Some(port) = port else {
                tracing::warn!(
                    service = %self.service,
                    slice = slice.metadata.name.as_deref().unwrap_or("?"),
                    wanted = ?self.port,
                    "EndpointSlice has no such port; skipped"
                );
                continue;
            };
            let ready = slice
                .endpoints
                .iter()
                .flatten()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false));
            for address in ready.flat_map(|e| &e.addresses) {
                match address.parse::<IpAddr>() {
                    Ok(ip) => {
                        peers.insert(GroupcachePeer::from(SocketAddr::new(ip, port)));
                    }
                    Err(_) => tracing::warn!(%address, "endpoint address is not an IP; skipped"),
                }
            }
        }
        peers.into_iter().collect()
    }
}

impl Drop for EndpointSlicePeers {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

#[groupcache::async_trait]
impl ServiceDiscovery for EndpointSlicePeers {
    async fn peers(&self) -> Result<Vec<GroupcachePeer>, BoxError> {
        self.store.wait_until_ready().await.map_err(|_| {
            format!(
                "the EndpointSlice watch of service {} stopped before its first list",
                self.service
            )
        })?;
        Ok(self.current())
    }
}
