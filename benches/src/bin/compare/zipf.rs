//! The Zipf(1.0) mix: many keys, a few very popular, on 3 peers with a slow loader. Counts the
//! loads against the distinct keys drawn, and the gets served without a network hop, next to
//! the fewest hops any hot-cache policy could make (every peer's first get of each key it does
//! not own). Both crates' hot caches hold the same bytes: 0.3.0's default of 10,000 entries.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use rand_distr::{Distribution, Zipf};
use serde_json::json;

use crate::cluster::{Cluster, PEER_TIMEOUT, Setup};
use crate::measure::{self, Sample};
use crate::ours::Ours;
use crate::published::Published;
use crate::report::{OURS, PUBLISHED, Row};
use crate::workloads::Plan;

/// Entries in the 0.3.0 crate's default hot cache: ours gets the same room, in bytes.
const PUBLISHED_HOT_ENTRIES: u64 = 10_000;

/// What one of this workload's hot copies weighs in our hot cache: the key (`zipf-` and up to
/// 6 digits, 10 bytes on average over the draws) and the encoded value (Postcard: a 1-byte
/// length, then the 100 bytes).
const HOT_ENTRY_WEIGHT: u64 = 10 + 1 + 100;

/// `zipf_gets` gets of keys drawn from Zipf(1.0) over `zipf_keys` keys, `in_flight` at once,
/// spread over 3 peers, with a slow loader and no eviction from the main caches.
pub(crate) async fn zipf(plan: &Plan, rows: &mut Vec<Row>) {
    let setup = Setup {
        nodes: 3,
        value_size: 100,
        loader_delay: Some(plan.zipf_loader),
        hot_cache: true,
        max_value: 100,
        peer_timeout: PEER_TIMEOUT,
        proxied: None,
        hedge_percentile: None,
    };
    let draws = zipf_keys(plan);
    let distinct = draws.iter().collect::<HashSet<_>>().len() as u64;
    let workload = format!(
        "Zipf(1.0) {} keys, 3 peers, {} ms loader",
        plan.zipf_keys,
        plan.zipf_loader.as_millis()
    );
    let draws = Arc::new(draws);
    if plan.wants(OURS) {
        let ours = Arc::new(
            Ours::start_with(&setup, |group| {
                group.hot_cache_capacity(PUBLISHED_HOT_ENTRIES * HOT_ENTRY_WEIGHT)
            })
            .await,
        );
        let fewest = fewest_hops(&ours, &draws);
        let row = zipf_run(plan, &workload, OURS, &ours, &draws, distinct).await;
        let best = 1.0 - fewest as f64 / draws.len() as f64;
        rows.push(
            row.note(format!(
                "fewest hops any policy could make: {fewest} ({:.1}% without a hop)",
                best * 100.0
            ))
            .extra(json!({ "fewest_hops": fewest, "best_share_without_hop": best })),
        );
    }
    if plan.wants(PUBLISHED) {
        let published = Arc::new(Published::start(&setup).await);
        rows.push(zipf_run(plan, &workload, PUBLISHED, &published, &draws, distinct).await);
    }
}

/// The gets that must make a hop whatever the hot cache keeps: each peer's first get of each key
/// another peer owns (get `i` runs on peer `i % 3`).
fn fewest_hops(ours: &Ours, draws: &[String]) -> u64 {
    let mut seen = HashSet::new();
    draws
        .iter()
        .enumerate()
        .filter(|(i, key)| ours.owner_index(key) != i % 3 && seen.insert((i % 3, key.as_str())))
        .count() as u64
}

fn zipf_keys(plan: &Plan) -> Vec<String> {
    let zipf = Zipf::new(plan.zipf_keys as f64, 1.0).expect("Zipf parameters");
    let mut rng = SmallRng::seed_from_u64(0x5EED);
    (0..plan.zipf_gets)
        .map(|_| format!("zipf-{}", zipf.sample(&mut rng) as u64))
        .collect()
}

async fn zipf_run<C: Cluster>(
    plan: &Plan,
    workload: &str,
    contender: &'static str,
    cluster: &Arc<C>,
    draws: &Arc<Vec<String>>,
    distinct: u64,
) -> Row {
    let next = Arc::new(AtomicUsize::new(0));
    let rpcs_before = cluster.rpcs();
    let started = Instant::now();
    let callers: Vec<_> = (0..plan.in_flight)
        .map(|_| {
            let cluster = Arc::clone(cluster);
            let draws = Arc::clone(draws);
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(key) = draws.get(i) else { break };
                    let asked = Instant::now();
                    errors += u64::from(cluster.get(i % 3, key).await.is_err());
                    latencies.push(asked.elapsed().as_nanos() as u64);
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(draws.len());
    let mut errors = 0;
    for caller in callers {
        let (part, errs) = caller.await.expect("Zipf caller panicked");
        latencies.extend(part);
        errors += errs;
    }
    let elapsed = started.elapsed();
    let rpcs = cluster.rpcs() - rpcs_before;
    let gets = draws.len() as u64;
    let no_hop = 1.0 - rpcs as f64 / gets as f64;
    let loads = cluster.source().total_loads();
    let sample: Sample = measure::from_latencies(&latencies, elapsed, errors);
    Row::new(workload, contender, sample)
        .loads(loads)
        .note(format!(
            "{gets} gets, {distinct} distinct keys; {rpcs} peer RPCs: {:.1}% of gets without a hop",
            no_hop * 100.0
        ))
        .extra(json!({
            "gets": gets,
            "distinct_keys": distinct,
            "peer_rpcs": rpcs,
            "share_without_hop": no_hop,
        }))
}
