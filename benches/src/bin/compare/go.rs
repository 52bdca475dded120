//! The original Go groupcache as a contender, `Go groupcache`: our Go benchmark in
//! `benches/go-groupcache` (gcbench), built here when `go` and Debian's groupcache sources are
//! installed, and otherwise skipped with a one-line reason.
//!
//! Go groupcache's peer pool is process-global, so its cluster is three processes: a driver
//! and the two peers it starts. One such cluster serves the whole run. For each round the
//! driver is sent one command (a JSON line on its stdin: which workload, how many callers, how
//! long) and answers with one JSON line: the operations, the elapsed time, the latencies and
//! the loads (see `serve.go`). So it takes its turn in the alternating rounds like any other
//! contender, and measures the way `measure` does.
//!
//! No process outlives compare: the driver exits when its stdin closes, which happens however
//! compare ends (a panic, `process::exit`, a kill), and each peer likewise exits when the
//! driver's end of its own stdin closes. The `Child` is also killed on drop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;

use crate::measure::{self, Budget, Sample};
use crate::report::{GO, Row};
use crate::rounds::{Boxed, Entrant, Measurable};
use crate::workloads::Plan;

/// The benchmark's sources, built into compare so that it can build them anywhere.
const SOURCES: [(&str, &str); 2] = [
    (
        "main.go",
        include_str!("../../../go-groupcache/src/gcbench/main.go"),
    ),
    (
        "serve.go",
        include_str!("../../../go-groupcache/src/gcbench/serve.go"),
    ),
];

/// Where Debian's packages put Go sources (`golang-github-golang-groupcache-dev`).
const GOCODE: &str = "/usr/share/gocode";

/// How the driver is waited for when it starts (three processes, two HTTP servers pinged).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The Go contender of this run: off (not asked for), skipped (and why), or running.
pub(crate) enum Go {
    Off,
    Skipped(String),
    Ready(Arc<GoCluster>),
}

impl Go {
    /// Finds or builds gcbench under `out_dir` (or uses `prebuilt`) and starts its cluster.
    pub(crate) async fn prepare(plan: &Plan, out_dir: &Path, prebuilt: Option<&Path>) -> Go {
        if !plan.wants(GO) {
            return Go::Off;
        }
        let (binary, how) = match prebuilt {
            Some(path) if path.is_file() => (path.to_owned(), format!("{}", path.display())),
            Some(path) => return Go::Skipped(format!("skipped: no {}", path.display())),
            None => match build(&out_dir.join("go-groupcache")) {
                Ok(found) => found,
                Err(why) => return Go::Skipped(format!("skipped: {why}")),
            },
        };
        match GoCluster::start(&binary, plan, how).await {
            Ok(cluster) => Go::Ready(Arc::new(cluster)),
            Err(why) => Go::Skipped(format!("skipped: {why}")),
        }
    }

    /// The one line the report prints about Go.
    pub(crate) fn summary(&self) -> Option<String> {
        match self {
            Go::Off => None,
            Go::Skipped(why) => Some(format!(
                "{GO}: {why} (benches/go-groupcache/build.sh installs it)"
            )),
            Go::Ready(cluster) => Some(format!("{GO}: {}", cluster.about)),
        }
    }

    /// A contender of a workload measured in rounds (`op` "local" or "remote").
    pub(crate) fn entrant(&self, op: &'static str, size: usize, keys: usize) -> Option<Entrant> {
        let Go::Ready(cluster) = self else {
            return None;
        };
        let measured = GoWorkload {
            cluster: Arc::clone(cluster),
            op,
            size,
            keys,
            loads: AtomicU64::new(0),
        };
        Some(Entrant::custom(GO, measured))
    }

    /// The row that stands in for Go's in `workload` when it was skipped.
    pub(crate) fn skipped_row(&self, workload: &str) -> Option<Row> {
        let Go::Skipped(why) = self else {
            return None;
        };
        Some(
            Row::new(
                workload,
                GO,
                measure::from_latencies(&[], Duration::ZERO, 0),
            )
            .note(why),
        )
    }

    pub(crate) fn cluster(&self) -> Option<&GoCluster> {
        match self {
            Go::Ready(cluster) => Some(cluster),
            _ => None,
        }
    }

    /// Stops the cluster, waiting for the driver (it stops its peers first).
    pub(crate) async fn shutdown(self) {
        if let Go::Ready(cluster) = self
            && let Ok(cluster) = Arc::try_unwrap(cluster)
        {
            cluster.shutdown().await;
        }
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        match self {
            Go::Off => json!(null),
            Go::Skipped(why) => json!({ "skipped": why }),
            Go::Ready(cluster) => json!({ "about": cluster.about }),
        }
    }
}

// ===== building =====

