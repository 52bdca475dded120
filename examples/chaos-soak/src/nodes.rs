//! The `groupcache-node` processes: started on loopback with the shared peers file, ready when
//! they print `listening on ADDR`, and the faults done to them (SIGKILL, SIGSTOP/SIGCONT,
//! SIGTERM). Every wait has a limit.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::http;

/// Upper bound of every wait on a node: start, agreement on members, exit.
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// How every node is started.
#[derive(Debug, Clone)]
pub(crate) struct NodeConfig {
    /// The `groupcache-node` executable.
    pub(crate) bin: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) peers_file: PathBuf,
    pub(crate) logs: PathBuf,
    /// `--discovery-interval-ms`.
    pub(crate) discovery_ms: u64,
}

/// One running node process (one *incarnation* of a named node: a restart is a new one).
#[derive(Debug)]
pub(crate) struct Node {
    /// `n1`, `n2`, ...: the same across restarts.
    pub(crate) name: String,
    /// Index of the node in the soak's list (its name without the `n`, minus one).
    pub(crate) slot: usize,
    pub(crate) addr: SocketAddr,
    pub(crate) pid: u32,
    /// This process's stderr.
    pub(crate) log: PathBuf,
    child: Child,
}

impl Node {
    /// Starts node `slot` listening on `listen` (port 0 for a free one) and waits, at most
    /// [`LIMIT`], for its `listening on ADDR` line. `incarnation` numbers its log file.
    pub(crate) async fn start(
        config: &NodeConfig,
        slot: usize,
        listen: SocketAddr,
        incarnation: u32,
    ) -> Result<Node, String> {
        let name = format!("n{}", slot + 1);
        let log = config.logs.join(format!("{name}.{incarnation}.log"));
        let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(&config.bin)
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--data-dir")
            .arg(&config.data_dir)
            .arg("--peers-file")
            .arg(&config.peers_file)
            .arg("--discovery-interval-ms")
            .arg(config.discovery_ms.to_string())
            .env("RUST_LOG", "info")
            .env_remove("GROUPCACHE_PEERS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", config.bin.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(LIMIT, stdout.read_line(&mut line)).await;
        let addr = match read {
            Ok(Ok(_)) => line
                .trim()
                .strip_prefix("listening on ")
                .and_then(|a| a.parse().ok()),
            _ => None,
        };
        let Some(addr) = addr else {
            let _ = child.kill().await;
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "{name} on {listen} did not print `listening on ADDR` within {LIMIT:?} \
                 (first line {line:?}); its log:\n{log_text}"
            ));
        };
        // Keep reading stdout so that nothing the node prints later meets a closed pipe.
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink).await;
        });
        let pid = child.id().ok_or("the node exited at once")?;
        Ok(Node {
            name,
            slot,
            addr,
            pid,
            log,
            child,
        })
    }

    /// Starts node `slot` again on `addr`, retrying while the port is still held (the kernel
    /// frees a killed process's socket shortly after), for at most [`LIMIT`].
    pub(crate) async fn restart(
        config: &NodeConfig,
        slot: usize,
        addr: SocketAddr,
        incarnation: u32,
    ) -> Result<Node, String> {
        let deadline = Instant::now() + LIMIT;
        loop {
            match Node::start(config, slot, addr, incarnation).await {
                Ok(node) => return Ok(node),
                Err(err) if Instant::now() < deadline && err.contains("cannot listen") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// `kill -9`: the process ends at once, its connections reset.
    pub(crate) async fn sigkill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`) with kill(1).
    pub(crate) async fn signal(&self, signal: &str) -> Result<(), String> {
        let status = tokio::time::timeout(
            LIMIT,
            Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(self.pid.to_string())
                .status(),
        )
        .await
        .map_err(|_| format!("kill -{signal} {} timed out", self.pid))?
        .map_err(|e| format!("cannot run kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{signal} {} failed: {status}", self.pid))
        }
    }

    /// SIGTERM, then waits for the drain to end, at most [`LIMIT`] (then SIGKILL).
    /// Returns whether it exited with status 0.
    pub(crate) async fn stop(mut self) -> bool {
        if self.signal("TERM").await.is_err() {
            let _ = self.child.kill().await;
            return false;
        }
        match tokio::time::timeout(LIMIT, self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = self.child.kill().await;
                false
            }
        }
    }

    /// The node's `/stats`, as JSON.
    pub(crate) async fn stats(&self) -> Result<serde_json::Value, String> {
        let response = http::get_once(self.addr, "/stats", Duration::from_secs(5))
            .await
            .map_err(|e| format!("{} /stats: {e}", self.name))?;
        serde_json::from_slice(&response.body).map_err(|e| format!("{} /stats: {e}", self.name))
    }

    /// The members this node routes by, sorted, from `/stats`.
    pub(crate) async fn members(&self) -> Result<Vec<String>, String> {
        let stats = self.stats().await?;
        let mut members: Vec<String> = stats["members"]
            .as_array()
            .ok_or_else(|| format!("{} /stats has no members: {stats}", self.name))?
            .iter()
            .filter_map(|m| m.as_str().map(str::to_owned))
            .collect();
        members.sort();
        Ok(members)
    }
}

/// `VmRSS` of process `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Writes the peers file atomically (a new file renamed over the old one), one address a
/// line.
pub(crate) fn write_peers(path: &Path, peers: &[SocketAddr]) -> std::io::Result<()> {
    let list: Vec<String> = peers.iter().map(ToString::to_string).collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, list.join("\n") + "\n")?;
    std::fs::rename(&tmp, path)
}

/// Waits until every node in `nodes` routes by exactly `peers`, polling `/stats` every
/// 50 ms, at most [`LIMIT`].
pub(crate) async fn wait_for_members(nodes: &[&Node], peers: &[SocketAddr]) -> Result<(), String> {
    let mut want: Vec<String> = peers.iter().map(ToString::to_string).collect();
    want.sort();
    let deadline = Instant::now() + LIMIT;
    for node in nodes {
        loop {
            let seen = node.members().await;
            if seen.as_ref().is_ok_and(|m| *m == want) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not take up the members {want:?} within {LIMIT:?} (last: {seen:?})",
                    node.name
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tnode\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(super::parse_vm_rss(status), Some(12345));
        assert_eq!(super::parse_vm_rss("Name:\tzombie\n"), None);
    }
}
