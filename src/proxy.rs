//! Which proxy a request goes through: `--proxy`, `--no-proxy`, or the
//! environment the way curl and wget read it.
//!
//! `http_proxy` serves `http://` URLs and `https_proxy` serves `https://` ones
//! (each also in upper case; lower case wins), `all_proxy` is the fallback for
//! both, and `no_proxy` lists hosts that are reached directly: `*` for all, or
//! comma-separated names where `example.com` (or `.example.com`) also covers
//! its subdomains. A port in an entry is ignored; CIDR ranges are not supported.
//!
//! A proxy URL is `http://` or `https://` (an HTTP proxy; no scheme means
//! `http://`), `socks5://` (fetchq resolves the host), `socks5h://` (the
//! proxy resolves it, so no DNS query leaves this machine), `socks4://` or
//! `socks4a://`. Any other scheme stops the run before any connection is
//! made: a proxy the user asked for is never silently skipped.
//! How each kind of proxy is spoken to is in [`crate::transport`].

use ureq::Proxy;
use url::Url;

use crate::config::ProxyChoice;
use crate::error::ProxyError;

/// The proxy schemes fetchq speaks.
const SCHEMES: [&str; 6] = ["http", "https", "socks4", "socks4a", "socks5", "socks5h"];

/// The proxies of one run, chosen per request by the target URL.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProxyTable {
    http: Option<Proxy>,
    https: Option<Proxy>,
    no_proxy: Vec<String>,
}

