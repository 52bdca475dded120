//! The wire protocol spoken between `groupcache` peers: the messages and tonic stubs generated
//! from `proto/groupcache.proto`.
//!
//! This crate holds generated code only. Applications use the `groupcache` crate, which wraps
//! these types and never exposes them in its main API.

#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]

/// Version 2 of the protocol (`package groupcache.v2`): every request names its group.
pub mod v2 {
    tonic::include_proto!("groupcache.v2");
}

/// The protocol's source, for tools and for tests that check the library against it.
pub const PROTO: &str = include_str!("../proto/groupcache.proto");
