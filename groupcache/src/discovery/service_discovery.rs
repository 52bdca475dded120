//! The [`ServiceDiscovery`] trait: where the current set of peers comes from.

use std::sync::Arc;

use crate::{BoxError, GroupcachePeer};

/// A source of the cluster's membership: asked for the current set of peers, it answers with
/// all of them.
///
/// A [`DiscoveryDriver`](crate::discovery::DiscoveryDriver) calls [`peers`](Self::peers) right away and
/// then on an interval, and applies each new answer with
/// [`Groupcache::set_peers`](crate::Groupcache::set_peers). Built-in providers:
/// [`StaticPeers`](crate::discovery::StaticPeers) (a fixed list, e.g. from `GROUPCACHE_PEERS`),
/// [`PeersFile`](crate::discovery::PeersFile) (a list re-read from a file) and
/// [`DnsPeers`](crate::discovery::DnsPeers) (every address of a DNS name, e.g. a kubernetes headless
/// service).
///
/// Return an error when the answer is unknown (the registry cannot be reached, a name does not
/// resolve): the driver then keeps the last set it applied and retries with a growing delay.
/// Never return a partial set as if it were complete: every peer given the same answer must
/// agree on the owners of keys.
///
/// ```
/// use groupcache::discovery::ServiceDiscovery;
/// use groupcache::{BoxError, GroupcachePeer};
///
/// /// Peers listed by a registry this application already talks to.
/// struct Registry;
///
/// #[groupcache::async_trait]
/// impl ServiceDiscovery for Registry {
///     async fn peers(&self) -> Result<Vec<GroupcachePeer>, BoxError> {
///         Ok(vec!["10.0.0.1:8080".parse()?, "10.0.0.2:8080".parse()?])
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait ServiceDiscovery: Send + Sync + 'static {
    /// Every current member of the cluster, this peer included. Order and duplicates do not
    /// matter.
    async fn peers(&self) -> Result<Vec<GroupcachePeer>, BoxError>;
}

#[async_trait::async_trait]
impl<D: ServiceDiscovery + ?Sized> ServiceDiscovery for Arc<D> {
    async fn peers(&self) -> Result<Vec<GroupcachePeer>, BoxError> {
        (**self).peers().await
    }
}

#[async_trait::async_trait]
impl<D: ServiceDiscovery + ?Sized> ServiceDiscovery for Box<D> {
    async fn peers(&self) -> Result<Vec<GroupcachePeer>, BoxError> {
        (**self).peers().await
    }
}
