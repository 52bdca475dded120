//! A real `groupcache-node` process stopped by a signal, as kubernetes, systemd or `docker stop`
//! stop it: it stops accepting at once, answers the request in flight, and exits with status 0;
//! a request that outlives the drain time does not hold the exit.
//!
//! The request in flight reads a FIFO: the read blocks until the test writes to it, so the
//! test decides when the request ends, without sleeping.

#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;

use crate::support::{LIMIT, Nodes, contents, get, node_command, stats, test_dir, wait_until};

/// Makes `dir/data/slow`, a FIFO: reading it waits for a writer.
fn make_fifo(dir: &Path) -> std::path::PathBuf {
    let fifo = dir.join("data").join("slow");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    fifo
}

/// `GET path`, returning whatever arrives until the node closes the connection.
fn raw_get(node: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&node, LIMIT)?;
    stream.set_read_timeout(Some(LIMIT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {node}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// Asks `node` for the FIFO's key from a thread, and returns once the node's loader has
/// started reading it (its file read count says so).
fn request_in_flight(node: SocketAddr) -> JoinHandle<std::io::Result<String>> {
    let reads_before = stats(node)["file_loads"].as_u64().unwrap();
    let request = std::thread::spawn(move || raw_get(node, "/values/slow"));
    wait_until("the node reads the FIFO", || {
        stats(node)["file_loads"].as_u64().unwrap() == reads_before + 1
    });
    request
}

fn refuses_connections(node: SocketAddr) -> bool {
    TcpStream::connect(node).is_err()
}

#[test]
fn sigterm_stops_accepting_answers_the_request_in_flight_and_exits_0() {
    let dir = test_dir("sigterm-drain");
    std::fs::write(dir.join("data").join("hello"), contents("hello")).unwrap();
    let fifo = make_fifo(&dir);
    let mut nodes = Nodes::default();
    let mut command = node_command(&dir);
    command.args(["--drain-timeout-ms", "60000"]);
    let (node, i) = nodes.start(command, dir.join("node.log"));

    let (status, body) = get(node, "/values/hello");
    assert_eq!(status, 200, "{body}");
    let in_flight = request_in_flight(node);

    nodes.signal(i, "TERM");
    wait_until("the node says it drains", || {
        nodes.log(i).contains("received SIGTERM, draining")
    });
    wait_until("the port stops accepting", || refuses_connections(node));
    assert!(
        nodes.children[i].try_wait().unwrap().is_none(),
        "the node waits for the request in flight"
    );

    // The request ends: its answer arrives, then the node exits.
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open the FIFO");
    writer.write_all(contents("slow").as_bytes()).unwrap();
    drop(writer);
    let response = in_flight.join().unwrap().expect("an answer");
    let (head, body) = response.split_once("\r\n\r\n").expect("a full response");
    assert!(head.starts_with("HTTP/1.1 200"), "{response}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["value"], contents("slow"));

    let exit = nodes.wait_for_exit(i);
    assert!(exit.success(), "{exit}");
    let log = nodes.log(i);
    assert!(log.contains("stopped: every request answered"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigint_with_a_request_stuck_past_the_drain_time_still_exits_0() {
    let dir = test_dir("sigint-drain-timeout");
    make_fifo(&dir);
    let mut nodes = Nodes::default();
    let mut command = node_command(&dir);
    command.args(["--drain-timeout-ms", "300"]);
    let (node, i) = nodes.start(command, dir.join("node.log"));
    // Nobody ever writes to the FIFO: the read never ends by itself.
    let in_flight = request_in_flight(node);

    nodes.signal(i, "INT");
    let exit = nodes.wait_for_exit(i);
    assert!(exit.success(), "{exit}");
    let log = nodes.log(i);
    assert!(log.contains("received SIGINT, draining"), "{log}");
    assert!(log.contains("the drain time (300ms) ran out"), "{log}");
    assert!(refuses_connections(node));
    // The abandoned request's connection was closed with the process: no answer.
    let answered = in_flight.join().unwrap();
    assert!(
        answered.as_ref().map_or(true, |r| r.is_empty()),
        "the stuck request got an answer: {answered:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
