//! The shared secret between peers: [`PeerToken`], and the server's check of it.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;
use subtle::ConstantTimeEq;
use tonic::metadata::{Ascii, MetadataValue};

use crate::{Error, ErrorKind};

/// The metadata key a token travels in.
pub(crate) const AUTHORIZATION: &str = "authorization";
/// The scheme in front of the token, as in `authorization: Bearer <token>`.
const SCHEME: &str = "Bearer ";
/// Longest accepted token. HTTP/2 header lists are limited to 16 KiB by default.
pub const MAX_PEER_TOKEN_LEN: usize = 4096;

/// A shared secret every peer of a cluster presents and checks, so that only members can read
/// cached values or make the owner call its loader.
///
/// Set it with [`GroupcacheBuilder::peer_token`](crate::GroupcacheBuilder::peer_token). Each
/// peer request then carries `authorization: Bearer <token>` (marked sensitive, so HTTP/2 never
/// indexes it), and a peer's service refuses any request without an accepted token with
/// `Unauthenticated` before reading its body. Tokens are compared in constant time.
///
/// The token never appears in `Debug` output, logs or errors. Over plaintext links anyone who
/// can watch the network can read it: use it together with TLS
/// (`GroupcacheBuilder::tls`, feature `tls`) between hosts.
///
/// ```
/// use groupcache::security::PeerToken;
///
/// let token = PeerToken::new("5f0c9a52e3d14b7d8e0a1c6b2f4e9d3a").unwrap();
/// assert_eq!(format!("{token:?}"), "PeerToken(<redacted>)");
///
/// let err = PeerToken::new("has a space").unwrap_err();
/// assert!(err.to_string().contains("visible ASCII"));
/// ```
#[derive(Clone)]
pub struct PeerToken {
    /// The token itself, compared against what peers present.
    secret: Arc<[u8]>,
    /// `Bearer <token>`, built once, as sent.
    header: MetadataValue<Ascii>,
}

impl PeerToken {
    /// A token from its text: 1 to [`MAX_PEER_TOKEN_LEN`] bytes of visible ASCII (`!` to `~`),
    /// for example 32 random bytes in hex or base64.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if it is empty, too long or has other
    /// bytes; the error never contains the token.
    pub fn new(token: impl AsRef<str>) -> Result<Self, Error> {
        let token = token.as_ref();
        if token.is_empty() || token.len() > MAX_PEER_TOKEN_LEN {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "a peer token must be 1 to {MAX_PEER_TOKEN_LEN} bytes long, this one has {}",
                    token.len()
                ),
            ));
        }
        if let Some(at) = token.bytes().position(|b| !b.is_ascii_graphic()) {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "a peer token may only contain visible ASCII characters ('!' to '~'); \
                     byte {at} of {} is not one",
                    token.len()
                ),
            ));
        }
        let mut header = MetadataValue::try_from(format!("{SCHEME}{token}")).map_err(|_| {
            Error::new(
                ErrorKind::Config,
                "a peer token is not a valid header value",
            )
        })?;
        header.set_sensitive(true);
        Ok(PeerToken {
            secret: token.as_bytes().into(),
            header,
        })
    }

    /// A token from the environment variable `name` (for example one filled from a kubernetes
    /// secret), with surrounding whitespace removed.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if the variable is not set, not Unicode,
    /// or not a valid token; the error names the variable, never its value.
    pub fn from_env(name: &str) -> Result<Self, Error> {
        let value = std::env::var(name).map_err(|e| {
            // Never `e` itself: for a value that is not UTF-8 it quotes the value.
            let why = match e {
                std::env::VarError::NotPresent => "it is not set",
                std::env::VarError::NotUnicode(_) => "its value is not valid UTF-8",
            };
            Error::new(
                ErrorKind::Config,
                format!("cannot read the peer token from the environment variable {name}: {why}"),
            )
        })?;
        PeerToken::new(value.trim()).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("environment variable {name}: {}", e.detail()),
            )
        })
    }

    /// The header value a client sends.
    pub(crate) fn header(&self) -> &MetadataValue<Ascii> {
        &self.header
    }
}

impl fmt::Debug for PeerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerToken(<redacted>)")
    }
}

/// Why a peer request was refused. Never carries what the peer presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Missing,
    WrongScheme,
    NotAccepted,
}

