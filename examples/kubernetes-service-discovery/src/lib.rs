//! groupcache peers found through kubernetes: [`EndpointSlicePeers`] lists the ready
//! endpoints of a headless Service's EndpointSlices and watches them for changes, with kube-rs.
//! The binary (`src/main.rs`) is a cache peer that runs as a pod of that Service; see this
//! example's README for a 3-replica cluster on kind, from an empty cluster.

mod endpoint_slice_peers;

pub use endpoint_slice_peers::{EndpointSlicePeers, PeerPort};
