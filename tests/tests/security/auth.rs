//! Peer authentication. An owner that refuses this peer's credentials, with the built-in peer
//! token or an interceptor of the application's own: the refusal is returned and counted, never
//! bypassed by a local load (rule 5), and the owner does no work for it.

use std::net::SocketAddr;

use groupcache::{ErrorKind, Groupcache};
use groupcache_pb::v2::GetRequest;
use groupcache_pb::v2::groupcache_client::GroupcacheClient;
use groupcache_tests::{CountingLoader, GROUP, TestCluster, within_limit};
use tonic::service::InterceptorLayer;
use tonic::{Request, Status};

fn refuse_everyone(_: Request<()>) -> Result<Request<()>, Status> {
    Err(Status::unauthenticated("missing or wrong token"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_refusal_is_returned_counted_and_never_bypassed() {
    within_limit(async {
        let loader = CountingLoader::new();
        let incoming = groupcache::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let owner_addr = incoming.local_addr().unwrap();
        let owner = Groupcache::builder(owner_addr).build();
        let _owner_group = owner.group(GROUP, loader.for_node(1)).build().unwrap();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .layer(InterceptorLayer::new(refuse_everyone))
                .add_service(owner.grpc_service())
                .serve_with_incoming(incoming),
        );

        let me: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let peer_set = Groupcache::builder(me).build();
        let requester = peer_set.group(GROUP, loader.for_node(0)).build().unwrap();
        peer_set.set_peers([owner_addr]).unwrap();

        let err = requester.get("secret").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err:?}");
        assert_eq!(err.peer().map(|p| p.addr()), Some(owner_addr));
        assert!(err.to_string().contains("same credentials"), "{err}");
        assert_eq!(err.group(), Some(GROUP));
        let stats = requester.stats();
        assert_eq!(stats.auth_failures, 1, "counted");
        assert_eq!(stats.peer_errors, 0, "not an outage");
        assert_eq!(stats.fallback_loads, 0, "not bypassed");
        assert_eq!(loader.loads("secret"), 0, "neither peer called the loader");
        server.abort();
    })
    .await;
}

// ===== the built-in peer token =====

const TOKEN: &str = "0f3b9c2e7a5d4e1f8b6c0a9d2e4f7a1b";
const OLD_TOKEN: &str = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";

fn token(text: &str) -> groupcache::security::PeerToken {
    groupcache::security::PeerToken::new(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_sharing_a_token_serve_each_other() {
    within_limit(async {
        let cluster = TestCluster::start_with(3, |_, b| b.peer_token(token(TOKEN))).await;
        for owner in 0..3 {
            let key = cluster.key_owned_by(owner, "shared");
            let asker = (owner + 1) % 3;
            let value = cluster.node(asker).get(&key).await.unwrap();
            assert_eq!(value, cluster.loader.expected(&key));
            assert_eq!(
                cluster.loader.loads_on(owner, &key),
                1,
                "the owner loaded it"
            );
            assert_eq!(
                cluster.node(asker).stats().peer_loads,
                1,
                "fetched, not loaded"
            );
            assert_eq!(cluster.peer_set(owner).stats().unauthenticated_requests, 0);
            assert_eq!(cluster.node(owner).stats().server_requests, 1);
        }
        cluster.shutdown().await;
    })
    .await;
}

/// Node 0 asks node 1 for a key node 1 owns; returns the error and both nodes' stats.
async fn ask_with(
    asker: Option<&str>,
    owner_sends: &str,
    owner_also_accepts: Option<&str>,
) -> (Result<String, groupcache::Error>, TestCluster, String) {
    let asker = asker.map(str::to_owned);
    let owner_sends = owner_sends.to_owned();
    let owner_also_accepts = owner_also_accepts.map(str::to_owned);
    let cluster = TestCluster::start_with(2, move |i, b| {
        if i == 0 {
            match &asker {
                Some(t) => b.peer_token(token(t)),
                None => b,
            }
        } else {
            let b = b.peer_token(token(&owner_sends));
            match &owner_also_accepts {
                Some(t) => b.accept_peer_token(token(t)),
                None => b,
            }
        }
    })
    .await;
    let key = cluster.key_owned_by(1, "guarded");
    let result = cluster.node(0).get(&key).await;
    (result, cluster, key)
}

/// Checks that the owner refused node 0 before any work, and node 0 returned and counted it.
async fn assert_refused(case: &str, asker: Option<&str>) {
    let (result, cluster, key) = ask_with(asker, TOKEN, None).await;
    let err = result.expect_err(case);
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{case}: {err:?}");
    assert_eq!(
        err.peer().map(|p| p.addr()),
        Some(cluster.addr(1)),
        "{case}"
    );
    assert!(
        err.to_string().contains("same credentials"),
        "{case}: {err}"
    );
    let asker_stats = cluster.node(0).stats();
    assert_eq!(asker_stats.auth_failures, 1, "{case}: counted by the asker");
    assert_eq!(asker_stats.fallback_loads, 0, "{case}: no silent fallback");
    assert_eq!(asker_stats.peer_errors, 0, "{case}: not an outage");
    assert_eq!(
        cluster.peer_set(1).stats().unauthenticated_requests,
        1,
        "{case}: counted by the owner"
    );
    assert_eq!(
        cluster.node(1).stats().server_requests,
        0,
        "{case}: refused before the handler"
    );
    assert_eq!(
        cluster.loader.loads(&key),
        0,
        "{case}: no loader ran anywhere"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_wrong_or_wrong_length_token_is_refused_before_any_work() {
    within_limit(async {
        assert_refused("missing", None).await;
        assert_refused("wrong", Some(OLD_TOKEN)).await;
        let longer = format!("{TOKEN}0");
        assert_refused("the right token plus one byte", Some(&longer)).await;
        assert_refused(
            "the right token less one byte",
            Some(&TOKEN[..TOKEN.len() - 1]),
        )
        .await;
        assert_refused("a prefix of the right token", Some(&TOKEN[..8])).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_is_accepted_while_both_are_configured() {
    within_limit(async {
        // Step 1 of a rotation: the owner sends the new token and still accepts the old one.
        let (result, cluster, key) = ask_with(Some(OLD_TOKEN), TOKEN, Some(OLD_TOKEN)).await;
        assert_eq!(result.unwrap(), cluster.loader.expected(&key), "old token");
        cluster.shutdown().await;
        let (result, cluster, key) = ask_with(Some(TOKEN), TOKEN, Some(OLD_TOKEN)).await;
        assert_eq!(result.unwrap(), cluster.loader.expected(&key), "new token");
        assert_eq!(cluster.peer_set(1).stats().unauthenticated_requests, 0);
        cluster.shutdown().await;
        // A third token, retired or never issued, is still refused.
        let (result, cluster, _) =
            ask_with(Some("a-retired-token-0000"), TOKEN, Some(OLD_TOKEN)).await;
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Unauthenticated);
        assert_eq!(cluster.peer_set(1).stats().unauthenticated_requests, 1);
        cluster.shutdown().await;
    })
    .await;
}

/// A `Get` for `key` in the group the test cluster hosts.
fn get(key: &str) -> GetRequest {
    GetRequest {
        group: GROUP.into(),
        key: key.into(),
        ..GetRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_another_scheme_or_none_is_refused() {
    within_limit(async {
        let cluster = TestCluster::start_with(1, |_, b| b.peer_token(token(TOKEN))).await;
        let mut client = GroupcacheClient::connect(format!("http://{}", cluster.addr(0)))
            .await
            .unwrap();
        for (case, header) in [
            ("basic scheme", format!("Basic {TOKEN}")),
            ("no scheme", TOKEN.to_owned()),
            ("scheme only", "Bearer".to_owned()),
            ("empty token", "Bearer ".to_owned()),
            ("token in the wrong place", format!("Token {TOKEN}")),
        ] {
            let mut request = Request::new(get("k"));
            request
                .metadata_mut()
                .insert("authorization", header.parse().unwrap());
            let status = client.get(request).await.unwrap_err();
            assert_eq!(
                status.code(),
                tonic::Code::Unauthenticated,
                "{case}: {status:?}"
            );
            assert!(
                !status.message().contains(TOKEN),
                "{case}: the status echoes no token"
            );
        }
        // The same connection, with the token: served.
        let mut request = Request::new(get("k"));
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        client
            .get(request)
            .await
            .expect("the right token is served");
        assert_eq!(cluster.peer_set(0).stats().unauthenticated_requests, 5);
        assert_eq!(cluster.node(0).stats().server_requests, 1);
        assert_eq!(
            cluster.loader.total_loads_on(0),
            1,
            "only the authenticated request loaded"
        );
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_without_the_token_is_refused_and_changes_nothing_on_the_owner() {
    within_limit(async {
        let cluster = TestCluster::start_with(2, |i, b| {
            b.peer_token(token(if i == 0 { OLD_TOKEN } else { TOKEN }))
        })
        .await;
        let key = cluster.key_owned_by(1, "kept");
        assert_eq!(
            cluster.node(1).get(&key).await.unwrap(),
            cluster.loader.expected(&key)
        );
        let err = cluster.node(0).remove(&key).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err:?}");
        assert_eq!(cluster.peer_set(1).stats().unauthenticated_requests, 1);
        // Still cached on the owner: its next get is a hit, not a second load.
        cluster.node(1).get(&key).await.unwrap();
        assert_eq!(cluster.loader.loads(&key), 1);
        assert_eq!(cluster.node(1).stats().main_hits, 1);
        cluster.shutdown().await;
    })
    .await;
}
