//! What a cached entry costs in memory, next to what it weighs.
//!
//! Regression test for issue 10, item 2: a value fetched from a peer was a slice of tonic's
//! decode buffer, and the hot cache kept the slice, so a 100 B hot copy (weighing 115 B) held
//! 7-8 KB of RSS.
//!
//! Two processes, so that each one's RSS is its own: this test is the asker and keeps hot
//! copies; the owner is this test binary again, running the ignored `owner_process`, which
//! loads the same keys into its main cache and reports what they cost there. In one process
//! the two sides' allocations interleave, and memory one phase frees is counted against the
//! next.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use groupcache::cache::PromoteOneIn;
use groupcache::{BoxError, Group, Groupcache, GroupcachePeer, ValueLoader};
use groupcache_tests::own_process::{alone_in_this_process, test_name};
use groupcache_tests::rss::resident_bytes;
use groupcache_tests::within_limit;

/// Entries per tier: enough that the cost per entry stands out of allocator noise.
const ENTRIES: usize = 20_000;
/// Keys handled before measuring, to warm up connections, buffers and allocator arenas.
const WARM_UP: usize = 2_000;
/// Bytes of each value (its encoding adds a one-byte length prefix).
const VALUE_BYTES: usize = 100;
/// What an entry may cost beyond twice its weight. Its own heap is about 300 B (the entry, the
/// key's copy, the cache's slot); the rest is the allocator's: hot copies are allocated between
/// each fetch's short-lived buffers, and glibc's heap fragments around them. Measured for
/// 100 B values: hot copies ~430 B each in a debug build, 1.0-1.6 KB in a release build (where
/// fetches are fast and tightly interleaved); main entries ~470 B in both. The old slices of
/// network buffers cost 6 KB and more. The README's Configuration section quotes these figures.
const FIXED_OVERHEAD: u64 = 2048;
/// The asker's address, given to the owner process.
const ASKER: &str = "GROUPCACHE_MEMORY_TEST_ASKER";
/// Callers at once.
const CALLERS: usize = 16;

struct Database;

#[groupcache::async_trait]
impl ValueLoader for Database {
    type Value = String;

    async fn load(&self, key: &str) -> Result<String, BoxError> {
        let mut value = format!("{key}:");
        value.extend(std::iter::repeat_n('x', VALUE_BYTES - value.len()));
        Ok(value)
    }
}

/// A peer of the two-member cluster, serving on `incoming`: its peer set and its one group,
/// hot copies kept for every fetch.
async fn peer(incoming: tonic::transport::server::TcpIncoming) -> (Groupcache, Group<String>) {
    let me = incoming.local_addr().unwrap();
    let cache = Groupcache::builder(me).build();
    let rows = cache
        .group("rows", Database)
        .main_cache_capacity(256 << 20)
        .hot_cache_capacity(256 << 20)
        .hot_cache_policy(PromoteOneIn(1))
        .build()
        .unwrap();
    tokio::spawn(
        cache
            .server_builder()
            .unwrap()
            .add_service(cache.grpc_service())
            .serve_with_incoming(incoming),
    );
    (cache, rows)
}

/// `n` keys starting with `prefix` that `owner` owns in `cache`'s ring.
fn keys_owned_by(
    cache: &Groupcache,
    owner: &GroupcachePeer,
    prefix: &str,
    n: usize,
) -> Arc<Vec<String>> {
    Arc::new(
        (0..)
            .map(|i| format!("{prefix}-{i}"))
            .filter(|k| &cache.owner_of(k) == owner)
            .take(n)
            .collect(),
    )
}

