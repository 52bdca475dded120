//! [`EndpointSlicePeers`] against a fake kubernetes API server on loopback: canned
//! EndpointSliceList JSON for the list, a stream of watch events the test writes, and API
//! errors (403 from missing RBAC, 503) that must be logged and retried, never a panic.
//!
//! The fake serves exactly the two requests kube's watcher makes, as the real API server
//! answers them: `GET .../endpointslices?labelSelector=...` (a list with a resourceVersion)
//! and the same path with `watch=true&resourceVersion=...` (newline-delimited JSON events on a
//! response that stays open).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use groupcache::discovery::{DiscoveryDriver, ServiceDiscovery};
use groupcache::{Groupcache, GroupcachePeer};
use kubernetes_service_discovery::{EndpointSlicePeers, PeerPort};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

const LIMIT: Duration = Duration::from_secs(60);

async fn within_limit<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(LIMIT, body)
        .await
        .expect("test body exceeded its time limit")
}

/// Polls `cond` every 5 ms until it holds (tokio time), failing after 20 s.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ===== canned objects =====

/// An endpoint: its IP and its `ready` condition (`None`: no conditions at all).
fn endpoint(ip: &str, ready: Option<bool>) -> Value {
    let mut e = json!({
        "addresses": [ip],
        "targetRef": { "kind": "Pod", "namespace": "default", "name": format!("groupcache-{ip}") },
    });
    if let Some(ready) = ready {
        e["conditions"] = json!({ "ready": ready, "serving": ready, "terminating": false });
    }
    e
}

fn slice(name: &str, resource_version: &str, endpoints: Vec<Value>) -> Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "default",
            "resourceVersion": resource_version,
            "labels": { "kubernetes.io/service-name": "groupcache" },
        },
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{ "name": "grpc", "port": 8080, "protocol": "TCP" }],
    })
}

fn event(kind: &str, object: Value) -> String {
    format!("{}\n", json!({ "type": kind, "object": object }))
}

// ===== the fake API server =====

#[derive(Clone)]
struct Fake {
    /// The items of the list response.
    items: Arc<Mutex<Vec<Value>>>,
    /// Status codes to answer the next list requests with, in order, before succeeding.
    list_failures: Arc<Mutex<Vec<StatusCode>>>,
    /// Every request's query string, list and watch.
    requests: Arc<Mutex<Vec<String>>>,
    failures_served: Arc<AtomicUsize>,
    /// Lines written to every open watch.
    events: broadcast::Sender<String>,
    /// Number of watches opened so far.
    watches: watch::Sender<usize>,
}

impl Fake {
    async fn start(items: Vec<Value>) -> (Self, SocketAddr) {
        let fake = Fake {
            items: Arc::new(Mutex::new(items)),
            list_failures: Arc::default(),
            requests: Arc::default(),
            failures_served: Arc::default(),
            events: broadcast::channel(64).0,
            watches: watch::channel(0).0,
        };
        let app = Router::new()
            .route(
                "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                get(endpoint_slices),
            )
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, addr)
    }

    fn client(addr: SocketAddr) -> kube::Client {
        let url: http::Uri = format!("http://{addr}").parse().unwrap();
        kube::Client::try_from(kube::Config::new(url)).expect("kube client")
    }

    /// Waits until `n` watches have been opened, then writes `line` to the open ones.
    async fn send_after_watch(&self, n: usize, line: String) {
        let mut watches = self.watches.subscribe();
        watches.wait_for(|w| *w >= n).await.unwrap();
        self.events.send(line).expect("a watch is open");
    }
}

async fn endpoint_slices(State(fake): State<Fake>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    fake.requests.lock().unwrap().push(query.clone());
    if query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1")
    {
        // Subscribed before the count goes up: a line the test sends once it sees the count
        // reaches this watch.
        let events = fake.events.subscribe();
        fake.watches.send_modify(|n| *n += 1);
        let stream = futures_util::stream::unfold(events, |mut events| async move {
            let line = events.recv().await.ok()?;
            Some((Ok::<_, std::io::Error>(line), events))
        });
        return (
            [("content-type", "application/json")],
            Body::from_stream(stream),
        )
            .into_response();
    }
    let failure = {
        let mut failures = fake.list_failures.lock().unwrap();
        (!failures.is_empty()).then(|| failures.remove(0))
    };
    if let Some(code) = failure {
        fake.failures_served.fetch_add(1, Ordering::SeqCst);
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("canned failure {}", code.as_u16()),
            "reason": if code == StatusCode::FORBIDDEN { "Forbidden" } else { "ServiceUnavailable" },
            "code": code.as_u16(),
        });
        return (
            code,
            [("content-type", "application/json")],
            status.to_string(),
        )
            .into_response();
    }
    let list = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSliceList",
        "metadata": { "resourceVersion": "100" },
        "items": *fake.items.lock().unwrap(),
    });
    ([("content-type", "application/json")], list.to_string()).into_response()
}

