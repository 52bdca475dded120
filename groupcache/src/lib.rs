//! A distributed read-through cache for tokio and tonic services, in the style of Go's
//! [groupcache](https://github.com/golang/groupcache).
//!
//! Every replica of your service is a cache peer. Each key has exactly one owner among the
//! peers, chosen by consistent hashing; only the owner calls your [`ValueLoader`] for it, so a
//! cold key reaches the database once per cluster, however many callers on however many
//! replicas ask at once. The other peers ask the owner over gRPC and may keep very hot values
//! in a local hot cache.
//!
//! # Quick start
//!
//! ```
//! use groupcache::{BoxError, Groupcache, ValueLoader};
//!
//! struct Squares;
//!
//! #[groupcache::async_trait]
//! impl ValueLoader for Squares {
//!     type Value = u64;
//!
//!     async fn load(&self, key: &str) -> Result<u64, BoxError> {
//!         let n: u64 = key.parse()?;
//!         Ok(n * n)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), groupcache::Error> {
//! let me: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
//! let cache = Groupcache::builder(me, Squares).build();
//!
//! // In a real service: mount `cache.grpc_service()` in your tonic server and feed
//! // `cache.set_peers(..)` from service discovery. With no peers, every key is local.
//! assert_eq!(cache.get("12").await?, 144);
//! assert_eq!(cache.get("12").await?, 144); // served from the main cache
//! assert_eq!(cache.stats().local_loads, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Semantics
//!
//! 1. **Lookup order.** `get(k)` looks in the hot cache, then the main cache, then asks the
//!    owner: this peer's loader if it owns `k` (the value goes into the main cache), otherwise
//!    the owning peer over gRPC.
//! 2. **Exactly once.** With stable membership and no faults, each key is loaded once across the
//!    cluster while it stays cached. Each peer sends at most one request per key at a time.
//! 3. **Detached loads.** A load runs in its own task: callers that give up do not cancel it.
//! 4. **Panics and errors.** A loader panic is caught and returned to every waiter as an
//!    error. Errors are never cached; all waiters of one load share the same error.
//! 5. **Fallback.** If the owner cannot be reached, the value is loaded locally (still
//!    deduplicated), counted in [`Stats::peer_errors`] and never stored in this peer's main
//!    cache. The owner's own answers (loader error, not found, unauthenticated) are returned.
//! 6. **No forwarding.** A request from a peer is answered by that peer, even if its ring
//!    disagrees: membership changes can cause a duplicate load, never a loop.
//! 7. **Ring.** Placement hashes raw bytes (XXH3) and is identical on every platform; 768
//!    virtual nodes per peer keep the busiest within 1.15x the mean.
//! 8. **Hot cache.** Values fetched from peers may be kept locally, 1 in 10 by default
//!    ([`HotCachePolicy`]), bounded at 1/8 of the main cache and served for at most 60 s.
//! 9. **Remove.** [`Groupcache::remove`] clears this peer and the owner; other peers' hot copies
//!    live until their TTL.
//! 10. **Deadlines.** Every peer request has a deadline ([`GroupcacheBuilder::peer_timeout`]),
//!     and a peer's service answers every request within it. Serve on a listener
//!     from [`bind`] or [`incoming`]: they set `TCP_NODELAY`, which tonic's
//!     `serve_with_incoming` does not.
//! 11. **Bad input.** Oversized keys are refused before any request; oversized or malformed
//!     messages get a gRPC status; the server keeps serving.
//!
//! # Cargo features
//!
//! | feature | what it adds |
//! |---|---|
//! | `bincode` | the `Bincode` codec (bincode 2; unmaintained upstream, opt-in only) |
//! | `tls` | `PeerTls`: TLS and mutual TLS for peer links (tonic's rustls, ring provider) |
//! | `metrics` | counters, latency histograms and cache gauges through the `metrics` facade |
//! | `test-util` | `inflight_len`, `inflight_waiters`, `inflight_load_waiters` for black-box tests |

#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod cache;
mod codec;
mod describe;
mod discovery;
mod error;
mod flight;
mod handle;
mod loader;
mod log_throttle;
mod outcome;
mod peer;
mod promotion;
mod ring;
mod routing;
mod stats;
mod telemetry;
#[cfg(feature = "tls")]
mod tls;
mod trace;

pub use builder::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_HOT_CACHE_TTL, DEFAULT_MAIN_CACHE_CAPACITY,
    DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_MAX_KEY_LEN, DEFAULT_MAX_VALUE_SIZE,
    DEFAULT_METRICS_PREFIX, DEFAULT_PEER_TIMEOUT, DEFAULT_VIRTUAL_NODES, GroupcacheBuilder,
};
pub use cache::CacheBackend;
#[cfg(feature = "bincode")]
pub use codec::Bincode;
pub use codec::{Codec, Postcard};
pub use describe::PeerView;
pub use discovery::dns_peers::DnsPeers;
pub use discovery::driver::{
    DEFAULT_DISCOVERY_INTERVAL, DEFAULT_DISCOVERY_JITTER, DEFAULT_DISCOVERY_MAX_BACKOFF,
    DEFAULT_DISCOVERY_POLL_TIMEOUT, DiscoveryDriver, DiscoveryHandle, DiscoveryStatus,
};
pub use discovery::peers_file::PeersFile;
pub use discovery::service_discovery::ServiceDiscovery;
pub use discovery::static_peers::{PeerEntry, StaticPeers};
pub use error::{BoxError, Error, ErrorKind};
pub use handle::Groupcache;
pub use loader::{NotFound, ValueLoader};
pub use peer::GroupcachePeer;
pub use peer::connector::{LazyConnector, PeerConnector};
pub use peer::listener::{bind, incoming};
pub use peer::server::GroupcacheService;
pub use peer::token::{MAX_PEER_TOKEN_LEN, PeerToken};
pub use promotion::{HotCachePolicy, PromoteOneIn};
pub use stats::{Stats, TierStats};
#[cfg(feature = "tls")]
pub use tls::{PeerTls, TLS_HANDSHAKE_TIMEOUT};
pub use trace::{TraceContext, TraceKeys};

/// Re-exported so that loaders can be written as `#[groupcache::async_trait]` without a
/// direct dependency.
pub use async_trait::async_trait;

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
