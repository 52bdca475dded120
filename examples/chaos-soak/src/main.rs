//! The chaos soak: five `groupcache-node` processes on loopback, a Zipf read load through all
//! of them, and a schedule of faults (kill -9 and restart, SIGSTOP and SIGCONT, a node joining
//! through the peers file, a node leaving and stopped), with every answer checked against the
//! files it came from.
//!
//! ```text
//! cargo build -p groupcache-node -p chaos-soak
//! target/debug/chaos-soak                       # 10 minutes; report in target/chaos-soak
//! target/debug/chaos-soak --duration 60s --out /tmp/soak
//! target/debug/chaos-soak --help
//! ```
//!
//! The node executable is found next to this one (`--node-bin` to give another). The soak
//! writes its backend (`--keys` files, each naming its key and version, 64 B to 2 KiB) into
//! `OUT/data`, keeps the peers file at `OUT/peers` and each node process's stderr in
//! `OUT/logs/<node>.<incarnation>.log`.
//!
//! It reports: requests, wrong answers, failed requests (HTTP errors, timeouts, connection
//! errors) per phase, file reads per key against a bound (see `bound.rs`: one read per key,
//! plus one per fault that takes its owner away or moves it), throughput and p99 per second,
//! p99 per phase, each node's RSS at start and end, and WARN/ERROR log lines per minute;
//! `OUT/report.txt` holds the same text and `OUT/soak.svg` plots throughput and p99 per second
//! with the faults shaded.
//!
//! Exit status: 0 if every answer was right and no key was read more often than its bound
//! allows (with `--loads-check report`, the bound is reported, not enforced); 1 otherwise,
//! or if a fault step failed (a node that does not start or members not agreed on within
//! 30 s); 2 for bad arguments.
//!
//! File reads per key come from the nodes' own logs (the soak starts them with
//! `RUST_LOG=info`; the `contents` loader logs `read from the data directory key=...` for each
//! read), checked against each node's `/stats` `file_loads` at the end. The soak keeps every
//! request's start and latency (8 bytes each) for the per-phase percentiles: at a few
//! thousand requests per second, a few tens of MB for ten minutes.
//!
//! Requests go to the nodes the soak believes are up: a node is taken out of the load just
//! before a fault is done to it and put back once it answers again, as a load balancer with
//! perfect health checks would. Requests in flight to it when the fault happens are counted
//! apart ("at target"); the failures that matter are those of the healthy nodes.

mod args;
mod backend;
mod bound;
mod cluster;
mod http;
mod load;
mod monitor;
mod nodes;
mod report;
mod schedule;
mod stats;
mod svg;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;

