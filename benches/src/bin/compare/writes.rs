//! Writes: how long a `remove` takes to reach every peer, with 3 and 10 peers, one remove at a
//! time, each key held as a hot copy on the peers that read it. A remove is one request to the
//! key's owner (unless the caller is the owner) and one invalidation from the owner to every
//! other peer, answered once all have acknowledged. Ours only: the 0.3.0 crate tells only the
//! owner, and Go groupcache has no remove, so nothing there does the same work.

use std::sync::Arc;

use crate::cluster::{Cluster, PEER_TIMEOUT, Setup};
use crate::measure::{self, Op};
use crate::ours::Ours;
use crate::report::{OURS, Row};
use crate::workloads::Plan;

/// Keys read before the run, so that removes find copies to drop (removed keys are not read
/// again: later removes of them drop nothing but still reach every peer).
const KEYS: usize = 256;

struct Remove {
    cluster: Arc<Ours>,
    peers: usize,
    keys: Vec<String>,
}

impl Op for Remove {
    async fn call(&self, _: usize, i: u64) -> Result<(), String> {
        let key = &self.keys[i as usize % self.keys.len()];
        // The caller rotates over the peers, so that most removes go to another owner.
        let node = i as usize % self.peers;
        let removed = self
            .cluster
            .node(node)
            .remove(key)
            .await
            .map_err(|e| e.to_string())?;
        if removed.everywhere() {
            Ok(())
        } else {
            Err(format!("not acknowledged by {:?}", removed.unacknowledged))
        }
    }
}

pub(crate) async fn remove_latency(plan: &Plan, rows: &mut Vec<Row>) {
    if !plan.wants(OURS) {
        return;
    }
    for peers in [3, 10] {
        let setup = Setup {
            nodes: peers,
            value_size: 100,
            loader_delay: None,
            hot_cache: true,
            max_value: 100,
            peer_timeout: PEER_TIMEOUT,
            proxied: None,
            hedge_percentile: None,
        };
        let cluster = Arc::new(Ours::start(&setup).await);
        let keys: Vec<String> = (0..KEYS).map(|i| format!("written-{i}")).collect();
        for node in 0..peers {
            for key in &keys {
                cluster
                    .get(node, key)
                    .await
                    .expect("a read before the removes");
            }
        }
        let op = Arc::new(Remove {
            cluster,
            peers,
            keys,
        });
        let sample = measure::sequential(plan.budget, 1, &op).await;
        let mut row = Row::new(
            &format!("remove, {peers} peers, every peer acknowledging"),
            OURS,
            sample,
        );
        row.note = format!("one remove at a time; {} invalidated per remove", peers - 1);
        rows.push(row);
    }
}
