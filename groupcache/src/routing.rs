//! Who owns a key right now: the current ring snapshot and the client of every remote member.
//!
//! Readers load the snapshot through `ArcSwap` (no lock, never blocked); membership changes
//! build a whole new snapshot and swap it in. Writers are serialised by a mutex so that
//! `add_peer` and `remove_peer` (read, modify, write) never lose each other's changes.
//! Channels are kept across snapshots for peers that stay, so a membership change does not
//! reconnect to everyone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::time::Instant;

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
    /// The owner is out (its breaker is open here): ask its substitute, the first peer after
    /// it on the ring that is not out, or load here and keep the value if that is this peer.
    Substitute {
        owner: GroupcachePeer,
        /// The substitute; `None` if it is this peer.
        via: Option<Arc<PeerClient>>,
    },
}

/// One immutable view of the cluster.
#[derive(Debug)]
struct Snapshot {
    ring: Arc<Ring>,
    /// A client for every member but this peer.
    clients: HashMap<GroupcachePeer, Arc<PeerClient>>,
    /// The ring before the last membership change, while its handoff window lasts.
    previous: Option<Previous>,
}

/// The ring before a membership change: a new owner that misses asks the previous owner first.
#[derive(Debug, Clone)]
struct Previous {
    ring: Arc<Ring>,
    /// Clients of its members that left (the others are in the snapshot's `clients`).
    departed: HashMap<GroupcachePeer, Arc<PeerClient>>,
    until: Instant,
    /// Handoff asks in a row that found nothing: past [`HANDOFF_GIVE_UP_AFTER`], the previous
    /// owners hold nothing worth a round trip (a whole cluster starting at once, not a peer
    /// joining a warm one, or previous owners that are gone), and asking stops.
    missed_in_a_row: Arc<AtomicU32>,
    /// Tells this membership change from the next (for what was removed since).
    id: u64,
}

/// Numbers the membership changes of every `Routing` in the process.
static NEXT_CHANGE_ID: AtomicU64 = AtomicU64::new(1);

/// After this many handoff asks in a row that found nothing, a peer stops asking until the
/// next membership change: its previous owners hold nothing worth a round trip.
const HANDOFF_GIVE_UP_AFTER: u32 = 16;

