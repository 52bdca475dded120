//! A write on any peer reaches every peer: after it returns, no peer serves the old value.

use groupcache_tests::{ClusterSpec, TestCluster, value_of, within_limit};

const NODES: usize = 5;
const KEYS: usize = 100;

fn keys(round: u64) -> Vec<String> {
    (0..KEYS).map(|i| format!("r{round}-key-{i}")).collect()
}

/// Every node reads every key, so that each non-owner holds a hot copy of it.
async fn read_everywhere(cluster: &TestCluster, keys: &[String]) {
    for n in 0..NODES {
        for key in keys {
            cluster.node(n).get(key).await.unwrap();
        }
    }
}

/// Gets of every key on every node that return anything but `expected(key)`.
async fn stale_answers(
    cluster: &TestCluster,
    keys: &[String],
    expected: impl Fn(&str) -> String,
) -> usize {
    let mut stale = 0;
    for n in 0..NODES {
        for key in keys {
            if cluster.node(n).get(key).await.unwrap() != expected(key) {
                stale += 1;
            }
        }
    }
    stale
}

/// Without warm handoff, whose own removals (from a new owner to the previous one) would
/// drop copies too and blur what the invalidations did.
async fn keeping_every_copy() -> TestCluster {
    ClusterSpec::new(NODES)
        .configure(|_, b| b.handoff_window(std::time::Duration::ZERO))
        .keeping_hot_copies()
        .start()
        .await
}

// Issue 12: 5 peers all holding hot copies of 100 keys; the source changes; each key removed
// on a random peer; at once every peer returns the new value for every key. Over 3 seeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_remove_no_peer_serves_the_old_value() {
    within_limit(async {
        let cluster = keeping_every_copy().await;
        for seed in 1..=3u64 {
            let keys = keys(seed);
            cluster.loader.set_generation(seed);
            read_everywhere(&cluster, &keys).await;
            let hot_hits = || -> u64 { (0..NODES).map(|n| cluster.node(n).stats().hot_hits).sum() };
            let before = hot_hits();
            read_everywhere(&cluster, &keys).await;
            assert_eq!(
                hot_hits() - before,
                (KEYS * (NODES - 1)) as u64,
                "seed {seed}: every non-owner serves a copy"
            );

            cluster.loader.set_generation(seed + 100);
            let mut rng = fastrand::Rng::with_seed(seed);
            for key in &keys {
                let removed = cluster.node(rng.usize(..NODES)).remove(key).await.unwrap();
                assert!(removed.everywhere(), "seed {seed}: {removed:?}");
            }
            let stale = stale_answers(&cluster, &keys, |k| value_of(k, seed + 100)).await;
            assert_eq!(
                stale,
                0,
                "seed {seed}: stale answers out of {}",
                KEYS * NODES
            );
        }
        // Each owner told the other four members of each of its removals.
        let received: u64 = (0..NODES)
            .map(|n| cluster.peer_set(n).stats().invalidations_received)
            .sum();
        assert_eq!(received, (3 * KEYS * (NODES - 1)) as u64);
        let sent: u64 = (0..NODES)
            .map(|n| cluster.peer_set(n).stats().invalidations_sent)
            .sum();
        let acked: u64 = (0..NODES)
            .map(|n| cluster.peer_set(n).stats().invalidations_acknowledged)
            .sum();
        assert_eq!((sent, acked), (received, received));
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_then_get_on_every_peer_returns_the_set_value_without_a_load() {
    within_limit(async {
        let cluster = keeping_every_copy().await;
        let keys = keys(1);
        read_everywhere(&cluster, &keys).await;
        let loads_before: u64 = keys.iter().map(|k| cluster.loader.loads(k)).sum();
        assert_eq!(loads_before, KEYS as u64);
        let mut rng = fastrand::Rng::with_seed(7);
        for key in &keys {
            let set = cluster
                .node(rng.usize(..NODES))
                .set(key, format!("{key}:set"))
                .await
                .unwrap();
            assert!(set.everywhere(), "{set:?}");
        }
        let stale = stale_answers(&cluster, &keys, |k| format!("{k}:set")).await;
        assert_eq!(stale, 0, "stale answers out of {}", KEYS * NODES);
        let loads_after: u64 = keys.iter().map(|k| cluster.loader.loads(k)).sum();
        assert_eq!(loads_after, loads_before, "no load ran for a set value");
        let sets: u64 = (0..NODES).map(|n| cluster.node(n).stats().sets).sum();
        assert_eq!(sets, KEYS as u64);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_many_sends_one_request_per_owner_and_reaches_every_peer() {
    within_limit(async {
        let cluster = keeping_every_copy().await;
        let keys = keys(1);
        read_everywhere(&cluster, &keys).await;
        cluster.loader.set_generation(2);
        let served_before: Vec<u64> = (0..NODES)
            .map(|n| cluster.node(n).stats().server_requests)
            .collect();
        let removed = cluster.node(0).remove_many(&keys).await.unwrap();
        assert!(removed.everywhere(), "{removed:?}");
        for (n, before) in served_before.iter().enumerate().skip(1) {
            assert_eq!(
                cluster.node(n).stats().server_requests - before,
                1,
                "node {n}: one Remove for all of its keys"
            );
        }
        assert_eq!(stale_answers(&cluster, &keys, |k| value_of(k, 2)).await, 0);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_empties_every_peer() {
    within_limit(async {
        let cluster = keeping_every_copy().await;
        let keys = keys(1);
        read_everywhere(&cluster, &keys).await;
        cluster.loader.set_generation(2);
        let cleared = cluster.node(3).clear().await.unwrap();
        assert!(cleared.everywhere(), "{cleared:?}");
        for n in 0..NODES {
            let stats = cluster.node(n).stats();
            assert_eq!(
                (stats.main_cache.entries, stats.hot_cache.entries),
                (0, 0),
                "node {n}"
            );
        }
        assert_eq!(stale_answers(&cluster, &keys, |k| value_of(k, 2)).await, 0);
        cluster.shutdown().await;
    })
    .await;
}
