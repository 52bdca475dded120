//! A groupcache cluster in one process: a stampede, a skewed read load, and the numbers.
//!
//! Each peer (three by default) is a real tonic server on a loopback port, with its own slow
//! "database" (loaders that sleep a few milliseconds) and one peer set hosting two groups on
//! the same ring and the same gRPC service: `rows` (full rows, `--value-size` bytes) and
//! `summaries` (a size and a checksum per row, with a main cache a sixteenth the size). The
//! demo
//!
//! 1. releases thousands of callers at once on a few cold keys in both groups, spread over all
//!    peers, and shows that each key reaches the database once per group;
//! 2. runs many clients that read Zipf-distributed keys of either group through random peers,
//!    with a live progress line on stderr (time, gets, hit ratio and database loads so far;
//!    shown only on a terminal);
//! 3. prints where the answers came from (hot cache, main cache, owner, database), per group
//!    and per peer, with latencies, and checks that every key of every group was loaded
//!    exactly once across the cluster.
//!
//! ```text
//! cargo run --release -p local-cluster
//! cargo run --release -p local-cluster -- --help
//! cargo run -p local-cluster -- --duration 2 --keys 500 --concurrency 16 --burst 200
//! ```
//!
//! The exit status is 1 if any `get` failed or returned a wrong value, or if a key of a group
//! was loaded more than once while nothing was evicted from that group. Set `RUST_LOG=info` to see the library's logs.

mod cluster;
mod database;
mod failures;
mod read_load;
mod report;
mod stampede;
mod writes;

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use clap::builder::RangedU64ValueParser;
use groupcache::GroupcachePeer;

use crate::cluster::{shut_down, start_peer};
use crate::database::{Ledger, Table};
use crate::failures::Failures;
use crate::report::{GroupReport, count, print_groups, print_overall, print_peers, print_stampede};

/// Runs a groupcache cluster in one process, two groups (`rows`, `summaries`) on every peer: a
/// stampede on cold keys, then a Zipf read load through random peers; prints hit ratios,
/// database loads and latencies per group and per peer.
///
/// Exits with status 1 if any get failed or returned a wrong value, or if a key of a group was
/// loaded more than once while nothing was evicted from that group.
#[derive(Debug, Parser)]
#[command(name = "local-cluster", version)]
struct Args {
    /// Number of peers, each a tonic server on 127.0.0.1 with its own cache and database.
    #[arg(long, default_value_t = 3, value_parser = RangedU64ValueParser::<usize>::new().range(1..=64))]
    peers: usize,

    /// How long the read load runs, in seconds (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    duration: Duration,

    /// Number of concurrent clients in the read load. Each picks a random peer per request.
    #[arg(long, default_value_t = 64, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    concurrency: usize,

    /// Number of distinct keys in the read load.
    #[arg(long, default_value_t = 10_000, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100_000_000))]
    keys: usize,

    /// Exponent of the Zipf distribution of keys: 0 is uniform, higher is more skewed.
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = parse_exponent)]
    zipf_exponent: f64,

    /// Callers per cold key and group in the stampede, all released at the same instant (0: no
    /// stampede).
    #[arg(long, default_value_t = 2_000)]
    burst: usize,

    /// Number of cold keys in the stampede. They are not used by the read load.
    #[arg(long, default_value_t = 5)]
    stampede_keys: usize,

    /// Time each database load takes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    load_ms: u64,

    /// Size of each row's payload, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024, value_parser = RangedU64ValueParser::<usize>::new().range(0..=4 * 1024 * 1024))]
    value_size: usize,

    /// Main cache capacity of each peer's `rows` group, in MiB (`summaries` gets a sixteenth,
    /// at least 1 MiB). The default is large enough that nothing is evicted with the default
    /// flags, so that "one load per key" can be checked.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    main_cache_mib: u64,

    /// Keep one in N values fetched from other peers in the hot cache (1: all, 0: none).
    #[arg(long, value_name = "N", default_value_t = 10)]
    hot_one_in: u32,

    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9898) while the demo runs,
    /// at /metrics, each peer's labelled `peer="<address>"` and each group's `group="<name>"`.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("expected a positive number of seconds, got {s}")),
    }
}

fn parse_exponent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("expected a number >= 0, got {s}")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Printed with Display: returning the error from `main` would print its Debug form.
    run(args).await.unwrap_or_else(|err| {
        eprintln!("local-cluster: {err}");
        ExitCode::FAILURE
    })
}

