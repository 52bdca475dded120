//! The simulated slow database behind every peer: two tables, one per group (`rows` and
//! `summaries`), the ledger that counts their loads, and the values they return.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use groupcache::{BoxError, ValueLoader};
use serde::{Deserialize, Serialize};

/// The two tables of the database, each cached by the group of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Table {
    /// Full rows, [`Row`]: `--value-size` bytes each.
    Rows,
    /// A few bytes per row, [`Summary`]: what a listing page would show.
    Summaries,
}

impl Table {
    pub(crate) const ALL: [Table; 2] = [Table::Rows, Table::Summaries];

    /// The name of the table, and of the group that caches it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Rows => "rows",
            Table::Summaries => "summaries",
        }
    }

    /// Its position in [`Table::ALL`], to index per-table arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// What the `rows` table holds for a key. A struct rather than a string to show that any serde
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

/// What the `summaries` table holds for a key: the size and a checksum of its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) bytes: u64,
    pub(crate) checksum: u32,
}

impl Summary {
    /// The one correct summary of `key`, computed from its row.
    pub(crate) fn of(key: &str, size: usize) -> Summary {
        let row = Row::of(key, size);
        // FNV-1a: any checksum would do, as long as every peer computes the same one.
        let checksum = row.payload.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        Summary {
            bytes: row.payload.len() as u64,
            checksum,
        }
    }
}

/// Database calls per table and key, across all peers: the ground truth for "loaded exactly
/// once", independent of the library's own counters.
#[derive(Debug, Default)]
pub(crate) struct Ledger(Mutex<HashMap<(Table, String), u64>>);

impl Ledger {
    fn record(&self, table: Table, key: &str) {
        *self.lock().entry((table, key.to_owned())).or_default() += 1;
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<(Table, String), u64>> {
        // A panic elsewhere while holding the lock cannot leave a count half-written.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Loads of `table` in all, and the most for one key.
    pub(crate) fn loads(&self, table: Table) -> (u64, u64) {
        self.lock()
            .iter()
            .filter(|((t, _), _)| *t == table)
            .fold((0, 0), |(sum, most), (_, n)| (sum + n, most.max(*n)))
    }

    /// Loads of `key` in `table`.
    pub(crate) fn loads_of(&self, table: Table, key: &str) -> u64 {
        self.lock()
            .get(&(table, key.to_owned()))
            .copied()
            .unwrap_or(0)
    }
}

/// One peer's connection to the slow database, shared by its two loaders.
#[derive(Debug)]
pub(crate) struct SlowDb {
    pub(crate) latency: Duration,
    pub(crate) value_size: usize,
    /// Calls per table, on this peer.
    pub(crate) calls: [AtomicU64; 2],
    pub(crate) ledger: Arc<Ledger>,
}

impl SlowDb {
    /// Counts a call on `table` for `key`, then takes the database's time.
    async fn query(&self, table: Table, key: &str) {
        self.calls[table.index()].fetch_add(1, Ordering::Relaxed);
        self.ledger.record(table, key);
        tokio::time::sleep(self.latency).await;
    }

    /// Calls on `table` so far, on this peer.
    pub(crate) fn calls(&self, table: Table) -> u64 {
        self.calls[table.index()].load(Ordering::Relaxed)
    }
}

/// The loader of the `rows` group.
#[derive(Debug)]
pub(crate) struct Rows(pub(crate) Arc<SlowDb>);

#[groupcache::async_trait]
impl ValueLoader for Rows {
    type Value = Row;

    async fn load(&self, key: &str) -> Result<Row, BoxError> {
        self.0.query(Table::Rows, key).await;
        Ok(Row::of(key, self.0.value_size))
    }
}

/// The loader of the `summaries` group.
#[derive(Debug)]
pub(crate) struct Summaries(pub(crate) Arc<SlowDb>);

#[groupcache::async_trait]
impl ValueLoader for Summaries {
    type Value = Summary;

    async fn load(&self, key: &str) -> Result<Summary, BoxError> {
        self.0.query(Table::Summaries, key).await;
        Ok(Summary::of(key, self.0.value_size))
    }
}
