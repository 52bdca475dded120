//! One peer, no network: the flight group's contract as seen through `get` (rules 2-4).

use std::sync::Arc;

use groupcache::{ErrorKind, Group, Groupcache};
use groupcache_tests::{
    CountingLoader, GROUP, Script, spawn_get, value_of, wait_until, within_limit,
};
use tokio::task::JoinSet;

/// The test group on a peer set of one, which serves nothing: every key is its own.
fn standalone(loader: &CountingLoader) -> Group<String> {
    Groupcache::builder("127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap())
        .build()
        .group(GROUP, loader.clone())
        .build()
        .expect("the test group")
}

/// Starts `n` callers of `get("k")` and returns once all of them wait on one flight.
async fn callers_waiting_on_k(
    cache: &Group<String>,
    n: usize,
) -> JoinSet<Result<String, groupcache::Error>> {
    let mut callers = JoinSet::new();
    for _ in 0..n {
        let cache = cache.clone();
        callers.spawn(async move { cache.get("k").await });
    }
    wait_until(&format!("{n} callers wait"), || {
        cache.inflight_waiters("k") == n
    })
    .await;
    callers
}

async fn herd_of_10_000_loads_once() {
    within_limit(async {
        let loader = CountingLoader::new();
        loader.script("k", Script::Gate);
        let cache = standalone(&loader);
        let mut callers = callers_waiting_on_k(&cache, 10_000).await;
        assert_eq!(loader.loads("k"), 1);
        loader.release();
        let mut answered = 0;
        while let Some(result) = callers.join_next().await {
            assert_eq!(result.unwrap().unwrap(), value_of("k", 1));
            answered += 1;
        }
        assert_eq!(answered, 10_000);
        assert_eq!(loader.loads("k"), 1);
        assert_eq!(cache.inflight_len(), 0);
        let stats = cache.stats();
        assert_eq!(stats.loads, 10_000, "every caller missed");
        assert_eq!(stats.loads_deduped, 1, "and one of them started the load");
        assert_eq!(stats.local_loads, 1);
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn herd_of_10_000_loads_once_on_one_thread() {
    herd_of_10_000_loads_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herd_of_10_000_loads_once_on_two_threads() {
    herd_of_10_000_loads_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_get_the_value_when_the_first_caller_is_cancelled() {
    within_limit(async {
        let loader = CountingLoader::new();
        loader.script("k", Script::Gate);
        let cache = standalone(&loader);
        let first = spawn_get(&cache, "k");
        wait_until("the first caller waits", || {
            cache.inflight_waiters("k") == 1
        })
        .await;
        let second = spawn_get(&cache, "k");
        wait_until("both callers wait", || cache.inflight_waiters("k") == 2).await;
        first.abort();
        assert!(first.await.unwrap_err().is_cancelled());
        wait_until("the first caller is gone", || {
            cache.inflight_waiters("k") == 1
        })
        .await;
        loader.release();
        assert_eq!(second.await.unwrap().unwrap(), value_of("k", 1));
        assert_eq!(loader.loads("k"), 1);
        assert_eq!(cache.inflight_len(), 0);
        // Cached: the next get is a hit, not a load.
        assert_eq!(cache.get("k").await.unwrap(), value_of("k", 1));
        assert_eq!(loader.loads("k"), 1);
        assert_eq!(cache.stats().main_hits, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_fills_the_cache_when_every_caller_gives_up() {
    within_limit(async {
        let loader = CountingLoader::new();
        loader.script("k", Script::Gate);
        let cache = standalone(&loader);
        let gave_up =
            tokio::time::timeout(std::time::Duration::from_millis(20), cache.get("k")).await;
        assert!(
            gave_up.is_err(),
            "the caller timed out while the load was gated"
        );
        assert_eq!(cache.inflight_waiters("k"), 0);
        assert!(cache.inflight_len() > 0, "the load goes on without callers");
        loader.release();
        wait_until("the detached load finishes", || cache.inflight_len() == 0).await;
        assert_eq!(cache.get("k").await.unwrap(), value_of("k", 1));
        assert_eq!(
            loader.loads("k"),
            1,
            "the next get is served from the cache"
        );
        assert_eq!(cache.stats().main_hits, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_caller_joins_the_flight_after_a_waiter_left() {
    // Regression scenario from janos/singleflight#4: a waiter leaving must not orphan the
    // flight for later callers.
    within_limit(async {
        let loader = CountingLoader::new();
        loader.script("k", Script::Gate);
        let cache = standalone(&loader);
        let leader = spawn_get(&cache, "k");
        wait_until("the leader waits", || cache.inflight_waiters("k") == 1).await;
        let waiter = spawn_get(&cache, "k");
        wait_until("the waiter waits", || cache.inflight_waiters("k") == 2).await;
        waiter.abort();
        wait_until("the waiter left", || cache.inflight_waiters("k") == 1).await;
        let late = spawn_get(&cache, "k");
        wait_until("the late caller joined", || {
            cache.inflight_waiters("k") == 2
        })
        .await;
        loader.release();
        assert_eq!(leader.await.unwrap().unwrap(), value_of("k", 1));
        assert_eq!(late.await.unwrap().unwrap(), value_of("k", 1));
        assert_eq!(loader.loads("k"), 1);
        assert_eq!(cache.inflight_len(), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_panic_reaches_every_waiter_and_is_not_cached() {
    within_limit(async {
        let loader = CountingLoader::new();
        loader.script("k", Script::Gate);
        let cache = standalone(&loader);
        let mut callers = callers_waiting_on_k(&cache, 50).await;
        loader.script("k", Script::Panic);
        loader.release();
        let mut errors = Vec::new();
        while let Some(result) = callers.join_next().await {
            errors.push(result.unwrap().unwrap_err());
        }
        for err in &errors {
            assert_eq!(err.kind(), ErrorKind::LoaderPanicked);
            assert!(err.to_string().contains("loader exploded on k"), "{err}");
        }
        assert_eq!(cache.inflight_len(), 0);
        assert_eq!(cache.stats().main_cache.entries, 0, "nothing cached");

        loader.script("k", Script::Value);
        assert_eq!(cache.get("k").await.unwrap(), value_of("k", 1));
        assert!(cache.stats().local_load_errors >= 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_of_one_flight_share_one_error_and_it_is_not_cached() {
    within_limit(async {
        let loader = CountingLoader::new();
        loader.script("k", Script::Gate);
        let cache = standalone(&loader);
        let mut callers = callers_waiting_on_k(&cache, 20).await;
        // The gated load reads its script again after the gate: make it fail.
        loader.script("k", Script::Fail("boom".into()));
        loader.release();
        let mut errors = Vec::new();
        while let Some(result) = callers.join_next().await {
            errors.push(result.unwrap().unwrap_err());
        }
        let first = Arc::new(errors[0].clone());
        assert!(errors.iter().all(|e| e.ptr_eq(&first)), "one shared error");
        assert_eq!(first.kind(), ErrorKind::Loader);
        assert_eq!(
            std::error::Error::source(&*first).unwrap().to_string(),
            "boom"
        );
        assert_eq!(loader.loads("k"), 1);

        loader.script("k", Script::Value);
        assert_eq!(cache.get("k").await.unwrap(), value_of("k", 1));
        assert_eq!(loader.loads("k"), 2, "the error was not cached");
    })
    .await;
}

#[tokio::test]
async fn not_found_is_reported_as_such() {
    within_limit(async {
        let loader = CountingLoader::new();
        loader.script("ghost", Script::NotFound);
        let cache = standalone(&loader);
        let err = cache.get("ghost").await.unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        assert_eq!(err.key(), Some("ghost"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_after_remove_never_sees_what_a_load_read_before_it() {
    within_limit(async {
        let loader = CountingLoader::new();
        loader.script("k", Script::Gate);
        let cache = standalone(&loader);
        // A load reads generation 1, then is held.
        let before = spawn_get(&cache, "k");
        wait_until("the first load started", || loader.loads("k") == 1).await;

        // The source changes and the key is removed while that load is still running.
        loader.set_generation(2);
        cache.remove("k").await.unwrap();

        let after = spawn_get(&cache, "k");
        wait_until("a new load started", || loader.loads("k") == 2).await;
        loader.release();
        // The caller that asked before the removal may get either value; the one that asked
        // after it must get the new one, and so must everyone later.
        before.await.unwrap().unwrap();
        assert_eq!(after.await.unwrap().unwrap(), value_of("k", 2));
        assert_eq!(cache.get("k").await.unwrap(), value_of("k", 2));
        assert_eq!(loader.loads("k"), 2);
        assert_eq!(cache.inflight_len(), 0);
    })
    .await;
}
