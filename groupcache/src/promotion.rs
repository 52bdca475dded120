//! Which values fetched from other peers are copied into the hot cache.

use std::fmt::Debug;

/// Decides whether a value fetched from its owner is kept in this peer's hot cache.
///
/// A hot copy turns the next `get` of that key into a local hit (no network hop), at the cost
/// of memory and of staleness after a `remove` (see
/// [`Group::remove`](crate::Group::remove)). The default, [`PromoteOneIn::default`],
/// keeps 1 fetch in 10 at random, as Go groupcache does, so that only keys fetched often end up
/// hot.
///
/// ```
/// use groupcache::cache::HotCachePolicy;
///
/// /// Keep only small values.
/// #[derive(Debug)]
/// struct SmallOnly;
///
/// impl HotCachePolicy for SmallOnly {
///     fn should_promote(&self, _key: &str, encoded_len: usize) -> bool {
///         encoded_len <= 4096
///     }
/// }
/// ```
pub trait HotCachePolicy: Debug + Send + Sync + 'static {
    /// Called once per value fetched from a peer, with the key and the encoded value's length.
    fn should_promote(&self, key: &str, encoded_len: usize) -> bool;
}

/// Promote one fetched value in `n`, chosen at random. `PromoteOneIn(1)` promotes every value;
/// `PromoteOneIn(0)` none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromoteOneIn(pub u32);

impl Default for PromoteOneIn {
    /// One in ten, as Go groupcache.
    fn default() -> Self {
        PromoteOneIn(10)
    }
}

impl HotCachePolicy for PromoteOneIn {
    fn should_promote(&self, _key: &str, _encoded_len: usize) -> bool {
        match self.0 {
            0 => false,
            1 => true,
            n => fastrand::u32(..n) == 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_in_n_promotes_about_one_in_n() {
        let policy = PromoteOneIn(10);
        let promoted = (0..100_000)
            .filter(|_| policy.should_promote("k", 1))
            .count();
        assert!((8_000..12_000).contains(&promoted), "{promoted}");
    }

    #[test]
    fn one_and_zero_are_always_and_never() {
        assert!((0..1000).all(|_| PromoteOneIn(1).should_promote("k", 1)));
        assert!((0..1000).all(|_| !PromoteOneIn(0).should_promote("k", 1)));
    }
}
