//! `get_many`: the read path of many keys at once, one `GetMany` request per owner.
//!
//! Each distinct key takes the steps of a `get` ([`GroupState::lookup`]): the key check, the
//! hot and main tiers, then the key's fetch flight, which it joins if one is running (a `get`'s
//! or another batch's). A flight this call starts for a key whose owner is another peer waits
//! for that owner's batch: one detached task per owner (and per [`MAX_BATCH_KEYS`] keys) sends
//! one `GetMany` and hands each flight its key's result. Flights of other keys (owned here, or
//! whose owner is out) fetch as a `get`'s do. All the work runs in spawned tasks, so a caller
//! that gives up cancels nothing (rule 3). When the batch request fails in transport, each of
//! its keys goes on as a single fetch whose first ask failed: the substitute, then a load here,
//! within what is left of the same peer timeout (rule 10).

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, join_all};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument;

use super::{Fetched, GroupState, Served};
use crate::defaults::MAX_BATCH_KEYS;
use crate::flight::{Role, Superseded, Ticket};
use crate::log_throttle::REPEATED_FAILURE_LOG_INTERVAL;
use crate::outcome::Outcome;
use crate::peer::client::{KeyReply, PeerClient, split_into_batches};
use crate::peer::status::PeerFailure;
use crate::routing::Route;
use crate::trace::TraceContext;
use crate::{Error, GroupcachePeer};

/// A key whose fetch flight this call leads, waiting for its owner's batch.
struct Led<V> {
    key: String,
    superseded: Superseded,
    answer: oneshot::Sender<Result<Fetched<V>, Error>>,
}

/// One distinct key of a `get_many`: answered at once, or waiting on its fetch flight.
enum Pending<V> {
    Ready(Result<V, Error>, Outcome),
    Flight(Ticket<Fetched<V>>),
}

/// The keys this call leads, by owner.
type Batches<V> = HashMap<GroupcachePeer, (Arc<PeerClient>, Vec<Led<V>>)>;

