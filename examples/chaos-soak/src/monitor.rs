//! Watching the nodes while the load runs, once a second: the new lines of every node's log
//! (WARN and ERROR lines, and each file read, which the node logs with its key, each at the
//! time the line's timestamp gives), and the resident memory of every node process.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use crate::backend::Backend;
use crate::nodes;

/// The message the node's `contents` loader logs on each file read (`key=...` follows).
const READ_LINE: &str = "read from the data directory";
/// How many WARN/ERROR lines the report quotes.
const QUOTED: usize = 8;

/// One node process being watched.
#[derive(Debug)]
pub(crate) struct Watched {
    /// `n3.1` for node n3's second incarnation (the first is `.0`).
    pub(crate) label: String,
    pub(crate) pid: u32,
    log: PathBuf,
    offset: u64,
    partial: String,
    /// File reads in this process's log.
    pub(crate) loads: u64,
    pub(crate) rss_first_kib: Option<u64>,
    pub(crate) rss_last_kib: Option<u64>,
    pub(crate) rss_max_kib: u64,
    /// Set when the soak ended the process: no more RSS samples.
    pub(crate) ended: bool,
}

/// Everything the monitor counted.
#[derive(Debug)]
pub(crate) struct Monitor {
    pub(crate) watched: Vec<Watched>,
    /// File reads per key, over every node process.
    pub(crate) loads: Vec<u32>,
    /// File reads of keys that are not ours (must stay 0).
    pub(crate) foreign_loads: u64,
    /// When each file read, WARN line and ERROR line happened, in ms since the load started
    /// (0 for lines before it).
    pub(crate) read_ms: Vec<u32>,
    pub(crate) warn_ms: Vec<u32>,
    pub(crate) error_ms: Vec<u32>,
    /// The first line of each kind of WARN/ERROR line, for the report.
    pub(crate) quoted: Vec<String>,
    /// The load's start, in ms since the Unix epoch: log timestamps count from it.
    start_unix_ms: i64,
    /// WARN/ERROR lines by message (the text between the target and the fields).
    pub(crate) by_message: HashMap<String, u64>,
}

impl Monitor {
    /// A monitor for `keys` keys.
    pub(crate) fn new(keys: usize) -> Monitor {
        Monitor {
            watched: Vec::new(),
            loads: vec![0; keys],
            foreign_loads: 0,
            read_ms: Vec::new(),
            warn_ms: Vec::new(),
            error_ms: Vec::new(),
            quoted: Vec::new(),
            start_unix_ms: unix_ms_now(),
            by_message: HashMap::new(),
        }
    }

    /// The load starts now: log lines are timed from here.
    pub(crate) fn load_started(&mut self) {
        self.start_unix_ms = unix_ms_now();
    }

    /// Starts watching node process `label` (its log, its memory).
    pub(crate) fn watch(&mut self, label: String, pid: u32, log: PathBuf) {
        let rss = nodes::rss_kib(pid);
        self.watched.push(Watched {
            label,
            pid,
            log,
            offset: 0,
            partial: String::new(),
            loads: 0,
            rss_first_kib: rss,
            rss_last_kib: rss,
            rss_max_kib: rss.unwrap_or(0),
            ended: false,
        });
    }

    /// The process `pid` was ended by the soak: its log is read once more, its memory no
    /// longer sampled.
    pub(crate) fn ended(&mut self, pid: u32) {
        for w in self.watched.iter_mut().filter(|w| w.pid == pid) {
            w.ended = true;
        }
    }

    /// Reads what every log gained since the last poll and samples memory.
    pub(crate) fn poll(&mut self, backend: &Backend) {
        let now_ms = (unix_ms_now() - self.start_unix_ms).max(0);
        for i in 0..self.watched.len() {
            let text = read_new(&mut self.watched[i]);
            let mut loads = 0;
            for line in text.lines() {
                let at = line
                    .split_whitespace()
                    .next()
                    .and_then(parse_utc_ms)
                    .map_or(now_ms, |t| t - self.start_unix_ms);
                let at = u32::try_from(at.max(0)).unwrap_or(u32::MAX);
                loads += u64::from(self.line(line, at, backend));
            }
            let w = &mut self.watched[i];
            w.loads += loads;
            if !w.ended
                && let Some(rss) = nodes::rss_kib(w.pid)
            {
                w.rss_last_kib = Some(rss);
                w.rss_max_kib = w.rss_max_kib.max(rss);
            }
        }
    }

