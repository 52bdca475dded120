//! Answering peers: the gRPC service the application mounts in its own tonic server.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use groupcache_pb::v2::groupcache_server::{Groupcache as GroupcacheRpc, GroupcacheServer};
use groupcache_pb::v2::{
    DescribeRequest, DescribeResponse, GetManyRequest, GetManyResponse, GetRequest, GetResponse,
    InvalidateRequest, InvalidateResponse, LeaseRequest, LeaseResponse, RemoveRequest, SetRequest,
    WriteResponse,
};
use tonic::body::Body;
use tonic::codegen::BoxFuture;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use tonic::transport::Server;

use super::client::{KEEP_ALIVE_INTERVAL, KEEP_ALIVE_TIMEOUT};
use super::status::{malformed_request, mark_refused_request, not_held, to_status};
use super::token_layer::TokenCheck;
use crate::builder::Config;
use crate::peer_set::PeerSet;
use crate::stats::PeerSetCounters;
use crate::trace::TraceContext;
use crate::{Error, ErrorKind, GroupcachePeer};
use tracing::Instrument;
use tracing::field::Empty;

mod batch;

/// The request handler: finds the group, validates, then answers from this peer's caches or
/// its loader.
struct PeerHandler {
    peer_set: Arc<PeerSet>,
}

impl PeerHandler {
    /// Whether this peer's invalidations reach `asker`: it is a member of this peer's ring.
    fn tells(&self, asker: &str) -> bool {
        asker
            .parse::<GroupcachePeer>()
            .is_ok_and(|asker| self.peer_set.node().routing().client_of(&asker).is_some())
    }

    /// The group a request names, or the `NotFound` status that says this peer has none.
    fn group(&self, name: &str) -> Result<Arc<dyn crate::lookup::HostedGroup>, Status> {
        self.peer_set.hosted(name).ok_or_else(|| {
            self.peer_set.counters().unknown_group_requests.bump();
            let hosted = self.peer_set.group_names();
            // A name is at most 128 bytes; an asker may send any length (up to the request
            // limit): quote no more than that.
            let mut cut = name.len().min(128);
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            let shown = &name[..cut];
            tracing::debug!(group = %shown, "a peer asked for a group this peer does not host");
            to_status(&Error::new(
                ErrorKind::UnknownGroup,
                format!(
                    "peer {} does not host group {shown:?} (it hosts {hosted:?}); every peer \
                     must create the same groups",
                    self.peer_set.node().me()
                ),
            ))
        })
    }
}

/// The owner a `Get` says its asker found out, if any: empty, or a peer address.
fn parse_substitute_for(text: &str) -> Result<Option<GroupcachePeer>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        let mut cut = text.len().min(64);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        malformed_request(&format!(
            "substitute_for must be the owner's address (host:port), not {:?}",
            &text[..cut]
        ))
    })
}

