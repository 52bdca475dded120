//! What the demo measures and how it prints it: latency histograms, the stampede and overall
//! summaries, the per-group and per-peer tables, and number formatting.

use std::net::SocketAddr;
use std::time::Duration;

use groupcache::stats::Stats;
use hdrhistogram::Histogram;

use crate::database::Table;
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
    let groups = Table::ALL.len();
    println!(
        "stampede: {} callers on {} cold keys in {groups} groups ({} per key and group), \
         released together on all peers",
        count(s.callers as u64),
        s.keys,
        count((s.callers / (s.keys * groups).max(1)) as u64)
    );
    let once = Table::ALL
        .iter()
        .all(|t| s.loads[t.index()] == s.keys as u64 && s.most_loads_per_key[t.index()] == 1);
    let per_group = Table::ALL
        .iter()
        .map(|t| format!("{} {}", t.name(), count(s.loads[t.index()])))
        .collect::<Vec<_>>()
        .join(", ");
    let most = s.most_loads_per_key.iter().copied().max().unwrap_or(0);
    print_pairs(&[
        ("joined a running flight", count(s.joined)),
        ("started a fetch or load", count(s.leaders)),
        ("answered from a cache", count(s.cache_hits)),
        ("peer RPCs", count(s.peer_rpcs)),
        (
            "database loads",
            if once {
                format!("{per_group} (one per key and group)")
            } else {
                format!("{per_group} (up to {most} for one key)")
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

/// One group's figures over the whole run, stampede included.
#[derive(Debug)]
pub(crate) struct GroupReport {
    pub(crate) table: Table,
    /// Its stats on each peer, in peer order.
    pub(crate) stats: Vec<Stats>,
    /// Keys asked for at least once, in this group.
    pub(crate) distinct_keys: u64,
    /// Database loads of this group's table, from the ledger.
    pub(crate) loads: u64,
    /// The most loads of one key of this group.
    pub(crate) most_loads_per_key: u64,
}

impl GroupReport {
    pub(crate) fn loads_per_key(&self) -> f64 {
        self.loads as f64 / self.distinct_keys.max(1) as f64
    }

    pub(crate) fn sum(&self, f: impl Fn(&Stats) -> u64) -> u64 {
        self.stats.iter().map(f).sum()
    }
}

pub(crate) fn print_overall(
    load: &ReadLoadReport,
    groups: &[GroupReport],
    stampede: Option<&StampedeReport>,
) {
    let sum = |f: fn(&Stats) -> u64| -> u64 { groups.iter().map(|g| g.sum(f)).sum() };
    let gets = sum(|s| s.gets);
    let hot = sum(|s| s.hot_hits);
    let main = sum(|s| s.main_hits);
    let distinct_keys: u64 = groups.iter().map(|g| g.distinct_keys).sum();
    let loads: u64 = groups.iter().map(|g| g.loads).sum();
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
            groups
                .iter()
                .map(|g| format!("{:.2} {}", g.loads_per_key(), g.table.name()))
                .collect::<Vec<_>>()
                .join(", "),
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

/// One line per group, summed over the peers.
pub(crate) fn print_groups(groups: &[GroupReport]) {
    let header = [
        "group",
        "gets",
        "hot hits",
        "main hits",
        "distinct keys",
        "db loads",
        "loads per key",
        "RPCs sent",
        "main entries",
        "main MiB",
    ];
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let gets = g.sum(|s| s.gets);
            vec![
                g.table.name().to_owned(),
                count(gets),
                percent(g.sum(|s| s.hot_hits), gets),
                percent(g.sum(|s| s.main_hits), gets),
                count(g.distinct_keys),
                count(g.loads),
                format!("{:.2}", g.loads_per_key()),
                count(g.sum(rpcs_sent)),
                count(g.sum(|s| s.main_cache.entries)),
                mib(g.sum(|s| s.main_cache.weighted_bytes)),
            ]
        })
        .collect();
    print_table(&header, &rows);
    println!();
}

/// `Get` RPCs a peer sent: the values it fetched plus the requests that failed in transport.
pub(crate) fn rpcs_sent(s: &Stats) -> u64 {
    s.peer_loads + s.peer_errors
}

/// One line per peer, summed over its groups; `groups[g].stats[p]` is group `g` on peer `p`.
pub(crate) fn print_peers(
    addrs: &[SocketAddr],
    groups: &[GroupReport],
    latencies: &[Histogram<u64>],
) {
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
        .zip(latencies)
        .enumerate()
        .map(|(p, (addr, h))| {
            let sum = |f: fn(&Stats) -> u64| -> u64 { groups.iter().map(|g| f(&g.stats[p])).sum() };
            vec![
                addr.to_string(),
                count(sum(|s| s.gets)),
                count(sum(|s| s.hot_hits)),
                count(sum(|s| s.main_hits)),
                count(sum(|s| s.local_loads)),
                count(sum(rpcs_sent)),
                count(sum(|s| s.server_requests)),
                latency_us(h.value_at_quantile(0.5)),
                latency_us(h.value_at_quantile(0.99)),
                count(sum(|s| s.main_cache.entries)),
                mib(sum(|s| s.main_cache.weighted_bytes)),
            ]
        })
        .collect();
    print_table(&header, &rows);
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1_048_576.0)
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
