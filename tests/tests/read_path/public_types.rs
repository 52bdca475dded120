//! Static checks: every public type of `groupcache` can be shared between threads, and the
//! futures of its async methods can be spawned on a multi-threaded runtime. A type or future
//! that stops being `Send` or `Sync` (an `Rc` or a `RefCell` slipped into it, a lock guard
//! held across an `.await`) fails to compile here, not in a user's `tokio::spawn`.

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use groupcache::cache::{CacheBackend, PromoteOneIn};
use groupcache::codec::{Postcard, Raw};
use groupcache::discovery::{
    DiscoveryDriver, DiscoveryHandle, DiscoveryStatus, DnsPeers, PeerEntry, PeersFile, StaticPeers,
};
use groupcache::peer::{GroupcacheService, LazyConnector, PeerView};
use groupcache::security::{PeerTls, PeerToken, PeerTokenLayer, RequirePeerToken};
use groupcache::stats::{PeerSetStats, Stats, TierStats};
use groupcache::trace::{PropagateTrace, TraceContext, TraceKeys, TraceLayer, TraceService};
use groupcache::{
    BoxError, Error, ErrorKind, Group, GroupBuilder, Groupcache, GroupcacheBuilder, GroupcachePeer,
    NotFound,
};
use groupcache_tests::{CountingLoader, GROUP};

fn assert_send_sync<T: Send + Sync>() {}

fn assert_static<T: 'static>() {}

fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}

/// Takes the future without polling it: only its type is checked.
fn assert_send_future<F: Future + Send>(_: F) {}

/// Takes the future without polling it; `'static` as well, as `tokio::spawn` requires.
fn assert_spawnable<F: Future + Send + 'static>(_: F) {}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<Groupcache>();
    assert_send_sync::<GroupcacheBuilder>();
    assert_send_sync::<Group<String>>();
    assert_send_sync::<GroupBuilder<String>>();
    assert_send_sync::<GroupBuilder<Bytes, Raw>>();
    assert_send_sync::<GroupcacheService>();
    assert_send_sync::<GroupcachePeer>();
    assert_send_sync::<Error>();
    assert_send_sync::<ErrorKind>();
    assert_send_sync::<BoxError>();
    assert_send_sync::<NotFound>();
    assert_send_sync::<PeerSetStats>();
    assert_send_sync::<Stats>();
    assert_send_sync::<TierStats>();
    assert_send_sync::<PeerView>();
    assert_send_sync::<PeerToken>();
    assert_send_sync::<PeerTokenLayer>();
    assert_send_sync::<RequirePeerToken<GroupcacheService>>();
    assert_send_sync::<PeerTls>();
    assert_send_sync::<PropagateTrace>();
    assert_send_sync::<TraceLayer>();
    assert_send_sync::<TraceService<groupcache::peer::GroupcacheService>>();
    assert_send_sync::<TraceContext>();
    assert_send_sync::<TraceKeys>();
    assert_send_sync::<PromoteOneIn>();
    assert_send_sync::<LazyConnector>();
    assert_send_sync::<Postcard>();
    assert_send_sync::<Raw>();
    assert_send_sync::<CacheBackend>();
    assert_send_sync::<DiscoveryDriver<StaticPeers>>();
    assert_send_sync::<DiscoveryHandle>();
    assert_send_sync::<DiscoveryStatus>();
    assert_send_sync::<StaticPeers>();
    assert_send_sync::<PeerEntry>();
    assert_send_sync::<DnsPeers>();
    assert_send_sync::<PeersFile>();
    assert_send_sync::<tonic::transport::server::TcpIncoming>();

    // Handles are kept in application state for the life of the program.
    assert_static::<Groupcache>();
    assert_static::<Group<String>>();
    assert_static::<GroupcacheService>();
    assert_static::<RequirePeerToken<GroupcacheService>>();
    assert_static::<DiscoveryHandle>();

    // `?` turns both into a `BoxError`, and they name their cause.
    assert_error::<Error>();
    assert_error::<NotFound>();
}

#[tokio::test]
async fn the_futures_of_async_methods_are_send() {
    let me: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let cache = Groupcache::builder(me).build();
    let group = cache
        .group(GROUP, CountingLoader::new())
        .build()
        .expect("the group");
    let peer = GroupcachePeer::from(me);

    // They borrow the handle and the key (so they are not `'static`): spawn a clone's get, as
    // `groupcache_tests::spawn_get` does. Membership changes (`set_peers`, `add_peer`,
    // `remove_peer`) are synchronous now: there is no future to check.
    assert_send_future(group.get("k"));
    assert_send_future(group.remove("k"));
    assert_send_future(cache.describe_peer(&peer, Some("k")));
    assert_send_future(TraceContext::new_root().scope(group.get("k")));
    let entry: PeerEntry = "127.0.0.1:1".parse().unwrap();
    assert_send_future(entry.resolve());
    let statics = StaticPeers::parse("127.0.0.1:1").unwrap();
    assert_send_future(statics.find_me(None));

    let owned = group.clone();
    assert_spawnable(async move { owned.get("k").await });
    let owned = group.clone();
    assert_spawnable(async move { owned.remove("k").await });
    let owned = cache.clone();
    assert_spawnable(async move { owned.describe_peer(&peer, None).await });
    let handle = DiscoveryDriver::new(cache.clone(), statics).spawn();
    assert_spawnable(handle.shutdown());
}
