//! The load: `--concurrency` clients, each in a loop until the run ends: draw a key from a
//! Zipf distribution, pick a random node the soak believes is up, `GET /values/{key}` on a
//! kept-alive connection with a timeout, and check the answer against the backend.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use rand_distr::Zipf;

use crate::backend::Backend;
use crate::http::Connection;

/// Draws key indices `0..n` from a Zipf distribution: index 0 is the hottest key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySampler {
    zipf: Zipf<f64>,
    n: usize,
}

impl KeySampler {
    /// `n` keys (at least 1), exponent `s` (1.0 is the classic web-cache skew).
    pub(crate) fn new(n: usize, s: f64) -> Result<KeySampler, String> {
        let zipf = Zipf::new(n as f64, s).map_err(|e| format!("Zipf({n}, {s}): {e}"))?;
        Ok(KeySampler { zipf, n })
    }

    /// One key index, in `0..n`.
    pub(crate) fn sample(&self, rng: &mut SmallRng) -> usize {
        // Zipf draws ranks 1..=n as floats; the clamp only guards the float's edges.
        (rng.sample(self.zipf) as usize).clamp(1, self.n) - 1
    }
}

/// The nodes requests may go to: a node is taken out just before a fault is done to it and
/// put back once it is ready, as a load balancer with perfect health checks would.
#[derive(Debug, Default)]
pub(crate) struct Targets(RwLock<Arc<Vec<(usize, SocketAddr)>>>);

impl Targets {
    /// Node `slot` at `addr` takes requests.
    pub(crate) fn add(&self, slot: usize, addr: SocketAddr) {
        let mut list = self.0.write().expect("targets lock");
        let mut next = (**list).clone();
        next.retain(|(s, _)| *s != slot);
        next.push((slot, addr));
        *list = Arc::new(next);
    }

    /// Node `slot` takes no new requests (those in flight go on).
    pub(crate) fn remove(&self, slot: usize) {
        let mut list = self.0.write().expect("targets lock");
        let mut next = (**list).clone();
        next.retain(|(s, _)| *s != slot);
        *list = Arc::new(next);
    }

    fn current(&self) -> Arc<Vec<(usize, SocketAddr)>> {
        self.0.read().expect("targets lock").clone()
    }
}

/// What the clients share with the rest of the soak.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) backend: Backend,
    pub(crate) targets: Arc<Targets>,
    pub(crate) started: Instant,
    /// Set when the run is over: clients finish the request in hand and return.
    pub(crate) stop: AtomicBool,
    /// Per key, when it was first requested (ms since `started`), `u32::MAX` if never.
    pub(crate) first_request_ms: Vec<AtomicU32>,
    /// Requests answered so far (any outcome), failed ones and wrong ones: the progress line.
    pub(crate) done: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) wrong: AtomicU64,
    pub(crate) timeout: Duration,
}

impl Shared {
    /// Milliseconds since the soak started.
    pub(crate) fn now_ms(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_millis()).unwrap_or(u32::MAX)
    }
}

/// Why a request did not get a right answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Failure {
    /// No answer within `--timeout-ms`.
    Timeout,
    /// Connecting, writing or reading failed (refused, reset, closed mid-response).
    Connection,
    /// An HTTP status other than 200.
    Status(u16),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => write!(f, "timeout"),
            Failure::Connection => write!(f, "connection"),
            Failure::Status(code) => write!(f, "HTTP {code}"),
        }
    }
}

/// One request's outcome: when it started, how long it took.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) start_ms: u32,
    pub(crate) latency_us: u32,
}

/// A request that failed: when, at which node, how.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FailedRequest {
    pub(crate) start_ms: u32,
    pub(crate) slot: usize,
    pub(crate) failure: Failure,
}

/// What one client saw.
#[derive(Debug, Default)]
pub(crate) struct ClientLog {
    /// Every request, failed and wrong ones included.
    pub(crate) samples: Vec<Sample>,
    pub(crate) failed: Vec<FailedRequest>,
    /// Answers with status 200 whose value is not the file's contents (must stay empty).
    pub(crate) wrong: Vec<String>,
}

