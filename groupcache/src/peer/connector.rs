//! How this peer opens channels to other peers: [`PeerConnector`].

use std::fmt::Debug;

use tonic::transport::{Channel, Endpoint};

use crate::{BoxError, GroupcachePeer};

/// Opens the gRPC channel to a peer.
///
/// groupcache prepares an [`Endpoint`] for the peer's address with its own settings (connect
/// timeout, `TCP_NODELAY`, HTTP/2 keep-alive pings every 10 s, idle or not,
/// closing a connection whose ping is unanswered for 5 s) and hands it to the connector, which
/// may change any of them and returns the channel (the peer timeout is not among them: every
/// request runs under it, whatever the endpoint says). One channel is opened per peer and reused by every request to it;
/// tonic reconnects it after the peer restarts.
///
/// The default, [`LazyConnector`], connects on first use. Replace it to route through a proxy,
/// to tune the endpoint, or to connect over a transport of your own
/// ([`Endpoint::connect_with_connector_lazy`]; the simulation tests run the cluster over
/// turmoil this way). The endpoint's URI is `http://` + the peer's address, or `https://` with
/// TLS already configured when `GroupcacheBuilder::tls` is set
/// (feature `tls`); use that rather than adding TLS here, since tonic applies TLS settings to
/// `https` URIs only.
///
/// ```
/// use groupcache::peer::PeerConnector;
/// use groupcache::{BoxError, GroupcachePeer};
/// use tonic::transport::{Channel, Endpoint};
///
/// /// Tags every peer request with a user agent, then connects as the default does.
/// #[derive(Debug)]
/// struct Tagged;
///
/// impl PeerConnector for Tagged {
///     fn connect(&self, _peer: &GroupcachePeer, endpoint: Endpoint) -> Result<Channel, BoxError> {
///         Ok(endpoint.user_agent("billing-service")?.connect_lazy())
///     }
/// }
/// ```
pub trait PeerConnector: Debug + Send + Sync + 'static {
    /// Returns a channel to `peer`. Must not block: connect lazily.
    ///
    /// # Errors
    ///
    /// Whatever stops the channel from being made; `set_peers` then returns
    /// [`ErrorKind::Connect`](crate::ErrorKind::Connect) and leaves the membership as it was.
    fn connect(&self, peer: &GroupcachePeer, endpoint: Endpoint) -> Result<Channel, BoxError>;
}

/// Connects to the peer's own address, lazily, with the prepared endpoint as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct LazyConnector;

impl PeerConnector for LazyConnector {
    fn connect(&self, _peer: &GroupcachePeer, endpoint: Endpoint) -> Result<Channel, BoxError> {
        Ok(endpoint.connect_lazy())
    }
}
