//! Named groups on one peer set (issue 11): several caches with different value types and codecs
//! behind one server port per peer, each loading every key exactly once cluster-wide; the same
//! key in two groups is two values; a group one peer does not host is a clear error, never a
//! fallback load; stats per group; a value type without serde, with a codec of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use groupcache::codec::{Codec, Raw};
use groupcache::{BoxError, ErrorKind, Group, Groupcache, GroupcachePeer, ValueLoader};
use groupcache_tests::within_limit;
use serde::{Deserialize, Serialize};

/// Loads per key, for one group across every peer.
#[derive(Default, Clone)]
struct Loads(Arc<Mutex<HashMap<String, u32>>>);

impl Loads {
    fn count(&self, key: &str) {
        *self.0.lock().unwrap().entry(key.to_owned()).or_default() += 1;
    }

    fn of(&self, key: &str) -> u32 {
        self.0.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn total(&self) -> u32 {
        self.0.lock().unwrap().values().sum()
    }
}

/// A serde struct, through the default codec (postcard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    key: String,
    id: u64,
}

struct Profiles(Loads);

#[groupcache::async_trait]
impl ValueLoader for Profiles {
    type Value = Profile;
    async fn load(&self, key: &str) -> Result<Profile, BoxError> {
        self.0.count(key);
        // Suspends once, so that concurrent gets on every peer overlap with the load.
        tokio::task::yield_now().await;
        Ok(Profile {
            key: key.to_owned(),
            id: key.len() as u64,
        })
    }
}

struct Names(Loads);

#[groupcache::async_trait]
impl ValueLoader for Names {
    type Value = String;
    async fn load(&self, key: &str) -> Result<String, BoxError> {
        self.0.count(key);
        tokio::task::yield_now().await;
        Ok(format!("name of {key}"))
    }
}

/// Raw bytes, through the pass-through codec.
struct Blobs(Loads);

#[groupcache::async_trait]
impl ValueLoader for Blobs {
    type Value = Bytes;
    async fn load(&self, key: &str) -> Result<Bytes, BoxError> {
        self.0.count(key);
        tokio::task::yield_now().await;
        Ok(Bytes::from(format!("\0blob\u{1}{key}").into_bytes()))
    }
}

/// One peer: its peer set and its three groups, served on one port.
struct Peer {
    cache: Groupcache,
    profiles: Group<Profile>,
    names: Group<String>,
    blobs: Group<Bytes>,
}

