//! The one public error type.
//!
//! An [`Error`] says what failed ([`ErrorKind`]), for which key, on which peer, and keeps the
//! underlying cause (the loader's error, a transport error) as [`std::error::Error::source`].
//! It is cheap to clone: every waiter of one load shares the same error value.

use std::fmt;
use std::sync::Arc;

use crate::GroupcachePeer;

/// A boxed error, as returned by a [`ValueLoader`](crate::ValueLoader) or a codec.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Longest part of a key quoted in an error message; longer keys are cut with `...`.
const KEY_IN_MESSAGE: usize = 64;

/// What went wrong in a groupcache operation.
///
/// Match on it to decide what to do: [`ErrorKind::NotFound`] is an answer, not a failure;
/// [`ErrorKind::Loader`] and [`ErrorKind::LoaderPanicked`] come from your loader (locally or on
/// the owning peer); [`ErrorKind::Peer`] means a peer could not be reached or misbehaved.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The loader returned an error (on this peer or on the owner). Never cached.
    Loader,
    /// The loader panicked. The panic was caught; nothing was cached.
    LoaderPanicked,
    /// The loader reported that the key does not exist (it returned [`NotFound`](crate::NotFound)).
    NotFound,
    /// The key is longer than the configured maximum key length. Nothing was sent.
    KeyTooLong,
    /// The encoded value is larger than the configured maximum value size.
    ValueTooLarge,
    /// The value could not be encoded or decoded by the codec.
    Codec,
    /// A peer could not be reached, timed out, or answered with something unusable.
    Peer,
    /// A peer refused this peer's credentials: a configuration error, never bypassed.
    Unauthenticated,
    /// A peer rejected the request as invalid.
    InvalidRequest,
    /// The load was abandoned before it finished, e.g. because the runtime shut down.
    Abandoned,
    /// A setting is invalid: a builder's (a peer token, TLS, a group name) or a peer list's.
    Config,
    /// A group of that name already exists on this peer set.
    GroupExists,
    /// The owner does not host the group asked for: the peers disagree on which groups exist
    /// (a rolling deploy that adds a group, or a misconfiguration). Never hidden behind a
    /// local load.
    UnknownGroup,
    /// Something other than a groupcache peer speaking this protocol version answers at the
    /// peer's address (gRPC `Unimplemented`): check the peer list, or upgrade every peer.
    WrongService,
    /// The peer named is not a member of this peer's ring.
    NotAMember,
    /// The peer connector could not open a channel to a peer.
    Connect,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Loader => "loader failed",
            ErrorKind::LoaderPanicked => "loader panicked",
            ErrorKind::NotFound => "not found",
            ErrorKind::KeyTooLong => "key too long",
            ErrorKind::ValueTooLarge => "value too large",
            ErrorKind::Codec => "codec failed",
            ErrorKind::Peer => "peer request failed",
            ErrorKind::Unauthenticated => "peer refused credentials",
            ErrorKind::InvalidRequest => "peer rejected the request",
            ErrorKind::Abandoned => "load abandoned",
            ErrorKind::Config => "invalid configuration",
            ErrorKind::GroupExists => "group already exists",
            ErrorKind::UnknownGroup => "unknown group",
            ErrorKind::WrongService => "not a groupcache peer",
            ErrorKind::NotAMember => "not a member",
            ErrorKind::Connect => "cannot connect",
        }
    }
}

