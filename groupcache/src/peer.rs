//! Peers: who they are ([`GroupcachePeer`]), how this peer opens channels to them
//! ([`PeerConnector`]), the service through which it answers them ([`GroupcacheService`]),
//! served on a listener with the right socket options ([`bind`], [`incoming`]), what one
//! peer sees of the cluster ([`PeerView`]), and of each member's health ([`PeerHealth`]).

pub(crate) mod breaker;
pub(crate) mod client;
pub(crate) mod connector;
pub(crate) mod latency;
pub(crate) mod lease;
pub(crate) mod listener;
pub(crate) mod server;
pub(crate) mod status;
pub(crate) mod token;
pub(crate) mod token_layer;

pub use self::breaker::{BreakerState, PeerHealth};
pub use self::connector::{LazyConnector, PeerConnector};
pub use self::listener::{bind, incoming};
pub use self::server::GroupcacheService;

pub use crate::describe::PeerView;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

/// A member of the cache cluster, identified by the address its gRPC service listens on.
///
/// The address is also the peer's identity on the hash ring: every peer must be given the same
/// addresses for the same members (for example the pod IPs that discovery reports), so that all
/// of them agree on who owns each key.
///
/// ```
/// use groupcache::GroupcachePeer;
///
/// let peer: GroupcachePeer = "127.0.0.1:8080".parse().unwrap();
/// assert_eq!(peer.addr().port(), 8080);
/// assert_eq!(peer.to_string(), "127.0.0.1:8080");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupcachePeer {
    addr: SocketAddr,
    /// `addr` rendered once: the ring hashes it and logs print it.
    name: Arc<str>,
}

impl GroupcachePeer {
    /// A peer listening on `addr`.
    #[must_use]
    pub fn new(addr: SocketAddr) -> Self {
        GroupcachePeer {
            addr,
            name: addr.to_string().into(),
        }
    }

    /// The address of the peer's gRPC service.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The stable name the ring hashes: the address as text, e.g. `10.0.0.7:8080`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl From<SocketAddr> for GroupcachePeer {
    fn from(addr: SocketAddr) -> Self {
        GroupcachePeer::new(addr)
    }
}

impl FromStr for GroupcachePeer {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<SocketAddr>().map(GroupcachePeer::new)
    }
}

/// As its address text, e.g. `"10.0.0.7:8080"`.
impl serde::Serialize for GroupcachePeer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

impl fmt::Display for GroupcachePeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for GroupcachePeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupcachePeer({})", self.name)
    }
}
