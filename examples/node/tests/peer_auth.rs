//! `--peer-token-env`: real `groupcache-node` processes sharing a token serve each other; a
//! peer without it (a raw gRPC client, or a node started without the token) is refused with
//! `Unauthenticated`, does no work on the owner, and is counted in the owner's `/stats`.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use groupcache_pb::v2::groupcache_client::GroupcacheClient;
use groupcache_pb::v2::{GetRequest, RemoveRequest};
use serde_json::Value;
use tonic::Code;

use crate::support::{
    LIMIT, Nodes, contents, get, group_stat, members, node_command, stats, test_dir, wait_until,
    write_peers,
};

/// The token of these tests' cluster, in the nodes' environment only.
const TOKEN: &str = "3c1f0e9d8b7a6c5d4e3f2a1b0c9d8e7f";
const TOKEN_ENV: &str = "TEST_GROUPCACHE_PEER_TOKEN";

/// A counter of the peer set (`unauthenticated_requests`) or of every group together
/// (`file_loads`), from `/stats`.
fn counter(node: SocketAddr, name: &str) -> u64 {
    stats(node)[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in /stats"))
}

/// A counter of the `contents` group, which `/values` reads and the raw requests name.
fn contents_counter(node: SocketAddr, name: &str) -> u64 {
    group_stat(node, GROUP, name)
}

/// The group the raw requests name.
const GROUP: &str = "contents";

/// Starts a node that finds its peers in `peers_file`, with the cluster's token if `token`.
fn start(nodes: &mut Nodes, dir: &Path, name: &str, peers_file: &Path, token: bool) -> SocketAddr {
    let mut command = node_command(dir);
    command
        .args(["--discovery-interval-ms", "100"])
        .arg("--peers-file")
        .arg(peers_file);
    if token {
        command
            .args(["--peer-token-env", TOKEN_ENV])
            .env(TOKEN_ENV, TOKEN);
    }
    nodes.start(command, dir.join(format!("{name}.log"))).0
}

/// The first of `keys` that `asker` routes to `owner`.
fn key_owned_by(asker: SocketAddr, owner: SocketAddr, keys: &[String]) -> String {
    keys.iter()
        .find(|key| {
            let (_, body) = get(asker, &format!("/debug/owner/{key}"));
            body["owner"] == owner.to_string().as_str()
        })
        .unwrap_or_else(|| panic!("no key that {asker} routes to {owner}"))
        .clone()
}

/// A raw gRPC call to `node`'s peer service, with `authorization: Bearer <token>` if `token`
/// is given; returns the status code.
fn raw_call<F, Fut>(node: SocketAddr, token: Option<&str>, call: F) -> Code
where
    F: FnOnce(GroupcacheClient<tonic::transport::Channel>, tonic::metadata::MetadataMap) -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let mut metadata = tonic::metadata::MetadataMap::new();
    if let Some(token) = token {
        metadata.insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        tokio::time::timeout(LIMIT, async {
            let client = GroupcacheClient::connect(format!("http://{node}"))
                .await
                .expect("connect");
            call(client, metadata)
                .await
                .map_or_else(|s| s.code(), |()| Code::Ok)
        })
        .await
        .expect("the peer request was answered in time")
    })
}

fn raw_get(node: SocketAddr, key: &str, token: Option<&str>) -> Code {
    let key = key.to_owned();
    raw_call(node, token, |mut client, metadata| async move {
        let group = GROUP.to_owned();
        let request = tonic::Request::from_parts(
            metadata,
            Default::default(),
            GetRequest {
                group,
                key,
                ..GetRequest::default()
            },
        );
        client.get(request).await.map(drop)
    })
}

fn raw_remove(node: SocketAddr, key: &str, token: Option<&str>) -> Code {
    let key = key.to_owned();
    raw_call(node, token, |mut client, metadata| async move {
        let group = GROUP.to_owned();
        let request = tonic::Request::from_parts(
            metadata,
            Default::default(),
            RemoveRequest {
                group,
                key,
                ..RemoveRequest::default()
            },
        );
        client.remove(request).await.map(drop)
    })
}

