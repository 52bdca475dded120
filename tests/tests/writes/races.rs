//! No resurrection: a load or fetch that began before a write answers the callers already
//! waiting for it, but what it read is never kept, on the owner or as a copy anywhere.

use groupcache_tests::{ClusterSpec, Script, spawn_get, value_of, wait_until, within_limit};

const NODES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_and_a_fetch_in_flight_during_remove_are_never_served_after_it() {
    within_limit(async {
        let cluster = ClusterSpec::new(NODES).keeping_hot_copies().start().await;
        let owner = 1;
        let fetcher = 2;
        let key = cluster.key_owned_by(owner, "racing");
        // A load on the owner, held open, reading generation 1; a fetch from node 2 waiting
        // for it, and a get on the owner joining it.
        cluster.loader.script(&key, Script::Gate);
        let fetched = spawn_get(cluster.node(fetcher), &key);
        let owners = spawn_get(cluster.node(owner), &key);
        wait_until("the owner's load has both callers", || {
            cluster.node(owner).inflight_load_waiters(&key) == 2
        })
        .await;
        assert_eq!(
            cluster.node(fetcher).inflight_waiters(&key),
            1,
            "node 2 is fetching"
        );

        // The source changes and node 0 removes the key while both are in flight.
        cluster.loader.set_generation(2);
        cluster.loader.script(&key, Script::Value);
        let removed = cluster.node(0).remove(&key).await.unwrap();
        assert!(removed.everywhere(), "{removed:?}");

        // Gets that start after `remove` returned see the new value on every node, while the
        // old load is still held...
        for n in 0..NODES {
            assert_eq!(
                cluster.node(n).get(&key).await.unwrap(),
                value_of(&key, 2),
                "node {n}"
            );
        }
        // ...and after it answered its callers (which may get the old value: they asked
        // before the removal).
        cluster.loader.release();
        for caller in [fetched, owners] {
            let answer = caller.await.unwrap().unwrap();
            assert!(
                answer == value_of(&key, 1) || answer == value_of(&key, 2),
                "{answer}"
            );
        }
        for n in 0..NODES {
            for _ in 0..3 {
                assert_eq!(
                    cluster.node(n).get(&key).await.unwrap(),
                    value_of(&key, 2),
                    "node {n}: what the old load read was kept"
                );
            }
        }
        assert_eq!(
            cluster.loader.loads_on(owner, &key),
            2,
            "the old load and one new one"
        );
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_racing_a_load_wins_over_what_the_load_read() {
    within_limit(async {
        let cluster = ClusterSpec::new(NODES).keeping_hot_copies().start().await;
        let owner = 1;
        let key = cluster.key_owned_by(owner, "set-race");
        cluster.loader.script(&key, Script::Gate);
        let loading = spawn_get(cluster.node(3), &key);
        wait_until("the owner is loading", || {
            cluster.node(owner).inflight_load_waiters(&key) == 1
        })
        .await;
        let set = cluster
            .node(0)
            .set(&key, "written".to_owned())
            .await
            .unwrap();
        assert!(set.everywhere(), "{set:?}");
        cluster.loader.release();
        let answer = loading.await.unwrap().unwrap();
        assert!(
            answer == value_of(&key, 1) || answer == "written",
            "{answer}"
        );
        for n in 0..NODES {
            for _ in 0..3 {
                assert_eq!(
                    cluster.node(n).get(&key).await.unwrap(),
                    "written",
                    "node {n}"
                );
            }
        }
        assert_eq!(
            cluster.loader.loads(&key),
            1,
            "only the load that raced the set"
        );
        cluster.shutdown().await;
    })
    .await;
}
