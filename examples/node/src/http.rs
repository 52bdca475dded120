//! The HTTP front: `GET /values/{key}` (the `contents` group), `/meta/{key}` (the `metadata`
//! group), `/stats`, `/debug/ring` and `/debug/owner/{key}` as JSON, and `/metrics` for
//! Prometheus.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use groupcache::trace::TraceContext;
use groupcache::{Error, ErrorKind, Group, Groupcache};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::files::{FileMeta, LoadCount, check_key};

/// What the routes answer from: the peer set, its two groups, and their loaders' counts.
#[derive(Clone)]
pub(crate) struct Node {
    pub(crate) cache: Groupcache,
    pub(crate) contents: Group<Bytes>,
    pub(crate) metadata: Group<FileMeta>,
    /// Calls of the `contents` and the `metadata` loaders on this node.
    pub(crate) loads: [(&'static str, LoadCount); 2],
    pub(crate) prometheus: PrometheusHandle,
}

/// The routes, answering from `node`.
pub(crate) fn routes(node: Node) -> Router {
    Router::new()
        .route("/values/{key}", get(value))
        .route("/meta/{key}", get(meta))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/debug/ring", get(ring))
        .route("/debug/owner/{key}", get(owner))
        .with_state(node)
}

/// Every metric in the Prometheus text format.
async fn metrics(State(node): State<Node>) -> Response {
    // The cache-size gauges are current: the library publishes them on every change.
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

/// A failed `get` as an HTTP answer.
fn get_error(key: &str, err: &Error) -> Response {
    if err.is_not_found() {
        error(StatusCode::NOT_FOUND, format!("no file named {key:?}"))
    } else if err.kind() == ErrorKind::KeyTooLong {
        error(StatusCode::BAD_REQUEST, err.to_string())
    } else {
        error(StatusCode::BAD_GATEWAY, err.to_string())
    }
}

/// The `traceparent` header's trace, if the request has a valid one.
fn trace_of(headers: &HeaderMap) -> Option<TraceContext> {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::parse)
}

/// `get` in the caller's trace, if it sent one: the trace then reaches every peer involved.
async fn traced<V: Clone + Send + Sync + 'static>(
    group: &Group<V>,
    key: &str,
    headers: &HeaderMap,
) -> Result<V, Error> {
    match trace_of(headers) {
        Some(context) => context.scope(group.get(key)).await,
        None => group.get(key).await,
    }
}

/// The contents of file `key` (group `contents`), and which peer owns it.
/// A `traceparent` header joins the request to the caller's trace, on every peer it reaches.
async fn value(State(node): State<Node>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    if let Err(bad) = check_key(&key) {
        return error(StatusCode::BAD_REQUEST, format!("{bad} ({key:?})"));
    }
    let owner = node.contents.owner_of(&key).to_string();
    match traced(&node.contents, &key, &headers).await {
        Ok(contents) => Json(json!({
            "key": key,
            "value": String::from_utf8_lossy(&contents),
            "bytes": contents.len(),
            "owner": owner,
            "served_by": node.cache.me().to_string(),
        }))
        .into_response(),
        Err(err) => get_error(&key, &err),
    }
}

/// The metadata of file `key` (group `metadata`): size, modification time, XXH3 of the
/// contents, which peer owns it and which peer's loader made the record.
async fn meta(State(node): State<Node>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    if let Err(bad) = check_key(&key) {
        return error(StatusCode::BAD_REQUEST, format!("{bad} ({key:?})"));
    }
    let owner = node.metadata.owner_of(&key).to_string();
    match traced(&node.metadata, &key, &headers).await {
        Ok(meta) => {
            let me = node.cache.me().to_string();
            Json(json!({
                "key": key,
                "bytes": meta.bytes,
                "modified_unix": meta.modified_unix,
                "xxh3": format!("{:016x}", meta.xxh3),
                "owner": owner,
                "served_by": me,
                "loaded_here": meta.loaded_by == me,
                "loaded_by": meta.loaded_by,
            }))
            .into_response()
        }
        Err(err) => get_error(&key, &err),
    }
}

/// This node's counters (the peer service's, and each group's with Go groupcache's meanings),
/// its loaders' calls, the membership it routes by and what it knows of each member's health.
async fn stats(State(node): State<Node>) -> Response {
    // Every `PeerSetStats` field under its own name (each group's `Stats` under `groups`), plus
    // what only this node knows: each group's loader calls as `file_loads`, and their sum.
    let mut body = json!(node.cache.stats());
    let mut total = 0;
    for (group, loads) in &node.loads {
        body["groups"][*group]["file_loads"] = json!(loads.get());
        total += loads.get();
    }
    body["file_loads"] = json!(total);
    body["me"] = json!(node.cache.me());
    body["members"] = json!(node.cache.peers());
    body["peer_health"] = json!(node.cache.peer_health());
    Json(body).into_response()
}
