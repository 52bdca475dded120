//! The faults: one of 5 peers is cut off while the 4 others are asked for the keys it owns,
//! and nobody is told (membership unchanged, as in the minutes before discovery notices).
//! **Dead owner**: connecting to it is refused. **Stalled owner**: connections are accepted
//! and never answered. Both crates get the same cluster, the same peer timeout and the same
//! load; hot caches are off on both, so that no get is answered from a copy kept before the
//! fault. What is counted: the database loads of each key, and the latency of every get.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::{Cluster, Servers, Setup, keys_owned_by};
use crate::fault_proxy::Fault;
use crate::measure;
use crate::ours::Ours;
use crate::published::Published;
use crate::report::{OURS, PUBLISHED, Row, duration};
use crate::workloads::Plan;

/// A cluster whose node `Setup::proxied` can be cut off.
pub(crate) trait Faulty: Cluster {
    fn servers(&self) -> &Servers;
}

const PEERS: usize = 5;
/// The node cut off (the owner of every key asked for); the others survive.
const VICTIM: usize = PEERS - 1;
const SURVIVORS: usize = PEERS - 1;
const VALUE_SIZE: usize = 100;
/// The percentile of the hedged row.
const HEDGE_PERCENTILE: f64 = 95.0;
/// The contender name of ours with hedged gets.
const OURS_HEDGED: &str = "ours, hedge_at_percentile(95)";

fn setup(plan: &Plan) -> Setup {
    Setup {
        nodes: PEERS,
        value_size: VALUE_SIZE,
        loader_delay: Some(plan.fault_loader),
        hot_cache: false,
        max_value: VALUE_SIZE,
        peer_timeout: plan.fault_peer_timeout,
        proxied: Some(VICTIM),
        hedge_percentile: None,
    }
}

fn workload(plan: &Plan, fault: &str) -> String {
    format!(
        "faults: {fault}, {PEERS} peers, {} keys, {} peer timeout",
        plan.fault_keys,
        duration(plan.fault_peer_timeout.as_nanos() as u64),
    )
}

// ===== dead owner =====

/// The owner's port refuses connections; `fault_rounds` rounds, in each of which every
/// survivor asks for every key once (`in_flight` gets at once).
pub(crate) async fn dead_owner(plan: &Plan, rows: &mut Vec<Row>) {
    let setup = setup(plan);
    let workload = workload(plan, "dead owner");
    if plan.wants(OURS) {
        let ours = Arc::new(Ours::start(&setup).await);
        rows.push(dead_rounds(plan, &workload, OURS, &ours).await);
    }
    if plan.wants(PUBLISHED) {
        let published = Arc::new(Published::start(&setup).await);
        rows.push(dead_rounds(plan, &workload, PUBLISHED, &published).await);
    }
}

async fn dead_rounds<C: Faulty>(
    plan: &Plan,
    workload: &str,
    contender: &'static str,
    cluster: &Arc<C>,
) -> Row {
    let keys = Arc::new(warm_keys(plan, &**cluster).await);
    let loads_before = key_loads(&**cluster, &keys);
    cluster.servers().fault(Fault::Refuse);
    let jobs = (keys.len() * SURVIVORS) as u64;
    let mut gets = Gets::default();
    let (mut per_round_loads, mut slowest, mut walls) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..plan.fault_rounds {
        let before = cluster.source().total_loads();
        let started = Instant::now();
        let round = ask(cluster, &keys, plan.in_flight, Limit::Jobs(jobs)).await;
        walls.push(started.elapsed());
        per_round_loads.push(cluster.source().total_loads() - before);
        slowest.push(round.latencies.iter().copied().max().unwrap_or(0));
        gets.extend(round);
    }
    let per_key = per_key(&**cluster, &keys, &loads_before, &gets);
    let mut sample = measure::from_latencies(&gets.latencies, walls.iter().sum(), gets.errors);
    sample.first_error = gets.first_error;
    let slowest_text: Vec<_> = slowest.iter().map(|&ns| duration(ns)).collect();
    Row::new(workload, contender, sample)
        .loads(per_round_loads.iter().sum())
        .note(format!(
            "{} rounds, each asking every key once on each of {SURVIVORS} survivors; loads \
             per round {per_round_loads:?}; {}; slowest get per round [{}]",
            plan.fault_rounds,
            per_key.text(),
            slowest_text.join(", "),
        ))
        .extra(json!({
            "keys": keys.len(),
            "survivors": SURVIVORS,
            "loads_per_round": per_round_loads,
            "keys_asked": per_key.asked,
            "gets_per_key": per_key.gets,
            "loads_per_key_mean": per_key.mean,
            "loads_per_key_max": per_key.max,
            "slowest_get_per_round_ns": slowest,
            "peer_timeout_ms": plan.fault_peer_timeout.as_millis() as u64,
        }))
}