/// Starts `n` peers on loopback, each serving all three groups on one port, all knowing each
/// other.
async fn three_group_cluster(n: usize, loads: &[Loads; 3]) -> Vec<Peer> {
    let mut peers = Vec::new();
    for _ in 0..n {
        let incoming = groupcache::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let me = incoming.local_addr().unwrap();
        let cache = Groupcache::builder(me).build();
        let profiles = cache
            .group("profiles", Profiles(loads[0].clone()))
            .build()
            .unwrap();
        let names = cache
            .group("names", Names(loads[1].clone()))
            .build()
            .unwrap();
        let blobs = cache
            .group("blobs", Blobs(loads[2].clone()))
            .codec(Raw)
            .build()
            .unwrap();
        let server = cache
            .server_builder()
            .unwrap()
            .add_service(cache.grpc_service());
        tokio::spawn(server.serve_with_incoming(incoming));
        peers.push(Peer {
            cache,
            profiles,
            names,
            blobs,
        });
    }
    let members: Vec<GroupcachePeer> = peers.iter().map(|p| p.cache.me().clone()).collect();
    for peer in &peers {
        peer.cache.set_peers(members.clone()).unwrap();
    }
    peers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_groups_on_one_port_each_load_every_key_once() {
    within_limit(async {
        let loads: [Loads; 3] = Default::default();
        let peers = three_group_cluster(3, &loads).await;
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        // Every key owned somewhere else than this peer is asked of its owner: with 40 keys
        // and 3 peers, each peer owns some and fetches the rest.
        let owners: std::collections::HashSet<_> =
            keys.iter().map(|k| peers[0].cache.owner_of(k)).collect();
        assert_eq!(owners.len(), 3, "the keys spread over every peer");

        // Every peer, 4 callers each, every key of every group, released together.
        let start = Arc::new(tokio::sync::Barrier::new(3 * 4));
        let mut callers = Vec::new();
        for peer in &peers {
            for _ in 0..4 {
                let (profiles, names, blobs) = (
                    peer.profiles.clone(),
                    peer.names.clone(),
                    peer.blobs.clone(),
                );
                let (keys, start) = (keys.clone(), Arc::clone(&start));
                callers.push(tokio::spawn(async move {
                    start.wait().await;
                    let mut asks = Vec::new();
                    for key in &keys {
                        let (profiles, names, blobs) = (&profiles, &names, &blobs);
                        asks.push(async move {
                            let (p, n, b) =
                                tokio::join!(profiles.get(key), names.get(key), blobs.get(key));
                            (key.clone(), p.unwrap(), n.unwrap(), b.unwrap())
                        });
                    }
                    futures_util::future::join_all(asks).await
                }));
            }
        }
        for caller in callers {
            for (key, profile, name, blob) in caller.await.unwrap() {
                // The same key in three groups: three values, from three loaders.
                assert_eq!(
                    profile,
                    Profile {
                        key: key.clone(),
                        id: key.len() as u64
                    }
                );
                assert_eq!(name, format!("name of {key}"));
                assert_eq!(&blob[..], format!("\0blob\u{1}{key}").as_bytes());
            }
        }
        for (group, loads) in ["profiles", "names", "blobs"].iter().zip(&loads) {
            for key in &keys {
                assert_eq!(loads.of(key), 1, "{group}/{key} loads cluster-wide");
            }
        }

        // Stats per group: each group's loads add up to its keys, and only owners loaded.
        for group in ["profiles", "names", "blobs"] {
            let local_loads: u64 = peers
                .iter()
                .map(|p| p.cache.stats().group(group).expect("hosted").local_loads)
                .sum();
            assert_eq!(local_loads, keys.len() as u64, "{group}");
            let fetched: u64 = peers
                .iter()
                .map(|p| p.cache.stats().group(group).unwrap().peer_loads)
                .sum();
            assert!(fetched > 0, "{group}: some keys came from their owners");
        }
        for peer in &peers {
            let stats = peer.cache.stats();
            assert_eq!(
                stats.groups.keys().collect::<Vec<_>>(),
                ["blobs", "names", "profiles"]
            );
            assert_eq!(stats.unknown_group_requests, 0);
            assert_eq!(peer.names.stats(), stats.groups["names"]);
        }
    })
    .await;
}

struct Extra(Loads);

#[groupcache::async_trait]
impl ValueLoader for Extra {
    type Value = String;
    async fn load(&self, key: &str) -> Result<String, BoxError> {
        self.0.count(key);
        Ok(key.to_owned())
    }
}

#[tokio::test]
async fn a_group_the_owner_does_not_host_is_a_clear_error_and_no_load() {
    within_limit(async {
        let loads: [Loads; 3] = Default::default();
        let peers = three_group_cluster(2, &loads).await;
        // Only peer 0 has `extra`: a misconfiguration (or a rolling deploy adding a group).
        let extra_loads = Loads::default();
        let extra = peers[0]
            .cache
            .group("extra", Extra(extra_loads.clone()))
            .build()
            .unwrap();
        let remote_key = (0..)
            .map(|i| format!("key-{i}"))
            .find(|k| peers[0].cache.owner_of(k) == *peers[1].cache.me())
            .unwrap();
        let err = extra.get(&remote_key).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownGroup, "{err}");
        assert_eq!(err.group(), Some("extra"));
        assert_eq!(err.peer(), Some(peers[1].cache.me()));
        let text = err.to_string();
        assert!(text.contains("does not host group \"extra\""), "{text}");
        assert!(text.contains("same groups"), "says what to do: {text}");
        // Never hidden behind a local load.
        assert_eq!(extra_loads.total(), 0);
        let stats = extra.stats();
        assert_eq!(
            (stats.local_loads, stats.fallback_loads, stats.peer_errors),
            (0, 0, 0)
        );
        // The asker counted the refusal, and the owner the request it could not serve.
        assert_eq!(stats.peer_refusals, 1);
        assert_eq!(peers[1].cache.stats().unknown_group_requests, 1);
        // `remove` too.
        let err = extra.remove(&remote_key).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownGroup, "{err}");
        assert_eq!(peers[1].cache.stats().unknown_group_requests, 2);
        assert_eq!(extra.stats().peer_refusals, 2);
        // The groups both peers host still work.
        assert_eq!(
            peers[0].names.get(&remote_key).await.unwrap(),
            format!("name of {remote_key}")
        );
    })
    .await;
}

