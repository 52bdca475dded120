//! How values become bytes: [`Codec`], with [`Postcard`] as the default and [`Raw`] for
//! values that already are bytes.
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
/// Every peer of a cluster must use the same codec for a group. Any value type works with a
/// codec of its own: serde is needed only by the serde codecs ([`Postcard`], the default, and
/// `Bincode`). [`Raw`] passes `Bytes` and `Vec<u8>` values through untouched.
///
/// ```
/// use bytes::Bytes;
/// use groupcache::BoxError;
/// use groupcache::codec::Codec;
///
/// /// A type without serde: a point, as 16 little-endian bytes.
/// #[derive(Clone, Debug, PartialEq)]
/// struct Point { x: f64, y: f64 }
///
/// struct PointCodec;
///
/// impl Codec<Point> for PointCodec {
///     fn encode(&self, p: &Point) -> Result<Bytes, BoxError> {
///         let mut out = Vec::with_capacity(16);
///         out.extend_from_slice(&p.x.to_le_bytes());
///         out.extend_from_slice(&p.y.to_le_bytes());
///         Ok(out.into())
///     }
///     fn decode(&self, bytes: Bytes) -> Result<Point, BoxError> {
///         let bytes: [u8; 16] = bytes[..].try_into().map_err(|_| "a point is 16 bytes")?;
///         let (x, y) = bytes.split_at(8);
///         Ok(Point { x: f64::from_le_bytes(x.try_into()?), y: f64::from_le_bytes(y.try_into()?) })
///     }
/// }
///
/// let bytes = PointCodec.encode(&Point { x: 1.0, y: -2.5 }).unwrap();
/// assert_eq!(PointCodec.decode(bytes).unwrap(), Point { x: 1.0, y: -2.5 });
/// ```
///
/// Without a codec of its own, a type without serde does not compile: the default, postcard,
/// needs `Serialize + DeserializeOwned`.
///
/// ```compile_fail
/// # use groupcache::{BoxError, Groupcache, ValueLoader};
/// #[derive(Clone)]
/// struct NoSerde;
/// struct Loader;
/// #[groupcache::async_trait]
/// impl ValueLoader for Loader {
///     type Value = NoSerde;
///     async fn load(&self, _: &str) -> Result<NoSerde, BoxError> { Ok(NoSerde) }
/// }
/// let cache = Groupcache::builder("127.0.0.1:1".parse::<std::net::SocketAddr>().unwrap()).build();
/// let group = cache.group("g", Loader).build(); // error: `Postcard` is not a codec for `NoSerde`
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a codec for values of type `{V}`",
    note = "the default codec, `Postcard`, needs `{V}: serde::Serialize + serde::de::DeserializeOwned`; \
            for any other type give the group a codec of its own with `GroupBuilder::codec`"
)]
pub trait Codec<V>: Send + Sync + 'static {
    /// Encodes `value`.
    ///
    /// # Errors
    ///
    /// Whatever stops the value from being encoded; the caller gets
    /// [`ErrorKind::Codec`](crate::ErrorKind::Codec) with it as the source.
    fn encode(&self, value: &V) -> Result<Bytes, BoxError>;

    /// Decodes a value encoded by [`Codec::encode`] on another peer. The bytes come from the
    /// network: return an error for malformed input, never panic.
    ///
    /// They are a slice of the buffer the reply was read into, which is often larger. A value
    /// that borrows them without copying (a `Bytes` field, zero-copy parsing) keeps that whole
    /// buffer alive for as long as the hot cache keeps the value: copy what the value keeps.
    /// serde-based codecs such as [`Postcard`] copy into owned fields anyway.
    ///
    /// # Errors
    ///
    /// Malformed input; the caller gets [`ErrorKind::Codec`](crate::ErrorKind::Codec).
    fn decode(&self, bytes: Bytes) -> Result<V, BoxError>;

    /// Whether the main cache may keep the bytes [`encode`](Codec::encode) returns as they
    /// are, instead of a copy of exactly their length. True when they share the value's own
    /// buffer (the value keeps it alive anyway), as [`Raw`] does for `Bytes`, or are a buffer
    /// of exactly their length made for them, as [`Raw`] does for `Vec<u8>`. Default: `false`,
    /// since an encoder may return a slice of a larger buffer, which keeping would pin.
    fn keep_encoded_as_is(&self) -> bool {
        false
    }
}

/// The pass-through codec for raw bytes: a `Bytes` or `Vec<u8>` value is sent as it is.
///
/// For `Bytes`, encoding is a reference-count bump and the owner's main cache holds one buffer
/// per value, shared by the decoded value and the bytes peers are sent: no copy when the value
/// is encoded or stored (tonic still copies each reply into its send buffer). A `Bytes` that
/// is a slice of a larger buffer keeps that buffer alive: return values that own exactly their
/// bytes. The asking peer copies a reply out of the network buffer it arrived in (once per
/// fetch), so that a hot copy holds exactly its bytes. For `Vec<u8>`, encoding and decoding
/// copy once each.
///
/// ```
/// use bytes::Bytes;
/// use groupcache::codec::{Codec, Raw};
///
/// let value = Bytes::from_static(b"\x00\x01 any bytes");
/// let encoded = Raw.encode(&value).unwrap();
/// assert_eq!(encoded.as_ptr(), value.as_ptr(), "no copy");
/// assert_eq!(Codec::<Vec<u8>>::decode(&Raw, encoded).unwrap(), b"\x00\x01 any bytes");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec<Bytes> for Raw {
    fn encode(&self, value: &Bytes) -> Result<Bytes, BoxError> {
        Ok(value.clone())
    }

    fn decode(&self, bytes: Bytes) -> Result<Bytes, BoxError> {
        Ok(Bytes::copy_from_slice(&bytes))
    }

    fn keep_encoded_as_is(&self) -> bool {
        true
    }
}

impl Codec<Vec<u8>> for Raw {
    fn encode(&self, value: &Vec<u8>) -> Result<Bytes, BoxError> {
        Ok(Bytes::copy_from_slice(value))
    }

    fn decode(&self, bytes: Bytes) -> Result<Vec<u8>, BoxError> {
        Ok(bytes.to_vec())
    }

    /// `encode` made a buffer of exactly the value's length: no second copy.
    fn keep_encoded_as_is(&self) -> bool {
        true
    }
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
    fn raw_bytes_pass_through_without_a_copy_on_encode() {
        let value = Bytes::from(vec![1, 2, 3]);
        let encoded = Raw.encode(&value).unwrap();
        assert_eq!(encoded.as_ptr(), value.as_ptr());
        assert!(Codec::<Bytes>::keep_encoded_as_is(&Raw));
        assert!(Codec::<Vec<u8>>::keep_encoded_as_is(&Raw));
        assert!(!Codec::<String>::keep_encoded_as_is(&Postcard));
        // Decoding copies out of the (network) buffer, so a hot copy owns exactly its bytes.
        let decoded: Bytes = Raw.decode(encoded.clone()).unwrap();
        assert_eq!(decoded, value);
        assert_ne!(decoded.as_ptr(), encoded.as_ptr());
        let vec: Vec<u8> = Raw.decode(encoded).unwrap();
        assert_eq!(vec, [1, 2, 3]);
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
