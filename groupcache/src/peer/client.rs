//! Asking the owner: one reused tonic channel per peer, every call under a deadline.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use groupcache_pb::v2::groupcache_client::GroupcacheClient;
use groupcache_pb::v2::{
    DescribeRequest, DescribeResponse, GetRequest, GetResponse, InvalidateRequest, LeaseRequest,
    RemoveRequest, SetRequest, WriteResponse,
};
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;
use tracing::field::Empty;

use super::PeerConnector;
use super::breaker::{Breaker, BreakerConfig, PeerHealth, Transition};
use super::latency::LatencyWindow;
use super::lease::{LeaseTag, OwnerLease};
use super::status::{PeerFailure, from_status};
use super::token::{AUTHORIZATION, PeerToken};
use crate::log_throttle::LogThrottle;
use crate::stats::PeerSetCounters;
use crate::telemetry::{MetricNames, PeerResult, PeerTelemetry};
use crate::trace::TraceContext;
use crate::{Error, ErrorKind, GroupcachePeer};

mod batch;
mod coalesce;

pub(crate) use self::batch::{KeyReply, split_into_batches};
pub(crate) use self::coalesce::CoalesceConfig;
use self::coalesce::Coalescer;

/// Interval of HTTP/2 pings on every peer connection, busy or idle.
pub(crate) const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// A connection whose ping is unanswered this long is closed and reopened on the next request.
pub(crate) const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest HTTP/2 DATA frame this peer accepts (the protocol allows 16 KiB to 16 MiB).
const MAX_FRAME_SIZE: u32 = 256 * 1024;

/// Settings every peer channel is opened with.
#[derive(Debug, Clone)]
pub(crate) struct ChannelConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    /// Largest request sent: the maximum key length plus framing.
    pub(crate) max_request_size: usize,
    /// Largest reply accepted: the maximum value size plus framing.
    pub(crate) max_reply_size: usize,
    /// Sent with every request, if set.
    pub(crate) token: Option<PeerToken>,
    /// Connect over `https` with these settings, if set.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::security::PeerTls>,
    /// Where request latencies are recorded (feature `metrics`), if exported.
    pub(crate) telemetry: Option<std::sync::Arc<MetricNames>>,
    /// When a peer counts as out, and for how long.
    pub(crate) breaker: BreakerConfig,
    /// Where breaker transitions are counted.
    pub(crate) counters: std::sync::Arc<PeerSetCounters>,
    /// The percentile of a peer's recent answer times after which a get asks the key's
    /// substitute too, if hedging is on.
    pub(crate) hedge_percentile: Option<f64>,
    /// How long hot copies of a peer's values are served after it last answered.
    pub(crate) lease_bound: Duration,
    /// This peer, as the peers it asks name it: sent with gets and lease renewals, so that an
    /// owner can say whether its invalidations reach this peer.
    pub(crate) me: GroupcachePeer,
    /// Whether and how concurrent gets for one owner share requests (`None`: off).
    pub(crate) coalesce: Option<CoalesceConfig>,
}

/// A value a peer sent, with what a copy of it may keep.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) value: Bytes,
    /// What the peer's own entry had left to live, if it expires.
    pub(crate) expires_in: Option<Duration>,
    /// The lease a hot copy of the value is served under; `None`: keep no copy.
    pub(crate) lease: Option<LeaseTag>,
    /// The owner marked the key hot: asked for often lately (see `key_rates.rs`).
    pub(crate) hot: bool,
    /// The value came in a request shared with other gets (coalescing).
    pub(crate) coalesced: bool,
}

/// What the owner's entry had left when it answered (`expires_in_ms`), counted from when this
/// peer asked at `sent_at` (it answered later than that): a copy never outlives the entry. A
/// peer's figure is not trusted past a day.
pub(crate) fn expires_in(
    expires_in_ms: Option<u64>,
    sent_at: tokio::time::Instant,
) -> Option<Duration> {
    expires_in_ms.map(|ms| {
        Duration::from_millis(ms.min(crate::cache::MAX_TTL_MS)).saturating_sub(sent_at.elapsed())
    })
}

