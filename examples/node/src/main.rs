//! One groupcache peer per process: the peer gRPC service and a small HTTP front on one port,
//! in front of a directory of files (one file per key).
//!
//! Three terminals make a cluster (see the README's "A cluster in three terminals"):
//!
//! ```text
//! cargo run -p groupcache-node -- --listen 127.0.0.1:9001 --data-dir examples/node/data \
//!     --peers 127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003
//! curl -s localhost:9001/values/hello.txt     # contents, owner
//! curl -s localhost:9001/meta/hello.txt       # size, mtime, hash, which peer read the file
//! curl -s localhost:9002/stats                # counters per group, file reads, members
//! ```
//!
//! One peer set, one gRPC service and one ring serve two groups: `contents` (each file's bytes,
//! cached as they are with the pass-through codec `Raw`) and `metadata` (its size,
//! modification time and XXH3 hash, a serde struct with the default codec; its loader gets the
//! bytes from `contents`, so a file is read once for both). A key has the same owner in both.
//!
//! Membership comes from one of: `--peers` (or the `GROUPCACHE_PEERS` environment variable),
//! `--peers-file` (re-read on every discovery poll), or `--dns NAME` (every address of the
//! name, on this node's port: a kubernetes headless service). With none, the node is alone.
//!
//! The first line on stdout is `listening on ADDR`, with the bound address (useful with
//! `--listen 127.0.0.1:0`). Logs go to stderr (`RUST_LOG=debug` for more).
//!
//! Who may use the peer port: without the flags below, anyone who reaches it can read and
//! remove cached values (the node warns so at start).
//!
//! - `--peer-token-env NAME`: every peer request must carry the token in the environment
//!   variable `NAME` (`export GROUPCACHE_PEER_TOKEN=$(openssl rand -hex 32)`, the same on
//!   every peer); others are refused with `Unauthenticated` and counted in `/stats` as
//!   `unauthenticated_requests`. `--accept-peer-token-env NAME2` also accepts a second token,
//!   for rotation.
//! - `--tls-ca PATH --tls-cert PATH --tls-key PATH`: TLS on the whole port, peers and HTTP
//!   (`curl --cacert`). The certificate names the advertised IP address, or give
//!   `--tls-domain NAME` for a name every peer's certificate carries.
//!   `--tls-require-client-cert` makes it mutual TLS. A token over plaintext can be read off
//!   the network: between hosts, use both.
//!
//! SIGTERM or SIGINT (Ctrl-C) stops the node: it accepts no new connection, gives the
//! requests in flight `--drain-timeout-ms` (10 s) to finish, stops discovery, logs `stopped`
//! and exits with status 0.

mod files;
mod http;
mod security;
mod shutdown;

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use groupcache::codec::Raw;
use groupcache::discovery::{DiscoveryDriver, DiscoveryHandle, DnsPeers, PeersFile, StaticPeers};
use groupcache::{Groupcache, GroupcachePeer};
use tonic::service::Routes;

use crate::files::{ContentsLoader, DataDir, LoadCount, MetadataLoader};
use crate::security::SecurityArgs;

/// One groupcache peer: gRPC for the other peers and HTTP (`GET /values/{key}`,
/// `/meta/{key}`, `/stats`, `/metrics`, `/debug/ring`, `/debug/owner/{key}`) on the same port,
/// caching the files of a directory in two groups, `contents` and `metadata`.
#[derive(Debug, Parser)]
#[command(name = "groupcache-node", version)]
struct Args {
    /// Address to listen on, for gRPC and HTTP. Port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,

    /// The address other peers reach this node at. Default: the listen address, or, when
    /// listening on an unspecified address (0.0.0.0 or ::), this machine's entry in --peers
    /// found by host name.
    #[arg(long)]
    advertise: Option<String>,

    /// Every peer, this one included: host:port entries separated by commas. Default: the
    /// GROUPCACHE_PEERS environment variable.
    #[arg(long, conflicts_with_all = ["peers_file", "dns"])]
    peers: Option<String>,

    /// A file listing every peer (host:port, separated by commas or newlines, # comments),
    /// read again on every discovery poll.
    #[arg(long, value_name = "PATH", conflicts_with = "dns")]
    peers_file: Option<PathBuf>,

    /// A DNS name whose addresses are the peers (e.g. a kubernetes headless service), each on
    /// this node's advertised port. Only IPv4 addresses are used.
    #[arg(long, value_name = "NAME")]
    dns: Option<String>,

    /// Time between two discovery polls, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5_000)]
    discovery_interval_ms: u64,

    /// Directory whose files are the values (key = file name).
    #[arg(long, value_name = "DIR", default_value = "examples/node/data")]
    data_dir: PathBuf,

    /// Capacity of the `contents` group's main cache, in bytes (`metadata` gets 1/64 of it,
    /// at least 64 KiB).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    cache_bytes: u64,

    /// On SIGTERM or SIGINT, how long the requests in flight get to finish (no new
    /// connection is accepted meanwhile), in milliseconds. Then the process exits anyway.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    drain_timeout_ms: u64,

