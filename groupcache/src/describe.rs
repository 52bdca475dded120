//! Introspection: [`PeerView`], one peer's view of the cluster, locally or over gRPC.

use std::net::SocketAddr;

use groupcache_pb::v1 as pb;
use serde::Serialize;

use crate::handle::Inner;
use crate::peer::status::PeerFailure;
use crate::{Error, ErrorKind, Groupcache, GroupcachePeer, Stats, TierStats};

/// One peer's view of the cluster: its ring, its counters, and who owns a key. From
/// [`Groupcache::describe`] for this peer, or [`Groupcache::describe_peer`] for another, over
/// the peers' own gRPC service. Two peers whose views list different members route some keys
/// differently.
///
/// ```
/// # async fn run(cache: groupcache::Groupcache<String>) -> Result<(), groupcache::Error> {
/// let view = cache.describe(Some("user-42"));
/// println!("{} peers; user-42 belongs to {:?}", view.peers.len(), view.owner);
/// for peer in &view.peers {
///     let theirs = cache.describe_peer(peer, Some("user-42")).await?;
///     assert_eq!(theirs.owner, view.owner, "{peer} disagrees");
/// }
/// # Ok(()) }
/// ```
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
    /// Its counters and cache sizes.
    pub stats: Stats,
}

impl<V: Clone + Send + Sync + 'static> Groupcache<V> {
    /// This peer's view of the cluster; with `key`, also who owns it here.
    pub fn describe(&self, key: Option<&str>) -> PeerView {
        self.inner().describe(key, self.inner().stats())
    }

    /// Another member's view of the cluster, asked over its gRPC service (the `Describe` RPC),
    /// within the peer timeout. `peer` may be this peer, which answers locally.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::KeyTooLong`] if `key` is longer than the maximum key length (nothing is
    /// sent); [`ErrorKind::Config`] if `peer` is not a member of this peer's ring;
    /// [`ErrorKind::Peer`] if it cannot be reached or its reply is malformed; its refusal
    /// otherwise (for example [`ErrorKind::Unauthenticated`]).
    pub async fn describe_peer(
        &self,
        peer: &GroupcachePeer,
        key: Option<&str>,
    ) -> Result<PeerView, Error> {
        // Rule 11: refused here, before any request (the peer would refuse it anyway).
        if let Some(key) = key {
            self.inner().check_key(key)?;
        }
        if peer == self.me() {
            return Ok(self.describe(key));
        }
        let Some(client) = self.inner().routing.client_of(peer) else {
            return Err(Error::new(
                ErrorKind::Config,
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
        from_reply(reply).map_err(|detail| {
            Error::new(
                ErrorKind::Peer,
                format!("malformed Describe reply: {detail}"),
            )
            .with_peer(peer)
        })
    }
}

impl<V> Inner<V> {
    pub(crate) fn describe(&self, key: Option<&str>, stats: Stats) -> PeerView {
        let mut peers = self.routing.peers();
        peers.sort();
        PeerView {
            me: self.routing.me().clone(),
            peers,
            virtual_nodes: self.routing.virtual_nodes(),
            owner: key.map(|k| self.routing.owner_of(k)),
            stats,
        }
    }
}

/// Builds `$target` from `$source`'s counters, which both name alike, plus the given fields.
macro_rules! counters {
    ($source:ident => $($target:ident)::+ { $($field:ident: $value:expr,)* }) => {
        $($target)::+ {
            gets: $source.gets,
            hot_hits: $source.hot_hits,
            main_hits: $source.main_hits,
            loads: $source.loads,
            loads_deduped: $source.loads_deduped,
            local_loads: $source.local_loads,
            local_load_errors: $source.local_load_errors,
            peer_loads: $source.peer_loads,
            peer_errors: $source.peer_errors,
            fallback_loads: $source.fallback_loads,
            auth_failures: $source.auth_failures,
            server_requests: $source.server_requests,
            removes: $source.removes,
            rejected_keys: $source.rejected_keys,
            unauthenticated_requests: $source.unauthenticated_requests,
            timed_out_requests: $source.timed_out_requests,
            $($field: $value,)*
        }
    };
}

/// The wire form of a view, as the `Describe` RPC answers.
pub(crate) fn to_reply(view: &PeerView) -> pb::DescribeResponse {
    let tier = |t: &TierStats| pb::TierStats {
        entries: t.entries,
        weighted_bytes: t.weighted_bytes,
        evictions: t.evictions,
        expirations: t.expirations,
    };
    let s = &view.stats;
    pb::DescribeResponse {
        me: view.me.to_string(),
        peers: view.peers.iter().map(ToString::to_string).collect(),
        virtual_nodes: u32::try_from(view.virtual_nodes).unwrap_or(u32::MAX),
        owner: view.owner.as_ref().map(ToString::to_string),
        stats: Some(counters!(s => pb::PeerStats {
            main_cache: Some(tier(&s.main_cache)),
            hot_cache: Some(tier(&s.hot_cache)),
        })),
    }
}

/// A view from its wire form; the error says what is malformed.
fn from_reply(reply: pb::DescribeResponse) -> Result<PeerView, String> {
    let peer = |text: &str| {
        text.parse::<SocketAddr>()
            .map(GroupcachePeer::new)
            .map_err(|_| format!("{text:?} is not a peer address"))
    };
    let tier = |t: Option<pb::TierStats>| {
        let t = t.unwrap_or_default();
        TierStats {
            entries: t.entries,
            weighted_bytes: t.weighted_bytes,
            evictions: t.evictions,
            expirations: t.expirations,
        }
    };
    let s = reply.stats.unwrap_or_default();
    let stats = counters!(s => Stats {
        main_cache: tier(s.main_cache),
        hot_cache: tier(s.hot_cache),
    });
    Ok(PeerView {
        me: peer(&reply.me)?,
        peers: reply
            .peers
            .iter()
            .map(|p| peer(p))
            .collect::<Result<_, _>>()?,
        virtual_nodes: reply.virtual_nodes as usize,
        owner: reply.owner.as_deref().map(peer).transpose()?,
        stats,
    })
}
