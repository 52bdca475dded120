//! Warm handoff on a membership change: a key's new owner asks its previous owner before
//! loading, so a scale-up does not send the moved keys to the database again; a node removed
//! and stopped costs one load per key it owned; and a remove during the handoff window never
//! brings the old value back.

use std::net::SocketAddr;
use std::time::Duration;

use groupcache_tests::{TestCluster, value_of, within_limit};
use tokio::task::JoinSet;

const KEYS: usize = 400;

/// Reads at once, at most: under load, not a stampede that only a busy 2-core machine's
/// scheduler would decide.
const IN_FLIGHT: usize = 32;

/// Reads every key once, from nodes `on` in turn, `IN_FLIGHT` at a time.
async fn read_all(cluster: &TestCluster, keys: &[String], on: &[usize]) {
    let mut reads = JoinSet::new();
    for (i, key) in keys.iter().enumerate() {
        if reads.len() >= IN_FLIGHT {
            reads.join_next().await.unwrap().unwrap();
        }
        let node = cluster.node(on[i % on.len()]).clone();
        let key = key.clone();
        reads.spawn(async move {
            let value = node.get(&key).await.unwrap();
            assert_eq!(value, value_of(&key, 1));
        });
    }
    while let Some(read) = reads.join_next().await {
        read.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_to_four_peers_reloads_at_most_five_percent_of_the_moved_keys() {
    within_limit(async {
        let cluster = TestCluster::start(4).await;
        let three: Vec<SocketAddr> = (0..3).map(|i| cluster.addr(i)).collect();
        let four: Vec<SocketAddr> = (0..4).map(|i| cluster.addr(i)).collect();
        // Three members; node 3 is not one yet (a process about to join).
        for i in 0..3 {
            cluster.set_peers_on(i, &three).await;
        }
        cluster.set_peers_on(3, &[]).await;
        let keys: Vec<String> = (0..KEYS).map(|i| format!("user-{i}")).collect();
        read_all(&cluster, &keys, &[0, 1, 2]).await;
        for key in &keys {
            assert_eq!(cluster.loader.loads(key), 1, "{key}: a warm cluster");
        }

        // Node 3 joins: every node learns the four-member ring, the new one first.
        cluster.set_peers_on(3, &four).await;
        for i in 0..3 {
            cluster.set_peers_on(i, &four).await;
        }
        let moved: Vec<&String> = keys
            .iter()
            .filter(|k| cluster.peer_set(0).owner_of(k).addr() == cluster.addr(3))
            .collect();
        assert!(moved.len() > KEYS / 8, "{} keys moved", moved.len());
        // Under load from every node, the new owner's included.
        read_all(&cluster, &keys, &[0, 1, 2, 3]).await;
        read_all(&cluster, &keys, &[3, 2, 1, 0]).await;

        let reloads: u64 = moved.iter().map(|k| cluster.loader.loads(k) - 1).sum();
        let stats = cluster.node(3).stats();
        println!(
            "{} of {KEYS} keys moved to the new peer: {reloads} reloaded, {} handed over, {} \
             asks missed",
            moved.len(),
            stats.handoff_hits,
            stats.handoff_misses
        );
        assert!(
            reloads * 20 <= moved.len() as u64,
            "{reloads} of {} moved keys reloaded",
            moved.len()
        );
        assert!(
            stats.handoff_hits >= moved.len() as u64 * 95 / 100,
            "{stats:?}"
        );
        let unmoved_reloads: u64 = keys
            .iter()
            .filter(|k| !moved.contains(k))
            .map(|k| cluster.loader.loads(k) - 1)
            .sum();
        assert_eq!(unmoved_reloads, 0, "keys that stayed put never reload");
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_removed_and_stopped_costs_one_load_per_key_it_owned() {
    within_limit(async {
        let mut cluster = TestCluster::start(4).await;
        let keys: Vec<String> = (0..KEYS).map(|i| format!("item-{i}")).collect();
        read_all(&cluster, &keys, &[0, 1, 2, 3]).await;
        let leaving = 3;
        let its_keys: Vec<String> = keys
            .iter()
            .filter(|k| cluster.owner_of(k) == leaving)
            .cloned()
            .collect();
        assert!(!its_keys.is_empty());

        // Discovery drops it, then it stops, as in a scale-down.
        let three: Vec<SocketAddr> = (0..3).map(|i| cluster.addr(i)).collect();
        for i in 0..3 {
            cluster.set_peers_on(i, &three).await;
        }
        cluster.kill(leaving).await;
        // Every survivor asks for every one of its keys, twice, many at a time.
        for _ in 0..2 {
            read_all(&cluster, &its_keys, &[0, 1, 2]).await;
            read_all(&cluster, &its_keys, &[2, 0, 1]).await;
            read_all(&cluster, &its_keys, &[1, 2, 0]).await;
        }
        for key in &its_keys {
            assert_eq!(
                cluster.loader.loads(key),
                2,
                "{key}: loaded once more, not twice"
            );
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_owner_takes_a_moved_value_over_and_a_remove_keeps_it_gone() {
    within_limit(async {
        let cluster = TestCluster::start(2).await;
        let key = cluster.key_owned_by(0, "moves");
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        assert_eq!(cluster.loader.loads_on(0, &key), 1);

        // Node 1 alone becomes the whole ring on both peers.
        let alone = [cluster.addr(1)];
        cluster.set_peers_on(0, &alone).await;
        cluster.set_peers_on(1, &alone).await;
        assert_eq!(
            cluster.node(0).stats().main_cache.entries,
            0,
            "the former owner keeps nothing it serves its own callers from"
        );
        // Node 0's get goes to the new owner, which takes the value from node 0 instead of
        // loading it.
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        assert_eq!(cluster.node(0).stats().peer_loads, 1);
        let owner = cluster.node(1).stats();
        assert_eq!((owner.handoff_hits, owner.local_loads), (1, 0), "{owner:?}");

        // The value changes and is removed on the new owner: it tells the former owner too, and
        // remembers the removal, so the next miss loads the new value instead of taking the old
        // one over again.
        cluster.loader.set_generation(2);
        cluster.node(1).remove(&key).await.unwrap();
        assert_eq!(cluster.node(1).get(&key).await.unwrap(), value_of(&key, 2));
        assert_eq!(cluster.loader.loads_on(1, &key), 1, "loaded afresh");
        let owner = cluster.node(1).stats();
        assert_eq!(
            (owner.handoff_hits, owner.handoff_misses),
            (1, 0),
            "the removal is remembered for the window: the old owner is not even asked: {owner:?}"
        );
        // Node 0's own callers never saw the handoff copy.
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 2));
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_window_a_new_owner_loads_without_asking() {
    within_limit(async {
        let window = Duration::from_millis(200);
        let cluster = TestCluster::start_with(2, move |_, b| b.handoff_window(window)).await;
        let key = cluster.key_owned_by(0, "late");
        cluster.node(0).get(&key).await.unwrap();
        let alone = [cluster.addr(1)];
        cluster.set_peers_on(0, &alone).await;
        cluster.set_peers_on(1, &alone).await;
        tokio::time::sleep(window * 2).await; // the window is a span of time: wait it out
        assert_eq!(cluster.node(1).get(&key).await.unwrap(), value_of(&key, 1));
        let owner = cluster.node(1).stats();
        assert_eq!(
            (owner.handoff_hits, owner.handoff_misses),
            (0, 0),
            "{owner:?}"
        );
        assert_eq!(cluster.loader.loads_on(1, &key), 1);
        cluster.shutdown().await;
    })
    .await;
}
