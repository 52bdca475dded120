//! The peer token never reaches a log line, at any level, from any crate (groupcache, tonic,
//! h2, hyper), nor `Debug` output. Alone in its process: it installs a global subscriber that
//! records everything at TRACE, including the node servers' threads.

use groupcache::security::PeerToken;
use groupcache::{ErrorKind, Groupcache};
use groupcache_tests::log_capture::CapturedLogs;
use groupcache_tests::own_process::alone_in_this_process;
use groupcache_tests::{CountingLoader, TestCluster, within_limit};

const TOKEN: &str = "s3cr3t-token-7f1e2d3c4b5a69788796a5b4c3d2e1f0";
const WRONG: &str = "wr0ng-token-0123456789abcdef0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_appears_in_no_log_line_and_no_debug_output() {
    if !alone_in_this_process(
        module_path!(),
        "the_token_appears_in_no_log_line_and_no_debug_output",
    )
    .await
    {
        return;
    }
    let captured = CapturedLogs::install(tracing::Level::TRACE);

    within_limit(async {
        // Peers 0 and 1 share the token; peer 2 presents a wrong one.
        let cluster = TestCluster::start_with(3, |i, b| {
            b.peer_token(PeerToken::new(if i == 2 { WRONG } else { TOKEN }).unwrap())
        })
        .await;
        let served = cluster.key_owned_by(1, "served");
        assert_eq!(
            cluster.node(0).get(&served).await.unwrap(),
            cluster.loader.expected(&served)
        );
        let refused = cluster.key_owned_by(1, "refused");
        let err = cluster.node(2).get(&refused).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
        // And the other way round: peer 1 presents the right token to peer 2, which expects
        // its wrong one.
        let reverse = cluster.key_owned_by(2, "reverse");
        assert_eq!(
            cluster.node(1).get(&reverse).await.unwrap_err().kind(),
            ErrorKind::Unauthenticated
        );

        // The peer set holds the tokens; its groups, their builders and its token layer reach
        // them through it.
        let debug = format!(
            "{:?} {:?} {:?} {:?} {:?} {err:?} {err} {:?} {:?}",
            cluster.node(0),
            cluster.peer_set(0),
            cluster.peer_set(2).peer_token_layer(),
            cluster.peer_set(0).group("other", CountingLoader::new()),
            Groupcache::builder(cluster.addr(0))
                .peer_token(PeerToken::new(TOKEN).unwrap())
                .accept_peer_token(PeerToken::new(WRONG).unwrap()),
            cluster.node(2).stats(),
            cluster.peer_set(2).stats(),
        );
        for secret in [TOKEN, WRONG] {
            assert!(!debug.contains(secret), "a token in Debug output: {debug}");
        }
        cluster.shutdown().await;
    })
    .await;

    let logs = captured.text();
    // The capture worked: it saw the refusal on both sides and the HTTP/2 traffic.
    assert!(
        logs.contains("peer refused this peer's credentials"),
        "the asker's error log is captured"
    );
    assert!(
        logs.contains("refused a peer request"),
        "the owner's refusal log is captured"
    );
    assert!(logs.contains("h2"), "transport logs are captured too");
    for secret in [TOKEN, WRONG] {
        assert!(
            !logs.contains(secret),
            "a token leaked into the logs:\n{}",
            logs.lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
