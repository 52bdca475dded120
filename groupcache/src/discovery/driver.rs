//! The [`DiscoveryDriver`]: asks a [`ServiceDiscovery`] for the peers right away, then on an
//! interval, and applies each new answer with [`Groupcache::set_peers`].

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::ServiceDiscovery;
use crate::{Groupcache, GroupcachePeer};

/// Default time between two polls of the provider while it answers: 5 seconds.
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(5);

/// Default upper bound of the random delay added to every wait: 500 milliseconds.
pub const DEFAULT_DISCOVERY_JITTER: Duration = Duration::from_millis(500);

/// Default longest wait between two polls while the provider keeps failing: 60 seconds.
pub const DEFAULT_DISCOVERY_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Default time the provider has to answer one poll before it counts as failed: 10 seconds.
pub const DEFAULT_DISCOVERY_POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps a cache's membership in line with a [`ServiceDiscovery`] provider.
///
/// Once started with [`spawn`](Self::spawn) or [`spawn_until`](Self::spawn_until), the driver
/// runs in a task of its own:
///
/// - it polls the provider **at once**, then every [`interval`](Self::interval) plus a random
///   [`jitter`](Self::jitter), so that replicas started together do not poll in step;
/// - it applies an answer through [`Groupcache::set_peers`] only when the set differs from the
///   current membership, and logs the peers added and removed (`tracing`, level `INFO`);
/// - when the provider fails (an error, no answer within the [poll
///   timeout](Self::poll_timeout), a panic, or an empty set unless
///   [`allow_empty`](Self::allow_empty)), it keeps the last set it applied, logs a warning,
///   and waits longer after each consecutive failure: the interval, then twice, four times
///   and so on, capped at [`max_backoff`](Self::max_backoff). The first answer after failures
///   restores the normal interval. A provider error never stops the driver;
/// - it stops when its [`DiscoveryHandle`] is dropped or shut down, or when the signal given to
///   [`spawn_until`](Self::spawn_until) completes, even in the middle of a poll.
///
/// ```no_run
/// # async fn run(cache: groupcache::Groupcache) -> Result<(), groupcache::Error> {
/// use std::time::Duration;
/// use groupcache::discovery::{DiscoveryDriver, StaticPeers};
///
/// // GROUPCACHE_PEERS="10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080"
/// let peers = StaticPeers::from_env("GROUPCACHE_PEERS")?;
/// let discovery = DiscoveryDriver::new(cache.clone(), peers)
///     .interval(Duration::from_secs(10))
///     .spawn();
/// // ... serve; dropping `discovery` stops it.
/// # drop(discovery);
/// # Ok(())
/// # }
/// ```
#[must_use = "a driver does nothing until it is spawned"]
pub struct DiscoveryDriver<D> {
    cache: Groupcache,
    provider: D,
    interval: Duration,
    jitter: Duration,
    max_backoff: Duration,
    poll_timeout: Duration,
    allow_empty: bool,
}

impl<D> fmt::Debug for DiscoveryDriver<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveryDriver")
            .field("provider", &std::any::type_name::<D>())
            .field("interval", &self.interval)
            .field("jitter", &self.jitter)
            .field("max_backoff", &self.max_backoff)
            .field("poll_timeout", &self.poll_timeout)
            .field("allow_empty", &self.allow_empty)
            .finish_non_exhaustive()
    }
}

impl<D: ServiceDiscovery> DiscoveryDriver<D> {
    /// A driver that feeds `provider`'s answers to `cache`, with the default settings.
    pub fn new(cache: Groupcache, provider: D) -> Self {
        DiscoveryDriver {
            cache,
            provider,
            interval: DEFAULT_DISCOVERY_INTERVAL,
            jitter: DEFAULT_DISCOVERY_JITTER,
            max_backoff: DEFAULT_DISCOVERY_MAX_BACKOFF,
            poll_timeout: DEFAULT_DISCOVERY_POLL_TIMEOUT,
            allow_empty: false,
        }
    }

