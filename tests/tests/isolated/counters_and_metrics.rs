//! A scripted sequence of hits, misses, a deduplicated stampede, a request for a group the
//! owner does not host, a fallback and a refused key: the group's `stats()` and the peer set's
//! move exactly as expected, and the same figures reach a real Prometheus recorder through the
//! `metrics` facade, under the documented names: a group's metrics labelled with its name, the
//! peer set's counters with no label. Alone in its process: it installs the global recorder.

use std::collections::HashMap;

use groupcache::cache::PromoteOneIn;
use groupcache::{BoxError, ErrorKind, ValueLoader};
use groupcache_tests::own_process::alone_in_this_process;
use groupcache_tests::{ClusterSpec, GROUP, Script, spawn_get, wait_until, within_limit};
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

/// The counters of the peer set itself, exported without a `group` label.
const PEER_SET_COUNTERS: [&str; 10] = [
    "unauthenticated_requests_total",
    "timed_out_requests_total",
    "unknown_group_requests_total",
    "breaker_opened_total",
    "breaker_closed_total",
    "invalidations_sent_total",
    "invalidations_acknowledged_total",
    "invalidations_received_total",
    "invalidation_gaps_total",
    "lease_renewals_total",
];

/// The loader of a group only node 0 hosts.
struct Extra;

#[groupcache::async_trait]
impl ValueLoader for Extra {
    type Value = String;

