//! Simulated clusters (turmoil): three nodes on hosts "a", "b" and "c" and a client host that
//! drives gets on them, over a seeded network with simulated time. Faults are crashes,
//! partitions and held links; latency bounds are exact to a tick of simulated time.
//!
//! Each scenario runs over the seeds of `sim::seeds()`: `GROUPCACHE_SIM_SEEDS=<N>` for more,
//! `GROUPCACHE_SIM_SEED=<n>` to replay one (a failing run prints its seed).

mod breakers;
mod writes;

use std::time::Duration;

use groupcache::defaults::PEER_COOL_DOWN;
use groupcache::stats::Stats;
use groupcache_tests::sim::{SimCluster, join, run_scenario, sweep};
use groupcache_tests::{Cluster, ClusterSpec, Script, value_of, wait_until};
use tokio::time::Instant;

const PEER_TIMEOUT: Duration = Duration::from_millis(500);
/// Simulated time a fallback may take beyond the peer timeout: the local load is instant here,
/// so only scheduling ticks and one message latency (at most `sim::MAX_LATENCY`) remain.
const SLACK: Duration = Duration::from_millis(50);
/// HTTP/2 keep-alive, as the library sets it on every peer endpoint: a ping every 10 s, idle
/// or not, and the connection closed if no answer within 5 s.
const KEEP_ALIVE: Duration = Duration::from_secs(10 + 5);

const HOSTS: [&str; 3] = ["a", "b", "c"];
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// Every scenario's nodes: the peer timeout set, the group as the harness builds it.
fn configure(spec: ClusterSpec) -> ClusterSpec {
    spec.configure(|_, builder| builder.peer_timeout(PEER_TIMEOUT))
}

/// Every node fetches one key from every other node, so that all channels are connected.
async fn connect_all(cluster: &SimCluster, prefix: &str) {
    for from in 0..cluster.len() {
        for to in (0..cluster.len()).filter(|&to| to != from) {
            let key = cluster.key_owned_by(to, &format!("{prefix}-{from}-to"));
            assert_eq!(cluster.get(from, &key).await.unwrap(), value_of(&key, 1));
            assert_eq!(
                cluster.loader().loads_on(to, &key),
                1,
                "served by the owner"
            );
        }
    }
    for i in 0..cluster.len() {
        assert_eq!(cluster.stats(i).peer_errors, 0, "node {i}: a healthy start");
    }
}

/// The node that stands in for node `out` as the owner of `key`: the owner of `key` on the
/// ring of the other nodes (the next one after `out` on the full ring).
fn substitute_of(cluster: &SimCluster, key: &str, out: usize) -> usize {
    let others: Vec<_> = (0..cluster.len())
        .filter(|&i| i != out)
        .map(|i| cluster.addr(i))
        .collect();
    let ring = groupcache::Groupcache::builder(others[0]).build();
    ring.set_peers(others.iter().copied()).unwrap();
    let owner = ring.owner_of(key).addr();
    (0..cluster.len())
        .find(|&i| cluster.addr(i) == owner)
        .unwrap()
}

/// Asserts that `get(key)` on `from`, a key owned by `owner`, was answered by the owner's
/// loader and not by a fallback.
async fn assert_served_by_owner(cluster: &SimCluster, from: usize, owner: usize, key: &str) {
    let before = cluster.stats(from);
    assert_eq!(cluster.get(from, key).await.unwrap(), value_of(key, 1));
    let after = cluster.stats(from);
    assert_eq!(
        cluster.loader().loads_on(owner, key),
        1,
        "{key}: the owner loaded it"
    );
    assert_eq!(
        cluster.loader().loads_on(from, key),
        0,
        "{key}: no local load"
    );
    assert_eq!(
        after.peer_errors, before.peer_errors,
        "{key}: no peer error"
    );
    assert_eq!(
        after.fallback_loads, before.fallback_loads,
        "{key}: no fallback"
    );
    assert_eq!(after.peer_loads, before.peer_loads + 1, "{key}: one RPC");
}

// ===== row 2: herd over the cluster =====

const HERD: usize = 10_000;

