//! Loopback clusters of real tonic servers: exactly-once across peers, remote answers,
//! routing agreement, no forwarding, input limits.

use std::time::{Duration, Instant};

use groupcache::{ErrorKind, GroupcachePeer};
use groupcache_tests::{ClusterSpec, Script, TestCluster, value_of, wait_until, within_limit};
use tokio::task::JoinSet;

/// A cluster whose peers never ask a key's previous owner before loading it.
async fn without_handoff(nodes: usize) -> TestCluster {
    TestCluster::start_with(nodes, |_, b| b.handoff_window(Duration::ZERO)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_of_10_000_over_3_peers_loads_once_in_the_cluster() {
    within_limit(async {
        // A peer timeout longer than the test: a fallback here would be a bug, not a fault.
        let cluster =
            TestCluster::start_with(3, |_, b| b.peer_timeout(Duration::from_secs(60))).await;
        let owner = 2;
        let key = cluster.key_owned_by(owner, "herd");
        cluster.loader.script(&key, Script::Gate);

        let mut callers = JoinSet::new();
        for i in 0..10_000 {
            let cache = cluster.node(i % 3).clone();
            let key = key.clone();
            callers.spawn(async move { cache.get(&key).await });
        }
        let caches = cluster.caches();
        wait_until("all 10,000 callers wait", || {
            caches
                .iter()
                .map(|c| c.inflight_waiters(&key))
                .sum::<usize>()
                == 10_000
        })
        .await;
        wait_until("both other peers' requests reached the owner", || {
            cluster.node(owner).inflight_load_waiters(&key) == 3
        })
        .await;
        cluster.loader.release();

        while let Some(result) = callers.join_next().await {
            assert_eq!(result.unwrap().unwrap(), value_of(&key, 1));
        }
        assert_eq!(
            cluster.loader.loads(&key),
            1,
            "one load in the whole cluster"
        );
        assert_eq!(cluster.loader.loads_on(owner, &key), 1);
        for i in 0..3 {
            let stats = cluster.node(i).stats();
            if i == owner {
                assert_eq!(stats.peer_loads, 0);
                assert_eq!(stats.server_requests, 2, "one request from each other peer");
            } else {
                assert_eq!(stats.peer_loads, 1, "node {i} sent one RPC for the key");
                assert_eq!(stats.peer_errors, 0);
            }
            assert_eq!(
                stats.loads_deduped, 1,
                "node {i}: one flight, everyone else joined it"
            );
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_loader_error_is_returned_not_retried_locally() {
    within_limit(async {
        let cluster = TestCluster::start(2).await;
        let key = cluster.key_owned_by(1, "failing");
        cluster
            .loader
            .script(&key, Script::Fail("db said no".into()));

        let err = cluster.node(0).get(&key).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Loader);
        assert_eq!(err.peer().map(GroupcachePeer::addr), Some(cluster.addr(1)));
        assert!(err.to_string().contains("db said no"), "{err}");
        assert_eq!(cluster.loader.loads_on(0, &key), 0, "no local retry");
        assert_eq!(cluster.loader.loads_on(1, &key), 1);
        assert_eq!(cluster.node(0).stats().peer_errors, 0);

        // Not cached on either side: the next get asks again and succeeds.
        cluster.loader.script(&key, Script::Value);
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        assert_eq!(cluster.loader.loads_on(1, &key), 2);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_not_found_is_returned_not_retried_locally() {
    within_limit(async {
        let cluster = TestCluster::start(2).await;
        let key = cluster.key_owned_by(1, "ghost");
        cluster.loader.script(&key, Script::NotFound);
        let err = cluster.node(0).get(&key).await.unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        assert_eq!(cluster.loader.loads_on(0, &key), 0);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_the_owner_is_a_clean_error_and_the_owner_keeps_serving() {
    within_limit(async {
        let cluster = TestCluster::start(2).await;
        let bad = cluster.key_owned_by(1, "bad");
        let good = cluster.key_owned_by(1, "good");
        cluster.loader.script(&bad, Script::Panic);

        let err = cluster.node(0).get(&bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::LoaderPanicked);
        assert!(err.to_string().contains("loader exploded"), "{err}");
        assert_eq!(cluster.loader.loads_on(0, &bad), 0, "no local retry");

        // Same server, same connection: other keys are still served.
        assert_eq!(
            cluster.node(0).get(&good).await.unwrap(),
            value_of(&good, 1)
        );
        // The panicked key was not cached: it loads again once fixed.
        cluster.loader.script(&bad, Script::Value);
        assert_eq!(cluster.node(0).get(&bad).await.unwrap(), value_of(&bad, 1));
        assert_eq!(cluster.loader.loads_on(1, &bad), 2);
        assert_eq!(cluster.node(0).stats().peer_errors, 0);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_the_same_list_agree_on_every_owner() {
    within_limit(async {
        let cluster = TestCluster::start(3).await;
        for i in 0..2_000 {
            let key = format!("key-{i}");
            let owners: Vec<_> = (0..3).map(|n| cluster.node(n).owner_of(&key)).collect();
            assert!(owners.windows(2).all(|w| w[0] == w[1]), "{key}: {owners:?}");
        }
        // And each owner is the one that loads: fetch a spread of keys from every node.
        for i in 0..60 {
            let key = format!("spread-{i}");
            cluster.node(i % 3).get(&key).await.unwrap();
            assert_eq!(cluster.loader.loads_on(cluster.owner_of(&key), &key), 1);
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_whose_lists_disagree_answer_without_forwarding() {
    within_limit(async {
        let cluster =
            TestCluster::start_with(2, |_, b| b.peer_timeout(Duration::from_secs(5))).await;
        // Each believes the other owns every key.
        cluster.set_peers_on(0, &[cluster.addr(1)]).await;
        cluster.set_peers_on(1, &[cluster.addr(0)]).await;

        let started = Instant::now();
        assert_eq!(cluster.node(0).get("k").await.unwrap(), value_of("k", 1));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answered in one round trip, not after a timeout: {:?}",
            started.elapsed()
        );
        assert_eq!(
            cluster.loader.loads_on(1, "k"),
            1,
            "the asked peer loaded it"
        );
        assert_eq!(cluster.loader.loads_on(0, "k"), 0);
        assert_eq!(cluster.node(1).stats().peer_loads, 0, "and did not forward");
        assert_eq!(cluster.node(0).stats().peer_errors, 0);
        // Node 1 does not own "k" by its own ring, so it kept no main-cache copy.
        assert_eq!(cluster.node(1).stats().main_cache.entries, 0);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_peers_or_only_itself_every_key_loads_locally() {
    within_limit(async {
        // Without warm handoff: node 1, left alone, would otherwise take over what node 0
        // (its previous owner for some keys) holds instead of loading it (see handoff.rs).
        let cluster = without_handoff(2).await;
        cluster.set_peers_on(0, &[]).await;
        cluster.set_peers_on(1, &[cluster.addr(1)]).await;
        for n in 0..2 {
            for i in 0..20 {
                let key = format!("local-{i}");
                assert_eq!(cluster.node(n).get(&key).await.unwrap(), value_of(&key, 1));
                assert_eq!(cluster.loader.loads_on(n, &key), 1);
            }
            let stats = cluster.node(n).stats();
            assert_eq!(stats.peer_loads, 0);
            assert_eq!(
                stats.main_cache.entries, 20,
                "all owned, all in the main cache"
            );
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_key_is_refused_before_any_rpc() {
    within_limit(async {
        let cluster = TestCluster::start_with(2, |_, b| b.max_key_len(64)).await;
        // Find keys of exactly 64 and 65 bytes that node 1 owns.
        let at_limit = (0..)
            .map(|i| format!("{i:0>64}"))
            .find(|k| cluster.owner_of(k) == 1)
            .unwrap();
        let over = (0..)
            .map(|i| format!("{i:0>65}"))
            .find(|k| cluster.owner_of(k) == 1)
            .unwrap();

        assert_eq!(
            cluster.node(0).get(&at_limit).await.unwrap(),
            value_of(&at_limit, 1)
        );
        let sent = cluster.node(0).stats().peer_loads;
        let received = cluster.node(1).stats().server_requests;

        let err = cluster.node(0).get(&over).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyTooLong);
        assert!(
            err.to_string()
                .contains("65 bytes exceeds the maximum key length of 64"),
            "{err}"
        );
        assert_eq!(cluster.node(0).stats().peer_loads, sent, "no RPC sent");
        assert_eq!(
            cluster.node(1).stats().server_requests,
            received,
            "none received"
        );
        assert_eq!(cluster.loader.loads(&over), 0);
        assert_eq!(cluster.node(0).stats().rejected_keys, 1);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_at_the_size_limit_pass_and_one_byte_over_fails_everywhere() {
    within_limit(async {
        const LIMIT: usize = 64 * 1024;
        let cluster = TestCluster::start_with(2, |_, b| b.max_value_size(LIMIT)).await;
        // postcard prefixes a string with its length as a varint: 3 bytes at this size.
        let fits = cluster.key_owned_by(1, "fits");
        let too_big = cluster.key_owned_by(1, "too-big");
        cluster.loader.script(&fits, Script::Size(LIMIT - 3));
        cluster.loader.script(&too_big, Script::Size(LIMIT - 2));

        assert_eq!(cluster.node(0).get(&fits).await.unwrap().len(), LIMIT - 3);
        let err = cluster.node(0).get(&too_big).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueTooLarge, "{err:?}");
        assert_eq!(cluster.loader.loads_on(0, &too_big), 0, "no local retry");
        let err = cluster.node(1).get(&too_big).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueTooLarge, "{err:?}");
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_heavier_than_the_cache_is_returned_but_not_kept() {
    within_limit(async {
        let cluster = TestCluster::start_with_group(1, |_, g| g.main_cache_capacity(1024)).await;
        cluster.loader.script("big", Script::Size(4096));
        assert_eq!(cluster.node(0).get("big").await.unwrap().len(), 4096);
        assert_eq!(cluster.node(0).get("big").await.unwrap().len(), 4096);
        assert_eq!(
            cluster.loader.loads("big"),
            2,
            "not cached, loaded each time"
        );
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_owner_drops_values_it_no_longer_owns() {
    within_limit(async {
        // Without warm handoff, a moved key reloads on its new owner; with it (the default),
        // the new owner takes the value over: `faults/handoff.rs`.
        let cluster = without_handoff(2).await;
        let key = cluster.key_owned_by(0, "moves");
        let other = cluster.key_owned_by(0, "other");
        for k in [&key, &other] {
            cluster.node(0).get(k).await.unwrap();
        }
        assert_eq!(cluster.node(0).stats().main_cache.entries, 2);

        // Node 1 alone is now the whole ring on both peers: it owns everything.
        cluster.set_peers_on(0, &[cluster.addr(1)]).await;
        cluster.set_peers_on(1, &[cluster.addr(1)]).await;
        assert_eq!(
            cluster.node(0).stats().main_cache.entries,
            0,
            "nothing owned, nothing kept"
        );

        // So node 0 asks the new owner instead of serving its old copy.
        cluster.loader.set_generation(2);
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 2));
        assert_eq!(cluster.loader.loads_on(1, &key), 1);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_owner_drops_its_hot_copy_and_loads_afresh() {
    within_limit(async {
        // Without warm handoff (with it, the new owner asks node 1 first: `faults/handoff.rs`).
        let cluster = ClusterSpec::new(2)
            .configure(|_, b| b.handoff_window(Duration::ZERO))
            .keeping_hot_copies()
            .start()
            .await;
        let key = cluster.key_owned_by(1, "adopted");
        cluster.node(0).get(&key).await.unwrap();
        assert_eq!(cluster.node(0).stats().hot_cache.entries, 1);

        // Node 0 becomes the owner of everything.
        cluster.loader.set_generation(2);
        cluster.set_peers_on(0, &[cluster.addr(0)]).await;
        assert_eq!(
            cluster.node(0).stats().hot_cache.entries,
            0,
            "hot copy dropped"
        );
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 2));
        assert_eq!(
            cluster.loader.loads_on(0, &key),
            1,
            "loaded by the new owner"
        );
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_request_is_never_answered_from_a_hot_copy() {
    within_limit(async {
        let cluster = TestCluster::start_keeping_hot_copies(3).await;
        let key = cluster.key_owned_by(1, "hearsay");
        cluster.node(2).get(&key).await.unwrap();
        assert_eq!(cluster.node(2).stats().hot_cache.entries, 1);

        // Node 0's ring disagrees: it believes node 2 owns the key. Node 2 must not pass its
        // hot copy (generation 1) on as if it were the owner's value.
        cluster.loader.set_generation(2);
        cluster.set_peers_on(0, &[cluster.addr(2)]).await;
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 2));
        assert_eq!(cluster.loader.loads_on(2, &key), 1, "node 2 loaded instead");
        cluster.shutdown().await;
    })
    .await;
}