/// One write in a `Remove` request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Removal<'a> {
    Keys(&'a [String]),
    /// Every key of the group.
    All,
    /// As the keys' new owner, to their previous owner (no broadcast).
    FromNewOwner(&'a str),
}

impl ChannelConfig {
    /// The HTTP/2 stream window: the largest reply, at least hyper's 2 MiB default, at most
    /// 64 MiB.
    fn stream_window(&self) -> u32 {
        u32::try_from(self.max_reply_size)
            .unwrap_or(u32::MAX)
            .clamp(2 << 20, 64 << 20)
    }

    /// The endpoint of `peer` with every setting but the connector's.
    fn endpoint(&self, peer: &GroupcachePeer) -> Result<Endpoint, Error> {
        let invalid = |e: tonic::transport::Error| {
            Error::new(
                ErrorKind::Connect,
                format!("cannot set up the peer endpoint: {e}"),
            )
            .with_peer(peer)
            .with_source(e.into())
        };
        #[cfg(feature = "tls")]
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        #[cfg(not(feature = "tls"))]
        let scheme = "http";
        let endpoint = Endpoint::from_shared(format!("{scheme}://{}", peer.addr()))
            .map_err(invalid)?
            .connect_timeout(self.connect_timeout)
            // No `.timeout(..)`: every call runs under `PeerClient::deadline_of`, which also
            // covers waiting for a connection; a second timer per request would only cost.
            // Without it, a 10 KiB reply can wait ~40 ms on Nagle's algorithm.
            .tcp_nodelay(true)
            // A connection that silently stops delivering (a peer gone without a reset, a
            // partition) is only noticed by HTTP/2 pings: until then every request to that peer
            // costs a full peer timeout. Pinging idle connections too bounds that at ~15 s.
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            // hyper's defaults (2 MiB per stream, 5 MiB per connection) make a reply larger
            // than 2 MiB wait a round trip for each window update, and let at most five 1 MiB
            // replies flow at once. A window that fits the largest reply avoids both; tonic
            // still refuses a reply over `max_reply_size`.
            .initial_stream_window_size(self.stream_window())
            .initial_connection_window_size(self.stream_window().saturating_mul(4))
            // Larger DATA frames than HTTP/2's 16 KiB default: fewer frames per large reply.
            .max_frame_size(MAX_FRAME_SIZE);
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return endpoint
                .tls_config(tls.client_config(self.connect_timeout))
                .map_err(invalid);
        }
        Ok(endpoint)
    }
}

/// A client for one peer. Cloning shares the channel (one HTTP/2 connection).
#[derive(Debug, Clone)]
pub(crate) struct PeerClient {
    peer: GroupcachePeer,
    client: GroupcacheClient<Channel>,
    timeout: Duration,
    token: Option<PeerToken>,
    telemetry: Option<std::sync::Arc<PeerTelemetry>>,
    /// Which of this peer's repeated failures are logged: "unreachable" and "refused our
    /// credentials" each get a line, then one per interval (shared by clones).
    unreachable_log: std::sync::Arc<LogThrottle>,
    refused_log: std::sync::Arc<LogThrottle>,
    /// "The owner refused the request as misconfigured" (unknown group, wrong service, ...).
    misconfigured_log: std::sync::Arc<LogThrottle>,
    /// Whether the peer is answering (shared by clones).
    breaker: std::sync::Arc<Breaker>,
    counters: std::sync::Arc<PeerSetCounters>,
    /// Recent answer times, kept only when hedging is on (shared by clones).
    latency: Option<(std::sync::Arc<LatencyWindow>, f64)>,
    /// This peer's lease on that peer's values (shared by clones).
    lease: std::sync::Arc<OwnerLease>,
    /// This peer's own address, as `asker` in gets and lease renewals.
    me: String,
    /// Concurrent gets' shared requests, when coalescing is on (shared by clones).
    coalescer: Option<std::sync::Arc<Coalescer>>,
}

