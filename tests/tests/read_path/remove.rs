//! `remove` and the hot cache (rules 1, 8 and 9).

use groupcache::cache::PromoteOneIn;
use groupcache_tests::{TestCluster, value_of, within_limit};

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
async fn remove_clears_this_peers_hot_copy_and_the_owners_value() {
    within_limit(async {
        let cluster = TestCluster::start_keeping_hot_copies(3).await;
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

        // As documented: node 2 is not told as such, and serves its hot copy until it expires;
        // unless it is the owner's previous owner (the owner joined a ring of the two others
        // when the cluster started), which the owner tells to drop what it keeps for handoff.
        let seen = cluster.node(2).get(&key).await.unwrap();
        if cluster.node(2).stats().hot_hits == 1 {
            assert_eq!(seen, value_of(&key, 1), "its hot copy");
        } else {
            assert_eq!(seen, value_of(&key, 2), "told, so fetched afresh");
            assert_eq!(cluster.loader.loads(&key), 2, "and no load more");
        }
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
