//! Requests no well-behaved peer sends, straight to a peer's gRPC service: each gets a clear
//! status, the loader is not called, and the server goes on serving (rule 11).

use groupcache_pb::v1::GetRequest;
use groupcache_pb::v1::groupcache_client::GroupcacheClient;
use groupcache_tests::{TestCluster, value_of, within_limit};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_keys_get_a_status_and_the_server_keeps_serving() {
    within_limit(async {
        let cluster = TestCluster::start_with(1, |_, b| b.max_key_len(100)).await;
        let mut client = GroupcacheClient::connect(format!("http://{}", cluster.addr(0)))
            .await
            .unwrap()
            .max_encoding_message_size(64 * 1024 * 1024);

        // Over the key limit, but a small message: refused by the handler.
        let over = client
            .get(GetRequest {
                key: "k".repeat(101),
            })
            .await
            .unwrap_err();
        assert_eq!(over.code(), Code::InvalidArgument, "{over:?}");
        assert!(over.message().contains("101 bytes exceeds"), "{over:?}");

        // A 32 MiB request: refused while decoding, before a handler runs. The server only
        // buffers requests up to the key limit plus framing, whatever the value limit is.
        let huge = client
            .get(GetRequest {
                key: "k".repeat(32 * 1024 * 1024),
            })
            .await
            .unwrap_err();
        // `InvalidArgument`, marked, since issue 10 item 9: tonic says `OutOfRange`, which the
        // asking peer would read as its own reply limit.
        assert_eq!(huge.code(), Code::InvalidArgument, "{huge:?}");
        assert_eq!(
            huge.metadata()
                .get("groupcache-error")
                .map(|v| v.to_str().unwrap()),
            Some("request-too-large"),
            "{huge:?}"
        );
        assert!(huge.message().contains("too large"), "{huge:?}");

        assert_eq!(
            cluster.loader.total_loads_on(0),
            0,
            "the loader was never called"
        );

        // The same server, over the same connection, still answers.
        let reply = client.get(GetRequest { key: "fine".into() }).await.unwrap();
        let value: String = postcard_decode(&reply.into_inner().value);
        assert_eq!(value, value_of("fine", 1));
        cluster.shutdown().await;
    })
    .await;
}

/// Decodes a value the way the default codec does, through the public `Codec` trait.
fn postcard_decode(bytes: &[u8]) -> String {
    use groupcache::Codec;
    groupcache::Postcard
        .decode(bytes.to_vec().into())
        .expect("a well-formed reply")
}