/// gcbench in `dir`, built there unless the binary already matches the sources; the binary
/// and how it was found. An error says why there is none.
fn build(dir: &Path) -> Result<(PathBuf, String), String> {
    let binary = dir.join("gcbench");
    let stamp = dir.join("gcbench.sources");
    let sources: String = SOURCES.iter().map(|(_, text)| *text).collect();
    let current = std::fs::read_to_string(&stamp).is_ok_and(|built| built == sources);
    let go = std::process::Command::new("go")
        .arg("version")
        .output()
        .ok()
        .filter(|out| out.status.success());
    if go.is_none() {
        return if binary.is_file() {
            let age = if current { "" } else { " from older sources" };
            Ok((binary, format!("built earlier{age}; no go to rebuild it")))
        } else {
            Err("no go".to_owned())
        };
    }
    if current && binary.is_file() {
        return Ok((binary, "built earlier".to_owned()));
    }
    if !Path::new(GOCODE)
        .join("src/github.com/golang/groupcache")
        .is_dir()
    {
        return Err(format!(
            "no groupcache sources in {GOCODE} (Debian: golang-github-golang-groupcache-dev)"
        ));
    }
    let started = Instant::now();
    let gopath = dir.join("gopath");
    let package = gopath.join("src/gcbench");
    let failed = |e: std::io::Error| format!("cannot build in {}: {e}", dir.display());
    std::fs::create_dir_all(&package).map_err(failed)?;
    for (name, text) in SOURCES {
        std::fs::write(package.join(name), text).map_err(failed)?;
    }
    let out = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg("gcbench")
        .current_dir(&package)
        .env("GO111MODULE", "off")
        .env("GOPATH", format!("{}:{GOCODE}", gopath.display()))
        .env("GOCACHE", dir.join("cache"))
        .env("GOFLAGS", "")
        .output()
        .map_err(failed)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("no output");
        return Err(format!("go build failed: {last}"));
    }
    std::fs::write(&stamp, sources).map_err(failed)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok((binary, format!("built in {seconds:.1} s")))
}

// ===== the running cluster =====

/// The first line the driver writes.
#[derive(Deserialize)]
struct Hello {
    go: String,
    gomaxprocs: usize,
}

/// The driver's answer to one command.
#[derive(Deserialize)]
pub(crate) struct Reply {
    ops: u64,
    elapsed_ns: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Option<Vec<(u64, u64)>>,
    pub(crate) loads: u64,
    failed: Option<String>,
}

impl Reply {
    pub(crate) fn sample(&self) -> Sample {
        let mut sample = measure::from_buckets(
            self.latency.as_deref().unwrap_or_default(),
            Duration::from_nanos(self.elapsed_ns),
            self.errors,
        );
        sample.ops = self.ops;
        sample.first_error.clone_from(&self.first_error);
        sample
    }
}

struct Pipe {
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// Go groupcache's three processes, ready for commands.
pub(crate) struct GoCluster {
    /// A tokio mutex: held across the write and the read of one command (one at a time).
    /// Before `child`, so that on drop stdin closes first and the driver stops its peers.
    pipe: Mutex<Pipe>,
    child: Child,
    /// Go's version and how the binary was found, for the report.
    about: String,
}

impl GoCluster {
    async fn start(binary: &Path, plan: &Plan, how: String) -> Result<GoCluster, String> {
        let sleep = format!("{}ms", plan.stampede_loader.as_millis());
        let mut child = Command::new(binary)
            .args(["-role", "serve", "-stampede-sleep", &sleep])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            unreachable!("both piped above");
        };
        let mut stdout = BufReader::new(stdout).lines();
        let hello = tokio::time::timeout(START_TIMEOUT, stdout.next_line())
            .await
            .map_err(|_| "its peers did not start within 30 s".to_owned())?
            .map_err(|e| format!("no answer from {}: {e}", binary.display()))?
            .ok_or_else(|| format!("{} exited at start", binary.display()))?;
        let hello: Hello = serde_json::from_str(&hello)
            .map_err(|e| format!("unexpected first line {hello:?}: {e}"))?;
        Ok(GoCluster {
            pipe: Mutex::new(Pipe { stdin, stdout }),
            child,
            about: format!(
                "{}, 3 processes of GOMAXPROCS {}; gcbench {how}",
                hello.go, hello.gomaxprocs
            ),
        })
    }

    /// Sends one command and waits for its answer.
    pub(crate) async fn call(&self, command: serde_json::Value) -> Result<Reply, String> {
        let mut pipe = self.pipe.lock().await;
        let mut line = command.to_string();
        line.push('\n');
        pipe.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("Go driver gone: {e}"))?;
        let answer = pipe
            .stdout
            .next_line()
            .await
            .map_err(|e| format!("Go driver gone: {e}"))?
            .ok_or_else(|| "Go driver exited".to_owned())?;
        let reply: Reply =
            serde_json::from_str(&answer).map_err(|e| format!("bad reply {answer:?}: {e}"))?;
        match reply.failed {
            Some(failed) => Err(failed),
            None => Ok(reply),
        }
    }

    async fn shutdown(self) {
        let GoCluster {
            pipe, mut child, ..
        } = self;
        drop(pipe);
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}

/// One workload of the alternating rounds, run by the Go driver.
struct GoWorkload {
    cluster: Arc<GoCluster>,
    op: &'static str,
    size: usize,
    keys: usize,
    /// Loads reported so far, summed (the rounds read it before and after each round).
    loads: AtomicU64,
}

impl GoWorkload {
    async fn measure(&self, budget: Budget, callers: usize, batch: u64) -> Sample {
        let command = json!({
            "op": self.op,
            "size": self.size,
            "keys": self.keys,
            "callers": callers,
            "batch": batch,
            "warmup_ns": budget.warmup.as_nanos() as u64,
            "run_ns": budget.run.as_nanos() as u64,
        });
        match self.cluster.call(command).await {
            Ok(reply) => {
                self.loads.fetch_add(reply.loads, Ordering::Relaxed);
                reply.sample()
            }
            Err(why) => {
                let mut sample = measure::from_latencies(&[], budget.run, 1);
                sample.first_error = Some(why);
                sample
            }
        }
    }
}

impl Measurable for GoWorkload {
    fn sequential(&self, budget: Budget, batch: u64) -> Boxed<'_> {
        Box::pin(self.measure(budget, 1, batch))
    }

    fn concurrent(&self, budget: Budget, callers: usize, batch: u64) -> Boxed<'_> {
        Box::pin(self.measure(budget, callers, batch))
    }

    fn loads(&self) -> Option<u64> {
        Some(self.loads.load(Ordering::Relaxed))
    }
}
