//! [`StaticPeers`]: a fixed list of peers, written in code, in an environment variable
//! (`GROUPCACHE_PEERS="10.0.0.1:8080,10.0.0.2:8080"`) or in a file; and [`PeerEntry`], one
//! `host:port` of such a list.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::ServiceDiscovery;
use crate::{BoxError, Error, ErrorKind, GroupcachePeer};

/// One member of a peer list: `host:port`, where the host is an IP address (`10.0.0.1:8080`,
/// `[fd00::1]:8080`) or a DNS name (`cache-0.cache.default.svc:8080`).
///
/// A name is resolved on every poll, to a single address: its first IPv4 address, or its first
/// address if it has no IPv4 one. So one entry is always one peer.
///
/// ```
/// use groupcache::discovery::PeerEntry;
///
/// let entry: PeerEntry = "cache-0.cache:8080".parse().unwrap();
/// assert_eq!((entry.host(), entry.port()), ("cache-0.cache", 8080));
///
/// let err = "10.0.0.1".parse::<PeerEntry>().unwrap_err();
/// assert!(err.to_string().contains("no port"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerEntry {
    host: String,
    port: u16,
    /// Set when `host` is an IP address: no resolution needed.
    ip: Option<IpAddr>,
}

impl PeerEntry {
    /// The host: an IP address or a DNS name, as written (without brackets).
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port of the peer's gRPC service.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The peer this entry names now: the address itself, or the name resolved (see above).
    ///
    /// # Errors
    ///
    /// If the name does not resolve, or resolves to no address.
    pub async fn resolve(&self) -> Result<GroupcachePeer, BoxError> {
        if let Some(ip) = self.ip {
            return Ok(SocketAddr::new(ip, self.port).into());
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("resolving peer {self} failed: {e}"))?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .map(|a| GroupcachePeer::from(*a))
            .ok_or_else(|| format!("peer {self} resolved to no address").into())
    }

    /// Whether this entry is the machine called `hostname`: its host is that name, or a
    /// longer name starting with it (`cache-0` is `cache-0.cache.default.svc`).
    fn is_host(&self, hostname: &str) -> bool {
        let host = self.host.to_ascii_lowercase();
        let hostname = hostname.to_ascii_lowercase();
        host == hostname
            || host
                .strip_prefix(&hostname)
                .is_some_and(|rest| rest.starts_with('.'))
    }
}

impl FromStr for PeerEntry {
    type Err = Error;

    /// Parses `host:port`. The error says what is wrong with the entry and quotes it.
    fn from_str(entry: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::Config,
                format!("bad peer {entry:?}: {why} (write host:port, e.g. 10.0.0.1:8080)"),
            )
        };
        if entry.contains("://") {
            return Err(bad("a peer is host:port, without a scheme"));
        }
        if let Ok(addr) = entry.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return Err(bad("port 0 is not a port a peer can listen on"));
            }
            return Ok(PeerEntry {
                host: addr.ip().to_string(),
                port: addr.port(),
                ip: Some(addr.ip()),
            });
        }
        let Some((host, port)) = entry.rsplit_once(':') else {
            return Err(bad("no port"));
        };
        if host.contains(':') || host.starts_with('[') {
            return Err(bad(
                "an IPv6 address must be in brackets, e.g. [fd00::1]:8080",
            ));
        }
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host.parse::<IpAddr>().is_err()
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(bad("the host is neither an IP address nor a DNS name"));
        }
        let port: u16 = match port.parse() {
            Ok(0) | Err(_) => return Err(bad("the port is not a number from 1 to 65535")),
            Ok(port) => port,
        };
        Ok(PeerEntry {
            host: host.to_owned(),
            port,
            ip: None,
        })
    }
}

impl fmt::Display for PeerEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl From<GroupcachePeer> for PeerEntry {
    fn from(peer: GroupcachePeer) -> Self {
        let addr = peer.addr();
        PeerEntry {
            host: addr.ip().to_string(),
            port: addr.port(),
            ip: Some(addr.ip()),
        }
    }
}