#[tokio::test]
async fn a_group_name_is_taken_once_and_found_again_by_type() {
    let cache = Groupcache::builder("127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap()).build();
    let loads = Loads::default();
    let names = cache.group("names", Names(loads.clone())).build().unwrap();
    let again = cache
        .group("names", Names(loads.clone()))
        .build()
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::GroupExists);
    assert_eq!(again.group(), Some("names"));
    let empty = cache.group("", Names(loads.clone())).build().unwrap_err();
    assert_eq!(empty.kind(), ErrorKind::Config);
    let long = cache
        .group("x".repeat(129), Names(loads))
        .build()
        .unwrap_err();
    assert_eq!(long.kind(), ErrorKind::Config);
    assert_eq!(cache.group_names(), ["names"]);
    let found: Group<String> = cache.get_group("names").expect("found by name and type");
    assert_eq!(found.name(), names.name());
    assert!(
        cache.get_group::<u64>("names").is_none(),
        "another value type"
    );
    assert!(cache.get_group::<String>("other").is_none());
}

// ===== a value type without serde =====

/// No serde: only a codec of its own can cache it.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    x: i32,
    y: i32,
}

struct PointCodec;

impl Codec<Point> for PointCodec {
    fn encode(&self, p: &Point) -> Result<Bytes, BoxError> {
        Ok(format!("{},{}", p.x, p.y).into())
    }

    fn decode(&self, bytes: Bytes) -> Result<Point, BoxError> {
        let text = std::str::from_utf8(&bytes)?;
        let (x, y) = text.split_once(',').ok_or("not x,y")?;
        Ok(Point {
            x: x.parse()?,
            y: y.parse()?,
        })
    }
}

struct Points(Loads);

#[groupcache::async_trait]
impl ValueLoader for Points {
    type Value = Point;
    async fn load(&self, key: &str) -> Result<Point, BoxError> {
        self.0.count(key);
        let n: i32 = key.parse()?;
        Ok(Point { x: n, y: -n })
    }
}

#[tokio::test]
async fn a_value_type_without_serde_is_cached_across_peers_with_its_codec() {
    within_limit(async {
        let loads = Loads::default();
        let peers = groupcache_tests::start_like_the_quick_start(2, |me| {
            let cache = Groupcache::builder(me).build();
            let points = cache
                .group("points", Points(loads.clone()))
                .codec(PointCodec)
                .build()
                .unwrap();
            (cache, points)
        })
        .await;
        for i in 0..20 {
            let key = i.to_string();
            for (_, points) in &peers {
                assert_eq!(points.get(&key).await.unwrap(), Point { x: i, y: -i });
            }
            assert_eq!(loads.of(&key), 1, "{key}");
        }
        let fetched: u64 = peers.iter().map(|(_, p)| p.stats().peer_loads).sum();
        assert!(
            fetched > 0,
            "some points crossed the wire through PointCodec"
        );
    })
    .await;
}
