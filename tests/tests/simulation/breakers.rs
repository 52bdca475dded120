//! Breakers in simulated time: an owner that stalls for 10 s under load costs its askers the
//! first timeouts only, and gets its keys back within one cool-down once it answers again; a
//! link that flaps every two seconds moves routing no faster than the cool-down.

use std::time::Duration;

use groupcache::defaults::{PEER_COOL_DOWN, PEER_FAILURE_THRESHOLD};
use groupcache_tests::sim::{SimCluster, join, run_scenario, sweep};
use groupcache_tests::{Cluster, value_of};
use tokio::time::Instant;

use super::{A, B, C, HOSTS, PEER_TIMEOUT, configure, connect_all};

/// How long the owner stays stalled.
const STALL: Duration = Duration::from_secs(10);
/// Concurrent callers per asking node.
const CALLERS: usize = 8;
/// Pause between one caller's gets.
const PACE: Duration = Duration::from_millis(20);
/// The longest a cool-down lasts (the default, stretched by its 20% jitter).
const LONGEST_COOL_DOWN: Duration =
    Duration::from_millis(PEER_COOL_DOWN.as_millis() as u64 * 6 / 5);
/// The shortest (shortened by its 20% jitter).
const SHORTEST_COOL_DOWN: Duration =
    Duration::from_millis(PEER_COOL_DOWN.as_millis() as u64 * 4 / 5);
/// A get that does not wait for a peer: a few message latencies and scheduling ticks.
const FAST: Duration = Duration::from_millis(50);

/// Holds, or releases, every message between `host` and the others.
fn stall(host: &str, held: bool) {
    for other in HOSTS.iter().filter(|h| **h != host) {
        if held {
            turmoil::hold(*other, host);
            turmoil::hold(host, *other);
        } else {
            turmoil::release(*other, host);
            turmoil::release(host, *other);
        }
    }
}

/// One get as a caller saw it: when it started (since `origin`), how long it took, whether it
/// was right.
struct Seen {
    started: Duration,
    took: Duration,
}

/// `CALLERS` callers on each of `nodes`, getting `keys` in turn (one get every `PACE` each)
/// until `until` (since `origin`); every answer must be the right value.
async fn load(
    cluster: &SimCluster,
    nodes: &[usize],
    keys: &[String],
    origin: Instant,
    until: Duration,
) -> Vec<Seen> {
    let mut callers = Vec::new();
    for &node in nodes {
        for caller in 0..CALLERS {
            let cluster = cluster.clone();
            let keys = keys.to_vec();
            callers.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut i = caller;
                while origin.elapsed() < until {
                    let key = &keys[i % keys.len()];
                    i += 1;
                    let started = origin.elapsed();
                    let (value, took) = cluster.timed_get(node, key).await;
                    assert_eq!(value.expect("no get fails"), value_of(key, 1), "{key}");
                    seen.push(Seen { started, took });
                    // A steady load, not a spin: simulated time is cheap, CPU time is not.
                    tokio::time::sleep(PACE).await;
                }
                seen
            }));
        }
    }
    let mut seen = Vec::new();
    for caller in callers {
        seen.extend(join(caller).await);
    }
    seen
}

/// Whether node `from` routes every one of `keys` to node `to`.
fn routes_to(cluster: &SimCluster, from: usize, to: usize, keys: &[String]) -> bool {
    let target = cluster.peer_set(to).me().clone();
    keys.iter()
        .all(|k| cluster.peer_set(from).route_of(k) == target)
}

