//! A loop of local hits, for counting what one costs in instructions: `get` of one warm
//! 100-byte value, `N` times in a row on a current-thread runtime, from the main cache (a key
//! this peer owns) or the hot cache (a copy of a key the other peer owns).
//!
//! Two peers on loopback in this process, as in the `get` bench: the hot cache only keeps
//! copies of other peers' values. Warming happens before the loop; the loop itself sends no
//! request. The loop is the function `hit_loop::hits`, so callgrind can count it alone:
//!
//! ```text
//! cargo build --release -p groupcache-benches --bin hit_loop
//! valgrind --tool=callgrind --toggle-collect='hit_loop::hits*' \
//!     target/release/hit_loop main 1000000
//! ```
//!
//! Instructions per hit: the `Ir` total callgrind prints, divided by `N`. Or without valgrind:
//! the loop's wall time per hit is printed too.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use groupcache::cache::PromoteOneIn;
use groupcache::{BoxError, Group, Groupcache, ValueLoader};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

/// Answers every key with the same 100 bytes.
struct Hundred;

#[groupcache::async_trait]
impl ValueLoader for Hundred {
    type Value = Bytes;

    async fn load(&self, _key: &str) -> Result<Bytes, BoxError> {
        Ok(Bytes::from(vec![0xA5; 100]))
    }
}

/// Two peers, each serving its group on loopback: their groups and addresses.
async fn two_peers() -> (Vec<Group<Bytes>>, Vec<SocketAddr>) {
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.push(listener.local_addr().expect("addr"));
        listeners.push(listener);
    }
    let mut groups = Vec::new();
    for (listener, &addr) in listeners.into_iter().zip(&addrs) {
        let cache = Groupcache::builder(addr).build();
        let group = cache
            .group("bench", Hundred)
            // Every fetched value becomes a hot copy.
            .hot_cache_policy(PromoteOneIn(1))
            .build()
            .expect("the only group");
        let service = cache.grpc_service();
        tokio::spawn(async move {
            let _ = Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpIncoming::from(listener))
                .await;
        });
        cache.set_peers(addrs.iter().copied()).expect("set_peers");
        groups.push(group);
    }
    (groups, addrs)
}

/// The first key `prefix-<n>` that the peer at `owner` owns.
fn key_owned_by(group: &Group<Bytes>, owner: SocketAddr, prefix: &str) -> String {
    (0..)
        .map(|n| format!("{prefix}-{n}"))
        .find(|key| group.owner_of(key).addr() == owner)
        .expect("some key maps to every peer")
}

/// The measured loop: `n` gets of `key`, each a hit.
#[inline(never)]
fn hits(runtime: &Runtime, group: &Group<Bytes>, key: &str, n: u64) {
    runtime.block_on(async {
        for _ in 0..n {
            black_box(group.get(black_box(key)).await.expect("a hit"));
        }
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let tier = args.next().unwrap_or_else(|| "main".to_owned());
    let n: u64 = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("N: a number of hits"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (groups, addrs) = runtime.block_on(two_peers());
    let here = &groups[0];
    let key = match tier.as_str() {
        "main" => key_owned_by(here, addrs[0], "main"),
        "hot" => key_owned_by(here, addrs[1], "hot"),
        other => panic!("tier: main or hot, not {other:?}"),
    };
    // The first get loads (or fetches and keeps a hot copy); the loop then only hits.
    runtime.block_on(async { here.get(&key).await.expect("warm") });
    let before = here.stats();
    let started = Instant::now();
    hits(&runtime, here, &key, n);
    let elapsed = started.elapsed();
    let after = here.stats();
    let hits = match tier.as_str() {
        "main" => after.main_hits - before.main_hits,
        _ => after.hot_hits - before.hot_hits,
    };
    assert_eq!(hits, n, "every get a {tier} hit");
    assert_eq!(after.gets - before.gets, n, "every get counted");
    println!(
        "{n} {tier} hits: {:.1} ns each",
        elapsed.as_nanos() as f64 / n.max(1) as f64
    );
}
