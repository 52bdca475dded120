//! [`Node`]: what every group of one peer set reads: who this peer is, the ring, the settings.

use std::sync::Arc;

use crate::builder::Config;
use crate::invalidation::Invalidations;
use crate::routing::{Route, Routing};
use crate::stats::PeerSetCounters;
use crate::telemetry::MetricNames;
use crate::trace::TraceKeys;
use crate::{Error, ErrorKind, GroupcachePeer};

/// The state a peer set shares with its groups. Immutable but for the ring, which
/// [`Routing`] swaps atomically.
#[derive(Debug)]
pub(crate) struct Node {
    routing: Routing,
    config: Config,
    trace_keys: TraceKeys,
    /// Where metrics go (feature `metrics`), if exported.
    metrics: Option<Arc<MetricNames>>,
    invalidations: Invalidations,
}

impl Node {
    pub(crate) fn new(
        routing: Routing,
        config: Config,
        trace_keys: TraceKeys,
        metrics: Option<Arc<MetricNames>>,
        counters: &Arc<PeerSetCounters>,
    ) -> Self {
        let invalidations = Invalidations::new(
            routing.me().clone(),
            // A peer's write request must be answered within its peer timeout: room is left
            // for applying the write and the answer's trip.
            config.peer_timeout.mul_f64(0.75),
            config.max_write_size() / 2,
            Arc::clone(counters),
        );
        Node {
            routing,
            config,
            trace_keys,
            metrics,
            invalidations,
        }
    }

    /// This peer's invalidations as an owner.
    pub(crate) fn invalidations(&self) -> &Invalidations {
        &self.invalidations
    }

    pub(crate) fn me(&self) -> &GroupcachePeer {
        self.routing.me()
    }

    pub(crate) fn routing(&self) -> &Routing {
        &self.routing
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn trace_keys(&self) -> &TraceKeys {
        &self.trace_keys
    }

    pub(crate) fn metrics(&self) -> Option<&Arc<MetricNames>> {
        self.metrics.as_ref()
    }

    /// Where the value of `key` comes from: here, or the owner.
    #[inline]
    pub(crate) fn route(&self, key: &str) -> Route {
        self.routing.route(key)
    }

    /// Whether this peer owns `key` (or the ring is empty).
    #[inline]
    pub(crate) fn owns(&self, key: &str) -> bool {
        self.routing.owns(key)
    }

    /// Refuses a key longer than the maximum key length, naming the limit.
    pub(crate) fn check_key(&self, key: &str) -> Result<(), Error> {
        if key.len() > self.config.max_key_len {
            return Err(Error::new(
                ErrorKind::KeyTooLong,
                format!(
                    "{} bytes exceeds the maximum key length of {} bytes \
                     (GroupcacheBuilder::max_key_len)",
                    key.len(),
                    self.config.max_key_len
                ),
            )
            .with_key(key));
        }
        Ok(())
    }
}
