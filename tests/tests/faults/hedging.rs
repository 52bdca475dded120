//! Hedged gets (`hedge_at_percentile`): when the owner has not answered within the percentile
//! of its recent answer times, the get asks the key's substitute too (or, on the substitute,
//! loads the key as the substitute) and takes the first answer; the owner's load still
//! finishes and fills its cache.

use std::net::SocketAddr;
use std::time::Duration;

use groupcache::Groupcache;
use groupcache_tests::{Script, TestCluster, value_of, wait_until, within_limit};

/// Node 0 asks, node 2 owns.
const ASKER: usize = 0;
const OWNER: usize = 2;

/// The key's substitute if `owner` is out, among the other members: the owner of the key in
/// the ring without it.
fn substitute_of(key: &str, others: &[SocketAddr]) -> SocketAddr {
    let ring = Groupcache::builder(others[0]).build();
    ring.set_peers(others.iter().copied()).unwrap();
    ring.owner_of(key).addr()
}

/// Three nodes hedging at p90 (with a peer timeout no get here reaches); 40 quick answers from
/// the owner on the asker for the hedge delay to go by; and a key of the owner's whose
/// substitute is node `substitute`, whose load on the owner never finishes until released.
///
/// A warm-up get may itself be hedged, when one answer is slow on a busy machine (that is what
/// hedging is for): the tests count from the stats returned here, taken after the warm-up.
async fn hedging_cluster(substitute: usize, prefix: &str) -> (TestCluster, String, Warm) {
    let cluster = TestCluster::start_with(3, |_, b| {
        b.hedge_at_percentile(90.0)
            .peer_timeout(Duration::from_secs(30))
    })
    .await;
    let others = [cluster.addr(0), cluster.addr(1)];
    let key = (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|k| {
            cluster.owner_of(k) == OWNER && substitute_of(k, &others) == cluster.addr(substitute)
        })
        .unwrap();
    for i in 0..40 {
        let warm = cluster.key_owned_by(OWNER, &format!("warm-{i}"));
        cluster.node(ASKER).get(&warm).await.unwrap();
    }
    let warm = Warm {
        asker: cluster.node(ASKER).stats(),
        substitute_serves: cluster.node(substitute).stats().substitute_serves,
    };
    assert_eq!(warm.asker.peer_errors, 0, "the warm-up asked a quick owner");
    cluster.loader.script_on(OWNER, &key, Script::Gate);
    (cluster, key, warm)
}

/// What the warm-up left in the counters the tests read.
struct Warm {
    asker: groupcache::stats::Stats,
    substitute_serves: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_the_owner_sits_on_is_answered_by_the_substitute() {
    within_limit(async {
        let substitute = 1;
        let (cluster, key, warm) = hedging_cluster(substitute, "stuck").await;
        assert_eq!(
            cluster.node(ASKER).get(&key).await.unwrap(),
            value_of(&key, 1)
        );
        let stats = cluster.node(ASKER).stats();
        assert_eq!(
            (
                stats.hedged_gets - warm.asker.hedged_gets,
                stats.hedge_wins - warm.asker.hedge_wins
            ),
            (1, 1),
            "{stats:?}"
        );
        assert_eq!(
            stats.peer_errors, 0,
            "nothing failed: the owner was only slow"
        );
        assert_eq!(
            cluster.loader.loads_on(substitute, &key),
            1,
            "the substitute loaded it"
        );
        assert_eq!(
            cluster.node(substitute).stats().substitute_serves - warm.substitute_serves,
            1
        );

        // The owner's load, released, still fills its cache.
        cluster.loader.release();
        wait_until("the owner's load finished", || {
            cluster.node(OWNER).inflight_len() == 0
        })
        .await;
        assert_eq!(cluster.loader.loads_on(OWNER, &key), 1);
        assert_eq!(cluster.node(OWNER).stats().main_cache.entries, 41);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_substitute_hedges_its_own_gets_with_a_load() {
    within_limit(async {
        let (cluster, key, warm) = hedging_cluster(ASKER, "own-stuck").await;
        assert_eq!(
            cluster.node(ASKER).get(&key).await.unwrap(),
            value_of(&key, 1)
        );
        let stats = cluster.node(ASKER).stats();
        assert_eq!(
            (
                stats.hedged_gets - warm.asker.hedged_gets,
                stats.hedge_wins - warm.asker.hedge_wins
            ),
            (1, 1),
            "{stats:?}"
        );
        assert_eq!(
            cluster.loader.loads_on(ASKER, &key),
            1,
            "loaded here, as the substitute"
        );
        assert_eq!(cluster.loader.loads_on(1, &key), 0);
        // Kept as the substitute's copy: the next get is a hit.
        assert_eq!(
            cluster.node(ASKER).get(&key).await.unwrap(),
            value_of(&key, 1)
        );
        assert_eq!(
            cluster.node(ASKER).stats().main_hits - warm.asker.main_hits,
            1
        );
        cluster.loader.release();
        cluster.shutdown().await;
    })
    .await;
}
