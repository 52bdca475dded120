//! Who may talk to this node's peer service: the shared peer token (`--peer-token-env`) and
//! TLS (`--tls-*`), checked and read before anything is served.

use std::path::PathBuf;

use groupcache::GroupcacheBuilder;
use groupcache::security::{PeerTls, PeerToken};

/// The security flags, as given.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct SecurityArgs {
    /// Require a shared peer token on every peer request, and send it: read from the
    /// environment variable NAME (for example filled from a secret; generate one with
    /// `openssl rand -hex 32`). Every peer must be given the same token.
    #[arg(long, value_name = "NAME")]
    pub(crate) peer_token_env: Option<String>,

    /// Also accept the token in the environment variable NAME, without sending it: while
    /// rotating tokens, peers still sending the old one are served.
    #[arg(long, value_name = "NAME", requires = "peer_token_env")]
    pub(crate) accept_peer_token_env: Option<String>,

    /// TLS for the whole port (peers and HTTP): the PEM file of the CA that signs every
    /// peer's certificate. Needs --tls-cert and --tls-key.
    #[arg(long, value_name = "PATH")]
    pub(crate) tls_ca: Option<PathBuf>,

    /// This node's certificate (PEM), signed by --tls-ca, naming its advertised IP address
    /// (or --tls-domain).
    #[arg(long, value_name = "PATH")]
    pub(crate) tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "PATH")]
    pub(crate) tls_key: Option<PathBuf>,

    /// Mutual TLS: refuse connections (peers and HTTP) without a certificate signed by
    /// --tls-ca.
    #[arg(long)]
    pub(crate) tls_require_client_cert: bool,

    /// The name every peer's certificate carries, instead of each peer's IP address.
    #[arg(long, value_name = "NAME")]
    pub(crate) tls_domain: Option<String>,
}

/// What the flags turned on, for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Security {
    pub(crate) peer_token: bool,
    pub(crate) tls: bool,
    pub(crate) mutual_tls: bool,
}

impl SecurityArgs {
    /// Reads the tokens and the TLS files and sets them on `builder`. The error names the
    /// flag, the variable or the file at fault, never a token.
    pub(crate) fn apply(
        &self,
        mut builder: GroupcacheBuilder,
    ) -> Result<(GroupcacheBuilder, Security), String> {
        if let Some(name) = &self.peer_token_env {
            let token = PeerToken::from_env(name)
                .map_err(|e| format!("--peer-token-env: {}", e.detail()))?;
            builder = builder.peer_token(token);
        }
        if let Some(name) = &self.accept_peer_token_env {
            let token = PeerToken::from_env(name)
                .map_err(|e| format!("--accept-peer-token-env: {}", e.detail()))?;
            builder = builder.accept_peer_token(token);
        }
        let tls = self.tls()?;
        let security = Security {
            peer_token: self.peer_token_env.is_some(),
            tls: tls.is_some(),
            mutual_tls: tls.is_some() && self.tls_require_client_cert,
        };
        if let Some(tls) = tls {
            builder = builder.tls(tls);
        }
        Ok((builder, security))
    }

    /// The TLS settings, if any `--tls-*` flag is given: all three files or none.
    fn tls(&self) -> Result<Option<PeerTls>, String> {
        let (ca, cert, key) = match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (None, None, None) => {
                if self.tls_require_client_cert {
                    return Err(
                        "--tls-require-client-cert given without --tls-ca, --tls-cert and \
                         --tls-key"
                            .into(),
                    );
                }
                if self.tls_domain.is_some() {
                    return Err(
                        "--tls-domain given without --tls-ca, --tls-cert and --tls-key".into(),
                    );
                }
                return Ok(None);
            }
            (Some(ca), Some(cert), Some(key)) => (ca, cert, key),
            (ca, cert, key) => {
                let given = [("--tls-ca", ca), ("--tls-cert", cert), ("--tls-key", key)];
                let present: Vec<&str> = given
                    .iter()
                    .filter(|(_, v)| v.is_some())
                    .map(|(n, _)| *n)
                    .collect();
                let missing: Vec<&str> = given
                    .iter()
                    .filter(|(_, v)| v.is_none())
                    .map(|(n, _)| *n)
                    .collect();
                return Err(format!(
                    "{} given without {}: TLS needs the CA, this node's certificate and its key",
                    present.join(" and "),
                    missing.join(" and ")
                ));
            }
        };
        let mut tls = PeerTls::from_files(ca, cert, key).map_err(|e| e.detail().to_owned())?;
        if let Some(name) = &self.tls_domain {
            tls = tls
                .domain_name(name.as_str())
                .map_err(|e| format!("--tls-domain: {}", e.detail()))?;
        }
        if self.tls_require_client_cert {
            tls = tls.require_client_certificate();
        }
        Ok(Some(tls))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::SecurityArgs;

    fn tls_error(args: SecurityArgs) -> String {
        args.tls().expect_err("refused")
    }

    #[test]
    fn tls_needs_all_three_files() {
        let path = || Some(PathBuf::from("x.pem"));
        assert_eq!(
            tls_error(SecurityArgs {
                tls_cert: path(),
                ..Default::default()
            }),
            "--tls-cert given without --tls-ca and --tls-key: TLS needs the CA, this node's \
             certificate and its key"
        );
        assert!(
            tls_error(SecurityArgs {
                tls_ca: path(),
                tls_cert: path(),
                ..Default::default()
            })
            .starts_with("--tls-ca and --tls-cert given without --tls-key:")
        );
        assert!(
            tls_error(SecurityArgs {
                tls_require_client_cert: true,
                ..Default::default()
            })
            .starts_with("--tls-require-client-cert given without")
        );
        assert!(
            tls_error(SecurityArgs {
                tls_domain: Some("groupcache".into()),
                ..Default::default()
            })
            .starts_with("--tls-domain given without")
        );
        assert!(SecurityArgs::default().tls().unwrap().is_none());
    }

    #[test]
    fn a_missing_tls_file_is_named() {
        let err = tls_error(SecurityArgs {
            tls_ca: Some("/nonexistent/ca.pem".into()),
            tls_cert: Some("/nonexistent/node.pem".into()),
            tls_key: Some("/nonexistent/node.key".into()),
            ..Default::default()
        });
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