/// Parses a list of `host:port` entries separated by commas or whitespace (newlines too).
/// Empty entries are skipped; an empty list is `Ok(vec![])`. `origin` names where the list
/// came from in errors (`GROUPCACHE_PEERS`, `peers file /etc/peers`).
pub(crate) fn parse_peer_list(list: &str, origin: &str) -> Result<Vec<PeerEntry>, Error> {
    list.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|entry| !entry.is_empty())
        .enumerate()
        .map(|(i, entry)| {
            entry.parse::<PeerEntry>().map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("{origin}, entry {}: {}", i + 1, e.detail()),
                )
            })
        })
        .collect()
}

/// Resolves every entry; fails if any fails, so that a partial list is never applied.
pub(crate) async fn resolve_all(entries: &[PeerEntry]) -> Result<Vec<GroupcachePeer>, BoxError> {
    let mut peers = Vec::with_capacity(entries.len());
    for entry in entries {
        peers.push(entry.resolve().await?);
    }
    Ok(peers)
}

// ===== StaticPeers =====

/// A fixed list of peers, the way redhac's `HA_HOSTS` works: every replica is given the same
/// list, and each finds itself in it ([`find_me`](Self::find_me)).
///
/// Entries that are DNS names are resolved on every poll (one address each, see
/// [`PeerEntry`]); if any name fails to resolve, the poll fails and the driver keeps the last
/// set, so the membership never shrinks to the names that happened to resolve.
///
/// ```
/// # async fn run() -> Result<(), groupcache::Error> {
/// use groupcache::discovery::StaticPeers;
///
/// let peers = StaticPeers::parse("10.0.0.1:8080, 10.0.0.2:8080,10.0.0.3:8080")?;
/// assert_eq!(peers.entries().len(), 3);
/// let me = peers.find_me(Some("10.0.0.2:8080")).await?;
/// assert_eq!(me.to_string(), "10.0.0.2:8080");
///
/// let err = StaticPeers::parse("10.0.0.1:8080,10.0.0.2").unwrap_err();
/// assert!(err.to_string().contains("entry 2"), "{err}");
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticPeers {
    entries: Vec<PeerEntry>,
}

impl StaticPeers {
    /// A list of known addresses.
    pub fn new(peers: impl IntoIterator<Item = impl Into<GroupcachePeer>>) -> Self {
        StaticPeers {
            entries: peers
                .into_iter()
                .map(|p| PeerEntry::from(p.into()))
                .collect(),
        }
    }

    /// Parses `host:port` entries separated by commas or whitespace.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] naming the first bad entry (its position and text), or saying the
    /// list is empty.
    pub fn parse(list: &str) -> Result<Self, Error> {
        Self::parse_from(list, "the peer list")
    }

