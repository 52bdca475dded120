//! Ring lookup through the public API: `Groupcache::owner_of` (snapshot load, binary search
//! over `peers * 768` points, owner clone). DESIGN.md asks for well under 100 ns.
//!
//! Run: `cargo bench -p groupcache-benches --bench ring`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use groupcache::{Groupcache, GroupcachePeer};

fn ring_lookup(c: &mut Criterion) {
    // `set_peers` opens channels to new peers lazily, on the runtime it is called from.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let keys: Vec<String> = (0..4096).map(|i| format!("user-{i:08}")).collect();
    let mut group = c.benchmark_group("ring_lookup");
    for peers in [10usize, 100] {
        let me: GroupcachePeer = "10.0.0.1:8080".parse().unwrap();
        // The ring belongs to the peer set: no group is needed to look an owner up.
        let cache = Groupcache::builder(me).build();
        let members = (0..peers).map(|i| {
            format!("10.0.{}.{}:8080", i / 250, i % 250 + 1)
                .parse::<GroupcachePeer>()
                .unwrap()
        });
        let _on_runtime = runtime.enter();
        cache.set_peers(members).expect("set_peers");
        group.bench_function(BenchmarkId::from_parameter(peers), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % keys.len();
                black_box(cache.owner_of(black_box(&keys[i])))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ring_lookup);
criterion_main!(benches);
