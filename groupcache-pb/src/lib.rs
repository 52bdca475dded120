//! The wire protocol spoken between `groupcache` peers: the messages and tonic stubs generated
//! from `proto/groupcache.proto`.
//!
//! This crate holds generated code only. Applications use the `groupcache` crate, which wraps
//! these types and never exposes them in its main API.

#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]

/// Version 1 of the protocol (`package groupcache.v1`).
pub mod v1 {
    tonic::include_proto!("groupcache.v1");
}
