//! [`PeerSet`]: one peer's membership of a cluster and the groups it hosts on it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::lookup::{GroupState, HostedGroup};
use crate::node::Node;
use crate::peer::token_layer::TokenCheck;
use crate::routing::Change;
use crate::stats::{PeerSetCounters, PeerSetStats};
use crate::{Error, ErrorKind, GroupcachePeer};

/// One hosted group: its type-erased face for the service, and its state for `get_group`.
#[derive(Clone)]
struct Hosted {
    serve: Arc<dyn HostedGroup>,
    typed: Arc<dyn Any + Send + Sync>,
}

/// The state behind a [`Groupcache`](crate::Groupcache) handle and its service.
///
/// Groups hold the [`Node`] but not this: the peer set holds its groups, so there is no cycle,
/// and a group lives as long as the peer set or a handle of its own.
pub(crate) struct PeerSet {
    node: Arc<Node>,
    /// Read on every peer request without a lock; replaced whole when a group is added.
    groups: ArcSwap<HashMap<Arc<str>, Hosted>>,
    /// Serialises group additions (read, insert, swap); never held across an `.await`.
    adding: Mutex<()>,
    counters: Arc<PeerSetCounters>,
}

impl PeerSet {
    pub(crate) fn new(node: Node, counters: Arc<PeerSetCounters>) -> Self {
        PeerSet {
            node: Arc::new(node),
            groups: ArcSwap::from_pointee(HashMap::new()),
            adding: Mutex::new(()),
            counters,
        }
    }

    pub(crate) fn node(&self) -> &Arc<Node> {
        &self.node
    }

    pub(crate) fn counters(&self) -> &Arc<PeerSetCounters> {
        &self.counters
    }

    /// The peer token check of this peer's service.
    pub(crate) fn token_check(&self) -> TokenCheck {
        TokenCheck::new(
            self.node.config().accepted_tokens.clone(),
            Arc::clone(&self.counters),
        )
    }

    /// Adds `group`, refusing a name already taken.
    pub(crate) fn host<V: Clone + Send + Sync + 'static>(
        &self,
        group: Arc<GroupState<V>>,
    ) -> Result<(), Error> {
        let _adding = self
            .adding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.groups.load_full();
        if current.contains_key(group.name()) {
            return Err(Error::new(
                ErrorKind::GroupExists,
                "this peer set already has a group of that name; build each group once and \
                 clone its handle (or find it again with Groupcache::get_group)",
            )
            .with_group(group.name()));
        }
        let mut groups = HashMap::clone(&current);
        let name: Arc<str> = group.name().into();
        groups.insert(
            name,
            Hosted {
                serve: Arc::clone(&group) as Arc<dyn HostedGroup>,
                typed: group.as_any(),
            },
        );
        self.groups.store(Arc::new(groups));
        Ok(())
    }

    /// The group a peer's request names, if this peer hosts it.
    pub(crate) fn hosted(&self, name: &str) -> Option<Arc<dyn HostedGroup>> {
        self.groups.load().get(name).map(|h| Arc::clone(&h.serve))
    }

    /// The state of group `name`, if it exists with values of type `V`.
    pub(crate) fn typed<V: Send + Sync + 'static>(&self, name: &str) -> Option<Arc<GroupState<V>>> {
        let typed = Arc::clone(&self.groups.load().get(name)?.typed);
        typed.downcast::<GroupState<V>>().ok()
    }

    /// The names of the groups hosted, sorted.
    pub(crate) fn group_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .groups
            .load()
            .keys()
            .map(std::string::ToString::to_string)
            .collect();
        names.sort();
        names
    }

    /// The counters of the service and of every group. No side effects.
    pub(crate) fn stats(&self) -> PeerSetStats {
        let mut stats = self.counters.snapshot();
        stats.groups = self
            .groups
            .load()
            .iter()
            .map(|(name, hosted)| (name.to_string(), hosted.serve.stats()))
            .collect();
        stats
    }

    /// Replaces the membership with exactly `peers`.
    pub(crate) fn set_peers(&self, peers: Vec<GroupcachePeer>) -> Result<(), Error> {
        let change = self.node.routing().set(peers)?;
        self.apply(&change);
        Ok(())
    }

    /// Adds one member.
    pub(crate) fn add_peer(&self, peer: GroupcachePeer) -> Result<(), Error> {
        let change = self.node.routing().update(|peers| peers.push(peer))?;
        self.apply(&change);
        Ok(())
    }

    /// Removes one member.
    pub(crate) fn remove_peer(&self, peer: &GroupcachePeer) -> Result<(), Error> {
        let change = self
            .node
            .routing()
            .update(|peers| peers.retain(|p| p != peer))?;
        self.apply(&change);
        Ok(())
    }

    /// Logs a membership change and drops, in every group, what this peer may no longer keep.
    fn apply(&self, change: &Change) {
        if change.added.is_empty() && change.removed.is_empty() {
            return;
        }
        let dropped: usize = self
            .groups
            .load()
            .values()
            .map(|hosted| hosted.serve.membership_changed())
            .sum();
        tracing::info!(
            me = %self.node.me(),
            added = ?change.added,
            removed = ?change.removed,
            members = self.node.routing().peers().len(),
            dropped_values = dropped,
            "peer set changed"
        );
    }
}

impl std::fmt::Debug for PeerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSet")
            .field("me", self.node.me())
            .field("routing", self.node.routing())
            .field("groups", &self.group_names())
            .finish_non_exhaustive()
    }
}
