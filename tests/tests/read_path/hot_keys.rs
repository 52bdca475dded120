//! Owner-driven hot keys: the owner counts peers' requests per key and marks the often-asked
//! ones in its answers (`Get` and `GetMany`); askers keep a hot copy of marked values, as their
//! policy allows. A marked copy is bounded as any other (a write drops it everywhere).

use std::time::Duration;

use groupcache::cache::{FetchedValue, HotCachePolicy, PromoteOneIn};
use groupcache_tests::{ClusterSpec, TestCluster, value_of, within_limit};

/// A peer timeout longer than any test here: a fallback would be a bug, not a fault.
const PATIENT: Duration = Duration::from_secs(60);

/// Keeps exactly the values their owner marked hot.
#[derive(Debug, Clone)]
struct MarkedOnly;

impl HotCachePolicy for MarkedOnly {
    fn should_promote(&self, _key: &str, _encoded_len: usize) -> bool {
        false
    }

    fn should_promote_fetched(&self, fetched: &FetchedValue<'_>) -> bool {
        fetched.marked_hot()
    }
}

async fn cluster_with(threshold: Option<u32>, policy: impl HotCachePolicy + Clone) -> TestCluster {
    ClusterSpec::new(2)
        .configure(|_, b| b.peer_timeout(PATIENT).handoff_window(Duration::ZERO))
        .configure_group(move |_, g| {
            g.hot_key_threshold(threshold)
                .hot_cache_policy(policy.clone())
        })
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_marks_a_key_from_its_threshold_th_request_and_the_asker_keeps_it() {
    within_limit(async {
        let cluster = cluster_with(Some(3), MarkedOnly).await;
        let key = cluster.key_owned_by(1, "often");
        for _ in 0..5 {
            assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        }
        let owner = cluster.node(1).stats();
        assert_eq!(
            owner.server_requests, 3,
            "the third request was marked, then no more"
        );
        assert_eq!(owner.hot_marks, 1);
        assert_eq!(owner.local_loads, 1);
        let asker = cluster.node(0).stats();
        assert_eq!(asker.peer_loads, 3);
        assert_eq!(asker.hot_hits, 2, "gets 4 and 5 were served by the copy");
        assert_eq!(asker.hot_cache.entries, 1);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_threshold_marks_nothing() {
    within_limit(async {
        let cluster = cluster_with(None, MarkedOnly).await;
        let key = cluster.key_owned_by(1, "never");
        for _ in 0..10 {
            assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        }
        assert_eq!(cluster.node(1).stats().hot_marks, 0);
        assert_eq!(cluster.node(1).stats().server_requests, 10);
        assert_eq!(cluster.node(0).stats().hot_hits, 0);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_one_in_zero_keeps_no_copy_even_of_marked_values() {
    within_limit(async {
        let cluster = cluster_with(Some(1), PromoteOneIn(0)).await;
        let key = cluster.key_owned_by(1, "marked");
        for _ in 0..5 {
            assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        }
        assert_eq!(
            cluster.node(1).stats().hot_marks,
            5,
            "every answer was marked"
        );
        let asker = cluster.node(0).stats();
        assert_eq!(asker.hot_hits, 0);
        assert_eq!(asker.hot_cache.entries, 0);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_answers_carry_the_mark_per_key() {
    within_limit(async {
        let cluster = cluster_with(Some(2), MarkedOnly).await;
        let often = cluster.key_owned_by(1, "batch-often");
        let once = cluster.key_owned_by(1, "batch-once");
        let first = cluster.node(0).get_many(std::slice::from_ref(&often)).await;
        assert_eq!(first[0].as_ref().unwrap(), &value_of(&often, 1));
        // The second request for `often` is marked; `once` is asked for the first time.
        let both = cluster
            .node(0)
            .get_many(&[often.clone(), once.clone()])
            .await;
        assert_eq!(both[0].as_ref().unwrap(), &value_of(&often, 1));
        assert_eq!(both[1].as_ref().unwrap(), &value_of(&once, 1));
        let owner = cluster.node(1).stats();
        assert_eq!(owner.hot_marks, 1, "only the key asked for twice");
        assert_eq!(owner.server_requests, 2);
        let asker = cluster.node(0).stats();
        assert_eq!(asker.peer_batches, 2);
        assert_eq!(asker.hot_cache.entries, 1, "a copy of `often` only");
        // `often` is now a hot hit; `once` still goes to its owner.
        assert_eq!(
            cluster.node(0).get(&often).await.unwrap(),
            value_of(&often, 1)
        );
        assert_eq!(cluster.node(0).stats().hot_hits, 1);
        assert_eq!(
            cluster.node(0).get(&once).await.unwrap(),
            value_of(&once, 1)
        );
        assert_eq!(cluster.node(1).stats().server_requests, 3);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_kept_because_it_was_marked_is_dropped_by_a_write() {
    within_limit(async {
        let cluster = cluster_with(Some(1), MarkedOnly).await;
        let key = cluster.key_owned_by(1, "written");
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        assert_eq!(
            cluster.node(0).stats().hot_cache.entries,
            1,
            "marked and kept"
        );
        cluster.loader.set_generation(2);
        let invalidated = cluster.node(1).remove(&key).await.unwrap();
        assert!(invalidated.everywhere(), "{invalidated:?}");
        assert_eq!(cluster.node(0).stats().hot_cache.entries, 0);
        assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 2));
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_fourth_request_is_marked() {
    within_limit(async {
        let cluster = ClusterSpec::new(2)
            .configure(|_, b| b.peer_timeout(PATIENT).handoff_window(Duration::ZERO))
            .configure_group(|_, g| g.hot_cache_policy(MarkedOnly))
            .start()
            .await;
        assert_eq!(groupcache::defaults::HOT_KEY_THRESHOLD, 4);
        let key = cluster.key_owned_by(1, "default");
        for _ in 0..6 {
            assert_eq!(cluster.node(0).get(&key).await.unwrap(), value_of(&key, 1));
        }
        assert_eq!(cluster.node(1).stats().server_requests, 4);
        assert_eq!(cluster.node(1).stats().hot_marks, 1);
        assert_eq!(cluster.node(0).stats().hot_hits, 2);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_are_kept_while_the_hot_cache_has_room_and_then_only_as_sampled() {
    within_limit(async {
        // Room for about 8 copies of these 25-30 byte entries. `PromoteOneIn(u32::MAX)`
        // samples (all but) never, and no key is marked: what is kept is kept for room alone.
        const ROOM: u64 = 200;
        let cluster = ClusterSpec::new(2)
            .configure(|_, b| b.peer_timeout(PATIENT).handoff_window(Duration::ZERO))
            .configure_group(|_, g| {
                g.hot_key_threshold(None)
                    .hot_cache_capacity(ROOM)
                    .hot_cache_policy(PromoteOneIn(u32::MAX))
            })
            .start()
            .await;
        let keys = cluster.keys_owned_by(1, "room", 20);
        let asker = cluster.node(0);
        for key in &keys {
            assert_eq!(asker.get(key).await.unwrap(), value_of(key, 1));
        }
        let first = asker.stats().hot_cache;
        assert!(first.entries >= 2, "{first:?}");
        assert!(first.entries < keys.len() as u64, "{first:?}");
        assert_eq!(
            first.evictions, 0,
            "a full hot cache let a copy in: {first:?}"
        );
        assert!(first.weighted_bytes <= ROOM, "{first:?}");
        let heaviest = first.weighted_bytes.div_ceil(first.entries) * 2;
        assert!(
            ROOM - first.weighted_bytes < heaviest,
            "copies stopped before the hot cache was full: {first:?}"
        );
        // The copies serve; the other keys still go to their owner.
        for key in &keys {
            assert_eq!(asker.get(key).await.unwrap(), value_of(key, 1));
        }
        let stats = asker.stats();
        assert_eq!(stats.hot_hits, first.entries);
        assert_eq!(stats.peer_loads, 2 * keys.len() as u64 - first.entries);
        assert_eq!(stats.hot_cache.evictions, 0);
        cluster.shutdown().await;
    })
    .await;
}
