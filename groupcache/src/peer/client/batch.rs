//! Asking one owner for many keys at once: one `GetMany` request, a result per key.

use std::time::Duration;

use groupcache_pb::v2::{GetManyRequest, KeyResult};
use tracing::Instrument;

use super::{PeerClient, Reply, retry_refused};
use crate::peer::status::{PeerFailure, from_key_status, from_status};
use crate::trace::TraceContext;
use crate::{Error, ErrorKind};

/// What a key of a `GetMany` request adds to it besides its bytes: a field tag and a length.
const KEY_OVERHEAD: usize = 8;

/// Splits `items` (each asking for the key `key_of` names) into the batches of `GetMany`
/// requests for `group`: at most `max_keys` keys each, and within `max_request` bytes of
/// request, in their order.
pub(crate) fn split_into_batches<T>(
    items: Vec<T>,
    key_of: impl Fn(&T) -> &str,
    group: &str,
    max_request: usize,
    max_keys: usize,
) -> Vec<Vec<T>> {
    let limit = max_request.saturating_sub(group.len() + KEY_OVERHEAD);
    let mut batches = Vec::new();
    let mut batch: Vec<T> = Vec::new();
    let mut size = 0;
    for item in items {
        let len = key_of(&item).len() + KEY_OVERHEAD;
        if !batch.is_empty() && (batch.len() == max_keys || size + len > limit) {
            batches.push(std::mem::take(&mut batch));
            size = 0;
        }
        size += len;
        batch.push(item);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// The owner's answer for one key of a `GetMany`.
#[derive(Debug)]
pub(crate) enum KeyReply {
    /// The value, as a `Get` would have brought it (its lease tag included).
    Value(Reply),
    /// What a `Get` of the key would have failed with.
    Failed(PeerFailure),
    /// The value did not fit in the reply: ask for it with `Get`.
    NotSent,
}

impl PeerClient {
    /// Asks the peer for the encoded values of `keys` of `group` in one request, as part of
    /// the trace `context`: a result per key, in the order of `keys`. `within` is the
    /// deadline (at most the peer timeout); `max_request` the largest request to send (the
    /// caller's batches fit in it). An error is the request's as a whole: every key failed.
    pub(crate) async fn get_many(
        &self,
        group: &str,
        keys: &[String],
        within: Duration,
        max_request: usize,
        context: Option<&TraceContext>,
    ) -> Result<Vec<KeyReply>, PeerFailure> {
        let timeout = within.min(self.timeout);
        // Errors of the request as a whole name its first key and how many others it carried.
        let shown = match keys {
            [] => return Ok(Vec::new()),
            [first] => first.clone(),
            [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
        };
        let span =
            tracing::debug_span!("groupcache.peer_batch", peer = %self.peer, keys = keys.len());
        let sent_at = tokio::time::Instant::now();
        let call = retry_refused(&shown, &self.peer, || {
            let mut client = self.client.clone().max_encoding_message_size(max_request);
            let mut request = self.request(GetManyRequest {
                group: group.to_owned(),
                keys: keys.to_vec(),
                asker: self.me.clone(),
            });
            request.set_timeout(timeout);
            if let Some(context) = context {
                context.inject(request.metadata_mut());
            }
            async move { client.get_many(request).await }
        });
        let result = match self
            .deadline_of(timeout, group, &shown, call)
            .instrument(span)
            .await
        {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(from_status(&status, group, &shown, &self.peer)),
            Err(failure) => Err(failure),
        };
        self.observe(&result);
        let response = result?;
        if response.results.len() != keys.len() {
            return Err(PeerFailure::Transport(
                Error::new(
                    ErrorKind::Peer,
                    format!(
                        "the peer answered {} results for {} keys",
                        response.results.len(),
                        keys.len()
                    ),
                )
                .with_group(group)
                .with_key(&shown)
                .with_peer(&self.peer),
            ));
        }
        // One position for every value: each was read after it.
        let lease = self.copy_lease(
            response.tells_asker,
            response.owner_epoch,
            response.owner_sequence,
            sent_at,
        );
        Ok(keys
            .iter()
            .zip(response.results)
            .map(|(key, result)| self.key_reply(group, key, result, lease.as_ref(), sent_at))
            .collect())
    }

    fn key_reply(
        &self,
        group: &str,
        key: &str,
        result: KeyResult,
        lease: Option<&super::LeaseTag>,
        sent_at: tokio::time::Instant,
    ) -> KeyReply {
        if result.not_sent {
            return KeyReply::NotSent;
        }
        if result.code != 0 {
            let status = (result.code, result.message.as_str(), result.mark.as_str());
            return KeyReply::Failed(from_key_status(status, group, key, &self.peer));
        }
        KeyReply::Value(Reply {
            value: result.value,
            expires_in: super::expires_in(result.expires_in_ms, sent_at),
            lease: lease.cloned(),
            hot: result.hot,
            coalesced: false,
        })
    }
}
