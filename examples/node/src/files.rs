//! The source of truth: one file per key in a data directory, and a count of the reads.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use groupcache::{BoxError, NotFound, ValueLoader};
use serde::{Deserialize, Serialize};

/// Longest key served, in bytes: the longest file name most file systems allow.
const MAX_KEY_LEN: usize = 255;

/// A cached value: a file's bytes and the node whose loader read them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FileValue {
    #[serde(with = "serde_bytes")]
    pub(crate) contents: Vec<u8>,
    /// The advertised address of the node that read the file.
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

/// Reads `<data dir>/<key>`, counting every read.
#[derive(Debug, Clone)]
pub(crate) struct FileLoader {
    /// Canonical path: reads are checked against it after resolving symbolic links.
    dir: Arc<PathBuf>,
    me: Arc<str>,
    loads: Arc<AtomicU64>,
}

impl FileLoader {
    pub(crate) fn new(dir: &Path, me: &str) -> io::Result<Self> {
        let dir = dir.canonicalize().map_err(|e| {
            io::Error::new(e.kind(), format!("data directory {}: {e}", dir.display()))
        })?;
        if !dir.is_dir() {
            return Err(io::Error::other(format!(
                "data directory {} is not a directory",
                dir.display()
            )));
        }
        Ok(FileLoader {
            dir: Arc::new(dir),
            me: me.into(),
            loads: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Files read so far (successful or not).
    pub(crate) fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }
}

#[groupcache::async_trait]
impl ValueLoader for FileLoader {
    type Value = FileValue;

    async fn load(&self, key: &str) -> Result<FileValue, BoxError> {
        // Keys also arrive from other peers' requests: check them here too, not only in HTTP.
        check_key(key)?;
        self.loads.fetch_add(1, Ordering::Relaxed);
        let path = match self.dir.join(key).canonicalize() {
            Ok(path) => path,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(NotFound.into()),
            Err(e) => return Err(e.into()),
        };
        // A symbolic link in the directory may point elsewhere: never follow it out.
        if path.parent() != Some(self.dir.as_path()) {
            return Err(BadKey("the file is a link to outside the data directory").into());
        }
        let contents = tokio::fs::read(&path).await?;
        tracing::info!(key, bytes = contents.len(), "read from the data directory");
        Ok(FileValue {
            contents,
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