    /// Time between two polls while the provider answers. Default
    /// [`DEFAULT_DISCOVERY_INTERVAL`] (5 s). A change reaches this peer within about this
    /// long (plus jitter and the provider's own delay).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Upper bound of the random delay (uniform in `0..=jitter`) added to every wait. Default
    /// [`DEFAULT_DISCOVERY_JITTER`] (500 ms); zero makes the schedule exact.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Longest wait between polls while the provider keeps failing (before jitter). Default
    /// [`DEFAULT_DISCOVERY_MAX_BACKOFF`] (60 s).
    pub fn max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff;
        self
    }

    /// How long one call to the provider may take before it counts as a failure. Default
    /// [`DEFAULT_DISCOVERY_POLL_TIMEOUT`] (10 s).
    pub fn poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// Whether an empty answer is applied (this peer then loads every key itself) or treated
    /// as a failure that keeps the last set. Default `false`: an empty answer is far more often
    /// a glitch (a registry restarting, a service with no ready endpoints yet) than a cluster
    /// that really has no members, this peer included.
    pub fn allow_empty(mut self, allow: bool) -> Self {
        self.allow_empty = allow;
        self
    }

    /// Starts the driver on the current tokio runtime. It runs until the returned handle is
    /// dropped or [shut down](DiscoveryHandle::shutdown).
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub fn spawn(self) -> DiscoveryHandle {
        self.spawn_until(std::future::pending())
    }

    /// Starts the driver on the current tokio runtime. It runs until `shutdown` completes (for
    /// example your server's shutdown signal) or the returned handle is dropped or shut down,
    /// whichever comes first.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub fn spawn_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> DiscoveryHandle {
        let (status_tx, status_rx) = watch::channel(DiscoveryStatus::default());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tokio::select! {
                // Resolves when the handle sends, and also when it is dropped.
                _ = stop_rx => {}
                () = shutdown => {}
                never = self.run(&status_tx) => match never {},
            }
            tracing::debug!(me = %self.cache.me(), "discovery stopped");
            status_tx.send_modify(|s| s.stopped = true);
        });
        DiscoveryHandle {
            stop: Some(stop_tx),
            task: Some(task),
            status: status_rx,
        }
    }

    /// Polls forever; stopped by being dropped (every `.await` in it is a safe place to stop:
    /// `set_peers` swaps the ring without awaiting anything).
    async fn run(&self, status: &watch::Sender<DiscoveryStatus>) -> std::convert::Infallible {
        let mut consecutive_failures: u32 = 0;
        loop {
            let outcome = self.poll().await;
            let wait = match outcome {
                Ok(changed) => {
                    if consecutive_failures > 0 {
                        tracing::info!(
                            me = %self.cache.me(),
                            provider = std::any::type_name::<D>(),
                            after_failures = consecutive_failures,
                            "discovery recovered"
                        );
                    }
                    consecutive_failures = 0;
                    let peers = self.cache.peers();
                    status.send_modify(|s| {
                        s.polls += 1;
                        s.consecutive_failures = 0;
                        s.changes += u64::from(changed);
                        s.peers = peers;
                    });
                    self.interval
                }
                Err(error) => {
                    consecutive_failures = consecutive_failures.saturating_add(1);
                    let wait = self.backoff(consecutive_failures);
                    tracing::warn!(
                        me = %self.cache.me(),
                        provider = std::any::type_name::<D>(),
                        %error,
                        consecutive_failures,
                        retry_in = ?wait,
                        members = self.cache.peers().len(),
                        "discovery failed; keeping the last peer set"
                    );
                    status.send_modify(|s| {
                        s.polls += 1;
                        s.failures += 1;
                        s.consecutive_failures = consecutive_failures;
                        s.last_error = Some(error);
                    });
                    wait
                }
            };
            tokio::time::sleep(wait + self.random_jitter()).await;
        }
    }

    /// Asks the provider once and applies its answer if it changes the membership. Returns
    /// whether it did, or what went wrong.
    async fn poll(&self) -> Result<bool, String> {
        let answer = tokio::time::timeout(
            self.poll_timeout,
            AssertUnwindSafe(self.provider.peers()).catch_unwind(),
        )
        .await;
        let mut peers = match answer {
            Err(_) => {
                return Err(format!(
                    "the provider did not answer within {:?}",
                    self.poll_timeout
                ));
            }
            Ok(Err(panic)) => {
                return Err(format!("the provider panicked: {}", panic_message(&*panic)));
            }
            Ok(Ok(Err(error))) => return Err(error_chain(&*error)),
            Ok(Ok(Ok(peers))) => peers,
        };
        peers.sort();
        peers.dedup();
        if peers.is_empty() && !self.allow_empty {
            return Err(
                "the provider returned no peers (an empty set is ignored unless \
                        allow_empty(true) is set)"
                    .to_owned(),
            );
        }
        let before = self.cache.peers();
        if before == peers {
            return Ok(false);
        }
        self.cache
            .set_peers(peers.iter().cloned())
            .map_err(|e| format!("applying the discovered peers failed: {e}"))?;
        let added: Vec<&GroupcachePeer> = peers.iter().filter(|p| !before.contains(p)).collect();
        let removed: Vec<&GroupcachePeer> = before.iter().filter(|p| !peers.contains(p)).collect();
        tracing::info!(
            me = %self.cache.me(),
            provider = std::any::type_name::<D>(),
            added = ?added,
            removed = ?removed,
            members = peers.len(),
            "discovery applied a new peer set"
        );
        if !peers.contains(self.cache.me()) {
            tracing::warn!(
                me = %self.cache.me(),
                "this peer is not in the discovered set: it owns no keys and asks the others \
                 for every key (check that it advertises the address discovery reports)"
            );
        }
        Ok(true)
    }

    /// The wait after `failures` consecutive failures: interval × 2^(failures − 1), capped.
    fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.interval
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }

    fn random_jitter(&self) -> Duration {
        let max = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        if max == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(fastrand::u64(0..=max))
        }
    }
}

