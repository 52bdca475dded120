//! Following one request across peers: [`TraceContext`] (a W3C `traceparent`), carried from
//! the asking peer to the owner, and [`TraceKeys`], how keys appear in spans.

use std::fmt;
use std::future::Future;

/// The gRPC metadata key a trace context travels in, as in W3C Trace Context.
pub(crate) const TRACEPARENT: &str = "traceparent";

/// Whether any subscriber may enable `debug` spans: the global max-level hint, one relaxed
/// load.
///
/// `debug_span!` costs about 150 instructions even when no subscriber wants it (the callsite's
/// checks, its field values, and where tracing's `log` feature is on, its `log` fallback): as
/// much as the rest of a cache hit. Below `DEBUG`, no subscriber can enable the span, so the
/// spans of every `get` and peer request are built only when this holds. What that skips
/// besides: with tracing's `log` feature and no tracing subscriber at all, those spans' own
/// records to `log` (events still go there).
#[inline]
pub(crate) fn debug_spans_may_be_on() -> bool {
    tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG
}

/// `tracing::debug_span!`, or `Span::none()` (as disabled as a span can be) when no subscriber
/// may enable debug spans ([`debug_spans_may_be_on`]).
macro_rules! debug_span_if_on {
    ($($span:tt)*) => {
        if $crate::trace::debug_spans_may_be_on() {
            tracing::debug_span!($($span)*)
        } else {
            tracing::Span::none()
        }
    };
}
pub(crate) use debug_span_if_on;

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// A W3C trace context: the trace a request belongs to and the span that sent it.
///
/// Every `get` span (`groupcache.get`, at `DEBUG`) records a `trace_id`. A `get` that has to
/// ask the owner sends `traceparent: 00-<trace id>-<span id>-01` with the request, and the
/// owner's `groupcache.serve` span records the same `trace_id` (and the sender's span as
/// `parent_span_id`): filter any peer's logs by one trace id to see a request on every peer it
/// touched.
///
/// The trace id comes from the caller when it runs the `get` inside
/// [`TraceContext::scope`] (for example with the `traceparent` header of the HTTP request it
/// is serving); otherwise each `get` starts a trace of its own.
///
/// ```
/// use groupcache::trace::TraceContext;
///
/// let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let context = TraceContext::parse(incoming).unwrap();
/// assert_eq!(context.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(context.to_string(), incoming);
/// assert!(TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
/// # async fn serve(users: groupcache::Group<String>, context: TraceContext) {
/// // Every peer this get reaches logs the caller's trace id.
/// let value = context.scope(users.get("user-42")).await;
/// # }
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    sampled: bool,
}

impl TraceContext {
    /// A new trace, with random ids.
    #[must_use]
    pub fn new_root() -> Self {
        TraceContext {
            trace_id: nonzero(|| fastrand::u128(..)),
            span_id: nonzero(|| fastrand::u64(..)),
            sampled: true,
        }
    }

    /// Parses a `traceparent` header value (`version-traceid-spanid-flags`, lowercase hex).
    /// `None` if it is malformed or has an all-zero id, as the W3C specification asks.
    #[must_use]
    pub fn parse(traceparent: &str) -> Option<Self> {
        let mut parts = traceparent.trim().split('-');
        let version = parts.next()?;
        let trace_id = parts.next()?;
        let span_id = parts.next()?;
        let flags = parts.next()?;
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        // Version 00 has exactly four parts; later versions may append more. `ff` is invalid.
        if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        if !hex(trace_id, 32) || !hex(span_id, 16) || !hex(flags, 2) {
            return None;
        }
        let context = TraceContext {
            trace_id: u128::from_str_radix(trace_id, 16).ok()?,
            span_id: u64::from_str_radix(span_id, 16).ok()?,
            sampled: u8::from_str_radix(flags, 16).ok()? & 1 == 1,
        };
        (context.trace_id != 0 && context.span_id != 0).then_some(context)
    }

    /// The same trace, with a new span id: what a span of this process sends onward.
    #[must_use]
    pub fn child(&self) -> Self {
        TraceContext {
            span_id: nonzero(|| fastrand::u64(..)),
            ..*self
        }
    }

    /// The trace id, 32 lowercase hex digits.
    #[must_use]
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id, 16 lowercase hex digits.
    #[must_use]
    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// The trace context of the current task, if it runs inside [`scope`](Self::scope).
    #[must_use]
    pub fn current() -> Option<Self> {
        CURRENT.try_with(|context| *context).ok()
    }

    /// Runs `future` with this as the current trace context: the `get`s it makes join this
    /// trace.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }

    /// Writes this context into gRPC metadata as `traceparent`, as the peer client does.
    pub fn inject(&self, metadata: &mut tonic::metadata::MetadataMap) {
        if let Ok(value) = self.to_string().parse() {
            metadata.insert(TRACEPARENT, value);
        }
    }

    /// The context that gRPC metadata carries as `traceparent`, if it is valid, as a peer's
    /// service reads it.
    #[must_use]
    pub fn extract(metadata: &tonic::metadata::MetadataMap) -> Option<Self> {
        metadata
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
    }
}

