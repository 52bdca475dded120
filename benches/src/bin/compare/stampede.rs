//! The stampede: 10,000 callers ask for one cold key at once, spread over 3 peers, and the
//! loader is slow. Counts the loads and how long until the last caller has its answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster::{Cluster, PEER_TIMEOUT, Setup};
use crate::fanout::FanOut;
use crate::go::{Go, GoCluster};
use crate::measure::{self, Sample};
use crate::ours::Ours;
use crate::published::Published;
use crate::report::{FANOUT, GO, OURS, PUBLISHED, Row};
use crate::source::Source;
use crate::workloads::Plan;

/// `stampede_callers` callers ask for one cold key at once, spread over 3 peers; the loader
/// takes `stampede_loader`. Each round uses a fresh key.
pub(crate) async fn stampede(plan: &Plan, go: &Go, rows: &mut Vec<Row>) {
    let setup = Setup {
        nodes: 3,
        value_size: 100,
        loader_delay: Some(plan.stampede_loader),
        hot_cache: true,
        max_value: 100,
        peer_timeout: PEER_TIMEOUT,
        proxied: None,
        hedge_percentile: None,
    };
    let workload = format!(
        "stampede {} callers, 3 peers, {} ms loader",
        plan.stampede_callers,
        plan.stampede_loader.as_millis()
    );
    if plan.wants(OURS) {
        let ours = Arc::new(Ours::start(&setup).await);
        rows.push(stampede_rounds(plan, &workload, OURS, &ours).await);
    }
    if plan.wants(PUBLISHED) {
        let published = Arc::new(Published::start(&setup).await);
        rows.push(stampede_rounds(plan, &workload, PUBLISHED, &published).await);
    }
    if plan.wants(FANOUT) {
        let source = Source::new(1, setup.value_size, setup.loader_delay);
        let floor = Arc::new(FanOut::new(source));
        rows.push(stampede_rounds(plan, &workload, FANOUT, &floor).await);
    }
    if let Some(cluster) = go.cluster() {
        rows.push(go_rounds(plan, &workload, cluster).await);
    }
    rows.extend(go.skipped_row(&workload));
}

/// The same rounds on Go groupcache's three processes: its driver spreads the callers over
/// itself and its peers, and reports every caller's latency.
async fn go_rounds(plan: &Plan, workload: &str, cluster: &GoCluster) -> Row {
    let mut sample: Option<Sample> = None;
    let mut per_round_loads = Vec::new();
    let mut walls = Vec::new();
    for round in 0..plan.stampede_rounds {
        let command = json!({
            "op": "stampede",
            "size": 100,
            "callers": plan.stampede_callers,
            "round": round,
        });
        let (this, loads) = match cluster.call(command).await {
            Ok(reply) => (reply.sample(), reply.loads),
            Err(why) => {
                let mut failed = measure::from_latencies(&[], Duration::ZERO, 1);
                failed.first_error = Some(why);
                (failed, 0)
            }
        };
        walls.push(this.elapsed);
        per_round_loads.push(loads);
        sample = Some(match sample {
            None => this,
            Some(so_far) => so_far.merge(this),
        });
    }
    let sample = sample.expect("at least one round");
    row(plan, workload, GO, sample, &per_round_loads, &walls)
}

async fn stampede_rounds<C: Cluster>(
    plan: &Plan,
    workload: &str,
    contender: &'static str,
    cluster: &Arc<C>,
) -> Row {
    let mut latencies = Vec::new();
    let mut per_round_loads = Vec::new();
    let mut walls = Vec::new();
    let mut errors = 0;
    let mut elapsed = Duration::ZERO;
    for round in 0..plan.stampede_rounds {
        let key = Arc::new(format!("stampede-{round}"));
        let before = cluster.source().total_loads();
        let started = Instant::now();
        let callers: Vec<_> = (0..plan.stampede_callers)
            .map(|i| {
                let cluster = Arc::clone(cluster);
                let key = Arc::clone(&key);
                tokio::spawn(async move {
                    let asked = Instant::now();
                    let result = cluster.get(i % 3, &key).await;
                    (asked.elapsed(), result.is_ok())
                })
            })
            .collect();
        for caller in callers {
            let (latency, ok) = caller.await.expect("stampede caller panicked");
            latencies.push(latency.as_nanos() as u64);
            errors += u64::from(!ok);
        }
        let wall = started.elapsed();
        elapsed += wall;
        walls.push(wall);
        per_round_loads.push(cluster.source().total_loads() - before);
    }
    let sample = measure::from_latencies(&latencies, elapsed, errors);
    row(plan, workload, contender, sample, &per_round_loads, &walls)
}

fn row(
    plan: &Plan,
    workload: &str,
    contender: &'static str,
    sample: Sample,
    per_round_loads: &[u64],
    walls: &[Duration],
) -> Row {
    let worst = walls.iter().max().copied().unwrap_or_default();
    Row::new(workload, contender, sample)
        .loads(per_round_loads.iter().sum())
        .note(format!(
            "loads per round {per_round_loads:?}; all answered within {} (worst of {} rounds)",
            crate::report::duration(worst.as_nanos() as u64),
            plan.stampede_rounds
        ))
        .extra(json!({
            "loads_per_round": per_round_loads,
            "round_wall_ns": walls.iter().map(|w| w.as_nanos() as u64).collect::<Vec<_>>(),
        }))
}