impl PeerClient {
    pub(crate) fn new(
        peer: GroupcachePeer,
        config: &ChannelConfig,
        connector: &dyn PeerConnector,
    ) -> Result<Self, Error> {
        let endpoint = config.endpoint(&peer)?;
        let channel = connector.connect(&peer, endpoint).map_err(|e| {
            Error::new(ErrorKind::Connect, format!("cannot open a channel: {e}"))
                .with_peer(&peer)
                .with_source(e)
        })?;
        let client = GroupcacheClient::new(channel)
            .max_decoding_message_size(config.max_reply_size)
            .max_encoding_message_size(config.max_request_size);
        let telemetry = config
            .telemetry
            .as_ref()
            .map(|t| std::sync::Arc::new(t.peer(&peer)));
        Ok(PeerClient {
            client,
            timeout: config.request_timeout,
            token: config.token.clone(),
            telemetry,
            unreachable_log: std::sync::Arc::default(),
            refused_log: std::sync::Arc::default(),
            misconfigured_log: std::sync::Arc::default(),
            breaker: std::sync::Arc::new(Breaker::new(config.breaker)),
            counters: std::sync::Arc::clone(&config.counters),
            latency: config
                .hedge_percentile
                .map(|p| (std::sync::Arc::default(), p)),
            lease: std::sync::Arc::new(OwnerLease::new(
                peer.clone(),
                config.lease_bound,
                // A batch queued behind one in flight may take two peer timeouts to arrive.
                config.request_timeout.saturating_mul(2),
                std::sync::Arc::clone(&config.counters),
            )),
            me: config.me.to_string(),
            coalescer: config
                .coalesce
                .map(|coalesce| std::sync::Arc::new(Coalescer::new(coalesce))),
            peer,
        })
    }

    /// This client, shared, with its lease able to renew itself through it.
    pub(crate) fn shared(self) -> std::sync::Arc<Self> {
        std::sync::Arc::new_cyclic(|weak| {
            self.lease.renewed_by(weak.clone());
            self
        })
    }

    /// This peer's lease on that peer's values.
    pub(crate) fn lease(&self) -> &std::sync::Arc<OwnerLease> {
        &self.lease
    }

    /// How long a hedged get waits for this peer before it asks the substitute too: the
    /// configured percentile of its recent answer times. `None` when hedging is off or too few
    /// answers were timed yet.
    pub(crate) fn hedge_delay(&self) -> Option<Duration> {
        let (window, percentile) = self.latency.as_ref()?;
        window.percentile(*percentile)
    }

    /// Whether this peer's breaker is open: send it nothing, route its keys to a substitute.
    #[inline]
    pub(crate) fn is_out(&self) -> bool {
        self.breaker.is_open()
    }

    /// What this peer knows of that peer's health.
    pub(crate) fn health(&self) -> PeerHealth {
        self.breaker.health(&self.peer)
    }

    /// Starts the background probe of an open breaker whose cool-down has passed, if there is
    /// a runtime to run it on. Returns at once: no caller waits for a probe.
    pub(crate) fn probe_if_due(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.breaker.probe_due() {
            return;
        }
        // If the task never finishes (its runtime shuts down first), the guard counts the
        // probe as failed: the breaker must not stay probing with no probe running.
        let mut probe = ProbeGuard {
            client: self.clone(),
            finished: false,
        };
        runtime.spawn(async move {
            let result = probe.client.describe(None).await;
            let answered = !matches!(result, Err(PeerFailure::Transport(_)));
            probe.finished = true;
            let transition = probe.client.breaker.probe_finished(answered);
            probe.client.report(transition);
        });
    }

    /// Feeds the breaker one request's result: an answer of any kind proves the peer is
    /// there; a transport failure counts towards opening it.
    fn observe<T>(&self, result: &Result<T, PeerFailure>) {
        match result {
            Ok(_) | Err(PeerFailure::Answer(_)) => self.breaker.record_answer(),
            Err(PeerFailure::Transport(_)) => self.report(self.breaker.record_failure()),
        }
    }

    /// Logs and counts a breaker transition: one line each, never one per request.
    fn report(&self, transition: Transition) {
        match transition {
            Transition::None => {}
            Transition::Opened(cool_down) => {
                self.counters.breaker_opened.bump();
                tracing::warn!(
                    peer = %self.peer,
                    failures = self.breaker.health(&self.peer).consecutive_failures,
                    ?cool_down,
                    "peer not answering: its keys go to substitutes; probing it again after \
                     the cool-down (PeerSetStats::breaker_opened counts each opening)"
                );
            }
            Transition::Closed => {
                self.counters.breaker_closed.bump();
                tracing::info!(peer = %self.peer, "peer answering again: its keys go back to it");
            }
        }
    }

    pub(crate) fn peer(&self) -> &GroupcachePeer {
        &self.peer
    }

