//! The backend: one file per key in a data directory, the nodes' source of truth. Each file's
//! contents name its key and version and carry a key-specific padding of a key-specific
//! length, so an answer with another key's value, a truncated value or an old version is told
//! apart from the right one.

use std::io;
use std::path::{Path, PathBuf};

/// The version every file is written at. There are no writes yet: once the node serves
/// `remove`/`set` (the "writes" issue), the soak bumps versions during the run and checks
/// that no answer is older than the last write acknowledged before it started.
pub(crate) const VERSION: u32 = 1;

/// The keys and what their files hold.
#[derive(Debug)]
pub(crate) struct Backend {
    keys: Vec<String>,
    truth: Vec<String>,
}

impl Backend {
    /// Writes `keys` files into `dir` (created if missing; files of earlier runs with other
    /// names are left alone: no key of this run names them).
    pub(crate) fn write(dir: &Path, keys: usize) -> io::Result<Backend> {
        std::fs::create_dir_all(dir)?;
        let keys: Vec<String> = (0..keys).map(key_name).collect();
        let truth: Vec<String> = keys.iter().map(|k| contents(k, VERSION)).collect();
        for (key, value) in keys.iter().zip(&truth) {
            std::fs::write(dir.join(key), value)?;
        }
        Ok(Backend { keys, truth })
    }

    /// The key of rank `i` (0 is the hottest under the Zipf draw).
    pub(crate) fn key(&self, i: usize) -> &str {
        &self.keys[i]
    }

    /// What the file of key `i` holds.
    pub(crate) fn truth(&self, i: usize) -> &str {
        &self.truth[i]
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The index of `key`, if it is one of ours.
    pub(crate) fn index_of(&self, key: &str) -> Option<usize> {
        let i: usize = key.strip_prefix('k')?.parse().ok()?;
        (i < self.keys.len() && self.keys[i] == key).then_some(i)
    }
}

/// The file name of key `i`.
pub(crate) fn key_name(i: usize) -> String {
    format!("k{i:06}")
}

/// The contents of `key`'s file at `version`: `key=<k> version=<n> ` and a padding derived
/// from the key, 64 to 2,047 bytes in all, ending in a newline.
pub(crate) fn contents(key: &str, version: u32) -> String {
    // FNV-1a: any fixed hash will do; it only spreads lengths and padding over the keys.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let len = 64 + (hash % (2048 - 64)) as usize;
    let mut out = format!("key={key} version={version} ");
    let pattern = format!("{hash:016x}");
    while out.len() < len - 1 {
        let room = len - 1 - out.len();
        out.push_str(&pattern[..room.min(pattern.len())]);
    }
    out.push('\n');
    out
}

/// Where the soak keeps its files under `--out`.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The data directory the nodes serve.
    pub(crate) data: PathBuf,
    /// The peers file the nodes poll.
    pub(crate) peers: PathBuf,
    /// One stderr log per node process.
    pub(crate) logs: PathBuf,
    /// `--out` itself: the report and the plot.
    pub(crate) out: PathBuf,
}

impl Layout {
    /// Creates the folders under `out`, clearing the logs of an earlier run.
    pub(crate) fn create(out: &Path) -> io::Result<Layout> {
        let layout = Layout {
            data: out.join("data"),
            peers: out.join("peers"),
            logs: out.join("logs"),
            out: out.to_owned(),
        };
        let _ = std::fs::remove_dir_all(&layout.logs);
        std::fs::create_dir_all(&layout.logs)?;
        std::fs::create_dir_all(&layout.data)?;
        Ok(layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_name_the_key_and_version_and_differ_in_length() {
        let a = contents("k000001", 1);
        assert!(a.starts_with("key=k000001 version=1 "), "{a}");
        assert!(a.ends_with('\n'));
        assert!((64..2048).contains(&a.len()));
        assert_ne!(a, contents("k000001", 2));
        let lengths: std::collections::HashSet<usize> =
            (0..50).map(|i| contents(&key_name(i), 1).len()).collect();
        assert!(lengths.len() > 40, "lengths barely vary: {lengths:?}");
    }

    #[test]
    fn index_of_inverts_key_name() {
        let backend = Backend {
            keys: (0..10).map(key_name).collect(),
            truth: Vec::new(),
        };
        assert_eq!(backend.index_of("k000007"), Some(7));
        assert_eq!(backend.index_of("k000010"), None);
        assert_eq!(backend.index_of("x000001"), None);
    }
}
