//! The read load: many clients reading Zipf-distributed keys of both groups through random
//! peers for a fixed time, with a live progress line (time, gets, hit ratio, database loads).

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::RngExt;
use rand::rngs::SmallRng;
use rand_distr::Zipf;
use tokio::task::JoinHandle;

use crate::Args;
use crate::cluster::{Groups, Peer};
use crate::database::Table;
use crate::failures::Failures;
use crate::report::{count, histogram, micros, percent};

/// Shared by the read-load clients.
#[derive(Debug)]
struct Workload {
    peers: Vec<Groups>,
    zipf: Zipf<f64>,
    value_size: usize,
    deadline: Instant,
    /// Which keys were asked for at least once, per group (in [`Table::ALL`] order), by
    /// rank - 1.
    requested: [Vec<AtomicBool>; 2],
    /// Completed requests, for the report. Clients add in batches so that they do not
    /// all contend for one cache line on every request.
    done: AtomicU64,
    failures: Arc<Failures>,
}

/// One client of the read load. Returns its latencies, one histogram per peer.
async fn client(work: Arc<Workload>) -> Vec<Histogram<u64>> {
    const BATCH: u64 = 64;
    let mut rng: SmallRng = rand::make_rng();
    let mut latencies: Vec<Histogram<u64>> = work.peers.iter().map(|_| histogram()).collect();
    let mut unreported = 0;
    while Instant::now() < work.deadline && !work.failures.any() {
        let peer = rng.random_range(0..work.peers.len());
        // Half the requests read a row, half a summary: both groups see the same skew.
        let table = Table::ALL[rng.random_range(0..Table::ALL.len())];
        let requested = &work.requested[table.index()];
        // Zipf draws ranks 1..=n as floats; rank 1 is the hottest key.
        let rank = (rng.sample(work.zipf) as usize).clamp(1, requested.len());
        let requested = &requested[rank - 1];
        if !requested.load(Ordering::Relaxed) {
            requested.store(true, Ordering::Relaxed);
        }
        let key = format!("key-{rank}");
        let started = Instant::now();
        let right = work.peers[peer]
            .get_checked(table, &key, work.value_size, &work.failures)
            .await;
        let latency = started.elapsed();
        if right {
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

/// The live figures of the progress line, counted from the start of the read load.
struct Progress<'p> {
    peers: &'p [Peer],
    /// Gets, cache hits and database loads when the read load started (after the stampede).
    start: (u64, u64, u64),
}

impl<'p> Progress<'p> {
    fn start(peers: &'p [Peer]) -> Self {
        let mut progress = Progress {
            peers,
            start: (0, 0, 0),
        };
        progress.start = progress.totals();
        progress
    }

    /// Gets, cache hits (hot or main) and database loads over all peers and groups so far.
    fn totals(&self) -> (u64, u64, u64) {
        let mut totals = (0, 0, 0);
        for peer in self.peers {
            for table in Table::ALL {
                let s = peer.groups.stats(table);
                totals.0 += s.gets;
                totals.1 += s.hot_hits + s.main_hits;
                totals.2 += peer.db.calls(table);
            }
        }
        totals
    }

    /// `2.3/10.0 s  41,984 gets  71.9 % hits  480 db loads`: short, so that the line fits
    /// an 80-column terminal with some bar left.
    fn line(&self, elapsed: Duration, total: Duration) -> String {
        let (gets, hits, loads) = self.totals();
        let (gets, hits, loads) = (
            gets.saturating_sub(self.start.0),
            hits.saturating_sub(self.start.1),
            loads.saturating_sub(self.start.2),
        );
        format!(
            "{:.1}/{:.1} s  {} gets  {} hits  {} db loads",
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
            count(gets),
            percent(hits, gets),
            count(loads)
        )
    }
}

/// What the read load did: requests completed, keys touched per group, and latencies per peer.
#[derive(Debug)]
pub(crate) struct ReadLoadReport {
    pub(crate) requests: u64,
    /// Keys asked for at least once, per group (in [`Table::ALL`] order).
    pub(crate) distinct_keys: [u64; 2],
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
        peers: peers.iter().map(|p| p.groups.clone()).collect(),
        zipf: Zipf::new(args.keys as f64, args.zipf_exponent)?,
        value_size: args.value_size,
        deadline: Instant::now() + args.duration,
        requested: Table::ALL.map(|_| (0..args.keys).map(|_| AtomicBool::new(false)).collect()),
        done: AtomicU64::new(0),
        failures: Arc::clone(failures),
    });
    // The progress line reads the counters on its tick only, never per request: cheap at any
    // request rate.
    let progress = Progress::start(peers);
    let started = Instant::now();
    let clients: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(client(Arc::clone(&work))))
        .collect();

    // indicatif hides the bar by itself when stderr is not a terminal (CI, pipes), and the
    // report goes to stdout either way.
    let total_ms = u64::try_from(args.duration.as_millis()).unwrap_or(u64::MAX);
    let bar = ProgressBar::new(total_ms);
    bar.set_style(
        ProgressStyle::with_template(
            // The bar takes what the message leaves, so that the line never wraps on a
            // narrow terminal (a wrapped line is redrawn as a new one at every tick).
            "read load {msg} [{wide_bar:.cyan/blue}]",
        )?
        .progress_chars("=> "),
    );
    let mut tick = tokio::time::interval(Duration::from_millis(150));
    while !clients.iter().all(JoinHandle::is_finished) {
        tick.tick().await;
        let elapsed = started.elapsed().min(args.duration);
        bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        bar.set_message(progress.line(elapsed, args.duration));
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
        .each_ref()
        .map(|keys| keys.iter().filter(|r| r.load(Ordering::Relaxed)).count() as u64);
    Ok(ReadLoadReport {
        requests: work.done.load(Ordering::Relaxed),
        distinct_keys,
        took,
        per_peer,
    })
}