impl ProxyTable {
    /// Build the table for a choice, reading variables through `env`.
    pub(crate) fn new(
        choice: &ProxyChoice,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ProxyTable, ProxyError> {
        match choice {
            ProxyChoice::Off => Ok(ProxyTable::default()),
            ProxyChoice::Url(url) => {
                let proxy = parse("--proxy", url)?;
                Ok(ProxyTable {
                    http: Some(proxy.clone()),
                    https: Some(proxy),
                    no_proxy: Vec::new(),
                })
            }
            ProxyChoice::FromEnv => {
                // The value and the name it was found under.
                let var = |name: &str| {
                    let upper = name.to_ascii_uppercase();
                    env(name)
                        .map(|v| (name.to_string(), v))
                        .or_else(|| env(&upper).map(|v| (upper, v)))
                        .filter(|(_, v)| !v.trim().is_empty())
                };
                let use_var = |(name, value): (String, String)| parse(&name, &value);
                let all = var("all_proxy");
                let http = var("http_proxy")
                    .or_else(|| all.clone())
                    .map(use_var)
                    .transpose()?;
                let https = var("https_proxy").or(all).map(use_var).transpose()?;
                let no_proxy = var("no_proxy")
                    .map(|(_, list)| {
                        list.split(',')
                            .map(|entry| entry.trim().trim_start_matches('.').to_ascii_lowercase())
                            .map(|entry| strip_port(&entry).to_string())
                            .filter(|entry| !entry.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(ProxyTable {
                    http,
                    https,
                    no_proxy,
                })
            }
        }
    }

    /// The proxy for a request to `url`, if any.
    pub(crate) fn for_url(&self, url: &Url) -> Option<Proxy> {
        let proxy = match url.scheme() {
            "https" => self.https.as_ref(),
            _ => self.http.as_ref(),
        }?;
        let host = url
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let bypass = self.no_proxy.iter().any(|entry| {
            entry == "*"
                || host == *entry
                || (host.len() > entry.len() && host.ends_with(entry.as_str()) && {
                    let cut = host.len() - entry.len() - 1;
                    host.as_bytes()[cut] == b'.'
                })
        });
        (!bypass).then(|| proxy.clone())
    }
}

fn strip_port(entry: &str) -> &str {
    // `[::1]:8080` or `host:8080`; a bare IPv6 address has several colons.
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => entry,
    }
}

/// A proxy URL from `from` (`--proxy` or a variable's name), checked for a
/// scheme fetchq speaks.
fn parse(from: &str, value: &str) -> Result<Proxy, ProxyError> {
    let value = value.trim();
    let scheme = value.split_once("://").map(|(scheme, _)| scheme);
    if let Some(scheme) = scheme {
        let well_formed = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !well_formed {
            return Err(ProxyError::Url { from: from.into() });
        }
        if !SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
            return Err(ProxyError::Scheme {
                from: from.into(),
                scheme: crate::display::text(scheme).into_owned(),
            });
        }
    }
    // No scheme means an HTTP proxy, as for curl and wget.
    Proxy::new(value).map_err(|_| ProxyError::Url { from: from.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(vars: &[(&str, &str)]) -> ProxyTable {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ProxyTable::new(&ProxyChoice::FromEnv, |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .unwrap()
    }

    fn via(t: &ProxyTable, url: &str) -> Option<String> {
        t.for_url(&Url::parse(url).unwrap())
            .map(|p| format!("{}:{}", p.host(), p.port()))
    }

    #[test]
    fn scheme_picks_the_variable() {
        let t = table(&[("http_proxy", "http://hp:1"), ("HTTPS_PROXY", "http://sp:2")]);
        assert_eq!(via(&t, "http://a/x").as_deref(), Some("hp:1"));
        assert_eq!(via(&t, "https://a/x").as_deref(), Some("sp:2"));
        let t = table(&[("all_proxy", "http://ap:3")]);
        assert_eq!(via(&t, "https://a/x").as_deref(), Some("ap:3"));
        let none = table(&[]);
        assert_eq!(via(&none, "http://a/x"), None);
        assert_eq!(via(&none, "https://a/x"), None);
    }

    #[test]
    fn lower_case_wins() {
        let t = table(&[("http_proxy", "http://low:1"), ("HTTP_PROXY", "http://up:2")]);
        assert_eq!(via(&t, "http://a/x").as_deref(), Some("low:1"));
    }

    #[test]
    fn no_proxy_matches_hosts_and_subdomains() {
        let t = table(&[
            ("http_proxy", "http://p:1"),
            ("no_proxy", "example.com, .internal,127.0.0.1:8080"),
        ]);
        assert_eq!(via(&t, "http://example.com/"), None);
        assert_eq!(via(&t, "http://a.example.com/"), None);
        assert_eq!(via(&t, "http://badexample.com/").as_deref(), Some("p:1"));
        assert_eq!(via(&t, "http://x.internal/"), None);
        assert_eq!(via(&t, "http://127.0.0.1:9/"), None);
        let all = table(&[("http_proxy", "http://p:1"), ("NO_PROXY", "*")]);
        assert_eq!(via(&all, "http://anything/"), None);
    }

    #[test]
    fn explicit_choices() {
        let t = ProxyTable::new(&ProxyChoice::Url("http://px:9".into()), |_| None).unwrap();
        assert_eq!(via(&t, "https://a/").as_deref(), Some("px:9"));
        let t = ProxyTable::new(&ProxyChoice::Off, |_| Some("http://p:1".into())).unwrap();
        assert_eq!(via(&t, "http://a/x"), None);
        assert_eq!(via(&t, "https://a/x"), None);
        assert!(ProxyTable::new(&ProxyChoice::Url("::bad".into()), |_| None).is_err());
    }

    #[test]
    fn schemes_fetchq_does_not_speak_are_errors_naming_their_source() {
        let flag = |url: &str| ProxyTable::new(&ProxyChoice::Url(url.into()), |_| None).map(|_| ());
        for ok in [
            "http://p:1",
            "HTTP://p:1",
            "https://p:1",
            "socks5://u:pw@p:1",
            "socks5h://p",
            "socks4://p:1",
            "socks4a://p:1",
            "p:3128",
            "u:pw@p:3128",
        ] {
            assert_eq!(flag(ok), Ok(()), "{ok}");
        }
        let scheme = |from: &str, scheme: &str| {
            Err(ProxyError::Scheme {
                from: from.into(),
                scheme: scheme.into(),
            })
        };
        assert_eq!(flag("socks://p:1"), scheme("--proxy", "socks"));
        assert_eq!(flag("ftp://u:secret@p:1"), scheme("--proxy", "ftp"));
        let from_env = |vars: &[(&str, &str)]| {
            ProxyTable::new(&ProxyChoice::FromEnv, |name| {
                vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
            })
            .map(|_| ())
        };
        assert_eq!(
            from_env(&[("all_proxy", "quic://p:1")]),
            scheme("all_proxy", "quic")
        );
        assert_eq!(
            from_env(&[("HTTPS_PROXY", "gopher://p")]),
            scheme("HTTPS_PROXY", "gopher")
        );
        // all_proxy is unused (and unchecked) when both others are set.
        assert_eq!(
            from_env(&[
                ("http_proxy", "http://p"),
                ("https_proxy", "http://p"),
                ("all_proxy", "x://p")
            ]),
            Ok(())
        );
        let message = flag("ftp://user:secret@p:1").unwrap_err().to_string();
        assert!(
            message.starts_with("--proxy: unsupported proxy scheme \"ftp\""),
            "{message}"
        );
        let message = ProxyTable::new(&ProxyChoice::Url("http://user:secret@[bad".into()), |_| None)
            .unwrap_err()
            .to_string();
        assert!(!message.contains("secret"), "{message}");
    }
}
