//! The HTTP front: `GET /values/{key}`, `/stats`, `/debug/ring` and `/debug/owner/{key}` as
//! JSON, and `/metrics` for Prometheus.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use groupcache::{ErrorKind, Groupcache, TraceContext};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::files::{FileLoader, FileValue, check_key};

#[derive(Clone)]
struct Node {
    cache: Groupcache<FileValue>,
    loader: FileLoader,
    prometheus: PrometheusHandle,
}

/// The routes, answering from `cache`; `loader` provides the read count, `prometheus` the
/// metrics page.
pub(crate) fn routes(
    cache: Groupcache<FileValue>,
    loader: FileLoader,
    prometheus: PrometheusHandle,
) -> Router {
    Router::new()
        .route("/values/{key}", get(value))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/debug/ring", get(ring))
        .route("/debug/owner/{key}", get(owner))
        .with_state(Node {
            cache,
            loader,
            prometheus,
        })
}

/// Every metric in the Prometheus text format.
async fn metrics(State(node): State<Node>) -> Response {
    // Refreshes the cache-size gauges.
    node.cache.stats();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        node.prometheus.render(),
    )
        .into_response()
}

/// This node's view of the ring: members, virtual nodes, counters.
async fn ring(State(node): State<Node>) -> Response {
    Json(node.cache.describe(None)).into_response()
}

/// Who owns `key`, according to this node and to every member it knows (asked with the
/// `Describe` RPC): a disagreement shows peers with different member lists.
async fn owner(State(node): State<Node>, Path(key): Path<String>) -> Response {
    let mine = node.cache.describe(Some(&key));
    let mut views = serde_json::Map::new();
    for peer in &mine.peers {
        let view = match node.cache.describe_peer(peer, Some(&key)).await {
            Ok(view) => json!(view.owner),
            Err(err) => json!({ "error": err.to_string() }),
        };
        views.insert(peer.to_string(), view);
    }
    Json(json!({
        "key": key,
        "owner": mine.owner,
        "me": mine.me,
        "views": views,
    }))
    .into_response()
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The value of `key`, which peer owns it, and which peer read it from disk.
/// A `traceparent` header joins the request to the caller's trace, on every peer it reaches.
async fn value(State(node): State<Node>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    if let Err(bad) = check_key(&key) {
        return error(StatusCode::BAD_REQUEST, format!("{bad} ({key:?})"));
    }
    let owner = node.cache.owner_of(&key).to_string();
    let context = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse);
    let found = match context {
        Some(context) => context.scope(node.cache.get(&key)).await,
        None => node.cache.get(&key).await,
    };
    match found {
        Ok(value) => Json(json!({
            "key": key,
            "value": String::from_utf8_lossy(&value.contents),
            "bytes": value.contents.len(),
            "owner": owner,
            "served_by": node.cache.me().to_string(),
            "loaded_by": value.loaded_by,
            "loaded_here": value.loaded_by == node.cache.me().to_string(),
        }))
        .into_response(),
        Err(err) if err.is_not_found() => {
            error(StatusCode::NOT_FOUND, format!("no file named {key:?}"))
        }
        Err(err) if err.kind() == ErrorKind::KeyTooLong => {
            error(StatusCode::BAD_REQUEST, err.to_string())
        }
        Err(err) => error(StatusCode::BAD_GATEWAY, err.to_string()),
    }
}

/// This node's counters (Go groupcache's, with their Go meanings), its file reads and the
/// membership it routes by.
async fn stats(State(node): State<Node>) -> Response {
    // Every `Stats` field under its own name, plus what only this node knows.
    let mut body = json!(node.cache.stats());
    body["me"] = json!(node.cache.me());
    body["members"] = json!(node.cache.peers());
    body["file_loads"] = json!(node.loader.loads());
    Json(body).into_response()
}
