//! A dead owner with the membership unchanged: after a few failures each survivor's breaker
//! opens, every survivor routes the owner's keys to the same substitute, which loads each key
//! once and keeps it, and no get waits for the dead owner any more. (The stalled owner and a
//! flapping link run in simulated time: `simulation/breakers.rs`.)

use std::time::{Duration, Instant};

use groupcache::peer::BreakerState;
use groupcache_tests::{TestCluster, value_of, within_limit};

const PEER_TIMEOUT: Duration = Duration::from_secs(1);
const KEYS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owner_of_five_costs_at_most_two_loads_per_key_then_none() {
    within_limit(async {
        let mut cluster = TestCluster::start_with(5, |_, b| b.peer_timeout(PEER_TIMEOUT)).await;
        let owner = 4;
        let survivors = [0, 1, 2, 3];
        let keys: Vec<String> = (0..)
            .map(|i| format!("orphan-{i}"))
            .filter(|k| cluster.owner_of(k) == owner)
            .take(KEYS)
            .collect();
        // Every survivor has a live connection to the owner when it dies.
        for &s in &survivors {
            let warm = cluster.key_owned_by(owner, &format!("warm-{s}"));
            cluster.node(s).get(&warm).await.unwrap();
        }
        cluster.kill(owner).await;

        let loads =
            |cluster: &TestCluster| -> u64 { keys.iter().map(|k| cluster.loader.loads(k)).sum() };
        let mut slowest = Vec::new();
        let mut loads_after = Vec::new();
        for _round in 1..=3 {
            let mut round_slowest = Duration::ZERO;
            for key in &keys {
                for &s in &survivors {
                    let started = Instant::now();
                    assert_eq!(cluster.node(s).get(key).await.unwrap(), value_of(key, 1));
                    round_slowest = round_slowest.max(started.elapsed());
                }
            }
            slowest.push(round_slowest);
            loads_after.push(loads(&cluster));
        }
        println!("loads after each round {loads_after:?}, slowest get per round {slowest:?}");

        // The bound is two loads per key; what the substitute gives is one: the failures
        // before a breaker opened went to the substitute too, not to a local load.
        for key in &keys {
            let loads = cluster.loader.loads(key);
            assert_eq!(loads, 1, "{key}: {loads} loads");
        }
        assert_eq!(loads_after[1], loads_after[0], "round 2 loaded nothing");
        assert_eq!(loads_after[2], loads_after[0], "round 3 loaded nothing");
        assert!(
            slowest[2] < Duration::from_millis(50),
            "round 3's slowest get took {:?}",
            slowest[2]
        );

        // The fault was seen: each survivor's breaker for the owner opened, once.
        let dead = cluster.peer_set(owner).me().clone();
        for &s in &survivors {
            let health = cluster.peer_set(s).peer_health();
            let of_owner = health.iter().find(|h| h.peer == dead).unwrap();
            assert_ne!(
                of_owner.state,
                BreakerState::Closed,
                "node {s}: {of_owner:?}"
            );
            assert_eq!(of_owner.opened, 1, "node {s}");
            assert_eq!(cluster.peer_set(s).stats().breaker_opened, 1, "node {s}");
            let stats = cluster.node(s).stats();
            assert_eq!(
                stats.peer_errors,
                u64::from(groupcache::defaults::PEER_FAILURE_THRESHOLD),
                "node {s}: the failures that opened the breaker, then none"
            );
        }
        // All survivors name the same substitute for each key, and it is a survivor.
        for key in &keys {
            let named: Vec<_> = survivors
                .iter()
                .map(|&s| cluster.node(s).route_of(key))
                .collect();
            assert!(named.iter().all(|p| *p == named[0]), "{key}: {named:?}");
            assert_ne!(named[0], dead, "{key}");
        }
        cluster.shutdown().await;
    })
    .await;
}
