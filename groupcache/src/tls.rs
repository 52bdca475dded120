//! TLS and mutual TLS for peer links: [`PeerTls`] (feature `tls`).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server, ServerTlsConfig};

use crate::{Error, ErrorKind};

/// How long a peer's service waits for a client to finish its TLS handshake: 10 s.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS settings for the links between peers, both ways: the certificate a peer's service
/// presents, the authority it trusts for other peers' certificates, and whether it also
/// requires a certificate from every peer that connects (mutual TLS).
///
/// Give the same `PeerTls` (built from each peer's own certificate) to
/// [`GroupcacheBuilder::tls`](crate::GroupcacheBuilder::tls). The peer then connects to others
/// over `https`, and [`Groupcache::server_builder`](crate::Groupcache::server_builder) returns a
/// tonic server that serves TLS with the same settings. Peers verify each other's certificate
/// against the CA bundle only (not the system's roots) and check that it names the peer: its
/// IP address, or [`domain_name`](Self::domain_name) for all peers.
///
/// A TLS failure (an untrusted certificate, a name mismatch, a missing client certificate) is a
/// transport failure like a refused connection: the asking peer counts it in
/// [`Stats::peer_errors`](crate::stats::Stats::peer_errors), logs it, and loads the value itself.
///
/// ```
/// # fn pem() -> (String, String, String) { unimplemented!() }
/// # fn run() -> Result<(), groupcache::Error> {
/// use groupcache::security::PeerTls;
///
/// // The files a kubernetes secret of type kubernetes.io/tls plus a CA would mount:
/// let tls = PeerTls::from_files("/etc/groupcache/ca.crt", "/etc/groupcache/tls.crt", "/etc/groupcache/tls.key")?
///     // Every peer's certificate names this service, whatever the pod's IP.
///     .domain_name("groupcache.default.svc")?
///     // And every peer must present one signed by the same CA.
///     .require_client_certificate();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PeerTls {
    ca: Certificate,
    /// What this peer's service presents; required to serve TLS.
    identity: Option<Identity>,
    /// What this peer presents when it connects, if not `identity`.
    client_identity: Option<Identity>,
    domain_name: Option<String>,
    require_client_certificate: bool,
}

