//! An owner that refuses this peer's credentials: the refusal is returned and counted, never
//! bypassed by a local load (rule 5). The refusal here comes from a tonic interceptor the
//! application put in front of the service, as a user adding their own auth would.

use std::net::SocketAddr;

use groupcache::{ErrorKind, Groupcache};
use groupcache_tests::{CountingLoader, within_limit};
use tonic::service::InterceptorLayer;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Status};

fn refuse_everyone(_: Request<()>) -> Result<Request<()>, Status> {
    Err(Status::unauthenticated("missing or wrong token"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_refusal_is_returned_counted_and_never_bypassed() {
    within_limit(async {
        let loader = CountingLoader::new();
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let owner_addr = incoming.local_addr().unwrap();
        let owner = Groupcache::builder(owner_addr, loader.for_node(1)).build();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .layer(InterceptorLayer::new(refuse_everyone))
                .add_service(owner.grpc_service())
                .serve_with_incoming(incoming),
        );

        let me: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let requester = Groupcache::builder(me, loader.for_node(0)).build();
        requester.set_peers([owner_addr]).await.unwrap();

        let err = requester.get("secret").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err:?}");
        assert_eq!(err.peer().map(|p| p.addr()), Some(owner_addr));
        assert!(err.to_string().contains("same credentials"), "{err}");
        let stats = requester.stats();
        assert_eq!(stats.auth_failures, 1, "counted");
        assert_eq!(stats.peer_errors, 0, "not an outage");
        assert_eq!(stats.fallback_loads, 0, "not bypassed");
        assert_eq!(loader.loads("secret"), 0, "neither peer called the loader");
        server.abort();
    })
    .await;
}
