//! Failure detection for one peer: a circuit breaker over its transport failures.
//!
//! Closed, it counts consecutive transport failures (no answer within the peer timeout, a
//! refused or reset connection); an answer of any kind, even an error the owner reports on
//! purpose, resets the count, since it proves the peer is there. At the threshold it opens:
//! for a jittered cool-down, this peer sends that peer nothing and routes its keys to a
//! substitute. The first lookup after the cool-down starts one background probe (a `Describe`
//! under the peer timeout): an answer closes the breaker, a failure opens it for another
//! cool-down. No caller ever waits for a probe, so while a peer is out no request waits for it.
//!
//! The hot path reads one atomic flag; the state behind the mutex is touched only on a failure,
//! a transition or an open breaker's lookup.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::GroupcachePeer;

/// Where a peer's breaker stands, as [`PeerHealth`] reports it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests go to the peer.
    Closed,
    /// The peer stopped answering: its keys go to a substitute until a probe succeeds.
    Open,
    /// Open, with a probe in flight whose answer decides.
    Probing,
}

impl BreakerState {
    /// The state as its wire and log name: `closed`, `open` or `probing`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::Probing => "probing",
        }
    }

    pub(crate) fn from_wire(name: &str) -> Option<Self> {
        Some(match name {
            "closed" => BreakerState::Closed,
            "open" => BreakerState::Open,
            "probing" => BreakerState::Probing,
            _ => return None,
        })
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What this peer knows of another member's health, from
/// [`Groupcache::peer_health`](crate::Groupcache::peer_health).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerHealth {
    /// The member.
    pub peer: GroupcachePeer,
    /// Its breaker's state on this peer.
    pub state: BreakerState,
    /// Transport failures in a row, since its last answer.
    pub consecutive_failures: u32,
    /// How many times its breaker has opened on this peer.
    pub opened: u64,
}

/// The breaker's settings, from [`GroupcacheBuilder`](crate::GroupcacheBuilder).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BreakerConfig {
    /// Consecutive transport failures that open the breaker.
    pub(crate) threshold: u32,
    /// How long it stays open before a probe, before jitter.
    pub(crate) cool_down: Duration,
}

/// A cool-down is stretched or shortened by up to this fraction, at random, so that peers
/// that saw the same outage do not all probe in the same instant.
const COOL_DOWN_JITTER: f64 = 0.2;

/// What a failure or a probe's result changed, for the caller to log and count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Nothing the operator needs to hear about.
    None,
    /// The breaker opened (from closed); the cool-down it opened for.
    Opened(Duration),
    /// A probe was answered: the breaker closed.
    Closed,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open { until: Instant },
    Probing,
}

/// One peer's breaker. Shared by the clones of its client.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    /// Mirrors `state != Closed`: the one read on the hot path.
    open: AtomicBool,
    consecutive: AtomicU32,
    opened: AtomicU64,
    /// A std mutex: held for a few field updates, never across an `.await`.
    state: Mutex<State>,
}

impl Breaker {
    pub(crate) fn new(config: BreakerConfig) -> Self {
        Breaker {
            config,
            open: AtomicBool::new(false),
            consecutive: AtomicU32::new(0),
            opened: AtomicU64::new(0),
            state: Mutex::new(State::Closed),
        }
    }

    /// Whether requests to the peer are held back (open or probing).
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// The peer answered (anything: an answer proves it is there).
    #[inline]
    pub(crate) fn record_answer(&self) {
        // Read first: the common case, no failures, writes nothing.
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }

    /// A request to the peer failed in transport. Opens the breaker at the threshold.
    pub(crate) fn record_failure(&self) -> Transition {
        let failures = self
            .consecutive
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures < self.config.threshold {
            return Transition::None;
        }
        let mut state = self.lock();
        if !matches!(*state, State::Closed) {
            return Transition::None;
        }
        let cool_down = self.jittered_cool_down();
        *state = State::Open {
            until: Instant::now() + cool_down,
        };
        self.open.store(true, Ordering::Relaxed);
        self.opened.fetch_add(1, Ordering::Relaxed);
        Transition::Opened(cool_down)
    }

