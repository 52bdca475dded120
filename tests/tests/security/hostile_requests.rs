//! Requests no well-behaved peer sends, straight to a peer's gRPC service: each gets a clear
//! status, the loader is not called, and the server goes on serving (rule 11).

use groupcache_pb::v2::GetRequest;
use groupcache_pb::v2::groupcache_client::GroupcacheClient;
use groupcache_tests::{GROUP, TestCluster, value_of, within_limit};
use tonic::Code;
use tonic::transport::Channel;

/// A `Get` for `key` in the group the test cluster hosts.
fn get(key: String) -> GetRequest {
    GetRequest {
        group: GROUP.into(),
        key,
        ..GetRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_keys_get_a_status_and_the_server_keeps_serving() {
    within_limit(async {
        let cluster = TestCluster::start_with(1, |_, b| b.max_key_len(100)).await;
        let mut client = GroupcacheClient::connect(format!("http://{}", cluster.addr(0)))
            .await
            .unwrap()
            .max_encoding_message_size(64 * 1024 * 1024);

        // Over the key limit, but a small message: refused by the handler, in the group.
        let over = client.get(get("k".repeat(101))).await.unwrap_err();
        assert_eq!(over.code(), Code::InvalidArgument, "{over:?}");
        assert!(over.message().contains("101 bytes exceeds"), "{over:?}");
        assert_eq!(
            cluster.node(0).stats().rejected_keys,
            1,
            "the group checked the key"
        );

        // A 32 MiB request: refused while decoding, before a handler runs. The server only
        // buffers requests up to the key limit plus framing, whatever the value limit is.
        let huge = client
            .get(get("k".repeat(32 * 1024 * 1024)))
            .await
            .unwrap_err();
        // `InvalidArgument`, marked, since issue 10 item 9: tonic says `OutOfRange`, which the
        // asking peer would read as its own reply limit.
        assert_eq!(huge.code(), Code::InvalidArgument, "{huge:?}");
        assert_request_too_large(&huge);

        assert_eq!(
            cluster.loader.total_loads_on(0),
            0,
            "the loader was never called"
        );
        assert_eq!(cluster.peer_set(0).stats().unknown_group_requests, 0);

        // The same server, over the same connection, still answers.
        assert_serves(&mut client).await;
        cluster.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_oversized_group_names_get_a_status_and_the_server_keeps_serving() {
    within_limit(async {
        let cluster = TestCluster::start(1).await;
        let mut client = GroupcacheClient::connect(format!("http://{}", cluster.addr(0)))
            .await
            .unwrap()
            .max_encoding_message_size(1024 * 1024);
        let unknown = |group: String| GetRequest {
            group,
            key: "fine".into(),
            ..GetRequest::default()
        };

        // A group this peer does not host: `NotFound`, marked as such, counted by the peer
        // set, and it names what the peer does host.
        let status = client.get(unknown("not-hosted".into())).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(error_mark(&status), Some("unknown-group"), "{status:?}");
        assert!(status.message().contains("\"not-hosted\""), "{status:?}");
        assert!(status.message().contains(GROUP), "{status:?}");
        assert_eq!(cluster.peer_set(0).stats().unknown_group_requests, 1);

        // No group is empty-named: the same answer for a request with no group at all (what
        // a v1 request's key-only body decodes as is a group name without a key).
        let status = client.get(unknown(String::new())).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(cluster.peer_set(0).stats().unknown_group_requests, 2);

        // A name longer than any group may have (128 bytes), within the request limit, whose
        // 128th byte is inside a character: the peer quotes at most 128 bytes of it, cut back
        // to a character boundary (127 bytes: "a" and 63 "é"), without panicking.
        let long = format!("a{}", "é".repeat(500));
        let status = client.get(unknown(long.clone())).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(error_mark(&status), Some("unknown-group"), "{status:?}");
        let quoted = format!("{:?}", &long[..127]);
        assert!(status.message().contains(&quoted), "{status:?}");
        assert!(!status.message().contains(&long[..129]), "{status:?}");
        assert_eq!(cluster.peer_set(0).stats().unknown_group_requests, 3);

        // A 100 KB group name is over the request limit (key limit + 128 + framing): refused
        // while decoding, before any handler looks the group up, so not counted as an
        // unknown group.
        let status = client
            .get(unknown("g".repeat(100 * 1024)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_request_too_large(&status);
        assert_eq!(cluster.peer_set(0).stats().unknown_group_requests, 3);

        let stats = cluster.node(0).stats();
        assert_eq!(stats.server_requests, 0, "no request reached the group");
        assert_eq!(
            cluster.loader.total_loads_on(0),
            0,
            "no load for any of them"
        );

        // The same server, over the same connection, still answers the group it hosts.
        assert_serves(&mut client).await;
        assert_eq!(cluster.node(0).stats().server_requests, 1);
        assert_eq!(cluster.peer_set(0).stats().unknown_group_requests, 3);
        cluster.shutdown().await;
    })
    .await;
}

fn error_mark(status: &tonic::Status) -> Option<&str> {
    status
        .metadata()
        .get("groupcache-error")
        .map(|v| v.to_str().unwrap())
}

fn assert_request_too_large(status: &tonic::Status) {
    assert_eq!(error_mark(status), Some("request-too-large"), "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
}

/// A valid `Get` in the test group, over the same client, is answered with the value.
async fn assert_serves(client: &mut GroupcacheClient<Channel>) {
    let reply = client.get(get("fine".into())).await.unwrap();
    let value: String = postcard_decode(&reply.into_inner().value);
    assert_eq!(value, value_of("fine", 1));
}

/// Decodes a value the way the default codec does, through the public `Codec` trait.
fn postcard_decode(bytes: &[u8]) -> String {
    use groupcache::codec::{Codec, Postcard};
    Postcard
        .decode(bytes.to_vec().into())
        .expect("a well-formed reply")
}
