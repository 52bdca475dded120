//! Three real `groupcache-node` processes on loopback, found through a peers file: every key
//! is read from disk once in the whole cluster; a killed node's keys are loaded by the asking
//! node (fallback) until discovery drops it, then re-routed to the survivors.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Upper bound for every wait in this test.
const LIMIT: Duration = Duration::from_secs(30);

/// The node processes; killed when the test ends, passes or fails. On failure their logs are
/// printed.
struct Nodes {
    children: Vec<Child>,
    logs: Vec<PathBuf>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for log in &self.logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                eprintln!("===== {} =====\n{text}", log.display());
            }
        }
    }
}

/// Starts a node on a free loopback port and returns its bound address, read from the
/// `listening on ADDR` line it prints.
fn start_node(nodes: &mut Nodes, dir: &Path, i: usize) -> SocketAddr {
    let log = dir.join(format!("node-{i}.log"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_groupcache-node"))
        .args(["--listen", "127.0.0.1:0", "--discovery-interval-ms", "100"])
        .arg("--peers-file")
        .arg(dir.join("peers"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "info")
        .env_remove("GROUPCACHE_PEERS")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start groupcache-node");
    let stdout = child.stdout.take().expect("piped stdout");
    nodes.children.push(child);
    nodes.logs.push(log);
    // Read the first line in a thread, so that a node that never prints fails the test.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(LIMIT).expect("node printed its address");
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("an address")
}

/// `GET path` over HTTP/1.1; returns the status and the body parsed as JSON.
fn get(node: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = get_text(node, path);
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, body)
}

/// `GET path` over HTTP/1.1; returns the status and the body as text.
fn get_text(node: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&node, LIMIT).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {node}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a full response");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_owned())
}

fn value(node: SocketAddr, key: &str) -> Value {
    let (status, body) = get(node, &format!("/values/{key}"));
    assert_eq!(status, 200, "{key} from {node}: {body}");
    assert_eq!(body["value"], contents(key), "{key} from {node}");
    body
}

fn stats(node: SocketAddr) -> Value {
    let (status, body) = get(node, "/stats");
    assert_eq!(status, 200, "{body}");
    body
}

fn members(node: SocketAddr) -> Vec<String> {
    let mut members: Vec<String> = stats(node)["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    members.sort();
    members
}

fn contents(key: &str) -> String {
    format!("the contents of {key}\n")
}

/// Writes the peers file atomically (a new file renamed over the old one).
fn write_peers(dir: &Path, peers: &[SocketAddr]) {
    let list: Vec<String> = peers.iter().map(ToString::to_string).collect();
    let tmp = dir.join("peers.tmp");
    std::fs::write(&tmp, list.join("\n")).unwrap();
    std::fs::rename(&tmp, dir.join("peers")).unwrap();
}

/// Polls `cond` every 20 ms until it holds; panics after [`LIMIT`], naming `what`.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn three_processes_load_each_key_once_and_survive_a_killed_node() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("three-nodes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let keys: Vec<String> = (0..30).map(|i| format!("key-{i:02}")).collect();
    let late_keys: Vec<String> = (0..40).map(|i| format!("late-{i:02}")).collect();
    for key in keys.iter().chain(&late_keys) {
        std::fs::write(dir.join("data").join(key), contents(key)).unwrap();
    }
    std::fs::write(dir.join("secret"), "outside the data directory").unwrap();

    let mut nodes = Nodes {
        children: Vec::new(),
        logs: Vec::new(),
    };
    let addrs: Vec<SocketAddr> = (0..3).map(|i| start_node(&mut nodes, &dir, i)).collect();
    let mut all: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    all.sort();
    write_peers(&dir, &addrs);
    for node in &addrs {
        wait_until("every node found all three", || members(*node) == all);
    }

    // Every key from every node: one owner agreed by all, one read from disk in the cluster.
    let mut owner_of: BTreeMap<String, String> = BTreeMap::new();
    for key in &keys {
        for node in &addrs {
            let body = value(*node, key);
            let owner = body["owner"].as_str().unwrap().to_owned();
            assert_eq!(
                body["loaded_by"],
                owner.as_str(),
                "{key}: read by its owner"
            );
            assert_eq!(
                body["loaded_here"],
                owner == node.to_string(),
                "{key} on {node}"
            );
            assert_eq!(owner_of.entry(key.clone()).or_insert(owner.clone()), &owner);
        }
    }
    let loads: HashMap<String, u64> = addrs
        .iter()
        .map(|n| (n.to_string(), stats(*n)["file_loads"].as_u64().unwrap()))
        .collect();
    assert_eq!(loads.values().sum::<u64>(), keys.len() as u64, "{loads:?}");
    for (node, n) in &loads {
        let owned = owner_of.values().filter(|o| *o == node).count() as u64;
        assert_eq!(*n, owned, "{node} read exactly the files it owns");
    }

    // Introspection agrees with the routing used: every member, asked over the Describe RPC,
    // names the owner that read the file.
    for key in keys.iter().take(5) {
        let (status, body) = get(addrs[0], &format!("/debug/owner/{key}"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["owner"], owner_of[key].as_str(), "{body}");
        for node in &all {
            assert_eq!(
                body["views"][node],
                owner_of[key].as_str(),
                "{node}: {body}"
            );
        }
    }
    let (status, ring) = get(addrs[1], "/debug/ring");
    assert_eq!(status, 200);
    assert_eq!(ring["peers"].as_array().unwrap().len(), 3, "{ring}");
    // Prometheus, scraped over HTTP: the documented names, agreeing with /stats.
    let (status, page) = get_text(addrs[0], "/metrics");
    assert_eq!(status, 200);
    for name in [
        "groupcache_gets_total",
        "groupcache_peer_loads_total",
        "groupcache_get_duration_seconds_count{outcome=\"peer_load\"}",
        "groupcache_peer_request_duration_seconds_count{",
        "groupcache_cache_entries{tier=\"main\"}",
    ] {
        assert!(page.contains(name), "{name} missing from:\n{page}");
    }
    let local_loads = stats(addrs[0])["local_loads"].as_u64().unwrap();
    assert!(
        page.contains(&format!("groupcache_local_loads_total {local_loads}")),
        "local loads {local_loads}:\n{page}"
    );

    // Bad keys: a clear 400, nothing read; a missing file: 404.
    for bad in ["..%2Fsecret", "%2E%2E", ".hidden"] {
        let (status, body) = get(addrs[0], &format!("/values/{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("bad key"),
            "{body}"
        );
    }
    let (status, _) = get(addrs[0], "/values/no-such-file");
    assert_eq!(status, 404);
    let total: u64 = addrs
        .iter()
        .map(|n| stats(*n)["file_loads"].as_u64().unwrap())
        .sum();
    assert_eq!(
        total,
        keys.len() as u64 + 1,
        "only the missing file's lookup was added"
    );

    // Kill the owner of key-00, like a crash.
    let victim = addrs
        .iter()
        .position(|a| a.to_string() == owner_of["key-00"])
        .unwrap();
    let survivors: Vec<SocketAddr> = (0..3).filter(|i| *i != victim).map(|i| addrs[i]).collect();
    nodes.children[victim].kill().unwrap();
    nodes.children[victim].wait().unwrap();
    let victim_addr = addrs[victim].to_string();

    // Still in everyone's ring: requests for its keys fall back to a local read.
    let asker = survivors[0];
    let mut fell_back = 0;
    for key in &late_keys {
        let body = value(asker, key);
        if body["owner"] == victim_addr.as_str() {
            assert_eq!(
                body["loaded_by"],
                asker.to_string(),
                "{key}: read by the asker"
            );
            fell_back += 1;
        }
    }
    assert!(fell_back > 0, "no late key was owned by the killed node");
    let asker_stats = stats(asker);
    assert!(
        asker_stats["peer_errors"].as_u64().unwrap() >= 1,
        "{asker_stats}"
    );
    assert!(
        asker_stats["fallback_loads"].as_u64().unwrap() >= fell_back,
        "{asker_stats}"
    );

    // Discovery drops it: the survivors agree on a two-member ring and own every key.
    write_peers(&dir, &survivors);
    let mut remaining: Vec<String> = survivors.iter().map(ToString::to_string).collect();
    remaining.sort();
    for node in &survivors {
        wait_until("the killed node was dropped", || {
            members(*node) == remaining
        });
    }
    for key in keys.iter().chain(&late_keys) {
        let owners: Vec<String> = survivors
            .iter()
            .map(|node| value(*node, key)["owner"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(owners[0], owners[1], "{key}: survivors agree");
        assert_ne!(owners[0], victim_addr, "{key}: re-routed");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_groupcache_peers_entry_stops_the_node_with_a_message_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_groupcache-node"))
        .args(["--listen", "127.0.0.1:0", "--data-dir", "."])
        .env("GROUPCACHE_PEERS", "127.0.0.1:9001,127.0.0.1")
        .stdin(Stdio::null())
        .output()
        .expect("run groupcache-node");
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "it never started serving");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("GROUPCACHE_PEERS, entry 2") && stderr.contains("\"127.0.0.1\": no port"),
        "{stderr}"
    );
}
