//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Runs five groupcache-node processes under a Zipf read load and a schedule of faults,
/// checks every answer against the backend's files and file reads against a bound, and
/// writes a report and a plot.
#[derive(Debug, Parser)]
#[command(name = "chaos-soak", version)]
pub(crate) struct Args {
    /// How long the load runs: seconds, or with a unit (`90s`, `10m`, `1h`). The faults are
    /// spread over it.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub(crate) duration: Duration,

    /// Where the report (`report.txt`), the plot (`soak.svg`), the data directory, the peers
    /// file and the nodes' logs go.
    #[arg(long, value_name = "DIR", default_value = "target/chaos-soak")]
    pub(crate) out: PathBuf,

    /// Number of keys (files) in the backend.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) keys: u32,

    /// Concurrent HTTP clients, each with one request in flight.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) concurrency: u32,

    /// Seeds the key draws and the choice of fault victims.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,

    /// The exponent of the Zipf distribution of keys (1.0: the hottest key gets about 12 % of
    /// the requests with 2,000 keys).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) zipf_exponent: f64,

    /// Nodes at the start (a join adds one, a leave removes one).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(3..=32))]
    pub(crate) nodes: u32,

    /// The `groupcache-node` executable. Default: the one next to this executable.
    #[arg(long, value_name = "PATH")]
    pub(crate) node_bin: Option<PathBuf>,

    /// A request with no answer within this many milliseconds counts as a timeout.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    pub(crate) timeout_ms: u64,

    /// The nodes' `--discovery-interval-ms`: how often they read the peers file.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub(crate) discovery_interval_ms: u64,

    /// Whether file reads over the bound fail the run (`enforce`) or are only reported.
    #[arg(long, value_enum, default_value_t = LoadsCheck::Enforce)]
    pub(crate) loads_check: LoadsCheck,
}

/// What reads over the bound do to the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LoadsCheck {
    /// Any key read more often than its bound fails the run.
    Enforce,
    /// Reported only.
    Report,
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?}"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("unknown unit in {text:?} (use s, m or h)")),
    };
    if seconds < 20 {
        return Err("the soak needs at least 20 s to fit its faults".into());
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_seconds_minutes_or_hours() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5s").is_err());
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("m").is_err());
    }
}