    /// Reads and parses the environment variable `var`, e.g. `GROUPCACHE_PEERS`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] if the variable is not set, is not Unicode, is empty, or has a bad
    /// entry; the message names the variable and the entry.
    pub fn from_env(var: &str) -> Result<Self, Error> {
        let list = std::env::var(var).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("{var}: {e} (set it to host:port entries separated by commas)"),
            )
        })?;
        Self::parse_from(&list, var)
    }

    fn parse_from(list: &str, origin: &str) -> Result<Self, Error> {
        let entries = parse_peer_list(list, origin)?;
        if entries.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                format!("{origin} lists no peers (give host:port entries separated by commas)"),
            ));
        }
        Ok(StaticPeers { entries })
    }

    /// The entries, in the order given.
    #[must_use]
    pub fn entries(&self) -> &[PeerEntry] {
        &self.entries
    }

    /// Finds this peer in the list and resolves it: the address to pass to
    /// [`Groupcache::builder`](crate::Groupcache::builder).
    ///
    /// `hint` overrides how this peer is recognised: a full entry (`10.0.0.2:8080`,
    /// `cache-1:8080`) or a host name (`cache-1`). Without it, the machine's host name is used
    /// (`HOSTNAME`, else `/proc/sys/kernel/hostname`, else `/etc/hostname`). A host name
    /// matches an entry whose host is that name or starts with it and a dot (`cache-1` matches
    /// `cache-1.cache.default.svc:8080`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] if no entry or more than one entry matches (the message lists
    /// the entries and what was looked for), or if the matching entry does not resolve.
    pub async fn find_me(&self, hint: Option<&str>) -> Result<GroupcachePeer, Error> {
        let (wanted, matches): (String, Vec<&PeerEntry>) = if let Some(hint) = hint {
            match hint.parse::<PeerEntry>() {
                Ok(full) => (
                    format!("entry {full}"),
                    self.entries
                        .iter()
                        .filter(|e| e.port == full.port && e.host.eq_ignore_ascii_case(&full.host))
                        .collect(),
                ),
                Err(_) => (
                    format!("host {hint:?}"),
                    self.entries.iter().filter(|e| e.is_host(hint)).collect(),
                ),
            }
        } else {
            let hostname = machine_hostname().ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    "cannot tell which peer is this one: the host name is unknown \
                     (give an override naming this peer's entry)",
                )
            })?;
            let matches = self
                .entries
                .iter()
                .filter(|e| e.is_host(&hostname))
                .collect();
            (format!("this machine's host name {hostname:?}"), matches)
        };
        let listed = self
            .entries
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        match matches.as_slice() {
            [entry] => entry.resolve().await.map_err(|e| {
                Error::new(ErrorKind::Config, format!("this peer's entry: {e}")).with_source(e)
            }),
            [] => Err(Error::new(
                ErrorKind::Config,
                format!(
                    "no listed peer is {wanted} (listed: {listed}); give an override naming \
                     this peer's entry"
                ),
            )),
            _ => Err(Error::new(
                ErrorKind::Config,
                format!(
                    "more than one listed peer is {wanted} (listed: {listed}); give an \
                     override naming this peer's entry exactly"
                ),
            )),
        }
    }
}

#[async_trait::async_trait]
impl ServiceDiscovery for StaticPeers {
    async fn peers(&self) -> Result<Vec<GroupcachePeer>, BoxError> {
        resolve_all(&self.entries).await
    }
}

/// This machine's host name, as kubernetes and most init systems set it.
fn machine_hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_names_and_separators() {
        let entries =
            parse_peer_list("10.0.0.1:8080, [fd00::1]:9000\ncache-0.cache:80,,", "list").unwrap();
        let shown: Vec<String> = entries.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["10.0.0.1:8080", "[fd00::1]:9000", "cache-0.cache:80"]
        );
        assert!(entries[2].ip.is_none());
    }

    #[test]
    fn bad_entries_are_named_with_their_position_and_the_reason() {
        for (list, position, reason) in [
            ("10.0.0.1:8080,10.0.0.2", "entry 2", "no port"),
            ("a:1,b:2,c:99999", "entry 3", "1 to 65535"),
            ("a:0", "entry 1", "1 to 65535"),
            ("10.0.0.1:0", "entry 1", "port 0"),
            ("http://a:80", "entry 1", "scheme"),
            ("fd00::1:80", "entry 1", "brackets"),
            (":80", "entry 1", "no host"),
            ("a/b:80", "entry 1", "neither an IP"),
        ] {
            let err = parse_peer_list(list, "GROUPCACHE_PEERS").unwrap_err();
            let message = err.to_string();
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(message.contains("GROUPCACHE_PEERS"), "{message}");
            assert!(message.contains(position), "{list}: {message}");
            assert!(message.contains(reason), "{list}: {message}");
        }
    }

    #[test]
    fn a_host_name_matches_its_longer_names_only() {
        let entry: PeerEntry = "cache-1.cache.default.svc:8080".parse().unwrap();
        assert!(entry.is_host("cache-1"));
        assert!(entry.is_host("CACHE-1.cache.default.svc"));
        assert!(!entry.is_host("cache"));
        assert!(!entry.is_host("cache-10"));
    }
}