fn herd_over_the_cluster(seed: u64) {
    run_scenario(seed, &HOSTS, configure, move |cluster| async move {
        let key = cluster.key_owned_by(C, "herd");
        cluster.loader().script(&key, Script::Gate);

        let started = Instant::now();
        let callers: Vec<_> = (0..HERD).map(|n| cluster.spawn_get(n % 3, &key)).collect();
        wait_until("every caller waits", || {
            (0..3)
                .map(|i| cluster.cache(i).inflight_waiters(&key))
                .sum::<usize>()
                == HERD
        })
        .await;
        wait_until("a's and b's requests joined c's load", || {
            cluster.cache(C).inflight_load_waiters(&key) == 3
        })
        .await;
        // The gate must open before the peers' deadline, or this is no herd test.
        assert!(
            started.elapsed() < PEER_TIMEOUT / 2,
            "{:?}",
            started.elapsed()
        );
        cluster.loader().release();

        for caller in callers {
            assert_eq!(join(caller).await.0.unwrap(), value_of(&key, 1));
        }
        assert_eq!(cluster.loader().loads(&key), 1, "one load in the cluster");
        assert_eq!(cluster.loader().loads_on(C, &key), 1);
        for i in 0..3 {
            let stats = cluster.stats(i);
            assert_eq!(stats.peer_errors, 0, "node {i}");
            assert_eq!(stats.fallback_loads, 0, "node {i}");
            assert_eq!(
                stats.loads_deduped, 1,
                "node {i}: one flight, every other caller joined"
            );
            if i == C {
                assert_eq!(stats.peer_loads, 0);
                assert_eq!(stats.server_requests, 2, "one request from a, one from b");
            } else {
                assert_eq!(stats.peer_loads, 1, "node {i} sent one RPC for the key");
            }
            assert_eq!(
                cluster.cache(i).inflight_len(),
                0,
                "node {i}: no flight left"
            );
        }
        Ok(())
    });
}

#[test]
fn a_herd_over_three_hosts_loads_once_in_the_cluster() {
    sweep(herd_over_the_cluster);
}

// ===== row 7: the owner crashes mid-load =====

fn owner_crashes_mid_load(seed: u64) {
    run_scenario(seed, &HOSTS, configure, move |cluster| async move {
        connect_all(&cluster, "warm").await;
        let key = cluster.key_owned_by(C, "crash");
        // Only c's load is held; a's fallback load answers at once.
        cluster.loader().script_on(C, &key, Script::Gate);
        let before = cluster.stats(A);

        let caller = cluster.spawn_get(A, &key);
        wait_until("c is loading for a", || {
            cluster.loader().loads_on(C, &key) == 1
        })
        .await;
        cluster.crash(C).await;
        let (value, took) = join(caller).await;
        assert_eq!(value.unwrap(), value_of(&key, 1));
        assert!(took <= PEER_TIMEOUT + SLACK, "fallback took {took:?}");
        let after = cluster.stats(A);
        assert_eq!(
            after.peer_errors,
            before.peer_errors + 1,
            "the crash was felt"
        );
        assert_eq!(after.fallback_loads, before.fallback_loads + 1);
        assert_eq!(cluster.loader().loads_on(A, &key), 1, "a loaded it itself");
        // The timeout used up the deadline, so a asked nobody else. It keeps the value only if
        // it is c's substitute for the key (then it is the key's owner while c is out).
        let kept = usize::from(substitute_of(&cluster, &key, C) == A) as u64;
        assert_eq!(
            after.main_cache.entries,
            before.main_cache.entries + kept,
            "a keeps a fallback value only as c's substitute"
        );

        // While c is down: a crashed turmoil host answers nothing, not even a refusal, so
        // a and b wait for the deadline, then fall back.
        let down = cluster.key_owned_by(C, "down");
        for i in [A, B] {
            let before = cluster.stats(i);
            let (value, took) = cluster.timed_get(i, &down).await;
            assert_eq!(value.unwrap(), value_of(&down, 1));
            assert!(took >= PEER_TIMEOUT, "node {i}: {took:?}");
            assert!(took <= PEER_TIMEOUT + SLACK, "node {i}: {took:?}");
            assert_eq!(cluster.stats(i).peer_errors, before.peer_errors + 1);
        }

        // c comes back as a fresh process: a and b reconnect and route c's keys to it again,
        // at once, or (if their failures opened c's breaker) after its cool-down and a probe.
        cluster.bounce(C).await;
        let back = Instant::now();
        let (a_back, b_back) = tokio::join!(
            reroutes(&cluster, A, C, back),
            reroutes(&cluster, B, C, back)
        );
        for (i, took) in [(A, a_back), (B, b_back)] {
            eprintln!("seed {seed}: node {i} routed to c again after {took:?}");
            // The one-second pace of `reroutes` adds up to a second.
            assert!(
                took <= PEER_COOL_DOWN * 6 / 5 + PEER_TIMEOUT + Duration::from_secs(1),
                "node {i} routed to c again only after {took:?}"
            );
        }
        for i in [A, B] {
            for n in 0..3 {
                let key = cluster.key_owned_by(C, &format!("back-{i}-{n}"));
                assert_served_by_owner(&cluster, i, C, &key).await;
            }
        }
        cluster.assert_no_flights();
        cluster.loader().release();
        Ok(())
    });
}

