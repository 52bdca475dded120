//! `get_many`: one `GetMany` request per owner, per-key results, the batch limits, and the
//! rules a single `get` keeps (exactly once across batches and single gets, detached fetches,
//! the peer timeout).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use groupcache::ErrorKind;
use groupcache::defaults::MAX_BATCH_KEYS;
use groupcache_pb::v2::GetManyRequest;
use groupcache_pb::v2::groupcache_client::GroupcacheClient;
use groupcache_tests::{
    ClusterSpec, GROUP, Script, TestCluster, value_of, wait_until, within_limit,
};
use tokio::task::JoinSet;
use tonic::Code;

/// A peer timeout longer than any test here: a fallback would be a bug, not a fault.
const PATIENT: Duration = Duration::from_secs(60);

async fn patient(nodes: usize) -> TestCluster {
    ClusterSpec::new(nodes)
        .configure(|_, b| b.peer_timeout(PATIENT).handoff_window(Duration::ZERO))
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_keys_over_3_peers_take_one_request_per_other_owner() {
    within_limit(async {
        let cluster = ClusterSpec::new(3)
            .keeping_hot_copies()
            .configure(|_, b| b.peer_timeout(PATIENT).handoff_window(Duration::ZERO))
            .start()
            .await;
        let keys: Vec<String> = (0..100).map(|i| format!("many-{i}")).collect();
        let found = cluster.node(0).get_many(&keys).await;
        assert_eq!(found.len(), 100);
        for (key, found) in keys.iter().zip(&found) {
            assert_eq!(found.as_ref().unwrap(), &value_of(key, 1), "{key}");
            assert_eq!(cluster.loader.loads(key), 1, "{key} loaded once");
        }
        let owners: Vec<usize> = keys.iter().map(|k| cluster.owner_of(k)).collect();
        assert!((0..3).all(|o| owners.contains(&o)), "every peer owns some");
        let asker = cluster.node(0).stats();
        assert_eq!(asker.peer_batches, 2, "one request per other owner");
        assert_eq!(asker.gets, 100);
        assert_eq!(asker.loads_deduped, 100);
        for owner in 1..3 {
            let stats = cluster.node(owner).stats();
            assert_eq!(stats.server_requests, 1, "node {owner}: one request");
            let owned = owners.iter().filter(|&&o| o == owner).count() as u64;
            assert_eq!(stats.local_loads, owned, "node {owner} loaded its keys");
        }
        assert_eq!(
            asker.peer_loads,
            100 - owners.iter().filter(|&&o| o == 0).count() as u64
        );

        // Again: every key is a local hit (its main cache, or a hot copy), and no request goes.
        let again = cluster.node(0).get_many(&keys).await;
        for (key, again) in keys.iter().zip(again) {
            assert_eq!(again.unwrap(), value_of(key, 1), "{key}");
        }
        let stats = cluster.node(0).stats();
        assert_eq!(stats.peer_batches, 2, "no request for hits");
        assert_eq!(stats.hot_hits + stats.main_hits, 100);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_share_one_lookup_and_keep_their_places() {
    within_limit(async {
        let cluster = patient(2).await;
        let remote = cluster.key_owned_by(1, "dup");
        let local = cluster.key_owned_by(0, "dup");
        let keys = [&remote, &local, &remote, &remote, &local];
        let found = cluster.node(0).get_many(keys).await;
        let values: Vec<String> = found.into_iter().map(Result::unwrap).collect();
        let expected: Vec<String> = keys.iter().map(|k| value_of(k, 1)).collect();
        assert_eq!(values, expected);
        assert_eq!(
            cluster.node(0).stats().gets,
            2,
            "one lookup per distinct key"
        );
        assert_eq!(cluster.loader.loads(&remote), 1);
        assert_eq!(cluster.node(1).stats().server_requests, 1);
        assert!(
            cluster
                .node(0)
                .get_many(Vec::<String>::new())
                .await
                .is_empty()
        );
        cluster.shutdown().await;
    })
    .await;
}

/// Node `node`'s callers of `key`: `get_many` calls counted once per key, single gets once.
fn callers_of(plan: &[(usize, Vec<String>)], node: usize, key: &str) -> usize {
    plan.iter()
        .filter(|(n, keys)| *n == node && keys.iter().any(|k| k == key))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_batches_and_single_gets_load_each_key_once_under_a_stampede() {
    within_limit(async {
        let cluster = patient(3).await;
        let keys: Vec<String> = (0..30).map(|i| format!("herd-{i}")).collect();
        for key in &keys {
            cluster.loader.script(key, Script::Gate);
        }
        // On every node: three overlapping batches, and ten single gets of every third key.
        let mut plan: Vec<(usize, Vec<String>)> = Vec::new();
        for node in 0..3 {
            plan.push((node, keys[..20].to_vec()));
            plan.push((node, keys[10..].to_vec()));
            plan.push((node, keys.clone()));
            for key in keys.iter().step_by(3) {
                for _ in 0..10 {
                    plan.push((node, vec![key.clone()]));
                }
            }
        }
        let mut callers = JoinSet::new();
        for (i, (node, batch)) in plan.iter().cloned().enumerate() {
            let group = cluster.node(node).clone();
            callers.spawn(async move {
                // Alternately a `get` and a `get_many` of one key, for the single callers.
                let found = if batch.len() == 1 && i % 2 == 0 {
                    vec![group.get(&batch[0]).await]
                } else {
                    group.get_many(&batch).await
                };
                (batch, found)
            });
        }
        let caches = cluster.caches();
        wait_until("every caller waits on its key's flight", || {
            keys.iter().all(|key| {
                (0..3).all(|n| caches[n].inflight_waiters(key) == callers_of(&plan, n, key))
            })
        })
        .await;
        wait_until("each key's owner has every peer's request", || {
            keys.iter()
                .all(|key| caches[cluster.owner_of(key)].inflight_load_waiters(key) == 3)
        })
        .await;
        for key in &keys {
            assert_eq!(
                cluster.loader.loads(key),
                1,
                "{key}: one load, held at the gate"
            );
        }
        cluster.loader.release();
        while let Some(done) = callers.join_next().await {
            let (batch, found) = done.unwrap();
            for (key, found) in batch.iter().zip(found) {
                assert_eq!(found.unwrap(), value_of(key, 1), "{key}");
            }
        }
        for key in &keys {
            assert_eq!(
                cluster.loader.loads(key),
                1,
                "{key}: loaded once in the cluster"
            );
        }
        let mut asked: HashMap<usize, u64> = HashMap::new();
        for node in 0..3 {
            let stats = cluster.node(node).stats();
            // One fetch flight per key on each peer, however many callers.
            assert_eq!(stats.loads_deduped, 30, "node {node}");
            assert!(stats.peer_batches >= 2, "node {node} batched: {stats:?}");
            assert_eq!(cluster.node(node).inflight_len(), 0, "node {node}");
            *asked.entry(node).or_default() += stats.peer_loads;
        }
        // Each peer fetched each key it does not own exactly once (rule 2).
        for node in 0..3 {
            let remote = keys.iter().filter(|k| cluster.owner_of(k) != node).count() as u64;
            assert_eq!(asked[&node], remote, "node {node}");
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_keys_error_does_not_fail_the_others() {
    within_limit(async {
        let cluster = patient(2).await;
        let fine = cluster.key_owned_by(1, "fine");
        let failing = cluster.key_owned_by(1, "failing");
        let missing = cluster.key_owned_by(1, "missing");
        let panicking = cluster.key_owned_by(1, "panicking");
        let local_failing = cluster.key_owned_by(0, "local-failing");
        let local = cluster.key_owned_by(0, "local");
        let too_long = "k".repeat(2000);
        cluster.loader.script(&failing, Script::Fail("boom".into()));
        cluster.loader.script(&missing, Script::NotFound);
        cluster.loader.script(&panicking, Script::Panic);
        cluster
            .loader
            .script(&local_failing, Script::Fail("bang".into()));
        let keys = [
            &fine,
            &failing,
            &missing,
            &too_long,
            &panicking,
            &local_failing,
            &local,
        ];
        let found = cluster.node(0).get_many(keys).await;
        assert_eq!(found[0].as_ref().unwrap(), &value_of(&fine, 1));
        let kind = |i: usize| found[i].as_ref().unwrap_err().kind();
        assert_eq!(kind(1), ErrorKind::Loader);
        assert!(found[1].as_ref().unwrap_err().to_string().contains("boom"));
        assert_eq!(kind(2), ErrorKind::NotFound);
        assert_eq!(kind(3), ErrorKind::KeyTooLong);
        assert_eq!(kind(4), ErrorKind::LoaderPanicked);
        assert_eq!(kind(5), ErrorKind::Loader);
        assert_eq!(found[6].as_ref().unwrap(), &value_of(&local, 1));
        // The owner's answers are returned as they are: no load here (rule 5).
        for key in [&failing, &missing, &panicking] {
            assert_eq!(cluster.loader.loads_on(0, key), 0, "{key}");
            assert_eq!(cluster.loader.loads_on(1, key), 1, "{key}");
        }
        let stats = cluster.node(0).stats();
        assert_eq!(stats.peer_batches, 1);
        assert_eq!((stats.peer_errors, stats.fallback_loads), (0, 0));
        assert_eq!(
            stats.rejected_keys, 1,
            "the long key, refused before any request"
        );
        // Errors are not cached (rule 4): the next call loads the failed keys again.
        cluster.loader.script(&failing, Script::Value);
        let again = cluster.node(0).get_many([&failing]).await;
        assert_eq!(again[0].as_ref().unwrap(), &value_of(&failing, 1));
        assert_eq!(cluster.loader.loads_on(1, &failing), 2);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_the_key_limit_is_split_into_several_requests() {
    within_limit(async {
        let cluster = patient(2).await;
        let keys = cluster.keys_owned_by(1, "split", 2 * MAX_BATCH_KEYS + 88);
        let found = cluster.node(0).get_many(&keys).await;
        for (key, found) in keys.iter().zip(found) {
            assert_eq!(found.unwrap(), value_of(key, 1));
        }
        assert_eq!(
            cluster.node(0).stats().peer_batches,
            3,
            "256 + 256 + 88 keys"
        );
        assert_eq!(cluster.node(1).stats().server_requests, 3);
        assert_eq!(cluster.node(1).stats().local_loads, keys.len() as u64);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_do_not_fit_in_one_reply_are_asked_for_one_by_one() {
    within_limit(async {
        // Replies of at most 1,000 + 1,024 bytes of framing: two values of 900 bytes each.
        let cluster = ClusterSpec::new(2)
            .configure(|_, b| {
                b.peer_timeout(PATIENT)
                    .handoff_window(Duration::ZERO)
                    .max_value_size(1000)
            })
            .start()
            .await;
        let keys = cluster.keys_owned_by(1, "big", 5);
        for key in &keys {
            cluster.loader.script(key, Script::Size(900));
        }
        let found = cluster.node(0).get_many(&keys).await;
        for found in found {
            assert_eq!(found.unwrap(), "x".repeat(900));
        }
        assert_eq!(cluster.node(0).stats().peer_batches, 1);
        assert_eq!(
            cluster.node(1).stats().server_requests,
            4,
            "the batch, then a Get for each of the 3 values that did not fit"
        );
        assert_eq!(cluster.node(1).stats().local_loads, 5, "each loaded once");
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_refuses_a_request_over_its_limits_and_keeps_serving() {
    within_limit(async {
        let cluster = patient(1).await;
        let mut client = GroupcacheClient::connect(format!("http://{}", cluster.addr(0)))
            .await
            .unwrap()
            .max_encoding_message_size(64 * 1024 * 1024);
        let request = |keys: Vec<String>| GetManyRequest {
            group: GROUP.into(),
            keys,
            ..GetManyRequest::default()
        };
        let too_many: Vec<String> = (0..=MAX_BATCH_KEYS).map(|i| format!("k{i}")).collect();
        let refused = client.get_many(request(too_many)).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains("at most 256 keys, not 257"),
            "{refused:?}"
        );
        // As many keys as allowed but more bytes than 256 requests of the longest keys: refused
        // while decoding, before a handler runs.
        let huge: Vec<String> = (0..MAX_BATCH_KEYS).map(|_| "k".repeat(4096)).collect();
        let refused = client.get_many(request(huge)).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(cluster.loader.total_loads_on(0), 0, "nothing loaded");

        // The same server answers the next request, with a result per key.
        let keys: Vec<String> = (0..MAX_BATCH_KEYS).map(|i| format!("k{i}")).collect();
        let answer = client
            .get_many(request(keys.clone()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.results.len(), MAX_BATCH_KEYS);
        assert!(answer.results.iter().all(|r| r.code == 0 && !r.not_sent));
        assert_eq!(cluster.node(0).stats().server_requests, 1);
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_cancels_nothing() {
    within_limit(async {
        let cluster = ClusterSpec::new(2)
            .keeping_hot_copies()
            .configure(|_, b| b.peer_timeout(PATIENT).handoff_window(Duration::ZERO))
            .start()
            .await;
        let remote = cluster.keys_owned_by(1, "abandoned", 5);
        let local = cluster.keys_owned_by(0, "abandoned", 5);
        let keys: Vec<String> = remote.iter().chain(&local).cloned().collect();
        for key in &keys {
            cluster.loader.script(key, Script::Gate);
        }
        let group = cluster.node(0).clone();
        let batch = keys.clone();
        let caller = tokio::spawn(async move { group.get_many(&batch).await });
        wait_until("every load is running", || {
            keys.iter().all(|k| cluster.loader.loads(k) == 1)
        })
        .await;
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        // A later caller joins the flights the first one started.
        let late = spawn_get_many(&cluster, 0, &keys);
        wait_until("the late caller joined", || {
            keys.iter()
                .all(|k| cluster.node(0).inflight_waiters(k) == 1)
        })
        .await;
        cluster.loader.release();
        for (key, found) in keys.iter().zip(late.await.unwrap()) {
            assert_eq!(found.unwrap(), value_of(key, 1));
        }
        wait_until("every flight ended", || {
            cluster.node(0).inflight_len() == 0 && cluster.node(1).inflight_len() == 0
        })
        .await;
        // The flights filled the caches: the owner's main cache, and node 0's hot cache.
        let again = cluster.node(0).get_many(&keys).await;
        assert!(again.iter().all(Result::is_ok));
        let stats = cluster.node(0).stats();
        assert_eq!(stats.peer_batches, 1, "the abandoned call's one request");
        assert_eq!(stats.hot_hits + stats.main_hits, 10);
        for key in &keys {
            assert_eq!(cluster.loader.loads(key), 1, "{key}");
        }
        cluster.shutdown().await;
    })
    .await;
}

fn spawn_get_many(
    cluster: &TestCluster,
    node: usize,
    keys: &[String],
) -> tokio::task::JoinHandle<Vec<Result<String, groupcache::Error>>> {
    let (group, keys) = (cluster.node(node).clone(), keys.to_vec());
    tokio::spawn(async move { group.get_many(&keys).await })
}

const SHORT_TIMEOUT: Duration = Duration::from_millis(300);
/// Slack for scheduling on a loaded 2-core CI machine.
const SLACK: Duration = Duration::from_millis(700);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_of_a_slow_owners_batch_returns_within_the_peer_timeout() {
    within_limit(async {
        let cluster = ClusterSpec::new(3)
            .configure(|_, b| b.peer_timeout(SHORT_TIMEOUT).handoff_window(Duration::ZERO))
            .start()
            .await;
        let slow = cluster.keys_owned_by(2, "slow", 10);
        let local = cluster.keys_owned_by(0, "slow", 3);
        for key in &slow {
            cluster.loader.script_on(2, key, Script::Gate);
        }
        let keys: Vec<String> = slow.iter().chain(&local).cloned().collect();
        let started = Instant::now();
        let found = cluster.node(0).get_many(&keys).await;
        let took = started.elapsed();
        for (key, found) in keys.iter().zip(found) {
            assert_eq!(found.unwrap(), value_of(key, 1), "{key}");
        }
        assert!(
            took >= SHORT_TIMEOUT,
            "waited for the owner first: {took:?}"
        );
        assert!(took < SHORT_TIMEOUT + SLACK, "then loaded here: {took:?}");
        let stats = cluster.node(0).stats();
        assert_eq!(stats.peer_batches, 1);
        assert_eq!(stats.peer_errors, 1, "one request failed");
        assert_eq!(stats.fallback_loads, 10, "each of its keys loaded here");
        for key in &slow {
            assert_eq!(cluster.loader.loads_on(0, key), 1, "{key}");
            assert_eq!(cluster.loader.loads_on(1, key), 0, "{key}");
        }
        cluster.loader.release();
        wait_until("the owner's late loads finished", || {
            cluster.node(2).inflight_len() == 0
        })
        .await;
        cluster.shutdown().await;
    })
    .await;
}
