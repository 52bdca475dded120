//! Introspection: [`PeerView`], one peer's view of the cluster, locally or over gRPC.

use std::net::SocketAddr;

use groupcache_pb::v2 as pb;
use serde::Serialize;

use crate::peer::status::PeerFailure;
use crate::peer::{BreakerState, PeerHealth};
use crate::peer_set::PeerSet;
use crate::stats::PeerSetStats;
use crate::{Error, ErrorKind, GroupcachePeer};

/// One peer's view of the cluster: its ring, its groups and counters, and who owns a key.
/// From [`Groupcache::describe`](crate::Groupcache::describe) for this peer, or
/// [`Groupcache::describe_peer`](crate::Groupcache::describe_peer) for another, over the peers'
/// own gRPC service. Two peers whose views list different members route some keys
/// differently; two whose views list different groups cannot serve each other those groups.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerView {
    /// The peer this view is from.
    pub me: GroupcachePeer,
    /// Every member of its ring, itself included, sorted.
    pub peers: Vec<GroupcachePeer>,
    /// Points per peer on its ring.
    pub virtual_nodes: usize,
    /// The owner of the key asked about, if any.
    pub owner: Option<GroupcachePeer>,
    /// Its counters: the service's, and each group's with its cache sizes.
    pub stats: PeerSetStats,
    /// What it knows of every other member's health (its breakers), in ring order.
    pub peer_health: Vec<PeerHealth>,
}

/// This peer's view.
pub(crate) fn local(peer_set: &PeerSet, key: Option<&str>) -> PeerView {
    let routing = peer_set.node().routing();
    let mut peers = routing.peers();
    peers.sort();
    PeerView {
        me: routing.me().clone(),
        peers,
        virtual_nodes: routing.virtual_nodes(),
        owner: key.map(|k| routing.owner_of(k)),
        stats: peer_set.stats(),
        peer_health: routing.health(),
    }
}

/// Member `peer`'s view, over its service.
pub(crate) async fn remote(
    peer_set: &PeerSet,
    peer: &GroupcachePeer,
    key: Option<&str>,
) -> Result<PeerView, Error> {
    let node = peer_set.node();
    // Rule 11: refused here, before any request (the peer would refuse it anyway).
    if let Some(key) = key {
        node.check_key(key)?;
    }
    if peer == node.me() {
        return Ok(local(peer_set, key));
    }
    let Some(client) = node.routing().client_of(peer) else {
        return Err(Error::new(
            ErrorKind::NotAMember,
            "not a member of this peer's ring; describe_peer asks members only",
        )
        .with_peer(peer));
    };
    let reply = client
        .describe(key)
        .await
        .map_err(|failure| match failure {
            PeerFailure::Answer(err) | PeerFailure::Transport(err) => err,
        })?;
    from_reply(&reply).map_err(|detail| {
        Error::new(
            ErrorKind::Peer,
            format!("malformed Describe reply: {detail}"),
        )
        .with_peer(peer)
    })
}

/// The wire form of a view, as the `Describe` RPC answers.
pub(crate) fn to_reply(view: &PeerView) -> pb::DescribeResponse {
    pb::DescribeResponse {
        me: view.me.to_string(),
        peers: view.peers.iter().map(ToString::to_string).collect(),
        virtual_nodes: u32::try_from(view.virtual_nodes).unwrap_or(u32::MAX),
        owner: view.owner.as_ref().map(ToString::to_string),
        peer_set: Some(view.stats.to_proto()),
        groups: view
            .stats
            .groups
            .iter()
            .map(|(name, stats)| stats.to_proto(name))
            .collect(),
        peer_health: view
            .peer_health
            .iter()
            .map(|h| pb::PeerHealth {
                peer: h.peer.to_string(),
                state: h.state.as_str().to_owned(),
                consecutive_failures: h.consecutive_failures,
                opened: h.opened,
            })
            .collect(),
    }
}

/// A view from its wire form; the error says what is malformed.
fn from_reply(reply: &pb::DescribeResponse) -> Result<PeerView, String> {
    let peer = |text: &str| {
        text.parse::<SocketAddr>()
            .map(GroupcachePeer::new)
            .map_err(|_| format!("{text:?} is not a peer address"))
    };
    Ok(PeerView {
        me: peer(&reply.me)?,
        peers: reply
            .peers
            .iter()
            .map(|p| peer(p))
            .collect::<Result<_, _>>()?,
        virtual_nodes: reply.virtual_nodes as usize,
        owner: reply.owner.as_deref().map(peer).transpose()?,
        stats: PeerSetStats::from_proto(&reply.peer_set.unwrap_or_default(), &reply.groups),
        // A state this version does not know (a newer peer's) is left out, not an error.
        peer_health: reply
            .peer_health
            .iter()
            .filter_map(|h| {
                let state = BreakerState::from_wire(&h.state)?;
                Some(peer(&h.peer).map(|peer| PeerHealth {
                    peer,
                    state,
                    consecutive_failures: h.consecutive_failures,
                    opened: h.opened,
                }))
            })
            .collect::<Result<_, String>>()?,
    })
}
