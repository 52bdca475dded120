//! Membership: [`Groupcache::set_peers`] for pull-based discovery (apply the whole list),
//! [`Groupcache::add_peer`] and [`Groupcache::remove_peer`] for push-based discovery.
//!
//! The ring holds exactly the peers discovery reports, so every peer given the same list
//! agrees on every key's owner. A member that cannot be reached stays in the ring: requests to
//! it fall back to a local load (rule 5) until it answers again; tonic reconnects on its own.
//!
//! When membership changes, this peer drops from its main cache the values it no longer owns,
//! and from its hot cache the copies of values it now owns. Otherwise its own callers would
//! keep reading an old copy while every other peer asks the owner, and a `remove` sent to the
//! owner would never reach it.
//!
//! Pull-based discovery is automated by a [`DiscoveryDriver`](crate::DiscoveryDriver) over a
//! [`ServiceDiscovery`](crate::ServiceDiscovery) provider: [`StaticPeers`](crate::StaticPeers),
//! [`PeersFile`](crate::PeersFile), [`DnsPeers`](crate::DnsPeers) or your own.

pub(crate) mod dns_peers;
pub(crate) mod driver;
pub(crate) mod peers_file;
pub(crate) mod service_discovery;
pub(crate) mod static_peers;

use crate::routing::Change;
use crate::{Error, Groupcache, GroupcachePeer};

impl<V: Clone + Send + Sync + 'static> Groupcache<V> {
    /// Replaces the cluster membership with exactly `peers`: [`GroupcachePeer`]s or
    /// `SocketAddr`s (order and duplicates do not matter). Include this peer's own address: a peer missing from the list owns no keys and
    /// asks the others for everything. An empty list makes this peer load every key itself.
    ///
    /// The new ring is swapped in atomically: a `get` running concurrently routes by either the
    /// old or the new ring, never a mix. Channels to peers that stay are kept. Values in the
    /// main cache whose key this peer no longer owns are dropped, and so are hot copies of keys
    /// it now owns: a scan of both caches, run inline, so expect a few milliseconds per hundred
    /// thousand entries.
    ///
    /// Channels to new peers are opened lazily, and their background tasks run on the tokio
    /// runtime that calls this method: call it from the runtime that serves your requests.
    ///
    /// ```no_run
    /// # async fn run(cache: groupcache::Groupcache<String>) -> Result<(), groupcache::Error> {
    /// use groupcache::GroupcachePeer;
    ///
    /// let peers = ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080"];
    /// cache
    ///     .set_peers(peers.map(|p| p.parse::<GroupcachePeer>().unwrap()))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if the peer connector cannot open a
    /// channel to a new peer; the membership is then left as it was.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime when a new peer needs a channel.
    pub async fn set_peers(
        &self,
        peers: impl IntoIterator<Item = impl Into<GroupcachePeer>>,
    ) -> Result<(), Error> {
        let change = self
            .inner()
            .routing
            .set(peers.into_iter().map(Into::into).collect())?;
        self.apply_change(&change);
        Ok(())
    }

    /// Adds one peer to the membership (no change if it is already a member).
    ///
    /// # Errors
    ///
    /// As [`set_peers`](Self::set_peers).
    pub async fn add_peer(&self, peer: impl Into<GroupcachePeer>) -> Result<(), Error> {
        let peer = peer.into();
        let change = self.inner().routing.update(|peers| peers.push(peer))?;
        self.apply_change(&change);
        Ok(())
    }

    /// Removes one peer from the membership (no change if it is not a member).
    ///
    /// # Errors
    ///
    /// As [`set_peers`](Self::set_peers).
    pub async fn remove_peer(&self, peer: impl Into<GroupcachePeer>) -> Result<(), Error> {
        let peer = peer.into();
        let change = self
            .inner()
            .routing
            .update(|peers| peers.retain(|p| *p != peer))?;
        self.apply_change(&change);
        Ok(())
    }

    /// The current members, sorted by address.
    pub fn peers(&self) -> Vec<GroupcachePeer> {
        self.inner().routing.peers()
    }

    /// Logs a membership change and drops the main-cache values this peer no longer owns.
    fn apply_change(&self, change: &Change) {
        if change.added.is_empty() && change.removed.is_empty() {
            return;
        }
        let inner = self.inner();
        // Values no longer owned leave the main cache; hot copies of values now owned leave
        // the hot cache, which lookups read first: the main cache is now their only home.
        let dropped = inner.main.retain(|key| inner.routing.owns(key))
            + inner.hot.retain(|key| !inner.routing.owns(key));
        tracing::info!(
            me = %self.me(),
            added = ?change.added,
            removed = ?change.removed,
            members = inner.routing.peers().len(),
            dropped_values = dropped,
            "peer set changed"
        );
    }
}
