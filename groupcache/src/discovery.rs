//! Membership: [`Groupcache::set_peers`](crate::Groupcache::set_peers) for pull-based discovery
//! (apply the whole list), [`Groupcache::add_peer`](crate::Groupcache::add_peer) and
//! [`Groupcache::remove_peer`](crate::Groupcache::remove_peer) for push-based discovery.
//!
//! The ring holds exactly the peers discovery reports, so every peer given the same list
//! agrees on every key's owner. A member that cannot be reached stays in the ring: requests to
//! it fall back to a local load (rule 5) until it answers again; tonic reconnects on its own.
//!
//! When membership changes, this peer drops, in every group, from its main cache the values it no longer owns,
//! and from its hot cache the copies of values it now owns. Otherwise its own callers would
//! keep reading an old copy while every other peer asks the owner, and a `remove` sent to the
//! owner would never reach it.
//!
//! Pull-based discovery is automated by a [`DiscoveryDriver`] over a [`ServiceDiscovery`]
//! provider: [`StaticPeers`], [`PeersFile`], [`DnsPeers`] or your own.

pub(crate) mod dns_peers;
pub(crate) mod driver;
pub(crate) mod peers_file;
pub(crate) mod service_discovery;
pub(crate) mod static_peers;

pub use self::dns_peers::DnsPeers;
pub use self::driver::{DiscoveryDriver, DiscoveryHandle, DiscoveryStatus};
pub use self::peers_file::PeersFile;
pub use self::service_discovery::ServiceDiscovery;
pub use self::static_peers::{PeerEntry, StaticPeers};