#[test]
fn peers_without_the_token_are_refused_and_counted() {
    let dir = test_dir("peer-auth");
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i:02}")).collect();
    for key in &keys {
        std::fs::write(dir.join("data").join(key), contents(key)).unwrap();
    }
    let mut nodes = Nodes::default();
    let cluster_file = dir.join("peers");
    let a = start(&mut nodes, &dir, "a", &cluster_file, true);
    let b = start(&mut nodes, &dir, "b", &cluster_file, true);
    write_peers(&cluster_file, &[a, b]);
    let mut both = vec![a.to_string(), b.to_string()];
    both.sort();
    for node in [a, b] {
        wait_until("both members found each other", || members(node) == both);
    }
    assert!(
        nodes.log(0).contains("peer authentication on"),
        "{}",
        nodes.log(0)
    );

    // Members with the token: b fetches a's key from a.
    let key = key_owned_by(b, a, &keys);
    let (status, body) = get(b, &format!("/values/{key}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["owner"], a.to_string().as_str(), "{body}");
    assert_eq!(contents_counter(b, "peer_loads"), 1, "fetched from a");
    assert_eq!(contents_counter(a, "server_requests"), 1);
    assert_eq!(counter(a, "unauthenticated_requests"), 0);
    assert_eq!(contents_counter(b, "auth_failures"), 0);

    // A raw client without the token, then with a wrong one: refused before any work. The
    // Get is for a key a owns and has not read; the Remove for the key it has cached.
    let uncached: Vec<String> = keys.iter().filter(|k| **k != key).cloned().collect();
    let uncached = key_owned_by(a, a, &uncached);
    let reads = counter(a, "file_loads");
    for token in [None, Some("not-the-token")] {
        assert_eq!(
            raw_get(a, &uncached, token),
            Code::Unauthenticated,
            "Get {token:?}"
        );
        assert_eq!(
            raw_remove(a, &key, token),
            Code::Unauthenticated,
            "Remove {token:?}"
        );
    }
    assert_eq!(counter(a, "unauthenticated_requests"), 4);
    assert_eq!(contents_counter(a, "server_requests"), 1, "none was served");
    assert_eq!(
        counter(a, "file_loads"),
        reads,
        "the refused Get read nothing"
    );
    let (_, body) = get(a, &format!("/values/{key}"));
    assert_eq!(body["value"], contents(&key));
    assert_eq!(
        counter(a, "file_loads"),
        reads,
        "the refused Remove removed nothing"
    );

    // With the token, a Remove is served: the owner reads the file again on the next get.
    assert_eq!(raw_remove(a, &key, Some(TOKEN)), Code::Ok);
    assert_eq!(contents_counter(a, "server_requests"), 2);
    let (_, body) = get(a, &format!("/values/{key}"));
    assert_eq!(body["value"], contents(&key));
    assert_eq!(
        counter(a, "file_loads"),
        reads + 1,
        "removed, so read again"
    );
    assert_eq!(counter(a, "unauthenticated_requests"), 4);

    // A node started without the token, which knows the members: its requests to them are
    // refused, returned as an error and never bypassed by reading the file itself.
    let intruder_file = dir.join("intruder-peers");
    let intruder = start(&mut nodes, &dir, "intruder", &intruder_file, false);
    write_peers(&intruder_file, &[a, b, intruder]);
    wait_until("the intruder knows three members", || {
        members(intruder).len() == 3
    });
    assert!(
        nodes.log(2).contains("peer authentication off"),
        "{}",
        nodes.log(2)
    );
    // (Asking who owns a key sends Describe requests, refused and counted too: count after.)
    let key = key_owned_by(intruder, a, &keys);
    let refused_before = counter(a, "unauthenticated_requests");
    let (status, body): (u16, Value) = get(intruder, &format!("/values/{key}"));
    assert_eq!(status, 502, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("Unauthenticated"), "{error}");
    assert_eq!(contents_counter(intruder, "auth_failures"), 1);
    assert_eq!(
        contents_counter(intruder, "fallback_loads"),
        0,
        "not bypassed"
    );
    assert_eq!(counter(intruder, "file_loads"), 0, "not bypassed");
    assert_eq!(counter(a, "unauthenticated_requests"), refused_before + 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_token_variable_or_half_a_tls_setup_stops_the_node_with_a_clear_error() {
    let dir = test_dir("peer-auth-errors");
    for (args, env, expected) in [
        (
            vec!["--peer-token-env", "NO_SUCH_TOKEN_VARIABLE"],
            None,
            "--peer-token-env: cannot read the peer token from the environment variable \
             NO_SUCH_TOKEN_VARIABLE: it is not set",
        ),
        (
            vec!["--peer-token-env", TOKEN_ENV],
            Some("has a space"),
            "environment variable TEST_GROUPCACHE_PEER_TOKEN: a peer token may only contain \
             visible ASCII",
        ),
        (
            vec!["--tls-cert", "node.pem"],
            None,
            "--tls-cert given without --tls-ca and --tls-key",
        ),
    ] {
        let mut command = node_command(&dir);
        command.args(&args).env_remove(TOKEN_ENV);
        if let Some(value) = env {
            command.env(TOKEN_ENV, value);
        }
        let output = command
            .stdin(Stdio::null())
            .output()
            .expect("run groupcache-node");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{args:?}: it never started serving"
        );
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("has a space"),
            "the token is never printed: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
