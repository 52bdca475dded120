//! [`DnsPeers`]: every address a DNS name resolves to, on one port.

use std::net::SocketAddr;

use super::ServiceDiscovery;
use crate::{BoxError, GroupcachePeer};

/// The peers are all the addresses of a DNS name, resolved again on every poll, each with the
/// same port: the way a kubernetes **headless** service (`clusterIP: None`) publishes one
/// address per ready pod (`my-cache.my-namespace.svc.cluster.local`).
///
/// Resolution goes through the system resolver (`getaddrinfo`, via
/// [`tokio::net::lookup_host`]), so `/etc/hosts`, search domains and the resolver's own cache
/// apply. A failed lookup fails the poll and the driver keeps the last set; a name with no
/// address yields an empty set, which the driver ignores unless told otherwise
/// ([`DiscoveryDriver::allow_empty`](crate::discovery::DiscoveryDriver::allow_empty)).
///
/// On a dual-stack network a name may return an IPv4 and an IPv6 address for the same pod:
/// keep one family ([`ipv4_only`](Self::ipv4_only), [`ipv6_only`](Self::ipv6_only)) so that
/// each pod is one peer.
///
/// ```no_run
/// # fn run(cache: groupcache::Groupcache) {
/// use groupcache::discovery::{DiscoveryDriver, DnsPeers};
///
/// let peers = DnsPeers::new("my-cache.default.svc.cluster.local", 8080).ipv4_only();
/// let discovery = DiscoveryDriver::new(cache, peers).spawn();
/// # drop(discovery);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPeers {
    name: String,
    port: u16,
    family: Family,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Any,
    V4,
    V6,
}

impl DnsPeers {
    /// Every address of `name`, each on `port`.
    pub fn new(name: impl Into<String>, port: u16) -> Self {
        DnsPeers {
            name: name.into(),
            port,
            family: Family::Any,
        }
    }

    /// Keeps only IPv4 addresses.
    #[must_use]
    pub fn ipv4_only(mut self) -> Self {
        self.family = Family::V4;
        self
    }

    /// Keeps only IPv6 addresses.
    #[must_use]
    pub fn ipv6_only(mut self) -> Self {
        self.family = Family::V6;
        self
    }

    /// The name resolved on every poll.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port given to every address.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }
}

#[async_trait::async_trait]
impl ServiceDiscovery for DnsPeers {
    async fn peers(&self) -> Result<Vec<GroupcachePeer>, BoxError> {
        let addrs = tokio::net::lookup_host((self.name.as_str(), self.port))
            .await
            .map_err(|e| format!("resolving {}: {e}", self.name))?;
        Ok(addrs
            .filter(|addr: &SocketAddr| match self.family {
                Family::Any => true,
                Family::V4 => addr.is_ipv4(),
                Family::V6 => addr.is_ipv6(),
            })
            .map(GroupcachePeer::from)
            .collect())
    }
}