// ===== tests =====

fn peers(ips: &[&str]) -> Vec<GroupcachePeer> {
    let mut peers: Vec<GroupcachePeer> = ips
        .iter()
        .map(|ip| format!("{ip}:8080").parse().unwrap())
        .collect();
    peers.sort();
    peers
}

#[tokio::test]
async fn lists_the_ready_endpoints_then_follows_watch_events() {
    within_limit(async {
        let (fake, addr) = Fake::start(vec![slice(
            "groupcache-abcde",
            "90",
            vec![
                endpoint("10.244.0.5", Some(true)),
                endpoint("10.244.0.6", Some(true)),
                endpoint("10.244.0.7", Some(false)), // starting: not ready yet
                endpoint("10.244.0.8", None),        // no conditions: ready, says kubernetes
            ],
        )])
        .await;
        let provider = EndpointSlicePeers::start(
            Fake::client(addr),
            "default",
            "groupcache",
            PeerPort::Named("grpc".into()),
        );

        let found = provider.peers().await.expect("listed");
        assert_eq!(found, peers(&["10.244.0.5", "10.244.0.6", "10.244.0.8"]));
        let first = fake.requests.lock().unwrap()[0].clone();
        assert!(
            first.contains("labelSelector=kubernetes.io%2Fservice-name%3Dgroupcache"),
            "the list selects the Service's slices: {first}"
        );

        // .7 becomes ready, .6 goes away.
        let changed = slice(
            "groupcache-abcde",
            "101",
            vec![
                endpoint("10.244.0.5", Some(true)),
                endpoint("10.244.0.7", Some(true)),
                endpoint("10.244.0.8", None),
            ],
        );
        fake.send_after_watch(1, event("MODIFIED", changed)).await;
        wait_until("the MODIFIED event was applied", || {
            provider.current() == peers(&["10.244.0.5", "10.244.0.7", "10.244.0.8"])
        })
        .await;
        let watch = fake.requests.lock().unwrap()[1].clone();
        assert!(
            watch.contains("watch=true") && watch.contains("resourceVersion=100"),
            "{watch}"
        );

        // A second slice appears (a big Service has several), then goes.
        let second = slice(
            "groupcache-fghij",
            "102",
            vec![endpoint("10.244.1.9", Some(true))],
        );
        fake.events.send(event("ADDED", second.clone())).unwrap();
        wait_until("the ADDED slice was applied", || {
            provider.current().len() == 4
        })
        .await;
        assert!(
            provider
                .current()
                .contains(&"10.244.1.9:8080".parse().unwrap())
        );
        fake.events.send(event("DELETED", second)).unwrap();
        wait_until("the DELETED slice was applied", || {
            provider.current().len() == 3
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn api_errors_are_logged_and_retried_until_the_list_succeeds() {
    within_limit(async {
        let (fake, addr) = Fake::start(vec![slice(
            "groupcache-abcde",
            "90",
            vec![endpoint("10.244.0.5", Some(true))],
        )])
        .await;
        *fake.list_failures.lock().unwrap() =
            vec![StatusCode::FORBIDDEN, StatusCode::SERVICE_UNAVAILABLE];
        let provider = EndpointSlicePeers::start(
            Fake::client(addr),
            "default",
            "groupcache",
            PeerPort::Number(9000),
        );

        let found = provider.peers().await.expect("listed after the retries");
        assert_eq!(
            found,
            vec!["10.244.0.5:9000".parse::<GroupcachePeer>().unwrap()]
        );
        assert_eq!(
            fake.failures_served.load(Ordering::SeqCst),
            2,
            "both failures were served"
        );
        let lists = fake
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|q| !q.contains("watch=true"))
            .count();
        assert!(lists >= 3, "listed {lists} times");
    })
    .await;
}

#[tokio::test]
async fn a_watch_event_changes_the_ring_through_the_driver_within_a_poll() {
    within_limit(async {
        let (fake, addr) = Fake::start(vec![slice(
            "groupcache-abcde",
            "90",
            vec![
                endpoint("10.244.0.5", Some(true)),
                endpoint("10.244.0.6", Some(true)),
            ],
        )])
        .await;
        let me: SocketAddr = "10.244.0.5:8080".parse().unwrap();
        // A peer set with no group: membership and routing are the peer set's alone.
        let cache = Groupcache::builder(me).build();
        let provider = EndpointSlicePeers::start(
            Fake::client(addr),
            "default",
            "groupcache",
            PeerPort::Number(8080),
        );
        let handle = DiscoveryDriver::new(cache.clone(), provider)
            .interval(Duration::from_millis(50))
            .spawn();
        let mut status = handle.subscribe();
        status.wait_for(|s| s.changes == 1).await.unwrap();
        assert_eq!(cache.peers(), peers(&["10.244.0.5", "10.244.0.6"]));

        // .6 is terminating: not ready any more.
        let terminating = slice(
            "groupcache-abcde",
            "101",
            vec![
                endpoint("10.244.0.5", Some(true)),
                endpoint("10.244.0.6", Some(false)),
            ],
        );
        fake.send_after_watch(1, event("MODIFIED", terminating))
            .await;
        status.wait_for(|s| s.changes == 2).await.unwrap();
        assert_eq!(cache.peers(), peers(&["10.244.0.5"]));
        assert_eq!(status.borrow().failures, 0);
        handle.shutdown().await;
    })
    .await;
}

// ===== the binary, as a process =====

/// The binary's stdout (its log), collected by a thread as it arrives.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<String>>);

impl Output {
    fn collect(&self, stdout: std::process::ChildStdout) {
        let text = Arc::clone(&self.0);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut text = text.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }
}

/// Kills the process if the test fails before it exits, and shows its log.
struct Pod {
    child: std::process::Child,
    output: Output,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("===== the pod's log =====\n{}", self.output.text());
        }
    }
}

/// `GET path` over HTTP/1.1 from a blocking thread; the status line and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect_timeout(&addr, LIMIT).expect("connect");
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        let (head, body) = response.split_once("\r\n\r\n").expect("a full response");
        (head.lines().next().unwrap().to_owned(), body.to_owned())
    })
    .await
    .unwrap()
}

