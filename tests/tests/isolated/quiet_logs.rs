//! A peer whose owner is down logs the failure once, then at most a line per interval with a
//! count, and once that its breaker opened; its counters still count every failure, and after
//! the breaker opens no request goes to the dead owner at all.
//!
//! Regression test for issue 10, item 4: a killed owner made ~5,000 WARN "owner unreachable"
//! lines per second per node. Alone in its process: it installs a global log capture and counts
//! every line.

use std::time::Instant;

use groupcache_tests::log_capture::CapturedLogs;
use groupcache_tests::own_process::alone_in_this_process;
use groupcache_tests::{TestCluster, within_limit};

const FAILED_FETCHES: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_failed_fetches_log_a_handful_of_lines() {
    if !alone_in_this_process(
        module_path!(),
        "ten_thousand_failed_fetches_log_a_handful_of_lines",
    )
    .await
    {
        return;
    }
    let logs = CapturedLogs::install(tracing::Level::INFO);
    within_limit(async {
        let mut cluster = TestCluster::start(2).await;
        let keys: Vec<String> = (0..)
            .map(|i| format!("k{i}"))
            .filter(|k| cluster.owner_of(k) == 1)
            .take(FAILED_FETCHES)
            .collect();
        cluster.kill(1).await;

        let started = Instant::now();
        let asker = cluster.node(0).clone();
        for key in &keys {
            assert_eq!(
                asker.get(key).await.unwrap(),
                cluster.loader.expected(key),
                "served by a local load, this peer being the only substitute"
            );
        }
        let took = started.elapsed();

        // The fault happened, and the counters say so: the first three fetches failed (the
        // default threshold), the breaker opened, and from then on no fetch tried the owner.
        // Every fetch went to the substitute.
        let stats = asker.stats();
        let threshold = u64::from(groupcache::defaults::PEER_FAILURE_THRESHOLD);
        assert_eq!(stats.peer_errors, threshold, "{stats:?}");
        assert_eq!(stats.rerouted_gets, FAILED_FETCHES as u64, "{stats:?}");
        assert_eq!(stats.local_loads, FAILED_FETCHES as u64, "{stats:?}");
        assert_eq!(cluster.peer_set(0).stats().breaker_opened, 1);
        let text = logs.text();
        let opened: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("its keys go to substitutes"))
            .collect();
        assert_eq!(
            opened.len(),
            1,
            "the breaker's opening, logged once:\n{text}"
        );
        assert!(opened[0].contains("WARN"), "{}", opened[0]);
        // The failures before it opened: the first, then one line per 10 s at most, each with
        // its count.
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("peer not answering; asking the key's substitute"))
            .collect();
        let allowed = 1 + (took.as_secs() / 10) as usize;
        assert!(
            !lines.is_empty() && lines.len() <= allowed,
            "{} lines for {FAILED_FETCHES} failures in {took:?}:\n{}",
            lines.len(),
            lines.join("\n")
        );
        assert!(lines[0].contains("similar_since_last=0"), "{}", lines[0]);
        println!(
            "{FAILED_FETCHES} failed fetches in {took:?}: {} log line(s)",
            lines.len()
        );
        cluster.shutdown().await;
    })
    .await;
}
