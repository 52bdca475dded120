//! The simulated slow database behind every peer, the ledger that counts its loads, and the
//! [`Row`] it returns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use groupcache::{BoxError, ValueLoader};
use serde::{Deserialize, Serialize};

/// What the database holds for a key. A struct rather than a string to show that any serde
/// type can be cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Row {
    pub(crate) key: String,
    pub(crate) payload: String,
}

impl Row {
    /// The one correct value of `key`: the database returns it and every reader checks
    /// against it.
    pub(crate) fn of(key: &str, size: usize) -> Row {
        let mut payload = format!("value-of-{key}");
        payload.extend(std::iter::repeat_n('.', size.saturating_sub(payload.len())));
        Row {
            key: key.to_owned(),
            payload,
        }
    }
}

/// Database calls per key, across all peers: the ground truth for "loaded exactly once",
/// independent of the library's own counters.
#[derive(Debug, Default)]
pub(crate) struct Ledger(Mutex<HashMap<String, u64>>);

impl Ledger {
    fn record(&self, key: &str) {
        *self.lock().entry(key.to_owned()).or_default() += 1;
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        // A panic elsewhere while holding the lock cannot leave a count half-written.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A slow database: one per peer, sharing the ledger.
#[derive(Debug)]
pub(crate) struct SlowDb {
    pub(crate) latency: Duration,
    pub(crate) value_size: usize,
    pub(crate) calls: Arc<AtomicU64>,
    pub(crate) ledger: Arc<Ledger>,
}

#[groupcache::async_trait]
impl ValueLoader for SlowDb {
    type Value = Row;

    async fn load(&self, key: &str) -> Result<Row, BoxError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.ledger.record(key);
        tokio::time::sleep(self.latency).await;
        Ok(Row::of(key, self.value_size))
    }
}
