//! The one ureq [`Agent`] a run shares across its workers, built from [`Config`].
//!
//! Sharing one agent shares one connection pool, so keep-alive connections are
//! reused across entries. ureq keeps 3 idle connections per host by default;
//! with `-j 8` against one host five workers would reconnect for every file,
//! so the pool is sized to the job count.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use ureq::Agent;
use ureq::config::{Config as UreqConfig, IpFamily as UreqFamily};
use ureq::http::Uri;
use ureq::tls::{PemItem, parse_pem};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector};

use crate::cancel::Cancel;
use crate::config::{Config, IpFamily, Pin};
use crate::error::RunError;
use crate::tls::{TlsConnector, Trust};
use crate::transport::{ProxyConnector, SocketConnector};

/// Build the shared agent. Redirects are followed by [`crate::fetch`] itself,
/// so it can drop credentials across origins, refuse odd schemes and name the loop.
///
/// Certificates are checked against the platform's store (so corporate CAs
/// installed on the machine work) via rustls-platform-verifier; `--cacert`
/// adds certificates on top of the system store and the built-in Mozilla roots.
pub(crate) fn agent(config: &Config, cancel: &Cancel) -> Result<Agent, RunError> {
    let trust = if config.insecure {
        Trust::Anything
    } else {
        match &config.cacert {
            Some(path) => Trust::UserFirst(user_certs(path)?),
            None => Trust::Platform,
        }
    };
    let identity = match &config.cert {
        Some(cert) => Some(client_identity(cert, config.key.as_deref())?),
        None => None,
    };
    let ureq_config: UreqConfig = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(config.user_agent.as_str())
        // Proxies are chosen per request from the URL's scheme (see crate::proxy).
        .proxy(None)
        .timeout_connect(config.connect_timeout)
        .ip_family(match config.ip_family {
            IpFamily::Any => UreqFamily::Any,
            IpFamily::V4 => UreqFamily::Ipv4Only,
            IpFamily::V6 => UreqFamily::Ipv6Only,
        })
        .max_idle_connections(config.jobs.max(16))
        .max_idle_connections_per_host(config.jobs)
        // Reads from the socket fill this buffer; match the worker's chunk.
        .input_buffer_size(crate::transport::CHUNK)
        .build();
    // fetchq's proxy connections (SOCKS, absolute-form http://), then ureq's
    // CONNECT for https:// through an HTTP proxy, then fetchq's socket in place
    // of ureq's (idle timeout, cancellation, a one-syscall liveness probe).
    let connector =
        ().chain(ProxyConnector::new(&ureq_config))
            .chain(ConnectProxyConnector::default())
            .chain(SocketConnector::new(config.idle_timeout, cancel.clone()))
            .chain(TlsConnector::new(trust, identity));
    Ok(Agent::with_parts(
        ureq_config,
        connector,
        Pinned {
            pins: config.resolve.clone(),
            dns: DefaultResolver::default(),
        },
    ))
}

/// ureq's resolver, except for the host and port pairs `--resolve` names:
/// those connect to the given address and keep their name in the URL, so TLS
/// verifies it and `Host` carries it. It resolves every name the agent
/// connects to: the origin of a direct connection, a proxy's own host, and the
/// target a socks5:// or socks4:// proxy is given as an address (as curl's `--resolve`
/// does); an HTTP proxy or socks5h:// gets the origin by name.
#[derive(Debug)]
struct Pinned {
    pins: Vec<Pin>,
    dns: DefaultResolver,
}

impl Resolver for Pinned {
    fn resolve(
        &self,
        uri: &Uri,
        config: &UreqConfig,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let pinned = uri.authority().and_then(|authority| {
            let port = authority.port_u16().or_else(|| match uri.scheme_str() {
                Some("https") => Some(443),
                Some("http") => Some(80),
                _ => None,
            })?;
            let host = authority.host().to_ascii_lowercase();
            Some(
                self.pins
                    .iter()
                    .filter(|pin| pin.port == port && pin.host == host)
                    .map(|pin| SocketAddr::new(pin.addr, port))
                    .collect::<Vec<_>>(),
            )
        });
        match pinned {
            Some(addrs) if !addrs.is_empty() => {
                let mut out = self.empty();
                let family = config.ip_family();
                let mut any = false;
                for addr in family.keep_wanted(addrs.into_iter()) {
                    if out.try_push(addr).is_err() {
                        break;
                    }
                    any = true;
                }
                if !any {
                    return Err(ureq::Error::HostNotFound);
                }
                Ok(out)
            }
            _ => self.dns.resolve(uri, config, timeout),
        }
    }
}

/// The certificates in `path` (the system store and the built-in roots are
/// added by [`crate::tls`] when these do not verify a server).
fn user_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, RunError> {
    let fail = |reason: String| RunError::CaCert {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let mut certs = Vec::new();
    for item in parse_pem(&pem) {
        if let PemItem::Certificate(cert) = item.map_err(|e| fail(e.to_string()))? {
            certs.push(CertificateDer::from(cert.der().to_vec()));
        }
    }
    if certs.is_empty() {
        return Err(fail("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// `--cert` and `--key`: the certificate chain in `cert` and the private key
/// in `key`, or in `cert` when there is no `key` (as curl does). Loaded and
/// checked against each other before the run starts, so a wrong file is a
/// usage error rather than a failed handshake per entry.
fn client_identity(cert: &Path, key: Option<&Path>) -> Result<Arc<CertifiedKey>, RunError> {
    let fail = |what: &'static str, path: &Path, reason: String| RunError::ClientCert {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let cert_pem = std::fs::read(cert).map_err(|e| fail("certificate", cert, e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail("certificate", cert, pem_reason(&e)))?;
    if chain.is_empty() {
        return Err(fail("certificate", cert, "no PEM certificate in the file".into()));
    }
    let (key_path, key_pem) = match key {
        Some(path) => (
            path,
            std::fs::read(path).map_err(|e| fail("key", path, e.to_string()))?,
        ),
        None => (cert, cert_pem),
    };
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound if key.is_none() => fail(
            "key",
            key_path,
            "no PEM private key in the file (give it with --key)".into(),
        ),
        pem::Error::NoItemsFound => fail(
            "key",
            key_path,
            "no PEM private key (PKCS#8, RSA or EC) in the file".into(),
        ),
        e => fail("key", key_path, pem_reason(&e)),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let identity = CertifiedKey::from_der(chain, private, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => fail(
            "key",
            key_path,
            format!("it does not match the certificate in {}", cert.display()),
        ),
        e => fail("key", key_path, e.to_string()),
    })?;
    Ok(Arc::new(identity))
}

/// Why a PEM file did not parse, without echoing any of its contents.
fn pem_reason(error: &pem::Error) -> String {
    match error {
        pem::Error::Io(e) => e.to_string(),
        pem::Error::NoItemsFound => "nothing PEM-encoded in the file".into(),
        _ => "the file is not valid PEM".into(),
    }
}