impl<V: Clone + Send + Sync + 'static> GroupState<V> {
    /// The lookup behind `get_many`: each key's value and how it was found, in the order of
    /// `keys`. Duplicates share one lookup.
    pub(crate) async fn get_many(
        self: &Arc<Self>,
        keys: &[String],
        context: Option<TraceContext>,
    ) -> Vec<(Result<V, Error>, Outcome)> {
        let mut slot_of: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
        let mut slots = Vec::with_capacity(keys.len());
        let mut pending = Vec::new();
        let mut batches = Batches::new();
        // No `.await` from the first join to the last batch sent: a flight led here always has
        // its batch (and if the batch task never answers, the flight fetches on its own).
        for key in keys {
            let next = pending.len();
            let slot = *slot_of.entry(key.as_str()).or_insert(next);
            if slot == next {
                pending.push((key.as_str(), self.start(key, context, &mut batches)));
            }
            slots.push(slot);
        }
        for (client, led) in batches.into_values() {
            self.send_batches(&client, led, context.as_ref());
        }
        let mut found = Vec::with_capacity(pending.len());
        for (key, pending) in pending {
            found.push(Some(match pending {
                Pending::Ready(result, outcome) => (result, outcome),
                Pending::Flight(ticket) => match ticket.wait().await {
                    Ok(fetched) => (Ok(fetched.entry.value.clone()), fetched.outcome),
                    Err(err) => (Err(self.tag_abandoned(err, key)), Outcome::Error),
                },
            }));
        }
        // Each result is moved to its last place in the answer and cloned to the others.
        let mut uses = vec![0_usize; found.len()];
        for &slot in &slots {
            uses[slot] += 1;
        }
        slots
            .into_iter()
            .map(|slot| {
                uses[slot] -= 1;
                if uses[slot] == 0 {
                    found[slot].take().expect("taken at its last use only")
                } else {
                    found[slot].clone().expect("taken at its last use only")
                }
            })
            .collect()
    }

    /// One distinct key: answered from the tiers, or its fetch flight joined. A flight this
    /// call starts for a key of a remote owner is added to `batches`.
    fn start(
        self: &Arc<Self>,
        key: &str,
        context: Option<TraceContext>,
        batches: &mut Batches<V>,
    ) -> Pending<V> {
        // Counted as `lookup` counts a get.
        if let Err(err) = self.check_key(key) {
            self.counters.get_not_hit();
            return Pending::Ready(Err(err), Outcome::Error);
        }
        if let Some(entry) = self.hot.get(key) {
            self.counters.hot_hit();
            return Pending::Ready(Ok(entry.value.clone()), Outcome::HotHit);
        }
        if let Some(entry) = self.main.get(key) {
            self.counters.main_hit();
            return Pending::Ready(Ok(entry.value.clone()), Outcome::MainHit);
        }
        self.counters.get_not_hit();
        self.counters.loads.bump();
        let this = Arc::clone(self);
        let owned = key.to_owned();
        let ticket = self.fetches.join(key, |superseded| {
            let span = tracing::debug_span!("groupcache.fetch");
            let work: BoxFuture<'static, _> = match this.node.route(key) {
                Route::Remote(client) => {
                    let (answer, answered) = oneshot::channel();
                    let peer = client.peer().clone();
                    batches
                        .entry(peer)
                        .or_insert_with(|| (client, Vec::new()))
                        .1
                        .push(Led {
                            key: owned.clone(),
                            superseded: superseded.clone(),
                            answer,
                        });
                    async move {
                        match answered.await {
                            Ok(answer) => answer,
                            // The batch task ended without answering (the runtime is shutting
                            // down, or it panicked): fetch as a `get` does.
                            Err(_) => this.fetch(owned, superseded, context).await,
                        }
                    }
                    .boxed()
                }
                Route::Local | Route::Substitute { .. } => {
                    this.fetch(owned, superseded, context).boxed()
                }
            };
            work.instrument(span)
        });
        if ticket.role() == Role::Leader {
            self.counters.loads_deduped.bump();
        }
        Pending::Flight(ticket)
    }

    /// Sends the keys led for one owner in batches of at most [`MAX_BATCH_KEYS`] keys and the
    /// `GetMany` request limit, each from a task of its own.
    fn send_batches(
        self: &Arc<Self>,
        client: &Arc<PeerClient>,
        led: Vec<Led<V>>,
        context: Option<&TraceContext>,
    ) {
        let max_request = self.node.config().max_batch_request_size();
        let batches =
            split_into_batches(led, |led| &led.key, &self.name, max_request, MAX_BATCH_KEYS);
        for batch in batches {
            self.send_batch(client, batch, context);
        }
    }

    fn send_batch(
        self: &Arc<Self>,
        client: &Arc<PeerClient>,
        batch: Vec<Led<V>>,
        context: Option<&TraceContext>,
    ) {
        let span = tracing::debug_span!("groupcache.fetch_batch", keys = batch.len());
        tokio::spawn(
            Arc::clone(self)
                .fetch_batch(Arc::clone(client), batch, context.copied())
                .instrument(span),
        );
    }

    /// A batch: the values of `led` from their owner, `client`, in one request; each flight
    /// gets its key's result. What the owner did not answer is fetched key by key.
    async fn fetch_batch(
        self: Arc<Self>,
        client: Arc<PeerClient>,
        led: Vec<Led<V>>,
        context: Option<TraceContext>,
    ) {
        let started = Instant::now();
        // A previous flight may have filled the cache between the caller's miss and now.
        let mut asked = Vec::with_capacity(led.len());
        for led in led {
            let cached = self
                .main
                .get(&led.key)
                .map(|entry| (entry, Outcome::MainHit))
                .or_else(|| self.hot.get(&led.key).map(|entry| (entry, Outcome::HotHit)));
            match cached {
                Some((entry, outcome)) => {
                    let _ = led.answer.send(Ok(Fetched { entry, outcome }));
                }
                None => asked.push(led),
            }
        }
        if asked.is_empty() {
            return;
        }
        self.counters.peer_batches.bump();
        let keys: Vec<String> = asked.iter().map(|led| led.key.clone()).collect();
        let config = self.node.config();
        let peer_context = context.as_ref().map(TraceContext::child);
        let replies = match client
            .get_many(
                &self.name,
                &keys,
                config.peer_timeout,
                config.max_batch_request_size(),
                peer_context.as_ref(),
            )
            .await
        {
            Ok(replies) => replies,
            Err(PeerFailure::Answer(err)) => {
                // A refusal of the request as a whole (the owner does not host the group, or
                // refused the credentials): the answer each key's `Get` would have had.
                let err = self.count_answer(&client, err);
                for led in asked {
                    let _ = led.answer.send(Err(err.clone()));
                }
                return;
            }
            Err(PeerFailure::Transport(err)) => {
                self.batch_unanswered(&client, &err);
                asked
                    .iter()
                    .map(|_| KeyReply::Failed(PeerFailure::Transport(err.clone())))
                    .collect()
            }
        };
        let mut rest = Vec::new();
        for (led, reply) in asked.into_iter().zip(replies) {
            let answer = match reply {
                KeyReply::Value(reply) => match self.decode(&led.key, reply.value.clone()) {
                    Ok(value) => {
                        self.counters.peer_loads.bump();
                        let entry = self.keep_fetched(&led.key, value, reply, &led.superseded);
                        Ok(Fetched {
                            entry,
                            outcome: Outcome::PeerLoad,
                        })
                    }
                    // As for a single get: peers that disagree on the codec are a
                    // configuration error, never hidden behind a load here.
                    Err(err) => Err(self.count_answer(&client, err.with_peer(client.peer()))),
                },
                KeyReply::Failed(PeerFailure::Answer(err)) => Err(self.count_answer(&client, err)),
                KeyReply::Failed(PeerFailure::Transport(_)) => {
                    rest.push((led, true));
                    continue;
                }
                KeyReply::NotSent => {
                    rest.push((led, false));
                    continue;
                }
            };
            let _ = led.answer.send(answer);
        }
        // The rest key by key, concurrently, within what is left of the peer timeout: a key the
        // owner did not answer asks its substitute next (then loads here), as a get would; a
        // key whose value did not fit in the reply asks the owner again with a `Get`.
        let client = &client;
        join_all(rest.into_iter().map(|(led, failed)| {
            let this = Arc::clone(&self);
            async move {
                let (route, attempt) = if failed {
                    (this.node.routing().route_around(&led.key, client.peer()), 1)
                } else {
                    (this.node.route(&led.key), 0)
                };
                let fetched = this
                    .fetch_routed(led.key, led.superseded, context, route, (started, attempt))
                    .await;
                let _ = led.answer.send(fetched);
            }
        }))
        .await;
    }

    /// Counts and logs a batch request that failed in transport, as a single fetch would.
    fn batch_unanswered(&self, client: &PeerClient, err: &Error) {
        self.counters.peer_errors.bump();
        if let Some(since_last) = client.log_unreachable() {
            tracing::warn!(
                group = %self.name,
                peer = %client.peer(),
                error = %err,
                similar_since_last = since_last,
                "peer not answering a batch; asking each key's substitute (repeats are logged \
                 at most every {:?}; Stats::peer_errors counts each)",
                REPEATED_FAILURE_LOG_INTERVAL
            );
        }
    }

    /// Answers a peer's `GetMany`: each key as `serve_get_now` answers a `Get` (main cache,
    /// handoff tier or a load, never forwarded: rule 6), all at once.
    pub(super) async fn serve_get_many_now(
        self: Arc<Self>,
        keys: Vec<String>,
        context: Option<TraceContext>,
    ) -> Vec<Result<Served, Error>> {
        join_all(
            keys.into_iter()
                .map(|key| Arc::clone(&self).serve_get_now(key, None, context)),
        )
        .await
    }
}