/// The error's message followed by its sources', `: `-separated.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}

// ===== DiscoveryHandle =====

/// A running [`DiscoveryDriver`]. Dropping it stops the driver; [`shutdown`](Self::shutdown)
/// stops it and waits until it has stopped.
#[derive(Debug)]
pub struct DiscoveryHandle {
    /// Dropping or sending on it stops the driver.
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    status: watch::Receiver<DiscoveryStatus>,
}

impl DiscoveryHandle {
    /// What the driver has done so far.
    #[must_use]
    pub fn status(&self) -> DiscoveryStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every update of the status, e.g. to wait for the first answer:
    /// `handle.subscribe().wait_for(|s| s.polls > 0).await`.
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<DiscoveryStatus> {
        self.status.clone()
    }

    /// Whether the driver has stopped.
    pub fn is_stopped(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the driver (also in the middle of a poll) and waits until it has stopped. The
    /// membership stays as the driver last set it.
    pub async fn shutdown(mut self) {
        drop(self.stop.take());
        if let Some(task) = self.task.take() {
            // The task only ends by returning; a JoinError here would be the runtime shutting
            // down, which stops it just as well.
            let _ = task.await;
        }
    }
}

/// What a [`DiscoveryDriver`] has done so far, from [`DiscoveryHandle::status`].
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryStatus {
    /// Polls finished, answered or failed.
    pub polls: u64,
    /// Polls that failed (error, timeout, panic, or an empty set when that is not allowed).
    pub failures: u64,
    /// Failures since the last answer; 0 when the last poll succeeded.
    pub consecutive_failures: u32,
    /// How many answers changed the membership.
    pub changes: u64,
    /// The most recent failure, kept after the provider recovers.
    pub last_error: Option<String>,
    /// The membership after the last successful poll, sorted by address.
    pub peers: Vec<GroupcachePeer>,
    /// Whether the driver has stopped.
    pub stopped: bool,
}
