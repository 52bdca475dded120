//! When each fault happens: the run is cut into rounds of at most 150 s, and every round does
//! the four faults at fixed fractions of its span, with quiet (steady) time between them.
//!
//! | at (of the round) | fault |
//! |---|---|
//! | 15 % | `kill -9` a node; restart it on the same port after `hold` |
//! | 40 % | `SIGSTOP` a node; `SIGCONT` after `hold` |
//! | 60 % | start a new node and add it to the peers file |
//! | 80 % | remove a node from the peers file, then stop it (SIGTERM) |
//!
//! `hold` is a twentieth of the round, at least 2 s (kill) or 3 s (stop) and at most 10 s.

use std::time::Duration;

/// Longest round: a 10-minute run does the four faults four times.
const ROUND: Duration = Duration::from_secs(150);

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// SIGKILL, then a restart on the same port after `hold`.
    Kill,
    /// SIGSTOP, then SIGCONT after `hold`.
    Stall,
    /// A new node joins (started, then written into the peers file).
    Join,
    /// A member leaves (taken out of the peers file, then stopped).
    Leave,
}

impl FaultKind {
    /// One word for the plot.
    pub(crate) fn short(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Stall => "stop",
            FaultKind::Join => "join",
            FaultKind::Leave => "leave",
        }
    }
}

/// One fault of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlannedFault {
    pub(crate) kind: FaultKind,
    /// Since the start of the load.
    pub(crate) at: Duration,
    /// How long the node stays down or stopped (zero for joins and leaves).
    pub(crate) hold: Duration,
}

/// The faults of a run of `duration`, in order.
pub(crate) fn plan(duration: Duration) -> Vec<PlannedFault> {
    let rounds = (duration.as_secs() / ROUND.as_secs()).max(1);
    let span = duration / u32::try_from(rounds).unwrap_or(u32::MAX);
    let hold = |min: u64| (span / 20).clamp(Duration::from_secs(min), Duration::from_secs(10));
    let mut faults = Vec::new();
    for round in 0..rounds {
        let start = span * u32::try_from(round).unwrap_or(u32::MAX);
        let at = |percent: u32| start + span * percent / 100;
        faults.push(PlannedFault {
            kind: FaultKind::Kill,
            at: at(15),
            hold: hold(2),
        });
        faults.push(PlannedFault {
            kind: FaultKind::Stall,
            at: at(40),
            hold: hold(3),
        });
        for (kind, percent) in [(FaultKind::Join, 60), (FaultKind::Leave, 80)] {
            faults.push(PlannedFault {
                kind,
                at: at(percent),
                hold: Duration::ZERO,
            });
        }
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_has_one_of_each_fault_with_quiet_time_between() {
        let faults = plan(Duration::from_secs(60));
        let kinds: Vec<FaultKind> = faults.iter().map(|f| f.kind).collect();
        use FaultKind::*;
        assert_eq!(kinds, [Kill, Stall, Join, Leave]);
        assert_eq!(faults[0].at, Duration::from_secs(9));
        assert_eq!(faults[0].hold, Duration::from_secs(3));
        assert_eq!(faults[1].hold, Duration::from_secs(3));
        for pair in faults.windows(2) {
            // Each fault ends (hold, plus a few seconds of restart and settling) well before
            // the next begins.
            assert!(pair[0].at + pair[0].hold + Duration::from_secs(5) < pair[1].at);
        }
        assert!(faults[3].at + Duration::from_secs(8) < Duration::from_secs(60));
    }

    #[test]
    fn ten_minutes_repeat_the_round_four_times() {
        let faults = plan(Duration::from_secs(600));
        assert_eq!(faults.len(), 16);
        assert!(faults.iter().all(|f| f.hold <= Duration::from_secs(10)));
        assert!(faults.is_sorted_by_key(|f| f.at));
        assert!(faults.last().unwrap().at < Duration::from_secs(600));
    }
}