#[test]
fn an_owner_crashed_mid_load_means_a_fallback_within_the_deadline_then_routing_resumes() {
    sweep(owner_crashes_mid_load);
}

// ===== row 8: the owner is slow =====

fn slow_owner(seed: u64) {
    run_scenario(seed, &HOSTS, configure, move |cluster| async move {
        connect_all(&cluster, "warm").await;
        let key = cluster.key_owned_by(C, "slow");
        let slow = 4 * PEER_TIMEOUT;
        cluster.loader().script_on(C, &key, Script::Delay(slow));
        let before = cluster.stats(A);

        let (value, took) = cluster.timed_get(A, &key).await;
        assert_eq!(value.unwrap(), value_of(&key, 1));
        // Exact in simulated time: the deadline, then an instant local load.
        assert!(took >= PEER_TIMEOUT, "waited for the owner first: {took:?}");
        assert!(
            took <= PEER_TIMEOUT + Duration::from_millis(2),
            "then fell back at once: {took:?}"
        );
        let after = cluster.stats(A);
        assert_eq!(after.peer_errors, before.peer_errors + 1);
        assert_eq!(after.fallback_loads, before.fallback_loads + 1);
        assert_eq!(cluster.loader().loads_on(A, &key), 1);
        assert_eq!(cluster.loader().loads_on(C, &key), 1, "c is still loading");

        // c's load finishes late and fills c's cache; its reply to a is dropped.
        wait_until("c's late load finished", || {
            cluster.cache(C).inflight_len() == 0
        })
        .await;
        tokio::time::sleep(PEER_TIMEOUT).await;
        let late = cluster.stats(A);
        assert_eq!(late.peer_errors, after.peer_errors);
        let kept = usize::from(substitute_of(&cluster, &key, C) == A) as u64;
        assert_eq!(
            late.main_cache.entries,
            before.main_cache.entries + kept,
            "nothing inserted on a, but as c's substitute"
        );
        assert_eq!(late.hot_cache.entries, 0, "nothing inserted on a");
        assert_eq!(late.peer_loads, after.peer_loads);

        // Next time a asks c, c answers from its cache: no further load anywhere.
        let (value, took) = cluster.timed_get(A, &key).await;
        assert_eq!(value.unwrap(), value_of(&key, 1));
        assert!(took < PEER_TIMEOUT, "{took:?}");
        assert_eq!(cluster.stats(A).peer_errors, after.peer_errors);
        assert_eq!(cluster.loader().loads_on(C, &key), 1);
        assert_eq!(
            cluster.loader().loads(&key),
            2,
            "owner once, plus a's one fallback"
        );
        Ok(())
    });
}

#[test]
fn a_slow_owner_means_a_fallback_exactly_at_the_peer_timeout() {
    sweep(slow_owner);
}

// ===== row 9: partition =====

/// While a and c are partitioned: a and c get each other's keys from the owner's substitute
/// when the failure left time to ask it (b, or themselves), or by a local fallback when the
/// owner used up the deadline, after at least `at_least` and within the peer timeout (plus
/// slack); b is unaffected; every value is the key's own, loaded once.
async fn during_partition(cluster: &SimCluster, prefix: &str, at_least: Duration) {
    for (from, to) in [(A, C), (C, A)] {
        let key = cluster.key_owned_by(to, &format!("{prefix}-{from}"));
        let before = cluster.stats(from);
        let (value, took) = cluster.timed_get(from, &key).await;
        assert_eq!(value.unwrap(), value_of(&key, 1));
        assert!(took >= at_least, "{from} -> {to}: {took:?}");
        assert!(took <= PEER_TIMEOUT + SLACK, "{from} -> {to}: {took:?}");
        let after = cluster.stats(from);
        assert_eq!(after.peer_errors, before.peer_errors + 1, "{from} -> {to}");
        assert_eq!(cluster.loader().loads(&key), 1, "{key}: one load");
        assert_eq!(
            cluster.loader().loads_on(to, &key),
            0,
            "{key}: never reached {to}"
        );
        if cluster.loader().loads_on(from, &key) == 1 {
            assert_eq!(after.fallback_loads, before.fallback_loads + 1, "{key}");
        } else {
            assert_eq!(
                cluster.loader().loads_on(B, &key),
                1,
                "{key}: b stood in for {to}"
            );
            assert_eq!(after.rerouted_gets, before.rerouted_gets + 1, "{key}");
        }

        // b is on both sides: its requests reach the same owner, no fallback.
        let fresh = cluster.key_owned_by(to, &format!("{prefix}-{from}-b"));
        assert_served_by_owner(cluster, B, to, &fresh).await;
    }
    // a and c still reach b.
    for from in [A, C] {
        let key = cluster.key_owned_by(B, &format!("{prefix}-{from}-to-b"));
        assert_served_by_owner(cluster, from, B, &key).await;
    }
}