pub(crate) struct Routing {
    me: GroupcachePeer,
    vnodes: usize,
    handoff_window: Duration,
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
        handoff_window: Duration,
        channel: ChannelConfig,
        connector: Arc<dyn PeerConnector>,
    ) -> Self {
        let empty = Snapshot {
            ring: Arc::new(Ring::new([], vnodes)),
            clients: HashMap::new(),
            previous: None,
        };
        Routing {
            me,
            vnodes,
            handoff_window,
            channel,
            connector,
            current: ArcSwap::from_pointee(empty),
            writer: Mutex::new(()),
        }
    }

    pub(crate) fn me(&self) -> &GroupcachePeer {
        &self.me
    }

    /// Where a get of `key` goes now. An open breaker whose cool-down has passed starts its
    /// probe here, in the background.
    #[inline]
    pub(crate) fn route(&self, key: &str) -> Route {
        self.route_probing(key, true)
    }

    /// [`Routing::route`]; `probe` says whether open breakers on the way may start their
    /// probes (a get), or not (introspection, which only reads).
    #[inline]
    fn route_probing(&self, key: &str, probe: bool) -> Route {
        let snapshot = self.current.load();
        let Some(owner) = snapshot.ring.owner_of(key) else {
            return Route::Local;
        };
        if *owner == self.me {
            return Route::Local;
        }
        let Some(client) = snapshot.clients.get(owner) else {
            return Route::Local;
        };
        if !client.is_out() {
            return Route::Remote(Arc::clone(client));
        }
        if probe {
            client.probe_if_due();
        }
        self.substitute_in(&snapshot, key, owner, None, probe)
    }

    /// Where a get of `key` goes after `failed` (the owner, or the substitute asked) did not
    /// answer: the first peer after the owner that is neither out nor `failed`.
    pub(crate) fn route_around(&self, key: &str, failed: &GroupcachePeer) -> Route {
        let snapshot = self.current.load();
        match snapshot.ring.owner_of(key) {
            Some(owner) if *owner != self.me => {
                let owner = owner.clone();
                self.substitute_in(&snapshot, key, &owner, Some(failed), true)
            }
            _ => Route::Local,
        }
    }

    /// The substitute of `owner` for `key`: every peer with the same ring and the same peers
    /// out picks the same one (this peer always qualifies, so there is one).
    fn substitute_in(
        &self,
        snapshot: &Snapshot,
        key: &str,
        owner: &GroupcachePeer,
        failed: Option<&GroupcachePeer>,
        probe: bool,
    ) -> Route {
        let substitute = snapshot.ring.first_accepted(key, |peer| {
            if peer == owner || Some(peer) == failed {
                return false;
            }
            if *peer == self.me {
                return true;
            }
            let Some(client) = snapshot.clients.get(peer) else {
                return false;
            };
            if client.is_out() {
                // A peer out of the way is probed too, or it would stay out here for ever
                // if this peer never asks it for a key of its own.
                if probe {
                    client.probe_if_due();
                }
                return false;
            }
            true
        });
        let via = match substitute {
            Some(peer) if *peer != self.me => snapshot.clients.get(peer).map(Arc::clone),
            _ => None,
        };
        Route::Substitute {
            owner: owner.clone(),
            via,
        }
    }

    /// The peer a get of `key` asks now: the owner, its substitute, or this peer. Reads only:
    /// it starts no probe.
    pub(crate) fn route_of(&self, key: &str) -> GroupcachePeer {
        match self.route_probing(key, false) {
            Route::Remote(client)
            | Route::Substitute {
                via: Some(client), ..
            } => client.peer().clone(),
            Route::Local | Route::Substitute { via: None, .. } => self.me.clone(),
        }
    }

    /// The peer that owned `key` before the last membership change, if the handoff window is
    /// still open, it was another peer than this one and the current owner, and it is not out.
    pub(crate) fn previous_owner(&self, key: &str) -> Option<Arc<PeerClient>> {
        let snapshot = self.current.load();
        let previous = snapshot.previous.as_ref()?;
        if Instant::now() >= previous.until
            || previous.missed_in_a_row.load(Ordering::Relaxed) >= HANDOFF_GIVE_UP_AFTER
        {
            return None;
        }
        let before = previous.ring.owner_of(key)?;
        if *before == self.me || snapshot.ring.owner_of(key) == Some(before) {
            return None;
        }
        let client = snapshot
            .clients
            .get(before)
            .or_else(|| previous.departed.get(before))?;
        (!client.is_out()).then(|| Arc::clone(client))
    }

    /// Records how a handoff ask went (see [`HANDOFF_GIVE_UP_AFTER`]).
    pub(crate) fn handoff_result(&self, held: bool) {
        if let Some(previous) = &self.current.load().previous {
            if held {
                previous.missed_in_a_row.store(0, Ordering::Relaxed);
            } else {
                previous.missed_in_a_row.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The membership change whose handoff window is open now, if any: what a group removes
    /// during it must not come back from the previous owner.
    pub(crate) fn handoff_change(&self) -> Option<u64> {
        let snapshot = self.current.load();
        let previous = snapshot.previous.as_ref()?;
        (Instant::now() < previous.until).then_some(previous.id)
    }

    /// What this peer knows of every other member's health, in ring order.
    pub(crate) fn health(&self) -> Vec<crate::peer::PeerHealth> {
        let snapshot = self.current.load();
        snapshot
            .ring
            .peers()
            .iter()
            .filter_map(|peer| snapshot.clients.get(peer).map(|c| c.health()))
            .collect()
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

    pub(crate) fn handoff_window(&self) -> Duration {
        self.handoff_window
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

    /// The clients of every member but this peer, in ring order.
    pub(crate) fn clients(&self) -> Vec<Arc<PeerClient>> {
        let snapshot = self.current.load();
        snapshot
            .ring
            .peers()
            .iter()
            .filter_map(|peer| snapshot.clients.get(peer).map(Arc::clone))
            .collect()
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
        let ring = Arc::new(Ring::new(peers, self.vnodes));
        let mut clients = HashMap::with_capacity(ring.peers().len());
        for peer in ring.peers() {
            if *peer == self.me {
                continue;
            }
            let client = match old.clients.get(peer) {
                Some(client) => Arc::clone(client),
                None => PeerClient::shared(PeerClient::new(
                    peer.clone(),
                    &self.channel,
                    &*self.connector,
                )?),
            };
            clients.insert(peer.clone(), client);
        }
        let previous = self.previous_of(&old, &ring, &clients);
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
        self.current.store(Arc::new(Snapshot {
            ring,
            clients,
            previous,
        }));
        Ok(change)
    }

    /// The previous ring for a new snapshot of `ring`: the old one, or, when this peer joins
    /// (its old ring was empty), the new members but itself, which is what the others had
    /// before it came. `None` if the window is zero or nothing changed.
    fn previous_of(
        &self,
        old: &Snapshot,
        ring: &Ring,
        clients: &HashMap<GroupcachePeer, Arc<PeerClient>>,
    ) -> Option<Previous> {
        if self.handoff_window.is_zero() {
            return None;
        }
        let before = if old.ring.peers().is_empty() {
            if !ring.contains(&self.me) || ring.peers().len() < 2 {
                return None;
            }
            Arc::new(Ring::new(
                ring.peers().iter().filter(|p| **p != self.me).cloned(),
                self.vnodes,
            ))
        } else if old.ring.peers() == ring.peers() {
            // No change: keep the window of the last real one.
            return old.previous.clone();
        } else {
            Arc::clone(&old.ring)
        };
        let departed = before
            .peers()
            .iter()
            .filter(|p| **p != self.me && !clients.contains_key(*p))
            .filter_map(|p| old.clients.get(p).map(|c| (p.clone(), Arc::clone(c))))
            .collect();
        Some(Previous {
            ring: before,
            departed,
            until: Instant::now() + self.handoff_window,
            missed_in_a_row: Arc::default(),
            id: NEXT_CHANGE_ID.fetch_add(1, Ordering::Relaxed),
        })
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
