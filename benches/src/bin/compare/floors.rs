//! The floors for a local hit: a bare moka `future::Cache::get`, a bare quick_cache get and a
//! bare `HashMap` get + clone of the same `Bytes` value, with no groupcache around them.

use std::collections::HashMap;
use std::hint::black_box;

use bytes::Bytes;

use crate::measure::Op;

/// How many other entries each floor cache holds beside the one that is read.
const FILL: usize = 10_000;

fn keys() -> impl Iterator<Item = String> {
    (0..FILL).map(|i| format!("floor-{i}"))
}

/// `moka::future::Cache::get`.
pub(crate) struct MokaGet {
    cache: moka::future::Cache<String, Bytes>,
    key: String,
}

impl MokaGet {
    pub(crate) async fn new(value: &Bytes) -> Self {
        let cache = moka::future::Cache::new(FILL as u64 * 2);
        for key in keys() {
            cache.insert(key, value.clone()).await;
        }
        MokaGet {
            cache,
            key: "floor-7".to_owned(),
        }
    }
}

impl Op for MokaGet {
    async fn call(&self, _: usize, _: u64) -> Result<(), String> {
        let value = self.cache.get(black_box(&self.key)).await;
        black_box(value)
            .map(drop)
            .ok_or_else(|| "moka miss".to_owned())
    }
}

/// `quick_cache::sync::Cache::get`.
pub(crate) struct QuickGet {
    cache: quick_cache::sync::Cache<String, Bytes>,
    key: String,
}

impl QuickGet {
    pub(crate) fn new(value: &Bytes) -> Self {
        let cache = quick_cache::sync::Cache::new(FILL * 2);
        for key in keys() {
            cache.insert(key, value.clone());
        }
        QuickGet {
            cache,
            key: "floor-7".to_owned(),
        }
    }
}

impl Op for QuickGet {
    async fn call(&self, _: usize, _: u64) -> Result<(), String> {
        let value = self.cache.get(black_box(self.key.as_str()));
        black_box(value)
            .map(drop)
            .ok_or_else(|| "quick_cache miss".to_owned())
    }
}

/// A `HashMap` get and a `Bytes` clone: no lock, no eviction, no counters.
pub(crate) struct MapGet {
    map: HashMap<String, Bytes>,
    key: String,
}

impl MapGet {
    pub(crate) fn new(value: &Bytes) -> Self {
        MapGet {
            map: keys().map(|k| (k, value.clone())).collect(),
            key: "floor-7".to_owned(),
        }
    }
}

impl Op for MapGet {
    async fn call(&self, _: usize, _: u64) -> Result<(), String> {
        let value = self.map.get(black_box(self.key.as_str())).cloned();
        black_box(value)
            .map(drop)
            .ok_or_else(|| "map miss".to_owned())
    }
}
