//! Coalescing: concurrent single gets for one owner share one `GetMany` request.
//!
//! Each owner's client lets a few single `Get`s be in flight at once
//! ([`COALESCE_IN_FLIGHT`](crate::defaults::COALESCE_IN_FLIGHT)). A get that finds them all
//! busy queues instead of sending a request of its own; when one of them ends, everything
//! queued meanwhile goes out as one `GetMany` per group (split by key count and by the bytes
//! recent values weigh), and each queued get takes its key's result from it. So on an idle
//! link a get goes out at once, with no added latency, and under load many gets share a
//! request. A configured window (default zero) makes even the first get wait for company,
//! as gubernator batches its peer calls.
//!
//! Each queued get waits at most its own deadline (rule 10): one that runs out goes on as a
//! get whose request timed out. The shared requests run in tasks of their own, so a caller
//! that gives up cancels nothing (rule 3); a key nobody waits for any more is not asked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument;

use super::{KeyReply, PeerClient, Reply, split_into_batches};
use crate::defaults::MAX_BATCH_KEYS;
use crate::peer::status::PeerFailure;
use crate::trace::TraceContext;
use crate::{Error, ErrorKind};

/// Bytes of encoded values one shared request aims to bring back: a large reply holds up every
/// get in it until its last byte arrives, so several smaller requests, answered side by side,
/// serve large values sooner. One HTTP/2 frame's worth (the client's largest).
const TARGET_REPLY_BYTES: u64 = 256 * 1024;

/// How a peer client coalesces gets, from the builder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoalesceConfig {
    /// Single gets in flight to one owner past which further gets queue for a shared request.
    pub(crate) in_flight: usize,
    /// How long the first queued get waits for others before its request goes out (zero: it
    /// goes out at once unless requests are in flight).
    pub(crate) window: Duration,
    /// Largest `GetMany` request message the owner accepts.
    pub(crate) max_request: usize,
}

/// The coalescing state of one owner's client, shared by its clones.
#[derive(Debug)]
pub(crate) struct Coalescer {
    config: CoalesceConfig,
    state: Mutex<State>,
    /// A moving average of the encoded value sizes recently received, in bytes (0: none yet).
    value_bytes: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Requests to this owner in flight that were sent through the coalescer.
    in_flight: usize,
    /// Gets waiting for the next shared request.
    queued: Vec<Queued>,
    /// A window timer is running for what is queued.
    window_armed: bool,
}

/// One get waiting for a shared request.
#[derive(Debug)]
struct Queued {
    group: Arc<str>,
    key: String,
    deadline: Instant,
    context: Option<TraceContext>,
    answer: oneshot::Sender<KeyReply>,
}

/// How a get enters the coalescer.
enum Entered<'a> {
    /// Send a request of its own now, holding one of the slots.
    Send(Slot<'a>),
    /// Wait for a shared request's answer.
    Queued(oneshot::Receiver<KeyReply>),
}

/// One request in flight through the coalescer. Dropping it (the request ended, or was
/// cancelled) frees the slot, or hands it to a shared request for what queued meanwhile.
struct Slot<'a> {
    client: &'a PeerClient,
    coalescer: &'a Coalescer,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.coalescer.release(self.client);
    }
}

impl Coalescer {
    pub(crate) fn new(config: CoalesceConfig) -> Self {
        Coalescer {
            config: CoalesceConfig {
                in_flight: config.in_flight.max(1),
                ..config
            },
            state: Mutex::default(),
            value_bytes: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent at every unlock: a panic elsewhere cannot break it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn enter<'a>(
        &'a self,
        client: &'a PeerClient,
        group: &str,
        key: &str,
        deadline: Instant,
        context: Option<&TraceContext>,
    ) -> Entered<'a> {
        let mut state = self.lock();
        let idle = state.queued.is_empty() && state.in_flight < self.config.in_flight;
        if idle && self.config.window.is_zero() {
            state.in_flight += 1;
            return Entered::Send(Slot {
                client,
                coalescer: self,
            });
        }
        let (answer, answered) = oneshot::channel();
        state.queued.push(Queued {
            group: Arc::from(group),
            key: key.to_owned(),
            deadline,
            context: context.copied(),
            answer,
        });
        if idle && !state.window_armed {
            // A window: the first get waits for others, then they all go out together.
            state.window_armed = true;
            drop(state);
            self.arm_window(client);
        }
        Entered::Queued(answered)
    }

    /// Ends the window after its time: what queued goes out in a shared request, holding a
    /// new slot.
    fn arm_window(&self, client: &PeerClient) {
        let window = self.config.window;
        let Some(coalescer) = client.coalescer.clone() else {
            return;
        };
        let client = client.clone();
        spawn_or_drop(async move {
            tokio::time::sleep(window).await;
            let queued = {
                let mut state = coalescer.lock();
                state.window_armed = false;
                let queued = std::mem::take(&mut state.queued);
                if !queued.is_empty() {
                    state.in_flight += 1;
                }
                queued
            };
            if !queued.is_empty() {
                coalescer.send_queued(client, queued).await;
            }
        });
    }

    /// A request through the coalescer ended: hands its slot to what queued meanwhile, or
    /// frees it.
    fn release(&self, client: &PeerClient) {
        let queued = {
            let mut state = self.lock();
            if state.queued.is_empty() || state.window_armed {
                state.in_flight -= 1;
                return;
            }
            std::mem::take(&mut state.queued)
        };
        let Some(coalescer) = client.coalescer.clone() else {
            return;
        };
        let client = client.clone();
        spawn_or_drop(async move { coalescer.send_queued(client, queued).await });
    }

