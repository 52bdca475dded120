//! The "database" behind every cluster: returns the same payload for every key, after an
//! optional delay, and counts its loads per node and per key. It implements the loader traits of both
//! groupcache crates, so both are fed the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

/// Shared by all nodes of one cluster.
#[derive(Debug)]
pub(crate) struct Source {
    payload: Bytes,
    delay: Option<Duration>,
    loads: Vec<AtomicU64>,
    /// Loads of each key, all nodes together. A `std` mutex: held for one map update, never
    /// across an `.await`, and a load is rare next to the gets the workloads time.
    by_key: Mutex<HashMap<String, u64>>,
}

impl Source {
    pub(crate) fn new(nodes: usize, value_size: usize, delay: Option<Duration>) -> Arc<Self> {
        Arc::new(Source {
            payload: Bytes::from(vec![0xA5; value_size]),
            delay,
            loads: (0..nodes).map(|_| AtomicU64::new(0)).collect(),
            by_key: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn loads_on(&self, node: usize) -> u64 {
        self.loads[node].load(Ordering::Relaxed)
    }

    pub(crate) fn total_loads(&self) -> u64 {
        (0..self.loads.len()).map(|n| self.loads_on(n)).sum()
    }

    /// Loads of `key` so far, on every node.
    pub(crate) fn key_loads(&self, key: &str) -> u64 {
        let by_key = self.by_key.lock().expect("per-key load counts");
        by_key.get(key).copied().unwrap_or(0)
    }

    async fn load(&self, node: usize, key: &str) -> Bytes {
        self.loads[node].fetch_add(1, Ordering::Relaxed);
        *self
            .by_key
            .lock()
            .expect("per-key load counts")
            .entry(key.to_owned())
            .or_default() += 1;
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        self.payload.clone()
    }
}

/// One node's view of the source: its loads are counted as that node's.
#[derive(Debug, Clone)]
pub(crate) struct NodeSource {
    pub(crate) source: Arc<Source>,
    pub(crate) node: usize,
}

#[groupcache::async_trait]
impl groupcache::ValueLoader for NodeSource {
    type Value = Bytes;

    async fn load(&self, key: &str) -> Result<Bytes, groupcache::BoxError> {
        Ok(self.source.load(self.node, key).await)
    }
}

#[groupcache::async_trait]
impl groupcache_crates_io::ValueLoader for NodeSource {
    type Value = Bytes;

    async fn load(
        &self,
        key: &str,
    ) -> Result<Bytes, Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(self.source.load(self.node, key).await)
    }
}
