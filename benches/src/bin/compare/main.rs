//! `compare`: the same workloads, in one run, against this library, the published
//! `groupcache` crate 0.3.0, the original Go groupcache (when `go` is installed: see
//! `go.rs`), and raw baselines (moka, quick_cache and `HashMap` gets for a local hit; a bare
//! tonic echo for a remote hit), and under faults (an owner dead or stalled, membership
//! unchanged). Prints one Markdown table with ratios and writes SVG charts of them
//! (`charts.rs`); `--json PATH` writes the same figures as JSON. See BENCHMARKS.md for what each
//! row means.
//!
//! ```text
//! cargo run --release -p groupcache-benches --bin compare            # ~3 minutes
//! cargo run --release -p groupcache-benches --bin compare -- --only faults # ~16 s
//! cargo run --release -p groupcache-benches --bin compare -- --quick # under 60 s
//! ```

mod charts;
mod cluster;
mod echo;
mod fanout;
mod fault_proxy;
mod faults;
mod floors;
mod get_many;
mod go;
mod measure;
mod ours;
mod published;
mod report;
mod rounds;
mod source;
mod stampede;
mod workloads;
mod writes;
mod zipf;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;

use crate::go::Go;
use crate::measure::Budget;
use crate::workloads::Plan;

/// Benchmarks groupcache side by side with the published crate and raw baselines.
#[derive(Debug, Parser)]
#[command(name = "compare")]
struct Args {
    /// Short run (under 60 s): a smoke test that every workload still runs; figures are rough.
    #[arg(long)]
    quick: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Seconds each figure is measured for (after a warm-up of a fifth of that).
    #[arg(long, value_name = "SECONDS")]
    seconds: Option<f64>,
    /// Only run workloads whose name contains this ("local hit", "remote hit 100 B",
    /// "remote hit" for all three sizes, "large value 8 MiB", "stampede", "Zipf", "remove",
    /// "faults" for both of "faults: dead owner" and "faults: stalled owner").
    #[arg(long)]
    only: Option<String>,
    /// Only these contenders, comma-separated (ours, 0.3.0, echo, moka, quick_cache, HashMap,
    /// fan-out, Go).
    #[arg(long, value_name = "NAMES")]
    contenders: Option<String>,
    /// Where the SVG charts (charts/, emptied of older ones first) are written and the Go
    /// benchmark is built (go-groupcache/); default: compare/ in cargo's target directory.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write the SVG charts here instead (emptied of older ones first).
    #[arg(long, value_name = "DIR")]
    charts: Option<PathBuf>,
    /// Use this gcbench binary (benches/go-groupcache) instead of building one.
    #[arg(long, value_name = "PATH")]
    go_bin: Option<PathBuf>,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

fn plan(args: &Args) -> Plan {
    let seconds = args.seconds.unwrap_or(if args.quick { 0.25 } else { 2.0 });
    let run = Duration::from_secs_f64(seconds);
    Plan {
        budget: Budget {
            warmup: run / 5,
            run,
        },
        in_flight: 64,
        stampede_callers: 10_000,
        stampede_rounds: if args.quick { 2 } else { 5 },
        stampede_loader: Duration::from_millis(50),
        zipf_keys: 100_000,
        zipf_gets: if args.quick { 20_000 } else { 200_000 },
        zipf_loader: Duration::from_millis(2),
        large_value: 8 << 20,
        fault_keys: 64,
        fault_rounds: if args.quick { 2 } else { 5 },
        stall_window: Duration::from_secs(if args.quick { 1 } else { 10 }),
        fault_peer_timeout: Duration::from_secs(1),
        fault_loader: Duration::from_millis(2),
        rounds: if args.quick { 2 } else { 5 },
        contenders: args
            .contenders
            .clone()
            .map(|list| &*Box::leak(list.into_boxed_str())),
    }
}

/// compare/ in the target directory compare was built in (the first folder above the
/// executable that cargo marked with CACHEDIR.TAG), else beside the executable.
fn default_out() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    dir.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .unwrap_or(dir)
        .join("compare")
}

