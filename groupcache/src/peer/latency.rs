//! How long one peer takes to answer, recently: the percentile a hedged get waits for before
//! it asks the key's substitute too.
//!
//! A histogram of answer times in buckets of powers of two (1 µs to over a minute), relaxed
//! atomic counts, halved every [`DECAY_AFTER`] samples so that it follows the peer's recent
//! behaviour. A percentile is the upper edge of its bucket: at most twice the true value,
//! which errs towards hedging later rather than sooner. Kept only when hedging is on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets `0..BUCKETS`: bucket `b` holds answers of `2^b` to `2^(b+1)` µs.
const BUCKETS: usize = 27;
/// Fewer samples than this say nothing: no hedge yet.
const MIN_SAMPLES: u64 = 32;
/// Every this many samples, every count is halved.
const DECAY_AFTER: u64 = 4096;

#[derive(Debug, Default)]
pub(crate) struct LatencyWindow {
    buckets: [AtomicU64; BUCKETS],
    total: AtomicU64,
}

impl LatencyWindow {
    /// Records one answer's time.
    pub(crate) fn record(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let bucket = (micros.ilog2() as usize).min(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        if self.total.fetch_add(1, Ordering::Relaxed) + 1 >= DECAY_AFTER {
            // Whoever crosses the line halves the counts; a race costs a little precision.
            self.total.store(0, Ordering::Relaxed);
            let mut kept = 0;
            for count in &self.buckets {
                let halved = count.load(Ordering::Relaxed) / 2;
                count.store(halved, Ordering::Relaxed);
                kept += halved;
            }
            self.total.fetch_add(kept, Ordering::Relaxed);
        }
    }

    /// The `percentile` (0 to 100) of the recent answer times, rounded up to its bucket's
    /// upper edge; `None` until there are enough samples.
    pub(crate) fn percentile(&self, percentile: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total < MIN_SAMPLES {
            return None;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "a rank within a total of at most a few thousand samples"
        )]
        let rank = ((percentile / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(1 << (bucket + 1)));
            }
        }
        Some(Duration::from_micros(1 << BUCKETS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_percentile_is_the_upper_edge_of_its_bucket() {
        let window = LatencyWindow::default();
        assert_eq!(window.percentile(95.0), None, "no samples yet");
        for _ in 0..90 {
            window.record(Duration::from_micros(300)); // bucket 256..512 µs
        }
        for _ in 0..10 {
            window.record(Duration::from_millis(20)); // bucket 16.4..32.8 ms
        }
        assert_eq!(window.percentile(50.0), Some(Duration::from_micros(512)));
        assert_eq!(window.percentile(90.0), Some(Duration::from_micros(512)));
        assert_eq!(window.percentile(95.0), Some(Duration::from_micros(32_768)));
        assert_eq!(
            window.percentile(100.0),
            Some(Duration::from_micros(32_768))
        );
    }

    #[test]
    fn old_samples_fade() {
        let window = LatencyWindow::default();
        for _ in 0..DECAY_AFTER {
            window.record(Duration::from_millis(20));
        }
        // A peer that became fast: after a few halvings its old, slow answers no longer set the
        // median.
        for _ in 0..3 * DECAY_AFTER {
            window.record(Duration::from_micros(300));
        }
        assert_eq!(window.percentile(50.0), Some(Duration::from_micros(512)));
        assert!(window.total.load(Ordering::Relaxed) < DECAY_AFTER);
    }

    #[test]
    fn extreme_answers_land_in_the_end_buckets() {
        let window = LatencyWindow::default();
        for _ in 0..MIN_SAMPLES {
            window.record(Duration::ZERO);
        }
        assert_eq!(window.percentile(99.0), Some(Duration::from_micros(2)));
        for _ in 0..10 * MIN_SAMPLES {
            window.record(Duration::from_secs(3600));
        }
        assert_eq!(
            window.percentile(99.0),
            Some(Duration::from_micros(1 << BUCKETS))
        );
    }
}
