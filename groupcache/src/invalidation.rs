//! An owner's invalidations: after a write (`remove`, `set`, `clear`) has been applied here,
//! every other member is told to drop its copies, in batches, each numbered in one sequence per
//! incarnation of this peer.
//!
//! Why an owner-driven broadcast: the owner is where every write of its keys is applied, so it
//! is the one place that can number them in order; a peer learns of a lost message from the
//! numbers alone (the next batch, or the owner's answer to a `Get` or `Lease`, names a higher
//! one), without the owner tracking who holds which copy (reader tracking would cost a set per
//! key on the owner and a message per reader). The cost is one message per write per member,
//! batched: writes that queue while a batch to a peer is in flight go in the next one.
//!
//! Each member has an outbox here, drained by at most one task at a time, so batches reach it
//! in order. A batch that fails (no answer within the peer timeout, a peer that is out) is not
//! sent again: the next batch says which number it follows, and the receiver, finding a gap,
//! drops every copy of this peer's values it holds. A write returns once every member has
//! acknowledged it or the peer timeout has passed, naming the members that did not.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use groupcache_pb::v2::{InvalidateRequest, Invalidation};
use tokio::sync::Notify;

use crate::GroupcachePeer;
use crate::peer::client::PeerClient;
use crate::stats::PeerSetCounters;

/// Most invalidations in one batch.
const MAX_BATCH: usize = 1024;
/// Most invalidations queued for one member: past it (a member slower than the writes), the
/// queue is dropped as lost, and the member finds the gap when it next hears from this peer.
const MAX_QUEUED: usize = 4 * MAX_BATCH;

/// This peer's invalidations, as an owner.
pub(crate) struct Invalidations {
    me: GroupcachePeer,
    /// This incarnation of this peer: random, so that a restarted peer's numbers are not
    /// taken for the old one's.
    epoch: u64,
    /// The number of the last invalidation issued, for answers to read without the lock.
    issued: AtomicU64,
    outboxes: Mutex<HashMap<GroupcachePeer, Arc<Outbox>>>,
    /// How long a write waits for acknowledgements, and a batch for its answer.
    timeout: Duration,
    /// Most bytes of keys and group names in one batch (within the peers' request limit).
    max_batch_bytes: usize,
    counters: Arc<PeerSetCounters>,
}

/// What one member has yet to be sent.
struct Outbox {
    state: Mutex<OutboxState>,
}

struct OutboxState {
    client: Arc<PeerClient>,
    queue: VecDeque<Queued>,
    /// The number of the last invalidation sent (or skipped) to this member.
    sent_through: u64,
    draining: bool,
}

struct Queued {
    sequence: u64,
    invalidation: Invalidation,
    write: Arc<Write>,
}

/// A write's invalidations, queued: what the members answer.
pub(crate) struct Pending {
    write: Arc<Write>,
    /// The write timeout after the invalidations were queued.
    deadline: tokio::time::Instant,
}

impl Pending {
    /// Waits until every member has answered, at most the write timeout; returns the members
    /// that did not acknowledge (failed, or no answer yet), sorted.
    pub(crate) async fn acknowledged(self) -> Vec<GroupcachePeer> {
        let deadline = self.deadline;
        loop {
            let settled = self.write.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.write.lock().outstanding.is_empty() {
                break;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                break;
            }
        }
        let waiting = self.write.lock();
        let mut unacknowledged: Vec<GroupcachePeer> = waiting
            .failed
            .iter()
            .chain(waiting.outstanding.keys())
            .cloned()
            .collect();
        unacknowledged.sort();
        unacknowledged.dedup();
        unacknowledged
    }
}

/// One write's invalidations, waiting for every member's acknowledgement.
struct Write {
    waiting: Mutex<Waiting>,
    settled: Notify,
}

#[derive(Default)]
struct Waiting {
    /// Invalidations not yet answered, per member.
    outstanding: HashMap<GroupcachePeer, usize>,
    failed: HashSet<GroupcachePeer>,
}

impl Invalidations {
    pub(crate) fn new(
        me: GroupcachePeer,
        timeout: Duration,
        max_batch_bytes: usize,
        counters: Arc<PeerSetCounters>,
    ) -> Self {
        Invalidations {
            me,
            epoch: fastrand::u64(..),
            issued: AtomicU64::new(0),
            outboxes: Mutex::default(),
            timeout,
            max_batch_bytes,
            counters,
        }
    }

    /// This incarnation and the number of the last invalidation issued: what an answer to a
    /// peer says, read before the value it carries.
    pub(crate) fn position(&self) -> (u64, u64) {
        (self.epoch, self.issued.load(Ordering::Acquire))
    }