/// Sets the cluster up, runs the stampede and the read load, reports, and judges.
async fn run(args: Args) -> Result<ExitCode, Box<dyn Error>> {
    // Before the caches are built: they register their metrics with the recorder in place.
    if let Some(listen) = args.metrics_listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(listen)
            .install()
            .map_err(|e| format!("cannot serve metrics on {listen}: {e}"))?;
        println!("Prometheus metrics at http://{listen}/metrics");
    }
    let ledger = Arc::new(Ledger::default());
    let failures = Arc::new(Failures::default());
    let mut peers = Vec::with_capacity(args.peers);
    for _ in 0..args.peers {
        peers.push(start_peer(&args, &ledger).await?);
    }
    // Every peer gets the same list, itself included, so that all agree on each key's owner.
    let members: Vec<GroupcachePeer> = peers.iter().map(|p| p.cache.me().clone()).collect();
    for peer in &peers {
        peer.cache.set_peers(members.iter().cloned())?;
    }

    let addrs: Vec<String> = peers.iter().map(|p| p.cache.addr().to_string()).collect();
    println!("cluster:   {} peers on {}", peers.len(), addrs.join(", "));
    println!(
        "groups:    {} on every peer",
        Table::ALL.map(Table::name).join(", ")
    );
    println!(
        "database:  {} ms per load, {} B rows; main cache {} MiB per peer for rows, hot copies \
         1 in {}",
        args.load_ms, args.value_size, args.main_cache_mib, args.hot_one_in
    );
    println!(
        "read load: {} clients for {:.1?}, {} keys, Zipf exponent {}",
        args.concurrency,
        args.duration,
        count(args.keys as u64),
        args.zipf_exponent
    );
    println!();

    let stampede = if args.burst > 0 && args.stampede_keys > 0 {
        let report = stampede::run(&peers, &args, &ledger, &failures).await?;
        print_stampede(&report);
        Some(report)
    } else {
        None
    };

    let load = read_load::run(&peers, &args, &failures).await?;
    let stampede_keys = stampede.as_ref().map_or(0, |s| s.keys as u64);
    let groups: Vec<GroupReport> = Table::ALL
        .into_iter()
        .map(|table| {
            let (loads, most_loads_per_key) = ledger.loads(table);
            GroupReport {
                table,
                stats: peers.iter().map(|p| p.groups.stats(table)).collect(),
                // The stampede's keys are not among the read load's.
                distinct_keys: load.distinct_keys[table.index()] + stampede_keys,
                loads,
                most_loads_per_key,
            }
        })
        .collect();
    let db_calls: Vec<[u64; 2]> = peers
        .iter()
        .map(|p| Table::ALL.map(|t| p.db.calls(t)))
        .collect();
    // After the figures above: the write step's reads are not part of the read load.
    let written = writes::run(&peers, args.value_size).await?;
    let addrs: Vec<SocketAddr> = peers.iter().map(|p| p.cache.addr()).collect();
    let shutdown_problems = shut_down(peers).await;

    print_overall(&load, &groups, stampede.as_ref());
    print_groups(&groups);
    print_peers(&addrs, &groups, &load.per_peer);
    println!();
    println!(
        "write:     set({:?}) on one peer after every peer read it: {} of {} peers read the \
         new row at once; {} invalidations received, {} peers did not acknowledge",
        written.key,
        written.fresh,
        written.peers,
        written.invalidations_received,
        written.unacknowledged
    );

    // ===== verdict =====
    let mut problems = Vec::new();
    let failed = failures.total();
    if failed > 0 {
        problems.push(format!(
            "failed or wrong gets: {}; the first ones:",
            count(failed)
        ));
        problems.extend(failures.first().iter().map(|m| format!("  {m}")));
    }
    for group in &groups {
        let name = group.table.name();
        for ((addr, s), calls) in addrs.iter().zip(&group.stats).zip(&db_calls) {
            let calls = calls[group.table.index()];
            if s.local_loads != calls {
                problems.push(format!(
                    "peer {addr}: {name}.local_loads is {} but its {name} table was read \
                     {calls} times",
                    s.local_loads
                ));
            }
        }
    }
    println!();
    let mut unchecked = Vec::new();
    for group in &groups {
        let name = group.table.name();
        // Only the main cache matters: a hot copy dropped early costs an RPC, never a load.
        let evictions = group.sum(|s| s.main_cache.evictions + s.main_cache.expirations);
        if evictions > 0 {
            println!(
                "note: {} {name} entries were evicted or expired, so a key may rightly have \
                 been loaded again; {name}'s one-load-per-key check is skipped (raise \
                 --main-cache-mib)",
                count(evictions)
            );
            unchecked.push(name);
            continue;
        }
        if group.loads != group.distinct_keys || group.most_loads_per_key > 1 {
            problems.push(format!(
                "{name}: {} database loads for {} distinct keys ({:.2} per key, at most {} for \
                 one key), with nothing evicted: expected exactly 1.00",
                count(group.loads),
                count(group.distinct_keys),
                group.loads_per_key(),
                group.most_loads_per_key
            ));
        }
        if let Some(s) = &stampede
            && s.loads[group.table.index()] != s.keys as u64
        {
            problems.push(format!(
                "{name}: the stampede's {} keys were loaded {} times: expected once per key",
                s.keys,
                s.loads[group.table.index()]
            ));
        }
    }
    if written.fresh != written.peers || written.unacknowledged > 0 {
        problems.push(format!(
            "write: {} of {} peers read the new row after set returned ({} unacknowledged)",
            written.fresh, written.peers, written.unacknowledged
        ));
    }
    problems.extend(shutdown_problems);

    if problems.is_empty() {
        let per_group = groups
            .iter()
            .filter(|g| !unchecked.contains(&g.table.name()))
            .map(|g| format!("{:.2} {}", g.loads_per_key(), g.table.name()))
            .collect::<Vec<_>>()
            .join(", ");
        if unchecked.is_empty() {
            println!(
                "ok: every answer was correct and every key of every group was loaded exactly \
                 once (loads per distinct key: {per_group})"
            );
        } else if per_group.is_empty() {
            println!("ok: every answer was correct");
        } else {
            println!(
                "ok: every answer was correct; loads per distinct key: {per_group} (not checked: \
                 {})",
                unchecked.join(", ")
            );
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("FAILED:");
        for p in &problems {
            eprintln!("  {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}