    #[command(flatten)]
    security: SecurityArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("groupcache-node: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args));
    // Not a plain drop, which waits for every blocking task: a file read stuck on a slow disk
    // (or a FIFO nobody writes) would hold the exit past the drain time.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("groupcache-node: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let incoming = groupcache::bind(args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let bound = incoming.local_addr()?;
    let static_peers = match (&args.peers, &args.peers_file, &args.dns) {
        (Some(list), _, _) => Some(StaticPeers::parse(list)?),
        (None, None, None) if std::env::var_os("GROUPCACHE_PEERS").is_some() => {
            Some(StaticPeers::from_env("GROUPCACHE_PEERS")?)
        }
        _ => None,
    };
    let me = advertised_address(&args, bound, static_peers.as_ref()).await?;

    // Before the groups are built: they register their metrics with the recorder in place.
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    let dir = DataDir::new(&args.data_dir)?;
    let (builder, security) = args.security.apply(Groupcache::builder(me.clone()))?;
    let cache = builder.build();
    let contents_loads = LoadCount::default();
    let contents = cache
        .group(
            "contents",
            ContentsLoader {
                dir: dir.clone(),
                loads: contents_loads.clone(),
            },
        )
        // Raw bytes, cached and sent as they are: no serialisation for file contents.
        .codec(Raw)
        .main_cache_capacity(args.cache_bytes)
        .build()?;
    let metadata_loads = LoadCount::default();
    let metadata = cache
        .group(
            "metadata",
            MetadataLoader {
                dir,
                contents: contents.clone(),
                me: me.to_string().into(),
                loads: metadata_loads.clone(),
            },
        )
        // A few dozen bytes per file (the default codec, postcard): a small cache holds many.
        .main_cache_capacity((args.cache_bytes / 64).max(64 * 1024))
        .build()?;
    // Before serving: from here on a SIGTERM is ours to handle, never lost.
    let signal = shutdown::signal().map_err(|e| format!("cannot handle SIGTERM/SIGINT: {e}"))?;
    let server = cache.server_builder()?;
    let discovery = start_discovery(&args, &cache, static_peers).await?;

    // gRPC and HTTP on one port: tonic routes gRPC requests to the peer service (one for both
    // groups) and everything else to the axum router; HTTP/1.1 is accepted for curl and
    // browsers.
    let node = http::Node {
        cache: cache.clone(),
        contents,
        metadata,
        loads: [("contents", contents_loads), ("metadata", metadata_loads)],
        prometheus,
    };
    let routes = Routes::from(http::routes(node)).add_service(cache.grpc_service());
    println!("listening on {bound}");
    tracing::info!(%bound, %me, data_dir = %args.data_dir.display(), "serving gRPC and HTTP");
    log_security(security, bound);
    let drain = Duration::from_millis(args.drain_timeout_ms);
    let server = server.accept_http1(true).add_routes(routes);
    let stopped = shutdown::serve_until(signal, drain, |stop| {
        server.serve_with_incoming_shutdown(incoming, stop)
    })
    .await?;
    if let Some(discovery) = discovery {
        discovery.shutdown().await;
    }
    stopped.log(drain);
    Ok(())
}

/// Says what protects the peer port, and warns when nothing does.
fn log_security(security: security::Security, bound: SocketAddr) {
    match (security.peer_token, security.tls) {
        (true, _) => tracing::info!(
            tls = security.tls,
            mutual_tls = security.mutual_tls,
            "peer authentication on: peer requests without the token are refused"
        ),
        (false, true) if security.mutual_tls => tracing::info!(
            "peer authentication on: mutual TLS, peers need a certificate signed by --tls-ca"
        ),
        (false, tls) => tracing::warn!(
            tls,
            "peer authentication off: anyone who can reach {bound} can read and remove cached \
             values; give --peer-token-env (and --tls-*)"
        ),
    }
}

/// The address the other peers know this node by.
async fn advertised_address(
    args: &Args,
    bound: SocketAddr,
    static_peers: Option<&StaticPeers>,
) -> Result<GroupcachePeer, Box<dyn Error>> {
    if let Some(advertise) = &args.advertise {
        return match static_peers {
            Some(peers) => Ok(peers.find_me(Some(advertise)).await?),
            None => Ok(advertise
                .parse::<GroupcachePeer>()
                .map_err(|e| format!("--advertise {advertise}: {e} (give ip:port)"))?),
        };
    }
    if !bound.ip().is_unspecified() {
        return Ok(bound.into());
    }
    match static_peers {
        Some(peers) => Ok(peers.find_me(None).await?),
        None => Err(format!(
            "listening on {bound}: give --advertise with the address other peers reach this \
             node at"
        )
        .into()),
    }
}

async fn start_discovery(
    args: &Args,
    cache: &Groupcache,
    static_peers: Option<StaticPeers>,
) -> Result<Option<DiscoveryHandle>, Box<dyn Error>> {
    let interval = Duration::from_millis(args.discovery_interval_ms);
    let handle = if let Some(peers) = static_peers {
        DiscoveryDriver::new(cache.clone(), peers)
            .interval(interval)
            .spawn()
    } else if let Some(path) = &args.peers_file {
        DiscoveryDriver::new(cache.clone(), PeersFile::new(path))
            .interval(interval)
            .spawn()
    } else if let Some(name) = &args.dns {
        DiscoveryDriver::new(
            cache.clone(),
            DnsPeers::new(name, cache.me().addr().port()).ipv4_only(),
        )
        .interval(interval)
        .spawn()
    } else {
        tracing::info!("no --peers, --peers-file, --dns or GROUPCACHE_PEERS: running alone");
        cache.set_peers([cache.me().clone()])?;
        return Ok(None);
    };
    Ok(Some(handle))
}
