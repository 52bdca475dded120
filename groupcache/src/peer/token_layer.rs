//! [`PeerTokenLayer`]: the peer token check as a tower layer, for services of your own.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use tonic::Status;
use tonic::body::Body;

use super::token::{AUTHORIZATION, AcceptedTokens};
use crate::stats::PeerSetCounters;

/// The check every request to a peer's service passes first: it must carry an accepted
/// [`PeerToken`](crate::security::PeerToken). Shared by [`GroupcacheService`] and
/// [`PeerTokenLayer`].
///
/// [`GroupcacheService`]: crate::peer::GroupcacheService
#[derive(Debug, Clone)]
pub(crate) struct TokenCheck {
    tokens: AcceptedTokens,
    /// Where refusals are counted: the peer set's counters.
    counters: Arc<PeerSetCounters>,
}

impl TokenCheck {
    pub(crate) fn new(tokens: AcceptedTokens, counters: Arc<PeerSetCounters>) -> Self {
        TokenCheck { tokens, counters }
    }

    /// The `Unauthenticated` response refusing `request`, or `None` to let it through.
    pub(crate) fn refuse<B>(&self, request: &http::Request<B>) -> Option<http::Response<Body>> {
        if !self.tokens.is_required() {
            return None;
        }
        let refusal = self
            .tokens
            .check(request.headers().get(AUTHORIZATION))
            .err()?;
        self.counters.unauthenticated_requests.bump();
        let remote = request
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(tonic::transport::server::TcpConnectInfo::remote_addr);
        tracing::debug!(
            remote = ?remote,
            path = %request.uri().path(),
            reason = refusal.message(),
            "refused a peer request"
        );
        Some(Status::unauthenticated(refusal.message()).into_http())
    }
}

/// A tower layer that refuses, with gRPC `Unauthenticated`, every request without one of the
/// peer set's accepted tokens, before the inner service sees it. From
/// [`Groupcache::peer_token_layer`](crate::Groupcache::peer_token_layer).
///
/// The [peer service](crate::Groupcache::grpc_service) already checks tokens itself; put this
/// layer in front of services of your own that only peers should call (an admin service on the
/// same port, say). Refusals count in
/// [`PeerSetStats::unauthenticated_requests`](crate::stats::PeerSetStats::unauthenticated_requests).
/// With no token configured it lets everything through.
///
/// ```
/// # fn run(cache: groupcache::Groupcache) -> Result<(), groupcache::Error> {
/// // Every service of this server then requires the peer token.
/// let server = cache.server_builder()?.layer(cache.peer_token_layer());
/// # let _ = server;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PeerTokenLayer {
    check: TokenCheck,
}

impl PeerTokenLayer {
    pub(crate) fn new(check: TokenCheck) -> Self {
        PeerTokenLayer { check }
    }
}

impl<S> tower_layer::Layer<S> for PeerTokenLayer {
    type Service = RequirePeerToken<S>;

    fn layer(&self, inner: S) -> RequirePeerToken<S> {
        RequirePeerToken {
            inner,
            check: self.check.clone(),
        }
    }
}

/// The service [`PeerTokenLayer`] wraps around yours.
#[derive(Debug, Clone)]
pub struct RequirePeerToken<S> {
    inner: S,
    check: TokenCheck,
}

impl<S, B> tower_service::Service<http::Request<B>> for RequirePeerToken<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<http::Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match self.check.refuse(&request) {
            Some(refusal) => Either::Left(ready(Ok(refusal))),
            None => Either::Right(self.inner.call(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::PeerToken;
    use tower_layer::Layer;
    use tower_service::Service;

    /// An inner service that answers 200 and counts its calls.
    #[derive(Clone, Default)]
    struct Inner(Arc<std::sync::atomic::AtomicU32>);

    impl Service<http::Request<()>> for Inner {
        type Response = http::Response<Body>;
        type Error = std::convert::Infallible;
        type Future = Ready<Result<http::Response<Body>, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ready(Ok(http::Response::new(Body::empty())))
        }
    }

    fn request(authorization: Option<&str>) -> http::Request<()> {
        let mut request = http::Request::new(());
        if let Some(value) = authorization {
            request
                .headers_mut()
                .insert(AUTHORIZATION, http::HeaderValue::from_str(value).unwrap());
        }
        request
    }

    #[tokio::test]
    async fn only_requests_with_an_accepted_token_reach_the_inner_service() {
        let token = PeerToken::new("layer-secret-0123456789").unwrap();
        let counters = Arc::new(PeerSetCounters::default());
        let layer = PeerTokenLayer::new(TokenCheck::new(
            AcceptedTokens::new(vec![token]),
            Arc::clone(&counters),
        ));
        let inner = Inner::default();
        let mut service = layer.layer(inner.clone());

        let ok = service
            .call(request(Some("Bearer layer-secret-0123456789")))
            .await
            .unwrap();
        assert_eq!(ok.status(), http::StatusCode::OK);
        for refused in [None, Some("Bearer wrong"), Some("layer-secret-0123456789")] {
            let response = service.call(request(refused)).await.unwrap();
            let status = Status::from_header_map(response.headers()).expect("a gRPC status");
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{refused:?}");
        }
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(counters.snapshot().unauthenticated_requests, 3);
    }

    #[tokio::test]
    async fn without_a_token_configured_everything_passes() {
        let layer = PeerTokenLayer::new(TokenCheck::new(AcceptedTokens::default(), Arc::default()));
        let inner = Inner::default();
        let mut service = layer.layer(inner.clone());
        let response = service.call(request(None)).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
