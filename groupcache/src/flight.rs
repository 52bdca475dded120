//! The detached flight group: at most one load per key at a time on this peer, shared by every
//! caller that asks while it runs.
//!
//! The load runs in its own tokio task (the "flight"), not in the first caller's future. So a
//! caller that gives up (timeout, dropped future, aborted task) never cancels it: the other
//! callers still get the value, and it still fills the cache. Waiters subscribe to a `watch`
//! channel that the flight writes once.
//!
//! [`FlightGroup::join_inline`] saves the task where the leader awaits its ticket at once (a
//! single `get`): the leader's own task runs the flight, and only if the leader goes away
//! before it ends (its `wait` future or its ticket dropped) is the rest spawned as a task of
//! its own. So a caller that gives up still cancels nothing, and a flight that nobody gives
//! up on costs no spawn, no task and no cross-task wake-up.
//!
//! The map entry is removed by a drop guard owned by the flight task, just before the result
//! is published. The guard runs on every exit path (normal end, panic, the task being dropped at
//! runtime shutdown) and removes the entry only if it still belongs to this flight, so a newer
//! flight for the same key is never removed by an older one. Panics in the user's code (loader,
//! codec, hot cache policy) are caught where that code is called, and become that code's error;
//! a panic anywhere else ends the task, and every waiter gets [`ErrorKind::Abandoned`]: nothing
//! is left behind.

use std::any::Any;
use std::collections::HashMap;
use std::collections::hash_map;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::{Error, ErrorKind};

type Slot<T> = Option<Result<T, Error>>;

/// One flight group. `T` is what a flight produces; it is cloned to every waiter.
pub(crate) struct FlightGroup<T> {
    /// A std mutex, not a tokio one: it is held only to look up or insert an entry, never across
    /// an `.await`, and is also taken from `Drop`, which cannot await.
    flights: Mutex<HashMap<String, Flight<T>>>,
    next_id: AtomicU64,
}

struct Flight<T> {
    /// Tells this flight apart from a later one for the same key.
    id: u64,
    tx: Arc<watch::Sender<Slot<T>>>,
    superseded: Superseded,
}

/// Set when a flight is unmapped by [`FlightGroup::forget`] (the key was removed while the
/// flight ran): whatever it read may predate the removal, so it must not stay in a cache.
#[derive(Debug, Clone, Default)]
pub(crate) struct Superseded(Arc<AtomicBool>);