#[tonic::async_trait]
impl GroupcacheRpc for PeerHandler {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        // The asker's trace, if it sent one: this peer's spans join it.
        let parent = TraceContext::extract(request.metadata());
        let GetRequest {
            group,
            key,
            substitute_for,
            held_only,
            asker,
        } = request.into_inner();
        let hosted = self.group(&group)?;
        let substitute_for = parse_substitute_for(&substitute_for)?;
        // Read before the value: a copy made of it is as fresh as this position says.
        let (owner_epoch, owner_sequence) = self.peer_set.node().invalidations().position();
        let tells_asker = self.tells(&asker);
        if held_only {
            return match hosted.serve_held(&key) {
                Ok(Some(value)) => Ok(Response::new(GetResponse {
                    value,
                    expires_in_ms: None,
                    owner_epoch,
                    owner_sequence,
                    tells_asker,
                    hot: false,
                })),
                Ok(None) => Err(not_held()),
                Err(err) => Err(to_status(&err)),
            };
        }
        let span = crate::trace::debug_span_if_on!(
            "groupcache.serve",
            group = %group,
            key = Empty,
            trace_id = Empty,
            parent_span_id = Empty,
            span_id = Empty,
        );
        // The serve span's context when spans are on; the asker's, if it sent one, otherwise.
        // A load this request starts runs in (a child of) it.
        let context = if span.is_disabled() {
            parent
        } else {
            let context = parent.map_or_else(TraceContext::new_root, |p| p.child());
            if let Some(shown) = self.peer_set.node().trace_keys().show(&key) {
                span.record("key", shown.as_str());
            }
            span.record("trace_id", context.trace_id().as_str());
            span.record("span_id", context.span_id().as_str());
            if let Some(parent) = parent {
                span.record("parent_span_id", parent.span_id().as_str());
            }
            Some(context)
        };
        // Rule 6: answer here, from cache or loader, never forward, whatever our ring says.
        let served = hosted
            .serve_get(key, substitute_for, context)
            .instrument(span)
            .await
            .map_err(|err| to_status(&err))?;
        Ok(Response::new(GetResponse {
            value: served.value,
            expires_in_ms: expires_in_ms(served.expires_in),
            owner_epoch,
            owner_sequence,
            tells_asker,
            hot: served.hot,
        }))
    }

    async fn get_many(
        &self,
        request: Request<GetManyRequest>,
    ) -> Result<Response<GetManyResponse>, Status> {
        batch::get_many(self, request).await
    }

    async fn describe(
        &self,
        request: Request<DescribeRequest>,
    ) -> Result<Response<DescribeResponse>, Status> {
        let key = request.into_inner().key;
        if let Some(key) = &key {
            self.peer_set
                .node()
                .check_key(key)
                .map_err(|err| to_status(&err))?;
        }
        let view = crate::describe::local(&self.peer_set, key.as_deref());
        Ok(Response::new(crate::describe::to_reply(&view)))
    }

    async fn remove(
        &self,
        request: Request<RemoveRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let RemoveRequest {
            group,
            key,
            from_new_owner,
            mut keys,
            clear,
        } = request.into_inner();
        let hosted = self.group(&group)?;
        if keys.len() >= MAX_KEYS_PER_REMOVE {
            return Err(malformed_request(&format!(
                "a Remove names at most {MAX_KEYS_PER_REMOVE} keys, not {}",
                keys.len() + 1
            )));
        }
        keys.insert(0, key);
        let unacknowledged = hosted
            .serve_remove(keys, clear, from_new_owner)
            .await
            .map_err(|err| to_status(&err))?;
        Ok(Response::new(written(&unacknowledged)))
    }

    async fn set(&self, request: Request<SetRequest>) -> Result<Response<WriteResponse>, Status> {
        let SetRequest { group, key, value } = request.into_inner();
        let unacknowledged = self
            .group(&group)?
            .serve_set(key, value)
            .await
            .map_err(|err| to_status(&err))?;
        Ok(Response::new(written(&unacknowledged)))
    }

    async fn invalidate(
        &self,
        request: Request<InvalidateRequest>,
    ) -> Result<Response<InvalidateResponse>, Status> {
        let InvalidateRequest {
            owner,
            owner_epoch,
            after,
            last,
            invalidations,
        } = request.into_inner();
        let owner: GroupcachePeer = owner.parse().map_err(|_| {
            malformed_request("an invalidation must name its owner's address (host:port)")
        })?;
        if last.checked_sub(after) != Some(invalidations.len() as u64) {
            return Err(malformed_request(
                "an invalidation batch numbered after..last must hold last - after invalidations",
            ));
        }
        let node = self.peer_set.node();
        // The copies first, then the lease's position: once a renewal sees the position, the
        // copies are gone.
        let mut cleared: Vec<&str> = Vec::new();
        for invalidation in &invalidations {
            // A group this peer does not host holds nothing to drop; a key over the limit
            // was never stored.
            // A `match`, not `let else`: older `async-trait` releases (within the manifest's
            // floor) do not rewrite `self` inside `let else`.
            #[allow(clippy::manual_let_else, reason = "see above")]
            let hosted = match self.peer_set.hosted(&invalidation.group) {
                Some(hosted) => hosted,
                None => continue,
            };
            if invalidation.all {
                // One scan per group and batch, however many `clear`s it carries.
                if !cleared.contains(&invalidation.group.as_str()) {
                    cleared.push(&invalidation.group);
                    hosted.invalidated(None);
                }
            } else if node.check_key(&invalidation.key).is_ok() {
                hosted.invalidated(Some(&invalidation.key));
            }
        }
        self.peer_set
            .counters()
            .invalidations_received
            .add(invalidations.len() as u64);
        if let Some(client) = node.routing().client_of(&owner) {
            client.lease().applied_batch(owner_epoch, after, last);
        }
        Ok(Response::new(InvalidateResponse {}))
    }

    async fn lease(
        &self,
        request: Request<LeaseRequest>,
    ) -> Result<Response<LeaseResponse>, Status> {
        let (owner_epoch, owner_sequence) = self.peer_set.node().invalidations().position();
        Ok(Response::new(LeaseResponse {
            owner_epoch,
            owner_sequence,
            tells_asker: self.tells(&request.get_ref().asker),
        }))
    }
}

