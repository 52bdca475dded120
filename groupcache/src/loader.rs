//! The user's source of truth: [`ValueLoader`].

use std::fmt;

use crate::BoxError;

/// Loads the value of a key from the source of truth (a database, a service, a file).
///
/// groupcache calls the loader only on the peer that owns the key (or, if the owner cannot be
/// reached, on the asking peer as a fallback), and only once per key at a time on that peer:
/// concurrent `get`s of one key share one call.
///
/// Return [`NotFound`] (boxed) to say that the key does not exist: callers then see
/// [`ErrorKind::NotFound`](crate::ErrorKind::NotFound), on every peer. Any other error is
/// reported as [`ErrorKind::Loader`](crate::ErrorKind::Loader) with your error as its source.
/// Errors are not cached, except `NotFound` where the group caches it
/// ([`GroupBuilder::not_found_ttl`](crate::GroupBuilder::not_found_ttl)). A panic in `load` is
/// caught and reported as
/// [`ErrorKind::LoaderPanicked`](crate::ErrorKind::LoaderPanicked).
///
/// The load runs in its own task: it finishes (and fills the cache) even if every caller that
/// asked for it has given up.
///
/// A loader may call `get` on other caches, or on the same cache for other keys, but must not
/// form a cycle (key `a` loading `b` loading `a`): on one peer that waits forever, across
/// peers it waits for the peer timeout and loads twice.
///
/// ```
/// use groupcache::{BoxError, NotFound, ValueLoader};
///
/// struct Users;
///
/// #[groupcache::async_trait]
/// impl ValueLoader for Users {
///     type Value = String;
///
///     async fn load(&self, key: &str) -> Result<String, BoxError> {
///         match key.strip_prefix("user-") {
///             Some(id) => Ok(format!("user #{id}")),
///             None => Err(NotFound.into()),
///         }
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait ValueLoader: Send + Sync + 'static {
    /// The type of the cached values.
    type Value;

    /// Loads the value of `key`.
    async fn load(&self, key: &str) -> Result<Self::Value, BoxError>;

    /// How long the owner caches `value`, just loaded (or stored with
    /// [`Group::set`](crate::Group::set)) for `key`: `None` (the default) takes the group's
    /// [`main_cache_ttl`](crate::GroupBuilder::main_cache_ttl). Capped by the group's
    /// [`max_ttl`](crate::GroupBuilder::max_ttl) and shortened by its
    /// [`ttl_jitter`](crate::GroupBuilder::ttl_jitter). Hot copies on other peers live no
    /// longer than the owner's entry: the owner's replies carry what the entry has left.
    ///
    /// ```
    /// use std::time::Duration;
    /// use groupcache::{BoxError, ValueLoader};
    ///
    /// /// A price quote, valid for as long as the quote says.
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct Quote {
    ///     cents: u64,
    ///     valid_for_secs: u64,
    /// }
    ///
    /// struct Quotes;
    ///
    /// #[groupcache::async_trait]
    /// impl ValueLoader for Quotes {
    ///     type Value = Quote;
    ///
    ///     async fn load(&self, _key: &str) -> Result<Quote, BoxError> {
    ///         Ok(Quote { cents: 1999, valid_for_secs: 30 })
    ///     }
    ///
    ///     fn time_to_live(&self, _key: &str, quote: &Quote) -> Option<Duration> {
    ///         Some(Duration::from_secs(quote.valid_for_secs))
    ///     }
    /// }
    /// ```
    fn time_to_live(&self, key: &str, value: &Self::Value) -> Option<std::time::Duration> {
        let _ = (key, value);
        None
    }
}

/// The error a [`ValueLoader`] returns to say that a key does not exist.
///
/// ```
/// use groupcache::{BoxError, NotFound};
///
/// let err: BoxError = NotFound.into();
/// assert!(err.is::<NotFound>());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NotFound;

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("key not found")
    }
}

impl std::error::Error for NotFound {}