    /// Counts one log line; true if it is a file read.
    fn line(&mut self, line: &str, at_ms: u32, backend: &Backend) -> bool {
        let level = line.split_whitespace().nth(1).unwrap_or("");
        if level == "WARN" || level == "ERROR" {
            if level == "WARN" {
                self.warn_ms.push(at_ms);
            } else {
                self.error_ms.push(at_ms);
            }
            let count = self.by_message.entry(message_of(line)).or_default();
            *count += 1;
            if *count == 1 && self.quoted.len() < QUOTED {
                self.quoted.push(line.to_owned());
            }
        }
        let Some(key) = read_key(line) else {
            return false;
        };
        self.read_ms.push(at_ms);
        match backend.index_of(key) {
            Some(i) => self.loads[i] += 1,
            None => self.foreign_loads += 1,
        }
        true
    }
}

/// The new complete lines of `w`'s log since the last call.
fn read_new(w: &mut Watched) -> String {
    let Ok(mut file) = std::fs::File::open(&w.log) else {
        return String::new();
    };
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(w.offset)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    w.offset += bytes.len() as u64;
    let mut text = std::mem::take(&mut w.partial);
    text.push_str(&String::from_utf8_lossy(&bytes));
    // Keep an unfinished last line for the next poll.
    match text.rfind('\n') {
        Some(end) => {
            w.partial = text[end + 1..].to_owned();
            text.truncate(end + 1);
            text
        }
        None => {
            w.partial = text;
            String::new()
        }
    }
}

/// The key of a file-read line (`... read from the data directory key="k000042" bytes=...`).
fn read_key(line: &str) -> Option<&str> {
    let rest = &line[line.find(READ_LINE)? + READ_LINE.len()..];
    let value = &rest[rest.find("key=")? + 4..];
    let value = value.split_whitespace().next()?;
    Some(value.trim_matches('"'))
}

/// A WARN/ERROR line without its timestamp, level and fields, numbers as `N`: lines of one
/// kind group together whatever peer, port or count they name. (Digits right after a letter,
/// as in `h2`, are part of a name and stay.)
fn message_of(line: &str) -> String {
    let rest = line
        .split_whitespace()
        .skip(2)
        .collect::<Vec<_>>()
        .join(" ");
    let cut = rest
        .find(['='])
        .and_then(|eq| rest[..eq].rfind(' '))
        .unwrap_or(rest.len());
    let mut out = String::new();
    let mut in_number = false;
    for c in rest[..cut].chars().take(120) {
        let after_letter = out.chars().last().is_some_and(|p| p.is_ascii_alphabetic());
        if c.is_ascii_digit() && (in_number || !after_letter) {
            if !in_number {
                out.push('N');
                in_number = true;
            }
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

fn unix_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch of a log line's timestamp, `2026-12-02T02:27:23.758540Z`
/// (UTC, as the node's tracing subscriber writes it).
fn parse_utc_ms(ts: &str) -> Option<i64> {
    let ts = ts.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut ymd = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (hms.next()??, hms.next()??, hms.next()??);
    let millis: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    // Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (the "days from
    // civil" algorithm: years start in March, so the leap day is the last of its year).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_reads_are_found_with_their_key() {
        let line = "2026-12-02T02:25:01.1Z  INFO groupcache_node::files: read from the data \
                    directory key=\"k000042\" bytes=812";
        assert_eq!(read_key(line), Some("k000042"));
        let spanned = "2026-12-02T02:25:01.1Z  INFO load{key=\"other\"}: groupcache_node::files: \
                       read from the data directory key=k000007 bytes=1";
        assert_eq!(read_key(spanned), Some("k000007"));
        assert_eq!(read_key("2026 INFO serving gRPC and HTTP bound=1"), None);
    }

    #[test]
    fn log_timestamps_are_read_as_utc_milliseconds() {
        assert_eq!(
            parse_utc_ms("2026-12-02T02:27:23.758540Z"),
            Some(1_796_178_443_758)
        );
        assert_eq!(parse_utc_ms("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        assert_eq!(parse_utc_ms("1970-01-01T00:00:00.5Z"), Some(500));
        assert_eq!(parse_utc_ms("INFO"), None);
    }

    #[test]
    fn messages_drop_time_level_and_fields() {
        let line = "2026-12-02T02:25:01.1Z  WARN groupcache::lookup: peer not answering; asking \
                    the key's substitute group=contents peer=127.0.0.1:9 key=k1";
        assert_eq!(
            message_of(line),
            "groupcache::lookup: peer not answering; asking the key's substitute"
        );
        assert_eq!(
            message_of("t WARN anyone who can reach 127.0.0.1:4170 can read tls=false"),
            "anyone who can reach N.N.N.N:N can read"
        );
        assert_eq!(
            message_of("t WARN h2::proto: streams reached limit (20)"),
            "h2::proto: streams reached limit (N)"
        );
    }
}
