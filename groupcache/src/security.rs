//! Securing the links between peers: a shared [`PeerToken`] every request carries, and
//! (feature `tls`) [`PeerTls`] for TLS and mutual TLS.
//!
//! Set them on the peer set's builder:
//! [`GroupcacheBuilder::peer_token`](crate::GroupcacheBuilder::peer_token),
//! [`accept_peer_token`](crate::GroupcacheBuilder::accept_peer_token) (rotation) and
//! `GroupcacheBuilder::tls`. The [service](crate::Groupcache::grpc_service) checks the token of
//! every request before reading its body; [`PeerTokenLayer`] applies the same check to services
//! of your own.

pub use crate::peer::token::{MAX_PEER_TOKEN_LEN, PeerToken};
pub use crate::peer::token_layer::{PeerTokenLayer, RequirePeerToken};
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use crate::tls::{PeerTls, TLS_HANDSHAKE_TIMEOUT};
