//! Answering peers: the gRPC service the application mounts in its own tonic server.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use groupcache_pb::v1::groupcache_server::{Groupcache as GroupcacheRpc, GroupcacheServer};
use groupcache_pb::v1::{GetRequest, GetResponse, RemoveRequest, RemoveResponse};
use tonic::body::Body;
use tonic::codegen::BoxFuture;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use super::status::to_status;
use crate::handle::Inner;

/// The request handler: validates, then answers from this peer's caches or its loader.
struct PeerHandler<V> {
    inner: Arc<Inner<V>>,
}

#[tonic::async_trait]
impl<V: Clone + Send + Sync + 'static> GroupcacheRpc for PeerHandler<V> {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let key = request.into_inner().key;
        // Rule 6: answer here, from cache or loader, never forward, whatever our ring says.
        let entry = self
            .inner
            .serve_peer(&key)
            .await
            .map_err(|err| to_status(&err))?;
        Ok(Response::new(GetResponse {
            value: entry.encoded.clone(),
        }))
    }

    async fn remove(
        &self,
        request: Request<RemoveRequest>,
    ) -> Result<Response<RemoveResponse>, Status> {
        let key = request.into_inner().key;
        self.inner
            .remove_for_peer(&key)
            .map_err(|err| to_status(&err))?;
        Ok(Response::new(RemoveResponse {}))
    }
}

/// The peer-to-peer gRPC service of one [`Groupcache`](crate::Groupcache), from
/// [`Groupcache::grpc_service`](crate::Groupcache::grpc_service).
///
/// Mount it in your tonic server next to your own services. The library never binds a port:
/// your server owns the listener, TLS, layers and shutdown. Message size limits are already set:
/// a request may carry a key of the maximum key length (so a server never buffers a large
/// request), a reply a value of the maximum value size.
///
/// Serve it with `TCP_NODELAY` on (tonic's `Server::builder().tcp_nodelay(true)`, or
/// `TcpIncoming::with_nodelay`): without it, replies can wait ~40 ms on Nagle's algorithm.
pub struct GroupcacheService<V> {
    server: GroupcacheServer<PeerHandler<V>>,
}

impl<V: Clone + Send + Sync + 'static> GroupcacheService<V> {
    pub(crate) fn new(inner: Arc<Inner<V>>) -> Self {
        let requests = inner.config.max_request_size();
        let replies = inner.config.max_reply_size();
        let server = GroupcacheServer::new(PeerHandler { inner })
            .max_decoding_message_size(requests)
            .max_encoding_message_size(replies);
        GroupcacheService { server }
    }
}

impl<V> Clone for GroupcacheService<V> {
    fn clone(&self) -> Self {
        GroupcacheService {
            server: self.server.clone(),
        }
    }
}

impl<V> std::fmt::Debug for GroupcacheService<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupcacheService").finish_non_exhaustive()
    }
}

impl<V> NamedService for GroupcacheService<V> {
    const NAME: &'static str = "groupcache.v1.Groupcache";
}

impl<V: Clone + Send + Sync + 'static> tower_service::Service<http::Request<Body>>
    for GroupcacheService<V>
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::<http::Request<Body>>::poll_ready(&mut self.server, cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        self.server.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_name_matches_the_proto() {
        assert_eq!(
            <GroupcacheService<()> as NamedService>::NAME,
            <GroupcacheServer<PeerHandler<()>> as NamedService>::NAME
        );
    }
}
