//! The write step, after the read load: one row changed with `set` on one peer, after every
//! peer read it (and keeps a copy): every peer then reads the new row, and no load runs.

use std::error::Error;

use crate::cluster::Peer;
use crate::database::Row;

/// What the write step saw.
#[derive(Debug)]
pub(crate) struct WriteReport {
    pub(crate) key: String,
    /// Peers that answered the new row right after `set` returned, of all peers.
    pub(crate) fresh: usize,
    pub(crate) peers: usize,
    /// Peers that did not acknowledge the invalidation.
    pub(crate) unacknowledged: usize,
    /// Invalidations received, summed over the peers, during the step.
    pub(crate) invalidations_received: u64,
}

pub(crate) async fn run(peers: &[Peer], value_size: usize) -> Result<WriteReport, Box<dyn Error>> {
    // Outside the read load's keys, so that its exactly-once check is unaffected.
    let key = "written-row".to_owned();
    let received = || -> u64 {
        peers
            .iter()
            .map(|p| p.cache.stats().invalidations_received)
            .sum()
    };
    // Twice on every peer: the second read is a copy on most of them (or a main-cache hit on
    // the owner), whatever the hot cache policy picked the first time.
    for _ in 0..2 {
        for peer in peers {
            peer.groups.rows().get(&key).await?;
        }
    }
    let before = received();
    let new_row = Row {
        key: key.clone(),
        payload: format!("new-{}", ".".repeat(value_size.saturating_sub(4))),
    };
    let written = peers[peers.len() - 1]
        .groups
        .rows()
        .set(&key, new_row.clone())
        .await?;
    let mut fresh = 0;
    for peer in peers {
        if peer.groups.rows().get(&key).await? == new_row {
            fresh += 1;
        }
    }
    Ok(WriteReport {
        key,
        fresh,
        peers: peers.len(),
        unacknowledged: written.unacknowledged.len(),
        invalidations_received: received() - before,
    })
}