use crate::args::{Args, LoadsCheck};
use crate::backend::{Backend, Layout};
use crate::cluster::Cluster;
use crate::load::{KeySampler, Shared, Targets};
use crate::monitor::Monitor;
use crate::nodes::NodeConfig;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("chaos-soak: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // On Ctrl-C the run is dropped, and with it every node process (SIGKILL, which also ends
    // a node the soak had stopped with SIGSTOP).
    let result = runtime.block_on(async {
        tokio::select! {
            result = run(args) => result,
            _ = tokio::signal::ctrl_c() => Err("interrupted: the nodes were killed, no report".into()),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("chaos-soak: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The whole soak; `Ok(false)` when a check failed.
async fn run(args: Args) -> Result<bool, String> {
    let node_bin = match &args.node_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this executable: {e}"))?
            .with_file_name("groupcache-node"),
    };
    if !node_bin.is_file() {
        return Err(format!(
            "no node executable at {}: build it first (cargo build -p groupcache-node -p \
             chaos-soak) or give --node-bin",
            node_bin.display()
        ));
    }
    let layout = Layout::create(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let backend = Backend::write(&layout.data, args.keys as usize)
        .map_err(|e| format!("writing the backend: {e}"))?;
    let sampler = KeySampler::new(backend.len(), args.zipf_exponent)?;
    let plan = schedule::plan(args.duration);
    let config = NodeConfig {
        bin: node_bin,
        data_dir: layout.data.clone(),
        peers_file: layout.peers.clone(),
        logs: layout.logs.clone(),
        discovery_ms: args.discovery_interval_ms,
    };
    let monitor = Arc::new(Mutex::new(Monitor::new(backend.len())));
    let targets = Arc::new(Targets::default());
    eprintln!(
        "chaos-soak: starting {} nodes ({}), {} keys in {}",
        args.nodes,
        config.bin.display(),
        backend.len(),
        layout.data.display()
    );
    let mut cluster = Cluster::start(
        config,
        args.nodes as usize,
        targets.clone(),
        monitor.clone(),
        args.seed,
    )
    .await?;

    let keys = backend.len();
    let shared = Arc::new(Shared {
        backend,
        targets,
        started: Instant::now(),
        stop: AtomicBool::new(false),
        first_request_ms: (0..keys).map(|_| AtomicU32::new(u32::MAX)).collect(),
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        wrong: AtomicU64::new(0),
        timeout: Duration::from_millis(args.timeout_ms),
    });
    cluster.load_started(shared.started);
    monitor.lock().expect("monitor lock").load_started();
    eprintln!(
        "chaos-soak: load for {:?}: {} clients, Zipf({}) over {keys} keys; {} faults planned",
        args.duration,
        args.concurrency,
        args.zipf_exponent,
        plan.len()
    );
    let clients: Vec<_> = (0..args.concurrency)
        .map(|i| {
            tokio::spawn(load::client(
                shared.clone(),
                sampler,
                args.seed.wrapping_mul(1_000_003).wrapping_add(u64::from(i)),
            ))
        })
        .collect();
    let watcher = tokio::spawn(watch(shared.clone(), monitor.clone()));

    let end = shared.started + args.duration;
    let faults = cluster.run(&plan, &shared.backend).await;
    if faults.is_ok() {
        tokio::time::sleep_until(end.into()).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for client in clients {
        logs.push(
            client
                .await
                .map_err(|e| format!("a client panicked: {e}"))?,
        );
    }
    let _ = watcher.await;
    let seconds = shared.started.elapsed().as_secs() as usize;
    let file_loads = cluster.file_loads().await;
    monitor.lock().expect("monitor lock").poll(&shared.backend);
    let timeline = cluster.timeline.clone();
    let (fault_spans, events) = (cluster.faults.clone(), cluster.events.clone());
    let unclean = cluster.shutdown().await;
    let monitor = monitor.lock().expect("monitor lock");

    let mut samples = Vec::new();
    let mut failed = Vec::new();
    let mut wrong = Vec::new();
    for log in logs {
        samples.extend(log.samples);
        failed.extend(log.failed);
        wrong.extend(log.wrong);
    }
    let first: Vec<u32> = shared
        .first_request_ms
        .iter()
        .map(|f| f.load(Ordering::Relaxed))
        .collect();
    let bound = bound::per_key(&first, &events);
    let verdict = bound::check(&monitor.loads, &bound);
    let cross_check: Vec<String> = file_loads
        .iter()
        .map(|(label, loads)| {
            let logged = monitor
                .watched
                .iter()
                .find(|w| &w.label == label)
                .map_or(0, |w| w.loads);
            match loads {
                Ok(n) if *n == logged => {
                    format!("{label}: /stats file_loads {n} = reads in its log")
                }
                Ok(n) => format!(
                    "{label}: /stats file_loads {n} but {logged} reads in its log  <-- MISMATCH"
                ),
                Err(e) => format!("{label}: /stats unavailable: {e}"),
            }
        })
        .collect();
    let windows = stats::windows(&samples, &failed, seconds);
    let settings = format!(
        "{} nodes, {:?}, {} clients, {} keys, Zipf({}), seed {}, request timeout {} ms, discovery every {} ms",
        args.nodes,
        args.duration,
        args.concurrency,
        keys,
        args.zipf_exponent,
        args.seed,
        args.timeout_ms,
        args.discovery_interval_ms
    );
    let text = report::render(&report::Inputs {
        settings: settings.clone(),
        seconds,
        seen: stats::Observed {
            samples: &samples,
            failed: &failed,
            reads_ms: &monitor.read_ms,
            lead_ms: u32::try_from(args.timeout_ms).unwrap_or(u32::MAX),
        },
        wrong: &wrong,
        windows: &windows,
        faults: &fault_spans,
        events: &events,
        verdict: &verdict,
        monitor: &monitor,
        timeline: &timeline,
        cross_check: &cross_check,
        unclean_exits: &unclean,
    });
    print!("{text}");
    let svg = svg::plot(&format!("chaos soak: {settings}"), &windows, &fault_spans);
    let report_path = layout.out.join("report.txt");
    let svg_path = layout.out.join("soak.svg");
    std::fs::write(&report_path, &text).map_err(|e| format!("{}: {e}", report_path.display()))?;
    std::fs::write(&svg_path, svg).map_err(|e| format!("{}: {e}", svg_path.display()))?;
    println!(
        "\nreport: {}\nplot:   {}",
        report_path.display(),
        svg_path.display()
    );

    let mut ok = true;
    if let Err(err) = faults {
        println!("FAILED: a fault step failed: {err}");
        ok = false;
    }
    if !wrong.is_empty() {
        println!(
            "FAILED: {} wrong answers (an answer that is not its file's contents)",
            wrong.len()
        );
        ok = false;
    }
    if monitor.foreign_loads > 0 {
        println!(
            "FAILED: {} reads of keys the load never asked for",
            monitor.foreign_loads
        );
        ok = false;
    }
    if !verdict.over.is_empty() {
        let what = format!(
            "{} keys read more often than their bound ({} reads against a bound of {})",
            verdict.over.len(),
            verdict.loads,
            verdict.bound
        );
        if args.loads_check == LoadsCheck::Enforce {
            println!("FAILED: {what}");
            ok = false;
        } else {
            println!("NOT ENFORCED (--loads-check report): {what}");
        }
    }
    if ok && verdict.over.is_empty() {
        println!("OK: every answer right, file reads within the bound");
    } else if ok {
        println!("OK: every answer right (file reads over the bound, not enforced)");
    }
    Ok(ok)
}

/// Once a second until the load stops: the monitor polls the logs and memory; every 10 s a
/// progress line.
async fn watch(shared: Arc<Shared>, monitor: Arc<Mutex<Monitor>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seconds = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        monitor.lock().expect("monitor lock").poll(&shared.backend);
        seconds += 1;
        if seconds.is_multiple_of(10) {
            let second = shared.started.elapsed().as_secs();
            eprintln!(
                "chaos-soak: {second:>4}s  {} requests, {} failed, {} wrong",
                shared.done.load(Ordering::Relaxed),
                shared.failed.load(Ordering::Relaxed),
                shared.wrong.load(Ordering::Relaxed)
            );
        }
    }
}
