//! [`KeyRates`]: how often peers ask this owner for each key, estimated in a few kilobytes, so
//! that the owner can mark the keys worth a hot copy in its answers.
//!
//! A count-min sketch: [`DEPTH`] rows of [`WIDTH`] one-byte counters, each row indexed by its
//! own bits of one XXH3 hash of the key. A request raises only the key's smallest counters
//! (conservative update), and the estimate is the smallest of its counters: collisions can only
//! make a key look more often asked for than it is, never less. Every [`HALVE_EVERY`] requests
//! all counters are halved, so the estimate follows the recent rate and a key asked for in a
//! burst an hour ago is not hot now. The cost per request: one hash, four loads, at most four
//! `fetch_max`es and one shared `fetch_add`; nothing on a local hit.

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use xxhash_rust::xxh3::xxh3_64;

/// Rows of the sketch, each indexed by a different 16 bits of the key's hash.
const DEPTH: usize = 4;
/// Counters per row (a power of two, at most 2^16): 32 KiB in all, per group.
const WIDTH: usize = 1 << 13;
/// Requests between two halvings: with a threshold of `t`, a key is hot while it takes at least
/// about `t` of this many requests to the owner.
pub(crate) const HALVE_EVERY: u32 = 10 * WIDTH as u32;

/// The owner's estimate of each key's recent request rate from peers.
pub(crate) struct KeyRates {
    counters: Box<[AtomicU8]>,
    /// Requests counted since the last halving.
    since_halving: AtomicU32,
    /// The estimate at which a key is hot (at least 1).
    threshold: u8,
}

impl std::fmt::Debug for KeyRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRates")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl KeyRates {
    /// A sketch marking keys asked for `threshold` times (clamped to 1..=255) within about
    /// [`HALVE_EVERY`] requests.
    pub(crate) fn new(threshold: u32) -> Self {
        KeyRates {
            counters: (0..DEPTH * WIDTH).map(|_| AtomicU8::new(0)).collect(),
            since_halving: AtomicU32::new(0),
            threshold: threshold.clamp(1, u32::from(u8::MAX)) as u8,
        }
    }

    /// Counts one request for `key`; whether the key is hot, this request included.
    pub(crate) fn observe(&self, key: &str) -> bool {
        let slots = slots(key);
        let estimate = self.least(&slots).saturating_add(1);
        for &slot in &slots {
            // Raises only the counters at the minimum (the others already count more than
            // this key's requests); a racing request may be lost, which an estimate can bear.
            self.counters[slot].fetch_max(estimate, Ordering::Relaxed);
        }
        let counted = self.since_halving.fetch_add(1, Ordering::Relaxed) + 1;
        if counted >= HALVE_EVERY
            && self
                .since_halving
                .compare_exchange(counted, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.halve();
        }
        estimate >= self.threshold
    }

    /// The estimate for `key`, without counting a request.
    #[cfg(test)]
    fn estimate(&self, key: &str) -> u8 {
        self.least(&slots(key))
    }

    /// The smallest of a key's counters: its estimate.
    fn least(&self, slots: &[usize; DEPTH]) -> u8 {
        slots
            .iter()
            .map(|&slot| self.counters[slot].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Halves every counter: the rate of the last window counts half in the next. Racing
    /// requests may be halved or not; either is within the estimate's error.
    fn halve(&self) {
        for counter in &*self.counters {
            let value = counter.load(Ordering::Relaxed);
            if value > 0 {
                counter.store(value >> 1, Ordering::Relaxed);
            }
        }
    }
}

/// The key's counter in each row.
fn slots(key: &str) -> [usize; DEPTH] {
    let hash = xxh3_64(key.as_bytes());
    std::array::from_fn(|row| row * WIDTH + ((hash >> (16 * row)) as usize & (WIDTH - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_hot_from_its_threshold_th_request_on() {
        let rates = KeyRates::new(3);
        assert!(!rates.observe("a"));
        assert!(!rates.observe("a"));
        assert!(rates.observe("a"));
        assert!(rates.observe("a"));
        assert!(!rates.observe("b"), "another key has its own count");
    }

    #[test]
    fn estimates_never_undercount_and_rarely_overcount() {
        let rates = KeyRates::new(255);
        // 2,000 keys asked for once, 20 keys asked for 50 times each, interleaved.
        for round in 0..50 {
            for hot in 0..20 {
                rates.observe(&format!("hot-{hot}"));
            }
            for cold in 0..40 {
                rates.observe(&format!("cold-{}", round * 40 + cold));
            }
        }
        for hot in 0..20 {
            assert!(rates.estimate(&format!("hot-{hot}")) >= 50);
        }
        let overcounted = (0..2000)
            .filter(|cold| rates.estimate(&format!("cold-{cold}")) > 1)
            .count();
        assert!(
            overcounted < 20,
            "{overcounted} of 2000 cold keys overcounted"
        );
    }

    #[test]
    fn counts_halve_so_that_an_old_burst_cools_down() {
        let rates = KeyRates::new(8);
        for _ in 0..10 {
            rates.observe("burst");
        }
        assert!(rates.observe("burst"));
        let before = rates.estimate("burst");
        // Other keys' requests, until two halvings have happened.
        for i in 0..2 * HALVE_EVERY {
            rates.observe(&format!("other-{}", i % 1000));
        }
        let after = rates.estimate("burst");
        assert!(after <= before / 4, "{before} -> {after}");
        assert!(!rates.observe("burst"), "no longer hot: {after}");
    }

    #[test]
    fn counters_saturate_instead_of_wrapping() {
        let rates = KeyRates::new(255);
        for _ in 0..300 {
            rates.observe("k");
        }
        assert_eq!(rates.estimate("k"), u8::MAX);
        assert!(rates.observe("k"));
    }
}
