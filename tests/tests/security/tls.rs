//! TLS and mutual TLS between peers, with certificates made at test time. A cluster works end
//! to end over TLS; every kind of TLS mismatch fails fast as a counted transport error, and
//! the caller still gets its value through a local load.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use groupcache::Groupcache;
use groupcache::security::PeerTls;
use groupcache_tests::pki::TestCa;
use groupcache_tests::{CountingLoader, GROUP, TestCluster, within_limit};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longer than the connect timeout, so that a failure by timeout would show.
const PEER_TIMEOUT: Duration = Duration::from_secs(10);

fn tls_for(ca: &TestCa, names: &[&str]) -> PeerTls {
    let cert = ca.issue(names);
    PeerTls::from_pem(ca.cert_pem(), cert.cert_pem, cert.key_pem).expect("valid PEM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutual_tls_cluster_of_3_serves_gets_end_to_end() {
    within_limit(async {
        let ca = TestCa::new("cluster CA");
        let cluster = TestCluster::start_with(3, move |_, b| {
            b.tls(tls_for(&ca, &["127.0.0.1"]).require_client_certificate())
                .connect_timeout(CONNECT_TIMEOUT)
                .peer_timeout(PEER_TIMEOUT)
        })
        .await;
        for owner in 0..3 {
            for asker in (0..3).filter(|&a| a != owner) {
                let key = cluster.key_owned_by(owner, &format!("tls-{asker}"));
                let value = cluster.node(asker).get(&key).await.unwrap();
                assert_eq!(value, cluster.loader.expected(&key));
                assert_eq!(
                    cluster.loader.loads_on(owner, &key),
                    1,
                    "loaded by its owner"
                );
                assert_eq!(cluster.loader.loads_on(asker, &key), 0, "not by the asker");
            }
        }
        for node in 0..3 {
            let stats = cluster.node(node).stats();
            assert_eq!(stats.peer_loads, 2, "node {node} fetched over TLS twice");
            assert_eq!(stats.peer_errors, 0, "node {node}");
            assert_eq!(stats.fallback_loads, 0, "node {node}");
            assert_eq!(stats.server_requests, 2, "node {node} served twice");
        }
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_can_verify_a_shared_domain_name_instead_of_the_ip() {
    within_limit(async {
        let ca = TestCa::new("cluster CA");
        // One certificate for the service name, shared by every peer, as a kubernetes secret
        // would be: it does not name 127.0.0.1 at all.
        let shared = ca.issue(&["groupcache.test"]);
        let ca_pem = ca.cert_pem();
        let cluster = TestCluster::start_with(2, move |_, b| {
            let tls = PeerTls::from_pem(&ca_pem, &shared.cert_pem, &shared.key_pem).unwrap();
            b.tls(tls.domain_name("groupcache.test").unwrap())
        })
        .await;
        let key = cluster.key_owned_by(1, "named");
        assert_eq!(
            cluster.node(0).get(&key).await.unwrap(),
            cluster.loader.expected(&key)
        );
        assert_eq!(cluster.node(0).stats().peer_loads, 1);
        assert_eq!(cluster.node(0).stats().peer_errors, 0);
        cluster.shutdown().await;
    })
    .await;
}

/// A one-node cluster serving with `owner_tls` (or plaintext), and a peer that is not serving,
/// configured by `requester`, asking it for a key. The requester must get its value by a
/// local load, quickly, with the failure counted; the owner must not have seen a request.
async fn assert_falls_back_quickly(
    case: &str,
    owner_tls: Option<PeerTls>,
    requester_tls: Option<PeerTls>,
) {
    let owner = TestCluster::start_with(1, move |_, b| match &owner_tls {
        Some(tls) => b.tls(tls.clone()),
        None => b,
    })
    .await;
    let loader = CountingLoader::new();
    let me: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let builder = Groupcache::builder(me)
        .connect_timeout(CONNECT_TIMEOUT)
        .peer_timeout(PEER_TIMEOUT);
    let peer_set = match requester_tls {
        Some(tls) => builder.tls(tls),
        None => builder,
    }
    .build();
    let requester = peer_set.group(GROUP, loader.for_node(9)).build().unwrap();
    peer_set.set_peers([owner.addr(0)]).unwrap();

    let key = format!("{case}-key");
    assert_eq!(requester.owner_of(&key).addr(), owner.addr(0), "{case}");
    let started = Instant::now();
    let value = requester
        .get(&key)
        .await
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    let took = started.elapsed();
    assert_eq!(value, loader.expected(&key), "{case}");
    assert!(
        took < CONNECT_TIMEOUT,
        "{case}: failed in {took:?}, not within the connect timeout of {CONNECT_TIMEOUT:?}"
    );
    let stats = requester.stats();
    assert_eq!(stats.peer_errors, 1, "{case}: counted as a transport error");
    assert_eq!(stats.fallback_loads, 1, "{case}: fell back");
    assert_eq!(stats.peer_loads, 0, "{case}: nothing came from the owner");
    assert_eq!(stats.auth_failures, 0, "{case}: not an auth answer");
    assert_eq!(loader.loads_on(9, &key), 1, "{case}: loaded locally");
    assert_eq!(
        owner.node(0).stats().server_requests,
        0,
        "{case}: never reached the owner"
    );
    assert_eq!(owner.loader.total_loads_on(0), 0, "{case}");
    owner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_another_ca_falls_back() {
    within_limit(async {
        let ca = TestCa::new("cluster CA");
        let stranger = TestCa::new("some other CA");
        assert_falls_back_quickly(
            "wrong CA",
            Some(tls_for(&ca, &["127.0.0.1"])),
            Some(tls_for(&stranger, &["127.0.0.1"])),
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_name_mismatch_falls_back() {
    within_limit(async {
        let ca = TestCa::new("cluster CA");
        assert_falls_back_quickly(
            "name mismatch",
            Some(tls_for(&ca, &["127.0.0.1", "groupcache.test"])),
            Some(
                tls_for(&ca, &["127.0.0.1"])
                    .domain_name("not-the-peer.test")
                    .unwrap(),
            ),
        )
        .await;
        // A certificate for another IP, verified by IP.
        assert_falls_back_quickly(
            "ip mismatch",
            Some(tls_for(&ca, &["10.9.8.7"])),
            Some(tls_for(&ca, &["127.0.0.1"])),
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_foreign_client_certificate_under_mutual_tls_falls_back() {
    within_limit(async {
        let ca = TestCa::new("cluster CA");
        let stranger = TestCa::new("some other CA");
        let owner = tls_for(&ca, &["127.0.0.1"]).require_client_certificate();
        assert_falls_back_quickly(
            "no client certificate",
            Some(owner.clone()),
            Some(PeerTls::new(ca.cert_pem()).unwrap()),
        )
        .await;
        // Trusts the right CA, but presents a certificate the owner cannot verify.
        let foreign = stranger.issue(&["127.0.0.1"]);
        let requester = PeerTls::new(ca.cert_pem())
            .unwrap()
            .identity(foreign.cert_pem, foreign.key_pem)
            .unwrap();
        assert_falls_back_quickly("foreign client certificate", Some(owner), Some(requester)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_tls_peers_cannot_talk_and_fall_back() {
    within_limit(async {
        let ca = TestCa::new("cluster CA");
        assert_falls_back_quickly(
            "plaintext client, TLS server",
            Some(tls_for(&ca, &["127.0.0.1"])),
            None,
        )
        .await;
        assert_falls_back_quickly(
            "TLS client, plaintext server",
            None,
            Some(tls_for(&ca, &["127.0.0.1"])),
        )
        .await;
    })
    .await;
}

#[test]
fn bad_pem_is_a_clear_configuration_error() {
    let ca = TestCa::new("cluster CA");
    let cert = ca.issue(&["127.0.0.1"]);
    let no_ca = PeerTls::new("not a certificate").unwrap_err();
    assert_eq!(no_ca.kind(), groupcache::ErrorKind::Config, "{no_ca}");
    assert!(no_ca.to_string().contains("PEM"), "{no_ca}");
    let bad_key = PeerTls::from_pem(
        ca.cert_pem(),
        &cert.cert_pem,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n",
    )
    .unwrap_err();
    assert_eq!(bad_key.kind(), groupcache::ErrorKind::Config, "{bad_key}");
    let bad_name = PeerTls::new(ca.cert_pem())
        .unwrap()
        .domain_name("not a name")
        .unwrap_err();
    assert!(
        bad_name.to_string().contains("not a valid DNS name"),
        "{bad_name}"
    );
    let missing =
        PeerTls::from_files("/nonexistent/ca.pem", "/nonexistent/c", "/nonexistent/k").unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/ca.pem"),
        "{missing}"
    );
    let debug = format!(
        "{:?}",
        PeerTls::from_pem(ca.cert_pem(), cert.cert_pem, &cert.key_pem).unwrap()
    );
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_a_certificate_cannot_build_a_tls_server() {
    within_limit(async {
        let ca = TestCa::new("cluster CA");
        let cache = Groupcache::builder("127.0.0.1:1".parse::<SocketAddr>().unwrap())
            .tls(PeerTls::new(ca.cert_pem()).unwrap())
            .build();
        let err = cache.server_builder().unwrap_err();
        assert!(err.to_string().contains("PeerTls::identity"), "{err}");
    })
    .await;
}
