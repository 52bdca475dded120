//! Hand-built gRPC messages, for peers that misbehave on purpose: a request or reply body is a
//! sequence of frames, each a compressed flag, a 4-byte big-endian length and that many bytes.

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use tonic::body::Body;

/// One frame with any flag and declared length, followed by `payload` as it is (which may be
/// shorter or longer than `declared`).
pub fn frame(compressed: u8, declared: u32, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + payload.len());
    out.put_u8(compressed);
    out.put_u32(declared);
    out.put_slice(payload);
    out.freeze()
}

/// A well-formed frame carrying `message`.
pub fn message_frame(message: &impl prost::Message) -> Bytes {
    let payload = message.encode_to_vec();
    frame(0, payload.len() as u32, &payload)
}

/// A body that sends `bytes` and ends.
pub fn body(bytes: Bytes) -> Body {
    Body::new(http_body_util::Full::new(bytes))
}

/// What came back for a raw request: the HTTP status, the gRPC status (from the headers of a
/// trailers-only response, or the trailers) and the body's data.
#[derive(Debug)]
pub struct RawReply {
    /// The HTTP status.
    pub http: http::StatusCode,
    /// `grpc-status`, if any.
    pub grpc_status: Option<i32>,
    /// `grpc-message`, if any.
    pub grpc_message: String,
    /// The data frames' bytes.
    pub data: Bytes,
}

impl RawReply {
    /// Reads the whole response.
    pub async fn read(response: http::Response<Body>) -> Self {
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.expect("the response body");
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .or_else(|| trailers.get(name))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        RawReply {
            http: parts.status,
            grpc_status: header("grpc-status").and_then(|s| s.parse().ok()),
            grpc_message: header("grpc-message").unwrap_or_default(),
            data: collected.to_bytes(),
        }
    }

    /// Whether the reply is an error by HTTP or by gRPC status.
    pub fn is_error(&self) -> bool {
        self.http != http::StatusCode::OK || self.grpc_status.is_some_and(|s| s != 0)
    }
}
