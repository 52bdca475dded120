//! Coalescing (`GroupcacheBuilder::coalesce_gets`): gets that queue behind requests in flight
//! to their owner share one `GetMany`; an idle link sends each get at once; per-key results;
//! each queued get keeps its own deadline (rule 10) and a caller that gives up cancels nothing
//! (rule 3); off by default.

use std::time::{Duration, Instant};

use groupcache::ErrorKind;
use groupcache::defaults::COALESCE_IN_FLIGHT;
use groupcache_tests::{
    ClusterSpec, Script, TestCluster, spawn_get, value_of, wait_until, within_limit,
};

/// A peer timeout longer than any test here: a fallback would be a bug, not a fault.
const PATIENT: Duration = Duration::from_secs(60);

fn coalescing(nodes: usize, peer_timeout: Duration) -> ClusterSpec {
    ClusterSpec::new(nodes)
        .keeping_hot_copies()
        .configure(move |_, b| {
            b.peer_timeout(peer_timeout)
                .handoff_window(Duration::ZERO)
                .coalesce_gets(true)
        })
}

/// Fills node 0's request slots to node 1 with gets of keys whose loads node 1 holds at the
/// gate: the keys, and their callers.
async fn fill_the_slots(
    cluster: &TestCluster,
    prefix: &str,
) -> Vec<(
    String,
    tokio::task::JoinHandle<Result<String, groupcache::Error>>,
)> {
    let busy = cluster.keys_owned_by(1, prefix, COALESCE_IN_FLIGHT);
    for key in &busy {
        cluster.loader.script_on(1, key, Script::Gate);
    }
    let callers: Vec<_> = busy
        .iter()
        .map(|key| (key.clone(), spawn_get(cluster.node(0), key)))
        .collect();
    wait_until("the owner holds every busy load", || {
        busy.iter().all(|k| cluster.loader.loads_on(1, k) == 1)
    })
    .await;
    callers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_queued_behind_busy_requests_share_one_request() {
    within_limit(async {
        let cluster = coalescing(2, PATIENT).start().await;
        let busy = fill_the_slots(&cluster, "busy").await;
        let queued = cluster.keys_owned_by(1, "queued", 20);
        let callers: Vec<_> = queued
            .iter()
            .map(|key| spawn_get(cluster.node(0), key))
            .collect();
        wait_until("every later get is queued", || {
            cluster.node(0).queued_gets() == queued.len()
        })
        .await;
        assert_eq!(
            cluster.node(1).stats().server_requests,
            COALESCE_IN_FLIGHT as u64,
            "the queued gets sent nothing yet"
        );
        cluster.loader.release();
        for (key, caller) in busy {
            assert_eq!(caller.await.unwrap().unwrap(), value_of(&key, 1));
        }
        for (key, caller) in queued.iter().zip(callers) {
            assert_eq!(caller.await.unwrap().unwrap(), value_of(key, 1), "{key}");
            assert_eq!(cluster.loader.loads(key), 1, "{key} loaded once");
        }
        let asker = cluster.node(0).stats();
        assert_eq!(asker.coalesced_gets, 20);
        assert_eq!(asker.peer_loads, 20 + COALESCE_IN_FLIGHT as u64);
        assert_eq!((asker.peer_errors, asker.fallback_loads), (0, 0));
        assert_eq!(
            cluster.node(1).stats().server_requests,
            COALESCE_IN_FLIGHT as u64 + 1,
            "the 20 queued gets shared one request"
        );
        // The shared request's values are kept as a single get's are: hot copies here.
        let again = cluster.node(0).get(&queued[0]).await.unwrap();
        assert_eq!(again, value_of(&queued[0], 1));
        assert_eq!(cluster.node(0).stats().hot_hits, 1);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_idle_link_each_get_goes_out_at_once() {
    within_limit(async {
        let cluster = coalescing(2, PATIENT).start().await;
        let keys = cluster.keys_owned_by(1, "idle", 10);
        for key in &keys {
            assert_eq!(cluster.node(0).get(key).await.unwrap(), value_of(key, 1));
            assert_eq!(cluster.node(0).queued_gets(), 0);
        }
        let stats = cluster.node(0).stats();
        assert_eq!(stats.peer_loads, 10);
        assert_eq!(stats.coalesced_gets, 0, "none waited for a shared request");
        assert_eq!(cluster.node(1).stats().server_requests, 10);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_is_off_by_default() {
    within_limit(async {
        let cluster = ClusterSpec::new(2)
            .configure(|_, b| b.peer_timeout(PATIENT).handoff_window(Duration::ZERO))
            .start()
            .await;
        let busy = fill_the_slots(&cluster, "busy").await;
        let more = cluster.keys_owned_by(1, "more", 10);
        for key in &more {
            assert_eq!(cluster.node(0).get(key).await.unwrap(), value_of(key, 1));
        }
        assert_eq!(cluster.node(0).queued_gets(), 0);
        cluster.loader.release();
        for (key, caller) in busy {
            assert_eq!(caller.await.unwrap().unwrap(), value_of(&key, 1));
        }
        assert_eq!(cluster.node(0).stats().coalesced_gets, 0);
        assert_eq!(
            cluster.node(1).stats().server_requests,
            10 + COALESCE_IN_FLIGHT as u64
        );
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_queued_get_has_its_own_result() {
    within_limit(async {
        let cluster = coalescing(2, PATIENT).start().await;
        let busy = fill_the_slots(&cluster, "busy").await;
        let fine = cluster.key_owned_by(1, "fine");
        let failing = cluster.key_owned_by(1, "failing");
        let missing = cluster.key_owned_by(1, "missing");
        cluster.loader.script(&failing, Script::Fail("boom".into()));
        cluster.loader.script(&missing, Script::NotFound);
        let callers: Vec<_> = [&fine, &failing, &missing]
            .into_iter()
            .map(|key| spawn_get(cluster.node(0), key))
            .collect();
        wait_until("the three gets are queued", || {
            cluster.node(0).queued_gets() == 3
        })
        .await;
        cluster.loader.release();
        for (_, caller) in busy {
            caller.await.unwrap().unwrap();
        }
        let mut found = Vec::new();
        for caller in callers {
            found.push(caller.await.unwrap());
        }
        assert_eq!(found[0].as_ref().unwrap(), &value_of(&fine, 1));
        let failed = found[1].as_ref().unwrap_err();
        assert_eq!(failed.kind(), ErrorKind::Loader);
        assert!(failed.to_string().contains("boom"), "{failed}");
        assert_eq!(found[2].as_ref().unwrap_err().kind(), ErrorKind::NotFound);
        // The owner's answers are returned as they are: no load here (rule 5).
        for key in [&failing, &missing] {
            assert_eq!(cluster.loader.loads_on(0, key), 0, "{key}");
            assert_eq!(cluster.loader.loads_on(1, key), 1, "{key}");
        }
        let stats = cluster.node(0).stats();
        assert_eq!(stats.coalesced_gets, 1, "the one value that came back");
        assert_eq!((stats.peer_errors, stats.fallback_loads), (0, 0));
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_cancels_nothing() {
    within_limit(async {
        let cluster = coalescing(2, PATIENT).start().await;
        let busy = fill_the_slots(&cluster, "busy").await;
        let key = cluster.key_owned_by(1, "abandoned");
        let caller = spawn_get(cluster.node(0), &key);
        wait_until("the get is queued", || cluster.node(0).queued_gets() == 1).await;
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        // A later caller joins the flight the first one started: still one queued get.
        let late = spawn_get(cluster.node(0), &key);
        wait_until("the late caller joined", || {
            cluster.node(0).inflight_waiters(&key) == 1
        })
        .await;
        assert_eq!(cluster.node(0).queued_gets(), 1);
        cluster.loader.release();
        assert_eq!(late.await.unwrap().unwrap(), value_of(&key, 1));
        for (key, caller) in busy {
            assert_eq!(caller.await.unwrap().unwrap(), value_of(&key, 1));
        }
        let stats = cluster.node(0).stats();
        assert_eq!(stats.coalesced_gets, 1);
        assert_eq!(cluster.loader.loads(&key), 1);
        cluster.shutdown().await;
    })
    .await;
}

const SHORT_TIMEOUT: Duration = Duration::from_millis(300);
/// Slack for scheduling on a loaded 2-core CI machine.
const SLACK: Duration = Duration::from_millis(700);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_get_waits_at_most_its_own_peer_timeout() {
    within_limit(async {
        let cluster = coalescing(2, SHORT_TIMEOUT).start().await;
        let busy = fill_the_slots(&cluster, "busy").await;
        let key = cluster.key_owned_by(1, "late");
        cluster.loader.script_on(1, &key, Script::Gate);
        let started = Instant::now();
        let caller = spawn_get(cluster.node(0), &key);
        wait_until("the get is queued", || cluster.node(0).queued_gets() == 1).await;
        let found = caller.await.unwrap();
        let took = started.elapsed();
        // Its own deadline passed while it waited (the owner holds every load): it went on as a
        // get whose request timed out, to this peer as the owner's substitute.
        assert_eq!(found.unwrap(), value_of(&key, 1));
        assert!(
            took >= SHORT_TIMEOUT,
            "waited for the owner first: {took:?}"
        );
        assert!(took < SHORT_TIMEOUT + SLACK, "then loaded here: {took:?}");
        assert_eq!(cluster.loader.loads_on(0, &key), 1);
        let stats = cluster.node(0).stats();
        assert!(stats.peer_errors >= 1, "the wait counted as a failed ask");
        assert_eq!(stats.coalesced_gets, 0);
        for (key, caller) in busy {
            assert_eq!(caller.await.unwrap().unwrap(), value_of(&key, 1), "{key}");
        }
        cluster.loader.release();
        wait_until("the owner's late loads finished", || {
            cluster.node(1).inflight_len() == 0
        })
        .await;
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_window_even_the_first_get_waits_for_company() {
    within_limit(async {
        let window = Duration::from_millis(100);
        let cluster = coalescing(2, PATIENT)
            .configure(move |_, b| b.coalesce_window(window))
            .start()
            .await;
        let keys = cluster.keys_owned_by(1, "windowed", 10);
        let callers: Vec<_> = keys
            .iter()
            .map(|key| spawn_get(cluster.node(0), key))
            .collect();
        for (key, caller) in keys.iter().zip(callers) {
            assert_eq!(caller.await.unwrap().unwrap(), value_of(key, 1), "{key}");
        }
        assert_eq!(
            cluster.node(0).stats().coalesced_gets,
            10,
            "every get waited for a shared request"
        );
        let requests = cluster.node(1).stats().server_requests;
        assert!(
            requests < 10,
            "gets started together shared requests: {requests}"
        );
        cluster.shutdown().await;
    })
    .await;
}
