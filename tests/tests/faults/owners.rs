//! The owner fails: killed while idle, killed mid-load, slow. The asking peer counts the fault
//! and, if the failure left time in the deadline (a refused or reset connection), asks the
//! owner's substitute (the next peer on the ring, perhaps itself), which loads once for every
//! survivor; after a timeout it loads the value itself. It routes to the owner again once it is
//! back (rules 5 and 10). `breakers.rs` covers what repeated failures do.

use std::time::{Duration, Instant};

use groupcache_tests::{
    ClusterSpec, Script, TestCluster, spawn_get, value_of, wait_until, within_limit,
};

const PEER_TIMEOUT: Duration = Duration::from_millis(300);
/// Slack for scheduling on a loaded 2-core CI machine.
const SLACK: Duration = Duration::from_millis(700);

/// Loads of `key` on every node but `owner`.
fn loads_off(cluster: &TestCluster, owner: usize, key: &str) -> u64 {
    (0..cluster.len())
        .filter(|&n| n != owner)
        .map(|n| cluster.loader.loads_on(n, key))
        .sum()
}

async fn cluster() -> TestCluster {
    TestCluster::start_with(3, |_, builder| builder.peer_timeout(PEER_TIMEOUT)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_idle_owner_means_a_local_load_then_routing_resumes_after_restart() {
    within_limit(async {
        let mut cluster = cluster().await;
        let owner = 2;
        let key = cluster.key_owned_by(owner, "idle");
        // Warm the channel from node 0 to the owner, so the kill hits an open connection.
        let warm = cluster.key_owned_by(owner, "warm");
        cluster.node(0).get(&warm).await.unwrap();

        cluster.kill(owner).await;
        let started = Instant::now();
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        let took = started.elapsed();
        assert!(took < PEER_TIMEOUT + SLACK, "the detour took {took:?}");
        let stats = cluster.node(0).stats();
        assert_eq!(stats.peer_errors, 1, "the fault was counted");
        assert_eq!(stats.rerouted_gets, 1, "sent on to the owner's substitute");
        // The substitute (the next peer on the ring) loaded it, and keeps it: the other
        // survivor, finding the owner dead too, gets it from there without a second load.
        let loaded_on: Vec<usize> = (0..3)
            .filter(|&n| cluster.loader.loads_on(n, &key) == 1)
            .collect();
        assert_eq!(loaded_on.len(), 1, "one load cluster-wide: {loaded_on:?}");
        let substitute = loaded_on[0];
        assert_ne!(substitute, owner);
        assert_eq!(cluster.node(1).get(&key).await.unwrap(), value_of(&key, 1));
        let loads: u64 = (0..3).map(|n| cluster.loader.loads_on(n, &key)).sum();
        assert_eq!(loads, 1, "still one load after both survivors asked");
        assert_eq!(
            cluster.node(substitute).stats().main_cache.entries,
            1,
            "the substitute keeps it"
        );

        cluster.restart(owner).await;
        let after = cluster.key_owned_by(owner, "after-restart");
        // tonic reconnects the channel on demand; the first request may still see the old,
        // broken connection, so allow one more fallback while it does.
        let mut served_by_owner = false;
        for _ in 0..20 {
            assert_eq!(
                cluster.node(0).get(&after).await.unwrap(),
                value_of(&after, 1)
            );
            if cluster.loader.loads_on(owner, &after) == 1 {
                served_by_owner = true;
                break;
            }
            cluster.node(0).remove(&after).await.ok();
        }
        assert!(
            served_by_owner,
            "requests route to the restarted owner again"
        );
        assert!(cluster.node(0).stats().peer_loads > stats.peer_loads);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_killed_mid_load_means_one_load_on_its_substitute_within_the_deadline() {
    within_limit(async {
        let mut cluster = cluster().await;
        let owner = 1;
        let key = cluster.key_owned_by(owner, "mid-load");
        // Only the owner's load is held; the substitute's load answers at once.
        cluster.loader.script_on(owner, &key, Script::Gate);

        let waiting = tokio::spawn({
            let cache = cluster.node(0).clone();
            let key = key.clone();
            async move {
                let started = Instant::now();
                (cache.get(&key).await, started.elapsed())
            }
        });
        wait_until("the owner is loading", || {
            cluster.loader.loads_on(owner, &key) == 1
        })
        .await;
        cluster.kill(owner).await;

        let (result, took) = waiting.await.unwrap();
        assert_eq!(result.unwrap(), value_of(&key, 1));
        assert!(took < PEER_TIMEOUT + SLACK, "get took {took:?}");
        let stats = cluster.node(0).stats();
        assert_eq!((stats.peer_errors, stats.rerouted_gets), (1, 1));
        assert_eq!(
            loads_off(&cluster, owner, &key),
            1,
            "one load, on the substitute"
        );
        cluster.loader.release();
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_owner_means_a_local_load_after_the_peer_timeout() {
    within_limit(async {
        let cluster = cluster().await;
        let owner = 2;
        let key = cluster.key_owned_by(owner, "slow");
        cluster.loader.script_on(owner, &key, Script::Gate);

        let started = Instant::now();
        let waiting = spawn_get(cluster.node(0), &key);
        wait_until("the owner is loading", || {
            cluster.loader.loads_on(owner, &key) == 1
        })
        .await;
        // The owner stays stuck and used up the deadline, so there is no time to ask its
        // substitute (rule 10): node 0's own load gets the value at once.
        let value = waiting.await.unwrap().unwrap();
        let took = started.elapsed();
        assert_eq!(value, value_of(&key, 1));
        assert!(took >= PEER_TIMEOUT, "waited for the owner first: {took:?}");
        assert!(took < PEER_TIMEOUT + SLACK, "then loaded here: {took:?}");
        let stats = cluster.node(0).stats();
        assert_eq!((stats.peer_errors, stats.fallback_loads), (1, 1));
        assert_eq!(cluster.loader.loads_on(0, &key), 1, "loaded here");
        assert_eq!(loads_off(&cluster, owner, &key), 1, "and nowhere else");

        // The owner's load, released late, still completes and fills its own cache.
        cluster.loader.release();
        wait_until("the owner's late load finished", || {
            cluster.node(owner).inflight_len() == 0
        })
        .await;
        assert_eq!(
            cluster.node(owner).get(&key).await.unwrap(),
            value_of(&key, 1)
        );
        assert_eq!(cluster.loader.loads_on(owner, &key), 1);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_accepts_but_never_answers_costs_one_peer_timeout_then_a_local_load() {
    within_limit(async {
        let cluster = cluster().await;
        // A listener that is never accepted from: TCP connects (the kernel's backlog), but the
        // HTTP/2 handshake never completes. Only the deadline can end the request.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let mut members: Vec<_> = (0..cluster.len()).map(|i| cluster.addr(i)).collect();
        members.push(silent_addr);
        cluster.set_peers_on(0, &members).await;
        let key = (0..)
            .map(|i| format!("silent-{i}"))
            .find(|k| cluster.node(0).owner_of(k).addr() == silent_addr)
            .unwrap();

        let started = Instant::now();
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        let took = started.elapsed();
        assert!(took >= PEER_TIMEOUT, "waited for the peer first: {took:?}");
        assert!(took < PEER_TIMEOUT + SLACK, "then loaded here: {took:?}");
        let stats = cluster.node(0).stats();
        assert_eq!((stats.peer_errors, stats.fallback_loads), (1, 1));
        assert_eq!(
            cluster.loader.loads_on(0, &key),
            1,
            "loaded here, within the deadline"
        );
        drop(silent);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_change_during_a_load_neither_hangs_nor_loads_more_than_twice() {
    within_limit(async {
        let cluster = cluster().await;
        let (a, b, c) = (0, 1, 2);
        let key = cluster.key_owned_by(a, "moving");
        cluster.loader.script(&key, Script::Gate);

        let first = spawn_get(cluster.node(b), &key);
        wait_until("the owner is loading", || {
            cluster.loader.loads_on(a, &key) == 1
        })
        .await;

        // B drops A while A is loading for B, then asks again; then A comes back.
        cluster
            .set_peers_on(b, &[cluster.addr(b), cluster.addr(c)])
            .await;
        let second = spawn_get(cluster.node(b), &key);
        let all: Vec<_> = (0..3).map(|i| cluster.addr(i)).collect();
        cluster.set_peers_on(b, &all).await;
        cluster.loader.release();

        for caller in [first, second] {
            assert_eq!(caller.await.unwrap().unwrap(), value_of(&key, 1));
        }
        assert!(
            cluster.loader.loads(&key) <= 2,
            "{} loads",
            cluster.loader.loads(&key)
        );
        // Equal lists again: every node agrees on the owner.
        let owners: Vec<_> = (0..3).map(|i| cluster.node(i).owner_of(&key)).collect();
        assert!(
            owners.iter().all(|o| o.addr() == cluster.addr(a)),
            "{owners:?}"
        );
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_with_a_dead_owner_clears_local_copies_and_reports_the_owner() {
    within_limit(async {
        let mut cluster = ClusterSpec::new(2)
            .configure(|_, builder| builder.peer_timeout(PEER_TIMEOUT))
            .keeping_hot_copies()
            .start()
            .await;
        let key = cluster.key_owned_by(1, "orphan");
        cluster.node(0).get(&key).await.unwrap();
        assert_eq!(cluster.node(0).stats().hot_cache.entries, 1);

        cluster.kill(1).await;
        let err = cluster.node(0).remove(&key).await.unwrap_err();
        assert_eq!(err.kind(), groupcache::ErrorKind::Peer);
        assert_eq!(err.peer().map(|p| p.addr()), Some(cluster.addr(1)));
        assert_eq!(cluster.node(0).stats().peer_errors, 1);
        assert_eq!(
            cluster.node(0).stats().hot_cache.entries,
            0,
            "local copy gone anyway"
        );
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_owner_with_100_gets_in_flight_answers_every_caller() {
    within_limit(async {
        let mut cluster = cluster().await;
        let owner = 1;
        let key = cluster.key_owned_by(owner, "busy");
        cluster.loader.script_on(owner, &key, Script::Gate);
        let callers: Vec<_> = (0..100)
            .map(|i| spawn_get(cluster.node(if i % 2 == 0 { 0 } else { 2 }), &key))
            .collect();
        wait_until("both peers' requests reached the owner", || {
            cluster.node(owner).inflight_load_waiters(&key) == 2
        })
        .await;

        cluster.kill(owner).await;
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap(), value_of(&key, 1));
        }
        for n in [0, 2] {
            let stats = cluster.node(n).stats();
            assert_eq!(
                stats.peer_errors, 1,
                "node {n}: one failed RPC for 50 callers"
            );
            assert_eq!(
                stats.rerouted_gets, 1,
                "node {n}: one detour to the substitute"
            );
        }
        // Both survivors went to the same substitute (one of them), which loaded once for both:
        // a dead owner costs one extra load, not one per surviving peer.
        let loads: Vec<u64> = [0, 2].map(|n| cluster.loader.loads_on(n, &key)).to_vec();
        assert_eq!(
            loads.iter().sum::<u64>(),
            1,
            "one load cluster-wide: {loads:?}"
        );
        cluster.loader.release();
        cluster.shutdown().await;
    })
    .await;
}
