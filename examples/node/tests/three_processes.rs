//! Three real `groupcache-node` processes on loopback, found through a peers file: every key
//! is read from disk once in the whole cluster; a killed node's keys are loaded by the asking
//! node (fallback) until discovery drops it, then re-routed to the survivors.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{
    Nodes, contents, get, get_text, members, node_command, stats, test_dir, wait_until,
};

/// Starts a node on a free loopback port, finding its peers in `dir/peers`, and returns its
/// bound address.
fn start_node(nodes: &mut Nodes, dir: &Path, i: usize) -> SocketAddr {
    let mut command = node_command(dir);
    command
        .args(["--discovery-interval-ms", "100"])
        .arg("--peers-file")
        .arg(dir.join("peers"));
    nodes.start(command, dir.join(format!("node-{i}.log"))).0
}

fn value(node: SocketAddr, key: &str) -> Value {
    let (status, body) = get(node, &format!("/values/{key}"));
    assert_eq!(status, 200, "{key} from {node}: {body}");
    assert_eq!(body["value"], contents(key), "{key} from {node}");
    body
}

/// Writes the peers file of these tests.
fn write_peers(dir: &Path, peers: &[SocketAddr]) {
    support::write_peers(&dir.join("peers"), peers);
}

#[test]
fn three_processes_load_each_key_once_and_survive_a_killed_node() {
    let dir = test_dir("three-nodes");
    let keys: Vec<String> = (0..30).map(|i| format!("key-{i:02}")).collect();
    let late_keys: Vec<String> = (0..40).map(|i| format!("late-{i:02}")).collect();
    for key in keys.iter().chain(&late_keys) {
        std::fs::write(dir.join("data").join(key), contents(key)).unwrap();
    }
    std::fs::write(dir.join("secret"), "outside the data directory").unwrap();

    let mut nodes = Nodes::default();
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
