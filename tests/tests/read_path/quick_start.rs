//! The README's quick start, run as written: its server setup must give fast remote gets.
//!
//! Regression test for issue 10, item 1: tonic ignores `Server::tcp_nodelay` on
//! `serve_with_incoming`, so the quick start's own setup stalled replies of 500 B to 16 KB on
//! Nagle's algorithm (p50 44 ms). The setup below is the quick start's code; the quick start
//! now binds with `groupcache::bind`, which sets `TCP_NODELAY` on every accepted connection.

use std::time::{Duration, Instant};

use groupcache::{BoxError, Groupcache, GroupcachePeer, ValueLoader};
use groupcache_tests::within_limit;

/// Value sizes the fix was measured at: 500 B to 16 KB all stalled before.
const SIZES: [usize; 4] = [500, 1024, 4096, 16 * 1024];

/// The quick start's loader, with values of the size the key names (`{size}/{name}`).
struct Database;

#[groupcache::async_trait]
impl ValueLoader for Database {
    type Value = String;

    async fn load(&self, key: &str) -> Result<String, BoxError> {
        let size: usize = key.split('/').next().unwrap_or_default().parse()?;
        Ok("x".repeat(size))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_gets_of_500_b_to_16_kb_through_the_quick_start_setup_take_under_10_ms() {
    within_limit(async {
        // ----- the quick start, as the README shows it -----
        let mut peers = Vec::new();
        for _ in 0..2 {
            let incoming = groupcache::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let me = incoming.local_addr().unwrap();
            let cache = Groupcache::builder(me).build();
            let rows = cache
                .group("rows", Database)
                .main_cache_capacity(64 * 1024 * 1024)
                .build()
                .unwrap();
            tokio::spawn(
                cache
                    .server_builder()
                    .unwrap()
                    .add_service(cache.grpc_service())
                    .serve_with_incoming(incoming),
            );
            peers.push((cache, rows));
        }
        let members: Vec<GroupcachePeer> = peers.iter().map(|(c, _)| c.me().clone()).collect();
        for (cache, _) in &peers {
            cache.set_peers(members.clone()).unwrap();
        }
        // ----- end of the quick start's setup -----

        // Sequential gets on peer 0 of keys peer 1 owns: each one is a remote fetch.
        let (asker, rows) = &peers[0];
        for size in SIZES {
            let keys: Vec<String> = (0..)
                .map(|i| format!("{size}/user-{i}"))
                .filter(|k| &asker.owner_of(k) != asker.me())
                .take(60)
                .collect();
            let mut took = Vec::new();
            for key in &keys {
                let started = Instant::now();
                let value = rows.get(key).await.unwrap();
                took.push(started.elapsed());
                assert_eq!(value.len(), size);
            }
            // The first may include connecting; the median is what a steady caller sees.
            took.sort();
            let median = took[took.len() / 2];
            println!(
                "{size} B remote get through the quick-start setup: median {median:?}, max {:?}",
                took.last().unwrap()
            );
            assert!(
                median <= Duration::from_millis(10),
                "a {size} B remote get took {median:?} (median): replies stall on Nagle's \
                 algorithm (TCP_NODELAY off on the server's connections?)"
            );
        }
        assert_eq!(rows.stats().peer_loads, 4 * 60, "all remote");
    })
    .await;
}
