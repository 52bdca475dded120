//! The listener a peer's server accepts connections on, with the socket options peer traffic
//! needs.
//!
//! tonic applies `Server::tcp_nodelay` only when it binds the port itself (`Server::serve`).
//! A server given a listener (`serve_with_incoming`) accepts sockets as they are, and without
//! `TCP_NODELAY` a reply of a few hundred bytes to a few KiB waits ~40 ms for the asker's
//! delayed ACK (Nagle's algorithm). These functions make the listener right from the start.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::server::TcpIncoming;

/// TCP keep-alive probes on accepted connections: a peer that vanished without closing its
/// connection (a powered-off host, a dropped NAT entry) is noticed and its connection freed.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Binds `addr` for a server that hosts [`Groupcache::grpc_service`](crate::Groupcache::grpc_service),
/// with `TCP_NODELAY` and TCP keep-alive set on every accepted connection.
///
/// Hand the result to `serve_with_incoming` (or `serve_with_incoming_shutdown`). Port 0 picks
/// a free port; [`TcpIncoming::local_addr`] tells which.
///
/// ```no_run
/// # async fn run(cache: groupcache::Groupcache) -> Result<(), Box<dyn std::error::Error>> {
/// let incoming = groupcache::bind("0.0.0.0:8080".parse()?)?;
/// cache
///     .server_builder()?
///     .add_service(cache.grpc_service())
///     .serve_with_incoming(incoming)
///     .await?;
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// The operating system's error if the address cannot be bound (in use, not local, no
/// permission).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpIncoming> {
    TcpIncoming::bind(addr).map(configure)
}

/// Wraps a listener the application bound itself (for example one inherited through socket
/// activation, or shared with a readiness check) with the same socket options as [`bind`].
///
/// ```
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let incoming = groupcache::incoming(listener);
/// println!("peers reach this one at {}", incoming.local_addr()?);
/// # Ok(()) }
/// ```
pub fn incoming(listener: tokio::net::TcpListener) -> TcpIncoming {
    configure(TcpIncoming::from(listener))
}

fn configure(incoming: TcpIncoming) -> TcpIncoming {
    incoming
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE))
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    /// The connection `incoming` accepts from a fresh client.
    async fn accept(mut incoming: TcpIncoming) -> tokio::net::TcpStream {
        let addr = incoming.local_addr().unwrap();
        let (accepted, _client) =
            tokio::join!(incoming.next(), tokio::net::TcpStream::connect(addr));
        accepted.expect("a connection").expect("accepted")
    }

    // Regression test for issue 10, item 1: a listener given to `serve_with_incoming` kept
    // Nagle's algorithm on, whatever the server builder said.
    #[tokio::test]
    async fn accepted_connections_have_nodelay_set() {
        let bound = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(accept(bound).await.nodelay().unwrap(), "bind");

        let own = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        assert!(accept(incoming(own)).await.nodelay().unwrap(), "incoming");

        let plain = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(
            !accept(plain).await.nodelay().unwrap(),
            "tonic's default, for contrast"
        );
    }
}
