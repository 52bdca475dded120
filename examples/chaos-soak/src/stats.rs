//! The numbers of the report: percentiles, the 1-second windows and the phases (steady time
//! and each fault's window). Pure functions over the clients' samples.

use crate::load::{FailedRequest, Failure, Sample};

/// The `p`-th percentile (0 < p <= 100) of `sorted` by nearest rank: the smallest value with
/// at least `p` % of the values at or below it. 0 for no values.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One second of the run: requests started in it and their latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) requests: u64,
    pub(crate) failed: u64,
    pub(crate) p99_us: u32,
}

/// Requests per 1-second window, by the second they started in, for `seconds` seconds.
pub(crate) fn windows(samples: &[Sample], failed: &[FailedRequest], seconds: usize) -> Vec<Window> {
    let mut latencies: Vec<Vec<u32>> = vec![Vec::new(); seconds];
    for s in samples {
        if let Some(bucket) = latencies.get_mut((s.start_ms / 1000) as usize) {
            bucket.push(s.latency_us);
        }
    }
    let mut out: Vec<Window> = latencies
        .into_iter()
        .map(|mut l| {
            l.sort_unstable();
            Window {
                requests: l.len() as u64,
                failed: 0,
                p99_us: percentile(&l, 99.0),
            }
        })
        .collect();
    for f in failed {
        if let Some(w) = out.get_mut((f.start_ms / 1000) as usize) {
            w.failed += 1;
        }
    }
    out
}

/// A stretch of the run: steady time, or one fault's window.
#[derive(Debug, Clone)]
pub(crate) struct Span {
    pub(crate) label: String,
    /// A few characters for the plot (`kill n3`).
    pub(crate) short: String,
    /// `[start_ms, end_ms)` pieces (steady time is the gaps between the faults).
    pub(crate) pieces: Vec<(u32, u32)>,
    /// The node the fault was done to (its failures are counted apart).
    pub(crate) slot: Option<usize>,
    /// Which requests' latencies the span's percentiles are over.
    pub(crate) latencies: Latencies,
}

/// Which requests' latencies a span's percentiles are over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Latencies {
    /// Every request in flight at some time during the span: a fault's, so that a request
    /// that started just before it and waited through it counts for the fault.
    InFlight,
    /// Only requests that started and ended inside the span: steady time, so that no
    /// request a fault held up counts as steady.
    Within,
}

impl Span {
    fn contains(&self, ms: u32) -> bool {
        self.pieces.iter().any(|&(a, b)| ms >= a && ms < b)
    }

    /// Whether sample `s`'s latency counts in this span's percentiles.
    fn counts(&self, s: &Sample) -> bool {
        let end = s.start_ms.saturating_add(s.latency_us.div_ceil(1000));
        match self.latencies {
            Latencies::InFlight => self.pieces.iter().any(|&(a, b)| s.start_ms < b && end >= a),
            Latencies::Within => self.pieces.iter().any(|&(a, b)| s.start_ms >= a && end < b),
        }
    }

    fn seconds(&self) -> f64 {
        self.pieces
            .iter()
            .map(|&(a, b)| f64::from(b - a))
            .sum::<f64>()
            / 1000.0
    }
}

/// The steady span of a run of `end_ms`: everything outside `faults`.
pub(crate) fn steady(faults: &[Span], end_ms: u32) -> Span {
    let mut taken: Vec<(u32, u32)> = faults.iter().flat_map(|f| f.pieces.clone()).collect();
    taken.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for (a, b) in taken {
        if a > at {
            pieces.push((at, a.min(end_ms)));
        }
        at = at.max(b);
    }
    if at < end_ms {
        pieces.push((at, end_ms));
    }
    pieces.retain(|&(a, b)| b > a);
    Span {
        label: "steady".into(),
        short: "steady".into(),
        pieces,
        slot: None,
        latencies: Latencies::Within,
    }
}

/// What the run observed, for [`span_stats`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed<'a> {
    pub(crate) samples: &'a [Sample],
    pub(crate) failed: &'a [FailedRequest],
    /// When each file read happened (ms since the start).
    pub(crate) reads_ms: &'a [u32],
    /// The request timeout: a request to a node that started this long before a fault was
    /// done to it may still have been in flight then.
    pub(crate) lead_ms: u32,
}

impl Span {
    /// Whether failure `f` was a request to this fault's node in flight during the fault.
    fn hit_target(&self, f: &FailedRequest, lead_ms: u32) -> bool {
        self.slot == Some(f.slot)
            && self
                .pieces
                .iter()
                .any(|&(a, b)| f.start_ms >= a.saturating_sub(lead_ms) && f.start_ms < b)
    }
}

/// What happened to the requests of one span.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SpanStats {
    /// Requests that started in the span, and their rate.
    pub(crate) requests: u64,
    pub(crate) per_second: f64,
    /// The requests the percentiles are over (see [`Latencies`]).
    pub(crate) timed: u64,
    pub(crate) p50_us: u32,
    pub(crate) p99_us: u32,
    pub(crate) max_us: u32,
    /// Failed requests sent to the node the fault was done to, in flight when it happened.
    pub(crate) failed_at_faulted: u64,
    /// Failed requests sent to the other nodes: these are the cluster's failures.
    pub(crate) failed_elsewhere: Vec<(Failure, u64)>,
    /// File reads in the span, over all nodes.
    pub(crate) reads: u64,
}