fn partition_before_connecting(seed: u64) {
    run_scenario(seed, &HOSTS, configure, move |cluster| async move {
        turmoil::partition("a", "c");
        // turmoil drops a SYN sent into a partition together with the channel its answer
        // would come back on: the connect is refused at once, not left to time out.
        during_partition(&cluster, "split", Duration::ZERO).await;

        turmoil::repair("a", "c");
        // No connection between a and c was ever established: the next request connects.
        for (from, to) in [(A, C), (C, A)] {
            for n in 0..3 {
                let key = cluster.key_owned_by(to, &format!("healed-{from}-{n}"));
                assert_served_by_owner(&cluster, from, to, &key).await;
            }
        }
        cluster.assert_no_flights();
        Ok(())
    });
}

#[test]
fn a_partition_means_fallbacks_on_both_sides_only_and_routing_resumes_after_repair() {
    sweep(partition_before_connecting);
}

fn partition_of_a_live_connection(seed: u64) {
    run_scenario(seed, &HOSTS, configure, move |cluster| async move {
        connect_all(&cluster, "warm").await;
        let partitioned = Instant::now();
        turmoil::partition("a", "c");
        // Requests on the live connections vanish: each waits for the deadline.
        during_partition(&cluster, "split", PEER_TIMEOUT).await;
        turmoil::repair("a", "c");

        // turmoil does not retransmit: what a and c sent into the partition is lost, and
        // their HTTP/2 connections stay stuck behind the gap after the repair (real TCP
        // would retransmit; a connection whose peer vanished without a reset would stay
        // stuck the same way). Requests on them time out and fall back until a keep-alive
        // ping goes unanswered for 5 s and tonic reconnects.
        let (a_to_c, c_to_a) = tokio::join!(
            reroutes(&cluster, A, C, partitioned),
            reroutes(&cluster, C, A, partitioned),
        );
        eprintln!("seed {seed}: a to c resumed after {a_to_c:?}, c to a after {c_to_a:?}");
        for (from, to) in [(A, C), (C, A)] {
            for n in 0..3 {
                let key = cluster.key_owned_by(to, &format!("healed-{from}-{n}"));
                assert_served_by_owner(&cluster, from, to, &key).await;
            }
        }
        Ok(())
    });
}

