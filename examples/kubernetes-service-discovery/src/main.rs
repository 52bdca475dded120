//! A groupcache peer running as a pod: it finds the other pods through the EndpointSlices of
//! its headless Service and serves gRPC (for peers) and HTTP (for you) on one port.
//!
//! Configured by the environment, as the Deployment in `k8s/` sets it: `POD_IP` (required),
//! `POD_NAME`, `POD_NAMESPACE` (default `default`), `SERVICE_NAME` (default `groupcache`),
//! `PORT` (default 8080; 0 picks a free one), `GROUPCACHE_PEER_TOKEN` (the shared peer token,
//! from a Secret: peer requests without it are refused; unset, anyone who reaches the port
//! can read and remove cached values), `DRAIN_TIMEOUT_SECONDS` (default 10: on SIGTERM, how
//! long the requests in flight get before the process exits; keep it below the pod's
//! `terminationGracePeriodSeconds`). HTTP: `GET /values/{key}` (the `values` group),
//! `GET /stats` (the peer set's counters, each group's under `groups`), `GET /healthz`.
//! See this example's README for the walk-through on kind.

// How it stops when kubernetes sends SIGTERM: the same code as the node example's (the file is
// shared; each example is a crate of its own).
#[path = "../../node/src/shutdown.rs"]
mod shutdown;

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
use groupcache::discovery::DiscoveryDriver;
use groupcache::security::PeerToken;
use groupcache::{BoxError, Group, Groupcache, ValueLoader};
use kubernetes_service_discovery::{EndpointSlicePeers, PeerPort};
use serde_json::json;
use tonic::service::Routes;

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
        // `kubectl logs` is not a terminal: no colour codes there.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
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

/// The environment variable holding the shared peer token.
const PEER_TOKEN_ENV: &str = "GROUPCACHE_PEER_TOKEN";
/// The value `k8s/secret.yaml` ships with.
const PLACEHOLDER_TOKEN: &str = "replace-me-with-openssl-rand-hex-32";

async fn run() -> Result<(), Box<dyn Error>> {
    let pod_ip: std::net::IpAddr = std::env::var("POD_IP")
        .map_err(|_| "POD_IP is not set (the Deployment sets it from status.podIP)")?
        .parse()
        .map_err(|e| format!("POD_IP: {e}"))?;
    let port: u16 = env_or("PORT", "8080")
        .parse()
        .map_err(|e| format!("PORT: {e}"))?;
    let drain = Duration::from_secs(
        env_or("DRAIN_TIMEOUT_SECONDS", "10")
            .parse()
            .map_err(|e| format!("DRAIN_TIMEOUT_SECONDS: {e}"))?,
    );
    let listen = SocketAddr::from(([0, 0, 0, 0], port));
    let incoming =
        groupcache::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    // With PORT=0, the port the system picked.
    let port = incoming.local_addr()?.port();
    let me = SocketAddr::new(pod_ip, port);
    let pod = env_or("POD_NAME", &pod_ip.to_string());
    let namespace = env_or("POD_NAMESPACE", "default");
    let service = env_or("SERVICE_NAME", "groupcache");

    let mut builder = Groupcache::builder(me);
    let peer_auth = std::env::var_os(PEER_TOKEN_ENV).is_some();
    if peer_auth {
        builder = builder.peer_token(PeerToken::from_env(PEER_TOKEN_ENV)?);
        if std::env::var(PEER_TOKEN_ENV).is_ok_and(|t| t.trim() == PLACEHOLDER_TOKEN) {
            tracing::warn!(
                "{PEER_TOKEN_ENV} is the placeholder of k8s/secret.yaml, known to anyone who \
                 read it: replace the Secret with a random token (openssl rand -hex 32)"
            );
        }
    }
    let cache = builder.build();
    let values = cache.group(GROUP, SlowSource { pod }).build()?;
    // Before serving: from here on SIGTERM is ours to handle (as PID 1 it would be ignored).
    let signal = shutdown::signal().map_err(|e| format!("cannot handle SIGTERM/SIGINT: {e}"))?;
    // The recommended peer server settings on a fresh tonic server (for gRPC and HTTP alike).
    let server = cache.server_builder()?;
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("kubernetes client: {e}"))?;
    let peers = EndpointSlicePeers::start(client, &namespace, &service, PeerPort::Number(port));
    let discovery = DiscoveryDriver::new(cache.clone(), peers)
        .interval(Duration::from_secs(2))
        .spawn();

    let http = Router::new()
        .route("/values/{key}", get(value))
        .route("/stats", get(stats))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Pod {
            cache: cache.clone(),
            values,
        });
    let routes = Routes::from(http).add_service(cache.grpc_service());
    tracing::info!(%me, %namespace, %service, "serving gRPC and HTTP");
    if peer_auth {
        tracing::info!(
            "peer authentication on: peer requests without the token in {PEER_TOKEN_ENV} are \
             refused"
        );
    } else {
        tracing::warn!(
            "peer authentication off: {PEER_TOKEN_ENV} is not set, anyone who can reach port \
             {port} can read and remove cached values"
        );
    }
    let server = server.accept_http1(true).add_routes(routes);
    let stopped = shutdown::serve_until(signal, drain, |stop| {
        server.serve_with_incoming_shutdown(incoming, stop)
    })
    .await?;
    discovery.shutdown().await;
    stopped.log(drain);
    Ok(())
}

/// The name of the one group this example serves.
const GROUP: &str = "values";

/// What the HTTP routes answer from: the peer set and its group.
#[derive(Debug, Clone)]
struct Pod {
    cache: Groupcache,
    values: Group<String>,
}

async fn value(State(pod): State<Pod>, Path(key): Path<String>) -> Response {
    let owner = pod.values.owner_of(&key).to_string();
    match pod.values.get(&key).await {
        Ok(value) => Json(json!({
            "key": key,
            "value": value,
            "owner": owner,
            "served_by": pod.cache.me().to_string(),
        }))
        .into_response(),
        Err(err) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({ "error": err.to_string() })),
        )
            .into_response(),
    }
}

/// Every counter of `PeerSetStats` under its own name (`unauthenticated_requests` among them,
/// the group's `Stats` under `groups.values`), and the membership this pod routes by.
async fn stats(State(Pod { cache, .. }): State<Pod>) -> Response {
    let mut body = json!(cache.stats());
    body["me"] = json!(cache.me().to_string());
    body["members"] = json!(
        cache
            .peers()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    Json(body).into_response()
}
