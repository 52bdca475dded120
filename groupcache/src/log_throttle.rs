//! Logging a failure that repeats without flooding the logs: the first occurrence, then at
//! most one line per interval carrying how many occurrences it stood for.
//!
//! An owner that is down fails every request for its keys: thousands per second under load.
//! One line per failure would bury everything else (and cost more than the failures
//! themselves); the counters ([`Stats`](crate::stats::Stats)) still count every one.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Shortest time between two log lines for the same repeated failure.
pub(crate) const REPEATED_FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Decides which occurrences of one kind of failure are logged.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    interval: Duration,
    /// A std mutex: held for two field updates, never across an `.await`, and only on a
    /// failure path.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the last line was logged; `None` before the first.
    logged_at: Option<Instant>,
    /// Occurrences since then that were not logged.
    quiet: u64,
}

impl LogThrottle {
    pub(crate) fn new(interval: Duration) -> Self {
        LogThrottle {
            interval,
            state: Mutex::new(State::default()),
        }
    }

    /// Records one occurrence. `Some(n)` means: log this one, and say that `n` more happened
    /// since the last line; `None` means stay quiet.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = state
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= self.interval);
        if due {
            state.logged_at = Some(now);
            Some(std::mem::take(&mut state.quiet))
        } else {
            state.quiet += 1;
            None
        }
    }
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle::new(REPEATED_FAILURE_LOG_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn logs_the_first_then_one_summary_per_interval() {
        let throttle = LogThrottle::new(Duration::from_secs(10));
        assert_eq!(throttle.admit(), Some(0), "the first is logged");
        for _ in 0..999 {
            assert_eq!(throttle.admit(), None);
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            throttle.admit(),
            Some(999),
            "then a line that counts the quiet ones"
        );
        assert_eq!(throttle.admit(), None);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(throttle.admit(), Some(1));
    }
}
