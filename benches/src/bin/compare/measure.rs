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
}

impl Sample {
    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn p50_ns(&self) -> u64 {
        self.latency.value_at_quantile(0.50)
    }

    pub(crate) fn p99_ns(&self) -> u64 {
        self.latency.value_at_quantile(0.99)
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("histogram bounds")
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
pub(crate) async fn sequential<O: Op>(budget: Budget, batch: u64, op: &O) -> Sample {
    let mut discard = empty();
    caller_loop(op, 0, batch, Instant::now() + budget.warmup, &mut discard).await;
    let mut sample = empty();
    let started = Instant::now();
    caller_loop(op, 0, batch, started + budget.run, &mut sample).await;
    sample.elapsed = started.elapsed();
    sample
}

/// `callers` tasks at once, each one operation at a time: `callers` operations in flight.
pub(crate) async fn concurrent<O: Op>(
    budget: Budget,
    callers: usize,
    batch: u64,
    op: &Arc<O>,
) -> Sample {
    run_tasks(op, callers, batch, budget.warmup).await;
    let started = Instant::now();
    let parts = run_tasks(op, callers, batch, budget.run).await;
    let elapsed = started.elapsed();
    let mut sample = empty();
    for part in parts {
        sample.ops += part.ops;
        sample.errors += part.errors;
        if sample.first_error.is_none() {
            sample.first_error = part.first_error;
        }
        sample.latency.add(&part.latency).expect("same bounds");
    }
    sample.elapsed = elapsed;
    sample
}

async fn run_tasks<O: Op>(op: &Arc<O>, callers: usize, batch: u64, run: Duration) -> Vec<Sample> {
    let deadline = Instant::now() + run;
    let tasks: Vec<_> = (0..callers)
        .map(|caller| {
            let op = Arc::clone(op);
            tokio::spawn(async move {
                let mut part = empty();
                caller_loop(&*op, caller, batch, deadline, &mut part).await;
                part
            })
        })
        .collect();
    let mut parts = Vec::with_capacity(callers);
    for task in tasks {
        parts.push(task.await.expect("a measuring task panicked"));
    }
    parts
}

fn empty() -> Sample {
    Sample {
        ops: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
        errors: 0,
        first_error: None,
    }
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