/// Most keys in one `Remove` request (`remove_many` sends more in several).
pub(crate) const MAX_KEYS_PER_REMOVE: usize = 1024;

/// What an entry has left to live, for a reply: rounded down, since a copy must not outlive
/// the entry.
fn expires_in_ms(left: Option<Duration>) -> Option<u64> {
    left.map(|left| u64::try_from(left.as_millis()).unwrap_or(u64::MAX))
}

/// The answer to a write: the members that did not acknowledge it.
fn written(unacknowledged: &[GroupcachePeer]) -> WriteResponse {
    WriteResponse {
        unacknowledged: unacknowledged.iter().map(ToString::to_string).collect(),
    }
}

/// Whether a request is a write, whose message may carry a value (see
/// [`Config::max_write_size`]); reads are held to the smaller read limit.
fn is_write(path: &str) -> bool {
    path.strip_prefix("/groupcache.v2.Groupcache/")
        .is_some_and(|method| matches!(method, "Set" | "Remove" | "Invalidate"))
}

/// Whether a request is a `GetMany`, a read of many keys held to its own limit (see
/// [`Config::max_batch_request_size`]).
fn is_batch(path: &str) -> bool {
    path == "/groupcache.v2.Groupcache/GetMany"
}

/// The peer-to-peer gRPC service of one [`Groupcache`](crate::Groupcache) and every group it
/// hosts, from [`Groupcache::grpc_service`](crate::Groupcache::grpc_service).
///
/// Mount it once in your tonic server next to your own services: requests name their group. The library never binds a port:
/// your server owns the listener, TLS, layers and shutdown. Message size limits are already set:
/// a request may carry a key of the maximum key length (so a server never buffers a large
/// request), a reply a value of the maximum value size.
///
/// Serve it on connections with `TCP_NODELAY` on: a listener from [`bind`](crate::bind) or
/// [`incoming`](crate::incoming), or tonic's `Server::serve(addr)`;
/// [`Groupcache::configure_server`](crate::Groupcache::configure_server) applies the other
/// settings peer traffic needs. tonic's
/// `serve_with_incoming` ignores `Server::tcp_nodelay`, and without it replies of a few hundred
/// bytes to a few KiB wait ~40 ms on Nagle's algorithm.
///
/// Every request must arrive in full and be answered within the peer timeout
/// ([`GroupcacheBuilder::peer_timeout`](crate::GroupcacheBuilder::peer_timeout)), whatever server
/// hosts the service: a stream that sends its headers and never its body is answered with
/// `DeadlineExceeded` and closed then. A `GetMany` may be as large as
/// [`MAX_BATCH_KEYS`](crate::defaults::MAX_BATCH_KEYS) reads. A request that tonic refuses
/// before it reaches the handler (over the request size limit, or not decodable, such as a key
/// that is not UTF-8) gets `InvalidArgument`.
pub struct GroupcacheService {
    /// Reads, with the read request limit; `writes`, the same handler with the write limit;
    /// `batches`, with the `GetMany` limit.
    server: GroupcacheServer<PeerHandler>,
    writes: GroupcacheServer<PeerHandler>,
    batches: GroupcacheServer<PeerHandler>,
    /// Checked before a request reaches the handler, or even has its body read.
    gate: Arc<Gate>,
}

