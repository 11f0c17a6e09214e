//! Which proxy a request goes through: `--proxy`, `--no-proxy`, or the
//! environment the way curl and wget read it.
//!
//! `http_proxy` serves `http://` URLs and `https_proxy` serves `https://` ones
//! (each also in upper case; lower case wins), `all_proxy` is the fallback for
//! both, and `no_proxy` lists hosts that are reached directly: `*` for all, or
//! comma-separated names where `example.com` (or `.example.com`) also covers
//! its subdomains. A port in an entry is ignored; CIDR ranges are not supported.

use ureq::Proxy;
use url::Url;

use crate::config::ProxyChoice;

/// The proxies of one run, chosen per request by the target URL.
#[derive(Debug, Clone, Default)]
pub struct ProxyTable {
    http: Option<Proxy>,
    https: Option<Proxy>,
    no_proxy: Vec<String>,
}

impl ProxyTable {
    /// Build the table for a choice, reading variables through `env`.
    pub fn new(choice: &ProxyChoice, env: impl Fn(&str) -> Option<String>) -> Result<ProxyTable, String> {
        let parse = |value: String| {
            Proxy::new(&value).map_err(|e| format!("unusable proxy {:?}: {e}", redact(&value)))
        };
        match choice {
            ProxyChoice::Off => Ok(ProxyTable::default()),
            ProxyChoice::Url(url) => {
                let proxy = parse(url.clone())?;
                Ok(ProxyTable {
                    http: Some(proxy.clone()),
                    https: Some(proxy),
                    no_proxy: Vec::new(),
                })
            }
            ProxyChoice::FromEnv => {
                let var = |name: &str| {
                    env(name)
                        .or_else(|| env(&name.to_ascii_uppercase()))
                        .filter(|v| !v.trim().is_empty())
                };
                let all = var("all_proxy");
                let http = var("http_proxy").or_else(|| all.clone()).map(parse).transpose()?;
                let https = var("https_proxy").or(all).map(parse).transpose()?;
                let no_proxy = var("no_proxy")
                    .map(|list| {
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

    /// Whether no request will use a proxy (lets the hot path skip the lookup).
    pub fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy for a request to `url`, if any.
    pub fn for_url(&self, url: &Url) -> Option<Proxy> {
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

/// A proxy URL for messages, without its credentials.
fn redact(value: &str) -> String {
    crate::display::line(value)
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
        assert!(table(&[]).is_empty());
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
        assert!(t.is_empty());
        assert!(ProxyTable::new(&ProxyChoice::Url("::bad".into()), |_| None).is_err());
    }
}