impl Refusal {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::Missing => {
                "no peer token: this peer requires `authorization: Bearer <token>` \
                 (GroupcacheBuilder::peer_token)"
            }
            Refusal::WrongScheme => {
                "the authorization header is not `Bearer <token>` (GroupcacheBuilder::peer_token)"
            }
            Refusal::NotAccepted => {
                "the peer token is not accepted here; check that every peer is configured with \
                 the same token (GroupcacheBuilder::peer_token, accept_peer_token)"
            }
        }
    }
}

/// The tokens a peer's service accepts: its own and any others configured for a rotation.
#[derive(Clone, Default)]
pub(crate) struct AcceptedTokens {
    tokens: Arc<[PeerToken]>,
}

impl AcceptedTokens {
    pub(crate) fn new(tokens: Vec<PeerToken>) -> Self {
        AcceptedTokens {
            tokens: tokens.into(),
        }
    }

    /// Whether the service checks tokens at all.
    pub(crate) fn is_required(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Checks the `authorization` value a request carried. Every accepted token is compared,
    /// each in constant time, whichever matches: the time taken does not tell which token
    /// matched or how much of one did. (It may tell the length of an accepted token, which is
    /// not secret.)
    pub(crate) fn check(&self, presented: Option<&HeaderValue>) -> Result<(), Refusal> {
        let Some(presented) = presented else {
            return Err(Refusal::Missing);
        };
        let bytes = presented.as_bytes();
        let scheme = SCHEME.len();
        if bytes.len() < scheme || !bytes[..scheme].eq_ignore_ascii_case(SCHEME.as_bytes()) {
            return Err(Refusal::WrongScheme);
        }
        let candidate = &bytes[scheme..];
        let matched = self
            .tokens
            .iter()
            .fold(subtle::Choice::from(0), |found, token| {
                found | token.secret.ct_eq(candidate)
            });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(Refusal::NotAccepted)
        }
    }
}

impl fmt::Debug for AcceptedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcceptedTokens")
            .field("count", &self.tokens.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    #[test]
    fn only_an_accepted_token_with_the_bearer_scheme_passes() {
        let current = PeerToken::new("current-secret-0123456789").unwrap();
        let previous = PeerToken::new("previous-secret-abcdef").unwrap();
        let accepted = AcceptedTokens::new(vec![current, previous]);

        let ok = |h: &str| accepted.check(Some(&header(h)));
        assert_eq!(ok("Bearer current-secret-0123456789"), Ok(()));
        assert_eq!(ok("Bearer previous-secret-abcdef"), Ok(()), "rotated");
        assert_eq!(
            ok("bearer current-secret-0123456789"),
            Ok(()),
            "scheme is case-blind"
        );
        assert_eq!(accepted.check(None), Err(Refusal::Missing));
        assert_eq!(
            ok("Basic current-secret-0123456789"),
            Err(Refusal::WrongScheme)
        );
        assert_eq!(ok("current-secret-0123456789"), Err(Refusal::WrongScheme));
        assert_eq!(ok("Bearer"), Err(Refusal::WrongScheme));
        assert_eq!(ok("Bearer "), Err(Refusal::NotAccepted));
        assert_eq!(
            ok("Bearer current-secret-012345678"),
            Err(Refusal::NotAccepted)
        );
        assert_eq!(
            ok("Bearer current-secret-01234567890"),
            Err(Refusal::NotAccepted),
            "a longer token that starts with an accepted one"
        );
        assert_eq!(
            ok("Bearer wrong-secret-0123456789!"),
            Err(Refusal::NotAccepted)
        );
    }

    #[test]
    fn tokens_must_be_visible_ascii_of_bounded_length() {
        assert!(PeerToken::new("").is_err());
        assert!(PeerToken::new("tab\there").is_err());
        assert!(PeerToken::new("é").is_err());
        assert!(PeerToken::new("x".repeat(MAX_PEER_TOKEN_LEN)).is_ok());
        let err = PeerToken::new("y".repeat(MAX_PEER_TOKEN_LEN + 1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(!err.to_string().contains("yyyy"), "{err}");
    }

    #[test]
    fn the_header_is_sensitive_and_debug_hides_the_token() {
        let token = PeerToken::new("hunter2-hunter2").unwrap();
        assert!(token.header().is_sensitive());
        assert!(!format!("{token:?}").contains("hunter2"));
        assert!(!format!("{:?}", token.header()).contains("hunter2"));
        let accepted = AcceptedTokens::new(vec![token]);
        assert!(!format!("{accepted:?}").contains("hunter2"));
    }
}
