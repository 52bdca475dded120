//! Interleavings a review of the writes found breaking the Consistency guarantee, fixed: each
//! test failed before its fix.

use std::time::Duration;

use groupcache_tests::{ClusterSpec, value_of, within_limit};

/// The owner broadcasts only to the members of its own ring; a peer it has not learned of yet
/// (or has dropped) can still fetch from it. It used to keep a leased hot copy that no write
/// reached; now the owner's answer says it does not tell that peer, which keeps no copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_missing_from_the_owners_ring_is_neither_told_nor_named() {
    within_limit(async {
        let cluster = ClusterSpec::new(3)
            .configure(|_, b| b.handoff_window(Duration::ZERO))
            .keeping_hot_copies()
            .start()
            .await;
        let (owner, reader) = (1, 2);
        let key = cluster.key_owned_by(owner, "unseen");
        // Discovery lag: the owner has not learned of the reader yet.
        cluster
            .set_peers_on(owner, &[cluster.addr(0), cluster.addr(1)])
            .await;
        assert_eq!(
            cluster.node(owner).owner_of(&key).addr(),
            cluster.addr(owner)
        );
        assert_eq!(
            cluster.node(reader).get(&key).await.unwrap(),
            value_of(&key, 1)
        );
        assert_eq!(
            cluster.node(reader).stats().hot_cache.entries,
            0,
            "no copy: the owner's writes do not reach this peer"
        );

        cluster.loader.set_generation(2);
        let removed = cluster.node(0).remove(&key).await.unwrap();
        assert!(removed.everywhere(), "{removed:?}");
        assert_eq!(
            cluster.node(reader).get(&key).await.unwrap(),
            value_of(&key, 2),
            "remove returned everywhere(), yet the reader serves the old value"
        );
        cluster.shutdown().await;
    })
    .await;
}

/// The owner's `Remove` handler used to await `tell_previous_owner` (500 ms, per key) before it
/// numbered and queued the invalidations; the service's deadline (the peer timeout) dropped the
/// handler there: the owner had dropped its copy, no member was told, no sequence number was
/// used, so no gap was ever found and members served their copies for the hot cache TTL. Now
/// the invalidations are queued before anything is awaited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_cancelled_before_its_broadcast_leaves_copies_for_ever() {
    within_limit(async {
        const LEASE: Duration = Duration::from_secs(1);
        let cluster = ClusterSpec::new(3)
            .configure(|_, b| {
                b.peer_timeout(Duration::from_millis(400))
                    .hot_copy_lease(LEASE)
            })
            .keeping_hot_copies()
            .start()
            .await;
        let (owner, reader) = (1, 2);
        // A peer whose address stops answering (a deleted pod): bound, never accepted.
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone_addr = gone.local_addr().unwrap();
        let with_gone = [cluster.addr(0), cluster.addr(1), cluster.addr(2), gone_addr];
        cluster.set_peers_on(owner, &with_gone).await;
        let keys: Vec<String> = (0..)
            .map(|n| format!("moved-{n}"))
            .filter(|k| {
                cluster.node(owner).owner_of(k).addr() == gone_addr
                    && cluster.node(0).owner_of(k).addr() == cluster.addr(owner)
            })
            .take(2)
            .collect();
        // The gone peer leaves the owner's ring: the handoff window opens, the keys' previous
        // owner being the gone peer.
        let without = [cluster.addr(0), cluster.addr(1), cluster.addr(2)];
        cluster.set_peers_on(owner, &without).await;
        for key in &keys {
            assert_eq!(
                cluster.node(owner).owner_of(key).addr(),
                cluster.addr(owner)
            );
            // The owner loads it (after a handoff ask that finds nothing), the reader keeps a copy.
            assert_eq!(
                cluster.node(reader).get(key).await.unwrap(),
                value_of(key, 1)
            );
        }
        assert_eq!(cluster.node(reader).stats().hot_cache.entries, 2);

        cluster.loader.set_generation(2);
        let sent = cluster.peer_set(owner).stats().invalidations_sent;
        let removed = cluster.node(0).remove_many(&keys).await;
        eprintln!("remove_many: {removed:?}");
        // The owner dropped its copies...
        for key in &keys {
            assert_eq!(
                cluster.node(owner).get(key).await.unwrap(),
                value_of(key, 2)
            );
        }
        // ...and told the reader, in contact with the owner the whole time: it never serves
        // the old values again.
        let after = std::time::Instant::now();
        let mut last_stale = None;
        for _ in 0..12 {
            tokio::time::sleep(LEASE / 4).await;
            for key in &keys {
                if cluster.node(reader).get(key).await.unwrap() != value_of(key, 2) {
                    last_stale = Some(after.elapsed());
                }
            }
        }
        assert_eq!(
            last_stale,
            None,
            "stale reads on the reader (lease {LEASE:?}); the owner sent {} invalidations since; \
             the reader found {} gaps",
            cluster.peer_set(owner).stats().invalidations_sent - sent,
            cluster.peer_set(reader).stats().invalidation_gaps
        );
        drop(gone);
        cluster.shutdown().await;
    })
    .await;
}

/// A loader that says "forever" with `Duration::MAX`: the owner added it to `Instant::now()`
/// and panicked; times to live are now cut to a day.
#[tokio::test]
async fn a_loader_time_to_live_of_duration_max_does_not_panic() {
    struct Forever;
    #[groupcache::async_trait]
    impl groupcache::ValueLoader for Forever {
        type Value = String;
        async fn load(&self, key: &str) -> Result<String, groupcache::BoxError> {
            Ok(key.to_owned())
        }
        fn time_to_live(&self, _key: &str, _value: &String) -> Option<Duration> {
            Some(Duration::MAX)
        }
    }
    let cache =
        groupcache::Groupcache::builder("127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap())
            .build();
    let group = cache
        .group("forever", Forever)
        .ttl_jitter(0.0)
        .build()
        .unwrap();
    assert_eq!(group.get("k").await.unwrap(), "k");
    group.set("k", "v".to_owned()).await.unwrap();
    assert_eq!(group.get("k").await.unwrap(), "v");
}
