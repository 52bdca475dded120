//! A lost invalidation is found: by the next batch's sequence number, or by a lease renewal;
//! then the peer drops every copy of that owner's values.

use std::time::Duration;

use groupcache_tests::{ClusterSpec, TestCluster, value_of, within_limit};

const LEASE: Duration = Duration::from_secs(1);

async fn three_nodes() -> TestCluster {
    ClusterSpec::new(3)
        .configure(|_, b| {
            // Without warm handoff: its removals (from a key's new owner to the previous one,
            // maybe the reader) would drop the reader's copy and hide the lost invalidation.
            b.peer_timeout(Duration::from_millis(500))
                .hot_copy_lease(LEASE)
                .handoff_window(Duration::ZERO)
        })
        .keeping_hot_copies()
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_batch_reveals_a_lost_invalidation() {
    within_limit(async {
        let cluster = three_nodes().await;
        let (owner, reader) = (1, 2);
        let key = cluster.key_owned_by(owner, "lost");
        let other = cluster.key_owned_by(owner, "other");
        for k in [&key, &other] {
            cluster.node(reader).get(k).await.unwrap();
        }
        assert_eq!(cluster.node(reader).stats().hot_cache.entries, 2);

        cluster.loader.set_generation(2);
        cluster.drop_invalidations(reader, true);
        let removed = cluster.node(0).remove(&key).await.unwrap();
        assert_eq!(
            removed.unacknowledged,
            vec![cluster.peer_set(reader).me().clone()]
        );
        assert_eq!(cluster.peer_set(reader).stats().invalidation_gaps, 0);

        // The link heals; the owner's next write to this peer follows a number it never got.
        cluster.drop_invalidations(reader, false);
        let third = cluster.key_owned_by(owner, "third");
        assert!(cluster.node(0).remove(&third).await.unwrap().everywhere());
        assert_eq!(
            cluster.peer_set(reader).stats().invalidation_gaps,
            1,
            "the gap was found"
        );
        // Both copies of the owner's values are gone, the removed key's and the other's.
        assert_eq!(
            cluster.node(reader).get(&key).await.unwrap(),
            value_of(&key, 2)
        );
        let before = cluster.node(reader).stats().peer_loads;
        cluster.node(reader).get(&other).await.unwrap();
        assert_eq!(
            cluster.node(reader).stats().peer_loads,
            before + 1,
            "fetched again"
        );
        assert!(cluster.node(reader).stats().hot_cache.lapsed >= 1);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_further_writes_the_lease_renewal_reveals_it() {
    within_limit(async {
        let cluster = three_nodes().await;
        let (owner, reader) = (1, 2);
        let key = cluster.key_owned_by(owner, "lost");
        cluster.node(reader).get(&key).await.unwrap();

        cluster.loader.set_generation(2);
        cluster.drop_invalidations(reader, true);
        let removed = cluster.node(0).remove(&key).await.unwrap();
        assert_eq!(
            removed.unacknowledged,
            vec![cluster.peer_set(reader).me().clone()]
        );
        let removed_at = tokio::time::Instant::now();

        // Reads of the copy renew the lease in its second half; the owner's answer names an
        // invalidation this peer never got, so the renewal drops the copy. At most the lease
        // after the owner last answered (before the removal), plus the renewal's wait for the
        // missing batch (the peer timeout), plus scheduling slack.
        loop {
            if cluster.node(reader).get(&key).await.unwrap() == value_of(&key, 2) {
                break;
            }
            assert!(
                removed_at.elapsed() < LEASE * 4,
                "the reader kept serving the removed value"
            );
            // A reader's polling interval; nothing to wait on: the copy lapses on its own.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            removed_at.elapsed() < LEASE * 3,
            "{:?}",
            removed_at.elapsed()
        );
        let stats = cluster.peer_set(reader).stats();
        assert!(
            stats.invalidation_gaps == 1 || cluster.node(reader).stats().hot_cache.lapsed > 0,
            "{stats:?}"
        );
        cluster.shutdown().await;
    })
    .await;
}
