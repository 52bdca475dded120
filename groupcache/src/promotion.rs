//! Which values fetched from other peers are copied into the hot cache.

use std::fmt::Debug;

/// Decides whether a value fetched from its owner is kept in this peer's hot cache.
///
/// A hot copy turns the next `get` of that key into a local hit (no network hop), at the cost
/// of memory and of staleness after a `remove` (see
/// [`Group::remove`](crate::Group::remove)). The default, [`PromoteOneIn::default`], keeps
/// every value while the hot cache has room for it, every value its owner marks hot (the owner
/// counts how often peers ask it for each key: see
/// [`GroupBuilder::hot_key_threshold`](crate::GroupBuilder::hot_key_threshold)) and, besides,
/// 1 fetch in 10 at random, as Go groupcache does.
///
/// ```
/// use groupcache::cache::{FetchedValue, HotCachePolicy};
///
/// /// Keep only small values, and only those their owner marks hot.
/// #[derive(Debug)]
/// struct SmallAndHot;
///
/// impl HotCachePolicy for SmallAndHot {
///     fn should_promote(&self, _key: &str, encoded_len: usize) -> bool {
///         encoded_len <= 4096
///     }
///
///     fn should_promote_fetched(&self, fetched: &FetchedValue<'_>) -> bool {
///         fetched.marked_hot() && self.should_promote(fetched.key(), fetched.encoded_len())
///     }
/// }
/// ```
pub trait HotCachePolicy: Debug + Send + Sync + 'static {
    /// Called for a value fetched from a peer, with the key and the encoded value's length,
    /// by the default [`should_promote_fetched`](Self::should_promote_fetched) when the owner
    /// did not mark the key hot.
    fn should_promote(&self, key: &str, encoded_len: usize) -> bool;

    /// Called once per value fetched from its owner, with what the owner said of it (and for a
    /// value this peer loaded itself because the owner did not answer, never marked). The
    /// default keeps every value the owner marked hot, and asks
    /// [`should_promote`](Self::should_promote) about the others.
    fn should_promote_fetched(&self, fetched: &FetchedValue<'_>) -> bool {
        fetched.marked_hot() || self.should_promote(fetched.key(), fetched.encoded_len())
    }
}

/// A value fetched from its owner, as a [`HotCachePolicy`] sees it.
#[derive(Clone, Copy)]
pub struct FetchedValue<'a> {
    key: &'a str,
    encoded_len: usize,
    marked_hot: bool,
    /// Asked only when a policy wants to know: it reads the hot cache's size.
    room: &'a (dyn Fn() -> bool + Sync),
}

/// The room of a hot cache that has none.
const NO_ROOM: &(dyn Fn() -> bool + Sync) = &|| false;

impl<'a> FetchedValue<'a> {
    pub(crate) fn new(key: &'a str, encoded_len: usize, marked_hot: bool) -> Self {
        FetchedValue {
            key,
            encoded_len,
            marked_hot,
            room: NO_ROOM,
        }
    }

    /// This value, in a hot cache whose room `room` tells (read only if a policy asks).
    pub(crate) fn with_room(self, room: &'a (dyn Fn() -> bool + Sync)) -> Self {
        FetchedValue { room, ..self }
    }

    /// The key.
    #[must_use]
    pub fn key(&self) -> &'a str {
        self.key
    }

    /// The encoded value's length in bytes (what a hot copy weighs, with the key).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.encoded_len
    }

    /// Whether the owner marked the key hot: peers have lately asked it for the key at least
    /// its [`hot_key_threshold`](crate::GroupBuilder::hot_key_threshold) times.
    #[must_use]
    pub fn marked_hot(&self) -> bool {
        self.marked_hot
    }

    /// Whether the hot cache has room for a copy of this value beside what it holds, so that
    /// keeping it would evict nothing (what it holds plus the copy's weight, key and encoded
    /// value, is within [`hot_cache_capacity`](crate::GroupBuilder::hot_cache_capacity)).
    /// Read from the cache's size when called, so approximate while other values are being
    /// stored.
    #[must_use]
    pub fn hot_cache_has_room(&self) -> bool {
        (self.room)()
    }
}

impl Debug for FetchedValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedValue")
            .field("key", &self.key)
            .field("encoded_len", &self.encoded_len)
            .field("marked_hot", &self.marked_hot)
            .finish_non_exhaustive()
    }
}

/// Promote every value its owner marks hot, every value the hot cache has room for, and one
/// other fetched value in `n`, chosen at random. `PromoteOneIn(1)` promotes every value;
/// `PromoteOneIn(0)` none, not even marked ones (no hot copies at all).
///
/// While the hot cache is not full, a copy evicts nothing: it costs only memory the hot cache
/// was given, and turns the next `get` of its key into a local hit. Once the hot cache is full,
/// a copy takes the place of another, and only the values the owner marks hot and 1 in `n` of
/// the others (Go groupcache's rule) are let in; the cache's own eviction then keeps those
/// read most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromoteOneIn(pub u32);

impl Default for PromoteOneIn {
    /// Marked values, and one in ten of the others, as Go groupcache.
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

    fn should_promote_fetched(&self, fetched: &FetchedValue<'_>) -> bool {
        self.0 != 0
            && (fetched.marked_hot()
                || self.should_promote(fetched.key(), fetched.encoded_len())
                || fetched.hot_cache_has_room())
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
    fn marked_values_are_promoted_unless_none_are() {
        let marked = FetchedValue::new("k", 1, true);
        assert!((0..1000).all(|_| PromoteOneIn(1_000_000).should_promote_fetched(&marked)));
        assert!((0..1000).all(|_| !PromoteOneIn(0).should_promote_fetched(&marked)));
        let unmarked = FetchedValue::new("k", 1, false);
        assert!((0..1000).all(|_| !PromoteOneIn(0).should_promote_fetched(&unmarked)));
        assert!((0..1000).all(|_| PromoteOneIn(1).should_promote_fetched(&unmarked)));
    }

    #[test]
    fn values_the_hot_cache_has_room_for_are_promoted_unless_none_are() {
        let room = || true;
        let fits = FetchedValue::new("k", 1, false).with_room(&room);
        assert!((0..1000).all(|_| PromoteOneIn(1_000_000).should_promote_fetched(&fits)));
        assert!((0..1000).all(|_| !PromoteOneIn(0).should_promote_fetched(&fits)));
        let full = FetchedValue::new("k", 1, false);
        let promoted = (0..1000)
            .filter(|_| PromoteOneIn(1_000_000).should_promote_fetched(&full))
            .count();
        assert!(promoted <= 1, "{promoted}");
    }

    #[test]
    fn one_and_zero_are_always_and_never() {
        assert!((0..1000).all(|_| PromoteOneIn(1).should_promote("k", 1)));
        assert!((0..1000).all(|_| !PromoteOneIn(0).should_promote("k", 1)));
    }
}