    /// Whether to log this failure to reach the peer (see [`LogThrottle::admit`]).
    pub(crate) fn log_unreachable(&self) -> Option<u64> {
        self.unreachable_log.admit()
    }

    /// Whether to log this refusal of our credentials (see [`LogThrottle::admit`]).
    pub(crate) fn log_refused(&self) -> Option<u64> {
        self.refused_log.admit()
    }

    /// Whether to log this answer that means misconfiguration (see [`LogThrottle::admit`]).
    pub(crate) fn log_misconfigured(&self) -> Option<u64> {
        self.misconfigured_log.admit()
    }

    /// Asks the peer for the encoded value of `key` in `group`, as part of the trace
    /// `context`.
    /// `substitute_for` names the key's owner when this peer is asked in its stead; `within`
    /// is what is left of the caller's peer timeout (at most the peer timeout).
    pub(crate) async fn get(
        &self,
        group: &str,
        key: &str,
        substitute_for: Option<&GroupcachePeer>,
        within: Duration,
        context: Option<&TraceContext>,
    ) -> Result<Reply, PeerFailure> {
        let ask = Ask {
            substitute_for,
            held_only: false,
            timeout: within.min(self.timeout),
        };
        let sent_at = tokio::time::Instant::now();
        let result = self.ask(group, key, ask, context).await;
        self.observe(&result);
        let reply = result?;
        let lease = self.copy_lease(
            reply.tells_asker,
            reply.owner_epoch,
            reply.owner_sequence,
            sent_at,
        );
        Ok(Reply {
            expires_in: expires_in(reply.expires_in_ms, sent_at),
            lease,
            value: reply.value,
            hot: reply.hot,
            coalesced: false,
        })
    }

    /// The lease a copy of an answer sent at `sent_at` is kept under, from the owner's
    /// position: `None` (no copy) unless the owner sends its invalidations here, since no write
    /// would reach the copy.
    pub(crate) fn copy_lease(
        &self,
        tells_asker: bool,
        owner_epoch: u64,
        owner_sequence: u64,
        sent_at: tokio::time::Instant,
    ) -> Option<LeaseTag> {
        if tells_asker {
            self.lease
                .answered_get(owner_epoch, owner_sequence, sent_at)
        } else {
            None
        }
    }

    /// Asks the peer for the encoded value of `key` only if it holds it, within `timeout`:
    /// `None` if it does not, or does not answer in time (this peer then loads). Not fed to the
    /// breaker: a deadline this short says nothing about whether the peer is out.
    pub(crate) async fn held(&self, group: &str, key: &str, timeout: Duration) -> Option<Bytes> {
        let ask = Ask {
            substitute_for: None,
            held_only: true,
            timeout: timeout.min(self.timeout),
        };
        let span = tracing::debug_span!("groupcache.handoff_request", peer = %self.peer);
        let reply = self
            .ask(group, key, ask, None)
            .instrument(span)
            .await
            .ok()?;
        // Entries with a deadline are not handed over (the new owner would give them a fresh one).
        reply.expires_in_ms.is_none().then_some(reply.value)
    }

    async fn ask(
        &self,
        group: &str,
        key: &str,
        ask: Ask<'_>,
        context: Option<&TraceContext>,
    ) -> Result<GetResponse, PeerFailure> {
        // A handoff ask is no fetch: neither timed with the peer requests nor given their span.
        let started = (!ask.held_only && (self.telemetry.is_some() || self.latency.is_some()))
            .then(Instant::now);
        let span = if ask.held_only {
            tracing::Span::none()
        } else {
            crate::trace::debug_span_if_on!(
                "groupcache.peer_request",
                peer = %self.peer,
                span_id = Empty
            )
        };
        if let Some(context) = context {
            span.record("span_id", context.span_id().as_str());
        }
        let call = retry_refused(key, &self.peer, || {
            let mut client = self.client.clone();
            let mut request = self.request(GetRequest {
                group: group.to_owned(),
                key: key.to_owned(),
                substitute_for: ask
                    .substitute_for
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                held_only: ask.held_only,
                asker: self.me.clone(),
            });
            request.set_timeout(ask.timeout);
            if let Some(context) = context {
                context.inject(request.metadata_mut());
            }
            async move { client.get(request).await }
        });
        let result = match self
            .deadline_of(ask.timeout, group, key, call)
            .instrument(span)
            .await
        {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(from_status(&status, group, key, &self.peer)),
            Err(failure) => Err(failure),
        };
        if let (Some((window, _)), Some(started), Ok(_)) = (&self.latency, started, &result) {
            window.record(started.elapsed());
        }
        if let (Some(telemetry), Some(started)) = (&self.telemetry, started) {
            let outcome = match &result {
                Ok(_) => PeerResult::Ok,
                Err(PeerFailure::Answer(_)) => PeerResult::Answer,
                Err(PeerFailure::Transport(_)) => PeerResult::Transport,
            };
            telemetry.observe(outcome, started.elapsed());
        }
        result
    }

