//! How one figure is taken: a warm-up, then as many operations as fit in the time budget, by
//! one caller or by many at once, with each latency (or each batch's mean latency) recorded.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// How long each figure is measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) warmup: Duration,
    pub(crate) run: Duration,
}

/// What one measurement found.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
    /// Latency in nanoseconds: of each operation, or the mean of each batch (see `batch`).
    pub(crate) latency: Histogram<u64>,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// Set for a sample merged from rounds: the median of the rounds' rates.
    pub(crate) median_rate: Option<f64>,
}

impl Sample {
    /// The median rate over rounds if there were rounds, else operations over time.
    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.median_rate
            .unwrap_or_else(|| self.ops as f64 / self.elapsed.as_secs_f64())
    }

    /// This sample and `other` as one: counts and times added, latencies merged.
    pub(crate) fn merge(mut self, other: Sample) -> Sample {
        self.ops += other.ops;
        self.elapsed += other.elapsed;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency.add(&other.latency).expect("same bounds");
        self
    }

    pub(crate) fn p50_ns(&self) -> u64 {
        self.latency.value_at_quantile(0.50)
    }

    pub(crate) fn p99_ns(&self) -> u64 {
        self.latency.value_at_quantile(0.99)
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 2).expect("histogram bounds")
}

/// One measured operation. The future borrows the operation's state, so a call costs no
/// reference-count traffic of its own (that would weigh on a ~100 ns local hit).
pub(crate) trait Op: Send + Sync + 'static {
    /// Operation number `i` of caller `caller`.
    fn call(&self, caller: usize, i: u64) -> impl Future<Output = Result<(), String>> + Send + '_;
}

/// One caller's loop: `batch` operations per clock reading, until `deadline`.
async fn caller_loop<O: Op>(
    op: &O,
    caller: usize,
    batch: u64,
    deadline: Instant,
    into: &mut Sample,
) {
    let mut i = 0u64;
    loop {
        let started = Instant::now();
        if started >= deadline {
            break;
        }
        for _ in 0..batch {
            if let Err(e) = op.call(caller, i).await {
                into.errors += 1;
                into.first_error.get_or_insert(e);
            }
            i += 1;
        }
        let per_op = started.elapsed().as_nanos() as u64 / batch;
        into.latency.saturating_record(per_op.max(1));
        into.ops += batch;
    }
}

/// One caller, one operation at a time. `batch > 1` times groups of operations instead of
/// each one, so that reading the clock does not dominate a ~100 ns operation.
///
/// The caller is a task on the runtime's workers, as a request handler calling the cache
/// would be, not the thread blocked in `block_on`.
pub(crate) async fn sequential<O: Op>(budget: Budget, batch: u64, op: &Arc<O>) -> Sample {
    let op = Arc::clone(op);
    let (mut discard, mut sample) = (empty(), empty());
    let task = tokio::spawn(async move {
        caller_loop(&*op, 0, batch, Instant::now() + budget.warmup, &mut discard).await;
        let started = Instant::now();
        caller_loop(&*op, 0, batch, started + budget.run, &mut sample).await;
        sample.elapsed = started.elapsed();
        sample
    });
    task.await.expect("the measuring task panicked")
}

/// `callers` tasks at once, each one operation at a time: `callers` operations in flight.
pub(crate) async fn concurrent<O: Op>(
    budget: Budget,
    callers: usize,
    batch: u64,
    op: &Arc<O>,
) -> Sample {
    run_tasks(op, callers, batch, budget.warmup).await;
    let (parts, elapsed) = run_tasks(op, callers, batch, budget.run).await;
    let mut sample = parts.into_iter().fold(empty(), Sample::merge);
    sample.elapsed = elapsed;
    sample
}

/// The callers' samples, and the time from the start until the last caller finished.
async fn run_tasks<O: Op>(
    op: &Arc<O>,
    callers: usize,
    batch: u64,
    run: Duration,
) -> (Vec<Sample>, Duration) {
    // Histograms are allocated before the clock starts: zeroing 64 of them is not free.
    let parts: Vec<Sample> = (0..callers).map(|_| empty()).collect();
    let started = Instant::now();
    let deadline = started + run;
    let tasks: Vec<_> = parts
        .into_iter()
        .enumerate()
        .map(|(caller, mut part)| {
            let op = Arc::clone(op);
            tokio::spawn(async move {
                caller_loop(&*op, caller, batch, deadline, &mut part).await;
                part
            })
        })
        .collect();
    let mut parts = Vec::with_capacity(callers);
    for task in tasks {
        parts.push(task.await.expect("a measuring task panicked"));
    }
    (parts, started.elapsed())
}

fn empty() -> Sample {
    Sample {
        ops: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
        errors: 0,
        first_error: None,
        median_rate: None,
    }
}

/// A sample built from latency buckets (`(nanoseconds, count)`) recorded elsewhere (by the Go
/// contender), one operation per count.
pub(crate) fn from_buckets(buckets: &[(u64, u64)], elapsed: Duration, errors: u64) -> Sample {
    let mut sample = empty();
    for &(ns, count) in buckets {
        sample.latency.saturating_record_n(ns.max(1), count);
        sample.ops += count;
    }
    sample.elapsed = elapsed;
    sample.errors = errors;
    sample
}

/// A sample built from latencies recorded elsewhere (the stampede, the Zipf mix).
pub(crate) fn from_latencies(latencies_ns: &[u64], elapsed: Duration, errors: u64) -> Sample {
    let mut sample = empty();
    for &ns in latencies_ns {
        sample.latency.saturating_record(ns.max(1));
    }
    sample.ops = latencies_ns.len() as u64;
    sample.elapsed = elapsed;
    sample.errors = errors;
    sample
}