impl Superseded {
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the flight was superseded. `SeqCst`, paired with `set`: a flight that stores a
    /// value and then sees `false` stored it before `forget` ran, so the removal that follows
    /// `forget` deletes it.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A caller's place in a flight: await [`Ticket::wait`] for the result. Dropping it leaves
/// the flight running.
pub(crate) struct Ticket<T> {
    rx: watch::Receiver<Slot<T>>,
    role: Role,
    /// The flight itself, for a leader of [`FlightGroup::join_inline`]: run by `wait`, and
    /// spawned if the ticket or `wait` is dropped before it ends.
    run: Option<Detached>,
}

impl<T> Ticket<T> {
    pub(crate) fn role(&self) -> Role {
        self.role
    }
}

/// A flight that no task runs yet: spawned when dropped, unless it ran to its end.
struct Detached(Option<BoxFuture<'static, ()>>);

impl Detached {
    /// Runs the flight to its end here. A panic in it (not in the user's code, whose panics
    /// are caught where it is called) ends it as a panicking task would: its guard unmaps it
    /// and every waiter gets `Abandoned`; the panic does not reach the caller.
    async fn run(&mut self) {
        if let Some(flight) = self.0.as_mut() {
            let _ = AssertUnwindSafe(flight).catch_unwind().await;
            self.0 = None;
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        // Without a runtime (it is shutting down) the flight is dropped instead, as its task
        // would be: its guard unmaps it and its waiters get `Abandoned`.
        if let (Some(flight), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(flight);
        }
    }
}

impl<T: Clone> Ticket<T> {
    /// The flight's result, shared with every other caller of the flight.
    pub(crate) async fn wait(mut self) -> Result<T, Error> {
        if let Some(run) = self.run.as_mut() {
            // Dropping this future mid-way drops the ticket, whose `Detached` spawns the rest.
            run.run().await;
        }
        let filled = match self.rx.wait_for(Option::is_some).await {
            Ok(slot) => slot.clone(),
            // Every sender is gone without a result: the flight task was dropped (runtime
            // shutdown) before it finished.
            Err(_) => None,
        };
        filled.unwrap_or_else(|| {
            Err(Error::new(
                ErrorKind::Abandoned,
                "the load task ended without a result: the runtime is shutting down, or \
                 groupcache itself panicked (see the log, and please report it)",
            ))
        })
    }
}

/// How a caller took part in a flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Started the flight.
    Leader,
    /// Joined a flight already running.
    Joined,
}

impl<T: Clone + Send + Sync + 'static> FlightGroup<T> {
    pub(crate) fn new() -> Self {
        FlightGroup {
            flights: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Flight<T>>> {
        // The lock guards plain map operations that cannot panic halfway; a poisoned map is
        // still consistent.
        self.flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Joins the flight for `key`, starting one with `work` if none is running. `work` is
    /// called at most once, only by a leader, and its future is spawned at once, so it runs to
    /// completion even if no one ever awaits the returned ticket. `work` is given the flight's
    /// [`Superseded`] flag, set if [`FlightGroup::forget`] unmaps the flight while it runs.
    ///
    /// Must be called within a tokio runtime (`tokio::spawn` panics otherwise; the flight is
    /// unregistered first, so nothing is left behind).
    pub(crate) fn join<F, Fut>(self: &Arc<Self>, key: &str, work: F) -> Ticket<T>
    where
        F: FnOnce(Superseded) -> Fut,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let mut ticket = self.join_inline(key, work);
        if let Some(flight) = ticket.run.take().and_then(|mut run| run.0.take()) {
            tokio::spawn(flight);
        }
        ticket
    }

    /// [`FlightGroup::join`], but a leader's flight runs in the task that awaits the ticket's
    /// [`Ticket::wait`], and is spawned only if that caller stops waiting (or drops the ticket)
    /// before it ends: for a caller that waits at once, as a single `get` does. Not for one
    /// that joins several flights before it awaits any: each would wait for the one before.
    pub(crate) fn join_inline<F, Fut>(self: &Arc<Self>, key: &str, work: F) -> Ticket<T>
    where
        F: FnOnce(Superseded) -> Fut,
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let (id, tx, rx, superseded) = {
            let mut flights = self.lock();
            match flights.entry(key.to_owned()) {
                hash_map::Entry::Occupied(flight) => {
                    return Ticket {
                        rx: flight.get().tx.subscribe(),
                        role: Role::Joined,
                        run: None,
                    };
                }
                hash_map::Entry::Vacant(slot) => {
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    let (tx, rx) = watch::channel(None);
                    let tx = Arc::new(tx);
                    let superseded = Superseded::default();
                    slot.insert(Flight {
                        id,
                        tx: Arc::clone(&tx),
                        superseded: superseded.clone(),
                    });
                    (id, tx, rx, superseded)
                }
            }
        };
        // The lock is released before anything below can drop the guard (a panic in `work`, or
        // `tokio::spawn` dropping the task when there is no runtime or it is shutting down):
        // the guard takes the lock itself.
        let guard = FlightGuard {
            group: Arc::clone(self),
            key: key.to_owned(),
            id,
        };
        let fut = work(superseded);
        let flight = async move {
            let result = fut.await;
            // Unregister first, then publish. A caller arriving after this point starts a new
            // flight (whose leader finds the value in the cache) instead of joining a finished
            // one and receiving its result, which may be stale by then.
            drop(guard);
            tx.send_replace(Some(result));
        };
        Ticket {
            rx,
            role: Role::Leader,
            run: Some(Detached(Some(flight.boxed()))),
        }
    }

    /// Unmaps the flight for `key`, if any, and marks it superseded: callers from now on start
    /// a new flight, and the old one knows not to keep what it read. Its current waiters still
    /// get its result.
    pub(crate) fn forget(&self, key: &str) {
        if let Some(flight) = self.lock().remove(key) {
            flight.superseded.set();
        }
    }

    /// [`FlightGroup::forget`] for every key.
    pub(crate) fn forget_all(&self) {
        for (_, flight) in self.lock().drain() {
            flight.superseded.set();
        }
    }

    /// Flights running now.
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Callers waiting on the flight for `key` (0 if none is running).
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn waiters(&self, key: &str) -> usize {
        self.lock()
            .get(key)
            .map_or(0, |flight| flight.tx.receiver_count())
    }
}

impl<T> std::fmt::Debug for FlightGroup<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightGroup").finish_non_exhaustive()
    }
}