/// The requests of `span`, by their start. A failed request to the node of one of `faults`,
/// in flight during it, counts as that fault's "at target", and nowhere else.
pub(crate) fn span_stats(span: &Span, seen: &Observed<'_>, faults: &[Span]) -> SpanStats {
    let mut latencies: Vec<u32> = seen
        .samples
        .iter()
        .filter(|s| span.counts(s))
        .map(|s| s.latency_us)
        .collect();
    latencies.sort_unstable();
    let started = seen
        .samples
        .iter()
        .filter(|s| span.contains(s.start_ms))
        .count() as u64;
    let mut stats = SpanStats {
        requests: started,
        per_second: started as f64 / span.seconds().max(0.001),
        timed: latencies.len() as u64,
        p50_us: percentile(&latencies, 50.0),
        p99_us: percentile(&latencies, 99.0),
        max_us: latencies.last().copied().unwrap_or(0),
        reads: seen.reads_ms.iter().filter(|&&t| span.contains(t)).count() as u64,
        ..SpanStats::default()
    };
    let mut elsewhere = std::collections::BTreeMap::new();
    for f in seen.failed {
        if span.hit_target(f, seen.lead_ms) {
            stats.failed_at_faulted += 1;
        } else if span.contains(f.start_ms) && !faults.iter().any(|x| x.hit_target(f, seen.lead_ms))
        {
            *elsewhere.entry(f.failure).or_insert(0) += 1;
        }
    }
    stats.failed_elsewhere = elsewhere.into_iter().collect();
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 100.0), 100);
        assert_eq!(percentile(&values, 0.1), 1);
        // With fewer than 100 values, p99 is the largest.
        assert_eq!(percentile(&[3, 7, 9], 99.0), 9);
        assert_eq!(percentile(&[5], 99.0), 5);
        assert_eq!(percentile(&[], 99.0), 0);
        // One slow request in 1,000 does not move p99; eleven do.
        let mut mostly_fast = vec![1; 989];
        mostly_fast.extend([1000; 11]);
        assert_eq!(percentile(&mostly_fast, 99.0), 1000);
        assert_eq!(percentile(&mostly_fast[1..990], 99.0), 1);
    }

    fn sample(start_ms: u32, latency_us: u32) -> Sample {
        Sample {
            start_ms,
            latency_us,
        }
    }

    #[test]
    fn windows_count_requests_by_the_second_they_started_in() {
        let samples = [
            sample(0, 5),
            sample(999, 7),
            sample(1000, 9),
            sample(5000, 1),
        ];
        let failed = [FailedRequest {
            start_ms: 1500,
            slot: 0,
            failure: Failure::Timeout,
        }];
        let w = windows(&samples, &failed, 3);
        assert_eq!(w.len(), 3);
        assert_eq!((w[0].requests, w[0].p99_us), (2, 7));
        assert_eq!((w[1].requests, w[1].failed, w[1].p99_us), (1, 1, 9));
        assert_eq!(w[2], Window::default());
    }

    #[test]
    fn steady_time_is_what_the_faults_leave_and_failures_are_split() {
        let fault = Span {
            label: "kill".into(),
            short: "kill".into(),
            pieces: vec![(1000, 2000)],
            slot: Some(2),
            latencies: Latencies::InFlight,
        };
        let steady = steady(std::slice::from_ref(&fault), 4000);
        assert_eq!(steady.pieces, [(0, 1000), (2000, 4000)]);
        // The second request starts in steady time and waits through the fault.
        let samples = [
            sample(500, 10),
            sample(900, 300_000),
            sample(1500, 2000),
            sample(2500, 20),
        ];
        let failed = [
            FailedRequest {
                start_ms: 1200,
                slot: 2,
                failure: Failure::Connection,
            },
            FailedRequest {
                start_ms: 1300,
                slot: 1,
                failure: Failure::Status(502),
            },
            // In flight to the fault's node when the fault began: the fault's, not steady's.
            FailedRequest {
                start_ms: 900,
                slot: 2,
                failure: Failure::Connection,
            },
            FailedRequest {
                start_ms: 100,
                slot: 2,
                failure: Failure::Timeout,
            },
        ];
        let seen = Observed {
            samples: &samples,
            failed: &failed,
            reads_ms: &[10, 1100, 1999, 2000],
            lead_ms: 500,
        };
        let faults = std::slice::from_ref(&fault);
        let during = span_stats(&fault, &seen, faults);
        assert_eq!((during.requests, during.timed, during.reads), (1, 2, 2));
        assert_eq!(during.p99_us, 300_000);
        assert_eq!(during.failed_at_faulted, 2);
        assert_eq!(during.failed_elsewhere, [(Failure::Status(502), 1)]);
        let calm = span_stats(&steady, &seen, faults);
        assert_eq!((calm.requests, calm.timed, calm.reads), (3, 2, 2));
        assert_eq!(calm.max_us, 20);
        assert_eq!(calm.failed_elsewhere, [(Failure::Timeout, 1)]);
        assert!((calm.per_second - 1.0).abs() < 1e-9);
    }
}
