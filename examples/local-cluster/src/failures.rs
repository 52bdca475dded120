//! The record of failed or wrong `get`s, shared by every caller in the stampede and the read
//! load.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::database::Table;

/// Failed or wrong `get`s. Only the first few messages are kept: one broken peer would
/// otherwise print thousands of identical lines.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    count: AtomicU64,
    first: Mutex<Vec<String>>,
}

impl Failures {
    const KEPT: usize = 10;

    fn record(&self, message: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if first.len() < Self::KEPT {
            first.push(message);
        }
    }

    /// How many `get`s failed or returned a wrong value.
    pub(crate) fn total(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The first failure messages, at most `KEPT` of them.
    pub(crate) fn first(&self) -> Vec<String> {
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn any(&self) -> bool {
        self.total() > 0
    }

    /// Checks one `get`'s answer from the group of `table` against the database's truth.
    pub(crate) fn check<V: PartialEq + std::fmt::Debug>(
        &self,
        peer: SocketAddr,
        table: Table,
        key: &str,
        result: Result<V, groupcache::Error>,
        expected: V,
    ) -> bool {
        let group = table.name();
        match result {
            Ok(value) if value == expected => true,
            Ok(value) => {
                let shown: String = format!("{value:?}").chars().take(60).collect();
                self.record(format!(
                    "get({key:?}) in {group} on {peer} returned a wrong value: {shown}..."
                ));
                false
            }
            // The error names the key and the group itself.
            Err(err) => {
                self.record(format!("get on {peer} failed: {err}"));
                false
            }
        }
    }
}
