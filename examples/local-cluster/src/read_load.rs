//! The read load: many clients reading Zipf-distributed keys through random peers for a fixed
//! time, with a progress bar.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use groupcache::Groupcache;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngExt;
use rand::rngs::SmallRng;
use rand_distr::Zipf;
use tokio::task::JoinHandle;

use crate::Args;
use crate::cluster::Peer;
use crate::database::Row;
use crate::failures::Failures;
use crate::report::{count, histogram, micros, per_second};

/// Shared by the read-load clients.
#[derive(Debug)]
struct Workload {
    caches: Vec<Groupcache<Row>>,
    zipf: Zipf<f64>,
    value_size: usize,
    deadline: Instant,
    /// Which keys were asked for at least once, by rank - 1.
    requested: Vec<AtomicBool>,
    /// Completed requests, for the progress bar. Clients add in batches so that they do not
    /// all contend for one cache line on every request.
    done: AtomicU64,
    failures: Arc<Failures>,
}

/// One client of the read load. Returns its latencies, one histogram per peer.
async fn client(work: Arc<Workload>) -> Vec<Histogram<u64>> {
    const BATCH: u64 = 64;
    let mut rng: SmallRng = rand::make_rng();
    let mut latencies: Vec<Histogram<u64>> = work.caches.iter().map(|_| histogram()).collect();
    let mut unreported = 0;
    while Instant::now() < work.deadline && !work.failures.any() {
        let peer = rng.random_range(0..work.caches.len());
        // Zipf draws ranks 1..=n as floats; rank 1 is the hottest key.
        let rank = (rng.sample(work.zipf) as usize).clamp(1, work.requested.len());
        let requested = &work.requested[rank - 1];
        if !requested.load(Ordering::Relaxed) {
            requested.store(true, Ordering::Relaxed);
        }
        let key = format!("key-{rank}");
        let cache = &work.caches[peer];
        let started = Instant::now();
        let result = cache.get(&key).await;
        let latency = started.elapsed();
        if work
            .failures
            .check(cache.addr(), &key, result, work.value_size)
        {
            latencies[peer]
                .record(micros(latency))
                .expect("an auto-resizing histogram records any latency");
        }
        unreported += 1;
        if unreported == BATCH {
            work.done.fetch_add(BATCH, Ordering::Relaxed);
            unreported = 0;
        }
        // A cache hit never waits on anything, so without this a client could keep its worker
        // thread to itself and starve the servers' tasks queued behind it.
        tokio::task::coop::consume_budget().await;
    }
    work.done.fetch_add(unreported, Ordering::Relaxed);
    latencies
}

/// What the read load did: requests completed, keys touched, and latencies per peer.
#[derive(Debug)]
pub(crate) struct ReadLoadReport {
    pub(crate) requests: u64,
    pub(crate) distinct_keys: u64,
    pub(crate) took: Duration,
    pub(crate) per_peer: Vec<Histogram<u64>>,
}

/// Runs `args.concurrency` clients until `args.duration` has passed or a `get` fails.
pub(crate) async fn run(
    peers: &[Peer],
    args: &Args,
    failures: &Arc<Failures>,
) -> Result<ReadLoadReport, Box<dyn Error>> {
    let work = Arc::new(Workload {
        caches: peers.iter().map(|p| p.cache.clone()).collect(),
        zipf: Zipf::new(args.keys as f64, args.zipf_exponent)?,
        value_size: args.value_size,
        deadline: Instant::now() + args.duration,
        requested: (0..args.keys).map(|_| AtomicBool::new(false)).collect(),
        done: AtomicU64::new(0),
        failures: Arc::clone(failures),
    });
    let started = Instant::now();
    let clients: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(client(Arc::clone(&work))))
        .collect();

    // indicatif hides the bar by itself when stderr is not a terminal (CI, pipes).
    let total_ms = u64::try_from(args.duration.as_millis()).unwrap_or(u64::MAX);
    let bar = ProgressBar::new(total_ms);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            // The bar takes what the message leaves, so that the line never wraps on a
            // narrow terminal (a wrapped line is redrawn as a new one at every tick).
            "read load {{elapsed:>3}} / {:.1?}  {{msg:<32}} [{{wide_bar:.cyan/blue}}]",
            args.duration
        ))?
        .progress_chars("=> "),
    );
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while !clients.iter().all(JoinHandle::is_finished) {
        tick.tick().await;
        let elapsed = started.elapsed();
        let done = work.done.load(Ordering::Relaxed);
        bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        bar.set_message(format!(
            "{} requests, {} req/s",
            count(done),
            count(per_second(done, elapsed))
        ));
    }
    bar.finish_and_clear();

    let mut per_peer: Vec<Histogram<u64>> = peers.iter().map(|_| histogram()).collect();
    for joined in clients {
        for (total, part) in per_peer.iter_mut().zip(joined.await?) {
            total
                .add(part)
                .expect("an auto-resizing histogram accepts any other");
        }
    }
    let took = started.elapsed();
    let distinct_keys = work
        .requested
        .iter()
        .filter(|r| r.load(Ordering::Relaxed))
        .count() as u64;
    Ok(ReadLoadReport {
        requests: work.done.load(Ordering::Relaxed),
        distinct_keys,
        took,
        per_peer,
    })
}
