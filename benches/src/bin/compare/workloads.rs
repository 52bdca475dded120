//! What a run does (`Plan`), and the workloads measured in rounds: local hit, remote hit (3
//! sizes and 8 MiB, sequential and 64 in flight). The stampede and the Zipf mix have files of
//! their own. Each workload starts its clusters fresh and stops them when done.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::cluster::{Cluster, PEER_TIMEOUT, Setup, keys_owned_by};
use crate::echo::EchoPair;
use crate::floors::{MapGet, MokaGet, QuickGet};
use crate::go::Go;
use crate::measure::{Budget, Op};
use crate::ours::Ours;
use crate::published::Published;
use crate::report::{ECHO, MAP, MOKA, OURS, OURS_SINGLE, PUBLISHED, QUICK, Row};
use crate::rounds::{self, Entrant, Mode};

/// What a run does: how long each figure takes and how big the fixed-size workloads are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) budget: Budget,
    /// Callers at once in the "in flight" rows.
    pub(crate) in_flight: usize,
    pub(crate) stampede_callers: usize,
    pub(crate) stampede_rounds: usize,
    pub(crate) stampede_loader: Duration,
    pub(crate) zipf_keys: usize,
    pub(crate) zipf_gets: usize,
    pub(crate) zipf_loader: Duration,
    pub(crate) large_value: usize,
    /// Keys of the cut-off owner asked for in the faults workloads.
    pub(crate) fault_keys: usize,
    /// Rounds of the dead owner workload (each asks every key on every survivor).
    pub(crate) fault_rounds: usize,
    /// How long the stalled owner workload asks for its keys.
    pub(crate) stall_window: Duration,
    /// Peer timeout of both crates in the faults workloads.
    pub(crate) fault_peer_timeout: Duration,
    pub(crate) fault_loader: Duration,
    /// Rounds each figure is split into, contenders alternating (see `rounds`).
    pub(crate) rounds: u32,
    /// Only these contenders (comma-separated names, matched by substring), or all.
    pub(crate) contenders: Option<&'static str>,
}

impl Plan {
    /// Whether `contender` runs in this plan.
    pub(crate) fn wants(&self, contender: &str) -> bool {
        self.contenders
            .is_none_or(|list| list.split(',').any(|c| contender.contains(c.trim())))
    }
}

/// Operations timed in groups of this many for local hits (see `measure::sequential`).
const LOCAL_BATCH: u64 = 1_000;

// ===== operations =====

/// `get` on one node of a cluster. Caller `c` asks for `keys[c % keys.len()]`, so callers in
/// flight at once ask for different keys (no two share a flight).
struct Get<C> {
    cluster: Arc<C>,
    node: usize,
    keys: Vec<String>,
    len: usize,
}

impl<C: Cluster> Op for Get<C> {
    fn call(&self, caller: usize, _: u64) -> impl Future<Output = Result<(), String>> + Send + '_ {
        let key = &self.keys[caller % self.keys.len()];
        async move {
            let value = self.cluster.get(self.node, key).await?;
            if value.len() != self.len {
                return Err(format!("got {} bytes, expected {}", value.len(), self.len));
            }
            black_box(value);
            Ok(())
        }
    }
}

/// One tonic round trip to the echo server.
struct EchoCall {
    pair: EchoPair,
    key: String,
}

impl Op for EchoCall {
    async fn call(&self, _: usize, _: u64) -> Result<(), String> {
        self.pair.call(&self.key).await.map(drop)
    }
}