/// Runs one client until `shared.stop`; its draws are seeded by `seed`.
pub(crate) async fn client(shared: Arc<Shared>, sampler: KeySampler, seed: u64) -> ClientLog {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut connections: HashMap<usize, Connection> = HashMap::new();
    let mut log = ClientLog::default();
    while !shared.stop.load(Ordering::Relaxed) {
        let targets = shared.targets.current();
        if targets.is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        // A node taken out of the load may come back as a new process: a connection kept to
        // the old one would fail on its first use.
        connections.retain(|slot, _| targets.iter().any(|(s, _)| s == slot));
        let (slot, addr) = targets[rng.random_range(0..targets.len())];
        let key = sampler.sample(&mut rng);
        let start_ms = shared.now_ms();
        shared.first_request_ms[key].fetch_min(start_ms, Ordering::Relaxed);
        let started = Instant::now();
        let path = format!("/values/{}", shared.backend.key(key));
        let connection = connections.remove(&slot);
        let outcome = tokio::time::timeout(shared.timeout, async move {
            let mut connection = match connection {
                Some(c) => c,
                None => Connection::open(addr).await?,
            };
            let response = connection.get(&path).await?;
            Ok::<_, std::io::Error>((connection, response))
        })
        .await;
        let latency_us = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        log.samples.push(Sample {
            start_ms,
            latency_us,
        });
        shared.done.fetch_add(1, Ordering::Relaxed);
        let failure = match outcome {
            Err(_) => Some(Failure::Timeout),
            Ok(Err(_)) => Some(Failure::Connection),
            Ok(Ok((connection, response))) => {
                if connection.reusable() {
                    connections.insert(slot, connection);
                }
                if response.status == 200 {
                    if let Some(wrong) = check(&shared.backend, key, &response.body) {
                        shared.wrong.fetch_add(1, Ordering::Relaxed);
                        log.wrong.push(format!(
                            "at {start_ms} ms, n{} ({addr}), key {}: {wrong}",
                            slot + 1,
                            shared.backend.key(key)
                        ));
                    }
                    None
                } else {
                    Some(Failure::Status(response.status))
                }
            }
        };
        if let Some(failure) = failure {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            log.failed.push(FailedRequest {
                start_ms,
                slot,
                failure,
            });
        }
    }
    log
}

/// Checks a `/values/{key}` answer against the file: `None` if it is right, else what is
/// wrong.
fn check(backend: &Backend, key: usize, body: &[u8]) -> Option<String> {
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(json) => json,
        Err(e) => return Some(format!("not JSON ({e})")),
    };
    if json["key"] != backend.key(key) {
        return Some(format!("answer for key {}", json["key"]));
    }
    match json["value"].as_str() {
        Some(value) if value == backend.truth(key) => None,
        Some(value) => Some(format!(
            "value {:?}... ({} bytes), the file holds {:?}... ({} bytes)",
            &value[..value.len().min(40)],
            value.len(),
            &backend.truth(key)[..40],
            backend.truth(key).len()
        )),
        None => Some("no value in the answer".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_draws_stay_in_range_and_favour_the_first_keys() {
        let sampler = KeySampler::new(100, 1.0).unwrap();
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = [0u32; 100];
        for _ in 0..100_000 {
            counts[sampler.sample(&mut rng)] += 1;
        }
        // Every draw landed in 0..100 (else the indexing above panicked); rank 1 of Zipf(1.0)
        // over 100 keys has probability 1/H(100) = 19.3 %, rank 2 half that.
        assert!((18_000..20_500).contains(&counts[0]), "{}", counts[0]);
        assert!(counts[0] > counts[1] && counts[1] > counts[9]);
        assert!(counts[99] > 0, "the coldest key was never drawn");
        let one = KeySampler::new(1, 1.2).unwrap();
        assert!((0..1000).all(|_| one.sample(&mut rng) == 0));
    }

    #[test]
    fn answers_are_checked_against_the_file() {
        let dir = std::env::temp_dir().join(format!("chaos-soak-check-{}", std::process::id()));
        let backend = Backend::write(&dir, 3).unwrap();
        let answer = |key: &str, value: &str| {
            serde_json::json!({ "key": key, "value": value })
                .to_string()
                .into_bytes()
        };
        assert_eq!(
            check(&backend, 1, &answer("k000001", backend.truth(1))),
            None
        );
        assert!(check(&backend, 1, &answer("k000002", backend.truth(1))).is_some());
        assert!(check(&backend, 1, &answer("k000001", backend.truth(2))).is_some());
        assert!(check(&backend, 1, b"<html>").is_some());
        let _ = std::fs::remove_dir_all(dir);
    }
}
