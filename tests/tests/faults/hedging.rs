//! Hedged gets (`hedge_at_percentile`): when the owner has not answered within the percentile
//! of its recent answer times, the get asks the key's substitute too and takes the first
//! answer; the owner's load still finishes and fills its cache.

use std::net::SocketAddr;
use std::time::Duration;

use groupcache::Groupcache;
use groupcache_tests::{Script, TestCluster, value_of, within_limit};

/// The key's substitute if `owner` is out, among the other members: the owner of the key in
/// the ring without it.
fn substitute_of(key: &str, others: &[SocketAddr]) -> SocketAddr {
    let ring = Groupcache::builder(others[0]).build();
    ring.set_peers(others.iter().copied()).unwrap();
    ring.owner_of(key).addr()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_the_owner_sits_on_is_answered_by_the_substitute() {
    within_limit(async {
        let cluster = TestCluster::start_with(3, |_, b| {
            b.hedge_at_percentile(90.0)
                .peer_timeout(Duration::from_secs(30))
        })
        .await;
        let (asker, owner, substitute) = (0, 2, 1);
        let others = [cluster.addr(asker), cluster.addr(substitute)];
        let key = (0..)
            .map(|i| format!("stuck-{i}"))
            .find(|k| {
                cluster.owner_of(k) == owner
                    && substitute_of(k, &others) == cluster.addr(substitute)
            })
            .unwrap();
        // Answer times to go by: 40 quick answers from the owner.
        for i in 0..40 {
            let warm = cluster.key_owned_by(owner, &format!("warm-{i}"));
            cluster.node(asker).get(&warm).await.unwrap();
        }
        assert_eq!(
            cluster.node(asker).stats().hedged_gets,
            0,
            "no hedge while it is quick"
        );

        // The owner's load of `key` never finishes (until released); a 30 s peer timeout.
        cluster.loader.script_on(owner, &key, Script::Gate);
        assert_eq!(
            cluster.node(asker).get(&key).await.unwrap(),
            value_of(&key, 1)
        );
        let stats = cluster.node(asker).stats();
        assert_eq!((stats.hedged_gets, stats.hedge_wins), (1, 1), "{stats:?}");
        assert_eq!(
            stats.peer_errors, 0,
            "nothing failed: the owner was only slow"
        );
        assert_eq!(
            cluster.loader.loads_on(substitute, &key),
            1,
            "the substitute loaded it"
        );
        assert_eq!(cluster.node(substitute).stats().substitute_serves, 1);

        // The owner's load, released, still fills its cache.
        cluster.loader.release();
        groupcache_tests::wait_until("the owner's load finished", || {
            cluster.node(owner).inflight_len() == 0
        })
        .await;
        assert_eq!(cluster.loader.loads_on(owner, &key), 1);
        assert_eq!(cluster.node(owner).stats().main_cache.entries, 41);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_substitute_hedges_its_own_gets_with_a_load() {
    within_limit(async {
        let cluster = TestCluster::start_with(3, |_, b| {
            b.hedge_at_percentile(90.0)
                .peer_timeout(Duration::from_secs(30))
        })
        .await;
        let (asker, owner, other) = (0, 2, 1);
        let others = [cluster.addr(asker), cluster.addr(other)];
        // A key whose substitute is the asker itself.
        let key = (0..)
            .map(|i| format!("own-stuck-{i}"))
            .find(|k| {
                cluster.owner_of(k) == owner && substitute_of(k, &others) == cluster.addr(asker)
            })
            .unwrap();
        for i in 0..40 {
            let warm = cluster.key_owned_by(owner, &format!("warm-{i}"));
            cluster.node(asker).get(&warm).await.unwrap();
        }
        cluster.loader.script_on(owner, &key, Script::Gate);
        assert_eq!(
            cluster.node(asker).get(&key).await.unwrap(),
            value_of(&key, 1)
        );
        let stats = cluster.node(asker).stats();
        assert_eq!((stats.hedged_gets, stats.hedge_wins), (1, 1), "{stats:?}");
        assert_eq!(
            cluster.loader.loads_on(asker, &key),
            1,
            "loaded here, as the substitute"
        );
        assert_eq!(cluster.loader.loads_on(other, &key), 0);
        // Kept as the substitute's copy: the next get is a hit.
        assert_eq!(
            cluster.node(asker).get(&key).await.unwrap(),
            value_of(&key, 1)
        );
        assert_eq!(cluster.node(asker).stats().main_hits, 1);
        cluster.loader.release();
        cluster.shutdown().await;
    })
    .await;
}
