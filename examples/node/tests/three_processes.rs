//! Three real `groupcache-node` processes on loopback, found through a peers file: every key
//! is loaded once in the whole cluster in each of the two groups (`contents`, `metadata`), by
//! its owner, the same in both; a killed node's keys are loaded by the asking node (fallback)
//! until discovery drops it, then re-routed to the survivors.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{
    GROUPS, Nodes, contents, get, get_text, group_stat, members, node_command, stats, test_dir,
    wait_until,
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
    assert_eq!(body["bytes"], contents(key).len(), "{key} from {node}");
    assert_eq!(body["served_by"], node.to_string().as_str(), "{body}");
    body
}

/// The `metadata` group's record of `key`, from `node`, checked against the file.
fn meta(node: SocketAddr, key: &str) -> Value {
    let (status, body) = get(node, &format!("/meta/{key}"));
    assert_eq!(status, 200, "{key} from {node}: {body}");
    assert_eq!(body["bytes"], contents(key).len(), "{key} from {node}");
    assert!(body["modified_unix"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(body["xxh3"].as_str().unwrap().len(), 16, "{body}");
    assert_eq!(
        body["loaded_here"],
        body["loaded_by"] == node.to_string().as_str(),
        "{body}"
    );
    body
}

/// `node`'s loader calls in each group, in [`GROUPS`] order.
fn file_loads(node: SocketAddr) -> [u64; 2] {
    GROUPS.map(|group| group_stat(node, group, "file_loads"))
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

    // Every key from every node, in both groups: one owner agreed by all and the same in both
    // groups, one load per group in the cluster, by the owner.
    let mut owner_of: BTreeMap<String, String> = BTreeMap::new();
    let mut hash_of: BTreeMap<String, Value> = BTreeMap::new();
    for key in &keys {
        for node in &addrs {
            let owner = value(*node, key)["owner"].as_str().unwrap().to_owned();
            assert_eq!(owner_of.entry(key.clone()).or_insert(owner.clone()), &owner);
            let body = meta(*node, key);
            assert_eq!(
                body["owner"],
                owner.as_str(),
                "{key}: one owner in both groups"
            );
            assert_eq!(
                body["loaded_by"],
                owner.as_str(),
                "{key}: metadata made by its owner"
            );
            let hash = hash_of.entry(key.clone()).or_insert(body["xxh3"].clone());
            assert_eq!(&body["xxh3"], hash, "{key} on {node}");
        }
    }
    let hashes: std::collections::BTreeSet<&str> =
        hash_of.values().map(|h| h.as_str().unwrap()).collect();
    assert_eq!(
        hashes.len(),
        keys.len(),
        "the files differ, so do their hashes"
    );
    let loads: HashMap<String, [u64; 2]> = addrs
        .iter()
        .map(|n| (n.to_string(), file_loads(*n)))
        .collect();
    for (g, group) in GROUPS.iter().enumerate() {
        let total: u64 = loads.values().map(|l| l[g]).sum();
        assert_eq!(total, keys.len() as u64, "{group}: {loads:?}");
    }
    for node in &addrs {
        let owned = owner_of
            .values()
            .filter(|o| **o == node.to_string())
            .count() as u64;
        for (g, group) in GROUPS.iter().enumerate() {
            assert_eq!(
                loads[&node.to_string()][g],
                owned,
                "{node} loaded exactly the keys it owns in {group}"
            );
            // The library's own count agrees with the loader's.
            assert_eq!(
                group_stat(*node, group, "local_loads"),
                owned,
                "{node} {group}"
            );
        }
        // The two other nodes asked it once each for every key it owns, in each group (its
        // `metadata` loader's `get` from `contents` stays local: same owner).
        for group in GROUPS {
            assert_eq!(
                group_stat(*node, group, "server_requests"),
                2 * owned,
                "{node} {group}: asked once per other node for each key it owns"
            );
        }
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
        "groupcache_peer_request_duration_seconds_count{",
        // The peer set's counters carry no group label.
        "groupcache_unauthenticated_requests_total 0",
    ] {
        assert!(page.contains(name), "{name} missing from:\n{page}");
    }
    for group in GROUPS {
        // Each group's metrics carry its name (labels sorted by name).
        for name in [
            format!("groupcache_gets_total{{group=\"{group}\"}}"),
            format!("groupcache_peer_loads_total{{group=\"{group}\"}}"),
            format!(
                "groupcache_get_duration_seconds_count{{group=\"{group}\",outcome=\"peer_load\"}}"
            ),
            format!("groupcache_cache_entries{{group=\"{group}\",tier=\"main\"}}"),
        ] {
            assert!(page.contains(&name), "{name} missing from:\n{page}");
        }
        let local_loads = group_stat(addrs[0], group, "local_loads");
        let line = format!("groupcache_local_loads_total{{group=\"{group}\"}} {local_loads}");
        assert!(page.contains(&line), "{line} missing from:\n{page}");
    }

    // Bad keys: a clear 400, nothing read; a missing file: 404, in both groups.
    for route in ["values", "meta"] {
        for bad in ["..%2Fsecret", "%2E%2E", ".hidden"] {
            let (status, body) = get(addrs[0], &format!("/{route}/{bad}"));
            assert_eq!(status, 400, "{route}/{bad}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains("bad key"),
                "{body}"
            );
        }
        let (status, _) = get(addrs[0], &format!("/{route}/no-such-file"));
        assert_eq!(status, 404, "{route}");
    }
    for (g, group) in GROUPS.iter().enumerate() {
        let total: u64 = addrs.iter().map(|n| file_loads(*n)[g]).sum();
        assert_eq!(
            total,
            keys.len() as u64 + 1,
            "{group}: only the missing file's lookup was added"
        );
    }
    let total: u64 = addrs
        .iter()
        .map(|n| stats(*n)["file_loads"].as_u64().unwrap())
        .sum();
    assert_eq!(
        total,
        2 * (keys.len() as u64 + 1),
        "file_loads is both groups'"
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

    // Still in everyone's ring: requests for its keys go to their substitute, the next
    // survivor on the ring, which reads each once (and keeps it while the node is out).
    let asker = survivors[0];
    let reads_before: Vec<u64> = survivors.iter().map(|n| file_loads(*n)[0]).collect();
    let mut victims_keys = Vec::new();
    for key in &late_keys {
        let owner = value(asker, key)["owner"].clone();
        if owner == victim_addr.as_str() {
            victims_keys.push(key.clone());
        }
    }
    assert!(
        !victims_keys.is_empty(),
        "no late key was owned by the killed node"
    );
    let reads: u64 = survivors
        .iter()
        .zip(&reads_before)
        .map(|(n, before)| file_loads(*n)[0] - before)
        .sum();
    assert_eq!(
        reads,
        late_keys.len() as u64,
        "every late key read once by the survivors, the killed node's on their substitute"
    );
    assert!(group_stat(asker, "contents", "peer_errors") >= 1);
    assert!(group_stat(asker, "contents", "rerouted_gets") >= victims_keys.len() as u64);
    // After three failures in a row the asker stopped sending it anything; /stats says so.
    if victims_keys.len() >= 3 {
        let health = stats(asker)["peer_health"].clone();
        let of_victim = health
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["peer"] == victim_addr.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no health for the killed node in {health}"));
        assert_eq!(of_victim["state"], "open", "{of_victim}");
    }
    // The metadata group goes the same way: the record says a survivor made it, and asking
    // again (on either survivor) reads nothing more.
    let survivor_names: Vec<String> = survivors.iter().map(ToString::to_string).collect();
    for key in &victims_keys {
        let body = meta(asker, key);
        let made_by = body["loaded_by"].as_str().unwrap().to_owned();
        assert!(
            survivor_names.contains(&made_by),
            "{key}: made by a survivor, not {made_by}"
        );
        assert_eq!(
            meta(survivors[1], key)["loaded_by"],
            made_by.as_str(),
            "{key}: made once"
        );
    }
    let reads_again: u64 = survivors.iter().map(|n| file_loads(*n)[0]).sum();
    for key in &victims_keys {
        value(survivors[1], key);
    }
    assert_eq!(
        survivors.iter().map(|n| file_loads(*n)[0]).sum::<u64>(),
        reads_again,
        "the substitute keeps what it read for the killed node"
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
        let body = meta(survivors[1], key);
        assert_eq!(
            body["owner"],
            owners[0].as_str(),
            "{key}: both groups re-routed"
        );
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
