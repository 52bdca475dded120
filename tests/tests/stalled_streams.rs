//! Streams that send their headers and never their body are answered and closed at the peer
//! timeout, on a server set up as the README's quick start sets it up.
//!
//! Regression test for issue 10, item 3: 10 connections x 1,000 such streams were all held
//! open for as long as the client liked (RSS 11 -> 126 MiB, never closed). Its own test
//! binary, so that the task count and the memory figures it prints are this test's alone.
//! The connections' own limit (`max_concurrent_streams`, 1024 by default) bounds how many
//! streams each may hold at once; the peer timeout bounds for how long.

use std::time::{Duration, Instant};

use bytes::Bytes;
use groupcache::{BoxError, Groupcache, ValueLoader};
use groupcache_tests::rss::{mib, resident_bytes};
use groupcache_tests::{start_like_the_quick_start, wait_until, within_limit};
use http_body_util::StreamBody;
use tonic::body::Body;
use tonic::transport::Channel;
use tower::ServiceExt;

/// Connections and stalled streams on each: 4 x 500 by default, which two busy cores answer
/// well within the slack in a debug build. `GROUPCACHE_STALLED_STREAMS=10x1000` (the issue's
/// figure; run it with `--release`) measures more.
fn shape() -> (usize, usize) {
    let Ok(shape) = std::env::var("GROUPCACHE_STALLED_STREAMS") else {
        return (4, 500);
    };
    let parsed = shape
        .split_once('x')
        .and_then(|(c, s)| Some((c.parse().ok()?, s.parse().ok()?)));
    parsed.expect("GROUPCACHE_STALLED_STREAMS is CONNECTIONSxSTREAMS, e.g. 10x1000")
}

struct Database;

#[groupcache::async_trait]
impl ValueLoader for Database {
    type Value = String;

    async fn load(&self, key: &str) -> Result<String, BoxError> {
        Ok(format!("row for {key}"))
    }
}

/// A `Get` whose body never comes: the headers go out, then nothing.
fn stalled_get() -> http::Request<Body> {
    let never = futures_util::stream::pending::<Result<http_body::Frame<Bytes>, tonic::Status>>();
    http::Request::builder()
        .method("POST")
        .uri("/groupcache.v1.Groupcache/Get")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::new(StreamBody::new(never)))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_that_never_send_a_body_are_closed_at_the_peer_timeout() {
    within_limit(async {
        // The quick start's server setup, with the default peer timeout (2 s).
        let cache = start_like_the_quick_start(1, |me| Groupcache::builder(me, Database).build())
            .await
            .remove(0);
        let me = cache.addr();
        let deadline = groupcache::DEFAULT_PEER_TIMEOUT;

        let (connections, streams_per_connection) = shape();
        let mut channels = Vec::new();
        for _ in 0..connections {
            let channel = Channel::from_shared(format!("http://{me}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            channels.push(channel);
        }
        let runtime = tokio::runtime::Handle::current().metrics();
        let idle_tasks = runtime.num_alive_tasks();
        let rss_before = resident_bytes();

        let mut answers = tokio::task::JoinSet::new();
        for channel in &channels {
            for _ in 0..streams_per_connection {
                let channel = channel.clone();
                answers.spawn(async move {
                    let response = channel.oneshot(stalled_get()).await.expect("a response");
                    (
                        response.headers().get("grpc-status").cloned(),
                        Instant::now(),
                    )
                });
            }
        }
        let total = connections * streams_per_connection;
        // The fault is real: the server holds a task per open stream while it waits.
        wait_until("the server holds every stalled stream", || {
            runtime.num_alive_tasks() >= idle_tasks + 2 * total
        })
        .await;
        let all_held = Instant::now();
        let rss_held = resident_bytes();

        let mut last_answer = all_held;
        while let Some(answer) = answers.join_next().await {
            let (status, at) = answer.unwrap();
            assert_eq!(
                status.as_ref().map(|s| s.as_bytes()),
                Some(b"4".as_slice()),
                "DeadlineExceeded"
            );
            last_answer = last_answer.max(at);
        }
        // Within the bound: every stream was open by `all_held`, so each is answered by the
        // peer timeout after that, plus slack for answering them all on two busy cores.
        let slowest = last_answer - all_held;
        assert!(
            slowest < deadline + Duration::from_secs(3),
            "the last stalled stream was answered {slowest:?} after all were open"
        );
        assert_eq!(cache.stats().timed_out_requests, total as u64);
        // Every stream's task on the server is gone, and with it what it held. (A connection
        // may briefly run a housekeeping task of its own: allow one per connection.)
        let gone = tokio::time::timeout(Duration::from_secs(30), async {
            while runtime.num_alive_tasks() > idle_tasks + connections {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            gone.is_ok(),
            "{} tasks alive, {idle_tasks} before the stalled streams were opened",
            runtime.num_alive_tasks()
        );
        let rss_after = resident_bytes();
        if let (Some(before), Some(held), Some(after)) = (rss_before, rss_held, rss_after) {
            println!(
                "{total} stalled streams: RSS {:.1} MiB before, {:.1} MiB while held, {:.1} MiB \
                 after they were closed; the last closed {slowest:?} after all were open",
                mib(before),
                mib(held),
                mib(after)
            );
        }

        // The connections still serve.
        let mut client =
            groupcache_pb::v1::groupcache_client::GroupcacheClient::new(channels[0].clone());
        let reply = client
            .get(groupcache_pb::v1::GetRequest { key: "k".into() })
            .await
            .expect("a served request after the stalled ones");
        assert!(!reply.into_inner().value.is_empty());
    })
    .await;
}
