//! [`PeersFile`]: a peer list re-read from a file on every poll.

use std::path::{Path, PathBuf};

use super::ServiceDiscovery;
use crate::discovery::static_peers::{parse_peer_list, resolve_all};
use crate::{BoxError, GroupcachePeer};

/// A peer list kept in a file and read again on every poll: edit the file (or let
/// configuration management, or a mounted kubernetes `ConfigMap`, rewrite it) and every replica
/// follows within one discovery interval.
///
/// The file holds `host:port` entries separated by commas, spaces or newlines; text from `#`
/// to the end of a line is a comment. Entries are resolved as [`StaticPeers`] resolves them.
/// A missing or unreadable file, or a bad entry, fails the poll (naming the file and the
/// entry), and the driver keeps the last set. Replace the file atomically (write a new file,
/// then rename it over the old one) so that a poll never reads half a list.
///
/// [`StaticPeers`]: crate::discovery::StaticPeers
///
/// ```no_run
/// # fn run(cache: groupcache::Groupcache) {
/// use groupcache::discovery::{DiscoveryDriver, PeersFile};
///
/// let discovery = DiscoveryDriver::new(cache, PeersFile::new("/etc/groupcache/peers")).spawn();
/// # drop(discovery);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeersFile {
    path: PathBuf,
}

impl PeersFile {
    /// A provider reading `path` on every poll. The file need not exist yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PeersFile { path: path.into() }
    }

    /// The file read on every poll.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[async_trait::async_trait]
impl ServiceDiscovery for PeersFile {
    async fn peers(&self) -> Result<Vec<GroupcachePeer>, BoxError> {
        let origin = format!("peers file {}", self.path.display());
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| format!("{origin}: {e}"))?;
        let without_comments: String = text
            .lines()
            .map(|line| line.split_once('#').map_or(line, |(before, _)| before))
            .collect::<Vec<_>>()
            .join("\n");
        let entries = parse_peer_list(&without_comments, &origin)?;
        resolve_all(&entries).await
    }
}