/// Sequential, then `in_flight` at once: every entrant measured in alternating rounds, a row
/// for each, and one saying why Go's is missing if `go` was skipped.
async fn both_modes(
    plan: &Plan,
    workload: &str,
    batch: u64,
    entrants: &[Entrant],
    go: Option<&Go>,
    rows: &mut Vec<Row>,
) {
    let mode = Mode {
        budget: plan.budget,
        rounds: plan.rounds,
        callers: None,
        batch,
    };
    let name = format!("{workload}, sequential");
    rows.extend(rounds::run(&name, mode, entrants).await);
    rows.extend(go.and_then(|go| go.skipped_row(&name)));
    let mode = Mode {
        callers: Some(plan.in_flight),
        ..mode
    };
    let name = format!("{workload}, {} in flight", plan.in_flight);
    rows.extend(rounds::run(&name, mode, entrants).await);
    rows.extend(go.and_then(|go| go.skipped_row(&name)));
}

/// Gets on node `asker` of keys owned by node `owner` (`count` of them, found and warmed
/// first), with the cluster's loads counted.
async fn gets_from<C: Cluster>(
    contender: &'static str,
    cluster: &Arc<C>,
    setup: &Setup,
    (asker, owner, count): (usize, usize, usize),
) -> Entrant {
    let keys = keys_owned_by(&**cluster, asker, owner, "key", count).await;
    let op = Get {
        cluster: Arc::clone(cluster),
        node: asker,
        keys,
        len: setup.value_size,
    };
    let counted = Arc::clone(cluster);
    Entrant::new(contender, op, move || Some(counted.source().total_loads()))
}

// ===== local hit =====

/// A `get` answered from the asking peer's main cache (100 B value), next to the floors and
/// Go groupcache's `Get` of a key its driver owns.
pub(crate) async fn local_hit(plan: &Plan, go: &Go, rows: &mut Vec<Row>) {
    let setup = Setup {
        nodes: 2,
        value_size: 100,
        loader_delay: None,
        hot_cache: true,
        max_value: 100,
        peer_timeout: PEER_TIMEOUT,
        proxied: None,
        hedge_percentile: None,
    };
    let keys = (0, 0, 1);
    let mut entrants = Vec::new();
    if plan.wants(OURS) {
        let ours = Arc::new(Ours::start(&setup).await);
        entrants.push(gets_from(OURS, &ours, &setup, keys).await);
    }
    if plan.wants(PUBLISHED) {
        let published = Arc::new(Published::start(&setup).await);
        entrants.push(gets_from(PUBLISHED, &published, &setup, keys).await);
    }
    entrants.extend(go.entrant("local", setup.value_size, 1));
    let value = Bytes::from(vec![0xA5; 100]);
    if plan.wants(MOKA) {
        entrants.push(Entrant::new(MOKA, MokaGet::new(&value).await, || None));
    }
    if plan.wants(QUICK) {
        entrants.push(Entrant::new(QUICK, QuickGet::new(&value), || None));
    }
    if plan.wants(MAP) {
        entrants.push(Entrant::new(MAP, MapGet::new(&value), || None));
    }
    both_modes(
        plan,
        "local hit 100 B",
        LOCAL_BATCH,
        &entrants,
        Some(go),
        rows,
    )
    .await;
}

// ===== remote hit =====

/// A `get` that the owner answers from its main cache, over loopback, hot cache off, next to
/// a bare tonic echo of the same payload and Go groupcache's `Get` with no cache on the asker.
pub(crate) async fn remote_hit(plan: &Plan, go: &Go, value_size: usize, rows: &mut Vec<Row>) {
    let workload = format!("remote hit {}", size_name(value_size));
    remote(plan, &workload, value_size, Some(go), rows).await;
}

/// A value of `Plan::large_value` bytes (8 MiB), fetched from its owner: served and cached
/// where limits allow.
pub(crate) async fn large_value(plan: &Plan, rows: &mut Vec<Row>) {
    let workload = format!("remote hit {}", size_name(plan.large_value));
    remote(plan, &workload, plan.large_value, None, rows).await;
}

