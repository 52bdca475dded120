//! The source of truth: one file per key in a data directory, and the loaders of the node's two
//! groups, `contents` (the bytes) and `metadata` (size, modification time, hash), each counting
//! its calls.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use groupcache::{BoxError, Group, NotFound, ValueLoader};
use serde::{Deserialize, Serialize};

/// Longest key served, in bytes: the longest file name most file systems allow.
const MAX_KEY_LEN: usize = 255;

/// The `metadata` group's value: what `stat` says about a file, and a hash of its contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileMeta {
    /// Size of the contents, in bytes.
    pub(crate) bytes: u64,
    /// Last modification, in whole seconds since the Unix epoch (0 where the file system does
    /// not record it).
    pub(crate) modified_unix: u64,
    /// XXH3 (64 bits) of the contents, as the `contents` group holds them.
    pub(crate) xxh3: u64,
    /// The advertised address of the node whose loader made this record.
    pub(crate) loaded_by: String,
}

/// Why a key cannot name a file in the data directory.
#[derive(Debug)]
pub(crate) struct BadKey(&'static str);

impl std::fmt::Display for BadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad key: {}", self.0)
    }
}

impl std::error::Error for BadKey {}

/// Checks that `key` is a plain file name: it can never name a path outside the directory.
pub(crate) fn check_key(key: &str) -> Result<(), BadKey> {
    if key.is_empty() {
        return Err(BadKey("empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(BadKey("longer than 255 bytes"));
    }
    if key.contains(['/', '\\', '\0']) {
        return Err(BadKey("a key is a file name: no '/', '\\' or NUL"));
    }
    if key.starts_with('.') {
        return Err(BadKey(
            "names starting with '.' ('..', hidden files) are not served",
        ));
    }
    Ok(())
}

/// The data directory: resolves keys to files inside it, never outside.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    /// Canonical path: reads are checked against it after resolving symbolic links.
    dir: Arc<PathBuf>,
}

impl DataDir {
    pub(crate) fn new(dir: &Path) -> io::Result<Self> {
        let dir = dir.canonicalize().map_err(|e| {
            io::Error::new(e.kind(), format!("data directory {}: {e}", dir.display()))
        })?;
        if !dir.is_dir() {
            return Err(io::Error::other(format!(
                "data directory {} is not a directory",
                dir.display()
            )));
        }
        Ok(DataDir { dir: Arc::new(dir) })
    }

    /// The file of `key`, a key that passed [`check_key`]: `NotFound` if there is none, an
    /// error if the file is a link to outside the directory.
    fn path_of(&self, key: &str) -> Result<PathBuf, BoxError> {
        let path = match self.dir.join(key).canonicalize() {
            Ok(path) => path,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(NotFound.into()),
            Err(e) => return Err(e.into()),
        };
        // A symbolic link in the directory may point elsewhere: never follow it out.
        if path.parent() != Some(self.dir.as_path()) {
            return Err(BadKey("the file is a link to outside the data directory").into());
        }
        Ok(path)
    }
}

/// Loader calls that reached the data directory, successful or not: the ground truth for
/// "loaded once", independent of the library's counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoadCount(Arc<AtomicU64>);

impl LoadCount {
    fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The `contents` group's loader: reads `<data dir>/<key>` into raw bytes (cached as they are,
/// with the pass-through codec).
#[derive(Debug, Clone)]
pub(crate) struct ContentsLoader {
    pub(crate) dir: DataDir,
    pub(crate) loads: LoadCount,
}

#[groupcache::async_trait]
impl ValueLoader for ContentsLoader {
    type Value = Bytes;

    async fn load(&self, key: &str) -> Result<Bytes, BoxError> {
        // Keys also arrive from other peers' requests: check them here too, not only in HTTP.
        check_key(key)?;
        self.loads.add();
        let path = self.dir.path_of(key)?;
        let contents = tokio::fs::read(&path).await?;
        tracing::info!(key, bytes = contents.len(), "read from the data directory");
        Ok(contents.into())
    }
}

/// The `metadata` group's loader: `stat`s the file and hashes its contents, which it gets from
/// the `contents` group rather than reading the file again. Both groups share one ring, so
/// on the owner that `get` is local: a main-cache hit, or the contents' own load.
#[derive(Debug, Clone)]
pub(crate) struct MetadataLoader {
    pub(crate) dir: DataDir,
    pub(crate) contents: Group<Bytes>,
    /// This node's advertised address, for [`FileMeta::loaded_by`].
    pub(crate) me: Arc<str>,
    pub(crate) loads: LoadCount,
}

#[groupcache::async_trait]
impl ValueLoader for MetadataLoader {
    type Value = FileMeta;

    async fn load(&self, key: &str) -> Result<FileMeta, BoxError> {
        check_key(key)?;
        self.loads.add();
        let path = self.dir.path_of(key)?;
        let modified = tokio::fs::metadata(&path).await?.modified().ok();
        let contents = match self.contents.get(key).await {
            Ok(contents) => contents,
            // Gone between the stat and the read: not found, like any missing file.
            Err(err) if err.is_not_found() => return Err(NotFound.into()),
            Err(err) => return Err(err.into()),
        };
        Ok(FileMeta {
            bytes: contents.len() as u64,
            modified_unix: modified
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
            xxh3: xxhash_rust::xxh3::xxh3_64(&contents),
            loaded_by: self.me.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_that_could_leave_the_directory_are_refused() {
        for key in [
            "",
            "..",
            ".",
            "../etc/passwd",
            "a/b",
            "a\\b",
            ".hidden",
            "a\0b",
        ] {
            assert!(check_key(key).is_err(), "{key:?} was accepted");
        }
        assert!(check_key(&"k".repeat(256)).is_err());
        for key in ["user-42", "a.b", "x..y", "k".repeat(255).as_str()] {
            assert!(check_key(key).is_ok(), "{key:?} was refused");
        }
    }
}
