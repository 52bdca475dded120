//! Times to live chosen by the loader, capped and jittered by the group, on tokio's paused
//! clock (no peers: every key is this peer's). The wire half (a copy never outlives the
//! owner's entry) runs in the simulation, whose clock all peers share.

use std::time::Duration;

use groupcache::{BoxError, Group, Groupcache, ValueLoader};

/// Loads `key` as itself, choosing a time to live of the seconds the key names after `ttl-`.
#[derive(Clone, Default)]
struct Expiring {
    loads: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[groupcache::async_trait]
impl ValueLoader for Expiring {
    type Value = String;

    async fn load(&self, key: &str) -> Result<String, BoxError> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(key.to_owned())
    }

    fn time_to_live(&self, key: &str, _value: &String) -> Option<Duration> {
        let secs = key.strip_prefix("ttl-")?.parse().ok()?;
        Some(Duration::from_secs(secs))
    }
}

impl Expiring {
    fn loads(&self) -> u64 {
        self.loads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn group(
    configure: impl FnOnce(groupcache::GroupBuilder<String>) -> groupcache::GroupBuilder<String>,
) -> (Group<String>, Expiring) {
    let loader = Expiring::default();
    let cache = Groupcache::builder("127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap()).build();
    let group = configure(cache.group("ttl", loader.clone()))
        .build()
        .unwrap();
    (group, loader)
}

async fn advance(secs: f64) {
    tokio::time::advance(Duration::from_secs_f64(secs)).await;
}

#[tokio::test(start_paused = true)]
async fn the_loaders_time_to_live_is_kept_exactly_without_jitter() {
    let (group, loader) = group(|g| g.ttl_jitter(0.0));
    group.get("ttl-10").await.unwrap();
    advance(9.9).await;
    group.get("ttl-10").await.unwrap();
    assert_eq!(loader.loads(), 1, "alive before its time to live");
    advance(0.2).await;
    group.get("ttl-10").await.unwrap();
    assert_eq!(loader.loads(), 2, "loaded again after it");
    assert_eq!(group.stats().main_cache.expirations, 1);
}

#[tokio::test(start_paused = true)]
async fn the_group_maximum_caps_it_and_the_default_applies_without_one() {
    let (group, loader) = group(|g| {
        g.ttl_jitter(0.0)
            .max_ttl(Some(Duration::from_secs(5)))
            .main_cache_ttl(Some(Duration::from_secs(3)))
    });
    group.get("ttl-100").await.unwrap();
    group.get("no-ttl").await.unwrap();
    advance(3.1).await;
    group.get("ttl-100").await.unwrap();
    group.get("no-ttl").await.unwrap();
    assert_eq!(
        loader.loads(),
        3,
        "the default (3 s) expired, the capped one (5 s) not yet"
    );
    advance(2.0).await;
    group.get("ttl-100").await.unwrap();
    assert_eq!(loader.loads(), 4, "capped at 5 s");
}

#[tokio::test(start_paused = true)]
async fn jitter_only_shortens_and_spreads() {
    // The default jitter cuts up to 10%: a 100 s time to live lasts 90 to 100 s.
    let mut lasted_under_99_secs = 0;
    for _ in 0..40 {
        let (group, loader) = group(|g| g);
        group.get("ttl-100").await.unwrap();
        advance(89.9).await;
        group.get("ttl-100").await.unwrap();
        assert_eq!(loader.loads(), 1, "no jitter cuts more than 10%");
        advance(9.0).await;
        group.get("ttl-100").await.unwrap();
        lasted_under_99_secs += loader.loads() - 1;
        advance(1.2).await;
        group.get("ttl-100").await.unwrap();
        assert!(loader.loads() >= 2, "none lengthens it");
    }
    // Uniform over 90..100 s: about 9 in 10 expire before 98.9 s; all 40 or none would mean
    // no spread.
    assert!(
        (10..40).contains(&lasted_under_99_secs),
        "{lasted_under_99_secs} of 40"
    );
}

#[test]
fn no_wall_clock_on_the_path() {
    // Only relative durations on this peer's own (tokio) clock: no `SystemTime` anywhere in
    // the library, so no clock of one peer is ever compared with another's.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../groupcache/src");
    let mut stack = vec![src];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files += 1;
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    !text.contains("SystemTime"),
                    "{} reads the wall clock",
                    path.display()
                );
            }
        }
    }
    assert!(files > 20, "read the library's sources ({files} files)");
}