// ===== stalled owner =====

/// The owner accepts connections and never answers; for `stall_window`, `in_flight` callers
/// ask the survivors for its keys, one get after another.
pub(crate) async fn stalled_owner(plan: &Plan, rows: &mut Vec<Row>) {
    let setup = setup(plan);
    let workload = format!(
        "{}, {} window",
        workload(plan, "stalled owner"),
        duration(plan.stall_window.as_nanos() as u64)
    );
    if plan.wants(OURS) {
        let ours = Arc::new(Ours::start(&setup).await);
        rows.push(stall_window(plan, &workload, OURS, &ours).await);
        // The same with hedged gets (off by default): the gets in flight when the owner
        // stalls ask the substitute after the owner's recent p95 instead of waiting the timeout.
        let hedged = Setup {
            hedge_percentile: Some(HEDGE_PERCENTILE),
            ..self::setup(plan)
        };
        let ours = Arc::new(Ours::start(&hedged).await);
        rows.push(stall_window(plan, &workload, OURS_HEDGED, &ours).await);
    }
    if plan.wants(PUBLISHED) {
        let published = Arc::new(Published::start(&setup).await);
        rows.push(stall_window(plan, &workload, PUBLISHED, &published).await);
    }
}

async fn stall_window<C: Faulty>(
    plan: &Plan,
    workload: &str,
    contender: &'static str,
    cluster: &Arc<C>,
) -> Row {
    let keys = Arc::new(warm_keys(plan, &**cluster).await);
    let loads_before = key_loads(&**cluster, &keys);
    let before = cluster.source().total_loads();
    cluster.servers().fault(Fault::Blackhole);
    let started = Instant::now();
    let gets = ask(
        cluster,
        &keys,
        plan.in_flight,
        Limit::Until(started + plan.stall_window),
    )
    .await;
    let elapsed = started.elapsed();
    let loads = cluster.source().total_loads() - before;
    let per_key = per_key(&**cluster, &keys, &loads_before, &gets);
    // Once the first gets have met the peer timeout, a peer has had every chance to notice.
    let settled_after = plan.fault_peer_timeout * 2;
    let settled = gets.started_after(settled_after);
    let settled_text = match settled.p99 {
        Some(p99) => format!(
            "p99 of the {} gets started after the first {}: {}",
            settled.count,
            duration(settled_after.as_nanos() as u64),
            duration(p99),
        ),
        None => format!(
            "no get started after the first {}",
            duration(settled_after.as_nanos() as u64)
        ),
    };
    // When the first timeouts end, and whether anything after them (a probe once the
    // cool-down has passed) makes a get wait again.
    let slowest = gets.slowest_per_second();
    let slowest_text: Vec<_> = slowest.iter().map(|&ns| duration(ns)).collect();
    let count = gets.latencies.len();
    let mut sample = measure::from_latencies(&gets.latencies, elapsed, gets.errors);
    sample.first_error = gets.first_error;
    Row::new(workload, contender, sample)
        .loads(loads)
        .note(format!(
            "{count} gets; {}; {settled_text}; slowest get by the second it started in [{}]",
            per_key.text(),
            slowest_text.join(", "),
        ))
        .extra(json!({
            "keys": keys.len(),
            "survivors": SURVIVORS,
            "gets": count,
            "keys_asked": per_key.asked,
            "gets_per_key": per_key.gets,
            "loads_per_key_mean": per_key.mean,
            "loads_per_key_max": per_key.max,
            "settled_after_ns": settled_after.as_nanos() as u64,
            "settled_gets": settled.count,
            "settled_p99_ns": settled.p99,
            "slowest_get_per_second_ns": slowest,
            "peer_timeout_ms": plan.fault_peer_timeout.as_millis() as u64,
        }))
}

// ===== shared =====

/// `fault_keys` keys owned by the victim, each then asked for once on every survivor, so that
/// every survivor has a connection to the victim before the fault (loads not counted).
async fn warm_keys<C: Cluster>(plan: &Plan, cluster: &C) -> Vec<String> {
    let keys = keys_owned_by(cluster, 0, VICTIM, "fault", plan.fault_keys).await;
    for key in &keys {
        for survivor in 0..SURVIVORS {
            cluster.get(survivor, key).await.expect("warm-up get");
        }
    }
    keys
}

fn key_loads<C: Cluster>(cluster: &C, keys: &[String]) -> Vec<u64> {
    keys.iter().map(|k| cluster.source().key_loads(k)).collect()
}

/// The loads of the keys that were asked for, since the fault.
struct PerKey {
    /// Keys asked for at least once.
    asked: usize,
    /// Gets per key asked.
    gets: f64,
    mean: f64,
    max: u64,
}

