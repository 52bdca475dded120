//! The write path of one group: `remove`, `remove_many`, `clear` and `set`.
//!
//! A write goes to each key's owner (or is applied here, for keys this peer owns). The owner
//! drops (or stores) the value, makes flights running for the key start afresh and keep
//! nothing they read (so no load or fetch that began before the write stores its result:
//! no resurrection), then tells every other member to do the same with its copies
//! ([`Invalidations`](crate::invalidation::Invalidations)) and answers once each has
//! acknowledged or most of the peer timeout has passed. The caller gets the members that did
//! not acknowledge: each stops serving its copies of that owner's values within the hot copy
//! lease (see the README's Consistency section).

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use groupcache_pb::v2::Invalidation;

use super::GroupState;
use crate::flight::Superseded;
use crate::invalidation::Pending;
use crate::peer::client::{PeerClient, Removal};
use crate::peer::server::MAX_KEYS_PER_REMOVE;
use crate::peer::status::PeerFailure;
use crate::routing::Route;
use crate::{Error, ErrorKind, GroupcachePeer};

/// What a write reached: returned by [`Group::remove`](crate::Group::remove),
/// [`remove_many`](crate::Group::remove_many), [`clear`](crate::Group::clear) and
/// [`set`](crate::Group::set) once the owners applied it.
///
/// Every member that acknowledged has dropped its copies: a `get` started there afterwards
/// returns the new value. A member named in `unacknowledged` did not answer within the
/// bound (it is out, partitioned, or slow); it serves old values for at most the hot copy
/// lease ([`GroupcacheBuilder::hot_copy_lease`](crate::GroupcacheBuilder::hot_copy_lease))
/// after the write returned, and finds the lost invalidation by its sequence number when it
/// hears from the owner again. So does a member that routes the owner's keys to a substitute
/// because the owner does not answer it.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invalidated {
    /// Members that did not acknowledge the invalidation, sorted.
    pub unacknowledged: Vec<GroupcachePeer>,
}

impl Invalidated {
    /// Whether every member acknowledged.
    #[must_use]
    pub fn everywhere(&self) -> bool {
        self.unacknowledged.is_empty()
    }

    fn from_peers(peers: BTreeSet<GroupcachePeer>) -> Self {
        Invalidated {
            unacknowledged: peers.into_iter().collect(),
        }
    }
}

/// Where one write goes: applied here as the owner, or sent to a peer.
enum Target {
    Here,
    Peer(Arc<PeerClient>),
}

