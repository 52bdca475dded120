//! This peer's lease on another peer's values: how long its hot copies of that owner's values
//! may still be served, and which of the owner's invalidations it has applied.
//!
//! A hot copy is served only while two things hold (rule 13 in DESIGN.md, the Consistency
//! section of the README), and is kept at all only if the owner says its invalidations reach
//! this peer (this peer is in the owner's ring):
//!
//! - **No invalidation is missing.** The owner numbers its invalidations (per incarnation, its
//!   *epoch*) and sends them to each peer in order; the peer tracks the last number it applied.
//!   A batch that does not follow on from it, or an answer of the owner's that names a higher
//!   number which never arrives, is a *gap*: some invalidation was lost, so every copy of that
//!   owner's values may be stale and none is served again (the lease's *generation* moves on,
//!   which revokes every copy tagged with the old one at once, without a scan).
//! - **The owner answered recently.** A lease runs for the lease bound from the moment this
//!   peer *sent* a request the owner answered with no invalidation missing (a `Get`, or the
//!   `Lease` renewal sent in the lease's second half by a read of a copy). A peer cut off from
//!   the owner, which cannot hear of new invalidations, stops serving its copies when the lease
//!   runs out: at most the bound after the last answer, whatever was removed since.
//!
//! Only durations measured on this peer's own clock are compared: no clock of another peer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::client::PeerClient;
use crate::GroupcachePeer;
use crate::stats::PeerSetCounters;

/// How far ahead of an owner's own count applied numbers may be before they are distrusted.
const MAX_AHEAD: u64 = 1 << 20;

/// The lease on one owner's values, shared by every hot copy made of them.
pub(crate) struct OwnerLease {
    peer: GroupcachePeer,
    /// How long after a request the owner answered its copies may be served.
    bound: Duration,
    /// How long a renewal waits for invalidations the owner says it sent before it calls the
    /// missing ones lost: the peer timeout, within which each batch arrives or fails.
    catch_up: Duration,
    /// The origin of `valid_until`.
    base: Instant,
    /// Nanoseconds after `base` until which copies may be served; 0 until the first answer.
    valid_until: AtomicU64,
    /// Copies tagged with another generation are revoked.
    generation: AtomicU64,
    applied: Mutex<Applied>,
    /// Woken when invalidations are applied (a renewal may be waiting for them).
    caught_up: Notify,
    /// A renewal is in flight.
    renewing: AtomicBool,
    /// When the last renewal started (nanoseconds after `base`): renewals start at most one
    /// per eighth of the bound, so that an owner that does not answer is not asked at the
    /// rate of hot hits.
    last_renewal: AtomicU64,
    /// The client that renews the lease (it owns this lease: a weak reference, no cycle).
    client: OnceLock<Weak<PeerClient>>,
    counters: Arc<PeerSetCounters>,
}

/// How far this peer has followed the owner's invalidations.
#[derive(Debug, Default)]
struct Applied {
    /// The owner's incarnation, once heard from.
    epoch: Option<u64>,
    /// The number of the last invalidation applied (or skipped as lost).
    through: u64,
}

/// What a hot copy carries: the lease it is served under, and the generation it was made in.
#[derive(Clone)]
pub(crate) struct LeaseTag {
    lease: Arc<OwnerLease>,
    generation: u64,
}

/// Whether a copy may be served now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    Valid,
    /// The lease ran out: not served until the owner answers again.
    Lapsed,
    /// An invalidation was lost (or the owner restarted) after the copy was made: never
    /// served again.
    Revoked,
}

impl OwnerLease {
    pub(crate) fn new(
        peer: GroupcachePeer,
        bound: Duration,
        catch_up: Duration,
        counters: Arc<PeerSetCounters>,
    ) -> Self {
        OwnerLease {
            peer,
            bound,
            catch_up,
            base: Instant::now(),
            valid_until: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            applied: Mutex::default(),
            caught_up: Notify::new(),
            renewing: AtomicBool::new(false),
            last_renewal: AtomicU64::new(0),
            client: OnceLock::new(),
            counters,
        }
    }