/// Gets every key on `cache`, [`CALLERS`] at a time.
async fn get_all(cache: &Group<String>, keys: &Arc<Vec<String>>) {
    let mut tasks = tokio::task::JoinSet::new();
    for part in 0..CALLERS {
        let (cache, keys) = (cache.clone(), Arc::clone(keys));
        tasks.spawn(async move {
            for key in keys.iter().skip(part).step_by(CALLERS) {
                let value = cache.get(key).await.unwrap();
                assert_eq!(value.len(), VALUE_BYTES);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// Bytes of RSS added per entry between two readings.
fn per_entry(before: u64, after: u64) -> u64 {
    after.saturating_sub(before) / ENTRIES as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_entry_costs_at_most_twice_its_weight_plus_a_fixed_overhead() {
    if !alone_in_this_process(
        module_path!(),
        "a_cached_entry_costs_at_most_twice_its_weight_plus_a_fixed_overhead",
    )
    .await
    {
        return;
    }
    let Some(_) = resident_bytes() else {
        eprintln!("no /proc/self/statm here: nothing to measure");
        return;
    };
    within_limit(async {
        let incoming = groupcache::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let me = incoming.local_addr().unwrap();
        let mut owner_process = Command::new(std::env::current_exe().unwrap())
            .arg(test_name(module_path!(), "owner_process"))
            .args(["--exact", "--ignored", "--nocapture"])
            .env(ASKER, me.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the owner process");
        // The owner's reports, read on a thread that drains its output to the end.
        let (reports, report) = std::sync::mpsc::channel();
        let stdout = owner_process.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(text) = line.strip_prefix("owner: ") {
                    let _ = reports.send(text.to_owned());
                }
            }
        });
        let next_line = move || report.recv().expect("a report from the owner process");
        let owner: SocketAddr = next_line().parse().expect("the owner's address");

        let (asker, rows) = peer(incoming).await;
        let owner = GroupcachePeer::from(owner);
        asker
            .set_peers([asker.me().clone(), owner.clone()])
            .unwrap();
        // The owner loads the same keys into its main cache meanwhile and reports their cost.
        let main_report = tokio::task::spawn_blocking(next_line).await.unwrap();

        get_all(&rows, &keys_owned_by(&asker, &owner, "warm", WARM_UP)).await;
        let before = resident_bytes().unwrap();
        get_all(&rows, &keys_owned_by(&asker, &owner, "user", ENTRIES)).await;
        let hot_cost = per_entry(before, resident_bytes().unwrap());
        let hot = rows.stats().hot_cache;
        assert_eq!(
            hot.entries,
            (WARM_UP + ENTRIES) as u64,
            "every fetched value kept hot"
        );
        let hot_weight = hot.weighted_bytes / hot.entries;

        let (main_weight, main_cost) = main_report
            .split_once(' ')
            .and_then(|(w, c)| Some((w.parse::<u64>().ok()?, c.parse::<u64>().ok()?)))
            .expect("the owner's report: weight and cost");
        drop(owner_process.stdin.take()); // the owner stops when its stdin closes
        let status = tokio::task::spawn_blocking(move || owner_process.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "the owner process failed: {status}");

        println!(
            "{VALUE_BYTES} B values: a main entry weighs {main_weight} B and costs {main_cost} B \
             of RSS; a hot entry weighs {hot_weight} B and costs {hot_cost} B"
        );
        // A hot copy keeps only the decoded value; a main entry also the encoded bytes peers
        // receive, which roughly double it.
        assert!(
            hot_cost <= 2 * hot_weight + FIXED_OVERHEAD,
            "a hot entry weighing {hot_weight} B costs {hot_cost} B"
        );
        assert!(
            main_cost <= 2 * main_weight + FIXED_OVERHEAD,
            "a main entry weighing {main_weight} B costs {main_cost} B"
        );
    })
    .await;
}

/// The owner of the test above (ignored when run directly): prints `owner: <address>`, loads
/// the keys the asker will fetch into its main cache, prints `owner: <weight> <cost>` per
/// entry, then serves the asker until its stdin closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_cached_entry_costs_at_most_twice_its_weight_plus_a_fixed_overhead"]
async fn owner_process() {
    let Ok(asker) = std::env::var(ASKER) else {
        return;
    };
    let incoming = groupcache::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    println!("owner: {}", incoming.local_addr().unwrap());
    let (cache, rows) = peer(incoming).await;
    let me = cache.me().clone();
    let asker: GroupcachePeer = asker.parse().unwrap();
    cache.set_peers([asker, me.clone()]).unwrap();

    get_all(&rows, &keys_owned_by(&cache, &me, "warm-up-main", WARM_UP)).await;
    let before = resident_bytes().unwrap();
    get_all(&rows, &keys_owned_by(&cache, &me, "user", ENTRIES)).await;
    let cost = per_entry(before, resident_bytes().unwrap());
    let main = rows.stats().main_cache;
    println!("owner: {} {cost}", main.weighted_bytes / main.entries);
    std::io::stdout().flush().unwrap();

    tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
        .await
        .unwrap()
        .unwrap();
}