impl<V: Clone + Send + Sync + 'static> GroupState<V> {
    /// [`Group::remove_many`](crate::Group::remove_many): one request per owner.
    pub(crate) async fn remove_keys(
        self: &Arc<Self>,
        keys: Vec<String>,
    ) -> Result<Invalidated, Error> {
        for key in &keys {
            self.check_key(key)?;
        }
        self.counters.removes.bump();
        for key in &keys {
            self.drop_local(key);
        }
        let mut here = Vec::new();
        let mut remote: Vec<(Arc<PeerClient>, Vec<String>)> = Vec::new();
        let mut owner_out = None;
        for key in &keys {
            let (target, out) = self.target_of(key);
            if owner_out.is_none() {
                owner_out = out;
            }
            match target {
                Some(Target::Here) => here.push(key.clone()),
                Some(Target::Peer(client)) => {
                    // One request per owner, of at most the keys a request may name.
                    match remote.iter_mut().find(|(c, batch)| {
                        Arc::ptr_eq(c, &client) && batch.len() < MAX_KEYS_PER_REMOVE
                    }) {
                        Some((_, batch)) => batch.push(key.clone()),
                        None => remote.push((client, vec![key.clone()])),
                    }
                }
                None => {}
            }
        }
        let within = self.node.config().peer_timeout;
        let sent = futures_util::future::join_all(
            remote
                .iter()
                .map(|(client, batch)| client.remove(&self.name, Removal::Keys(batch), within)),
        );
        let (applied, sent) = tokio::join!(self.apply_removal(&here), sent);
        // A `get` that ran while the owners were being told may have fetched an old value
        // again: drop it once more now that the owners no longer have it.
        for key in &keys {
            self.drop_local(key);
        }
        let mut unacknowledged: BTreeSet<GroupcachePeer> = applied.into_iter().collect();
        for ((client, _), result) in remote.iter().zip(sent) {
            unacknowledged.extend(self.told(client, result)?);
        }
        match owner_out {
            Some(err) => Err(err),
            None => Ok(Invalidated::from_peers(unacknowledged)),
        }
    }

    /// [`Group::clear`](crate::Group::clear): every member, as the owner of its keys.
    pub(crate) async fn clear(self: &Arc<Self>) -> Result<Invalidated, Error> {
        self.counters.removes.bump();
        self.drop_all();
        let within = self.node.config().peer_timeout;
        let members = self.node.routing().clients();
        let sent = futures_util::future::join_all(
            members
                .iter()
                .map(|client| client.remove(&self.name, Removal::All, within)),
        );
        let (applied, sent) = tokio::join!(self.apply_clear(), sent);
        self.drop_all();
        let mut unacknowledged: BTreeSet<GroupcachePeer> = applied.into_iter().collect();
        let mut first_error = None;
        for (client, result) in members.iter().zip(sent) {
            match self.told(client, result) {
                Ok(peers) => unacknowledged.extend(peers),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(Invalidated::from_peers(unacknowledged)),
        }
    }

    /// [`Group::set`](crate::Group::set): encoded here, stored by the owner.
    pub(crate) async fn set(self: &Arc<Self>, key: &str, value: V) -> Result<Invalidated, Error> {
        self.check_key(key)?;
        self.counters.sets.bump();
        let encoded = self.encode(key, &value)?;
        self.check_size(key, encoded.len())?;
        self.drop_local(key);
        let (target, owner_out) = self.target_of(key);
        let within = self.node.config().peer_timeout;
        let remote = matches!(target, Some(Target::Peer(_)));
        let result = match (target, &owner_out) {
            (Some(Target::Here), None) => Ok(self.apply_set(key, value, encoded).await),
            (Some(Target::Peer(client)), None) => {
                let sent = client.set(&self.name, key, encoded, within).await;
                self.told(&client, sent)
            }
            // The owner is out: the value cannot be stored there. Its substitute drops its
            // copy and tells the others, as for a removal; the caller gets the error.
            (Some(Target::Here), Some(_)) => {
                self.apply_removal(&[key.to_owned()]).await;
                Ok(Vec::new())
            }
            (Some(Target::Peer(client)), Some(_)) => {
                let keys = [key.to_owned()];
                let sent = client
                    .remove(&self.name, Removal::Keys(&keys), within)
                    .await;
                self.told(&client, sent)
            }
            (None, _) => Ok(Vec::new()),
        };
        if remote {
            // A `get` here while the owner stored the value may have fetched the old one.
            self.drop_local(key);
        }
        let unacknowledged = result?;
        match owner_out {
            Some(err) => Err(err),
            None => Ok(Invalidated::from_peers(
                unacknowledged.into_iter().collect(),
            )),
        }
    }

    /// Where a write of `key` goes, and the error to return if its owner is out (then the
    /// write goes to the owner's substitute, which drops its copy and tells the others, but
    /// the owner's own copy could not be reached).
    fn target_of(&self, key: &str) -> (Option<Target>, Option<Error>) {
        match self.node.route(key) {
            Route::Local => (Some(Target::Here), None),
            Route::Remote(client) => (Some(Target::Peer(client)), None),
            Route::Substitute { owner, via } => {
                let out = Error::new(
                    ErrorKind::Peer,
                    "the owner is not answering (its breaker is open on this peer), so the \
                     write could not reach it; its substitute dropped its copy and told the \
                     other peers, and the owner's copy stays until the owner is told again: \
                     retry once it answers",
                )
                .with_group(&self.name)
                .with_key(key)
                .with_peer(&owner);
                let target = Some(via.map_or(Target::Here, Target::Peer));
                (target, Some(out))
            }
        }
    }

    /// The members a peer's write did not reach, or its error, counted.
    fn told(
        &self,
        client: &PeerClient,
        result: Result<Vec<GroupcachePeer>, PeerFailure>,
    ) -> Result<Vec<GroupcachePeer>, Error> {
        result.map_err(|failure| match failure {
            PeerFailure::Answer(err) => self.count_answer(client, err),
            PeerFailure::Transport(err) => {
                self.counters.peer_errors.bump();
                err
            }
        })
    }

    /// As the owner of `keys`: drops them here and tells every member; the members that did
    /// not acknowledge.
    pub(crate) async fn apply_removal(&self, keys: &[String]) -> Vec<GroupcachePeer> {
        if keys.is_empty() {
            return Vec::new();
        }
        for key in keys {
            self.drop_local(key);
        }
        // Numbered and queued before anything is awaited: a caller that goes away now (or a
        // handler cut off at its deadline) has still told everyone.
        let invalidations: Vec<Invalidation> =
            keys.iter().map(|key| self.invalidation(key)).collect();
        let pending = self.enqueue(&invalidations);
        futures_util::future::join_all(keys.iter().map(|key| self.tell_previous_owner(key))).await;
        pending.acknowledged().await
    }

    /// As the owner of its keys: drops every key of the group here and tells every member.
    pub(crate) async fn apply_clear(&self) -> Vec<GroupcachePeer> {
        self.drop_all();
        let pending = self.enqueue(&[Invalidation {
            group: self.name.to_string(),
            key: String::new(),
            all: true,
        }]);
        pending.acknowledged().await
    }

    /// As the owner of `key`: stores `value` (no load runs), then tells every member to drop
    /// its copies. A peer whose ring does not make it the owner drops the key instead.
    pub(crate) async fn apply_set(
        &self,
        key: &str,
        value: V,
        encoded: Bytes,
    ) -> Vec<GroupcachePeer> {
        // Flights first: a load or fetch that began before this write stores nothing.
        self.fetches.forget(key);
        self.loads.forget(key);
        self.note_removed(key);
        self.hot.remove(key);
        self.handoff.remove(key);
        self.negatives.remove(key);
        if self.node.owns(key) {
            let ttl = self.entry_ttl(key, &value);
            let fresh = Superseded::default();
            let stored =
                self.main
                    .insert_with_ttl(key, value.clone(), encoded.clone(), &fresh, ttl);
            // A load that began between the first `forget` and the store may have stored
            // what it read just now; after this `forget` none can: store again if one did.
            self.fetches.forget(key);
            self.loads.forget(key);
            if !self
                .main
                .get(key)
                .is_some_and(|entry| Arc::ptr_eq(&entry, &stored))
            {
                self.main.insert_with_ttl(key, value, encoded, &fresh, ttl);
            }
            if !self.node.owns(key) {
                self.main.remove(key);
            }
        } else {
            self.main.remove(key);
        }
        self.publish_sizes();
        let pending = self.enqueue(&[self.invalidation(key)]);
        self.tell_previous_owner(key).await;
        pending.acknowledged().await
    }

    fn invalidation(&self, key: &str) -> Invalidation {
        Invalidation {
            group: self.name.to_string(),
            key: key.to_owned(),
            all: false,
        }
    }

    fn enqueue(&self, invalidations: &[Invalidation]) -> Pending {
        self.node
            .invalidations()
            .enqueue(invalidations, self.node.routing().clients())
    }
}
