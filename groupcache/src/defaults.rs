//! Every default, in one place: what a setting is when its builder method is not called.
//!
//! | setting | default | set with |
//! |---|---|---|
//! | main cache capacity | [`MAIN_CACHE_CAPACITY`] (64 MiB) | [`GroupBuilder::main_cache_capacity`] |
//! | hot cache capacity | 1/8 of the main cache's | [`GroupBuilder::hot_cache_capacity`] |
//! | main cache time to live | none | [`GroupBuilder::main_cache_ttl`] |
//! | longest time to live a loader may choose | none | [`GroupBuilder::max_ttl`] |
//! | time-to-live jitter | [`TTL_JITTER`] (10%) | [`GroupBuilder::ttl_jitter`] |
//! | `NotFound` cached for | not cached | [`GroupBuilder::not_found_ttl`] |
//! | hot cache time to live | [`HOT_CACHE_TTL`] (60 s) | [`GroupBuilder::hot_cache_ttl`] |
//! | hot cache policy | [`PromoteOneIn(10)`](crate::cache::PromoteOneIn), besides values marked hot and while the hot cache has room | [`GroupBuilder::hot_cache_policy`] |
//! | requests that make a key hot, as its owner | [`HOT_KEY_THRESHOLD`] (4) | [`GroupBuilder::hot_key_threshold`] |
//! | codec | [`Postcard`](crate::codec::Postcard) | [`GroupBuilder::codec`] |
//! | cache backend | [`CacheBackend::QuickCache`](crate::cache::CacheBackend) | [`GroupBuilder::cache_backend`] |
//! | peer timeout | [`PEER_TIMEOUT`] (2 s) | [`GroupcacheBuilder::peer_timeout`] |
//! | connect timeout | [`CONNECT_TIMEOUT`] (1 s) | [`GroupcacheBuilder::connect_timeout`] |
//! | maximum key length | [`MAX_KEY_LEN`] (1 KiB) | [`GroupcacheBuilder::max_key_len`] |
//! | maximum value size | [`MAX_VALUE_SIZE`] (8 MiB) | [`GroupcacheBuilder::max_value_size`] |
//! | keys per `GetMany` request | [`MAX_BATCH_KEYS`] (256) | fixed: [`Group::get_many`] splits larger batches |
//! | virtual nodes | [`VIRTUAL_NODES`] (768) | [`GroupcacheBuilder::virtual_nodes`] |
//! | peer failure threshold | [`PEER_FAILURE_THRESHOLD`] (3) | [`GroupcacheBuilder::peer_failure_threshold`] |
//! | peer cool-down | [`PEER_COOL_DOWN`] (5 s) | [`GroupcacheBuilder::peer_cool_down`] |
//! | handoff window | [`HANDOFF_WINDOW`] (30 s) | [`GroupcacheBuilder::handoff_window`] |
//! | hot copy lease (the partition bound) | [`HOT_COPY_LEASE`] (5 s) | [`GroupcacheBuilder::hot_copy_lease`] |
//! | streams per connection | [`MAX_CONCURRENT_STREAMS`] (1024) | [`GroupcacheBuilder::max_concurrent_streams`] |
//! | metric name prefix | [`METRICS_PREFIX`] (`groupcache`) | `GroupcacheBuilder::metrics_prefix` |
//! | discovery interval | [`DISCOVERY_INTERVAL`] (5 s) | [`DiscoveryDriver::interval`] |
//! | discovery jitter | [`DISCOVERY_JITTER`] (500 ms) | [`DiscoveryDriver::jitter`] |
//! | discovery backoff cap | [`DISCOVERY_MAX_BACKOFF`] (60 s) | [`DiscoveryDriver::max_backoff`] |
//! | discovery poll timeout | [`DISCOVERY_POLL_TIMEOUT`] (10 s) | [`DiscoveryDriver::poll_timeout`] |
//!
//! [`GroupBuilder::main_cache_capacity`]: crate::GroupBuilder::main_cache_capacity
//! [`GroupBuilder::hot_cache_capacity`]: crate::GroupBuilder::hot_cache_capacity
//! [`GroupBuilder::main_cache_ttl`]: crate::GroupBuilder::main_cache_ttl
//! [`GroupBuilder::hot_cache_ttl`]: crate::GroupBuilder::hot_cache_ttl
//! [`GroupBuilder::max_ttl`]: crate::GroupBuilder::max_ttl
//! [`GroupBuilder::ttl_jitter`]: crate::GroupBuilder::ttl_jitter
//! [`GroupBuilder::not_found_ttl`]: crate::GroupBuilder::not_found_ttl
//! [`GroupBuilder::hot_cache_policy`]: crate::GroupBuilder::hot_cache_policy
//! [`GroupBuilder::hot_key_threshold`]: crate::GroupBuilder::hot_key_threshold
//! [`GroupBuilder::codec`]: crate::GroupBuilder::codec
//! [`GroupBuilder::cache_backend`]: crate::GroupBuilder::cache_backend
//! [`GroupcacheBuilder::peer_timeout`]: crate::GroupcacheBuilder::peer_timeout
//! [`GroupcacheBuilder::connect_timeout`]: crate::GroupcacheBuilder::connect_timeout
//! [`GroupcacheBuilder::max_key_len`]: crate::GroupcacheBuilder::max_key_len
//! [`GroupcacheBuilder::max_value_size`]: crate::GroupcacheBuilder::max_value_size
//! [`Group::get_many`]: crate::Group::get_many
//! [`GroupcacheBuilder::virtual_nodes`]: crate::GroupcacheBuilder::virtual_nodes
//! [`GroupcacheBuilder::max_concurrent_streams`]: crate::GroupcacheBuilder::max_concurrent_streams
//! [`GroupcacheBuilder::peer_failure_threshold`]: crate::GroupcacheBuilder::peer_failure_threshold
//! [`GroupcacheBuilder::peer_cool_down`]: crate::GroupcacheBuilder::peer_cool_down
//! [`GroupcacheBuilder::handoff_window`]: crate::GroupcacheBuilder::handoff_window
//! [`GroupcacheBuilder::hot_copy_lease`]: crate::GroupcacheBuilder::hot_copy_lease
//! [`DiscoveryDriver::interval`]: crate::discovery::DiscoveryDriver::interval
//! [`DiscoveryDriver::jitter`]: crate::discovery::DiscoveryDriver::jitter
//! [`DiscoveryDriver::max_backoff`]: crate::discovery::DiscoveryDriver::max_backoff
//! [`DiscoveryDriver::poll_timeout`]: crate::discovery::DiscoveryDriver::poll_timeout