/// Asks `from` for fresh keys owned by `to` once a second (each answered correctly, by
/// fallback or not, within the bound) until `to` serves one; returns when that happened,
/// measured from `since`.
async fn reroutes(cluster: &SimCluster, from: usize, to: usize, since: Instant) -> Duration {
    for n in 0.. {
        let key = cluster.key_owned_by(to, &format!("healing-{from}-{n}"));
        let (value, took) = cluster.timed_get(from, &key).await;
        assert_eq!(value.unwrap(), value_of(&key, 1));
        assert!(took <= PEER_TIMEOUT + SLACK, "{key}: {took:?}");
        if cluster.loader().loads_on(to, &key) == 1 {
            assert_eq!(cluster.loader().loads_on(from, &key), 0);
            return since.elapsed();
        }
        // A stuck connection is closed by the keep-alive; the breaker its timeouts opened then
        // closes at its next probe, at most a cool-down (and a probe's timeout) later.
        assert!(
            since.elapsed()
                < KEEP_ALIVE + PEER_COOL_DOWN * 6 / 5 + PEER_TIMEOUT + Duration::from_secs(2),
            "{from} never routed to {to} again"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    unreachable!()
}

#[test]
fn a_partition_of_a_live_connection_heals_within_the_keep_alive() {
    sweep(partition_of_a_live_connection);
}

// ===== row 10: swizzle-clog =====

/// Keys the swizzle-clog scenario reads (owned by all three nodes).
const SWIZZLE_KEYS: usize = 24;
/// Concurrent gets per burst.
const BURST: usize = 12;

/// `BURST` concurrent gets of random keys on random nodes: every value correct (I1), every get
/// within the peer timeout plus slack (I5).
async fn burst(cluster: &SimCluster, rng: &mut fastrand::Rng, keys: &[String]) {
    let gets: Vec<_> = (0..BURST)
        .map(|_| {
            let key = &keys[rng.usize(..keys.len())];
            let node = rng.usize(..cluster.len());
            (key.clone(), node, cluster.spawn_get(node, key))
        })
        .collect();
    for (key, node, get) in gets {
        let (value, took) = join(get).await;
        assert_eq!(value.unwrap(), value_of(&key, 1), "{key} on {node}");
        assert!(took <= PEER_TIMEOUT + SLACK, "{key} on {node}: {took:?}");
    }
}

fn swizzle_clog(seed: u64) {
    run_scenario(seed, &HOSTS, configure, move |cluster| async move {
        let mut rng = fastrand::Rng::with_seed(seed);
        connect_all(&cluster, "warm").await;
        let keys: Vec<String> = (0..SWIZZLE_KEYS).map(|n| format!("swizzle-{n}")).collect();
        let before: Vec<Stats> = (0..3).map(|i| cluster.stats(i)).collect();

        // Clog the links one by one, in a seed-chosen order, then release them in another.
        // Held messages are delivered on release, so connections survive (unlike a
        // partition, which loses them).
        let mut links = vec![(A, B), (A, C), (B, C)];
        rng.shuffle(&mut links);
        for &(x, y) in &links {
            turmoil::hold(cluster.name(x), cluster.name(y));
            burst(&cluster, &mut rng, &keys).await;
        }
        rng.shuffle(&mut links);
        for &(x, y) in &links {
            turmoil::release(cluster.name(x), cluster.name(y));
            burst(&cluster, &mut rng, &keys).await;
        }

        // I10: the clog was felt.
        let errors: u64 = (0..3)
            .map(|i| cluster.stats(i).peer_errors - before[i].peer_errors)
            .sum();
        assert!(errors > 0, "no request ran into a held link");

        // Held requests reach their owners late; their replies are dropped. Then nothing
        // is left running (I7).
        wait_until("every flight ended", || {
            (0..3).all(|i| cluster.cache(i).inflight_len() == 0)
        })
        .await;

        // I3: the owner loads a key at most once; any other node loads a key only as a
        // fallback after a transport failure.
        for key in &keys {
            let owner = cluster.owner_of(key);
            assert!(
                cluster.loader().loads_on(owner, key) <= 1,
                "{key}: owner loaded it twice"
            );
        }
        for (i, before) in before.iter().enumerate() {
            let foreign: u64 = keys
                .iter()
                .filter(|key| cluster.owner_of(key) != i)
                .map(|key| cluster.loader().loads_on(i, key))
                .sum();
            // A node loads another's key only as a fallback, or standing in for an owner that
            // did not answer (for itself, or for a peer that asked it as the substitute).
            let now = cluster.stats(i);
            let fallbacks = now.fallback_loads - before.fallback_loads;
            let stood_in = (now.rerouted_gets - before.rerouted_gets)
                + (now.substitute_serves - before.substitute_serves);
            assert!(
                foreign <= fallbacks + stood_in,
                "node {i}: {foreign} loads of others' keys, {fallbacks} fallbacks, {stood_in} \
                 as a substitute"
            );
        }

        // I4: healed, every node reaches every other, with no fallback: at once, or once the
        // breakers the clog opened have probed and closed.
        let healed = Instant::now();
        for from in 0..3 {
            for to in (0..3).filter(|&to| to != from) {
                reroutes(&cluster, from, to, healed).await;
                let key = cluster.key_owned_by(to, &format!("healed-{from}"));
                assert_served_by_owner(&cluster, from, to, &key).await;
            }
        }
        Ok(())
    });
}

#[test]
fn links_clogged_and_released_in_random_order_keep_values_right_and_latency_bounded() {
    sweep(swizzle_clog);
}
