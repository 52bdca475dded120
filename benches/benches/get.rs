//! `get` on its cheap-to-expensive paths, on real loopback servers: a main-cache hit, a
//! hot-cache hit, a cold load through the flight group, a remote hit (hot cache off), and a
//! 1,000-caller stampede of one cold key. Every peer hosts one group (`groupcache_tests::GROUP`).
//!
//! Run: `cargo bench -p groupcache-benches --bench get`

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use groupcache::cache::PromoteOneIn;
use groupcache_tests::TestCluster;
use tokio::task::JoinSet;

fn local_hits(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cluster = runtime.block_on(TestCluster::start_with_group(2, |_, g| {
        g.hot_cache_policy(PromoteOneIn(1))
    }));
    let owned = cluster.key_owned_by(0, "main");
    let remote = cluster.key_owned_by(1, "hot");
    let node = cluster.node(0).clone();
    runtime.block_on(async {
        node.get(&owned).await.expect("warm main");
        node.get(&remote).await.expect("warm hot");
    });

    let mut group = c.benchmark_group("get");
    group.bench_function("main_hit", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(node.get(black_box(&owned)).await.unwrap()) })
    });
    group.bench_function("hot_hit", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(node.get(black_box(&remote)).await.unwrap()) })
    });
    group.finish();
    runtime.block_on(cluster.shutdown());
}

fn cold_load(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // One peer: it owns every key, so a miss is a loader call through the load flight, an
    // encode and a main-cache insert (the loader itself answers at once).
    let cluster = runtime.block_on(TestCluster::start(1));
    let node = cluster.node(0).clone();
    let round = AtomicU64::new(0);
    c.bench_function("get/cold_load_local_owner", |b| {
        b.to_async(&runtime).iter(|| async {
            let key = format!("cold-{}", round.fetch_add(1, Ordering::Relaxed));
            black_box(node.get(&key).await.unwrap())
        })
    });
    runtime.block_on(cluster.shutdown());
}

fn remote_hit(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cluster = runtime.block_on(TestCluster::start_with_group(2, |_, g| {
        g.hot_cache_policy(PromoteOneIn(0))
    }));
    let remote = cluster.key_owned_by(1, "remote");
    let node = cluster.node(0).clone();
    runtime.block_on(async { node.get(&remote).await.expect("warm owner") });
    c.bench_function("get/remote_hit", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(node.get(black_box(&remote)).await.unwrap()) })
    });
    runtime.block_on(cluster.shutdown());
}

fn stampede(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cluster = runtime.block_on(TestCluster::start(3));
    let groups = cluster.caches();
    let round = AtomicU64::new(0);
    c.bench_function("get/stampede_1000_callers_3_peers", |b| {
        b.to_async(&runtime).iter(|| async {
            // A fresh cold key every round.
            let key = format!("cold-{}", round.fetch_add(1, Ordering::Relaxed));
            let mut callers = JoinSet::new();
            for i in 0..1_000 {
                let group = groups[i % groups.len()].clone();
                let key = key.clone();
                callers.spawn(async move { group.get(&key).await });
            }
            while let Some(result) = callers.join_next().await {
                black_box(result.unwrap().unwrap());
            }
        })
    });
    runtime.block_on(cluster.shutdown());
}

criterion_group!(benches, local_hits, cold_load, remote_hit, stampede);
criterion_main!(benches);
