//! Batched reads: `get_many` of 100 keys over 3 peers against the same 100 keys asked for one
//! `get` at a time, from one caller. No hot cache: each remote key is asked of its owner every
//! time, so the batch sends one request per other owner (2) where the gets send one per remote
//! key (the note says how many). Ours only: neither the 0.3.0 crate nor Go groupcache has a batched get.

use std::sync::Arc;

use crate::cluster::{Cluster, PEER_TIMEOUT, Setup};
use crate::measure::{self, Budget, Op, Sample};
use crate::ours::Ours;
use crate::report::{OURS, Row};
use crate::workloads::Plan;

/// Keys per operation.
const KEYS: usize = 100;

struct Batch {
    cluster: Arc<Ours>,
    keys: Vec<String>,
}

impl Op for Batch {
    async fn call(&self, _: usize, _: u64) -> Result<(), String> {
        for found in self.cluster.node(0).get_many(&self.keys).await {
            found.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

struct OneByOne {
    cluster: Arc<Ours>,
    keys: Vec<String>,
}

impl Op for OneByOne {
    async fn call(&self, _: usize, _: u64) -> Result<(), String> {
        for key in &self.keys {
            self.cluster.get(0, key).await?;
        }
        Ok(())
    }
}

pub(crate) async fn get_many(plan: &Plan, rows: &mut Vec<Row>) {
    if !plan.wants(OURS) {
        return;
    }
    let setup = Setup {
        nodes: 3,
        value_size: 100,
        loader_delay: None,
        hot_cache: false,
        max_value: 100,
        peer_timeout: PEER_TIMEOUT,
        proxied: None,
        hedge_percentile: None,
    };
    let cluster = Arc::new(Ours::start(&setup).await);
    let keys: Vec<String> = (0..KEYS).map(|i| format!("batched-{i}")).collect();
    // Loaded once, on their owners, before the run: both sides measure cache hits.
    for key in &keys {
        cluster.get(0, key).await.expect("a read before the run");
    }
    let batch = Arc::new(Batch {
        cluster: Arc::clone(&cluster),
        keys: keys.clone(),
    });
    let one_by_one = Arc::new(OneByOne {
        cluster: Arc::clone(&cluster),
        keys,
    });
    // Alternating rounds, as for the other workloads' contenders.
    let rounds = plan.rounds.max(1);
    let budget = Budget {
        warmup: plan.budget.warmup / rounds,
        run: plan.budget.run / rounds,
    };
    let (mut batched, mut single): (Option<Sample>, Option<Sample>) = (None, None);
    for _ in 0..rounds {
        let sample = measure::sequential(budget, 1, &batch).await;
        batched = Some(match batched {
            Some(all) => all.merge(sample),
            None => sample,
        });
        let sample = measure::sequential(budget, 1, &one_by_one).await;
        single = Some(match single {
            Some(all) => all.merge(sample),
            None => sample,
        });
    }
    let (batched, single) = (batched.expect("one round"), single.expect("one round"));
    let speedup = batched.ops_per_sec() / single.ops_per_sec();
    // The requests of one operation of each, counted outside the timed runs (whose warm-ups
    // send requests too).
    let (rpcs, batches) = (cluster.rpcs(), cluster.node(0).stats().peer_batches);
    batch.call(0, 0).await.expect("a batch after the run");
    let rpcs_batched = cluster.rpcs() - rpcs;
    let batches = cluster.node(0).stats().peer_batches - batches;
    let rpcs = cluster.rpcs();
    one_by_one.call(0, 0).await.expect("gets after the run");
    let rpcs_single = cluster.rpcs() - rpcs;
    rows.push(
        Row::new(
            &format!("get_many of {KEYS} keys, 3 peers"),
            OURS,
            batched.clone(),
        )
        .note(format!(
            "{speedup:.1}x the rate of {KEYS} sequential gets (target >= 5x); \
             {rpcs_batched} peer requests per call ({batches} of them GetMany)",
        )),
    );
    rows.push(
        Row::new(
            &format!("{KEYS} sequential gets, 3 peers"),
            OURS,
            single.clone(),
        )
        .note(format!(
            "one operation is {KEYS} gets; {rpcs_single} peer requests per operation"
        )),
    );
}
