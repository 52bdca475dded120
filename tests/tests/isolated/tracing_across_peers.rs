//! One request followed across peers: the owner's `groupcache.serve` span carries the trace id
//! of the asker's `groupcache.get` span, and names the span that sent the request as its
//! parent; both name the group asked. Alone in its process: it installs a global subscriber, so that the node servers'
//! threads report to it too.

use groupcache::trace::{TraceContext, TraceKeys};
use groupcache_tests::own_process::alone_in_this_process;
use groupcache_tests::span_capture::SpanCapture;
use groupcache_tests::{GROUP, TestCluster, within_limit};
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_span_carries_the_callers_trace_id() {
    if !alone_in_this_process(
        module_path!(),
        "the_owner_span_carries_the_callers_trace_id",
    )
    .await
    {
        return;
    }
    let capture = SpanCapture::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with(capture.clone());
    tracing::subscriber::set_global_default(subscriber).unwrap();

    within_limit(async {
        let cluster = TestCluster::start_with(2, |_, b| b.trace_keys(TraceKeys::Plain)).await;
        let key = cluster.key_owned_by(1, "traced");

        // A caller that already belongs to a trace (say, from an incoming HTTP request).
        let incoming =
            TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        let value = incoming.scope(cluster.node(0).get(&key)).await.unwrap();
        assert_eq!(value, cluster.loader.expected(&key));

        let gets = capture.named("groupcache.get");
        let get = gets
            .iter()
            .find(|s| s.field("key") == Some(key.as_str()))
            .expect("the asker's get span");
        assert_eq!(
            get.field("trace_id"),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(get.field("outcome"), Some("peer_load"));
        assert_eq!(get.field("group"), Some(GROUP), "the get names its group");
        assert_eq!(
            get.field("owner"),
            Some(cluster.addr(1).to_string().as_str())
        );

        let requests = capture.named("groupcache.peer_request");
        assert_eq!(requests.len(), 1, "{requests:?}");
        let sent_from = requests[0].field("span_id").expect("the request's span id");

        let serves = capture.named("groupcache.serve");
        assert_eq!(serves.len(), 1, "one request reached the owner: {serves:?}");
        let serve = &serves[0];
        assert_eq!(serve.field("key"), Some(key.as_str()));
        assert_eq!(
            serve.field("group"),
            Some(GROUP),
            "the owner's span names the group asked"
        );
        assert_eq!(
            serve.field("trace_id"),
            get.field("trace_id"),
            "same trace on the owner"
        );
        assert_eq!(serve.field("parent_span_id"), Some(sent_from));
        assert_ne!(
            serve.field("span_id"),
            Some(sent_from),
            "the owner's own span id"
        );
        assert_eq!(
            capture.named("groupcache.load").len(),
            1,
            "one load, on the owner"
        );

        // Without a caller's trace, a get starts its own, and the owner still joins it.
        let other = cluster.key_owned_by(1, "untraced");
        cluster.node(0).get(&other).await.unwrap();
        let get = capture
            .named("groupcache.get")
            .into_iter()
            .find(|s| s.field("key") == Some(other.as_str()))
            .unwrap();
        let serve = capture
            .named("groupcache.serve")
            .into_iter()
            .find(|s| s.field("key") == Some(other.as_str()))
            .unwrap();
        assert_eq!(get.field("trace_id").map(str::len), Some(32));
        assert_eq!(serve.field("trace_id"), get.field("trace_id"));
        cluster.shutdown().await;

        // By default, spans carry a hash of the key, never the key.
        let cluster = TestCluster::start(1).await;
        let before = capture.named("groupcache.get").len();
        let private = "alice@example.com";
        cluster.node(0).get(private).await.unwrap();
        let gets = capture.named("groupcache.get");
        assert_eq!(gets.len(), before + 1);
        assert!(gets.iter().all(|s| s.field("key") != Some(private)));
        let hashed = gets
            .iter()
            .filter_map(|s| s.field("key"))
            .filter(|k| k.len() == 16 && k.bytes().all(|b| b.is_ascii_hexdigit()))
            .count();
        assert!(hashed >= 1, "a hashed key: {gets:?}");
        cluster.shutdown().await;
    })
    .await;
}
