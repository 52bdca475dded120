//! Writes that stay true: `remove`, `remove_many`, `clear` and `set` reach every peer's copies;
//! no load or fetch that began before a write stores what it read; a lost invalidation is
//! found by its sequence number; per-entry times to live and negative caching.

mod everywhere;
mod interleavings;
mod lost;
mod negative;
mod races;
mod ttl;