/// Removes a flight's map entry when the flight task ends, however it ends.
struct FlightGuard<T: Clone + Send + Sync + 'static> {
    group: Arc<FlightGroup<T>>,
    key: String,
    id: u64,
}

impl<T: Clone + Send + Sync + 'static> Drop for FlightGuard<T> {
    fn drop(&mut self) {
        let mut flights = self.group.lock();
        if flights.get(&self.key).is_some_and(|f| f.id == self.id) {
            flights.remove(&self.key);
        }
    }
}

/// The text of a panic payload (`panic!` with a message gives a `&str` or a `String`).
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use tokio::sync::Notify;
    use tokio::time::timeout;

    const LIMIT: Duration = Duration::from_secs(10);

    async fn wait_for_waiters(group: &FlightGroup<u32>, key: &str, n: usize) {
        while group.waiters(key) != n {
            tokio::task::yield_now().await;
        }
    }

    /// How a test joins: [`FlightGroup::join`] (the flight spawned at once) or
    /// [`FlightGroup::join_inline`] (run by the leader's `wait`, spawned if the leader goes).
    #[derive(Debug, Clone, Copy)]
    enum Join {
        Spawned,
        Inline,
    }

    impl Join {
        fn join<F, Fut>(self, group: &Arc<FlightGroup<u32>>, key: &str, work: F) -> Ticket<u32>
        where
            F: FnOnce(Superseded) -> Fut,
            Fut: Future<Output = Result<u32, Error>> + Send + 'static,
        {
            match self {
                Join::Spawned => group.join(key, work),
                Join::Inline => group.join_inline(key, work),
            }
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_run() {
        timeout(LIMIT, async {
            let group = Arc::new(FlightGroup::<u32>::new());
            let runs = Arc::new(AtomicUsize::new(0));
            let gate = Arc::new(Notify::new());
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..100 {
                let (group, runs, gate) = (group.clone(), runs.clone(), gate.clone());
                tasks.spawn(async move {
                    let ticket = group.join("k", |_| async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        Ok(7)
                    });
                    let role = ticket.role();
                    (ticket.wait().await, role)
                });
            }
            wait_for_waiters(&group, "k", 100).await;
            gate.notify_one();
            let mut leaders = 0;
            while let Some(joined) = tasks.join_next().await {
                let (result, role) = joined.unwrap();
                assert_eq!(result.unwrap(), 7);
                leaders += usize::from(role == Role::Leader);
            }
            assert_eq!(runs.load(Ordering::SeqCst), 1);
            assert_eq!(leaders, 1);
            assert_eq!(group.len(), 0);
        })
        .await
        .expect("timed out");
    }

    #[tokio::test]
    async fn dropping_the_leader_does_not_cancel_the_flight() {
        dropping_the_leader_leaves_the_flight_running(Join::Spawned).await;
    }

    #[tokio::test]
    async fn an_inline_leader_that_gives_up_detaches_the_flight() {
        dropping_the_leader_leaves_the_flight_running(Join::Inline).await;
    }

    async fn dropping_the_leader_leaves_the_flight_running(how: Join) {
        timeout(LIMIT, async {
            let group = Arc::new(FlightGroup::<u32>::new());
            let gate = Arc::new(Notify::new());
            let g = gate.clone();
            let leader = tokio::spawn({
                let group = group.clone();
                async move {
                    how.join(&group, "k", |_| async move {
                        g.notified().await;
                        Ok(1)
                    })
                    .wait()
                    .await
                }
            });
            wait_for_waiters(&group, "k", 1).await;
            let follower = tokio::spawn({
                let group = group.clone();
                async move {
                    let ticket = how.join(&group, "k", |_| async { Ok(2) });
                    let role = ticket.role();
                    (ticket.wait().await, role)
                }
            });
            wait_for_waiters(&group, "k", 2).await;
            leader.abort();
            assert!(leader.await.unwrap_err().is_cancelled());
            wait_for_waiters(&group, "k", 1).await;
            // Either way the flight is in a task of its own now (an inline one since the abort).
            gate.notify_one();
            let (result, role) = follower.await.unwrap();
            assert_eq!(result.unwrap(), 1, "the follower got the leader's flight");
            assert_eq!(role, Role::Joined);
            assert_eq!(group.len(), 0);
        })
        .await
        .expect("timed out");
    }

    /// A caller that got a flight's result and asks again must start a new flight, never
    /// join the finished one (whose result may be stale after a `remove`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_finished_flight_is_unregistered_before_its_result_is_seen() {
        timeout(LIMIT, async {
            let group = Arc::new(FlightGroup::<u32>::new());
            for i in 0..2_000 {
                let ticket = group.join("k", move |_| async move { Ok(i) });
                assert_eq!(
                    ticket.role(),
                    Role::Leader,
                    "round {i} joined an old flight"
                );
                assert_eq!(ticket.wait().await.unwrap(), i);
                assert_eq!(group.len(), 0, "round {i} left its entry behind");
            }
        })
        .await
        .expect("timed out");
    }

    #[tokio::test]
    async fn forget_starts_a_new_flight_and_flags_the_old_one() {
        timeout(LIMIT, async {
            let group = Arc::new(FlightGroup::<u32>::new());
            let gate = Arc::new(Notify::new());
            let (flag_tx, flag_rx) = tokio::sync::oneshot::channel();
            let g = gate.clone();
            let old = group.join("k", move |superseded| async move {
                g.notified().await;
                let _ = flag_tx.send(superseded.is_set());
                Ok(1)
            });
            group.forget("k");
            let new = group.join("k", |_| async { Ok(2) });
            assert_eq!(
                new.role(),
                Role::Leader,
                "a new flight, not the forgotten one"
            );
            assert_eq!(new.wait().await.unwrap(), 2);
            gate.notify_one();
            assert_eq!(
                old.wait().await.unwrap(),
                1,
                "old waiters still get their result"
            );
            assert!(
                flag_rx.await.unwrap(),
                "the old flight saw it was superseded"
            );
            assert_eq!(group.len(), 0);
        })
        .await
        .expect("timed out");
    }

    #[test]
    fn join_outside_a_runtime_panics_and_leaves_nothing_behind() {
        let group = Arc::new(FlightGroup::<u32>::new());
        let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            group.join("k", |_| async { Ok(1) });
        }));
        assert!(joined.is_err(), "tokio::spawn needs a runtime");
        assert_eq!(
            group.len(),
            0,
            "and the lock was not held when the guard dropped"
        );
    }

    #[tokio::test]
    async fn a_panic_reaches_every_waiter_and_leaves_nothing_behind() {
        a_panic_ends_the_flight_alone(Join::Spawned).await;
    }

    #[tokio::test]
    async fn a_panic_in_an_inline_flight_does_not_reach_the_leader() {
        a_panic_ends_the_flight_alone(Join::Inline).await;
    }

    async fn a_panic_ends_the_flight_alone(how: Join) {
        timeout(LIMIT, async {
            let group = Arc::new(FlightGroup::<u32>::new());
            // Not the user's code (that is caught where it is called): the task ends, and the
            // waiters learn that it did.
            let result = how
                .join(&group, "k", |_| async { panic!("a groupcache bug") })
                .wait()
                .await;
            let err = result.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Abandoned);
            assert_eq!(group.len(), 0);
            let ticket = group.join("k", |_| async { Ok(3) });
            assert_eq!(ticket.role(), Role::Leader);
            assert_eq!(ticket.wait().await.unwrap(), 3);
        })
        .await
        .expect("timed out");
    }

    #[tokio::test]
    async fn an_inline_leader_runs_the_flight_in_its_own_task() {
        timeout(LIMIT, async {
            let group = Arc::new(FlightGroup::<u32>::new());
            let ran_in = Arc::new(Mutex::new(None));
            let seen = Arc::clone(&ran_in);
            let g = Arc::clone(&group);
            let caller = tokio::spawn(async move {
                let ticket = g.join_inline("k", move |_| async move {
                    *seen.lock().unwrap() = tokio::task::try_id();
                    Ok(5)
                });
                assert_eq!(ticket.role(), Role::Leader);
                assert_eq!(ticket.wait().await.unwrap(), 5);
                tokio::task::id()
            });
            let caller = caller.await.unwrap();
            assert_eq!(*ran_in.lock().unwrap(), Some(caller), "no task of its own");
            assert_eq!(group.len(), 0);
        })
        .await
        .expect("timed out");
    }

    #[tokio::test]
    async fn an_inline_ticket_dropped_unawaited_still_runs_its_flight() {
        timeout(LIMIT, async {
            let group = Arc::new(FlightGroup::<u32>::new());
            let ran = Arc::new(Notify::new());
            let r = ran.clone();
            drop(group.join_inline("k", move |_| async move {
                r.notify_one();
                Ok(1)
            }));
            ran.notified().await;
        })
        .await
        .expect("timed out");
    }
}
