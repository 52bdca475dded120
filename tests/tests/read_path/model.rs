//! Model-based tests (scenario 19): random sequences of `get`, `remove`, source changes and
//! loader failures, checked step by step against a `HashMap` model of what the cache must
//! return. Sequential, so the model is exact: a cached value is served until it is removed,
//! errors are never cached, and a miss loads the source as it is now.

use std::collections::HashMap;

use groupcache::cache::PromoteOneIn;
use groupcache::{ErrorKind, Group, Groupcache};
use groupcache_tests::{CountingLoader, GROUP, Script, TestCluster, value_of};
use proptest::prelude::*;

const KEYS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
enum Op {
    /// `get` on node `node % nodes`.
    Get { node: usize, key: usize },
    /// `remove` on node `node % nodes`.
    Remove { node: usize, key: usize },
    /// The source of truth changes (every key gets a new generation).
    Bump,
    /// The loader fails for `key` from now on.
    Break { key: usize },
    /// The loader works for `key` again.
    Fix { key: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        4 => (0..3usize, key.clone()).prop_map(|(node, key)| Op::Get { node, key }),
        2 => (0..3usize, key.clone()).prop_map(|(node, key)| Op::Remove { node, key }),
        1 => Just(Op::Bump),
        1 => key.clone().prop_map(|key| Op::Break { key }),
        1 => key.prop_map(|key| Op::Fix { key }),
    ]
}

/// What the cluster as a whole must answer: one cache per key (the owner's main cache; hot
/// copies are off), filled by a successful load, emptied by `remove` on any node.
#[derive(Debug, Default)]
struct Model {
    generation: u64,
    cached: HashMap<usize, String>,
    broken: [bool; KEYS.len()],
}

/// Runs `ops` against `caches` (all members of one cluster) and the model.
async fn check(ops: &[Op], caches: &[Group<String>], loader: &CountingLoader) {
    let mut model = Model {
        generation: 1,
        ..Model::default()
    };
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Get { node, key } => {
                let got = caches[node % caches.len()].get(KEYS[key]).await;
                match model.cached.get(&key) {
                    Some(value) => assert_eq!(got.as_ref().ok(), Some(value), "step {step}"),
                    None if model.broken[key] => {
                        let err = got.expect_err("a broken loader fails");
                        assert_eq!(err.kind(), ErrorKind::Loader, "step {step}: {err:?}");
                    }
                    None => {
                        let value = value_of(KEYS[key], model.generation);
                        assert_eq!(got.as_ref().ok(), Some(&value), "step {step}");
                        model.cached.insert(key, value);
                    }
                }
            }
            Op::Remove { node, key } => {
                caches[node % caches.len()].remove(KEYS[key]).await.unwrap();
                model.cached.remove(&key);
            }
            Op::Bump => {
                model.generation += 1;
                loader.set_generation(model.generation);
            }
            Op::Break { key } => {
                model.broken[key] = true;
                loader.script(KEYS[key], Script::Fail("source down".into()));
            }
            Op::Fix { key } => {
                model.broken[key] = false;
                loader.script(KEYS[key], Script::Value);
            }
        }
    }
    for cache in caches {
        assert_eq!(cache.inflight_len(), 0);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn one_peer_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        runtime().block_on(groupcache_tests::within_limit(async {
            let loader = CountingLoader::new();
            let me: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
            let cache = Groupcache::builder(me).build();
            let group = cache.group(GROUP, loader.clone()).build().unwrap();
            check(&ops, &[group], &loader).await;
        }));
    }

    #[test]
    fn a_three_peer_cluster_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        runtime().block_on(groupcache_tests::within_limit(async {
            let cluster = TestCluster::start_with_group(3, |_, g| g.hot_cache_policy(PromoteOneIn(0))).await;
            check(&ops, &cluster.caches(), &cluster.loader).await;
            cluster.shutdown().await;
        }));
    }
}