/// The error returned by every fallible groupcache operation.
///
/// Its message names what failed, the key and the peer, for example
/// `loader failed for key "user-42" on peer 10.0.0.7:8080: connection refused`.
/// The original cause is available through [`std::error::Error::source`].
///
/// Cloning is cheap (one reference count): all callers waiting on one load receive clones of
/// the same error.
///
/// ```
/// use groupcache::{Error, ErrorKind};
///
/// fn retryable(err: &Error) -> bool {
///     matches!(err.kind(), ErrorKind::Peer | ErrorKind::Abandoned)
/// }
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ErrorKind,
    group: Option<Box<str>>,
    key: Option<Box<str>>,
    peer: Option<GroupcachePeer>,
    detail: String,
    source: Option<BoxError>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error {
            inner: Arc::new(Inner {
                kind,
                group: None,
                key: None,
                peer: None,
                detail: detail.into(),
                source: None,
            }),
        }
    }

    /// Builds an error with a cause. Called only while the error is uniquely owned.
    pub(crate) fn with_source(mut self, source: BoxError) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.source = Some(source);
        }
        self
    }

    pub(crate) fn with_key(mut self, key: &str) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.key = Some(key.into());
        }
        self
    }

    pub(crate) fn with_group(mut self, group: &str) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.group = Some(group.into());
        }
        self
    }

    pub(crate) fn with_peer(mut self, peer: &GroupcachePeer) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.peer = Some(peer.clone());
        }
        self
    }

    /// What went wrong.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The key the failed operation was for, if any.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        self.inner.key.as_deref()
    }

    /// The group the failed operation was for, if any.
    #[must_use]
    pub fn group(&self) -> Option<&str> {
        self.inner.group.as_deref()
    }

    /// The peer on which it failed: the owner that answered with an error or could not be
    /// reached, or `None` when it failed on this peer.
    #[must_use]
    pub fn peer(&self) -> Option<&GroupcachePeer> {
        self.inner.peer.as_ref()
    }

    /// Whether the loader reported that the key does not exist.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        self.inner.kind == ErrorKind::NotFound
    }

    /// The human-readable detail, without kind, key or peer.
    #[must_use]
    pub fn detail(&self) -> &str {
        &self.inner.detail
    }

    /// Whether two errors are the same shared value (as all waiters of one load receive).
    #[must_use]
    pub fn ptr_eq(&self, other: &Error) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.kind.describe())?;
        if let Some(key) = &self.inner.key {
            if key.len() > KEY_IN_MESSAGE {
                let mut cut = KEY_IN_MESSAGE;
                while !key.is_char_boundary(cut) {
                    cut -= 1;
                }
                write!(f, " for key {:?}... ({} bytes)", &key[..cut], key.len())?;
            } else {
                write!(f, " for key {key:?}")?;
            }
        }
        if let Some(group) = &self.inner.group {
            write!(f, " in group {group:?}")?;
        }
        if let Some(peer) = &self.inner.peer {
            write!(f, " on peer {peer}")?;
        }
        if !self.inner.detail.is_empty() {
            write!(f, ": {}", self.inner.detail)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(group) = &self.inner.group {
            d.field("group", group);
        }
        if let Some(key) = &self.inner.key {
            d.field("key", key);
        }
        if let Some(peer) = &self.inner.peer {
            d.field("peer", peer);
        }
        d.field("detail", &self.inner.detail);
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_kind_key_peer_and_detail() {
        let peer: GroupcachePeer = "10.0.0.7:8080".parse().unwrap();
        let err = Error::new(ErrorKind::Loader, "connection refused")
            .with_key("user-42")
            .with_peer(&peer);
        assert_eq!(
            err.to_string(),
            "loader failed for key \"user-42\" on peer 10.0.0.7:8080: connection refused"
        );
    }

    #[test]
    fn long_keys_are_cut_in_messages() {
        let key = "é".repeat(100);
        let err = Error::new(ErrorKind::KeyTooLong, "").with_key(&key);
        let msg = err.to_string();
        assert!(msg.contains("... (200 bytes)"), "{msg}");
        assert!(msg.len() < 120, "{msg}");
    }

    #[test]
    fn source_is_kept() {
        let err = Error::new(ErrorKind::Loader, "boom").with_source("db down".into());
        let source = std::error::Error::source(&err).expect("source");
        assert_eq!(source.to_string(), "db down");
    }
}
