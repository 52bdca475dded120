//! Hand-built malformed gRPC requests, straight to a peer's service over one HTTP/2
//! connection: each gets an error status (`InvalidArgument` for every malformed request: the
//! sender's fault, not the server's), the loader is never called, and the same server answers
//! the next valid request on the same connection.

use bytes::Bytes;
use groupcache_pb::v2::{GetRequest, GetResponse};
use groupcache_tests::grpc_frames::{RawReply, body, frame, message_frame};
use groupcache_tests::{GROUP, TestCluster, value_of, within_limit};
use prost::Message;
use tonic::Code;
use tonic::transport::Channel;
use tower::ServiceExt;

const GET: &str = "/groupcache.v2.Groupcache/Get";

/// A `GetRequest` encoded by hand, so that either field may hold bytes no encoder would
/// write: `group` is field 1, `key` field 2, both length-delimited (short ones only here).
fn get_request_bytes(group: &[u8], key: &[u8]) -> Vec<u8> {
    assert!(
        group.len() < 128 && key.len() < 128,
        "one-byte lengths only"
    );
    let mut bytes = vec![0x0a, group.len() as u8];
    bytes.extend_from_slice(group);
    bytes.extend_from_slice(&[0x12, key.len() as u8]);
    bytes.extend_from_slice(key);
    bytes
}

async fn send(channel: &Channel, content_type: &str, bytes: Bytes) -> RawReply {
    let request = http::Request::builder()
        .method("POST")
        .uri(GET)
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(body(bytes))
        .unwrap();
    let response = channel
        .clone()
        .oneshot(request)
        .await
        .expect("an HTTP response");
    RawReply::read(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_an_error_status_and_the_server_keeps_serving() {
    within_limit(async {
        let cluster = TestCluster::start(1).await;
        let channel = Channel::from_shared(format!("http://{}", cluster.addr(0)))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let valid = GetRequest {
            group: GROUP.into(),
            key: "fine".into(),
            ..GetRequest::default()
        };
        // The hand encoding agrees with prost's, so the cases built with it differ from a
        // valid request only where they mean to.
        assert_eq!(
            get_request_bytes(GROUP.as_bytes(), b"fine"),
            valid.encode_to_vec()
        );
        let key_not_utf8 = get_request_bytes(GROUP.as_bytes(), &[0xff, 0xfe]);
        let group_not_utf8 = get_request_bytes(&[0xff, 0xfe], b"fine");
        let grpc = "application/grpc";

        let cases: Vec<(&str, &str, Bytes, Option<Code>)> = vec![
            (
                "garbage body",
                grpc,
                frame(0, 8, &[0xff; 8]),
                Some(Code::InvalidArgument),
            ),
            (
                "length prefix larger than the body",
                grpc,
                frame(0, 100, &valid.encode_to_vec()),
                Some(Code::InvalidArgument),
            ),
            (
                "declared 4 GiB length",
                grpc,
                frame(0, u32::MAX, b"0123456789abcdef"),
                Some(Code::InvalidArgument),
            ),
            (
                "compressed flag without an encoding",
                grpc,
                frame(1, valid.encoded_len() as u32, &valid.encode_to_vec()),
                Some(Code::InvalidArgument),
            ),
            (
                "an invalid compressed flag",
                grpc,
                frame(7, 0, &[]),
                Some(Code::InvalidArgument),
            ),
            (
                "half a frame header",
                grpc,
                Bytes::from_static(&[0, 0, 0]),
                Some(Code::InvalidArgument),
            ),
            (
                "empty body",
                grpc,
                Bytes::new(),
                Some(Code::InvalidArgument),
            ),
            // Regression test for issue 10, item 9: this was `Internal`. The key, field 2, in a
            // request naming the group this peer hosts.
            (
                "a key that is not UTF-8",
                grpc,
                frame(0, key_not_utf8.len() as u32, &key_not_utf8),
                Some(Code::InvalidArgument),
            ),
            (
                "a group name that is not UTF-8",
                grpc,
                frame(0, group_not_utf8.len() as u32, &group_not_utf8),
                Some(Code::InvalidArgument),
            ),
            (
                "wrong content type",
                "application/json",
                message_frame(&valid),
                None,
            ),
            (
                "no grpc content type at all",
                "text/plain",
                Bytes::from_static(b"GET me"),
                None,
            ),
        ];
        for (case, content_type, bytes, code) in cases {
            let reply = send(&channel, content_type, bytes).await;
            assert!(reply.is_error(), "{case}: {reply:?}");
            match code {
                Some(code) => assert_eq!(reply.grpc_status, Some(code as i32), "{case}: {reply:?}"),
                None => {
                    assert_eq!(
                        reply.http,
                        http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "{case}"
                    );
                    assert!(
                        reply.grpc_message.contains("application%2Fgrpc")
                            || reply.grpc_message.contains("application/grpc"),
                        "{case}: {reply:?}"
                    );
                }
            }
            assert!(reply.data.is_empty(), "{case}: no value leaks: {reply:?}");

            // The next valid request, on the same connection, is served.
            let ok = send(&channel, grpc, message_frame(&valid)).await;
            assert_eq!(ok.grpc_status, Some(0), "after {case}: {ok:?}");
            let reply = GetResponse::decode(&ok.data[5..]).expect("a well-formed reply");
            let value: String = postcard_decode(&reply.value);
            assert_eq!(value, value_of("fine", 1), "after {case}");
        }
        assert_eq!(
            cluster.loader.total_loads_on(0),
            1,
            "only the valid key was ever loaded"
        );
        cluster.shutdown().await;
    })
    .await;
}

fn postcard_decode(bytes: &[u8]) -> String {
    use groupcache::codec::{Codec, Postcard};
    Postcard
        .decode(bytes.to_vec().into())
        .expect("a well-formed value")
}
