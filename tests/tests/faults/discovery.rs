//! Service discovery: the driver's schedule, failures, backoff and shutdown (with a scripted
//! provider, in paused time); changes applied on every peer of a real loopback cluster; the
//! static, file and DNS providers on loopback.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use groupcache::discovery::{
    DiscoveryDriver, DiscoveryHandle, DiscoveryStatus, DnsPeers, PeersFile, ServiceDiscovery,
    StaticPeers,
};
use groupcache::{BoxError, ErrorKind, Groupcache, GroupcachePeer};
use groupcache_tests::{CountingLoader, GROUP, TestCluster, wait_until, within_limit};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

// ===== ScriptedProvider =====

/// What the scripted provider does on one poll.
#[derive(Debug, Clone)]
enum Answer {
    Peers(Vec<SocketAddr>),
    Fail(&'static str),
    Panic,
    /// Never answers.
    Hang,
}

#[derive(Debug, Default)]
struct Script {
    /// Answers given in order; the last one repeats.
    answers: VecDeque<Answer>,
    last: Option<Answer>,
    /// When each poll started (tokio time).
    calls: Vec<Instant>,
}

/// A provider that answers from a script and records when it is asked. When dropped (the
/// driver's task ended) it says so on `dropped`.
#[derive(Debug)]
struct ScriptedProvider {
    script: Arc<Mutex<Script>>,
    dropped: Option<oneshot::Sender<()>>,
}

impl ScriptedProvider {
    fn new(
        answers: impl IntoIterator<Item = Answer>,
    ) -> (Self, Arc<Mutex<Script>>, oneshot::Receiver<()>) {
        let script = Arc::new(Mutex::new(Script {
            answers: answers.into_iter().collect(),
            ..Script::default()
        }));
        let (dropped, on_drop) = oneshot::channel();
        let provider = ScriptedProvider {
            script: Arc::clone(&script),
            dropped: Some(dropped),
        };
        (provider, script, on_drop)
    }
}

impl Drop for ScriptedProvider {
    fn drop(&mut self) {
        if let Some(dropped) = self.dropped.take() {
            let _ = dropped.send(());
        }
    }
}

#[groupcache::async_trait]
impl ServiceDiscovery for ScriptedProvider {
    async fn peers(&self) -> Result<Vec<GroupcachePeer>, BoxError> {
        let answer = {
            let mut script = self.script.lock().unwrap();
            script.calls.push(Instant::now());
            let next = script.answers.pop_front().or_else(|| script.last.clone());
            script.last = next.clone();
            next.expect("the script has answers")
        };
        match answer {
            Answer::Peers(addrs) => Ok(addrs.into_iter().map(GroupcachePeer::from).collect()),
            Answer::Fail(message) => Err(message.into()),
            Answer::Panic => panic!("provider exploded"),
            Answer::Hang => std::future::pending().await,
        }
    }
}

/// A provider whose answer the test changes at will (for real-time cluster tests).
#[derive(Debug, Clone)]
struct SettableProvider(watch::Sender<Vec<SocketAddr>>);

#[groupcache::async_trait]
impl ServiceDiscovery for SettableProvider {
    async fn peers(&self) -> Result<Vec<GroupcachePeer>, BoxError> {
        Ok(self
            .0
            .borrow()
            .iter()
            .copied()
            .map(GroupcachePeer::from)
            .collect())
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn peers(ports: &[u16]) -> Vec<GroupcachePeer> {
    let mut peers: Vec<GroupcachePeer> = ports.iter().map(|p| addr(*p).into()).collect();
    peers.sort();
    peers
}

/// A peer set (hosting the test group) that is never served: membership changes open no
/// connection.
fn lone_cache(port: u16) -> Groupcache {
    let cache = Groupcache::builder(addr(port)).build();
    cache
        .group(GROUP, CountingLoader::new())
        .build()
        .expect("the test group");
    cache
}

async fn wait_for_polls(handle: &DiscoveryHandle, polls: u64) -> DiscoveryStatus {
    handle
        .subscribe()
        .wait_for(|s| s.polls >= polls)
        .await
        .expect("the driver is running")
        .clone()
}

fn call_offsets(script: &Mutex<Script>, start: Instant) -> Vec<Duration> {
    script
        .lock()
        .unwrap()
        .calls
        .iter()
        .map(|t| *t - start)
        .collect()
}

// ===== the driver, in paused time =====

#[tokio::test(start_paused = true)]
async fn the_first_poll_is_immediate_then_one_per_interval() {
    within_limit(async {
        let cache = lone_cache(1);
        let (provider, script, _) = ScriptedProvider::new([Answer::Peers(vec![addr(1), addr(2)])]);
        let start = Instant::now();
        let handle = DiscoveryDriver::new(cache.clone(), provider)
            .interval(Duration::from_secs(10))
            .jitter(Duration::ZERO)
            .spawn();

        let status = wait_for_polls(&handle, 1).await;
        assert_eq!(
            call_offsets(&script, start),
            [Duration::ZERO],
            "polled at once"
        );
        assert_eq!(cache.peers(), peers(&[1, 2]), "applied at once");
        assert_eq!((status.changes, status.failures), (1, 0));
        assert_eq!(status.peers, peers(&[1, 2]));

        let status = wait_for_polls(&handle, 3).await;
        assert_eq!(
            call_offsets(&script, start),
            [0, 10, 20].map(Duration::from_secs),
            "one poll per interval"
        );
        assert_eq!(
            status.changes, 1,
            "an unchanged answer is not applied again"
        );
        handle.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_each_poll_by_at_most_its_bound() {
    within_limit(async {
        let (provider, script, _) = ScriptedProvider::new([Answer::Peers(vec![addr(1)])]);
        let start = Instant::now();
        let handle = DiscoveryDriver::new(lone_cache(1), provider)
            .interval(Duration::from_secs(2))
            .jitter(Duration::from_secs(1))
            .spawn();
        wait_for_polls(&handle, 10).await;
        let offsets = call_offsets(&script, start);
        assert_eq!(offsets[0], Duration::ZERO);
        let gaps: Vec<Duration> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
        for gap in &gaps {
            assert!(
                (Duration::from_secs(2)..=Duration::from_secs(3)).contains(gap),
                "gap {gap:?} outside interval..=interval+jitter"
            );
        }
        assert!(
            gaps.iter().any(|g| *g != gaps[0]),
            "nine jittered gaps were all equal: {gaps:?}"
        );
        handle.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_provider_keeps_the_last_good_set_backs_off_and_recovers() {
    within_limit(async {
        let cache = lone_cache(1);
        let (provider, script, _) = ScriptedProvider::new([
            Answer::Peers(vec![addr(1), addr(2)]),
            Answer::Fail("registry unreachable"),
            Answer::Fail("registry unreachable"),
            Answer::Fail("registry unreachable"),
            Answer::Fail("registry unreachable"),
            Answer::Peers(vec![addr(1), addr(3)]),
        ]);
        let start = Instant::now();
        let handle = DiscoveryDriver::new(cache.clone(), provider)
            .interval(Duration::from_secs(1))
            .jitter(Duration::ZERO)
            .max_backoff(Duration::from_secs(3))
            .spawn();

        let status = wait_for_polls(&handle, 5).await;
        assert_eq!(cache.peers(), peers(&[1, 2]), "the last good set is kept");
        assert_eq!(status.failures, 4);
        assert_eq!(status.consecutive_failures, 4);
        assert_eq!(status.last_error.as_deref(), Some("registry unreachable"));

        let status = wait_for_polls(&handle, 7).await;
        assert_eq!(cache.peers(), peers(&[1, 3]), "recovered");
        assert_eq!(status.consecutive_failures, 0);
        assert_eq!(status.changes, 2);
        // Waits: 1 s after the answer, then 1, 2, 3 (4 capped at 3), 3 after the failures,
        // then the interval again.
        assert_eq!(
            call_offsets(&script, start),
            [0, 1, 2, 4, 7, 10, 11].map(Duration::from_secs)
        );
        handle.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_or_silent_provider_is_a_failure_not_a_crash() {
    within_limit(async {
        let cache = lone_cache(1);
        let (provider, _, _) = ScriptedProvider::new([
            Answer::Peers(vec![addr(1), addr(2)]),
            Answer::Panic,
            Answer::Hang,
            Answer::Peers(vec![addr(1), addr(4)]),
        ]);
        let handle = DiscoveryDriver::new(cache.clone(), provider)
            .interval(Duration::from_secs(1))
            .poll_timeout(Duration::from_secs(5))
            .spawn();

        let status = wait_for_polls(&handle, 2).await;
        let error = status.last_error.unwrap();
        assert!(error.contains("panicked: provider exploded"), "{error}");
        assert_eq!(cache.peers(), peers(&[1, 2]));

        let status = wait_for_polls(&handle, 3).await;
        let error = status.last_error.unwrap();
        assert!(error.contains("did not answer within 5s"), "{error}");
        assert_eq!(cache.peers(), peers(&[1, 2]));

        let status = wait_for_polls(&handle, 4).await;
        assert_eq!(status.failures, 2);
        assert_eq!(cache.peers(), peers(&[1, 4]), "the driver survived both");
        handle.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_empty_answer_is_ignored_unless_allowed() {
    within_limit(async {
        let cache = lone_cache(1);
        let (provider, _, _) =
            ScriptedProvider::new([Answer::Peers(vec![addr(1), addr(2)]), Answer::Peers(vec![])]);
        let handle = DiscoveryDriver::new(cache.clone(), provider).spawn();
        let status = wait_for_polls(&handle, 2).await;
        assert_eq!(cache.peers(), peers(&[1, 2]));
        assert!(status.last_error.unwrap().contains("no peers"));
        handle.shutdown().await;

        let (provider, _, _) =
            ScriptedProvider::new([Answer::Peers(vec![addr(1), addr(2)]), Answer::Peers(vec![])]);
        let handle = DiscoveryDriver::new(cache.clone(), provider)
            .allow_empty(true)
            .spawn();
        let status = wait_for_polls(&handle, 2).await;
        assert_eq!(cache.peers(), []);
        assert_eq!(status.failures, 0);
        handle.shutdown().await;
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_driver_even_in_the_middle_of_a_poll() {
    within_limit(async {
        // Shut down between polls: no poll after, ever.
        let (provider, script, dropped) = ScriptedProvider::new([Answer::Peers(vec![addr(1)])]);
        let handle = DiscoveryDriver::new(lone_cache(1), provider)
            .interval(Duration::from_secs(1))
            .spawn();
        let mut status = handle.subscribe();
        wait_for_polls(&handle, 2).await;
        handle.shutdown().await;
        dropped.await.expect("the driver dropped its provider");
        assert!(status.wait_for(|s| s.stopped).await.is_ok());
        let polls = script.lock().unwrap().calls.len();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(
            script.lock().unwrap().calls.len(),
            polls,
            "no poll after shutdown"
        );

        // Shut down while the provider is not answering (poll timeout far away).
        let (provider, script, dropped) = ScriptedProvider::new([Answer::Hang]);
        let handle = DiscoveryDriver::new(lone_cache(1), provider)
            .poll_timeout(Duration::from_secs(3600))
            .spawn();
        wait_until("the hanging poll started", || {
            !script.lock().unwrap().calls.is_empty()
        })
        .await;
        let started = Instant::now();
        handle.shutdown().await;
        dropped.await.expect("the driver dropped its provider");
        assert!(started.elapsed() < Duration::from_secs(1));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn dropping_the_handle_or_firing_the_signal_stops_the_driver() {
    within_limit(async {
        let (provider, script, dropped) = ScriptedProvider::new([Answer::Peers(vec![addr(1)])]);
        let handle = DiscoveryDriver::new(lone_cache(1), provider).spawn();
        wait_for_polls(&handle, 1).await;
        drop(handle);
        dropped.await.expect("the driver dropped its provider");
        let polls = script.lock().unwrap().calls.len();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(script.lock().unwrap().calls.len(), polls);

        let (provider, _, dropped) = ScriptedProvider::new([Answer::Peers(vec![addr(1)])]);
        let (signal, on_signal) = oneshot::channel::<()>();
        let handle = DiscoveryDriver::new(lone_cache(1), provider).spawn_until(async move {
            let _ = on_signal.await;
        });
        wait_for_polls(&handle, 1).await;
        assert!(!handle.is_stopped());
        signal.send(()).unwrap();
        dropped.await.expect("the driver dropped its provider");
        assert!(handle.subscribe().wait_for(|s| s.stopped).await.is_ok());
        assert!(handle.is_stopped());
    })
    .await;
}

// ===== on a real cluster =====

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_applied_on_every_peer_and_all_agree_on_owners() {
    within_limit(async {
        let cluster = TestCluster::start(3).await;
        let all: Vec<SocketAddr> = (0..3).map(|i| cluster.addr(i)).collect();
        let (answer, _) = watch::channel(vec![all[0], all[1]]);
        let provider = SettableProvider(answer.clone());
        let handles: Vec<DiscoveryHandle> = (0..3)
            .map(|i| {
                DiscoveryDriver::new(cluster.peer_set(i).clone(), provider.clone())
                    .interval(Duration::from_millis(20))
                    .jitter(Duration::from_millis(5))
                    .spawn()
            })
            .collect();

        let every_node_has = |members: &[SocketAddr]| {
            let mut expected: Vec<GroupcachePeer> = members.iter().map(|a| (*a).into()).collect();
            expected.sort();
            (0..3).all(|i| cluster.peer_set(i).peers() == expected)
        };
        wait_until("every node dropped node 2", || every_node_has(&all[..2])).await;
        for i in 0..50 {
            let key = format!("k{i}");
            let owner = cluster.node(0).owner_of(&key);
            assert_ne!(owner.addr(), all[2]);
            for node in 0..3 {
                assert_eq!(
                    cluster.node(node).owner_of(&key),
                    owner,
                    "node {node} disagrees"
                );
            }
        }

        answer.send_replace(all.clone());
        wait_until("every node has all three", || every_node_has(&all)).await;
        let key = cluster.key_owned_by(2, "back");
        for node in 0..3 {
            assert_eq!(cluster.node(node).owner_of(&key).addr(), all[2]);
        }
        assert_eq!(
            cluster.node(0).get(&key).await.unwrap(),
            cluster.loader.expected(&key)
        );
        assert_eq!(
            cluster.loader.loads_on(2, &key),
            1,
            "node 0 asked the new owner"
        );

        answer.send_replace(vec![all[0], all[2]]);
        wait_until("every node dropped node 1", || {
            every_node_has(&[all[0], all[2]])
        })
        .await;
        for handle in handles {
            // The ring changes before the driver records the poll in its status.
            let status = handle
                .subscribe()
                .wait_for(|s| s.changes == 3)
                .await
                .unwrap()
                .clone();
            assert_eq!(status.failures, 0, "{status:?}");
            handle.shutdown().await;
        }
        cluster.shutdown().await;
    })
    .await;
}

// ===== providers on loopback =====

#[tokio::test]
async fn static_peers_resolve_names_and_find_me() {
    within_limit(async {
        let list = StaticPeers::parse("localhost:7001, 127.0.0.1:7002").unwrap();
        let mut found = list.peers().await.unwrap();
        found.sort();
        assert_eq!(found, peers(&[7001, 7002]));

        let me = list.find_me(Some("localhost")).await.unwrap();
        assert_eq!(me.addr(), addr(7001));
        let me = list.find_me(Some("127.0.0.1:7002")).await.unwrap();
        assert_eq!(me.addr(), addr(7002));

        let err = list.find_me(Some("10.9.9.9:7002")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(
            err.to_string().contains("localhost:7001, 127.0.0.1:7002"),
            "{err}"
        );

        let two = StaticPeers::parse("localhost:7001,localhost:7002").unwrap();
        let err = two.find_me(Some("localhost")).await.unwrap_err();
        assert!(err.to_string().contains("more than one"), "{err}");

        let err = StaticPeers::from_env("GROUPCACHE_TEST_NEVER_SET").unwrap_err();
        assert!(
            err.to_string().contains("GROUPCACHE_TEST_NEVER_SET"),
            "{err}"
        );

        let unresolvable = StaticPeers::parse("localhost:7001,no-such-peer.invalid:7002").unwrap();
        let err = unresolvable.peers().await.unwrap_err();
        assert!(
            err.to_string().contains("no-such-peer.invalid:7002"),
            "{err}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_peers_drive_a_real_cluster() {
    within_limit(async {
        let cluster = TestCluster::start(2).await;
        // Node 0 alone, then through the driver: both, one of them by name.
        cluster.set_peers_on(0, &[cluster.addr(0)]).await;
        let list = format!(
            "127.0.0.1:{},localhost:{}",
            cluster.addr(0).port(),
            cluster.addr(1).port()
        );
        let handle = DiscoveryDriver::new(
            cluster.peer_set(0).clone(),
            StaticPeers::parse(&list).unwrap(),
        )
        .spawn();
        let status = wait_for_polls(&handle, 1).await;
        assert_eq!(status.failures, 0, "{status:?}");
        let mut expected: Vec<GroupcachePeer> =
            [cluster.addr(0), cluster.addr(1)].map(Into::into).to_vec();
        expected.sort();
        assert_eq!(cluster.peer_set(0).peers(), expected);
        let key = cluster.key_owned_by(1, "static");
        cluster.node(0).get(&key).await.unwrap();
        assert_eq!(cluster.loader.loads_on(1, &key), 1);
        handle.shutdown().await;
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn dns_peers_resolve_localhost_with_the_port_on_every_poll() {
    within_limit(async {
        let dns = DnsPeers::new("localhost", 7100).ipv4_only();
        let found = dns.peers().await.unwrap();
        assert_eq!(found, peers(&[7100]));

        let cache = lone_cache(7100);
        let handle = DiscoveryDriver::new(cache.clone(), dns).spawn();
        let status = wait_for_polls(&handle, 1).await;
        assert_eq!(status.failures, 0, "{status:?}");
        assert_eq!(cache.peers(), peers(&[7100]));
        handle.shutdown().await;

        let err = DnsPeers::new("no-such-service.invalid", 7100)
            .peers()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no-such-service.invalid"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn a_peers_file_is_reread_and_a_broken_one_keeps_the_last_set() {
    within_limit(async {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("peers-file-test");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("peers-{}", std::process::id()));
        std::fs::write(
            &path,
            "# the cluster\n127.0.0.1:7201\nlocalhost:7202 # by name\n",
        )
        .unwrap();

        let cache = lone_cache(7201);
        let handle = DiscoveryDriver::new(cache.clone(), PeersFile::new(&path))
            .interval(Duration::from_millis(10))
            .jitter(Duration::ZERO)
            .spawn();
        let mut status = handle.subscribe();
        status.wait_for(|s| s.changes == 1).await.unwrap();
        assert_eq!(cache.peers(), peers(&[7201, 7202]));

        std::fs::write(&path, "127.0.0.1:7201,127.0.0.1:7203,oops").unwrap();
        let failed = status.wait_for(|s| s.failures > 0).await.unwrap().clone();
        let error = failed.last_error.unwrap();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(
            error.contains("entry 3") && error.contains("\"oops\""),
            "{error}"
        );
        assert_eq!(
            cache.peers(),
            peers(&[7201, 7202]),
            "the last good set is kept"
        );

        std::fs::write(&path, "127.0.0.1:7201,127.0.0.1:7203").unwrap();
        status.wait_for(|s| s.changes == 2).await.unwrap();
        assert_eq!(cache.peers(), peers(&[7201, 7203]));

        std::fs::remove_file(&path).unwrap();
        let failures = status.borrow().failures;
        let failed = status
            .wait_for(|s| s.failures > failures)
            .await
            .unwrap()
            .clone();
        assert!(failed.last_error.unwrap().contains("peers file"));
        assert_eq!(cache.peers(), peers(&[7201, 7203]));
        handle.shutdown().await;
    })
    .await;
}
