//! Batched reads: `get_many` of 100 keys over 3 peers against the same 100 keys asked for one
//! `get` at a time, from one caller. No hot cache: each remote key is asked of its owner every
//! time, so the batch sends one request per other owner (2) where the gets send one per remote
//! key (about 67). Ours only: neither the 0.3.0 crate nor Go groupcache has a batched get.

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
    let (batches_before, rpcs_before) = (cluster.node(0).stats().peer_batches, cluster.rpcs());
    let mut rpcs_batched = 0;
    for _ in 0..rounds {
        let before = cluster.rpcs();
        let sample = measure::sequential(budget, 1, &batch).await;
        rpcs_batched += cluster.rpcs() - before;
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
    let batches = cluster.node(0).stats().peer_batches - batches_before;
    let per_call = |requests: u64, sample: &Sample| requests as f64 / sample.ops.max(1) as f64;
    let rpcs_single = cluster.rpcs() - rpcs_before - rpcs_batched;
    rows.push(
        Row::new(
            &format!("get_many of {KEYS} keys, 3 peers"),
            OURS,
            batched.clone(),
        )
        .note(format!(
            "{speedup:.1}x the rate of {KEYS} sequential gets (target >= 5x); {:.1} peer \
             requests per call ({:.1} of them GetMany)",
            per_call(rpcs_batched, &batched),
            per_call(batches, &batched),
        )),
    );
    rows.push(
        Row::new(
            &format!("{KEYS} sequential gets, 3 peers"),
            OURS,
            single.clone(),
        )
        .note(format!(
            "one operation is {KEYS} gets; {:.1} peer requests per operation",
            per_call(rpcs_single, &single)
        )),
    );
}
