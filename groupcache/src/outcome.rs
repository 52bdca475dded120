//! [`Outcome`]: how a `get` was answered, as spans and metrics label it.

/// How a `get` was answered. Recorded as the `outcome` field of its span and, with the
/// `metrics` feature, as the `outcome` label of its latency histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// From this peer's hot cache.
    HotHit,
    /// From this peer's main cache.
    MainHit,
    /// Loaded by this peer, which owns the key.
    LocalLoad,
    /// Fetched from the owner.
    PeerLoad,
    /// The owner (or the substitute asked) did not answer: loaded by this peer.
    Fallback,
    /// An error (including a key refused for its length).
    Error,
}

impl Outcome {
    /// Every outcome, in the order of their indices.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const ALL: [Outcome; 6] = [
        Outcome::HotHit,
        Outcome::MainHit,
        Outcome::LocalLoad,
        Outcome::PeerLoad,
        Outcome::Fallback,
        Outcome::Error,
    ];

    /// The label value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::HotHit => "hot_hit",
            Outcome::MainHit => "main_hit",
            Outcome::LocalLoad => "local_load",
            Outcome::PeerLoad => "peer_load",
            Outcome::Fallback => "fallback",
            Outcome::Error => "error",
        }
    }

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}
