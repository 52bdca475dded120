//! The record of failed or wrong `get`s, shared by every caller in the stampede and the read
//! load.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::database::Row;

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

    /// Checks one `get`'s answer against the database's truth.
    pub(crate) fn check(
        &self,
        peer: SocketAddr,
        key: &str,
        result: Result<Row, groupcache::Error>,
        value_size: usize,
    ) -> bool {
        match result {
            Ok(row) if row == Row::of(key, value_size) => true,
            Ok(row) => {
                let shown: String = row.payload.chars().take(40).collect();
                self.record(format!(
                    "get({key:?}) on {peer} returned a wrong value: key {:?}, payload {shown:?}...",
                    row.key
                ));
                false
            }
            Err(err) => {
                self.record(format!("get({key:?}) on {peer} failed: {err}"));
                false
            }
        }
    }
}
