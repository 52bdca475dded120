//! [`StripedCounter`]: a counter bumped on every cache hit, without the cores fighting over it
//! and without a locked instruction.
//!
//! A plain `AtomicU64` bumped by every `get` is one cache line written by every core: with
//! callers on several cores, each bump waits for the line to move, which costs more than the
//! cache lookup itself. And even on one core, `fetch_add` is a locked read-modify-write (about
//! 20 cycles on x86), as much as the rest of a hit's bookkeeping.
//!
//! So each counter has [`OWNED`] stripes that threads own, one cache line each, plus one
//! shared stripe. A thread claims a free stripe index on its first bump (the same index in
//! every counter) and gives it back when it exits. Only the owner writes its stripe, so a bump
//! there is a relaxed load and a relaxed store: no locked instruction, and no lost update,
//! since nobody else writes it. Threads beyond [`OWNED`] (a thread pool larger than that)
//! `fetch_add` on the shared stripe: still correct, only slower. A read adds every stripe up.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Stripes that threads own; the one after them is shared. At most 32 (the bits of [`TAKEN`]).
const OWNED: usize = 16;
/// The index of the shared stripe.
const SHARED: usize = OWNED;
/// [`MINE`] before this thread's first bump.
const UNCLAIMED: u8 = u8::MAX;

/// One stripe on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe(AtomicU64);

/// A relaxed counter split into per-thread stripes.
#[derive(Debug, Default)]
pub(crate) struct StripedCounter {
    stripes: [Stripe; OWNED + 1],
}

/// Bit `i` set: some live thread owns stripe `i` (of every counter).
///
/// Handing a stripe over is what makes the plain load-and-store bump safe across owners: the
/// old owner's last store happens before its `fetch_and` (release) that frees the bit, which
/// happens before the new owner's claiming `compare_exchange` (acquire) reads it; so the new
/// owner's first load sees every earlier bump.
static TAKEN: AtomicU32 = AtomicU32::new(0);

/// The stripe a thread owns, if it got one, given back to `taken` when the thread exits.
struct Owner {
    stripe: Option<usize>,
    /// [`TAKEN`], except in tests of the hand-over itself.
    taken: &'static AtomicU32,
}

impl Owner {
    /// Claims the lowest stripe free in `taken`, if any.
    fn claim(taken: &'static AtomicU32) -> Self {
        let mut now = taken.load(Ordering::Relaxed);
        let stripe = loop {
            let free = (!now).trailing_zeros() as usize;
            if free >= OWNED {
                break None;
            }
            match taken.compare_exchange_weak(
                now,
                now | (1 << free),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break Some(free),
                Err(seen) => now = seen,
            }
        };
        Owner { stripe, taken }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(i) = self.stripe {
            self.taken.fetch_and(!(1 << i), Ordering::Release);
        }
    }
}

/// Gives this thread's stripe back when the thread exits, after pointing [`MINE`] at the
/// shared stripe (a bump from a later thread-local destructor must not write a stripe that
/// another thread may own by then).
struct Guard(Owner);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = MINE.try_with(|mine| mine.set(SHARED as u8));
        // Then `self.0` drops, which frees the stripe.
    }
}

thread_local! {
    /// The stripe this thread bumps: one it owns (below [`OWNED`]), [`SHARED`], or
    /// [`UNCLAIMED`]. A `const` cell without a destructor, so reading it on every bump is
    /// one thread-local load; the claim and its destructor live in [`GUARD`].
    static MINE: Cell<u8> = const { Cell::new(UNCLAIMED) };
    /// This thread's claim, made on its first bump, given back when the thread exits.
    static GUARD: Guard = Guard(Owner::claim(&TAKEN));
}

impl StripedCounter {
    #[inline]
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    #[inline]
    pub(crate) fn add(&self, n: u64) {
        let mut i = usize::from(MINE.with(Cell::get));
        if i == usize::from(UNCLAIMED) {
            i = claim();
        }
        if i < OWNED {
            // Only this thread writes stripe `i`: a load and a store cannot lose a bump.
            let stripe = &self.stripes[i].0;
            stripe.store(stripe.load(Ordering::Relaxed) + n, Ordering::Relaxed);
        } else {
            self.stripes[SHARED].0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The sum of the stripes: exact once bumps have stopped, a moment's snapshot otherwise.
    pub(crate) fn read(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// This thread's first bump: claims a stripe (or settles for the shared one) and remembers it.
#[cold]
#[inline(never)]
fn claim() -> usize {
    // `try_with` fails only while this thread's thread-locals are being destroyed.
    let i = GUARD
        .try_with(|guard| guard.0.stripe)
        .ok()
        .flatten()
        .unwrap_or(SHARED);
    let _ = MINE.try_with(|mine| mine.set(i as u8));
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_from_more_threads_than_stripes_all_count() {
        let counter = StripedCounter::default();
        let threads = 3 * OWNED;
        // All alive at once, so that some find no free stripe and share.
        let barrier = std::sync::Barrier::new(threads);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    barrier.wait();
                    (0..1_000).for_each(|_| counter.bump());
                    barrier.wait();
                });
            }
        });
        assert_eq!(counter.read(), threads as u64 * 1_000);
    }

    #[test]
    fn stripes_are_handed_out_once_and_taken_back() {
        static TAKEN_HERE: AtomicU32 = AtomicU32::new(0);
        let owners: Vec<Owner> = (0..OWNED).map(|_| Owner::claim(&TAKEN_HERE)).collect();
        let mut claimed: Vec<usize> = owners.iter().map(|o| o.stripe.unwrap()).collect();
        claimed.sort_unstable();
        assert_eq!(claimed, (0..OWNED).collect::<Vec<_>>(), "each stripe once");
        assert_eq!(Owner::claim(&TAKEN_HERE).stripe, None, "none left: share");
        drop(owners);
        assert_eq!(TAKEN_HERE.load(Ordering::Relaxed), 0, "all given back");
        assert_eq!(
            Owner::claim(&TAKEN_HERE).stripe,
            Some(0),
            "and claimed again"
        );
    }

    #[test]
    fn a_thread_that_exits_gives_its_stripe_back_and_its_counts_stay() {
        static TAKEN_HERE: AtomicU32 = AtomicU32::new(0);
        thread_local! {
            static MINE_HERE: Owner = Owner::claim(&TAKEN_HERE);
        }
        let claimed = std::thread::spawn(|| MINE_HERE.with(|owner| owner.stripe))
            .join()
            .unwrap();
        assert_eq!(claimed, Some(0));
        assert_eq!(TAKEN_HERE.load(Ordering::Acquire), 0, "given back at exit");

        // The real counter: bumps of exited threads stay counted, whoever owns their stripe
        // next (or shares).
        let counter = StripedCounter::default();
        for round in 1..=3 * OWNED as u64 {
            std::thread::scope(|scope| {
                scope.spawn(|| counter.add(round));
            });
        }
        let rounds = 3 * OWNED as u64;
        assert_eq!(counter.read(), rounds * (rounds + 1) / 2);
    }
}