    /// Asks the peer for its view of the cluster.
    pub(crate) async fn describe(
        &self,
        key: Option<&str>,
    ) -> Result<DescribeResponse, PeerFailure> {
        let shown = key.unwrap_or("");
        let call = retry_refused(shown, &self.peer, || {
            let mut client = self.client.clone();
            let request = self.request(DescribeRequest {
                key: key.map(str::to_owned),
            });
            async move { client.describe(request).await }
        });
        let result = match self.deadline("", shown, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(from_status(&status, "", shown, &self.peer)),
            Err(failure) => Err(failure),
        };
        self.observe(&result);
        result
    }

    /// Asks the peer, as the owner of the keys, to remove them (see the proto's `Remove`):
    /// the peers that did not acknowledge its invalidation.
    pub(crate) async fn remove(
        &self,
        group: &str,
        removal: Removal<'_>,
        within: Duration,
    ) -> Result<Vec<GroupcachePeer>, PeerFailure> {
        let (key, keys, clear, from_new_owner) = match removal {
            Removal::Keys([first, rest @ ..]) => (first.clone(), rest.to_vec(), false, false),
            Removal::Keys([]) => return Ok(Vec::new()),
            Removal::All => (String::new(), Vec::new(), true, false),
            Removal::FromNewOwner(key) => (key.to_owned(), Vec::new(), false, true),
        };
        let message = RemoveRequest {
            group: group.to_owned(),
            key,
            from_new_owner,
            keys,
            clear,
        };
        let shown = message.key.clone();
        self.write(
            group,
            &shown,
            within,
            message,
            |mut client, request| async move { client.remove(request).await },
        )
        .await
    }

    /// Asks the peer, as the key's owner, to store an encoded value (see the proto's `Set`).
    pub(crate) async fn set(
        &self,
        group: &str,
        key: &str,
        value: Bytes,
        within: Duration,
    ) -> Result<Vec<GroupcachePeer>, PeerFailure> {
        let message = SetRequest {
            group: group.to_owned(),
            key: key.to_owned(),
            value,
        };
        self.write(
            group,
            key,
            within,
            message,
            |mut client, request| async move { client.set(request).await },
        )
        .await
    }

    /// Sends one write and reads which peers did not acknowledge it.
    async fn write<M: Clone, F, Fut>(
        &self,
        group: &str,
        key: &str,
        within: Duration,
        message: M,
        send: F,
    ) -> Result<Vec<GroupcachePeer>, PeerFailure>
    where
        F: Fn(GroupcacheClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<WriteResponse>, tonic::Status>>,
    {
        let within = within.min(self.timeout);
        let call = retry_refused(key, &self.peer, || {
            let mut request = self.request(message.clone());
            request.set_timeout(within);
            send(self.client.clone(), request)
        });
        let result = match self.deadline_of(within, group, key, call).await {
            Ok(Ok(response)) => Ok(response
                .into_inner()
                .unacknowledged
                .iter()
                // A peer that names what it cannot parse is not trusted to name peers.
                .filter_map(|peer| peer.parse().ok())
                .collect()),
            Ok(Err(status)) => Err(from_status(&status, group, key, &self.peer)),
            Err(failure) => Err(failure),
        };
        self.observe(&result);
        result
    }

    /// Sends the peer one batch of this peer's invalidations.
    pub(crate) async fn invalidate(&self, message: InvalidateRequest) -> Result<(), PeerFailure> {
        let call = retry_refused("", &self.peer, || {
            let mut client = self.client.clone();
            let request = self.request(message.clone());
            async move { client.invalidate(request).await }
        });
        let result = match self.deadline("", "", call).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(from_status(&status, "", "", &self.peer)),
            Err(failure) => Err(failure),
        };
        self.observe(&result);
        result
    }