impl PerKey {
    fn text(&self) -> String {
        format!(
            "{} keys asked, {:.1} gets each; loads per key {:.2} (max {})",
            self.asked, self.gets, self.mean, self.max
        )
    }
}

/// Loads since `before` of each key that `gets` asked for.
fn per_key<C: Cluster>(cluster: &C, keys: &[String], before: &[u64], gets: &Gets) -> PerKey {
    let now = key_loads(cluster, keys);
    let asked: Vec<usize> = (0..keys.len())
        .filter(|&k| gets.asks.get(k).is_some_and(|&n| n > 0))
        .collect();
    let loads: Vec<u64> = asked.iter().map(|&k| now[k] - before[k]).collect();
    let count = asked.len().max(1) as f64;
    PerKey {
        asked: asked.len(),
        gets: gets.latencies.len() as f64 / count,
        mean: loads.iter().sum::<u64>() as f64 / count,
        max: loads.iter().copied().max().unwrap_or(0),
    }
}

/// When the callers stop taking gets.
#[derive(Debug, Clone, Copy)]
enum Limit {
    /// After this many gets in all.
    Jobs(u64),
    /// A caller starts no get after this instant (and finishes the one it is in).
    Until(Instant),
}

/// Every get of one run: latency, when it started (from the run's start), errors.
#[derive(Debug, Default)]
struct Gets {
    latencies: Vec<u64>,
    started_ns: Vec<u64>,
    /// Gets of each key, by its index in the run's keys.
    asks: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

/// The gets that started late enough: how many, and their p99.
struct Settled {
    count: usize,
    p99: Option<u64>,
}

impl Gets {
    fn extend(&mut self, other: Gets) {
        self.latencies.extend(other.latencies);
        self.started_ns.extend(other.started_ns);
        if self.asks.len() < other.asks.len() {
            self.asks.resize(other.asks.len(), 0);
        }
        for (sum, n) in self.asks.iter_mut().zip(other.asks) {
            *sum += n;
        }
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// The slowest get of those started in each second of the run (0 for a second in which
    /// none started).
    fn slowest_per_second(&self) -> Vec<u64> {
        let mut slowest = Vec::new();
        for (&started, &latency) in self.started_ns.iter().zip(&self.latencies) {
            let second = (started / 1_000_000_000) as usize;
            if slowest.len() <= second {
                slowest.resize(second + 1, 0);
            }
            slowest[second] = slowest[second].max(latency);
        }
        slowest
    }

    fn started_after(&self, after: Duration) -> Settled {
        let after = after.as_nanos() as u64;
        let mut late: Vec<u64> = (self.started_ns.iter().zip(&self.latencies))
            .filter(|&(&started, _)| started >= after)
            .map(|(_, &latency)| latency)
            .collect();
        late.sort_unstable();
        let p99 = (!late.is_empty()).then(|| late[(late.len() * 99).div_ceil(100) - 1]);
        Settled {
            count: late.len(),
            p99,
        }
    }
}

/// `callers` tasks asking the survivors for `keys` until `limit`: get number `i` (counted over
/// all callers) asks survivor `i % SURVIVORS` for key `(i / SURVIVORS) % keys.len()`, so each
/// key is asked on every survivor at about the same time, and `SURVIVORS x keys.len()`
/// consecutive gets ask each key on each survivor once.
async fn ask<C: Cluster>(
    cluster: &Arc<C>,
    keys: &Arc<Vec<String>>,
    callers: usize,
    limit: Limit,
) -> Gets {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (cluster, keys, next) = (Arc::clone(cluster), Arc::clone(keys), Arc::clone(&next));
            tokio::spawn(async move {
                let mut gets = Gets {
                    asks: vec![0; keys.len()],
                    ..Gets::default()
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let asked = Instant::now();
                    match limit {
                        Limit::Jobs(n) if i >= n => break,
                        Limit::Until(end) if asked >= end => break,
                        _ => {}
                    }
                    let survivor = (i % SURVIVORS as u64) as usize;
                    let k = (i / SURVIVORS as u64) as usize % keys.len();
                    gets.asks[k] += 1;
                    let result = cluster.get(survivor, &keys[k]).await;
                    gets.latencies.push(asked.elapsed().as_nanos() as u64);
                    gets.started_ns.push((asked - started).as_nanos() as u64);
                    let failed = match result {
                        Ok(value) if value.len() == VALUE_SIZE => None,
                        Ok(value) => {
                            Some(format!("got {} bytes, expected {VALUE_SIZE}", value.len()))
                        }
                        Err(e) => Some(e),
                    };
                    if let Some(e) = failed {
                        gets.errors += 1;
                        gets.first_error.get_or_insert(e);
                    }
                }
                gets
            })
        })
        .collect();
    let mut all = Gets::default();
    for task in tasks {
        all.extend(task.await.expect("a faults caller panicked"));
    }
    all
}