/// A tonic interceptor that sends the current trace context (a child span of it) with every
/// request, as groupcache's own peer client does, so that calls from clients of your own join
/// the same traces. A service reads it back with [`TraceContext::extract`].
///
/// ```
/// use groupcache::trace::{PropagateTrace, TraceContext};
/// use tonic::service::Interceptor;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let caller = TraceContext::new_root();
/// let sent = caller
///     .scope(async { PropagateTrace.call(tonic::Request::new(())).unwrap() })
///     .await;
/// let received = TraceContext::extract(sent.metadata()).unwrap();
/// assert_eq!(received.trace_id(), caller.trace_id());
/// assert_ne!(received.span_id(), caller.span_id(), "a child span");
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagateTrace;

impl tonic::service::Interceptor for PropagateTrace {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(context) = TraceContext::current() {
            context.child().inject(request.metadata_mut());
        }
        Ok(request)
    }
}

/// A tower layer for a server of your own: every request carrying a valid `traceparent` header
/// is handled inside that trace context ([`TraceContext::scope`]), so that the `get`s its
/// handler makes join the caller's trace, on this peer and on every owner they reach. From
/// [`Groupcache::trace_layer`](crate::Groupcache::trace_layer) or [`TraceLayer::new`]. A
/// request without one is handled as before (each `get` then starts a trace of its own).
///
/// ```
/// # fn run(cache: groupcache::Groupcache) -> Result<(), groupcache::Error> {
/// let server = cache
///     .server_builder()?
///     .layer(groupcache::trace::TraceLayer::new());
/// # let _ = server;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl TraceLayer {
    /// The layer.
    #[must_use]
    pub fn new() -> Self {
        TraceLayer
    }
}

impl<S> tower_layer::Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> TraceService<S> {
        TraceService { inner }
    }
}

/// The service [`TraceLayer`] wraps around yours.
#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
}

impl<S, B> tower_service::Service<http::Request<B>> for TraceService<S>
where
    S: tower_service::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures_util::future::Either<
        S::Future,
        futures_util::future::BoxFuture<'static, Result<S::Response, S::Error>>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let context = request
            .headers()
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceContext::parse);
        let answer = self.inner.call(request);
        match context {
            Some(context) => futures_util::future::Either::Right(Box::pin(context.scope(answer))),
            None => futures_util::future::Either::Left(answer),
        }
    }
}

/// Draws until the id is not zero (an all-zero id is invalid).
fn nonzero<T: PartialEq + Default>(mut draw: impl FnMut() -> T) -> T {
    loop {
        let id = draw();
        if id != T::default() {
            return id;
        }
    }
}

impl fmt::Display for TraceContext {
    /// The `traceparent` header value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({self})")
    }
}

/// How keys appear in spans and logs. Keys can be personal data (user ids, emails), so the
/// default is a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TraceKeys {
    /// The XXH3-64 hash of the key, 16 hex digits: enough to correlate, not to read.
    #[default]
    Hashed,
    /// The key as it is.
    Plain,
    /// Not at all.
    Omitted,
}

impl TraceKeys {
    /// The key as a span records it, or `None` to record nothing.
    pub(crate) fn show(self, key: &str) -> Option<String> {
        match self {
            TraceKeys::Hashed => Some(format!(
                "{:016x}",
                xxhash_rust::xxh3::xxh3_64(key.as_bytes())
            )),
            TraceKeys::Plain => Some(key.to_owned()),
            TraceKeys::Omitted => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_malformed_values() {
        let root = TraceContext::new_root();
        assert_eq!(TraceContext::parse(&root.to_string()), Some(root));
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.span_id(), root.span_id());
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
        // A later version may carry more fields.
        assert!(
            TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some()
        );
    }

    #[test]
    fn keys_are_hashed_by_default() {
        assert_eq!(TraceKeys::default().show("user-42").unwrap().len(), 16);
        assert_ne!(TraceKeys::Hashed.show("user-42").unwrap(), "user-42");
        assert_eq!(TraceKeys::Plain.show("user-42").unwrap(), "user-42");
        assert_eq!(TraceKeys::Omitted.show("user-42"), None);
    }

    #[tokio::test]
    async fn scope_sets_the_current_context() {
        assert_eq!(TraceContext::current(), None);
        let context = TraceContext::new_root();
        let seen = context.scope(async { TraceContext::current() }).await;
        assert_eq!(seen, Some(context));
    }

    #[tokio::test]
    async fn the_trace_layer_runs_each_request_in_the_trace_it_carries() {
        use tower_layer::Layer;
        use tower_service::Service;

        let inner = tower_service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(TraceContext::current().map(|c| c.trace_id()))
        });
        let mut service = TraceLayer::new().layer(inner);
        let caller = TraceContext::new_root();
        let traced = http::Request::builder()
            .header(TRACEPARENT, caller.to_string())
            .body(())
            .unwrap();
        assert_eq!(service.call(traced).await.unwrap(), Some(caller.trace_id()));
        let untraced = http::Request::new(());
        assert_eq!(service.call(untraced).await.unwrap(), None);
        let garbage = http::Request::builder()
            .header(TRACEPARENT, "00-not-a-trace")
            .body(())
            .unwrap();
        assert_eq!(service.call(garbage).await.unwrap(), None);
    }

    /// A service from a closure (tower's `service_fn`, without the dependency).
    fn tower_service_fn<F, Fut, T, E>(f: F) -> FnService<F>
    where
        F: FnMut(http::Request<()>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        FnService(f)
    }

    struct FnService<F>(F);

    impl<F, Fut, T, E> tower_service::Service<http::Request<()>> for FnService<F>
    where
        F: FnMut(http::Request<()>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        type Response = T;
        type Error = E;
        type Future = Fut;

        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), E>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<()>) -> Fut {
            (self.0)(request)
        }
    }
}
