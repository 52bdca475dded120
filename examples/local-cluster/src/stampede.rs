//! The stampede: many callers released at the same instant on a few cold keys, to show that
//! each key reaches the database once.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use groupcache::Stats;
use hdrhistogram::Histogram;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::Args;
use crate::cluster::Peer;
use crate::database::Ledger;
use crate::failures::Failures;
use crate::report::{histogram, micros};

/// What the stampede did, from the cache stats, the ledger and the callers' latencies.
#[derive(Debug)]
pub(crate) struct StampedeReport {
    pub(crate) callers: usize,
    pub(crate) keys: usize,
    pub(crate) loads: u64,
    pub(crate) most_loads_per_key: u64,
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

/// Releases `burst` callers per cold key at the same instant, spread over all peers.
pub(crate) async fn run(
    peers: &[Peer],
    args: &Args,
    ledger: &Ledger,
    failures: &Arc<Failures>,
) -> Result<StampedeReport, Box<dyn Error>> {
    let keys: Vec<Arc<str>> = (0..args.stampede_keys)
        .map(|i| format!("stampede-{i}").into())
        .collect();
    let callers = args.burst * keys.len();
    let before: Vec<Stats> = peers.iter().map(|p| p.cache.stats()).collect();

    // Every caller waits at the barrier before its get, so that all gets start together
    // instead of one by one as the tasks are spawned. The extra party is this function, which
    // starts the clock.
    let gate = Arc::new(Barrier::new(callers + 1));
    let mut tasks = JoinSet::new();
    for (k, key) in keys.iter().enumerate() {
        for j in 0..args.burst {
            let cache = peers[(k + j) % peers.len()].cache.clone();
            let key = Arc::clone(key);
            let gate = Arc::clone(&gate);
            let failures = Arc::clone(failures);
            let value_size = args.value_size;
            tasks.spawn(async move {
                gate.wait().await;
                let started = Instant::now();
                let result = cache.get(&key).await;
                let latency = started.elapsed();
                failures.check(cache.addr(), &key, result, value_size);
                latency
            });
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

    let after: Vec<Stats> = peers.iter().map(|p| p.cache.stats()).collect();
    let delta =
        |f: fn(&Stats) -> u64| -> u64 { before.iter().zip(&after).map(|(b, a)| f(a) - f(b)).sum() };
    let loads_per_key: Vec<u64> = {
        let ledger = ledger.lock();
        keys.iter()
            .map(|k| ledger.get(&**k).copied().unwrap_or(0))
            .collect()
    };
    Ok(StampedeReport {
        callers,
        keys: keys.len(),
        loads: loads_per_key.iter().sum(),
        most_loads_per_key: loads_per_key.iter().copied().max().unwrap_or(0),
        cache_hits: delta(|s| s.hot_hits + s.main_hits),
        leaders: delta(|s| s.loads_deduped),
        joined: delta(|s| s.loads - s.loads_deduped),
        peer_rpcs: delta(crate::report::rpcs_sent),
        took,
        latency,
    })
}