    async fn load(&self, key: &str) -> Result<String, BoxError> {
        Ok(key.to_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_exactly_and_reach_prometheus() {
    if !alone_in_this_process(module_path!(), "counters_move_exactly_and_reach_prometheus").await {
        return;
    }
    let prometheus = PrometheusBuilder::new().install_recorder().unwrap();
    within_limit(async {
        // Node 0 asks, node 1 owns. Each node exports under its own prefix.
        let mut cluster = ClusterSpec::new(2)
            .configure(|i, b| {
                b.metrics_prefix(format!("node{i}"))
                    .max_key_len(64)
                    .peer_timeout(std::time::Duration::from_secs(5))
            })
            .configure_group(|_, g| g.hot_cache_policy(PromoteOneIn(1)))
            .start()
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

        // A group the owner does not host: an answer (no fallback), counted by the owner's
        // peer set, and nothing in the test group's figures.
        let extra = cluster
            .peer_set(0)
            .group("extra", Extra)
            .build()
            .unwrap();
        let err = extra.get(&remote).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownGroup, "{err}");

        // The owner dies: a fallback, on this peer, the owner's substitute (the only other
        // member), which keeps the value in its main cache while the owner is out.
        cluster.kill(1).await;
        asker.get(&orphan).await.unwrap();
        // A refused key.
        let err = asker.get(&"k".repeat(65)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyTooLong);

        // Scraped before anyone calls `stats()`: every figure, the cache sizes included, is
        // published as it changes.
        let page = prometheus.render();

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
            ("peer_refusals", stats.peer_refusals, 0),
            ("rerouted_gets", stats.rerouted_gets, 1),
            ("substitute_serves", stats.substitute_serves, 0),
            // Node 0 joined a ring of node 1 and itself: the first load of a key it owns asks
            // the previous owner (node 1) first, which does not hold it.
            ("handoff_hits", stats.handoff_hits, 0),
            ("handoff_misses", stats.handoff_misses, 1),
            ("hedged_gets", stats.hedged_gets, 0),
            ("hedge_wins", stats.hedge_wins, 0),
        ];
        for (name, got, want) in counted {
            assert_eq!(got, want, "{name}: {stats:?}");
        }
        assert_eq!(stats.main_cache.entries, 2, "the local key and the substitute's");
        assert_eq!(stats.hot_cache.entries, 2, "remote and herd");
        let owner = cluster.node(1).stats();
        assert_eq!(owner.server_requests, 2, "remote and herd reached the owner");
        assert_eq!(owner.local_loads, 2);
        let (asker_set, owner_set) = (cluster.peer_set(0).stats(), cluster.peer_set(1).stats());
        for (node, set, unknown) in [(0, &asker_set, 0), (1, &owner_set, 1)] {
            let counted = [
                ("unauthenticated_requests", set.unauthenticated_requests, 0),
                ("timed_out_requests", set.timed_out_requests, 0),
                ("unknown_group_requests", set.unknown_group_requests, unknown),
                // One failure, below the threshold of three in a row.
                ("breaker_opened", set.breaker_opened, 0),
                ("breaker_closed", set.breaker_closed, 0),
            ];
            for (name, got, want) in counted {
                assert_eq!(got, want, "node {node}'s {name}: {set:?}");
            }
        }
        assert_eq!(asker_set.group(GROUP), Some(&stats), "the peer set's view of the group");

        let values = samples(&page);
        // And `stats()` only reads: a second scrape after the calls above shows the same
        // figures (quantiles aside, which age out of their window on their own).
        let steady = |samples: HashMap<String, f64>| -> HashMap<String, f64> {
            samples
                .into_iter()
                .filter(|(name, _)| !name.contains("quantile="))
                .collect()
        };
        assert_eq!(
            steady(samples(&prometheus.render())),
            steady(values.clone()),
            "stats() changed what a scrape shows"
        );
        // A group's metrics are labelled with its name; the peer set's counters and its peer
        // request latencies (shared by every group) are not.
        for name in values.keys() {
            let (metric, labels) = name.split_once('{').unwrap_or((name.as_str(), ""));
            let peer_set_wide = PEER_SET_COUNTERS
                .iter()
                .any(|c| metric.ends_with(&format!("_{c}")))
                || metric.contains("_peer_request_duration_seconds");
            let grouped = labels.contains(&format!("group=\"{GROUP}\""))
                || labels.contains("group=\"extra\"");
            assert_eq!(
                !peer_set_wide,
                grouped,
                "{name}: only a group's metrics carry a group label"
            );
            if PEER_SET_COUNTERS.iter().any(|c| metric.ends_with(&format!("_{c}"))) {
                assert_eq!(labels, "", "{name}: a peer-set counter has no label at all");
            }
        }
        let value = |name: &str| {
            *values
                .get(name)
                .unwrap_or_else(|| panic!("{name} is missing from:\n{page}"))
        };
        let test = format!("{{group=\"{GROUP}\"}}");
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
            let name = format!("{name}{test}");
            assert_eq!(value(&name), expected as f64, "{name}");
        }
        // The other group's get counts under its own label, and so does the owner's refusal.
        assert_eq!(value("node0_gets_total{group=\"extra\"}"), 1.0);
        assert_eq!(extra.stats().peer_refusals, 1);
        assert_eq!(value("node0_peer_refusals_total{group=\"extra\"}"), 1.0);
        for (name, expected) in [
            ("node0_unauthenticated_requests_total", 0),
            ("node0_timed_out_requests_total", 0),
            ("node0_unknown_group_requests_total", 0),
            ("node1_unauthenticated_requests_total", 0),
            ("node1_timed_out_requests_total", 0),
            ("node1_unknown_group_requests_total", 1),
        ] {
            assert_eq!(value(name), f64::from(expected), "{name}");
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
            let name = format!(
                "node0_get_duration_seconds_count{{group=\"{GROUP}\",outcome=\"{outcome}\"}}"
            );
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
        let answer = format!(
            "node0_peer_request_duration_seconds_count{{peer=\"{owner_addr}\",result=\"answer\"}}"
        );
        assert_eq!(value(&ok), 2.0);
        assert_eq!(value(&answer), 1.0, "the unknown group: an answer");
        assert_eq!(value(&down), 1.0);
        // Cache sizes, published when the caches changed (the page predates every stats()).
        let tier = |metric: &str, tier: &str| {
            value(&format!(
                "node0_{metric}{{group=\"{GROUP}\",tier=\"{tier}\"}}"
            ))
        };
        assert_eq!(tier("cache_entries", "main"), 2.0);
        assert_eq!(tier("cache_entries", "hot"), 2.0);
        assert!(tier("cache_bytes", "hot") > 0.0);
        assert_eq!(
            tier("cache_bytes", "hot"),
            stats.hot_cache.weighted_bytes as f64
        );
        assert_eq!(
            tier("cache_bytes", "main"),
            stats.main_cache.weighted_bytes as f64
        );
        cluster.shutdown().await;
    })
    .await;
}