use std::time::Duration;

pub use crate::discovery::driver::{
    DEFAULT_DISCOVERY_INTERVAL as DISCOVERY_INTERVAL, DEFAULT_DISCOVERY_JITTER as DISCOVERY_JITTER,
    DEFAULT_DISCOVERY_MAX_BACKOFF as DISCOVERY_MAX_BACKOFF,
    DEFAULT_DISCOVERY_POLL_TIMEOUT as DISCOVERY_POLL_TIMEOUT,
};

/// Main cache capacity of a group: 64 MiB of encoded values and keys.
pub const MAIN_CACHE_CAPACITY: u64 = 64 * 1024 * 1024;
/// Time to live of hot cache entries: 60 s.
pub const HOT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Requests from peers for one key, within the owner's recent window (about 80,000 of its
/// requests), from which the owner marks the key hot in its answers: 4.
pub const HOT_KEY_THRESHOLD: u32 = 4;
/// Deadline of a peer request: 2 s.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline for opening a connection to a peer: 1 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Maximum key length: 1 KiB.
pub const MAX_KEY_LEN: usize = 1024;
/// Most keys in one `GetMany` request (one batch of [`Group::get_many`](crate::Group::get_many)
/// to one owner): 256. A larger batch for one owner is sent as several requests; an owner
/// refuses a request with more keys (`InvalidArgument`). With keys of the maximum length the
/// request is at most 256 `Get` requests' worth of bytes (~290 KiB by default), the limit the
/// service sets for `GetMany`; the reply is held to the reply limit, as for `Get`.
pub const MAX_BATCH_KEYS: usize = 256;
/// Whether concurrent gets for one owner share requests
/// ([`coalesce_gets`](crate::GroupcacheBuilder::coalesce_gets)): off.
pub const COALESCE_GETS: bool = false;
/// Requests in flight to one owner past which, with coalescing on, further gets wait to share
/// one request: 4 (2 left more gets queued, with a worse p99, in `compare` at 100 B).
pub const COALESCE_IN_FLIGHT: usize = 4;
/// How long, with coalescing on, the first get to an idle owner waits for others to share its
/// request ([`coalesce_window`](crate::GroupcacheBuilder::coalesce_window)): zero, none.
pub const COALESCE_WINDOW: Duration = Duration::ZERO;
/// Points per peer on the hash ring: 768.
pub const VIRTUAL_NODES: usize = crate::ring::DEFAULT_VNODES;
/// Maximum encoded value size: 8 MiB.
pub const MAX_VALUE_SIZE: usize = 8 * 1024 * 1024;
/// Transport failures in a row after which a peer is considered out: 3.
pub const PEER_FAILURE_THRESHOLD: u32 = 3;
/// How long a peer considered out is routed around before a probe: 5 s (jittered by 20%).
pub const PEER_COOL_DOWN: Duration = Duration::from_secs(5);
/// How long after a membership change a new owner asks the previous one first: 30 s.
pub const HANDOFF_WINDOW: Duration = Duration::from_secs(30);
/// How long hot copies of an owner's values are served after it last answered: 5 s.
pub const HOT_COPY_LEASE: Duration = Duration::from_secs(5);
/// How much of each time to live in the main cache is cut off at random (up to): 10%, so
/// that values loaded together do not all expire, and reload, together.
pub const TTL_JITTER: f64 = 0.1;
/// Concurrent requests on one peer connection (HTTP/2 streams): 1024.
pub const MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Prefix of exported metric names (feature `metrics`): `groupcache`.
pub const METRICS_PREFIX: &str = "groupcache";
