//! The one ureq [`Agent`] a run shares across its workers, built from [`Config`].
//!
//! Sharing one agent shares one connection pool, so keep-alive connections are
//! reused across entries. ureq keeps 3 idle connections per host by default;
//! with `-j 8` against one host five workers would reconnect for every file,
//! so the pool is sized to the job count.

use std::sync::Arc;

use ureq::Agent;
use ureq::config::Config as UreqConfig;
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, RustlsConnector, TcpConnector};

use crate::cancel::Cancel;
use crate::config::{Config, ProxyChoice};
use crate::transport::WatchConnector;

/// Build the shared agent. Redirects are followed by [`crate::fetch`] itself,
/// so it can drop credentials across origins, refuse odd schemes and name the loop.
pub fn agent(
    config: &Config,
    cancel: &Cancel,
    roots: Option<Arc<Vec<ureq::tls::Certificate<'static>>>>,
) -> Agent {
    let root_certs = match roots {
        Some(certs) => RootCerts::Specific(certs),
        None => RootCerts::PlatformVerifier,
    };
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(root_certs)
        .disable_verification(config.insecure)
        .build();
    let proxy = match &config.proxy {
        ProxyChoice::FromEnv => ureq::Proxy::try_from_env(),
        ProxyChoice::Url(url) => ureq::Proxy::new(url).ok(),
        ProxyChoice::Off => None,
    };
    let ureq_config: UreqConfig = Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(config.user_agent.as_str())
        .tls_config(tls)
        .proxy(proxy)
        .timeout_connect(config.connect_timeout)
        .max_idle_connections(config.jobs.max(16))
        .max_idle_connections_per_host(config.jobs)
        .build();
    // The default chain minus SOCKS, with the idle/cancel watch between TCP and TLS.
    let connector =
        ().chain(ConnectProxyConnector::default())
            .chain(TcpConnector::default())
            .chain(WatchConnector::new(config.idle_timeout, cancel.clone()))
            .chain(RustlsConnector::default());
    Agent::with_parts(ureq_config, connector, DefaultResolver::default())
}
