//! Answering a peer's `GetMany`: every key as its own `Get`, concurrently, in one reply.

use groupcache_pb::v2::{GetManyRequest, GetManyResponse, KeyResult};
use tonic::{Request, Response, Status};
use tracing::Instrument;
use tracing::field::Empty;

use super::PeerHandler;
use crate::defaults::MAX_BATCH_KEYS;
use crate::lookup::Served;
use crate::peer::status::{malformed_request, to_key_status};
use crate::trace::TraceContext;

/// What a reply's own fields (the owner's position) and framing may take, besides the results.
const REPLY_OVERHEAD: usize = 64;

pub(super) async fn get_many(
    handler: &PeerHandler,
    request: Request<GetManyRequest>,
) -> Result<Response<GetManyResponse>, Status> {
    let parent = TraceContext::extract(request.metadata());
    let GetManyRequest { group, keys, asker } = request.into_inner();
    let hosted = handler.group(&group)?;
    if keys.len() > MAX_BATCH_KEYS {
        return Err(malformed_request(&format!(
            "a GetMany request carries at most {MAX_BATCH_KEYS} keys, not {}; split the batch",
            keys.len()
        )));
    }
    // Read before any value: a copy made of any of them is as fresh as this position says.
    let (owner_epoch, owner_sequence) = handler.peer_set.node().invalidations().position();
    let tells_asker = handler.tells(&asker);
    let span = tracing::debug_span!(
        "groupcache.serve_batch",
        group = %group,
        keys = keys.len(),
        trace_id = Empty,
        span_id = Empty,
    );
    let context = if span.is_disabled() {
        parent
    } else {
        let context = parent.map_or_else(TraceContext::new_root, |p| p.child());
        span.record("trace_id", context.trace_id().as_str());
        span.record("span_id", context.span_id().as_str());
        Some(context)
    };
    // Rule 6: every key answered here, from cache or loader, never forwarded.
    let served = hosted.serve_get_many(keys, context).instrument(span).await;
    let limit = handler
        .peer_set
        .node()
        .config()
        .max_reply_size()
        .saturating_sub(REPLY_OVERHEAD);
    let mut size = 0_usize;
    let results = served
        .into_iter()
        .map(|served| {
            let result = key_result(served);
            let len = encoded_len(&result);
            size = size.saturating_add(len);
            if size > limit {
                size -= len;
                return KeyResult {
                    not_sent: true,
                    ..KeyResult::default()
                };
            }
            result
        })
        .collect();
    Ok(Response::new(GetManyResponse {
        results,
        owner_epoch,
        owner_sequence,
        tells_asker,
    }))
}

/// What `result` takes in the reply, at most: its bytes, and 32 for its tags, lengths and
/// numbers.
fn encoded_len(result: &KeyResult) -> usize {
    result.value.len() + result.message.len() + result.mark.len() + 32
}

/// One key's part of the reply: what a `Get` of it would have answered.
fn key_result(served: Result<Served, crate::Error>) -> KeyResult {
    match served {
        Ok(served) => KeyResult {
            value: served.value,
            expires_in_ms: super::expires_in_ms(served.expires_in),
            hot: served.hot,
            ..KeyResult::default()
        },
        Err(err) => {
            let (code, message, mark) = to_key_status(&err);
            KeyResult {
                code,
                message,
                mark,
                ..KeyResult::default()
            }
        }
    }
}