fn stalled_owner(seed: u64) {
    run_scenario(seed, &HOSTS, configure, move |cluster| async move {
        connect_all(&cluster, "warm").await;
        let keys: Vec<String> = (0..12)
            .map(|i| cluster.key_owned_by(C, &format!("stalled-{i}")))
            .collect();

        let origin = Instant::now();
        stall("c", true);
        let seen = load(&cluster, &[A, B], &keys, origin, STALL).await;
        stall("c", false);
        let released = origin.elapsed();

        // The first gets waited for the peer timeout; once the breakers opened (at the third
        // timeout on each node), none did.
        let opened = PEER_TIMEOUT + FAST;
        let late: Vec<&Seen> = seen.iter().filter(|s| s.started >= opened).collect();
        assert!(
            late.len() > 100,
            "{} gets after the breakers opened",
            late.len()
        );
        let slowest = late.iter().map(|s| s.took).max().unwrap();
        assert!(
            slowest < FAST,
            "a get after the breakers opened took {slowest:?}"
        );
        let waited = seen.iter().filter(|s| s.took >= PEER_TIMEOUT).count();
        assert!(
            waited <= 2 * CALLERS,
            "{waited} gets waited for the stalled owner (at most the first on each caller)"
        );
        for node in [A, B] {
            let stats = cluster.peer_set(node).stats();
            assert_eq!(stats.breaker_opened, 1, "node {node}: {stats:?}");
            let group = cluster.stats(node);
            assert!(group.rerouted_gets > 0, "node {node}: {group:?}");
            assert!(
                group.peer_errors <= u64::from(PEER_FAILURE_THRESHOLD) + CALLERS as u64 + 4,
                "node {node}: the first timeouts and the probes only: {group:?}"
            );
        }

        // c answers again: within one cool-down (and a probe's round trip) routing is back.
        let back = load(
            &cluster,
            &[A, B],
            &keys,
            origin,
            released + LONGEST_COOL_DOWN + PEER_TIMEOUT,
        );
        let watch = async {
            loop {
                if routes_to(&cluster, A, C, &keys) && routes_to(&cluster, B, C, &keys) {
                    return origin.elapsed() - released;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let (seen_after, took) = tokio::join!(back, watch);
        assert!(
            took <= LONGEST_COOL_DOWN + PEER_TIMEOUT,
            "routing went back to c {took:?} after it answered again"
        );
        assert!(!seen_after.is_empty());
        for node in [A, B] {
            assert_eq!(
                cluster.peer_set(node).stats().breaker_closed,
                1,
                "node {node}"
            );
        }
        Ok(())
    });
}

#[test]
fn a_stalled_owner_costs_the_first_timeouts_only_and_gets_its_keys_back_after_a_cool_down() {
    sweep(stalled_owner);
}

fn flapping_link(seed: u64) {
    run_scenario(seed, &HOSTS, configure, move |cluster| async move {
        connect_all(&cluster, "warm").await;
        let key = cluster.key_owned_by(C, "flapping");
        let owner = cluster.peer_set(C).me().clone();
        let origin = Instant::now();
        let run_for = Duration::from_secs(30);

        // The link between a and c holds its messages for two seconds (long enough for the
        // timeouts that open a breaker), then delivers them for two, again and again.
        let flapper = tokio::spawn(async move {
            let mut held = false;
            while origin.elapsed() < run_for {
                held = !held;
                if held {
                    turmoil::hold("a", "c");
                    turmoil::hold("c", "a");
                } else {
                    turmoil::release("a", "c");
                    turmoil::release("c", "a");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            turmoil::release("a", "c");
            turmoil::release("c", "a");
        });
        // a keeps asking for c's key; every 10 ms, where does a route it?
        let keys = [key.clone()];
        let asking = load(&cluster, &[A], &keys, origin, run_for);
        let watch = async {
            let mut routes = Vec::new();
            while origin.elapsed() < run_for {
                let to_owner = cluster.peer_set(A).route_of(&key) == owner;
                routes.push((origin.elapsed(), to_owner));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            routes
        };
        let (_, routes) = tokio::join!(asking, watch);
        join(flapper).await;

        // Every stretch of time a routed away from c lasted at least a cool-down (unless the
        // run ended during it).
        let mut away_since = None;
        let mut stretches = 0;
        for (at, to_owner) in &routes {
            match (to_owner, away_since) {
                (false, None) => away_since = Some(*at),
                (true, Some(since)) => {
                    let away = *at - since;
                    assert!(
                        away >= SHORTEST_COOL_DOWN,
                        "routing went back to c after {away:?} away (at {at:?})"
                    );
                    stretches += 1;
                    away_since = None;
                }
                _ => {}
            }
        }
        let opened = cluster.peer_set(A).stats().breaker_opened;
        assert!(opened >= 1, "the flapping link was noticed");
        let most = run_for.as_secs() / SHORTEST_COOL_DOWN.as_secs() + 1;
        assert!(
            opened <= most,
            "{opened} openings in {run_for:?} ({stretches} finished stretches)"
        );
        let health = cluster.peer_set(A).peer_health();
        assert!(health.iter().any(|h| h.peer == owner && h.opened == opened));
        Ok(())
    });
}

#[test]
fn a_flapping_link_moves_routing_no_faster_than_the_cool_down() {
    sweep(flapping_link);
}