    /// Whether to start a probe now: the breaker is open and its cool-down has passed. Moves
    /// it to probing, so exactly one caller gets `true` per cool-down.
    pub(crate) fn probe_due(&self) -> bool {
        if !self.is_open() {
            return false;
        }
        let mut state = self.lock();
        match *state {
            State::Open { until } if until <= Instant::now() => {
                *state = State::Probing;
                true
            }
            _ => false,
        }
    }

    /// A probe's result: answered closes the breaker, failed opens it for another cool-down.
    pub(crate) fn probe_finished(&self, answered: bool) -> Transition {
        let mut state = self.lock();
        if answered {
            *state = State::Closed;
            self.consecutive.store(0, Ordering::Relaxed);
            self.open.store(false, Ordering::Relaxed);
            Transition::Closed
        } else {
            *state = State::Open {
                until: Instant::now() + self.jittered_cool_down(),
            };
            Transition::None
        }
    }

    pub(crate) fn health(&self, peer: &GroupcachePeer) -> PeerHealth {
        let state = match *self.lock() {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::Probing => BreakerState::Probing,
        };
        PeerHealth {
            peer: peer.clone(),
            state,
            consecutive_failures: self.consecutive.load(Ordering::Relaxed),
            opened: self.opened.load(Ordering::Relaxed),
        }
    }

    fn jittered_cool_down(&self) -> Duration {
        let factor = 1.0 + COOL_DOWN_JITTER * (2.0 * fastrand::f64() - 1.0);
        self.config.cool_down.mul_f64(factor)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            threshold: 3,
            cool_down: Duration::from_secs(5),
        })
    }

    fn peer() -> GroupcachePeer {
        "127.0.0.1:1".parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn opens_at_the_threshold_of_consecutive_failures_only() {
        let b = breaker();
        assert_eq!(b.record_failure(), Transition::None);
        assert_eq!(b.record_failure(), Transition::None);
        b.record_answer();
        assert_eq!(b.record_failure(), Transition::None);
        assert_eq!(b.record_failure(), Transition::None);
        assert!(!b.is_open());
        let Transition::Opened(cool_down) = b.record_failure() else {
            panic!("the third failure in a row opens it");
        };
        assert!(cool_down >= Duration::from_secs(4) && cool_down <= Duration::from_secs(6));
        assert!(b.is_open());
        // More failures while open change nothing and are not reported again.
        assert_eq!(b.record_failure(), Transition::None);
        let health = b.health(&peer());
        assert_eq!(health.state, BreakerState::Open);
        assert_eq!(health.opened, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn one_probe_per_cool_down_and_its_answer_decides() {
        let b = breaker();
        for _ in 0..3 {
            b.record_failure();
        }
        assert!(!b.probe_due(), "not before the cool-down");
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!b.probe_due(), "the jitter never shortens it below 4 s");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(b.probe_due());
        assert!(!b.probe_due(), "one probe at a time");
        assert_eq!(b.health(&peer()).state, BreakerState::Probing);
        assert!(b.is_open(), "still routed around while probing");

        assert_eq!(b.probe_finished(false), Transition::None);
        assert!(b.is_open());
        assert!(!b.probe_due(), "a failed probe starts a new cool-down");
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(b.probe_due());
        assert_eq!(b.probe_finished(true), Transition::Closed);
        assert!(!b.is_open());
        let health = b.health(&peer());
        assert_eq!(
            (health.state, health.consecutive_failures, health.opened),
            (BreakerState::Closed, 0, 1)
        );
    }

    #[test]
    fn states_round_trip_their_wire_names() {
        for state in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::Probing,
        ] {
            assert_eq!(BreakerState::from_wire(state.as_str()), Some(state));
        }
        assert_eq!(BreakerState::from_wire("ajar"), None);
    }
}
