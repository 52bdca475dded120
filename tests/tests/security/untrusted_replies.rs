//! Replies from a peer that misbehaves: a fake owner, served by a real tonic server on
//! loopback, answers every `Get` with a hand-built response. Never a panic. A reply that is not
//! a well-formed gRPC message means the owner is unusable: counted as a peer error and loaded
//! locally. A well-formed reply whose value does not decode means the peers disagree on the
//! codec: returned as a codec error, not hidden by a local load. A reply over the message limit
//! is a value too large.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use bytes::Bytes;
use groupcache::{ErrorKind, Groupcache};
use groupcache_pb::v2::GetResponse;
use groupcache_tests::grpc_frames::{frame, message_frame};
use groupcache_tests::{CountingLoader, GROUP, within_limit};
use tonic::body::Body;
use tonic::codegen::BoxFuture;
use tonic::server::NamedService;

/// A hand-built HTTP response: status, content type, body, and a gRPC status in trailers.
#[derive(Clone)]
struct Reply {
    http: u16,
    content_type: &'static str,
    body: Bytes,
    grpc_status: Option<&'static str>,
    /// `groupcache-error` in the trailers: the kind an owner marks its own answers with.
    mark: Option<&'static str>,
}

/// Answers every request with the same hand-built response.
#[derive(Clone)]
struct FakeOwner(Reply);

impl NamedService for FakeOwner {
    const NAME: &'static str = "groupcache.v2.Groupcache";
}

impl tower::Service<http::Request<Body>> for FakeOwner {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<Body>) -> Self::Future {
        let reply = self.0.clone();
        Box::pin(async move {
            let mut trailers = http::HeaderMap::new();
            if let Some(status) = reply.grpc_status {
                trailers.insert("grpc-status", status.parse().unwrap());
            }
            if let Some(mark) = reply.mark {
                trailers.insert("groupcache-error", mark.parse().unwrap());
            }
            let data = http_body_util::Full::new(reply.body);
            let with_trailers =
                http_body_util::BodyExt::with_trailers(data, async move { Some(Ok(trailers)) });
            Ok(http::Response::builder()
                .status(reply.http)
                .header("content-type", reply.content_type)
                .body(Body::new(with_trailers))
                .unwrap())
        })
    }
}

/// What a requester did with the fake owner's reply.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// Got the value by a local load after counting a peer error.
    FellBack,
    /// Returned an error of this kind, with no local load.
    Error(ErrorKind),
}

async fn outcome_of(case: &str, reply: Reply) -> Outcome {
    let incoming = groupcache::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let owner = incoming.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FakeOwner(reply))
            .serve_with_incoming(incoming),
    );
    let loader = CountingLoader::new();
    let me: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let peer_set = Groupcache::builder(me).max_value_size(1024).build();
    let requester = peer_set.group(GROUP, loader.for_node(0)).build().unwrap();
    peer_set.set_peers([owner]).unwrap();

    let result = requester.get("k").await;
    let stats = requester.stats();
    server.abort();
    match result {
        Ok(value) => {
            assert_eq!(value, loader.expected("k"), "{case}");
            assert_eq!(stats.peer_errors, 1, "{case}: counted");
            assert_eq!(stats.fallback_loads, 1, "{case}");
            assert_eq!(loader.loads("k"), 1, "{case}");
            Outcome::FellBack
        }
        Err(err) => {
            assert_eq!(
                err.peer().map(|p| p.addr()),
                Some(owner),
                "{case}: names the peer"
            );
            assert_eq!(stats.fallback_loads, 0, "{case}");
            assert_eq!(loader.loads("k"), 0, "{case}");
            Outcome::Error(err.kind())
        }
    }
}

fn grpc(body: Bytes, status: Option<&'static str>) -> Reply {
    Reply {
        http: 200,
        content_type: "application/grpc",
        body,
        grpc_status: status,
        mark: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_replies_fall_back_and_undecodable_values_are_codec_errors() {
    within_limit(async {
        let value = |bytes: &'static [u8]| {
            message_frame(&GetResponse {
                value: Bytes::from_static(bytes),
                ..GetResponse::default()
            })
        };
        let cases = [
            (
                "garbage protobuf",
                grpc(frame(0, 6, &[0xff; 6]), Some("0")),
                Outcome::FellBack,
            ),
            (
                "length prefix larger than the body",
                grpc(frame(0, 50, &[0x0a, 0x01, b'x']), Some("0")),
                Outcome::FellBack,
            ),
            (
                "compressed flag without an encoding",
                grpc(frame(1, 3, &[0x0a, 0x01, b'x']), Some("0")),
                Outcome::FellBack,
            ),
            (
                "no message at all",
                grpc(Bytes::new(), Some("0")),
                Outcome::FellBack,
            ),
            (
                "no grpc-status",
                grpc(value(b"\x01x"), None),
                Outcome::FellBack,
            ),
            (
                "an HTML error page from a proxy",
                Reply {
                    http: 502,
                    content_type: "text/html",
                    body: Bytes::from_static(b"<html>bad gateway</html>"),
                    grpc_status: None,
                    mark: None,
                },
                Outcome::FellBack,
            ),
            (
                "declared 4 GiB length",
                grpc(frame(0, u32::MAX, b"0123456789"), Some("0")),
                Outcome::Error(ErrorKind::ValueTooLarge),
            ),
            (
                "an empty value",
                grpc(value(b""), Some("0")),
                Outcome::Error(ErrorKind::Codec),
            ),
            (
                "a value that is not postcard",
                grpc(value(b"\xff\xff\xff\xff\xff\xff"), Some("0")),
                Outcome::Error(ErrorKind::Codec),
            ),
            (
                "a string that is not UTF-8",
                grpc(value(b"\x02\xff\xfe"), Some("0")),
                Outcome::Error(ErrorKind::Codec),
            ),
            // The owner says it does not host the group: an answer (the peers were set up
            // with different groups), never hidden by a local load.
            (
                "an unknown group",
                Reply {
                    mark: Some("unknown-group"),
                    ..grpc(Bytes::new(), Some("5"))
                },
                Outcome::Error(ErrorKind::UnknownGroup),
            ),
            // Something at the owner's address that has no groupcache.v2 service (an older
            // peer, another program): a configuration error, not an outage.
            (
                "no such service or method",
                grpc(Bytes::new(), Some("12")),
                Outcome::Error(ErrorKind::WrongService),
            ),
        ];
        for (case, reply, expected) in cases {
            assert_eq!(outcome_of(case, reply).await, expected, "{case}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_formed_reply_is_used() {
    within_limit(async {
        // The control: the same fake owner with a correct reply is trusted as is.
        let incoming = groupcache::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let owner = incoming.local_addr().unwrap();
        let encoded = groupcache::codec::Codec::<String>::encode(
            &groupcache::codec::Postcard,
            &"hi".to_owned(),
        )
        .unwrap();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(FakeOwner(grpc(
                    message_frame(&GetResponse {
                        value: encoded,
                        ..GetResponse::default()
                    }),
                    Some("0"),
                )))
                .serve_with_incoming(incoming),
        );
        let loader = CountingLoader::new();
        let peer_set = Groupcache::builder("127.0.0.1:1".parse::<SocketAddr>().unwrap()).build();
        let requester = peer_set.group(GROUP, loader).build().unwrap();
        peer_set.set_peers([owner]).unwrap();
        assert_eq!(requester.get("k").await.unwrap(), "hi");
        assert_eq!(requester.stats().peer_loads, 1);
        server.abort();
    })
    .await;
}
