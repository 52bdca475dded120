//! A TCP relay in front of one node, by whose address every peer knows that node. The faults
//! workloads switch it from passing bytes to refusing connections (a dead owner: the same
//! `ECONNREFUSED` a peer sees when the process has exited) or to accepting them and never
//! answering (a stalled owner: what a peer sees when the process is stopped or its host has
//! vanished behind a firewall that drops packets).
//!
//! A fault is one-way: the proxy keeps it until it is dropped. A workload that needs the owner
//! back starts a new cluster.

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does with the bytes it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Relay both ways, as if the proxy were not there.
    Pass,
    /// Close the listener and every relayed connection: connecting is refused from now on.
    Refuse,
    /// Accept connections and read nothing, on new and already relayed connections alike; the
    /// sockets stay open, so a peer only finds out by its own deadline.
    Blackhole,
}

#[derive(Debug)]
pub(crate) struct FaultProxy {
    addr: SocketAddr,
    /// Every connection task and the accept loop watch it; dropping it ends them all.
    mode: watch::Sender<Fault>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// A proxy on a loopback port of its own, relaying to `target`.
    pub(crate) async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (mode, watched) = watch::channel(Fault::Pass);
        let accept = tokio::spawn(accept_loop(listener, target, watched));
        FaultProxy { addr, mode, accept }
    }

    /// The address peers connect to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn set(&self, fault: Fault) {
        self.mode.send_replace(fault);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The connection tasks end when `mode` is dropped right after this.
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, mut mode: watch::Receiver<Fault>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Returning drops the listener: the port refuses connections from now on.
            _ = mode.wait_for(|m| *m == Fault::Refuse) => return,
        };
        let Ok((inbound, _)) = accepted else { continue };
        tokio::spawn(relay(inbound, target, mode.clone()));
    }
}

/// Relays `inbound` to `target` while the mode is `Pass`; once it is not, holds `inbound` open
/// without reading (`Blackhole`) until the mode is `Refuse` or the proxy is gone.
async fn relay(mut inbound: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Fault>) {
    let _ = inbound.set_nodelay(true);
    if *mode.borrow() == Fault::Pass {
        let Ok(mut outbound) = TcpStream::connect(target).await else {
            return;
        };
        let _ = outbound.set_nodelay(true);
        tokio::select! {
            _ = copy_bidirectional(&mut inbound, &mut outbound) => return,
            _ = mode.wait_for(|m| *m != Fault::Pass) => {}
        }
        // The owner's side of a blackholed connection is closed; the peer's side is held.
    }
    let _ = mode.wait_for(|m| *m == Fault::Refuse).await;
}