// The binary reads its kube config from KUBECONFIG, which points at the fake API server here,
// exactly as it reads the in-cluster config in a pod.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_stops_on_sigterm_and_exits_0() {
    within_limit(async {
        let (_fake, api) = Fake::start(vec![slice(
            "groupcache-abcde",
            "90",
            vec![endpoint("127.0.0.1", Some(true))],
        )])
        .await;
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("pod-sigterm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
                 clusters: [{{name: fake, cluster: {{server: 'http://{api}'}}}}]\n\
                 contexts: [{{name: fake, context: {{cluster: fake, user: nobody, namespace: default}}}}]\n\
                 users: [{{name: nobody, user: {{}}}}]\n"
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(env!(
            "CARGO_BIN_EXE_kubernetes-service-discovery"
        ))
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("POD_IP", "127.0.0.1")
        .env("POD_NAME", "groupcache-test")
        .env("POD_NAMESPACE", "default")
        .env("SERVICE_NAME", "groupcache")
        .env("PORT", "0")
        .env("DRAIN_TIMEOUT_SECONDS", "10")
        // The placeholder of k8s/secret.yaml: the pod must say it is one.
        .env("GROUPCACHE_PEER_TOKEN", "replace-me-with-openssl-rand-hex-32")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start the binary");
        let output = Output::default();
        output.collect(child.stdout.take().unwrap());
        let mut pod = Pod { child, output };

        wait_until("the pod applied its membership", || {
            pod.output.text().contains("discovery applied")
        })
        .await;
        let log = pod.output.text();
        let me: SocketAddr = log
            .split_whitespace()
            .find_map(|field| field.strip_prefix("me="))
            .expect("the serving line names the address")
            .parse()
            .unwrap();
        assert!(log.contains("peer authentication on"), "{log}");
        assert!(log.contains("is the placeholder of k8s/secret.yaml"), "{log}");
        assert!(!log.contains('\u{1b}'), "no colour codes when not a terminal: {log}");

        let (status, body) = http_get(me, "/values/user-42").await;
        assert!(status.ends_with("200 OK"), "{status}: {body}");
        assert!(body.contains("computed by groupcache-test"), "{body}");
        let (_, stats) = http_get(me, "/stats").await;
        let stats: Value = serde_json::from_str(&stats).unwrap();
        assert_eq!(stats["members"], json!([me.to_string()]), "{stats}");
        assert_eq!(stats["unauthenticated_requests"], 0, "{stats}");
        // The value was computed here, once, by the pod's one group.
        assert_eq!(stats["groups"]["values"]["local_loads"], 1, "{stats}");
        assert_eq!(stats["groups"]["values"]["gets"], 1, "{stats}");

        let kill = std::process::Command::new("kill")
            .args(["-TERM", &pod.child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let exit = loop {
            if let Some(exit) = pod.child.try_wait().unwrap() {
                break exit;
            }
            assert!(tokio::time::Instant::now() < deadline, "the pod did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(exit.success(), "{exit}");
        // The last lines arrive after the exit: wait for the pipe to deliver them.
        wait_until("the pod logged that it stopped", || {
            pod.output.text().contains("stopped: every request answered")
        })
        .await;
        assert!(
            pod.output.text().contains("received SIGTERM, draining"),
            "{}",
            pod.output.text()
        );
        assert!(
            std::net::TcpStream::connect(me).is_err(),
            "the port is closed"
        );
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
