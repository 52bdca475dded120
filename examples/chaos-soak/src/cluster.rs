//! The cluster under test and the faults done to it: five nodes started on loopback, then the
//! schedule's kills, stalls, joins and leaves, each recorded as a window of the run (for the
//! report) and as ownership events (for the loads bound).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use groupcache::Groupcache;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::backend::Backend;
use crate::bound::{self, OwnershipEvent};
use crate::load::Targets;
use crate::monitor::Monitor;
use crate::nodes::{self, Node, NodeConfig};
use crate::schedule::{FaultKind, PlannedFault};
use crate::stats::Span;

/// How long after a SIGSTOP the other nodes may still be waiting for their first timeouts on
/// the stopped node (the library's default peer timeout, which the nodes run with) before
/// their breakers open, and 1 s for the breakers to open.
const STALL_TIMEOUTS_MS: u32 = groupcache::defaults::PEER_TIMEOUT.as_millis() as u32 + 1_000;

/// After a fault is over (the node back, or every node agreeing on the members), its window
/// goes on this long: reconnections and the first requests after it belong to the fault.
const SETTLE: Duration = Duration::from_secs(2);

/// The node processes, by slot (`None`: not running), and what happened to them.
#[derive(Debug)]
pub(crate) struct Cluster {
    config: NodeConfig,
    nodes: Vec<Option<Node>>,
    addrs: Vec<SocketAddr>,
    incarnations: Vec<u32>,
    /// The slots listed in the peers file.
    members: Vec<usize>,
    targets: Arc<Targets>,
    monitor: Arc<Mutex<Monitor>>,
    rng: SmallRng,
    started: Instant,
    /// The fault windows, for the report.
    pub(crate) faults: Vec<Span>,
    /// What each fault did to key ownership, for the loads bound.
    pub(crate) events: Vec<OwnershipEvent>,
    /// One line per step, with the time it happened.
    pub(crate) timeline: Vec<String>,
}

impl Cluster {
    /// Starts `n` nodes on free loopback ports, writes the peers file and waits until every
    /// node routes by it; then they take requests.
    pub(crate) async fn start(
        config: NodeConfig,
        n: usize,
        targets: Arc<Targets>,
        monitor: Arc<Mutex<Monitor>>,
        seed: u64,
    ) -> Result<Cluster, String> {
        let mut cluster = Cluster {
            config,
            nodes: Vec::new(),
            addrs: Vec::new(),
            incarnations: Vec::new(),
            members: Vec::new(),
            targets,
            monitor,
            rng: SmallRng::seed_from_u64(seed ^ 0x5eed_fa17),
            started: Instant::now(),
            faults: Vec::new(),
            events: Vec::new(),
            timeline: Vec::new(),
        };
        // The peers file exists before the nodes start (a node without one logs a warning on
        // every poll and backs off), so the first ports are picked here: bound and released,
        // then given to the nodes.
        let mut ports = Vec::new();
        for _ in 0..n {
            let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
                .map_err(|e| format!("cannot find a free port: {e}"))?;
            ports.push(listener.local_addr().map_err(|e| e.to_string())?);
        }
        nodes::write_peers(&cluster.config.peers_file, &ports)
            .map_err(|e| format!("{}: {e}", cluster.config.peers_file.display()))?;
        for addr in ports {
            let slot = cluster.spawn_new(addr).await?;
            cluster.members.push(slot);
        }
        cluster.publish_members().await?;
        for &slot in &cluster.members {
            cluster.targets.add(slot, cluster.addrs[slot]);
        }
        Ok(cluster)
    }

    /// The time the load started: fault times count from it.
    pub(crate) fn load_started(&mut self, at: Instant) {
        self.started = at;
    }

