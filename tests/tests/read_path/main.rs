//! The read path on one peer and on loopback clusters of real tonic servers: single flight,
//! routing, remote answers, coalesced gets, `remove` and the hot cache, named groups on one peer set, the quick
//! start's setup, `Describe`, a model-based sequence, and which public types are `Send + Sync`.

mod cluster;
mod coalescing;
mod get_many;
mod groups;
mod hot_keys;
mod introspection;
mod loader_trace;
mod model;
mod public_types;
mod quick_start;
mod remove;
mod single_flight;
