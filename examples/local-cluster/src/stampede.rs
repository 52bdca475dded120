//! The stampede: many callers released at the same instant on a few cold keys, in both groups,
//! to show that each key reaches the database once per group.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcache::stats::Stats;
use hdrhistogram::Histogram;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::Args;
use crate::cluster::Peer;
use crate::database::{Ledger, Table};
use crate::failures::Failures;
use crate::report::{histogram, micros};

/// What the stampede did, from the cache stats, the ledger and the callers' latencies.
#[derive(Debug)]
pub(crate) struct StampedeReport {
    pub(crate) callers: usize,
    pub(crate) keys: usize,
    /// Database loads of the stampede's keys, per group (in [`Table::ALL`] order).
    pub(crate) loads: [u64; 2],
    /// The most loads of one key, per group.
    pub(crate) most_loads_per_key: [u64; 2],
    /// Callers answered from a cache: they came after a fetch had finished.
    pub(crate) cache_hits: u64,
    /// Callers that started a fetch from the owner or a load (flight leaders).
    pub(crate) leaders: u64,
    /// Callers that joined a flight already running.
    pub(crate) joined: u64,
    pub(crate) peer_rpcs: u64,
    pub(crate) took: Duration,
    pub(crate) latency: Histogram<u64>,
}

/// Releases `burst` callers per cold key and group at the same instant, spread over all peers.
pub(crate) async fn run(
    peers: &[Peer],
    args: &Args,
    ledger: &Ledger,
    failures: &Arc<Failures>,
) -> Result<StampedeReport, Box<dyn Error>> {
    let keys: Vec<Arc<str>> = (0..args.stampede_keys)
        .map(|i| format!("stampede-{i}").into())
        .collect();
    let callers = args.burst * keys.len() * Table::ALL.len();
    let before = all_stats(peers);

    // Every caller waits at the barrier before its get, so that all gets start together
    // instead of one by one as the tasks are spawned. The extra party is this function, which
    // starts the clock.
    let gate = Arc::new(Barrier::new(callers + 1));
    let mut tasks = JoinSet::new();
    for (k, key) in keys.iter().enumerate() {
        for table in Table::ALL {
            for j in 0..args.burst {
                let groups = peers[(k + j) % peers.len()].groups.clone();
                let key = Arc::clone(key);
                let gate = Arc::clone(&gate);
                let failures = Arc::clone(failures);
                let value_size = args.value_size;
                tasks.spawn(async move {
                    gate.wait().await;
                    let started = Instant::now();
                    groups.get_checked(table, &key, value_size, &failures).await;
                    started.elapsed()
                });
            }
        }
    }
    gate.wait().await;
    let released = Instant::now();
    let mut latency = histogram();
    while let Some(joined) = tasks.join_next().await {
        latency
            .record(micros(joined?))
            .expect("an auto-resizing histogram records any latency");
    }
    let took = released.elapsed();

    let after = all_stats(peers);
    let delta =
        |f: fn(&Stats) -> u64| -> u64 { before.iter().zip(&after).map(|(b, a)| f(a) - f(b)).sum() };
    let per_key =
        |table: Table| -> Vec<u64> { keys.iter().map(|k| ledger.loads_of(table, k)).collect() };
    let loads = Table::ALL.map(|t| per_key(t).iter().sum());
    let most_loads_per_key = Table::ALL.map(|t| per_key(t).into_iter().max().unwrap_or(0));
    Ok(StampedeReport {
        callers,
        keys: keys.len(),
        loads,
        most_loads_per_key,
        cache_hits: delta(|s| s.hot_hits + s.main_hits),
        leaders: delta(|s| s.loads_deduped),
        joined: delta(|s| s.loads - s.loads_deduped),
        peer_rpcs: delta(crate::report::rpcs_sent),
        took,
        latency,
    })
}

/// Every group's stats on every peer.
fn all_stats(peers: &[Peer]) -> Vec<Stats> {
    peers
        .iter()
        .flat_map(|p| Table::ALL.map(|t| p.groups.stats(t)))
        .collect()
}
