//! `remove` and the hot cache (rules 1, 8 and 9); every peer's copies: `tests/writes`.

use groupcache::cache::PromoteOneIn;
use groupcache_tests::{ClusterSpec, TestCluster, value_of, within_limit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_hit_sends_no_rpc() {
    within_limit(async {
        let cluster = TestCluster::start_keeping_hot_copies(2).await;
        let key = cluster.key_owned_by(1, "hot");
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        let before = cluster.node(0).stats();
        assert_eq!(before.peer_loads, 1);
        assert_eq!(before.hot_cache.entries, 1, "promoted");
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        let after = cluster.node(0).stats();
        assert_eq!(after.hot_hits, 1);
        assert_eq!(after.peer_loads, 1, "no second RPC");
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_promotion_every_remote_get_asks_the_owner() {
    within_limit(async {
        let cluster =
            TestCluster::start_with_group(2, |_, g| g.hot_cache_policy(PromoteOneIn(0))).await;
        let key = cluster.key_owned_by(1, "cold");
        for _ in 0..3 {
            assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        }
        let stats = cluster.node(0).stats();
        assert_eq!(stats.peer_loads, 3);
        assert_eq!(stats.hot_hits, 0);
        assert_eq!(
            cluster.loader.loads(&key),
            1,
            "the owner served it from its main cache"
        );
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_clears_every_peers_hot_copy_and_the_owners_value() {
    within_limit(async {
        // Without warm handoff: with it, the owner would also tell the peer it treats as the
        // key's previous owner (every peer joins a ring of the others when it starts), which
        // may be node 2.
        let cluster = ClusterSpec::new(3)
            .configure(|_, b| b.handoff_window(std::time::Duration::ZERO))
            .keeping_hot_copies()
            .start()
            .await;
        let owner = 1;
        let key = cluster.key_owned_by(owner, "removed");
        // Nodes 0 and 2 both fetch the value and keep hot copies.
        for n in [0, 2] {
            assert_eq!(cluster.node(n).get(&key).await.unwrap(), value_of(&key, 1));
        }
        assert_eq!(cluster.loader.loads(&key), 1);

        // The source of truth changes; node 0 removes the key.
        cluster.loader.set_generation(2);
        cluster.node(0).remove(&key).await.unwrap();

        // Node 0 has no hot copy and the owner reloads: node 0 sees the new value.
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 2));
        assert_eq!(
            cluster.loader.loads_on(owner, &key),
            2,
            "the owner reloaded"
        );
        assert_eq!(
            cluster.node(owner).get(&key).await.unwrap(),
            value_of(&key, 2)
        );

        // Node 2 was told too (issue 12; before it, it served its hot copy until it expired).
        assert_eq!(cluster.node(2).get(&key).await.unwrap(), value_of(&key, 2));
        assert_eq!(cluster.node(2).stats().hot_hits, 0);
        assert_eq!(cluster.peer_set(2).stats().invalidations_received, 1);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_on_the_owner_reloads_on_the_next_get() {
    within_limit(async {
        let cluster = TestCluster::start(2).await;
        let key = cluster.key_owned_by(0, "own");
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        cluster.loader.set_generation(7);
        cluster.node(0).remove(&key).await.unwrap();
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 7));
        assert_eq!(cluster.loader.loads(&key), 2);
        assert_eq!(cluster.node(0).stats().removes, 1);
        cluster.shutdown().await;
    })
    .await;
}
