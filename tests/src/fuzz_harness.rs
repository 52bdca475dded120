//! The bodies of the fuzz targets in `fuzz/`, kept here so that an ordinary test replays the
//! saved corpus and every past crash through exactly the same code.
//!
//! Each takes arbitrary bytes and must not panic, hang or allocate without bound.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;

use bytes::Bytes;
use groupcache::codec::{Codec, Postcard};
use groupcache::peer::GroupcacheService;
use groupcache::security::PeerToken;
use groupcache::{BoxError, Groupcache, ValueLoader};
use groupcache_pb::v2::GetRequest;
use groupcache_pb::v2::groupcache_client::GroupcacheClient;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tonic::body::Body;
use tower::ServiceExt;

use crate::grpc_frames::body;

/// The token the fuzzed service requires when the input asks for the token check.
const FUZZ_TOKEN: &str = "fuzz-token-0123456789";
/// Limits small enough that the fuzzer reaches them.
const MAX_KEY_LEN: usize = 64;
const MAX_VALUE_SIZE: usize = 4096;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("fuzz runtime")
    })
}

/// A loader whose value depends on the key, so that long keys make long values.
#[derive(Debug)]
struct EchoLoader;

#[groupcache::async_trait]
impl ValueLoader for EchoLoader {
    type Value = String;

    async fn load(&self, key: &str) -> Result<String, BoxError> {
        if key.starts_with("missing") {
            return Err(groupcache::NotFound.into());
        }
        Ok(key.repeat(40))
    }
}

/// The group the fuzzed service hosts (a request naming another gets `NotFound`).
pub const FUZZ_GROUP: &str = "fuzz";

/// The peer service under test, with and without a token check.
fn services() -> &'static (GroupcacheService, GroupcacheService) {
    static SERVICES: OnceLock<(GroupcacheService, GroupcacheService)> = OnceLock::new();
    SERVICES.get_or_init(|| {
        let _guard = runtime().enter();
        let me: SocketAddr = "127.0.0.1:1".parse().expect("address");
        let build = |token: Option<&str>| {
            let builder = Groupcache::builder(me)
                .max_key_len(MAX_KEY_LEN)
                .max_value_size(MAX_VALUE_SIZE);
            let cache = match token {
                Some(t) => builder.peer_token(PeerToken::new(t).expect("token")),
                None => builder,
            }
            .build();
            cache
                .group(FUZZ_GROUP, EchoLoader)
                .main_cache_capacity(64 * 1024)
                .build()
                .expect("the fuzzed group");
            cache.grpc_service()
        };
        (build(None), build(Some(FUZZ_TOKEN)))
    })
}

/// Fuzz target `peer_request`: a request to a peer's gRPC service. The first byte picks the
/// path, content type and authorization header; the rest is the request body as sent.
/// Returns the reply's gRPC status code, if it had one.
pub fn peer_request(data: &[u8]) -> Option<i32> {
    let (&selector, rest) = data.split_first()?;
    let (open, guarded) = services();
    let service = if selector & 0x01 == 0 { open } else { guarded };
    let path = match (selector >> 1) & 0x03 {
        0 | 1 => "/groupcache.v2.Groupcache/Get",
        2 => "/groupcache.v2.Groupcache/Remove",
        _ => "/groupcache.v2.Groupcache/Unknown",
    };
    let content_type = match (selector >> 3) & 0x03 {
        0 | 1 => "application/grpc",
        2 => "application/grpc+proto",
        _ => "application/json",
    };
    let mut request = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", content_type)
        .header("te", "trailers");
    match (selector >> 5) & 0x03 {
        0 => {}
        1 => request = request.header("authorization", format!("Bearer {FUZZ_TOKEN}")),
        2 => request = request.header("authorization", "Bearer wrong"),
        _ => request = request.header("grpc-encoding", "gzip"),
    }
    let request = request
        .body(body(Bytes::copy_from_slice(rest)))
        .expect("a well-formed request");
    runtime().block_on(async {
        let response = service.clone().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.ok()?;
        let status = parts
            .headers
            .get("grpc-status")
            .or_else(|| collected.trailers().and_then(|t| t.get("grpc-status")))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        // A reply carries at most one value of the maximum size plus framing.
        assert!(collected.to_bytes().len() <= MAX_VALUE_SIZE + 1024 + 5);
        status
    })
}

/// A value type with more structure than a string, for the codec to get wrong.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: Option<f64>,
    #[serde(with = "serde_bytes_compat")]
    blob: Vec<u8>,
}

/// `Vec<u8>` as serde bytes without another dependency.
mod serde_bytes_compat {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Vec::<u8>::deserialize(d)
    }
}

/// Fuzz target `peer_reply`: the body of a peer's reply as this peer's client receives it,
/// through tonic's decoder with this peer's message limit, then the value through the
/// default codec as a few value types. The first byte picks the reply's trailers.
pub fn peer_reply(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let reply_body = Bytes::copy_from_slice(rest);
    let transport = tower::service_fn(move |_: http::Request<Body>| {
        let reply_body = reply_body.clone();
        async move {
            let mut trailers = http::HeaderMap::new();
            match selector & 0x03 {
                0 => {}
                1 => {
                    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                }
                2 => {
                    trailers.insert("grpc-status", http::HeaderValue::from_static("13"));
                    trailers.insert("groupcache-error", http::HeaderValue::from_static("codec"));
                }
                _ => {
                    trailers.insert("grpc-status", http::HeaderValue::from_static("99"));
                }
            }
            let with_trailers = http_body_util::Full::new(reply_body)
                .with_trailers(async move { Some(Ok(trailers)) });
            Ok::<_, Infallible>(
                http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(Body::new(with_trailers))
                    .expect("a well-formed response"),
            )
        }
    });
    let mut client =
        GroupcacheClient::new(transport).max_decoding_message_size(MAX_VALUE_SIZE + 1024);
    runtime().block_on(async {
        let Ok(reply) = client
            .get(GetRequest {
                group: FUZZ_GROUP.into(),
                key: "k".into(),
                ..GetRequest::default()
            })
            .await
        else {
            return;
        };
        let value = reply.into_inner().value;
        let _ = Codec::<String>::decode(&Postcard, value.clone());
        let _ = Codec::<Vec<u8>>::decode(&Postcard, value.clone());
        let _ = Codec::<Record>::decode(&Postcard, value);
    });
}
