//! The bound on file reads (loads) per key, and the check against it.
//!
//! With stable membership each key is read once in the whole cluster (DESIGN rule 2; the
//! dataset fits in every node's cache, so nothing is evicted). A fault may cost one more read
//! of a key for each time it takes the key's owner away or moves the key to a new owner:
//!
//! - **kill -9** of the owner: +1 while it is down (someone else reads the key), +1 when it is
//!   back, empty, for keys first requested before the other nodes' breakers for it closed
//!   (see [`breakers_closed_ms`]);
//! - **SIGSTOP** of the owner: while it is stopped, for keys first requested before the
//!   other nodes' breakers for it opened (the stop plus a peer timeout), one read per other
//!   member: each node whose request timed out before its breaker opened has no time left in
//!   its deadline to ask the substitute (rule 10) and reads the key itself, keeping nothing,
//!   and the substitute reads it once for the later requests; +1 when it resumes, only for keys first requested during the stop or before the
//!   breakers closed (it never had them; it kept the others);
//! - **a node joins**: +1 for the keys it now owns, first requested before every node took up
//!   the new membership;
//! - **a node leaves**: +1 for the keys it owned, first requested before it was taken out.
//!
//! So `bound(k) = 1 + the number of such events for k`, counted only for keys requested at
//! all, and each key's reads must stay within it (a key never requested must never be read).
//! This is what issue 13's breaker and substitute owner promise (a dead owner costs one
//! extra load per key); the warm handoff would take the joins' and leaves' reloads away.

/// How long after a node answers again the other nodes may still route its keys to its
/// substitute: a breaker that has just opened (or re-opened after a failed probe) waits one
/// cool-down, at most the library's `PEER_COOL_DOWN` plus its 20% jitter, and the first
/// lookup after that sends the probe that closes it; 1 s more for that lookup and the probe.
/// A key first requested meanwhile is read by the substitute, then again by its owner.
const BREAKER_CLOSE_MS: u32 =
    (groupcache::defaults::PEER_COOL_DOWN.as_millis() as u32) * 6 / 5 + 1_000;

/// When every other node's breaker for a node that answered again at `back_ms` (ms since the
/// start) has closed, at the latest.
pub(crate) fn breakers_closed_ms(back_ms: u32) -> u32 {
    back_ms.saturating_add(BREAKER_CLOSE_MS)
}

/// One change of ownership, as it affects each key.
#[derive(Debug, Clone)]
pub(crate) struct OwnershipEvent {
    /// What happened, for the report.
    pub(crate) what: String,
    /// Keys first requested at or after this time (ms since the start) are affected; `0` for
    /// every key requested before `until_ms`.
    pub(crate) from_ms: u32,
    /// Keys first requested before this time are affected.
    pub(crate) until_ms: u32,
    /// Per key: whether its owner is the node concerned.
    pub(crate) affected: Vec<bool>,
    /// Reads more it allows each key it concerns: 1, but for a stall (see the module docs).
    pub(crate) reads: u32,
}

impl OwnershipEvent {
    /// Whether this event allows key `key`, first requested at `first_ms`, one more read.
    fn allows(&self, key: usize, first_ms: u32) -> bool {
        self.affected[key] && first_ms >= self.from_ms && first_ms < self.until_ms
    }
}

/// The bound per key: 0 for keys never requested (`first_ms == u32::MAX`), else 1 plus the
/// reads the events allow it.
pub(crate) fn per_key(first_ms: &[u32], events: &[OwnershipEvent]) -> Vec<u32> {
    first_ms
        .iter()
        .enumerate()
        .map(|(key, &first)| {
            if first == u32::MAX {
                0
            } else {
                let extra: u32 = events
                    .iter()
                    .filter(|e| e.allows(key, first))
                    .map(|e| e.reads)
                    .sum();
                1 + extra
            }
        })
        .collect()
}

/// Reads against the bound, summed and per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) distinct_keys: u64,
    pub(crate) loads: u64,
    pub(crate) bound: u64,
    /// `(key, loads, bound)` of every key read more often than its bound allows.
    pub(crate) over: Vec<(usize, u32, u32)>,
}

/// Compares `loads` (reads per key, from the nodes' logs) with `bound`.
pub(crate) fn check(loads: &[u32], bound: &[u32]) -> Verdict {
    let over: Vec<(usize, u32, u32)> = loads
        .iter()
        .zip(bound)
        .enumerate()
        .filter(|(_, (l, b))| l > b)
        .map(|(k, (&l, &b))| (k, l, b))
        .collect();
    Verdict {
        distinct_keys: bound.iter().filter(|&&b| b > 0).count() as u64,
        loads: loads.iter().map(|&l| u64::from(l)).sum(),
        bound: bound.iter().map(|&b| u64::from(b)).sum(),
        over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(from_ms: u32, until_ms: u32, affected: &[bool]) -> OwnershipEvent {
        OwnershipEvent {
            what: "test".into(),
            from_ms,
            until_ms,
            affected: affected.to_vec(),
            reads: 1,
        }
    }

    #[test]
    fn each_event_allows_one_more_read_of_the_keys_it_concerns() {
        // Keys 0 and 1 requested before the kill at 100 ms, key 2 during the outage, key 3
        // after the restart settled at 200 ms, key 4 never.
        let first = [10, 50, 150, 250, u32::MAX];
        let owned = [true, false, true, true, true];
        let events = [event(0, 100, &owned), event(0, 200, &owned)];
        assert_eq!(per_key(&first, &events), [3, 1, 2, 1, 0]);
    }

    #[test]
    fn a_stall_returns_only_keys_first_requested_during_it() {
        let first = [10, 150, 250];
        let owned = [true, true, true];
        let events = [event(0, 100, &owned), event(100, 200, &owned)];
        assert_eq!(per_key(&first, &events), [2, 2, 1]);
    }

    #[test]
    fn the_breakers_close_within_one_jittered_cool_down_and_a_probe() {
        assert_eq!(breakers_closed_ms(10_000), 17_000);
        assert_eq!(breakers_closed_ms(u32::MAX), u32::MAX);
    }

    #[test]
    fn the_check_sums_and_names_the_keys_over_their_bound() {
        let verdict = check(&[1, 3, 0, 1], &[1, 2, 1, 0]);
        assert_eq!(verdict.distinct_keys, 3);
        assert_eq!((verdict.loads, verdict.bound), (5, 4));
        assert_eq!(verdict.over, [(1, 3, 2), (3, 1, 0)]);
        assert!(check(&[1, 2], &[1, 2]).over.is_empty());
    }
}