    fn outboxes(&self) -> MutexGuard<'_, HashMap<GroupcachePeer, Arc<Outbox>>> {
        self.outboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Numbers `invalidations` and queues them for every member in `members` (this peer
    /// excluded), at once and without waiting: a write whose caller goes away after this has
    /// still told everyone. Await [`Pending::acknowledged`] for the members' answers.
    pub(crate) fn enqueue(
        &self,
        invalidations: &[Invalidation],
        members: Vec<Arc<PeerClient>>,
    ) -> Pending {
        let members: Vec<Arc<PeerClient>> = members
            .into_iter()
            .filter(|client| *client.peer() != self.me)
            .collect();
        let write = Arc::new(Write {
            waiting: Mutex::new(Waiting {
                outstanding: members
                    .iter()
                    .map(|c| (c.peer().clone(), invalidations.len()))
                    .filter(|(_, count)| *count > 0)
                    .collect(),
                failed: HashSet::new(),
            }),
            settled: Notify::new(),
        });
        if !invalidations.is_empty() {
            // Numbered and queued under one lock: every outbox's queue is in number order.
            let mut outboxes = self.outboxes();
            // A member that left, and comes back, is sent numbers from now on: a gap for it.
            outboxes.retain(|peer, _| members.iter().any(|c| c.peer() == peer));
            let before = self.issued.load(Ordering::Acquire);
            let count = invalidations.len() as u64;
            self.issued.store(before + count, Ordering::Release);
            for client in &members {
                let outbox = outboxes
                    .entry(client.peer().clone())
                    .or_insert_with(|| Arc::new(Outbox::new(Arc::clone(client), before)));
                let start = outbox.queue(
                    Arc::clone(client),
                    (before + 1..).zip(invalidations.iter().cloned()),
                    &write,
                );
                if start {
                    tokio::spawn(self.drain(Arc::clone(outbox)));
                }
            }
        }
        Pending {
            write,
            deadline: tokio::time::Instant::now() + self.timeout,
        }
    }

    /// Sends an outbox's batches, one at a time, until it is empty.
    fn drain(&self, outbox: Arc<Outbox>) -> impl Future<Output = ()> + Send + 'static {
        let me = self.me.to_string();
        let epoch = self.epoch;
        let max_batch_bytes = self.max_batch_bytes;
        let counters = Arc::clone(&self.counters);
        async move {
            while let Some((client, batch, message)) =
                outbox.next_batch(&me, epoch, max_batch_bytes)
            {
                let sent = batch.len() as u64;
                let acknowledged = if client.is_out() {
                    // Not sent; the probe (if its cool-down has passed) finds out whether the
                    // member is back, as a get routed to it would.
                    client.probe_if_due();
                    false
                } else {
                    counters.invalidations_sent.add(sent);
                    client.invalidate(message).await.is_ok()
                };
                if acknowledged {
                    counters.invalidations_acknowledged.add(sent);
                }
                for queued in batch {
                    queued.write.settle(client.peer(), acknowledged);
                }
            }
        }
    }
}

impl Outbox {
    fn new(client: Arc<PeerClient>, sent_through: u64) -> Self {
        Outbox {
            state: Mutex::new(OutboxState {
                client,
                queue: VecDeque::new(),
                sent_through,
                draining: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, OutboxState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues numbered invalidations; returns whether a drain must be started.
    fn queue(
        &self,
        client: Arc<PeerClient>,
        numbered: impl Iterator<Item = (u64, Invalidation)>,
        write: &Arc<Write>,
    ) -> bool {
        let mut state = self.lock();
        state.client = client;
        if state.queue.len() >= MAX_QUEUED {
            let lost: Vec<Queued> = state.queue.drain(..).collect();
            if let Some(last) = lost.last() {
                state.sent_through = last.sequence;
            }
            let peer = state.client.peer().clone();
            drop(state);
            for queued in lost {
                queued.write.settle(&peer, false);
            }
            state = self.lock();
        }
        state
            .queue
            .extend(numbered.map(|(sequence, invalidation)| Queued {
                sequence,
                invalidation,
                write: Arc::clone(write),
            }));
        !std::mem::replace(&mut state.draining, true)
    }

    /// The next batch to send, or `None` (and the drain ends) if the queue is empty.
    fn next_batch(
        &self,
        me: &str,
        epoch: u64,
        max_bytes: usize,
    ) -> Option<(Arc<PeerClient>, Vec<Queued>, InvalidateRequest)> {
        let mut state = self.lock();
        if state.queue.is_empty() {
            state.draining = false;
            return None;
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(next) = state.queue.front() {
            let size = next.invalidation.key.len() + next.invalidation.group.len() + 8;
            if !batch.is_empty() && (batch.len() >= MAX_BATCH || bytes + size > max_bytes) {
                break;
            }
            bytes += size;
            batch.extend(state.queue.pop_front());
        }
        let after = state.sent_through;
        let last = batch.last().map_or(after, |q: &Queued| q.sequence);
        state.sent_through = last;
        let message = InvalidateRequest {
            owner: me.to_owned(),
            owner_epoch: epoch,
            after,
            last,
            invalidations: batch.iter().map(|q| q.invalidation.clone()).collect(),
        };
        Some((Arc::clone(&state.client), batch, message))
    }
}

impl Write {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One invalidation of this write answered (or not) by `peer`.
    fn settle(&self, peer: &GroupcachePeer, acknowledged: bool) {
        let mut waiting = self.lock();
        if !acknowledged {
            waiting.failed.insert(peer.clone());
        }
        if let Some(left) = waiting.outstanding.get_mut(peer) {
            *left -= 1;
            if *left == 0 {
                waiting.outstanding.remove(peer);
            }
        }
        if waiting.outstanding.is_empty() {
            self.settled.notify_waiters();
        }
    }
}

impl std::fmt::Debug for Invalidations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invalidations")
            .field("epoch", &self.epoch)
            .field("issued", &self.issued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
