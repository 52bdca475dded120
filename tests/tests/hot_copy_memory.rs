//! What a cached entry costs in memory, next to what it weighs.
//!
//! Regression test for issue 10, item 2: a value fetched from a peer was a slice of tonic's
//! decode buffer, and the hot cache kept the slice, so a 100 B hot copy (weighing 115 B) held
//! 7-8 KB of RSS. Its own test binary: the RSS it reads is this test's alone.

use std::sync::Arc;

use groupcache::{BoxError, Groupcache, PromoteOneIn, ValueLoader};
use groupcache_tests::rss::resident_bytes;
use groupcache_tests::{start_like_the_quick_start, within_limit};

/// Entries per tier: enough that the cost per entry stands out of allocator noise.
const ENTRIES: usize = 20_000;
/// Keys fetched before measuring, to warm up connections, buffers and allocator arenas.
const WARM_UP: usize = 2_000;
/// Bytes of each value (its encoding adds a one-byte length prefix).
const VALUE_BYTES: usize = 100;
/// What an entry may cost beyond twice its weight: the entry's own struct, the key's heap
/// copy, the cache's slot and index (about 300 B in all on 64-bit Linux; the README's
/// Configuration section quotes the measured figures), plus allocator slack.
const FIXED_OVERHEAD: u64 = 384;

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

/// Callers at once.
const CALLERS: usize = 16;

/// Gets every key on `cache`, [`CALLERS`] at a time.
async fn get_all(cache: &Groupcache<String>, keys: &Arc<Vec<String>>) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_entry_costs_at_most_twice_its_weight_plus_a_fixed_overhead() {
    let Some(_) = resident_bytes() else {
        eprintln!("no /proc/self/statm here: nothing to measure");
        return;
    };
    within_limit(async {
        let peers = start_like_the_quick_start(2, |me| {
            Groupcache::builder(me, Database)
                .main_cache_capacity(256 << 20)
                .hot_cache_capacity(256 << 20)
                .hot_cache_policy(PromoteOneIn(1))
                .build()
        })
        .await;
        let (asker, owner) = (&peers[0], &peers[1]);
        let owned_by_1 = |prefix: &str, n: usize| -> Arc<Vec<String>> {
            Arc::new(
                (0..)
                    .map(|i| format!("{prefix}-{i}"))
                    .filter(|k| &owner.owner_of(k) == owner.me())
                    .take(n)
                    .collect(),
            )
        };
        // Warm up connections, buffers and the allocator's arenas on both sides first.
        get_all(asker, &owned_by_1("warm", WARM_UP)).await;
        let keys = owned_by_1("user", ENTRIES);

        let start = resident_bytes().unwrap();
        get_all(owner, &keys).await; // loaded on the owner: main entries
        let after_main = resident_bytes().unwrap();
        get_all(asker, &keys).await; // fetched by the asker: hot copies
        let after_hot = resident_bytes().unwrap();

        let main = owner.stats().main_cache;
        let hot = asker.stats().hot_cache;
        assert_eq!(
            hot.entries,
            (WARM_UP + ENTRIES) as u64,
            "every fetched value kept hot"
        );
        let per = |bytes: u64| bytes / ENTRIES as u64;
        let main_weight = main.weighted_bytes / main.entries;
        let hot_weight = hot.weighted_bytes / hot.entries;
        let main_cost = per(after_main.saturating_sub(start));
        let hot_cost = per(after_hot.saturating_sub(after_main));
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