/// Two peers, the asker's hot cache off: every get of a key the other peer owns is a request.
fn remote_setup(value_size: usize) -> Setup {
    Setup {
        nodes: 2,
        value_size,
        loader_delay: None,
        hot_cache: false,
        max_value: value_size,
        peer_timeout: PEER_TIMEOUT,
        proxied: None,
        hedge_percentile: None,
    }
}

/// The bare tonic round trip of the remote rows, with a payload of `value_size` bytes.
async fn echo_entrant(value_size: usize) -> Entrant {
    let echo = EchoCall {
        pair: EchoPair::start(value_size).await,
        key: "remote-0".to_owned(),
    };
    Entrant::new(ECHO, echo, || None)
}

async fn remote(
    plan: &Plan,
    workload: &str,
    value_size: usize,
    go: Option<&Go>,
    rows: &mut Vec<Row>,
) {
    let setup = remote_setup(value_size);
    let keys = (0, 1, plan.in_flight);
    let mut entrants = Vec::new();
    let mut ours = None;
    if plan.wants(OURS) {
        let cluster = Arc::new(Ours::start(&setup).await);
        entrants.push(gets_from(OURS, &cluster, &setup, keys).await);
        ours = Some(cluster);
    }
    if plan.wants(PUBLISHED) {
        // Its 4 MiB reply limit makes each larger value fail on the asker, which then loads
        // it itself: the loads column shows it.
        let published = Arc::new(Published::start(&setup).await);
        entrants.push(gets_from(PUBLISHED, &published, &setup, keys).await);
    }
    if plan.wants(ECHO) {
        entrants.push(echo_entrant(value_size).await);
    }
    entrants.extend(go.and_then(|go| go.entrant("remote", value_size, plan.in_flight)));
    both_modes(plan, workload, 1, &entrants, go, rows).await;
    if let Some(ours) = ours {
        // Served and cached: the owner holds every key asked for.
        let cached = ours.node(1).stats().main_cache.entries;
        for row in rows
            .iter_mut()
            .rev()
            .filter(|r| r.contender == OURS)
            .take(2)
        {
            row.note
                .push_str(&format!("owner's main cache holds {cached} values"));
        }
    }
}

/// Coalescing (`GroupcacheBuilder::coalesce_gets`): `Plan::in_flight` callers at once, as in
/// the remote hit rows, with coalescing on (`OURS`), next to ours with it off and the echo.
/// Only in flight: a sequential caller never finds a request to share.
pub(crate) async fn coalescing(plan: &Plan, value_size: usize, rows: &mut Vec<Row>) {
    let setup = remote_setup(value_size);
    let keys = (0, 1, plan.in_flight);
    let mut entrants = Vec::new();
    let mut coalesced = None;
    if plan.wants(OURS) {
        let cluster = Arc::new(Ours::start_coalescing(&setup).await);
        entrants.push(gets_from(OURS, &cluster, &setup, keys).await);
        coalesced = Some(cluster);
        let single = Arc::new(Ours::start(&setup).await);
        entrants.push(gets_from(OURS_SINGLE, &single, &setup, keys).await);
    }
    if plan.wants(ECHO) {
        entrants.push(echo_entrant(value_size).await);
    }
    let mode = Mode {
        budget: plan.budget,
        rounds: plan.rounds,
        callers: Some(plan.in_flight),
        batch: 1,
    };
    let name = format!(
        "remote hit {}, coalescing on, {} in flight",
        size_name(value_size),
        plan.in_flight
    );
    rows.extend(rounds::run(&name, mode, &entrants).await);
    if let Some(cluster) = coalesced {
        let stats = cluster.node(0).stats();
        let requests = cluster.node(1).stats().server_requests;
        if let Some(row) = rows
            .iter_mut()
            .rev()
            .find(|r| r.workload == name && r.contender == OURS)
        {
            row.note.push_str(&format!(
                "{} of {} peer gets shared a request; owner served {} requests",
                stats.coalesced_gets, stats.peer_loads, requests
            ));
        }
    }
}

pub(crate) fn size_name(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}
