//! This process's resident memory, for tests and harness runs that report or bound it.

/// Resident set size of this process in bytes, from `/proc/self/statm` (Linux); `None`
/// elsewhere.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Every Linux platform this runs on in CI uses 4 KiB pages.
    Some(pages * 4096)
}

/// `bytes` in MiB, for messages.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
