//! Shared by the process tests: starting `groupcache-node` processes on free loopback ports,
//! plain HTTP/1.1 requests to them, and waiting on conditions (never on sleeps).

// Each test file uses a part of this module.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Upper bound for every wait in these tests.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A fresh directory for one test, under cargo's temporary directory for tests.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    dir
}

/// `groupcache-node` listening on a free loopback port, serving `dir/data`, logging at info,
/// with no membership from the environment. Add the flags of the test.
pub fn node_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_groupcache-node"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "info")
        .env_remove("GROUPCACHE_PEERS");
    command
}

/// The node processes; killed when the test ends, passes or fails. On failure their logs are
/// printed.
#[derive(Default)]
pub struct Nodes {
    pub children: Vec<Child>,
    pub logs: Vec<PathBuf>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for log in &self.logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                eprintln!("===== {} =====\n{text}", log.display());
            }
        }
    }
}

impl Nodes {
    /// Starts `command` with its stderr in `log` and returns the bound address, read from the
    /// `listening on ADDR` line it prints first. The node is `self.children[i]` for the `i`
    /// returned second.
    pub fn start(&mut self, mut command: Command, log: PathBuf) -> (SocketAddr, usize) {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start groupcache-node");
        let stdout = child.stdout.take().expect("piped stdout");
        self.children.push(child);
        self.logs.push(log);
        // Read the first line in a thread, so that a node that never prints fails the test.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(LIMIT).expect("node printed its address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an address");
        (addr, self.children.len() - 1)
    }

    /// The log (stderr) of node `i` so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
    }

    /// Sends `signal` (`TERM`, `INT`) to node `i` with kill(1).
    pub fn signal(&self, i: usize, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.children[i].id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed: {status}");
    }

    /// Waits until node `i` exits; panics after [`LIMIT`].
    pub fn wait_for_exit(&mut self, i: usize) -> ExitStatus {
        let child = &mut self.children[i];
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "node {i} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `GET path` over HTTP/1.1; returns the status and the body parsed as JSON.
pub fn get(node: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = get_text(node, path);
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, body)
}

/// `GET path` over HTTP/1.1; returns the status and the body as text.
pub fn get_text(node: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&node, LIMIT).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {node}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a full response");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_owned())
}

pub fn stats(node: SocketAddr) -> Value {
    let (status, body) = get(node, "/stats");
    assert_eq!(status, 200, "{body}");
    body
}

/// The node's groups, as `/stats` names them under `groups`.
pub const GROUPS: [&str; 2] = ["contents", "metadata"];

/// Counter `name` of `group` in `node`'s `/stats`.
pub fn group_stat(node: SocketAddr, group: &str, name: &str) -> u64 {
    let body = stats(node);
    body["groups"][group][name]
        .as_u64()
        .unwrap_or_else(|| panic!("groups.{group}.{name} in /stats: {body}"))
}

pub fn members(node: SocketAddr) -> Vec<String> {
    let mut members: Vec<String> = stats(node)["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    members.sort();
    members
}

/// What the test data directories hold in the file `key`.
pub fn contents(key: &str) -> String {
    format!("the contents of {key}\n")
}

/// Writes a peers file atomically (a new file renamed over the old one).
pub fn write_peers(path: &Path, peers: &[SocketAddr]) {
    let list: Vec<String> = peers.iter().map(ToString::to_string).collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, list.join("\n")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `cond` every 20 ms until it holds; panics after [`LIMIT`], naming `what`.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
