//! A groupcache peer running as a pod: it finds the other pods through the EndpointSlices of
//! its headless Service and serves gRPC (for peers) and HTTP (for you) on one port.
//!
//! Configured by the environment, as the Deployment in `k8s/` sets it: `POD_IP` (required),
//! `POD_NAME`, `POD_NAMESPACE` (default `default`), `SERVICE_NAME` (default `groupcache`),
//! `PORT` (default 8080). HTTP: `GET /values/{key}`, `GET /stats`, `GET /healthz`.
//! See this example's README for the walk-through on kind.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use groupcache::{BoxError, DiscoveryDriver, Groupcache, ValueLoader};
use kubernetes_service_discovery::{EndpointSlicePeers, PeerPort};
use serde_json::json;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;

/// A stand-in for a slow database: 50 ms per load, the value names the pod that computed it.
#[derive(Debug)]
struct SlowSource {
    pod: String,
}

#[groupcache::async_trait]
impl ValueLoader for SlowSource {
    type Value = String;

    async fn load(&self, key: &str) -> Result<String, BoxError> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(format!("value of {key}, computed by {}", self.pod))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

async fn run() -> Result<(), Box<dyn Error>> {
    let pod_ip = std::env::var("POD_IP")
        .map_err(|_| "POD_IP is not set (the Deployment sets it from status.podIP)")?;
    let port: u16 = env_or("PORT", "8080")
        .parse()
        .map_err(|e| format!("PORT: {e}"))?;
    let me: SocketAddr = format!("{pod_ip}:{port}")
        .parse()
        .map_err(|e| format!("POD_IP {pod_ip:?}: {e}"))?;
    let pod = env_or("POD_NAME", &pod_ip);
    let namespace = env_or("POD_NAMESPACE", "default");
    let service = env_or("SERVICE_NAME", "groupcache");

    let cache = Groupcache::builder(me, SlowSource { pod }).build();
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("kubernetes client: {e}"))?;
    let peers = EndpointSlicePeers::start(client, &namespace, &service, PeerPort::Number(port));
    let _discovery = DiscoveryDriver::new(cache.clone(), peers)
        .interval(Duration::from_secs(2))
        .spawn();

    let http = Router::new()
        .route("/values/{key}", get(value))
        .route("/stats", get(stats))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(cache.clone());
    let routes = Routes::from(http).add_service(cache.grpc_service());
    let listen = SocketAddr::from(([0, 0, 0, 0], port));
    let incoming = TcpIncoming::bind(listen)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?
        .with_nodelay(Some(true));
    tracing::info!(%me, %namespace, %service, "serving gRPC and HTTP");
    tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn value(State(cache): State<Groupcache<String>>, Path(key): Path<String>) -> Response {
    let owner = cache.owner_of(&key).to_string();
    match cache.get(&key).await {
        Ok(value) => Json(json!({
            "key": key,
            "value": value,
            "owner": owner,
            "served_by": cache.me().to_string(),
        }))
        .into_response(),
        Err(err) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "error": err.to_string() })),
        )
            .into_response(),
    }
}

async fn stats(State(cache): State<Groupcache<String>>) -> Response {
    let s = cache.stats();
    Json(json!({
        "me": cache.me().to_string(),
        "members": cache.peers().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "gets": s.gets,
        "hot_hits": s.hot_hits,
        "main_hits": s.main_hits,
        "local_loads": s.local_loads,
        "peer_loads": s.peer_loads,
        "peer_errors": s.peer_errors,
        "fallback_loads": s.fallback_loads,
        "server_requests": s.server_requests,
    }))
    .into_response()
}
