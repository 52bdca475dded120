//! The cluster's peers: each a cache served by a tonic server on a loopback port, started and
//! shut down here.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use groupcache::{Groupcache, PromoteOneIn};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Args;
use crate::database::{Ledger, Row, SlowDb};

/// One member of the cluster.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) cache: Groupcache<Row>,
    pub(crate) db_calls: Arc<AtomicU64>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

pub(crate) async fn start_peer(args: &Args, ledger: &Arc<Ledger>) -> Result<Peer, Box<dyn Error>> {
    // Port 0 lets the OS pick a free port, so that several runs can share a machine. The
    // address is known before the cache is built, which needs it as its identity on the ring.
    let incoming = groupcache::bind("127.0.0.1:0".parse()?)?;
    let addr = incoming.local_addr()?;
    let db_calls = Arc::new(AtomicU64::new(0));
    let db = SlowDb {
        latency: Duration::from_millis(args.load_ms),
        value_size: args.value_size,
        calls: Arc::clone(&db_calls),
        ledger: Arc::clone(ledger),
    };
    let cache = Groupcache::builder(addr, db)
        .main_cache_capacity(args.main_cache_mib.saturating_mul(1024 * 1024))
        .hot_cache_policy(PromoteOneIn(args.hot_one_in))
        // The peers share one process and one metrics recorder: a label tells them apart.
        .metrics_labels([("peer", addr.to_string())])
        // The peers share one process and one metrics recorder: a label tells them apart.
        .metrics_labels([("peer", addr.to_string())])
        .build();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        cache
            .server_builder()?
            .add_service(cache.grpc_service())
            // A dropped sender stops the server too: an early return cannot leave it running.
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stopped.await;
            }),
    );
    Ok(Peer {
        cache,
        db_calls,
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
