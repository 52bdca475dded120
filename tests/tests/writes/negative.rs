//! Negative caching: off by default; on, the owner keeps a `NotFound` for its time to live,
//! and `set` and `remove` drop it like any entry.

use std::time::Duration;

use groupcache_tests::{ClusterSpec, Script, value_of, within_limit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_it_every_get_of_a_missing_key_loads() {
    within_limit(async {
        let cluster = ClusterSpec::new(2).start().await;
        let key = cluster.key_owned_by(1, "missing");
        cluster.loader.script(&key, Script::NotFound);
        for n in [0, 1, 0] {
            let err = cluster.node(n).get(&key).await.unwrap_err();
            assert_eq!(err.kind(), groupcache::ErrorKind::NotFound);
        }
        assert_eq!(cluster.loader.loads(&key), 3);
        assert_eq!(cluster.node(1).stats().negative_hits, 0);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_it_the_owner_answers_not_found_without_loading_until_a_write() {
    within_limit(async {
        let cluster = ClusterSpec::new(2)
            .configure_group(|_, g| g.not_found_ttl(Some(Duration::from_secs(60))))
            .start()
            .await;
        let key = cluster.key_owned_by(1, "missing");
        cluster.loader.script(&key, Script::NotFound);
        for n in [0, 1, 0, 1] {
            let err = cluster.node(n).get(&key).await.unwrap_err();
            assert_eq!(err.kind(), groupcache::ErrorKind::NotFound, "{err:?}");
        }
        assert_eq!(cluster.loader.loads(&key), 1, "the owner kept the NotFound");
        assert_eq!(cluster.node(1).stats().negative_hits, 3);

        // The key comes into existence: `set` replaces the NotFound...
        cluster
            .node(0)
            .set(&key, "now here".to_owned())
            .await
            .unwrap();
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), "now here");
        // ...and after `remove`, the next get loads again.
        cluster.loader.script(&key, Script::Value);
        cluster.node(0).remove(&key).await.unwrap();
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        assert_eq!(cluster.loader.loads(&key), 2);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_drops_a_cached_not_found() {
    within_limit(async {
        let cluster = ClusterSpec::new(2)
            .configure_group(|_, g| g.not_found_ttl(Some(Duration::from_secs(60))))
            .start()
            .await;
        let key = cluster.key_owned_by(1, "appears");
        cluster.loader.script(&key, Script::NotFound);
        assert!(cluster.node(0).get(&key).await.is_err());
        cluster.loader.script(&key, Script::Value);
        assert!(
            cluster.node(0).get(&key).await.is_err(),
            "still the cached NotFound"
        );
        cluster.node(0).remove(&key).await.unwrap();
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        cluster.shutdown().await;
    })
    .await;
}