    /// Names the client that renews this lease; called once, when the client is shared.
    pub(crate) fn renewed_by(&self, client: Weak<PeerClient>) {
        let _ = self.client.set(client);
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn applied(&self) -> std::sync::MutexGuard<'_, Applied> {
        self.applied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Extends the lease to the bound after `sent_at`. Written only when it moves by a
    /// sixteenth of the bound or more: every hot hit reads this line.
    fn renew(&self, sent_at: Instant) {
        let bound = u64::try_from(self.bound.as_nanos()).unwrap_or(u64::MAX);
        let until = self.nanos(sent_at).saturating_add(bound).max(1);
        let now = self.valid_until.load(Ordering::Acquire);
        if until > now.saturating_add(bound / 16) || now == 0 {
            self.valid_until.fetch_max(until, Ordering::AcqRel);
        }
    }

    /// Revokes every copy made so far.
    fn revoke(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Adopts a new incarnation of the owner: nothing of the old one can be trusted.
    fn adopt(&self, applied: &mut Applied, epoch: u64, through: u64) {
        if applied.epoch.is_some() {
            self.revoke();
        }
        applied.epoch = Some(epoch);
        applied.through = through;
    }

    /// An answer to a `Get` sent at `sent_at`, read by the owner after its invalidation
    /// `sequence` (of incarnation `epoch`): the tag to keep a copy of the value under, or
    /// `None` if no copy may be kept.
    pub(crate) fn answered_get(
        self: &Arc<Self>,
        epoch: u64,
        sequence: u64,
        sent_at: Instant,
    ) -> Option<LeaseTag> {
        let mut applied = self.applied();
        if applied.epoch != Some(epoch) {
            self.adopt(&mut applied, epoch, sequence);
        }
        let through = applied.through;
        let tag = LeaseTag {
            lease: Arc::clone(self),
            generation: self.generation.load(Ordering::Acquire),
        };
        drop(applied);
        if sequence <= through {
            // Every invalidation the owner had issued by then has been applied here.
            self.renew(sent_at);
        }
        // A value read before invalidations already applied here may predate one of them:
        // not kept. A value read after invalidations still on their way is as fresh as they
        // are; copies made earlier are what those invalidations (or a gap) will drop.
        (sequence >= through).then_some(tag)
    }

    /// A batch of the owner's invalidations, numbered `after + 1` to `last`, applied here (the
    /// caller dropped the keys first). Returns whether it found a gap.
    pub(crate) fn applied_batch(&self, epoch: u64, after: u64, last: u64) -> bool {
        let mut applied = self.applied();
        let gap = if applied.epoch != Some(epoch) {
            let known = applied.epoch.is_some();
            self.adopt(&mut applied, epoch, last);
            known
        } else if after > applied.through {
            // Invalidations after `through` up to `after` never arrived.
            self.revoke();
            applied.through = last;
            true
        } else {
            applied.through = applied.through.max(last);
            false
        };
        drop(applied);
        if gap {
            self.counters.invalidation_gaps.bump();
        }
        self.caught_up.notify_waiters();
        gap
    }

    /// An answer to a `Lease` renewal sent at `sent_at`: the owner had issued invalidations up
    /// to `sequence`. Waits (at most the catch-up time) for those not yet applied here; those
    /// still missing then are lost.
    pub(crate) async fn answered_lease(&self, epoch: u64, sequence: u64, sent_at: Instant) {
        let deadline = Instant::now() + self.catch_up;
        loop {
            let caught_up = self.caught_up.notified();
            tokio::pin!(caught_up);
            caught_up.as_mut().enable();
            {
                let mut applied = self.applied();
                if applied.epoch != Some(epoch) {
                    self.adopt(&mut applied, epoch, sequence);
                }
                if sequence <= applied.through {
                    // Far ahead of what the owner says it issued: numbers no owner sent (a
                    // forged or corrupt batch). Nothing applied since can be trusted.
                    if applied.through - sequence > MAX_AHEAD {
                        self.revoke();
                        applied.through = sequence;
                        drop(applied);
                        self.counters.invalidation_gaps.bump();
                    }
                    break;
                }
                if Instant::now() >= deadline {
                    self.revoke();
                    applied.through = sequence;
                    drop(applied);
                    self.counters.invalidation_gaps.bump();
                    tracing::debug!(owner = %self.peer, sequence,
                        "invalidations of this owner never arrived: its copies are dropped");
                    break;
                }
            }
            let _ = tokio::time::timeout_at(deadline, caught_up).await;
        }
        self.renew(sent_at);
        self.counters.lease_renewals.bump();
    }

    /// Starts a renewal in the background, unless one is running or started less than an
    /// eighth of the bound ago, the owner is out (its breaker is open: its keys go to the
    /// substitute, and its copies lapse), or there is no runtime.
    fn renew_soon(&self, at: u64) {
        if self.renewing.load(Ordering::Relaxed) {
            return;
        }
        let spacing = u64::try_from(self.bound.as_nanos() / 8).unwrap_or(u64::MAX);
        let last = self.last_renewal.load(Ordering::Relaxed);
        if last != 0 && at < last.saturating_add(spacing) {
            return;
        }
        // Counted as an attempt even if none starts (owner out, no runtime): the checks below
        // cost more than a hit, and must not run on every one.
        self.last_renewal.store(at.max(1), Ordering::Relaxed);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(client) = self.client.get().and_then(Weak::upgrade) else {
            return;
        };
        if client.is_out() || self.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        // The guard exists before the task: a task dropped unpolled (its runtime shutting
        // down) still clears the flag.
        let done = RenewalGuard(Arc::clone(client.lease()));
        runtime.spawn(async move {
            let _done = done;
            let sent_at = Instant::now();
            if let Ok((epoch, sequence, true)) = client.renew_lease().await {
                client
                    .lease()
                    .answered_lease(epoch, sequence, sent_at)
                    .await;
            }
        });
    }
}

/// Clears the "renewing" flag however the renewal ends.
struct RenewalGuard(Arc<OwnerLease>);

impl Drop for RenewalGuard {
    fn drop(&mut self) {
        self.0.renewing.store(false, Ordering::Release);
    }
}

impl LeaseTag {
    /// Whether the copy may be served at `now`; a read in the lease's second half starts a
    /// renewal. Two relaxed-cost atomic loads on a hit.
    #[inline]
    pub(crate) fn standing(&self, now: Instant) -> Standing {
        let lease = &self.lease;
        if lease.generation.load(Ordering::Acquire) != self.generation {
            return Standing::Revoked;
        }
        let at = lease.nanos(now);
        let until = lease.valid_until.load(Ordering::Acquire);
        let half = u64::try_from(lease.bound.as_nanos() / 2).unwrap_or(u64::MAX);
        if at.saturating_add(half) >= until {
            lease.renew_soon(at);
        }
        if at < until {
            Standing::Valid
        } else {
            Standing::Lapsed
        }
    }
}

impl std::fmt::Debug for OwnerLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerLease")
            .field("peer", &self.peer)
            .field("bound", &self.bound)
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .field("applied", &*self.applied())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LeaseTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseTag")
            .field("owner", &self.lease.peer)
            .field("generation", &self.generation)
            .finish()
    }
}
