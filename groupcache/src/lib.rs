//! A distributed read-through cache for tokio and tonic services, in the style of Go's
//! [groupcache](https://github.com/golang/groupcache).
//!
//! Every replica of your service is a cache peer. A peer set ([`Groupcache`], Go's `HTTPPool`)
//! hosts any number of named caches ([`Group`], Go's `Group`), each with its own loader, value
//! type and capacities, behind one gRPC service. Each key has exactly one owner among the peers,
//! chosen by consistent hashing; only the owner calls your [`ValueLoader`] for it, so a cold
//! key reaches the database once per cluster, however many callers on however many replicas
//! ask at once. The other peers ask the owner over gRPC and may keep very hot values in a local
//! hot cache.
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
//! let cache = Groupcache::builder(me).build();
//! let squares = cache.group("squares", Squares).build()?;
//!
//! // In a real service: mount `cache.grpc_service()` in your tonic server and feed
//! // `cache.set_peers(..)` from service discovery. With no peers, every key is local.
//! assert_eq!(squares.get("12").await?, 144);
//! assert_eq!(squares.get("12").await?, 144); // served from the main cache
//! assert_eq!(squares.stats().local_loads, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! Where a `get` goes, file by file:
//!
//! 1. [`Group::get`] (`group.rs`, the handle) opens the span and calls the group's lookup.
//! 2. `lookup.rs` holds one group's state: hot tier, then main tier (`cache.rs`), then a fetch
//!    flight per key (`flight.rs`).
//! 3. The flight asks `node.rs` where the key lives: the ring in `routing.rs` and `ring.rs`.
//! 4. Owned here: a load flight calls the loader, encodes with the group's codec (`codec.rs`)
//!    and stores in the main tier. Owned elsewhere: `peer/client.rs` asks the owner.
//! 5. The owner's `peer/server.rs` finds the group in `peer_set.rs` and enters `lookup.rs` at
//!    its peer entry point: main tier or the same load flight, never forwarded.
//!
//! [`Group::get_many`] takes the same steps per key; `lookup/batch.rs` sends each owner's
//! keys in one `GetMany` request (`peer/client/batch.rs`, answered in `peer/server/batch.rs`).
//! With [`GroupcacheBuilder::coalesce_gets`], `peer/client/coalesce.rs` lets single gets for
//! one owner that queue behind its requests in flight share such a request.
//!
//! [`Groupcache`] (`groupcache.rs`) owns the peer set: groups, membership, the service.
//! Errors cross the wire in `peer/status.rs`; counters are declared once in `stats.rs`.
//!
//! # Semantics
//!
//! 1. **Lookup order.** `get(k)` looks in the hot cache, then the main cache, then asks the
//!    owner: this peer's loader if it owns `k` (the value goes into the main cache), otherwise
//!    the owning peer over gRPC.
//! 2. **Exactly once.** With stable membership and no faults, each key of a group is loaded
//!    once across the cluster while it stays cached. Each peer sends at most one request per
//!    key at a time.
//! 3. **Detached loads.** A load runs in its own task: callers that give up do not cancel it.
//! 4. **Panics and errors.** A panic in the loader or the codec is caught and returned to every
//!    waiter as that code's error (a panicking hot cache policy keeps no copy, and is logged).
//!    Errors are never cached; all waiters of one load share the same error.
//! 5. **Substitute.** If the owner cannot be reached, the asker counts a
//!    [`peer_error`](stats::Stats::peer_errors) and asks the owner's substitute, the next peer
//!    on the ring (the same on every peer), which loads once for all and keeps the value for
//!    at most the hot cache TTL; if that fails too, it loads locally and keeps at most a hot
//!    copy. After [`peer_failure_threshold`](GroupcacheBuilder::peer_failure_threshold)
//!    failures in a row the owner's breaker opens: no request waits for it until a background
//!    probe finds it back. The owner's own answers (loader error, not found, unknown group,
//!    unauthenticated) are returned.
//! 6. **No forwarding.** A request from a peer is answered by that peer, even if its ring
//!    disagrees: membership changes can cause a duplicate load, never a loop.
//! 7. **Ring.** Placement hashes raw bytes (XXH3) and is identical on every platform; 768
//!    virtual nodes per peer keep the busiest within 1.15x the mean. One ring serves every
//!    group: a key has the same owner in each.
//! 8. **Hot cache.** Values fetched from peers may be kept locally: by default those their
//!    owner marks hot ([`GroupBuilder::hot_key_threshold`]) and 1 in 10 of the others
//!    ([`HotCachePolicy`](cache::HotCachePolicy)), bounded at 1/8 of the main cache and
//!    served for at most 60 s.
//! 9. **Remove.** [`Group::remove`] clears this peer and the owner (and, for the
//!    [`handoff_window`](GroupcacheBuilder::handoff_window) after a membership change, the
//!    previous owner); other peers' hot copies live until their TTL.
//! 10. **Deadlines.** Every peer request has a deadline
//!     ([`GroupcacheBuilder::peer_timeout`]), and a peer's service answers every request within
//!     it. Serve on a listener from [`bind`] or [`incoming`]: they set `TCP_NODELAY`, which
//!     tonic's `serve_with_incoming` does not.
//! 11. **Bad input.** Oversized keys are refused before any request; oversized or malformed
//!     messages get a gRPC status; the server keeps serving.
//! 12. **Groups.** Every request names its group. A peer asked for a group it does not host
//!     answers `NotFound`, and the asker returns [`ErrorKind::UnknownGroup`]: never a local
//!     load, which would hide the misconfiguration.
//!
//! # Modules
//!
//! | module | what is in it |
//! |---|---|
//! | [`codec`] | [`Codec`](codec::Codec), [`Postcard`](codec::Postcard) (default), [`Raw`](codec::Raw) (bytes), `Bincode` |
//! | [`cache`] | [`CacheBackend`](cache::CacheBackend), [`HotCachePolicy`](cache::HotCachePolicy), [`PromoteOneIn`](cache::PromoteOneIn), [`FetchedValue`](cache::FetchedValue) |
//! | [`discovery`] | [`DiscoveryDriver`](discovery::DiscoveryDriver) and providers: static, file, DNS, yours |
//! | [`peer`] | [`GroupcachePeer`], [`GroupcacheService`](peer::GroupcacheService), connectors, listeners, [`PeerView`](peer::PeerView) |
//! | [`security`] | [`PeerToken`](security::PeerToken), `PeerTls`, [`PeerTokenLayer`](security::PeerTokenLayer) |
//! | [`stats`] | [`Stats`](stats::Stats) (a group), [`PeerSetStats`](stats::PeerSetStats) (the service and every group) |
//! | [`trace`] | [`TraceContext`](trace::TraceContext), [`TraceKeys`](trace::TraceKeys), [`TraceLayer`](trace::TraceLayer) (server), [`PropagateTrace`](trace::PropagateTrace) (client) |
//! | [`defaults`] | every default, in one table |
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
#![warn(clippy::pedantic)]
// The pedantic lints that are wrong for this crate, and why:
#![allow(
    // Sizes and counts are bounded by memory or by a configured limit (and clamped before the
    // casts that could truncate on 32-bit targets); gauges are `f64` by the metrics facade's
    // design, exact to 2^53.
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    // Counter names are the proto's and Go groupcache's: `unauthenticated_requests`, ...
    clippy::struct_field_names,
    // Feature-gated code: without `tls` or `metrics`, some functions keep their signature but
    // have nothing to do (a `Result` that is always `Ok`, a `self` that is not read).
    clippy::unnecessary_wraps,
    clippy::unused_self
)]

mod builder;
pub mod cache;
pub mod codec;
pub mod defaults;
mod describe;
pub mod discovery;
mod error;
mod flight;
mod group;
mod group_builder;
mod groupcache;
mod invalidation;
mod key_rates;
mod loader;
mod log_throttle;
mod lookup;
mod node;
mod outcome;
pub mod peer;
mod peer_set;
mod promotion;
mod ring;
mod routing;
pub mod security;
pub mod stats;
mod telemetry;
#[cfg(feature = "tls")]
mod tls;
pub mod trace;

pub use builder::GroupcacheBuilder;
pub use error::{BoxError, Error, ErrorKind};
pub use group::Group;
pub use group_builder::GroupBuilder;
pub use groupcache::Groupcache;
pub use loader::{NotFound, ValueLoader};
pub use lookup::Invalidated;
pub use peer::{GroupcachePeer, bind, incoming};

/// Re-exported so that loaders can be written as `#[groupcache::async_trait]` without a
/// direct dependency.
pub use async_trait::async_trait;

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// The crate's own README (its crates.io page) stays true too.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct CrateReadmeDoctests;
