//! [`CacheBackend`]: which cache implementation holds the main and hot tiers.

/// The cache implementation behind both tiers, chosen with
/// [`GroupBuilder::cache_backend`](crate::GroupBuilder::cache_backend).
///
/// Both keep the same contract: capacity weighed in bytes (encoded value plus key), expiry
/// on tokio's clock kept by groupcache beside each value, eviction and expiration counters in
/// [`Stats`](crate::stats::Stats), and removals that a concurrent load can never undo. They differ
/// in cost and in which entries they keep when full:
///
/// | backend | hit (one lookup, measured) | when full |
/// |---|---|---|
/// | [`QuickCache`](Self::QuickCache) (default) | ~25-40 ns | CLOCK-Pro-like: new entries start cold, an entry read again is kept over one read once |
/// | [`Moka`](Self::Moka) | ~170-400 ns | `TinyLFU`: may decline a new entry whose key is seen rarely, in favour of the entries it would evict |
///
/// A local hit looks up the hot tier and then the main tier, so the backend's cost counts
/// twice for a main-cache hit: with moka a local hit cannot beat Go groupcache's 130 ns.
///
/// ```
/// use groupcache::cache::CacheBackend;
///
/// assert_eq!(CacheBackend::default(), CacheBackend::QuickCache);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheBackend {
    /// [quick_cache](https://docs.rs/quick_cache): sharded, read-locked lookups, no
    /// background work. The default.
    #[default]
    QuickCache,
    /// [moka](https://docs.rs/moka) (`sync::Cache`): `TinyLFU` admission, maintenance run in
    /// batches by the callers.
    Moka,
}
