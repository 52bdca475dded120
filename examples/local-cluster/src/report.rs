//! What the demo measures and how it prints it: latency histograms, the stampede and overall
//! summaries, the per-peer table, and number formatting.

use std::net::SocketAddr;
use std::time::Duration;

use groupcache::Stats;
use hdrhistogram::Histogram;

use crate::read_load::ReadLoadReport;
use crate::stampede::StampedeReport;

/// Latency histogram in microseconds. Auto-resizing: it only grows as large as the slowest
/// request needs, which keeps one histogram per client per peer cheap.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is a valid precision")
}

pub(crate) fn micros(d: Duration) -> u64 {
    // A hit can take less than a microsecond; "1 µs" reads better than "0 µs".
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

pub(crate) fn print_stampede(s: &StampedeReport) {
    println!(
        "stampede: {} callers on {} cold keys ({} per key), released together on all peers",
        count(s.callers as u64),
        s.keys,
        count((s.callers / s.keys.max(1)) as u64)
    );
    print_pairs(&[
        ("joined a running flight", count(s.joined)),
        ("started a fetch or load", count(s.leaders)),
        ("answered from a cache", count(s.cache_hits)),
        ("peer RPCs", count(s.peer_rpcs)),
        (
            "database loads",
            if s.loads == s.keys as u64 && s.most_loads_per_key == 1 {
                format!("{} (one per key)", count(s.loads))
            } else {
                format!(
                    "{} (up to {} for one key)",
                    count(s.loads),
                    s.most_loads_per_key
                )
            },
        ),
        ("all answered in", latency_of(s.took)),
        (
            "caller p50 / max",
            format!(
                "{} / {}",
                latency_us(s.latency.value_at_quantile(0.5)),
                latency_us(s.latency.max())
            ),
        ),
    ]);
    println!();
}

pub(crate) fn print_overall(
    load: &ReadLoadReport,
    stats: &[Stats],
    stampede: Option<&StampedeReport>,
    loads: u64,
    distinct_keys: u64,
) {
    let sum = |f: fn(&Stats) -> u64| -> u64 { stats.iter().map(f).sum() };
    let gets = sum(|s| s.gets);
    let hot = sum(|s| s.hot_hits);
    let main = sum(|s| s.main_hits);
    let mut all = histogram();
    for h in &load.per_peer {
        all.add(h)
            .expect("an auto-resizing histogram accepts any other");
    }
    let stampede_callers = stampede.map_or(0, |s| s.callers as u64);

    println!("overall (read load over {:.1?})", load.took);
    print_pairs(&[
        (
            "requests",
            format!(
                "{} ({} read load + {} stampede)",
                count(gets),
                count(load.requests),
                count(stampede_callers)
            ),
        ),
        ("distinct keys requested", count(distinct_keys)),
        ("database loads", count(loads)),
        (
            "loads per distinct key",
            format!("{:.2}", loads as f64 / distinct_keys.max(1) as f64),
        ),
        ("hot cache hits", percent(hot, gets)),
        ("main cache hits", percent(main, gets)),
        (
            "needed a fetch or load",
            percent(gets.saturating_sub(hot + main), gets),
        ),
        ("peer RPCs", count(sum(rpcs_sent))),
        ("peer errors", count(sum(|s| s.peer_errors))),
        (
            "latency p50 / p99",
            format!(
                "{} / {}",
                latency_us(all.value_at_quantile(0.5)),
                latency_us(all.value_at_quantile(0.99))
            ),
        ),
        (
            "throughput",
            format!("{} req/s", count(per_second(load.requests, load.took))),
        ),
    ]);
    println!();
}

/// `Get` RPCs a peer sent: the values it fetched plus the requests that failed in transport.
pub(crate) fn rpcs_sent(s: &Stats) -> u64 {
    s.peer_loads + s.peer_errors
}

pub(crate) fn print_peers(addrs: &[SocketAddr], stats: &[Stats], latencies: &[Histogram<u64>]) {
    let header = [
        "peer",
        "gets",
        "hot hits",
        "main hits",
        "db loads",
        "RPCs sent",
        "RPCs served",
        "p50",
        "p99",
        "main entries",
        "main MiB",
    ];
    let rows: Vec<Vec<String>> = addrs
        .iter()
        .zip(stats)
        .zip(latencies)
        .map(|((addr, s), h)| {
            vec![
                addr.to_string(),
                count(s.gets),
                count(s.hot_hits),
                count(s.main_hits),
                count(s.local_loads),
                count(rpcs_sent(s)),
                count(s.server_requests),
                latency_us(h.value_at_quantile(0.5)),
                latency_us(h.value_at_quantile(0.99)),
                count(s.main_cache.entries),
                format!("{:.1}", s.main_cache.weighted_bytes as f64 / 1_048_576.0),
            ]
        })
        .collect();
    print_table(&header, &rows);
}

/// Label-value lines with the values aligned.
fn print_pairs(pairs: &[(&str, String)]) {
    let width = pairs.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (label, value) in pairs {
        println!("  {label:<width$}  {value}");
    }
}

/// A table with the first column left-aligned and the others (numbers) right-aligned.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i == 0 {
                out.push_str(&format!("{cell:<w$}"));
            } else {
                out.push_str(&format!("  {cell:>w$}"));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&mut header.iter().copied());
    println!(
        "{}",
        "-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1))
    );
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    format!("{:.1} %", part as f64 * 100.0 / whole as f64)
}

pub(crate) fn per_second(n: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        (n as f64 / secs) as u64
    } else {
        0
    }
}

fn latency_of(d: Duration) -> String {
    latency_us(micros(d))
}

fn latency_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}
