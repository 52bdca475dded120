//! How values become bytes: [`Codec`], with [`Postcard`] as the default.
//!
//! A value is encoded once, on the owner, right after it is loaded. The encoded bytes are what
//! the main cache weighs and what peers receive; the asking peer decodes them once and keeps
//! the decoded value in its hot cache.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::BoxError;

/// Turns values into bytes and back.
///
/// Every peer of a cluster must use the same codec. Implement it to use another format, or to
/// pass pre-encoded bytes through untouched.
///
/// ```
/// use bytes::Bytes;
/// use groupcache::{BoxError, Codec};
///
/// /// Values that already are bytes: no framing.
/// struct Raw;
///
/// impl Codec<Bytes> for Raw {
///     fn encode(&self, value: &Bytes) -> Result<Bytes, BoxError> {
///         Ok(value.clone())
///     }
///     fn decode(&self, bytes: Bytes) -> Result<Bytes, BoxError> {
///         // `bytes` is a slice of the network buffer the reply arrived in: a hot copy that
///         // kept the slice would keep the whole buffer alive. Copy it out.
///         Ok(Bytes::copy_from_slice(&bytes))
///     }
/// }
/// ```
pub trait Codec<V>: Send + Sync + 'static {
    /// Encodes `value`.
    fn encode(&self, value: &V) -> Result<Bytes, BoxError>;

    /// Decodes a value encoded by [`Codec::encode`] on another peer. The bytes come from the
    /// network: return an error for malformed input, never panic.
    ///
    /// They are a slice of the buffer the reply was read into, which is often larger. A value
    /// that borrows them without copying (a `Bytes` field, zero-copy parsing) keeps that whole
    /// buffer alive for as long as the hot cache keeps the value: copy what the value keeps.
    /// serde-based codecs such as [`Postcard`] copy into owned fields anyway.
    fn decode(&self, bytes: Bytes) -> Result<V, BoxError>;
}

/// The default codec: [postcard](https://docs.rs/postcard), a compact serde format with a
/// stable, documented wire format.
///
/// For byte-heavy values, mark `Vec<u8>` fields `#[serde(with = "serde_bytes")]`: serde's
/// default treats them element by element, about 20 times slower.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl<V> Codec<V> for Postcard
where
    V: Serialize + DeserializeOwned,
{
    fn encode(&self, value: &V) -> Result<Bytes, BoxError> {
        Ok(postcard::to_allocvec(value)?.into())
    }

    fn decode(&self, bytes: Bytes) -> Result<V, BoxError> {
        Ok(postcard::from_bytes(&bytes)?)
    }
}

/// The [bincode 2](https://docs.rs/bincode) codec (serde mode, standard configuration).
///
/// Opt-in through the `bincode` feature. bincode is unmaintained (RUSTSEC-2025-0141) and 3.x on
/// crates.io is an empty release; prefer [`Postcard`] unless you need bincode's format.
#[cfg(feature = "bincode")]
#[cfg_attr(docsrs, doc(cfg(feature = "bincode")))]
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

#[cfg(feature = "bincode")]
impl<V> Codec<V> for Bincode
where
    V: Serialize + DeserializeOwned,
{
    fn encode(&self, value: &V) -> Result<Bytes, BoxError> {
        Ok(bincode::serde::encode_to_vec(value, bincode::config::standard())?.into())
    }

    fn decode(&self, bytes: Bytes) -> Result<V, BoxError> {
        let (value, _read) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct User {
        id: u64,
        name: String,
        #[serde(with = "serde_bytes")]
        avatar: Vec<u8>,
    }

    fn user() -> User {
        User {
            id: 42,
            name: "Ada".into(),
            avatar: vec![7; 300],
        }
    }

    #[test]
    fn postcard_round_trips() {
        let bytes = Codec::<User>::encode(&Postcard, &user()).unwrap();
        let back: User = Postcard.decode(bytes).unwrap();
        assert_eq!(back, user());
    }

    #[test]
    fn postcard_rejects_truncated_input() {
        let bytes = Codec::<User>::encode(&Postcard, &user()).unwrap();
        let cut = bytes.slice(..bytes.len() / 2);
        assert!(Codec::<User>::decode(&Postcard, cut).is_err());
    }

    #[test]
    fn postcard_wire_format_is_pinned() {
        // Golden bytes: a change here breaks mixed-version clusters.
        let bytes = Codec::<(u32, String)>::encode(&Postcard, &(300, "ab".to_string())).unwrap();
        assert_eq!(&bytes[..], &[0xac, 0x02, 0x02, b'a', b'b']);
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_round_trips() {
        let bytes = Codec::<User>::encode(&Bincode, &user()).unwrap();
        let back: User = Bincode.decode(bytes).unwrap();
        assert_eq!(back, user());
    }
}
