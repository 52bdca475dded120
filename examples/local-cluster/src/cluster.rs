//! The cluster's peers: each a peer set with two groups, served by a tonic server on a loopback
//! port, started and shut down here.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use groupcache::cache::PromoteOneIn;
use groupcache::stats::Stats;
use groupcache::{Group, Groupcache};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Args;
use crate::database::{Ledger, Row, Rows, SlowDb, Summaries, Summary, Table};
use crate::failures::Failures;

/// One member of the cluster: a peer set (one gRPC service) hosting two groups.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) cache: Groupcache,
    pub(crate) groups: Groups,
    pub(crate) db: Arc<SlowDb>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

/// One peer's two groups, `rows` and `summaries`: cheap to clone, for the callers' tasks.
#[derive(Debug, Clone)]
pub(crate) struct Groups {
    addr: SocketAddr,
    rows: Group<Row>,
    summaries: Group<Summary>,
}

impl Groups {
    /// The `rows` group, for the write step.
    pub(crate) fn rows(&self) -> &Group<Row> {
        &self.rows
    }

    /// This peer's stats of the group that caches `table`.
    pub(crate) fn stats(&self, table: Table) -> Stats {
        match table {
            Table::Rows => self.rows.stats(),
            Table::Summaries => self.summaries.stats(),
        }
    }

    /// Gets `key` from the group that caches `table`, and checks the answer; returns whether
    /// it was right.
    pub(crate) async fn get_checked(
        &self,
        table: Table,
        key: &str,
        value_size: usize,
        failures: &Failures,
    ) -> bool {
        let addr = self.addr;
        match table {
            Table::Rows => {
                let found = self.rows.get(key).await;
                failures.check(addr, table, key, found, Row::of(key, value_size))
            }
            Table::Summaries => {
                let found = self.summaries.get(key).await;
                failures.check(addr, table, key, found, Summary::of(key, value_size))
            }
        }
    }
}

pub(crate) async fn start_peer(args: &Args, ledger: &Arc<Ledger>) -> Result<Peer, Box<dyn Error>> {
    // Port 0 lets the OS pick a free port, so that several runs can share a machine. The
    // address is known before the cache is built, which needs it as its identity on the ring.
    let incoming = groupcache::bind("127.0.0.1:0".parse()?)?;
    let addr = incoming.local_addr()?;
    let db = Arc::new(SlowDb {
        latency: Duration::from_millis(args.load_ms),
        value_size: args.value_size,
        calls: [AtomicU64::new(0), AtomicU64::new(0)],
        ledger: Arc::clone(ledger),
    });
    let cache = Groupcache::builder(addr)
        // The peers share one process and one metrics recorder: a label tells them apart (each
        // group's metrics also carry `group="<name>"`).
        .metrics_labels([("peer", addr.to_string())])
        .build();
    let main_bytes = args.main_cache_mib.saturating_mul(1024 * 1024);
    let rows = cache
        .group(Table::Rows.name(), Rows(Arc::clone(&db)))
        .main_cache_capacity(main_bytes)
        .hot_cache_policy(PromoteOneIn(args.hot_one_in))
        .build()?;
    // Summaries are a few bytes each: a sixteenth of the rows' room is plenty.
    let summaries = cache
        .group(Table::Summaries.name(), Summaries(Arc::clone(&db)))
        .main_cache_capacity((main_bytes / 16).max(1024 * 1024))
        .hot_cache_policy(PromoteOneIn(args.hot_one_in))
        .build()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        cache
            // The recommended peer server settings (TCP_NODELAY, stream and header limits,
            // keep-alives) on a fresh tonic server.
            .server_builder()?
            .add_service(cache.grpc_service())
            // A dropped sender stops the server too: an early return cannot leave it running.
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stopped.await;
            }),
    );
    Ok(Peer {
        groups: Groups {
            addr,
            rows,
            summaries,
        },
        cache,
        db,
        stop,
        server,
    })
}

/// Stops every server and waits for it, so that the process ends with no connection half
/// served. Returns what went wrong, if anything.
pub(crate) async fn shut_down(peers: Vec<Peer>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut servers = Vec::new();
    for peer in peers {
        // An error means the server already exited; awaiting it below says why.
        let _ = peer.stop.send(());
        servers.push((peer.cache.addr(), peer.server));
    }
    for (addr, server) in servers {
        match tokio::time::timeout(Duration::from_secs(5), server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => problems.push(format!("server {addr} failed: {e}")),
            Ok(Err(e)) => problems.push(format!("server {addr} task failed: {e}")),
            Err(_) => problems.push(format!("server {addr} did not stop within 5 s")),
        }
    }
    problems
}
