//! Who owns a key right now: the current ring snapshot and the client of every remote member.
//!
//! Readers load the snapshot through `ArcSwap` (no lock, never blocked); membership changes
//! build a whole new snapshot and swap it in. Writers are serialised by a mutex so that
//! `add_peer` and `remove_peer` (read, modify, write) never lose each other's changes.
//! Channels are kept across snapshots for peers that stay, so a membership change does not
//! reconnect to everyone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::peer::PeerConnector;
use crate::peer::client::{ChannelConfig, PeerClient};
use crate::ring::Ring;
use crate::{Error, GroupcachePeer};

/// Where a key's value comes from.
#[derive(Debug)]
pub(crate) enum Route {
    /// This peer owns the key (or there is no ring): load it here.
    Local,
    /// Ask the owner.
    Remote(Arc<PeerClient>),
}

/// One immutable view of the cluster.
#[derive(Debug)]
struct Snapshot {
    ring: Ring,
    /// A client for every member but this peer.
    clients: HashMap<GroupcachePeer, Arc<PeerClient>>,
}

pub(crate) struct Routing {
    me: GroupcachePeer,
    vnodes: usize,
    channel: ChannelConfig,
    connector: Arc<dyn PeerConnector>,
    current: ArcSwap<Snapshot>,
    /// Serialises writers; never held across an `.await`.
    writer: Mutex<()>,
}

/// What a membership change did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) added: Vec<GroupcachePeer>,
    pub(crate) removed: Vec<GroupcachePeer>,
}

impl Routing {
    pub(crate) fn new(
        me: GroupcachePeer,
        vnodes: usize,
        channel: ChannelConfig,
        connector: Arc<dyn PeerConnector>,
    ) -> Self {
        let empty = Snapshot {
            ring: Ring::new([], vnodes),
            clients: HashMap::new(),
        };
        Routing {
            me,
            vnodes,
            channel,
            connector,
            current: ArcSwap::from_pointee(empty),
            writer: Mutex::new(()),
        }
    }

    pub(crate) fn me(&self) -> &GroupcachePeer {
        &self.me
    }

    #[inline]
    pub(crate) fn route(&self, key: &str) -> Route {
        let snapshot = self.current.load();
        match snapshot.ring.owner_of(key) {
            Some(owner) if *owner != self.me => match snapshot.clients.get(owner) {
                Some(client) => Route::Remote(Arc::clone(client)),
                None => Route::Local,
            },
            _ => Route::Local,
        }
    }

    /// Whether this peer owns `key`: it is the ring's owner, or the ring is empty.
    pub(crate) fn owns(&self, key: &str) -> bool {
        self.current
            .load()
            .ring
            .owner_of(key)
            .is_none_or(|owner| *owner == self.me)
    }

    /// The owner of `key`; this peer when the ring is empty.
    pub(crate) fn owner_of(&self, key: &str) -> GroupcachePeer {
        self.current
            .load()
            .ring
            .owner_of(key)
            .unwrap_or(&self.me)
            .clone()
    }

    pub(crate) fn virtual_nodes(&self) -> usize {
        self.vnodes
    }

    /// The client of member `peer`, if it is a member other than this peer.
    pub(crate) fn client_of(&self, peer: &GroupcachePeer) -> Option<Arc<PeerClient>> {
        self.current.load().clients.get(peer).cloned()
    }

    pub(crate) fn peers(&self) -> Vec<GroupcachePeer> {
        self.current.load().ring.peers().to_vec()
    }

    /// Replaces the membership with exactly `peers`.
    pub(crate) fn set(&self, peers: Vec<GroupcachePeer>) -> Result<Change, Error> {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.replace(peers)
    }

    /// Applies `edit` to the current member list, atomically with respect to other writers.
    pub(crate) fn update(
        &self,
        edit: impl FnOnce(&mut Vec<GroupcachePeer>),
    ) -> Result<Change, Error> {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut peers = self.peers();
        edit(&mut peers);
        self.replace(peers)
    }

    /// Builds and swaps in a new snapshot. Caller holds `writer`.
    fn replace(&self, peers: Vec<GroupcachePeer>) -> Result<Change, Error> {
        let old = self.current.load_full();
        let ring = Ring::new(peers, self.vnodes);
        let mut clients = HashMap::with_capacity(ring.peers().len());
        for peer in ring.peers() {
            if *peer == self.me {
                continue;
            }
            let client = match old.clients.get(peer) {
                Some(client) => Arc::clone(client),
                None => Arc::new(PeerClient::new(
                    peer.clone(),
                    &self.channel,
                    &*self.connector,
                )?),
            };
            clients.insert(peer.clone(), client);
        }
        let change = Change {
            added: ring
                .peers()
                .iter()
                .filter(|p| !old.ring.contains(p))
                .cloned()
                .collect(),
            removed: old
                .ring
                .peers()
                .iter()
                .filter(|p| !ring.contains(p))
                .cloned()
                .collect(),
        };
        self.current.store(Arc::new(Snapshot { ring, clients }));
        Ok(change)
    }
}

impl std::fmt::Debug for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routing")
            .field("me", &self.me)
            .field("peers", &self.peers())
            .finish_non_exhaustive()
    }
}
