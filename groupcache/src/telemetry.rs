//! Export through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`): latency
//! histograms of `get` by outcome and of peer requests by peer, and cache-size gauges. The
//! counters themselves are exported by [`Counters`](crate::stats::Counters).
//!
//! Names (with the default prefix `groupcache`; see `GroupcacheBuilder::metrics_prefix`):
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `<prefix>_get_duration_seconds` | histogram | `group`, `outcome` |
//! | `<prefix>_peer_request_duration_seconds` | histogram | `peer`, `result` (`ok`, `answer`, `transport`) |
//! | `<prefix>_cache_entries`, `<prefix>_cache_bytes` | gauge | `group`, `tier` (`main`, `hot`) |
//! | `<prefix>_cache_evictions_total`, `<prefix>_cache_expirations_total`, `<prefix>_cache_lapsed_total` | counter | `group`, `tier` |
//! | `<prefix>_<counter>_total` | counter | `group`: the [`Stats`](crate::stats::Stats) counters |
//! | `<prefix>_<counter>_total` | counter | none: the [`PeerSetStats`](crate::stats::PeerSetStats) counters |
//!
//! Every metric also carries the labels given to `GroupcacheBuilder::metrics_labels`.

use std::time::Duration;

use crate::GroupcachePeer;
use crate::outcome::Outcome;
use crate::stats::TierStats;

/// How a peer request ended, for its latency histogram.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PeerResult {
    /// A value.
    Ok,
    /// The owner answered with an error (a loader error, not found, a refusal).
    Answer,
    /// The owner could not be reached.
    Transport,
}

/// Where a peer set's metrics go: the prefix and labels every metric name gets.
#[derive(Debug)]
pub(crate) struct MetricNames {
    #[cfg(feature = "metrics")]
    prefix: String,
    #[cfg(feature = "metrics")]
    labels: Vec<metrics::Label>,
}

impl MetricNames {
    #[cfg(feature = "metrics")]
    pub(crate) fn new(prefix: String, labels: Vec<metrics::Label>) -> Self {
        MetricNames { prefix, labels }
    }

    #[cfg(feature = "metrics")]
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The labels of a group's metrics: the peer set's and `group`.
    #[cfg(feature = "metrics")]
    pub(crate) fn group_labels(&self, group: &str) -> Vec<metrics::Label> {
        let mut labels = self.labels.clone();
        labels.push(metrics::Label::new("group", group.to_owned()));
        labels
    }

    /// The metrics of group `name`, registered now.
    pub(crate) fn group(&self, name: &str) -> Telemetry {
        #[cfg(feature = "metrics")]
        {
            Telemetry::new(&self.prefix, &self.group_labels(name))
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = name;
            Telemetry {}
        }
    }

    /// The request latency histograms of `peer`.
    pub(crate) fn peer(&self, peer: &GroupcachePeer) -> PeerTelemetry {
        #[cfg(feature = "metrics")]
        {
            let name = format!("{}_peer_request_duration_seconds", self.prefix);
            let histogram = |result: &'static str| {
                let mut labels = self.labels.clone();
                labels.push(metrics::Label::new("peer", peer.to_string()));
                labels.push(metrics::Label::new("result", result));
                metrics::histogram!(name.clone(), labels)
            };
            PeerTelemetry {
                by_result: [histogram("ok"), histogram("answer"), histogram("transport")],
            }
        }
        #[cfg(not(feature = "metrics"))]
        {
            let _ = peer;
            PeerTelemetry {}
        }
    }
}

/// One group's exported metrics.
#[derive(Debug)]
pub(crate) struct Telemetry {
    #[cfg(feature = "metrics")]
    get_seconds: Vec<metrics::Histogram>,
    #[cfg(feature = "metrics")]
    tiers: [TierMetrics; 2],
}

#[cfg(feature = "metrics")]
#[derive(Debug)]
struct TierMetrics {
    entries: metrics::Gauge,
    bytes: metrics::Gauge,
    evictions: metrics::Counter,
    expirations: metrics::Counter,
    lapsed: metrics::Counter,
}

/// One peer's request latency histograms.
#[derive(Debug)]
pub(crate) struct PeerTelemetry {
    #[cfg(feature = "metrics")]
    by_result: [metrics::Histogram; 3],
}

impl Telemetry {
    /// Registers every metric under `prefix`, with `labels` on each, with the recorder
    /// installed now.
    #[cfg(feature = "metrics")]
    pub(crate) fn new(prefix: &str, labels: &[metrics::Label]) -> Self {
        let with = |key: &'static str, value: &'static str| {
            let mut all = labels.to_vec();
            all.push(metrics::Label::new(key, value));
            all
        };
        let tier = |name: &'static str| TierMetrics {
            entries: metrics::gauge!(format!("{prefix}_cache_entries"), with("tier", name)),
            bytes: metrics::gauge!(format!("{prefix}_cache_bytes"), with("tier", name)),
            evictions: metrics::counter!(
                format!("{prefix}_cache_evictions_total"),
                with("tier", name)
            ),
            expirations: metrics::counter!(
                format!("{prefix}_cache_expirations_total"),
                with("tier", name)
            ),
            lapsed: metrics::counter!(format!("{prefix}_cache_lapsed_total"), with("tier", name)),
        };
        Telemetry {
            get_seconds: Outcome::ALL
                .iter()
                .map(|outcome| {
                    metrics::histogram!(
                        format!("{prefix}_get_duration_seconds"),
                        with("outcome", outcome.as_str())
                    )
                })
                .collect(),
            tiers: [tier("main"), tier("hot")],
        }
    }

    /// Records how long a `get` took and how it was answered.
    #[inline]
    pub(crate) fn observe_get(&self, outcome: Outcome, elapsed: Duration) {
        #[cfg(feature = "metrics")]
        self.get_seconds[outcome.index()].record(elapsed.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = (outcome, elapsed);
    }

    /// Publishes the sizes of the main and hot caches.
    pub(crate) fn publish_tiers(&self, main: &TierStats, hot: &TierStats) {
        #[cfg(feature = "metrics")]
        for (metrics, stats) in self.tiers.iter().zip([main, hot]) {
            metrics.entries.set(stats.entries as f64);
            metrics.bytes.set(stats.weighted_bytes as f64);
            metrics.evictions.absolute(stats.evictions);
            metrics.expirations.absolute(stats.expirations);
            metrics.lapsed.absolute(stats.lapsed);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (main, hot);
    }
}

impl PeerTelemetry {
    /// Records how long a request to this peer took and how it ended.
    pub(crate) fn observe(&self, result: PeerResult, elapsed: Duration) {
        #[cfg(feature = "metrics")]
        self.by_result[result as usize].record(elapsed.as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = (result, elapsed);
    }
}