    fn now_ms(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_millis()).unwrap_or(u32::MAX)
    }

    fn note(&mut self, what: String) {
        let line = format!("{:7.1}s  {what}", self.started.elapsed().as_secs_f64());
        eprintln!("chaos-soak: {line}");
        self.timeline.push(line);
    }

    /// Does every fault of `plan` at its time. Returns at the first step that fails (a node
    /// that does not start, or members not agreed on within the limit).
    pub(crate) async fn run(
        &mut self,
        plan: &[PlannedFault],
        backend: &Backend,
    ) -> Result<(), String> {
        for fault in plan {
            tokio::time::sleep_until((self.started + fault.at).into()).await;
            match fault.kind {
                FaultKind::Kill => self.kill(fault.hold, backend).await?,
                FaultKind::Stall => self.stall(fault.hold, backend).await?,
                FaultKind::Join => self.join(backend).await?,
                FaultKind::Leave => self.leave(backend).await?,
            }
        }
        Ok(())
    }

    /// Starts a node on a new slot, listening on `listen` (port 0: a free port).
    async fn spawn_new(&mut self, listen: SocketAddr) -> Result<usize, String> {
        let slot = self.nodes.len();
        let node = Node::start(&self.config, slot, listen, 0).await?;
        self.addrs.push(node.addr);
        self.incarnations.push(0);
        self.watch(&node);
        self.nodes.push(Some(node));
        Ok(slot)
    }

    fn watch(&self, node: &Node) {
        let label = format!("{}.{}", node.name, self.incarnations[node.slot]);
        self.monitor
            .lock()
            .expect("monitor lock")
            .watch(label, node.pid, node.log.clone());
    }

    /// Writes the peers file with the members and waits until every running member routes
    /// by it.
    async fn publish_members(&self) -> Result<(), String> {
        let peers: Vec<SocketAddr> = self.members.iter().map(|&s| self.addrs[s]).collect();
        nodes::write_peers(&self.config.peers_file, &peers)
            .map_err(|e| format!("{}: {e}", self.config.peers_file.display()))?;
        let running: Vec<&Node> = self
            .members
            .iter()
            .filter_map(|&s| self.nodes[s].as_ref())
            .collect();
        nodes::wait_for_members(&running, &peers).await
    }

    /// Per key: does `slot` own it when the members are `members`? Asked of the library's
    /// own ring, which every node builds the same way from the same list.
    fn owned_by(
        &self,
        slot: usize,
        members: &[usize],
        backend: &Backend,
    ) -> Result<Vec<bool>, String> {
        let peers: Vec<SocketAddr> = members.iter().map(|&s| self.addrs[s]).collect();
        let ring = Groupcache::builder(peers[0]).build();
        ring.set_peers(peers.iter().copied())
            .map_err(|e| format!("ring of {peers:?}: {e}"))?;
        let addr = self.addrs[slot];
        Ok((0..backend.len())
            .map(|k| ring.owner_of(backend.key(k)).addr() == addr)
            .collect())
    }

    fn pick_member(&mut self, except: Option<usize>) -> usize {
        let choices: Vec<usize> = self
            .members
            .iter()
            .copied()
            .filter(|&s| Some(s) != except && self.nodes[s].is_some())
            .collect();
        choices[self.rng.random_range(0..choices.len())]
    }

    /// Records the window of a fault on `slot` that began at `start_ms` and is over now;
    /// returns the window's end (now plus [`SETTLE`]).
    fn record(&mut self, kind: FaultKind, slot: usize, start_ms: u32, label: String) -> u32 {
        let end_ms = self.now_ms() + SETTLE.as_millis() as u32;
        self.faults.push(Span {
            label,
            short: format!("{} n{}", kind.short(), slot + 1),
            pieces: vec![(start_ms, end_ms)],
            slot: Some(slot),
            latencies: crate::stats::Latencies::InFlight,
        });
        end_ms
    }

    /// `kill -9` a member; restart it on the same port after `hold`.
    async fn kill(&mut self, hold: Duration, backend: &Backend) -> Result<(), String> {
        let slot = self.pick_member(None);
        let affected = self.owned_by(slot, &self.members.clone(), backend)?;
        self.targets.remove(slot);
        let start_ms = self.now_ms();
        let node = self.nodes[slot].take().expect("a running member");
        let (name, pid) = (node.name.clone(), node.pid);
        node.sigkill().await;
        self.monitor.lock().expect("monitor lock").ended(pid);
        self.note(format!("kill -9 {name} ({}, pid {pid})", self.addrs[slot]));
        tokio::time::sleep(hold).await;
        self.incarnations[slot] += 1;
        let node = Node::restart(
            &self.config,
            slot,
            self.addrs[slot],
            self.incarnations[slot],
        )
        .await?;
        self.watch(&node);
        let peers: Vec<SocketAddr> = self.members.iter().map(|&s| self.addrs[s]).collect();
        nodes::wait_for_members(&[&node], &peers).await?;
        let back_ms = self.now_ms();
        self.note(format!(
            "{name} restarted on {} (pid {})",
            node.addr, node.pid
        ));
        self.nodes[slot] = Some(node);
        self.targets.add(slot, self.addrs[slot]);
        let end_ms = self.record(
            FaultKind::Kill,
            slot,
            start_ms,
            format!("kill -9 {name}, back after {hold:.0?}"),
        );
        self.events.push(OwnershipEvent {
            what: format!("{name} killed"),
            from_ms: 0,
            until_ms: start_ms,
            affected: affected.clone(),
            reads: 1,
        });
        self.events.push(OwnershipEvent {
            what: format!("{name} restarted empty"),
            from_ms: 0,
            until_ms: end_ms.max(bound::breakers_closed_ms(back_ms)),
            affected,
            reads: 1,
        });
        Ok(())
    }

    /// SIGSTOP a member; SIGCONT after `hold`.
    async fn stall(&mut self, hold: Duration, backend: &Backend) -> Result<(), String> {
        let slot = self.pick_member(None);
        let affected = self.owned_by(slot, &self.members.clone(), backend)?;
        self.targets.remove(slot);
        let start_ms = self.now_ms();
        let node = self.nodes[slot].as_ref().expect("a running member");
        let name = node.name.clone();
        node.signal("STOP").await?;
        self.note(format!("SIGSTOP {name}"));
        tokio::time::sleep(hold).await;
        let node = self.nodes[slot].as_ref().expect("a running member");
        node.signal("CONT").await?;
        let peers: Vec<SocketAddr> = self.members.iter().map(|&s| self.addrs[s]).collect();
        nodes::wait_for_members(&[node], &peers).await?;
        let back_ms = self.now_ms();
        self.note(format!("SIGCONT {name}: answering again"));
        self.targets.add(slot, self.addrs[slot]);
        let end_ms = self.record(
            FaultKind::Stall,
            slot,
            start_ms,
            format!("SIGSTOP {name}, SIGCONT after {hold:.0?}"),
        );
        self.events.push(OwnershipEvent {
            what: format!("{name} stopped"),
            from_ms: 0,
            until_ms: start_ms + STALL_TIMEOUTS_MS,
            affected: affected.clone(),
            // Every other member may time out on it once before its breaker opens.
            reads: u32::try_from(self.members.len().saturating_sub(1)).unwrap_or(u32::MAX),
        });
        self.events.push(OwnershipEvent {
            what: format!("{name} resumed"),
            from_ms: start_ms,
            until_ms: end_ms.max(bound::breakers_closed_ms(back_ms)),
            affected,
            reads: 1,
        });
        Ok(())
    }

    /// Starts a new node and adds it to the peers file.
    async fn join(&mut self, backend: &Backend) -> Result<(), String> {
        let start_ms = self.now_ms();
        let slot = self
            .spawn_new(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await?;
        self.members.push(slot);
        self.publish_members().await?;
        self.targets.add(slot, self.addrs[slot]);
        let name = format!("n{}", slot + 1);
        self.note(format!(
            "{name} ({}) joined: {} members agree",
            self.addrs[slot],
            self.members.len()
        ));
        let affected = self.owned_by(slot, &self.members.clone(), backend)?;
        let end_ms = self.record(FaultKind::Join, slot, start_ms, format!("{name} joins"));
        self.events.push(OwnershipEvent {
            what: format!("{name} joined"),
            from_ms: 0,
            until_ms: end_ms,
            affected,
            reads: 1,
        });
        Ok(())
    }

    /// Takes a member (not the newest) out of the peers file; once the others agree, stops it
    /// with SIGTERM.
    async fn leave(&mut self, backend: &Backend) -> Result<(), String> {
        let newest = self.members.last().copied();
        let slot = self.pick_member(newest);
        let affected = self.owned_by(slot, &self.members.clone(), backend)?;
        let start_ms = self.now_ms();
        self.members.retain(|&s| s != slot);
        self.publish_members().await?;
        self.targets.remove(slot);
        let node = self.nodes[slot].take().expect("a running member");
        let (name, pid) = (node.name.clone(), node.pid);
        let clean = node.stop().await;
        self.monitor.lock().expect("monitor lock").ended(pid);
        self.note(format!(
            "{name} left: {} members agree; stopped with SIGTERM ({})",
            self.members.len(),
            if clean { "exit 0" } else { "NOT a clean exit" }
        ));
        let end_ms = self.record(
            FaultKind::Leave,
            slot,
            start_ms,
            format!("{name} leaves, SIGTERM"),
        );
        self.events.push(OwnershipEvent {
            what: format!("{name} left"),
            from_ms: 0,
            until_ms: end_ms,
            affected,
            reads: 1,
        });
        Ok(())
    }

    /// Every running node's `/stats` `file_loads`, by the label the monitor knows it by.
    pub(crate) async fn file_loads(&self) -> Vec<(String, Result<u64, String>)> {
        let mut out = Vec::new();
        for node in self.nodes.iter().flatten() {
            let label = format!("{}.{}", node.name, self.incarnations[node.slot]);
            let loads = node.stats().await.and_then(|s| {
                s["groups"]["contents"]["file_loads"]
                    .as_u64()
                    .ok_or_else(|| format!("no groups.contents.file_loads in {s}"))
            });
            out.push((label, loads));
        }
        out
    }

    /// Stops every running node with SIGTERM; returns the names of those that did not exit
    /// cleanly.
    pub(crate) async fn shutdown(mut self) -> Vec<String> {
        let mut unclean = Vec::new();
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            let name = node.name.clone();
            if !node.stop().await {
                unclean.push(name);
            }
        }
        unclean
    }
}