impl PeerTls {
    /// TLS trusting `ca`, PEM text with the certificates trusted to sign peers' certificates
    /// (one or more). A peer needs its own certificate too, from [`identity`](Self::identity),
    /// to serve TLS; without one it can only connect to peers that do not require client
    /// certificates. Checked now.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) saying what does not parse.
    pub fn new(ca: impl AsRef<[u8]>) -> Result<Self, Error> {
        ensure_crypto_provider();
        let ca = ca.as_ref();
        let certificates = CertificateDer::pem_slice_iter(ca)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("the peer TLS CA bundle is not valid PEM: {e}"),
                )
                .with_source(e.into())
            })?;
        if certificates.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                "the peer TLS CA bundle holds no certificate; expected PEM with at least one \
                 -----BEGIN CERTIFICATE----- block",
            ));
        }
        let tls = PeerTls {
            ca: Certificate::from_pem(ca),
            identity: None,
            client_identity: None,
            domain_name: None,
            require_client_certificate: false,
        };
        tls.check()?;
        Ok(tls)
    }

    /// This peer's certificate (`cert`, PEM, the chain up to but not including the CA) and
    /// private key (`key`, PEM: PKCS#8, PKCS#1 or SEC1). Its service presents it, and so does
    /// this peer when it connects to others, unless [`client_identity`](Self::client_identity)
    /// gives another.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if the certificate or the key does not
    /// parse, or they do not belong together.
    pub fn identity(
        mut self,
        cert: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Result<Self, Error> {
        self.identity = Some(Identity::from_pem(cert, key));
        self.check()?;
        Ok(self)
    }

    /// [`new`](Self::new) and [`identity`](Self::identity) in one call.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new) and [`identity`](Self::identity).
    pub fn from_pem(
        ca: impl AsRef<[u8]>,
        cert: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Result<Self, Error> {
        PeerTls::new(ca)?.identity(cert, key)
    }

    /// TLS from PEM files, for example a mounted kubernetes secret.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) naming the file that could not be read,
    /// or as [`from_pem`](Self::from_pem).
    pub fn from_files(
        ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        PeerTls::from_pem(
            read(ca.as_ref())?,
            read(cert.as_ref())?,
            read(key.as_ref())?,
        )
    }

    /// The name every peer's certificate must carry, instead of the peer's IP address. Useful
    /// when peers share one certificate for a service name (pod IPs change; names do not).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) if `name` is not a valid DNS name or IP
    /// address.
    pub fn domain_name(mut self, name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        if rustls_pki_types::ServerName::try_from(name.as_str()).is_err() {
            return Err(Error::new(
                ErrorKind::Config,
                format!("the peer TLS domain name {name:?} is not a valid DNS name or IP address"),
            ));
        }
        self.domain_name = Some(name);
        Ok(self)
    }

    /// Mutual TLS: this peer's service refuses connections that do not present a certificate
    /// signed by the CA bundle. Default: off (any client may connect, as with plain TLS; combine
    /// with a [`PeerToken`](crate::security::PeerToken) or turn this on).
    #[must_use]
    pub fn require_client_certificate(mut self) -> Self {
        self.require_client_certificate = true;
        self
    }

    /// A certificate this peer presents when it connects to others, if it should differ from
    /// the one its service presents. Default: the [`identity`](Self::identity) both ways (it
    /// then needs to be valid for client authentication too, which certificates without an
    /// extended key usage extension are).
    ///
    /// # Errors
    ///
    /// As [`identity`](Self::identity).
    pub fn client_identity(
        mut self,
        cert: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Result<Self, Error> {
        self.client_identity = Some(Identity::from_pem(cert, key));
        self.check()?;
        Ok(self)
    }

    /// The client side: what this peer checks when it connects to another.
    pub(crate) fn client_config(&self, handshake_timeout: Duration) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .timeout(handshake_timeout)
            .assume_http2(true);
        if let Some(identity) = self.client_identity.as_ref().or(self.identity.as_ref()) {
            config = config.identity(identity.clone());
        }
        if let Some(name) = &self.domain_name {
            config = config.domain_name(name.clone());
        }
        config
    }

    /// The server side: what this peer's service presents and requires. `None` without an
    /// identity: such a peer cannot serve TLS.
    pub(crate) fn server_config(&self) -> Option<ServerTlsConfig> {
        let mut config = ServerTlsConfig::new()
            .identity(self.identity.clone()?)
            .timeout(TLS_HANDSHAKE_TIMEOUT);
        if self.require_client_certificate {
            config = config
                .client_ca_root(self.ca.clone())
                .client_auth_optional(false);
        }
        Some(config)
    }

    /// Builds both sides once, so that bad PEM is reported where it is configured rather than
    /// on the first connection.
    fn check(&self) -> Result<(), Error> {
        let invalid = |side: &str, e: tonic::transport::Error| {
            let source = std::error::Error::source(&e).map(ToString::to_string);
            Error::new(
                ErrorKind::Config,
                format!(
                    "invalid peer TLS settings for the {side} side: {e}{}; check that the CA \
                     bundle, certificate and key are PEM",
                    source.map(|s| format!(" ({s})")).unwrap_or_default()
                ),
            )
            .with_source(e.into())
        };
        Endpoint::from_static("https://groupcache.invalid")
            .tls_config(self.client_config(TLS_HANDSHAKE_TIMEOUT))
            .map_err(|e| invalid("client", e))?;
        if let Some(server) = self.server_config() {
            Server::builder()
                .tls_config(server)
                .map_err(|e| invalid("server", e))?;
        }
        Ok(())
    }
}

/// Makes ring rustls's process-wide provider unless one is installed. rustls cannot choose by
/// itself when another dependency also enables aws-lc-rs, and building a server configuration
/// would then panic.
pub(crate) fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may win the race: its provider is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!("cannot read the TLS file {}: {e}", path.display()),
        )
        .with_source(e.into())
    })
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("PeerTls")
            .field("domain_name", &self.domain_name)
            .field(
                "require_client_certificate",
                &self.require_client_certificate,
            )
            .field("identity", &self.identity.is_some())
            .field("separate_client_identity", &self.client_identity.is_some())
            .finish_non_exhaustive()
    }
}