    /// Sends what queued, holding one slot (which it releases at the end): one `GetMany` per
    /// group and batch, all at once.
    async fn send_queued(self: Arc<Self>, client: PeerClient, queued: Vec<Queued>) {
        let slot = Slot {
            client: &client,
            coalescer: &self,
        };
        let batches = self.batches(queued);
        let requests = batches
            .into_iter()
            .map(|batch| self.send_batch(&client, batch));
        futures_util::future::join_all(requests).await;
        drop(slot);
    }

    /// Splits what queued into batches: one group each, within the key, request-size and
    /// reply-size bounds. A key nobody waits for any more is left out.
    fn batches(&self, queued: Vec<Queued>) -> Vec<Vec<Queued>> {
        let max_keys = self.max_keys();
        let mut by_group: Vec<(Arc<str>, Vec<Queued>)> = Vec::new();
        for one in queued {
            if one.answer.is_closed() {
                continue;
            }
            match by_group.iter_mut().find(|(group, _)| *group == one.group) {
                Some((_, list)) => list.push(one),
                None => by_group.push((Arc::clone(&one.group), vec![one])),
            }
        }
        let max_request = self.config.max_request;
        by_group
            .into_iter()
            .flat_map(|(group, list)| {
                split_into_batches(list, |one| &one.key, &group, max_request, max_keys)
            })
            .collect()
    }

    /// Most keys in one shared request: as many as recent values say fit in
    /// [`TARGET_REPLY_BYTES`], at least 2, at most [`MAX_BATCH_KEYS`].
    fn max_keys(&self) -> usize {
        match self.value_bytes.load(Ordering::Relaxed) {
            0 => MAX_BATCH_KEYS,
            bytes => usize::try_from(TARGET_REPLY_BYTES / bytes)
                .unwrap_or(MAX_BATCH_KEYS)
                .clamp(2, MAX_BATCH_KEYS),
        }
    }

    /// Folds one received value's size into the moving average (weight 1/8).
    fn observe_value(&self, len: usize) {
        let len = u64::try_from(len).unwrap_or(u64::MAX).max(1);
        // Racy read-modify-write: a lost update only delays the average a little.
        let old = self.value_bytes.load(Ordering::Relaxed);
        let new = if old == 0 {
            len
        } else {
            old - old / 8 + len / 8
        };
        self.value_bytes.store(new.max(1), Ordering::Relaxed);
    }

    /// Sends one batch (one group) and hands each queued get its key's reply.
    async fn send_batch(&self, client: &PeerClient, batch: Vec<Queued>) {
        let now = Instant::now();
        // The request lives as long as its most patient get; each get waits only its own time.
        let within = batch
            .iter()
            .map(|one| one.deadline.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        let keys: Vec<String> = batch.iter().map(|one| one.key.clone()).collect();
        let group = Arc::clone(&batch[0].group);
        let context = batch[0].context;
        let span = tracing::debug_span!("groupcache.coalesced_request", keys = keys.len());
        let replies = client
            .get_many(
                &group,
                &keys,
                within,
                self.config.max_request,
                context.as_ref(),
            )
            .instrument(span)
            .await;
        match replies {
            Ok(replies) => {
                for (one, reply) in batch.into_iter().zip(replies) {
                    if let KeyReply::Value(value) = &reply {
                        self.observe_value(value.value.len());
                    }
                    let _ = one.answer.send(reply);
                }
            }
            Err(failure) => {
                for one in batch {
                    let _ = one.answer.send(KeyReply::Failed(failure.clone()));
                }
            }
        }
    }
}

/// Runs `task` on the current runtime; without one (a runtime shutting down), drops it, which
/// ends every queued get's wait (each then asks on its own).
fn spawn_or_drop(task: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}

impl PeerClient {
    /// Gets waiting for a shared request to this peer.
    #[cfg(feature = "test-util")]
    pub(crate) fn queued_gets(&self) -> usize {
        self.coalescer
            .as_ref()
            .map_or(0, |coalescer| coalescer.lock().queued.len())
    }

    /// Asks the peer, as the key's owner, for the encoded value of `key` in `group`: as
    /// [`PeerClient::get`], or, when coalescing is on and requests to this peer are in flight,
    /// in a request shared with other gets (the reply says which).
    pub(crate) async fn get_from_owner(
        &self,
        group: &str,
        key: &str,
        within: Duration,
        context: Option<&TraceContext>,
    ) -> Result<Reply, PeerFailure> {
        let Some(coalescer) = &self.coalescer else {
            return self.get(group, key, None, within, context).await;
        };
        let within = within.min(self.timeout);
        let started = Instant::now();
        let deadline = started + within;
        let answered = match coalescer.enter(self, group, key, deadline, context) {
            Entered::Send(slot) => {
                let reply = self.get(group, key, None, within, context).await;
                if let Ok(reply) = &reply {
                    coalescer.observe_value(reply.value.len());
                }
                drop(slot);
                return reply;
            }
            Entered::Queued(answered) => answered,
        };
        match tokio::time::timeout_at(deadline, answered).await {
            Ok(Ok(KeyReply::Value(reply))) => Ok(Reply {
                coalesced: true,
                ..reply
            }),
            Ok(Ok(KeyReply::Failed(failure))) => Err(failure),
            // Too large to share a reply, or the shared request never ran: ask on its own.
            Ok(Ok(KeyReply::NotSent) | Err(_)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                self.get(group, key, None, left, context).await
            }
            // The shared request's own failure feeds the breaker, once; this get's wait alone
            // says nothing about the peer.
            Err(_) => Err(PeerFailure::Transport(
                Error::new(
                    ErrorKind::Peer,
                    format!("no answer within {within:?} (waiting in a shared request)"),
                )
                .with_group(group)
                .with_key(key)
                .with_peer(&self.peer),
            )),
        }
    }
}
