//! What exporting metrics costs a local hit: the same main-cache hit on two caches, one
//! exporting through a real Prometheus recorder (feature `metrics`), one built
//! `without_metrics`. Both count in their group's `stats()`.
//!
//! Run: `cargo bench -p groupcache-benches --bench metrics`

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use groupcache::Groupcache;
use groupcache_tests::{CountingLoader, GROUP};
use metrics_exporter_prometheus::PrometheusBuilder;

fn local_hit_with_and_without_metrics(c: &mut Criterion) {
    // A real recorder, so that the exported counters and histograms do real work.
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let me: SocketAddr = "127.0.0.1:1".parse().expect("address");
    // Metrics are a setting of the peer set; each peer set hosts the one group measured.
    let exported = Groupcache::builder(me)
        .metrics_prefix("bench")
        .build()
        .group(GROUP, CountingLoader::new())
        .build()
        .expect("the only group");
    let silent = Groupcache::builder(me)
        .without_metrics()
        .build()
        .group(GROUP, CountingLoader::new())
        .build()
        .expect("the only group");
    runtime.block_on(async {
        exported.get("k").await.expect("warm");
        silent.get("k").await.expect("warm");
    });

    let mut group = c.benchmark_group("main_hit");
    group.bench_function("metrics_off", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(silent.get(black_box("k")).await.unwrap()) })
    });
    group.bench_function("metrics_on", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(exported.get(black_box("k")).await.unwrap()) })
    });
    group.finish();
    // The exported hits did reach the recorder.
    assert!(prometheus.render().contains("bench_main_hits_total"));
}

criterion_group!(benches, local_hit_with_and_without_metrics);
criterion_main!(benches);