fn main() {
    let args = Args::parse();
    let out = args.out.clone().unwrap_or_else(default_out);
    let plan = plan(&args);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = args.workers {
        runtime.worker_threads(workers);
    }
    let runtime = runtime.build().expect("tokio runtime");
    let wanted = |name: &str| args.only.as_deref().is_none_or(|only| name.contains(only));
    let started = Instant::now();
    let mut rows = Vec::new();
    let remote_sizes = [100, 10 << 10, 1 << 20];
    let go_runs = wanted("local hit")
        || wanted("stampede")
        || remote_sizes
            .iter()
            .any(|&s| wanted(&format!("remote hit {}", workloads::size_name(s))));
    let go = runtime.block_on(async {
        let go = if go_runs {
            eprintln!("[{:>5.1}s] Go groupcache", started.elapsed().as_secs_f64());
            Go::prepare(&plan, &out, args.go_bin.as_deref()).await
        } else {
            Go::Off
        };
        if let Some(line) = go.summary() {
            eprintln!("{line}");
        }
        if wanted("local hit") {
            eprintln!("[{:>5.1}s] local hit", started.elapsed().as_secs_f64());
            workloads::local_hit(&plan, &go, &mut rows).await;
        }
        for size in remote_sizes {
            if wanted(&format!("remote hit {}", workloads::size_name(size))) {
                eprintln!(
                    "[{:>5.1}s] remote hit {}",
                    started.elapsed().as_secs_f64(),
                    workloads::size_name(size)
                );
                workloads::remote_hit(&plan, &go, size, &mut rows).await;
            }
        }
        for size in [100, 10 << 10] {
            let name = format!("remote hit {}, coalescing", workloads::size_name(size));
            if wanted(&name) {
                eprintln!("[{:>5.1}s] {name}", started.elapsed().as_secs_f64());
                workloads::coalescing(&plan, size, &mut rows).await;
            }
        }
        if wanted("large value 8 MiB") {
            eprintln!("[{:>5.1}s] large value", started.elapsed().as_secs_f64());
            workloads::large_value(&plan, &mut rows).await;
        }
        if wanted("stampede") {
            eprintln!("[{:>5.1}s] stampede", started.elapsed().as_secs_f64());
            stampede::stampede(&plan, &go, &mut rows).await;
        }
        if wanted("Zipf") {
            eprintln!("[{:>5.1}s] Zipf mix", started.elapsed().as_secs_f64());
            zipf::zipf(&plan, &mut rows).await;
        }
        if wanted("get_many") {
            eprintln!("[{:>5.1}s] get_many", started.elapsed().as_secs_f64());
            get_many::get_many(&plan, &mut rows).await;
        }
        if wanted("remove") {
            eprintln!("[{:>5.1}s] remove", started.elapsed().as_secs_f64());
            writes::remove_latency(&plan, &mut rows).await;
        }
        if wanted("faults: dead owner") {
            eprintln!(
                "[{:>5.1}s] faults: dead owner",
                started.elapsed().as_secs_f64()
            );
            faults::dead_owner(&plan, &mut rows).await;
        }
        if wanted("faults: stalled owner") {
            eprintln!(
                "[{:>5.1}s] faults: stalled owner",
                started.elapsed().as_secs_f64()
            );
            faults::stalled_owner(&plan, &mut rows).await;
        }
        go
    });
    let total = started.elapsed();
    let go_json = go.json();
    let go_line = go.summary();
    runtime.block_on(go.shutdown());
    println!("{}", report::table(&rows));
    if let Some(line) = go_line {
        println!("{line}");
    }
    let charts = args.charts.clone().unwrap_or_else(|| out.join("charts"));
    match charts::write(&rows, &charts) {
        Ok(written) => eprintln!("{} charts written to {}", written.len(), charts.display()),
        Err(e) => eprintln!("cannot write charts to {}: {e}", charts.display()),
    }
    println!(
        "{} rows in {:.1} s; {} tokio workers; {} cores; {}",
        rows.len(),
        total.as_secs_f64(),
        args.workers
            .map_or_else(|| "default".to_owned(), |w| w.to_string()),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if args.quick { "--quick" } else { "default run" },
    );
    if let Some(path) = &args.json {
        let settings = json!({
            "quick": args.quick,
            "seconds_per_figure": plan.budget.run.as_secs_f64(),
            "in_flight": plan.in_flight,
            "stampede_callers": plan.stampede_callers,
            "stampede_rounds": plan.stampede_rounds,
            "stampede_loader_ms": plan.stampede_loader.as_millis() as u64,
            "zipf_keys": plan.zipf_keys,
            "zipf_gets": plan.zipf_gets,
            "zipf_loader_ms": plan.zipf_loader.as_millis() as u64,
            "large_value_bytes": plan.large_value,
            "fault_keys": plan.fault_keys,
            "fault_rounds": plan.fault_rounds,
            "stall_window_ms": plan.stall_window.as_millis() as u64,
            "fault_peer_timeout_ms": plan.fault_peer_timeout.as_millis() as u64,
            "fault_loader_ms": plan.fault_loader.as_millis() as u64,
            "total_seconds": total.as_secs_f64(),
            "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "go": go_json,
        });
        let text = serde_json::to_string_pretty(&report::json(&rows, settings))
            .expect("JSON of plain figures");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        eprintln!("figures written to {}", path.display());
    }
}
