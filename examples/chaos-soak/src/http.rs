//! A small HTTP/1.1 client over one kept-alive loopback connection: `GET` only, bodies with a
//! `Content-Length` only, which is what the node's axum front sends. Enough for a load
//! generator that must not share a connection pool (and its queueing) across clients, and
//! no HTTP client crate to build.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head accepted, in bytes.
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body accepted, in bytes (the soak's values are at most 2 KiB; `/stats`
/// is a few KiB).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// One connection to one node, reused for every request until an error or `Connection:
/// close`.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
    reusable: bool,
}

/// A response: its status and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Connection {
    /// Connects to `addr`, with `TCP_NODELAY` (a request is one small write).
    pub(crate) async fn open(addr: SocketAddr) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            host: addr.to_string(),
            buf: Vec::with_capacity(4096),
            reusable: true,
        })
    }

    /// False once the server said `Connection: close` or an exchange failed.
    pub(crate) fn reusable(&self) -> bool {
        self.reusable
    }

    /// `GET path`. On an error the connection is no longer reusable.
    pub(crate) async fn get(&mut self, path: &str) -> io::Result<Response> {
        self.reusable = false;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream.write_all(request.as_bytes()).await?;
        self.buf.clear();
        let head_end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("response head too long"));
            }
            self.read_more().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| invalid("response head is not UTF-8"))?;
        let (status, length, close) = parse_head(head)?;
        let body_start = head_end + 4;
        while self.buf.len() < body_start + length {
            self.read_more().await?;
        }
        if self.buf.len() != body_start + length {
            return Err(invalid("more bytes than Content-Length"));
        }
        let body = self.buf[body_start..].to_vec();
        self.reusable = !close;
        Ok(Response { status, body })
    }

    async fn read_more(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-response",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// `GET path` on a fresh connection, within `limit`: for the soak's own control requests
/// (`/stats`), never the load.
pub(crate) async fn get_once(
    addr: SocketAddr,
    path: &str,
    limit: Duration,
) -> io::Result<Response> {
    tokio::time::timeout(limit, async {
        Connection::open(addr).await?.get(path).await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("GET {path} on {addr}")))?
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Status, `Content-Length` and whether the server closes the connection after this response.
fn parse_head(head: &str) -> io::Result<(u16, usize, bool)> {
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("no status line"))?;
    let mut length = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse().map_err(|_| invalid("bad Content-Length"))?);
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked responses are not supported"));
        }
    }
    let length = length.ok_or_else(|| invalid("no Content-Length"))?;
    if length > MAX_BODY {
        return Err(invalid("response body too large"));
    }
    Ok((status, length, close))
}

#[cfg(test)]
mod tests {
    use super::parse_head;

    #[test]
    fn heads_give_status_length_and_close() {
        let (status, length, close) =
            parse_head("HTTP/1.1 200 OK\r\ncontent-type: x\r\ncontent-length: 12").unwrap();
        assert_eq!((status, length, close), (200, 12, false));
        let (status, _, close) =
            parse_head("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close")
                .unwrap();
        assert_eq!((status, close), (502, true));
        assert!(parse_head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked").is_err());
        assert!(parse_head("HTTP/1.1 200 OK").is_err());
    }
}