/// What every request must show before any work is done for it.
#[derive(Debug)]
struct Gate {
    /// The peer token check, as [`PeerTokenLayer`](super::PeerTokenLayer) applies it too.
    token: TokenCheck,
    /// Where timeouts are counted: the peer set's counters.
    counters: Arc<PeerSetCounters>,
    /// How long a request may take to arrive and be answered: the peer timeout.
    deadline: Duration,
}

impl Gate {
    /// The response refusing `request`, or `None` to let it through.
    fn refuse<B>(&self, request: &http::Request<B>) -> Option<http::Response<Body>> {
        let content_type = request.headers().get(http::header::CONTENT_TYPE);
        if !content_type.is_some_and(|v| is_grpc(v.as_bytes())) {
            // As the gRPC spec asks: a plain HTTP status, so that no HTTP client mistakes it for
            // a success, plus a gRPC status for gRPC clients.
            let mut response = Status::invalid_argument(
                "content-type must be application/grpc: this is a groupcache peer's gRPC service",
            )
            .into_http::<Body>();
            *response.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
            return Some(response);
        }
        self.token.refuse(request)
    }
}

impl Gate {
    /// The answer to a request that was still unanswered at the deadline.
    fn timed_out(&self) -> http::Response<Body> {
        self.counters.timed_out_requests.bump();
        tracing::debug!(deadline = ?self.deadline, "a peer request timed out on this peer");
        Status::deadline_exceeded(format!(
            "the request did not arrive and get an answer within this peer's peer_timeout \
             of {:?}",
            self.deadline
        ))
        .into_http()
    }
}

impl GroupcacheService {
    pub(crate) fn new(peer_set: Arc<PeerSet>) -> Self {
        let config = peer_set.node().config();
        let requests = config.max_request_size();
        let write_requests = config.max_write_size();
        let batch_requests = config.max_batch_request_size();
        let replies = config.max_reply_size();
        let gate = Arc::new(Gate {
            token: peer_set.token_check(),
            counters: Arc::clone(peer_set.counters()),
            deadline: config.peer_timeout,
        });
        let handler = Arc::new(PeerHandler { peer_set });
        let server = GroupcacheServer::from_arc(Arc::clone(&handler))
            .max_decoding_message_size(requests)
            .max_encoding_message_size(replies);
        let writes = GroupcacheServer::from_arc(Arc::clone(&handler))
            .max_decoding_message_size(write_requests)
            .max_encoding_message_size(replies);
        let batches = GroupcacheServer::from_arc(handler)
            .max_decoding_message_size(batch_requests)
            .max_encoding_message_size(replies);
        GroupcacheService {
            server,
            writes,
            batches,
            gate,
        }
    }
}

impl Clone for GroupcacheService {
    fn clone(&self) -> Self {
        GroupcacheService {
            server: self.server.clone(),
            writes: self.writes.clone(),
            batches: self.batches.clone(),
            gate: Arc::clone(&self.gate),
        }
    }
}

impl std::fmt::Debug for GroupcacheService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupcacheService").finish_non_exhaustive()
    }
}

impl NamedService for GroupcacheService {
    const NAME: &'static str = "groupcache.v2.Groupcache";
}

