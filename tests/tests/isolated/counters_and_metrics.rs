//! A scripted sequence of hits, misses, a deduplicated stampede, a fallback and a refused key:
//! `stats()` moves exactly as expected, and the same figures reach a real Prometheus recorder
//! through the `metrics` facade, under the documented names. Alone in its process: it installs
//! the global recorder.

use std::collections::HashMap;

use groupcache::{ErrorKind, PromoteOneIn};
use groupcache_tests::own_process::alone_in_this_process;
use groupcache_tests::{Script, TestCluster, spawn_get, wait_until, within_limit};
use metrics_exporter_prometheus::PrometheusBuilder;

/// `name{labels} value` lines of a Prometheus text page, comments skipped.
fn samples(page: &str) -> HashMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_exactly_and_reach_prometheus() {
    if !alone_in_this_process(module_path!(), "counters_move_exactly_and_reach_prometheus").await {
        return;
    }
    let prometheus = PrometheusBuilder::new().install_recorder().unwrap();
    within_limit(async {
        // Node 0 asks, node 1 owns. Each node exports under its own prefix.
        let mut cluster = TestCluster::start_with(2, |i, b| {
            b.metrics_prefix(format!("node{i}"))
                .hot_cache_policy(PromoteOneIn(1))
                .max_key_len(64)
                .peer_timeout(std::time::Duration::from_secs(5))
        })
        .await;
        let asker = cluster.node(0).clone();
        let remote = cluster.key_owned_by(1, "remote");
        let local = cluster.key_owned_by(0, "local");
        let herd = cluster.key_owned_by(1, "herd");
        let orphan = cluster.key_owned_by(1, "orphan");

        asker.get(&remote).await.unwrap(); // a miss fetched from the owner
        asker.get(&remote).await.unwrap(); // a hot hit
        asker.get(&local).await.unwrap(); // a miss loaded here
        asker.get(&local).await.unwrap(); // a main hit

        // Ten callers, one fetch.
        cluster.loader.script(&herd, Script::Gate);
        let callers: Vec<_> = (0..10).map(|_| spawn_get(&asker, &herd)).collect();
        wait_until("ten callers share one fetch", || {
            asker.inflight_waiters(&herd) == 10
        })
        .await;
        cluster.loader.release();
        for caller in callers {
            caller.await.unwrap().unwrap();
        }

        // The owner dies: a fallback.
        cluster.kill(1).await;
        asker.get(&orphan).await.unwrap();
        // A refused key.
        let err = asker.get(&"k".repeat(65)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyTooLong);

        let stats = asker.stats();
        let counted = [
            ("gets", stats.gets, 16),
            ("hot_hits", stats.hot_hits, 1),
            ("main_hits", stats.main_hits, 1),
            ("loads", stats.loads, 13),
            ("loads_deduped", stats.loads_deduped, 4),
            ("local_loads", stats.local_loads, 2),
            ("local_load_errors", stats.local_load_errors, 0),
            ("peer_loads", stats.peer_loads, 2),
            ("peer_errors", stats.peer_errors, 1),
            ("fallback_loads", stats.fallback_loads, 1),
            ("auth_failures", stats.auth_failures, 0),
            ("server_requests", stats.server_requests, 0),
            ("removes", stats.removes, 0),
            ("rejected_keys", stats.rejected_keys, 1),
            ("unauthenticated_requests", stats.unauthenticated_requests, 0),
        ];
        for (name, got, want) in counted {
            assert_eq!(got, want, "{name}: {stats:?}");
        }
        assert_eq!(stats.main_cache.entries, 1, "the local key");
        assert_eq!(stats.hot_cache.entries, 3, "remote, herd and the fallback's copy");
        let owner = cluster.node(1).stats();
        assert_eq!(owner.server_requests, 2, "remote and herd reached the owner");
        assert_eq!(owner.local_loads, 2);

        let page = prometheus.render();
        let values = samples(&page);
        let value = |name: &str| {
            *values
                .get(name)
                .unwrap_or_else(|| panic!("{name} is missing from:\n{page}"))
        };
        for (name, expected) in [
            ("node0_gets_total", stats.gets),
            ("node0_hot_hits_total", stats.hot_hits),
            ("node0_main_hits_total", stats.main_hits),
            ("node0_loads_total", stats.loads),
            ("node0_loads_deduped_total", stats.loads_deduped),
            ("node0_local_loads_total", stats.local_loads),
            ("node0_peer_loads_total", stats.peer_loads),
            ("node0_peer_errors_total", stats.peer_errors),
            ("node0_fallback_loads_total", stats.fallback_loads),
            ("node0_rejected_keys_total", stats.rejected_keys),
            ("node1_server_requests_total", owner.server_requests),
            ("node1_local_loads_total", owner.local_loads),
        ] {
            assert_eq!(value(name), expected as f64, "{name}");
        }
        // Every get is timed under its outcome.
        for (outcome, count) in [
            ("hot_hit", 1),
            ("main_hit", 1),
            ("local_load", 1),
            ("peer_load", 11),
            ("fallback", 1),
            ("error", 1),
        ] {
            let name = format!("node0_get_duration_seconds_count{{outcome=\"{outcome}\"}}");
            assert_eq!(value(&name), count as f64, "{name}");
        }
        // Peer requests are timed per peer and result.
        let owner_addr = cluster.addr(1);
        let ok = format!(
            "node0_peer_request_duration_seconds_count{{peer=\"{owner_addr}\",result=\"ok\"}}"
        );
        let down = format!(
            "node0_peer_request_duration_seconds_count{{peer=\"{owner_addr}\",result=\"transport\"}}"
        );
        assert_eq!(value(&ok), 2.0);
        assert_eq!(value(&down), 1.0);
        // Cache sizes, as of the last stats().
        assert_eq!(value("node0_cache_entries{tier=\"main\"}"), 1.0);
        assert_eq!(value("node0_cache_entries{tier=\"hot\"}"), 3.0);
        assert!(value("node0_cache_bytes{tier=\"hot\"}") > 0.0);
        cluster.shutdown().await;
    })
    .await;
}
