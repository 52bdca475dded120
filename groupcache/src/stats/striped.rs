//! [`StripedCounter`]: a counter bumped on every cache hit, without the cores fighting over it.
//!
//! A plain `AtomicU64` bumped by every `get` is one cache line written by every core: with
//! callers on several cores, each bump waits for the line to move, which costs more than the
//! cache lookup itself. Here each thread bumps its own stripe (one cache line each) and a read
//! adds the stripes up.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter; threads beyond this share stripes (still correct, only slower).
const STRIPES: usize = 8;

/// One stripe on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe(AtomicU64);

/// A relaxed counter split into per-thread stripes.
#[derive(Debug, Default)]
pub(crate) struct StripedCounter {
    stripes: [Stripe; STRIPES],
}

/// Hands out stripe indices to threads in turn.
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe, assigned on first use.
    static MY_STRIPE: usize = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
}

impl StripedCounter {
    #[inline]
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    #[inline]
    pub(crate) fn add(&self, n: u64) {
        let i = MY_STRIPE.with(|i| *i);
        self.stripes[i].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The sum of the stripes: exact once bumps have stopped, a moment's snapshot otherwise.
    pub(crate) fn read(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_from_many_threads_all_count() {
        let counter = StripedCounter::default();
        std::thread::scope(|scope| {
            for _ in 0..(STRIPES + 3) {
                scope.spawn(|| (0..1_000).for_each(|_| counter.bump()));
            }
        });
        assert_eq!(counter.read(), (STRIPES as u64 + 3) * 1_000);
    }
}