impl tower_service::Service<http::Request<Body>> for GroupcacheService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::<http::Request<Body>>::poll_ready(&mut self.server, cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if let Some(refusal) = self.gate.refuse(&request) {
            return Box::pin(std::future::ready(Ok(refusal)));
        }
        let path = request.uri().path();
        let answer = if is_write(path) {
            self.writes.call(request)
        } else if is_batch(path) {
            self.batches.call(request)
        } else {
            self.server.call(request)
        };
        let mut unanswered = Unanswered {
            gate: Arc::clone(&self.gate),
            started: tokio::time::Instant::now(),
            settled: false,
        };
        Box::pin(async move {
            // Covers reading the request body too: a stream whose body never comes is answered
            // and closed at the deadline instead of being held open for ever.
            let deadline = unanswered.gate.deadline;
            let answered = tokio::time::timeout(deadline, answer).await;
            unanswered.settled = true;
            match answered {
                Ok(Ok(mut response)) => {
                    mark_refused_request(&mut response);
                    Ok(response)
                }
                Ok(Err(never)) => match never {},
                Err(_) => Ok(unanswered.gate.timed_out()),
            }
        })
    }
}

/// Counts a request dropped unanswered at its deadline: tonic's own `grpc-timeout` layer
/// (an asking peer sends its peer timeout) or the asker's reset may end it a moment before
/// this service's timer does, and it was still not answered in time.
struct Unanswered {
    gate: Arc<Gate>,
    started: tokio::time::Instant,
    /// Set once the request has an answer, or was answered as timed out.
    settled: bool,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if !self.settled && self.started.elapsed() >= self.gate.deadline {
            self.gate.counters.timed_out_requests.bump();
        }
    }
}

/// Whether a content type is gRPC's: `application/grpc`, optionally `+proto` or parameters.
/// Not gRPC-web, which this service does not speak.
fn is_grpc(content_type: &[u8]) -> bool {
    match content_type.strip_prefix(b"application/grpc") {
        Some(rest) => rest.is_empty() || rest.starts_with(b"+proto") || rest.starts_with(b";"),
        None => false,
    }
}

/// Largest header block a peer's request may carry: 16 KiB (a peer token is at most 4 KiB).
const MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;

/// Applies the settings peer traffic needs to `server`; see
/// [`Groupcache::configure_server`](crate::Groupcache::configure_server).
pub(crate) fn configure(config: &Config, server: Server) -> Result<Server, Error> {
    let server = server
        .tcp_nodelay(true)
        .max_concurrent_streams(config.max_concurrent_streams)
        .http2_max_header_list_size(MAX_HEADER_LIST_SIZE)
        .http2_keepalive_interval(Some(KEEP_ALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEP_ALIVE_TIMEOUT));
    #[cfg(feature = "tls")]
    if let Some(tls) = &config.tls {
        crate::tls::ensure_crypto_provider();
        let Some(tls) = tls.server_config() else {
            return Err(Error::new(
                ErrorKind::Config,
                "this peer has TLS settings but no certificate to serve with; \
                 add one with PeerTls::identity",
            ));
        };
        return server.tls_config(tls).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot set up the peer service's TLS: {e}"),
            )
            .with_source(e.into())
        });
    }
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_grpc_content_types_pass() {
        for ok in [
            "application/grpc",
            "application/grpc+proto",
            "application/grpc;charset=utf-8",
        ] {
            assert!(is_grpc(ok.as_bytes()), "{ok}");
        }
        for refused in [
            "application/grpc-web",
            "application/grpc+json",
            "application/grpcx",
            "application/json",
            "",
        ] {
            assert!(!is_grpc(refused.as_bytes()), "{refused}");
        }
    }

    #[test]
    fn service_name_matches_the_proto() {
        assert_eq!(
            <GroupcacheService as NamedService>::NAME,
            <GroupcacheServer<PeerHandler> as NamedService>::NAME
        );
    }
}