    /// Asks the peer how far its invalidations have gone: its epoch and last sequence number,
    /// and whether they reach this peer.
    pub(crate) async fn renew_lease(&self) -> Result<(u64, u64, bool), PeerFailure> {
        let call = retry_refused("", &self.peer, || {
            let mut client = self.client.clone();
            let request = self.request(LeaseRequest {
                asker: self.me.clone(),
            });
            async move { client.lease(request).await }
        });
        let result = match self.deadline("", "", call).await {
            Ok(Ok(response)) => {
                let reply = response.into_inner();
                Ok((reply.owner_epoch, reply.owner_sequence, reply.tells_asker))
            }
            Ok(Err(status)) => Err(from_status(&status, "", "", &self.peer)),
            Err(failure) => Err(failure),
        };
        self.observe(&result);
        result
    }

    /// A request with this peer's deadline and token.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert(AUTHORIZATION, token.header().clone());
        }
        request
    }

    /// The one deadline of every call (the endpoint sets none): it covers waiting for the
    /// connection, whatever the connector does, and the request; the `grpc-timeout` header
    /// each request carries tells the peer when to give up on it. A panic while
    /// handling the reply (tonic's status parsing `expect`s well-formed headers) is the peer's
    /// fault, not the loader's: it becomes a transport failure here.
    async fn deadline<T>(
        &self,
        group: &str,
        key: &str,
        call: impl Future<Output = T>,
    ) -> Result<T, PeerFailure> {
        self.deadline_of(self.timeout, group, key, call).await
    }

    /// [`PeerClient::deadline`] with another timeout than the peer timeout.
    async fn deadline_of<T>(
        &self,
        timeout: Duration,
        group: &str,
        key: &str,
        call: impl Future<Output = T>,
    ) -> Result<T, PeerFailure> {
        let failure = |detail: String| {
            let err = Error::new(ErrorKind::Peer, detail);
            let err = if group.is_empty() {
                err
            } else {
                err.with_group(group)
            };
            PeerFailure::Transport(err.with_key(key).with_peer(&self.peer))
        };
        match tokio::time::timeout(timeout, AssertUnwindSafe(call).catch_unwind()).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(panic)) => Err(failure(format!(
                "the peer's reply made the gRPC client panic: {}",
                crate::flight::panic_message(&*panic)
            ))),
            Err(_) => Err(failure(format!("no answer within {timeout:?}"))),
        }
    }
}

/// A probe in flight; a probe dropped before it finished counts as failed.
struct ProbeGuard {
    client: PeerClient,
    finished: bool,
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.client.breaker.probe_finished(false);
        }
    }
}

/// How one `Get` is asked.
#[derive(Debug, Clone, Copy)]
struct Ask<'a> {
    substitute_for: Option<&'a GroupcachePeer>,
    held_only: bool,
    timeout: Duration,
}

/// Sends a request, and sends it once more if the peer reset it with `REFUSED_STREAM`: HTTP/2
/// guarantees such a request was not processed, so a retry is safe. This happens when a
/// request is sent before the peer's connection settings (its stream limit) have been read,
/// which would otherwise cost a needless fallback load.
async fn retry_refused<T, F, Fut>(
    key: &str,
    peer: &GroupcachePeer,
    mut send: F,
) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    match send().await {
        Err(status) if refused_before_processing(&status) => {
            tracing::debug!(key = %key, peer = %peer, "request refused by HTTP/2 flow control; sending it again");
            send().await
        }
        other => other,
    }
}

/// Whether the status comes from an HTTP/2 `REFUSED_STREAM` reset.
fn refused_before_processing(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refused_stream_is_retried() {
        let refused =
            tonic::Status::from_error(Box::new(h2::Error::from(h2::Reason::REFUSED_STREAM)));
        assert!(refused_before_processing(&refused), "{refused:?}");
        let cancelled = tonic::Status::from_error(Box::new(h2::Error::from(h2::Reason::CANCEL)));
        assert!(!refused_before_processing(&cancelled));
        assert!(!refused_before_processing(&tonic::Status::unavailable(
            "down"
        )));
    }
}
