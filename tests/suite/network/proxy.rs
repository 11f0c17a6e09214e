//! Proxies: SOCKS5/SOCKS4a on fetchq's own socket, http:// through an HTTP
//! proxy in absolute form (not CONNECT), https:// through CONNECT, the exit-2
//! rule for proxy schemes fetchq does not speak, and a real squid with its
//! stock access rules.
//!
//! The SOCKS server and the HTTP proxy here are minimal and in-process: they
//! record what fetchq asked for and relay bytes to the target. Host names in
//! the `.invalid` top-level domain (RFC 2606) never resolve, so a download of
//! `http://origin.invalid:PORT/` that works proves the proxy, not this machine,
//! resolved the name. squid is the Debian package (`/usr/sbin/squid`), started
//! per test on a loopback port; without it the squid test fails, never skips.

use crate::support;

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{Route, Run, TestServer, assert_code, assert_out_file, ctx, fetch_in_with_env, write_list};

/// How long a test proxy waits on a silent peer before giving up on it.
const PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// A host name that never resolves (RFC 2606): only a proxy that maps it can reach it.
const UNRESOLVABLE: &str = "origin.invalid";

/// `base64("user:pass")`, the Basic credentials of `user:pass@`.
const USER_PASS_BASIC: &str = "Basic dXNlcjpwYXNz";

// ---------------------------------------------------------------------------
// A relay shared by the test proxies
// ---------------------------------------------------------------------------

/// Open sockets and counters of one test proxy; shutting them all down on
/// drop unblocks every relay thread at once.
#[derive(Default)]
struct Wires {
    stop: AtomicBool,
    streams: Mutex<Vec<TcpStream>>,
    /// Tunnels opened to a target.
    relayed: AtomicUsize,
}

impl Wires {
    fn keep(&self, stream: &TcpStream) {
        if let Ok(clone) = stream.try_clone() {
            self.streams.lock().unwrap().push(clone);
        }
    }

    fn close_all(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.streams.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Accept connections on `listener` and run `handle` on each in its own thread.
fn serve(
    listener: TcpListener,
    wires: Arc<Wires>,
    handle: impl Fn(TcpStream, &Wires) + Send + Sync + 'static,
) {
    let handle = Arc::new(handle);
    thread::spawn(move || {
        for stream in listener.incoming() {
            if wires.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(PEER_TIMEOUT));
            let _ = stream.set_write_timeout(Some(PEER_TIMEOUT));
            wires.keep(&stream);
            let (wires, handle) = (wires.clone(), handle.clone());
            thread::spawn(move || handle(stream, &wires));
        }
    });
}

/// Connect to the target and copy bytes both ways until either side closes.
/// `first` is sent to the target before the client's bytes.
fn relay(client: TcpStream, to: SocketAddr, first: &[u8], wires: &Wires) -> io::Result<()> {
    let mut target = TcpStream::connect_timeout(&to, PEER_TIMEOUT)?;
    target.set_read_timeout(Some(PEER_TIMEOUT))?;
    wires.keep(&target);
    wires.relayed.fetch_add(1, Ordering::SeqCst);
    target.write_all(first)?;
    let (mut client_in, mut target_out) = (client.try_clone()?, target.try_clone()?);
    let upstream = thread::spawn(move || {
        let _ = io::copy(&mut client_in, &mut target_out);
        let _ = target_out.shutdown(Shutdown::Write);
    });
    let (mut target_in, mut client_out) = (target, client);
    let _ = io::copy(&mut target_in, &mut client_out);
    let _ = client_out.shutdown(Shutdown::Both);
    let _ = upstream.join();
    Ok(())
}

/// First address of `host:port`, resolved here (the proxy's side).
fn resolve(host: &str, port: u16, names: &HashMap<String, SocketAddr>) -> Option<SocketAddr> {
    if let Some(addr) = names.get(host) {
        return Some(*addr);
    }
    (host, port).to_socket_addrs().ok()?.find(SocketAddr::is_ipv4)
}

// ---------------------------------------------------------------------------
// SOCKS server
// ---------------------------------------------------------------------------

/// What a client asked the SOCKS server to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Asked {
    /// A host name (SOCKS5 ATYP 3, SOCKS4a).
    Name(String, u16),
    /// An address.
    Addr(SocketAddr),
}

/// One SOCKS handshake as the server saw it.
#[derive(Debug, Clone)]
struct Handshake {
    version: u8,
    /// The user name and password sent (RFC 1929), if any.
    credentials: Option<(String, String)>,
    asked: Option<Asked>,
}

/// A SOCKS5 (and SOCKS4/4a) server on 127.0.0.1 that relays CONNECTs.
struct SocksServer {
    addr: SocketAddr,
    wires: Arc<Wires>,
    log: Arc<Mutex<Vec<Handshake>>>,
}

/// How the SOCKS server behaves.
#[derive(Clone, Default)]
struct SocksRules {
    /// Require these credentials (method 2); without, accept method 0.
    require: Option<(String, String)>,
    /// Host names the server resolves itself, to these addresses.
    names: HashMap<String, SocketAddr>,
    /// Read the greeting, then say nothing until the client gives up.
    stall: bool,
}

impl SocksServer {
    fn start(rules: SocksRules) -> SocksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let wires = Arc::new(Wires::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler_log = log.clone();
        serve(listener, wires.clone(), move |stream, wires| {
            let _ = socks_session(stream, &rules, &handler_log, wires);
        });
        SocksServer { addr, wires, log }
    }

    fn url(&self, scheme: &str, userinfo: &str) -> String {
        format!("{scheme}://{userinfo}{}", self.addr)
    }

    fn handshakes(&self) -> Vec<Handshake> {
        self.log.lock().unwrap().clone()
    }

    fn relayed(&self) -> usize {
        self.wires.relayed.load(Ordering::SeqCst)
    }
}

impl Drop for SocksServer {
    fn drop(&mut self) {
        self.wires.close_all();
        let _ = TcpStream::connect(self.addr);
    }
}

fn read_bytes(stream: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

/// Bytes up to a NUL (SOCKS4 user id and host name), at most 255.
fn read_nul_terminated(stream: &mut TcpStream) -> io::Result<String> {
    let mut out = Vec::new();
    loop {
        let [b] = <[u8; 1]>::try_from(read_bytes(stream, 1)?).unwrap();
        if b == 0 || out.len() > 255 {
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        out.push(b);
    }
}

fn socks_session(
    mut s: TcpStream,
    rules: &SocksRules,
    log: &Mutex<Vec<Handshake>>,
    wires: &Wires,
) -> io::Result<()> {
    let version = read_bytes(&mut s, 1)?[0];
    let mut seen = Handshake {
        version,
        credentials: None,
        asked: None,
    };
    let record = |seen: &Handshake| log.lock().unwrap().push(seen.clone());
    if version == 4 {
        let head = read_bytes(&mut s, 7)?;
        let port = u16::from_be_bytes([head[1], head[2]]);
        let ip = [head[3], head[4], head[5], head[6]];
        let _user = read_nul_terminated(&mut s)?;
        let asked = if ip[..3] == [0, 0, 0] && ip[3] != 0 {
            Asked::Name(read_nul_terminated(&mut s)?, port)
        } else {
            Asked::Addr(SocketAddr::from((ip, port)))
        };
        seen.asked = Some(asked.clone());
        record(&seen);
        let to = match &asked {
            Asked::Name(name, port) => resolve(name, *port, &rules.names),
            Asked::Addr(addr) => Some(*addr),
        };
        let Some(to) = to else {
            return s.write_all(&[0, 91, 0, 0, 0, 0, 0, 0]);
        };
        s.write_all(&[0, 90, 0, 0, 0, 0, 0, 0])?;
        return relay(s, to, &[], wires);
    }
    let n = read_bytes(&mut s, 1)?[0];
    let methods = read_bytes(&mut s, n.into())?;
    if rules.stall {
        record(&seen);
        // Until the client hangs up, the read times out, or the server is dropped.
        io::copy(&mut s, &mut io::sink())?;
        return Ok(());
    }
    match &rules.require {
        Some((user, pass)) => {
            if !methods.contains(&2) {
                record(&seen);
                return s.write_all(&[5, 0xFF]);
            }
            s.write_all(&[5, 2])?;
            let _auth_version = read_bytes(&mut s, 1)?;
            let ulen = read_bytes(&mut s, 1)?[0];
            let got_user = String::from_utf8_lossy(&read_bytes(&mut s, ulen.into())?).into_owned();
            let plen = read_bytes(&mut s, 1)?[0];
            let got_pass = String::from_utf8_lossy(&read_bytes(&mut s, plen.into())?).into_owned();
            let ok = got_user == *user && got_pass == *pass;
            seen.credentials = Some((got_user, got_pass));
            if !ok {
                record(&seen);
                return s.write_all(&[1, 1]);
            }
            s.write_all(&[1, 0])?;
        }
        None => s.write_all(&[5, 0])?,
    }
    let head = read_bytes(&mut s, 4)?;
    let asked = match head[3] {
        1 => {
            let a = read_bytes(&mut s, 6)?;
            Asked::Addr(SocketAddr::from((
                [a[0], a[1], a[2], a[3]],
                u16::from_be_bytes([a[4], a[5]]),
            )))
        }
        3 => {
            let len = read_bytes(&mut s, 1)?[0];
            let name = String::from_utf8_lossy(&read_bytes(&mut s, len.into())?).into_owned();
            let p = read_bytes(&mut s, 2)?;
            Asked::Name(name, u16::from_be_bytes([p[0], p[1]]))
        }
        _ => {
            record(&seen);
            return s.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]);
        }
    };
    seen.asked = Some(asked.clone());
    record(&seen);
    let to = match &asked {
        Asked::Name(name, port) => resolve(name, *port, &rules.names),
        Asked::Addr(addr) => Some(*addr),
    };
    let Some(to) = to else {
        return s.write_all(&[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]);
    };
    // A domain-typed bound address, to exercise the variable-length reply.
    let mut reply = vec![5, 0, 0, 3, 9];
    reply.extend_from_slice(b"localhost");
    reply.extend_from_slice(&[0, 0]);
    s.write_all(&reply)?;
    relay(s, to, &[], wires)
}

// ---------------------------------------------------------------------------
// HTTP proxy
// ---------------------------------------------------------------------------

/// One request head as the HTTP proxy received it.
#[derive(Debug, Clone)]
struct ProxyRequest {
    /// The request line, e.g. `GET http://127.0.0.1:9/f.bin HTTP/1.1`.
    line: String,
    /// Headers, names lower-cased.
    headers: Vec<(String, String)>,
}

impl ProxyRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP proxy on 127.0.0.1: forwards absolute-form requests and opens
/// CONNECT tunnels, recording every request head; answers 407 without the
/// credentials it requires.
struct HttpProxy {
    addr: SocketAddr,
    wires: Arc<Wires>,
    log: Arc<Mutex<Vec<ProxyRequest>>>,
}

impl HttpProxy {
    fn start(require: Option<&'static str>) -> HttpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let wires = Arc::new(Wires::default());
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler_log = log.clone();
        serve(listener, wires.clone(), move |stream, wires| {
            let _ = proxy_session(stream, require, &handler_log, wires);
        });
        HttpProxy { addr, wires, log }
    }

    fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}{}", self.addr)
    }

    fn requests(&self) -> Vec<ProxyRequest> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        self.wires.close_all();
        let _ = TcpStream::connect(self.addr);
    }
}

fn proxy_session(
    client: TcpStream,
    require: Option<&str>,
    log: &Mutex<Vec<ProxyRequest>>,
    wires: &Wires,
) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim_end().is_empty() {
            break;
        }
        if let Some((n, v)) = h.trim_end().split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let request = ProxyRequest { line, headers };
    log.lock().unwrap().push(request.clone());
    let mut client = client;
    if let Some(want) = require
        && request.header("proxy-authorization") != Some(want)
    {
        return client.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    let mut parts = request.line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        let Ok(to) = target.parse::<SocketAddr>() else {
            return client.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        };
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        return relay(client, to, &[], wires);
    }
    // Absolute form: `http://host:port/path`. Anything else is refused, as
    // an origin-form request to a proxy has no target.
    let Some(rest) = target.strip_prefix("http://") else {
        return client
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(to) = authority.parse::<SocketAddr>() else {
        return client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    };
    // Forward in origin form, one request per connection, without the
    // proxy's own headers (as squid does).
    let mut head = format!(
        "{method} {} HTTP/1.1\r\n",
        if path.is_empty() { "/" } else { path }
    );
    for (n, v) in &request.headers {
        if !matches!(
            n.as_str(),
            "proxy-authorization" | "proxy-connection" | "connection"
        ) {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    relay(client, to, head.as_bytes(), wires)
}

// ---------------------------------------------------------------------------
// A listener that only checks a TLS ClientHello arrives
// ---------------------------------------------------------------------------

/// Accepts connections and records whether each began with a TLS handshake
/// record (content type 22, version 3.x), then closes it.
struct TlsProbe {
    addr: SocketAddr,
    wires: Arc<Wires>,
    hellos: Arc<AtomicUsize>,
}

impl TlsProbe {
    fn start() -> TlsProbe {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let wires = Arc::new(Wires::default());
        let hellos = Arc::new(AtomicUsize::new(0));
        let count = hellos.clone();
        serve(listener, wires.clone(), move |mut stream, _| {
            let mut head = [0; 3];
            if stream.read_exact(&mut head).is_ok() && head[0] == 22 && head[1] == 3 {
                count.fetch_add(1, Ordering::SeqCst);
            }
            let _ = stream.shutdown(Shutdown::Both);
        });
        TlsProbe { addr, wires, hellos }
    }

    fn hellos(&self) -> usize {
        self.hellos.load(Ordering::SeqCst)
    }
}

impl Drop for TlsProbe {
    fn drop(&mut self) {
        self.wires.close_all();
        let _ = TcpStream::connect(self.addr);
    }
}

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------

/// An origin with `f.bin` and a list holding `url`.
fn origin() -> TestServer {
    let origin = TestServer::start();
    origin.route("f.bin", Route::ok(b"through the proxy".to_vec()));
    origin
}

/// fetchq on a one-line list of `url` with `flags`, no retries, into `out`.
fn fetch_via(root: &Path, url: &str, flags: &[&str], env: &[(&str, &str)]) -> Run {
    write_list(root, "list.txt", format!("{url}\n"));
    let mut args = flags.to_vec();
    args.extend(["--retries", "0", "--retry-wait", "0.05", "-d", "out", "list.txt"]);
    fetch_in_with_env(root, &args, env)
}

/// `http://origin.invalid:PORT/f.bin`, which only a proxy mapping the name can reach.
fn unresolvable_url(origin: &TestServer) -> String {
    format!("http://{UNRESOLVABLE}:{}/f.bin", origin.addr().port())
}

fn names_for(origin: &TestServer) -> HashMap<String, SocketAddr> {
    HashMap::from([(UNRESOLVABLE.to_string(), origin.addr())])
}

/// The one request the origin received, and that it carried no proxy credentials.
fn assert_origin_served_once(run: &Run, root: &Path, origin: &TestServer) {
    let requests = origin.requests();
    assert_eq!(
        requests.len(),
        1,
        "origin requests {requests:?}\n{}",
        ctx(run, root)
    );
    assert_eq!(requests[0].path, "/f.bin", "{}", ctx(run, root));
    for name in ["proxy-authorization", "authorization"] {
        assert_eq!(
            requests[0].header(name),
            None,
            "{name} reached the origin\n{}",
            ctx(run, root)
        );
    }
}

// ---------------------------------------------------------------------------
// SOCKS
// ---------------------------------------------------------------------------

#[test]
fn socks5h_flag_sends_the_host_name_with_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let origin = origin();
    let socks = SocksServer::start(SocksRules {
        require: Some(("user".into(), "pass".into())),
        names: names_for(&origin),
        ..SocksRules::default()
    });
    let proxy = socks.url("socks5h", "user:pass@");
    let run = fetch_via(root, &unresolvable_url(&origin), &["--proxy", &proxy], &[]);
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "f.bin", b"through the proxy");
    let handshakes = socks.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}\n{}", ctx(&run, root));
    assert_eq!(handshakes[0].version, 5);
    assert_eq!(handshakes[0].credentials, Some(("user".into(), "pass".into())));
    assert_eq!(
        handshakes[0].asked,
        Some(Asked::Name(UNRESOLVABLE.into(), origin.addr().port())),
        "socks5h must hand the name to the proxy\n{}",
        ctx(&run, root)
    );
    assert_origin_served_once(&run, root, &origin);
    assert_eq!(
        origin.connections_opened(),
        socks.relayed(),
        "{}",
        ctx(&run, root)
    );
    assert_eq!(
        origin.requests()[0].header("host"),
        Some(format!("{UNRESOLVABLE}:{}", origin.addr().port()).as_str())
    );
}

#[test]
fn all_proxy_socks5_resolves_locally_and_sends_the_address() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let origin = origin();
    let socks = SocksServer::start(SocksRules::default());
    let url = format!("http://localhost:{}/f.bin", origin.addr().port());
    let run = fetch_via(root, &url, &[], &[("all_proxy", &socks.url("socks5", ""))]);
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "f.bin", b"through the proxy");
    let handshakes = socks.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}\n{}", ctx(&run, root));
    assert!(
        matches!(handshakes[0].asked, Some(Asked::Addr(a)) if a.ip().is_loopback() && a.port() == origin.addr().port()),
        "socks5 sends the address fetchq resolved: {handshakes:?}\n{}",
        ctx(&run, root)
    );
    assert_origin_served_once(&run, root, &origin);
    assert_eq!(
        origin.connections_opened(),
        socks.relayed(),
        "{}",
        ctx(&run, root)
    );
}

#[test]
fn socks4a_sends_the_host_name() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let origin = origin();
    let socks = SocksServer::start(SocksRules {
        names: names_for(&origin),
        ..SocksRules::default()
    });
    let env = [("HTTP_PROXY", socks.url("socks4a", ""))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = fetch_via(root, &unresolvable_url(&origin), &[], &env);
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "f.bin", b"through the proxy");
    let handshakes = socks.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}\n{}", ctx(&run, root));
    assert_eq!(handshakes[0].version, 4);
    assert_eq!(
        handshakes[0].asked,
        Some(Asked::Name(UNRESOLVABLE.into(), origin.addr().port()))
    );
    assert_origin_served_once(&run, root, &origin);
}

#[test]
fn socks5_wrong_credentials_fail_clearly_without_showing_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let origin = origin();
    let socks = SocksServer::start(SocksRules {
        require: Some(("user".into(), "pass".into())),
        names: names_for(&origin),
        ..SocksRules::default()
    });
    let proxy = socks.url("socks5h", "user:Wr0ngSecret@");
    let run = fetch_via(root, &unresolvable_url(&origin), &["--proxy", &proxy], &[]);
    assert_code(&run, root, 1);
    support::assert_stderr_has(&run, root, "SOCKS5 proxy refused the user name and password");
    assert!(
        !run.stderr.contains("Wr0ngSecret"),
        "password shown\n{}",
        ctx(&run, root)
    );
    assert_eq!(origin.requests().len(), 0, "{}", ctx(&run, root));

    // No credentials at all, to a proxy that wants them.
    let run = fetch_via(
        root,
        &unresolvable_url(&origin),
        &["--proxy", &socks.url("socks5h", "")],
        &[],
    );
    assert_code(&run, root, 1);
    support::assert_stderr_has(&run, root, "requires a user name and password");
}

#[test]
fn https_runs_tls_inside_the_socks_tunnel() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let probe = TlsProbe::start();
    let socks = SocksServer::start(SocksRules::default());
    let url = format!("https://{}/f.bin", probe.addr);
    let run = fetch_via(root, &url, &[], &[("https_proxy", &socks.url("socks5h", ""))]);
    let handshakes = socks.handshakes();
    assert_eq!(handshakes.len(), 1, "{handshakes:?}\n{}", ctx(&run, root));
    assert_eq!(handshakes[0].asked, Some(Asked::Addr(probe.addr)));
    assert_eq!(
        probe.hellos(),
        1,
        "a TLS ClientHello should arrive through the tunnel\n{}",
        ctx(&run, root)
    );
}

#[test]
fn idle_timeout_holds_during_a_stalled_socks_handshake() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let origin = origin();
    let socks = SocksServer::start(SocksRules {
        stall: true,
        ..SocksRules::default()
    });
    let started = Instant::now();
    let run = fetch_via(
        root,
        &origin.url("f.bin"),
        &["--proxy", &socks.url("socks5h", ""), "--timeout", "1"],
        &[],
    );
    assert_code(&run, root, 1);
    support::assert_stderr_has(&run, root, "no data received");
    assert!(started.elapsed() < Duration::from_secs(20), "{}", ctx(&run, root));
    assert_eq!(origin.requests().len(), 0, "{}", ctx(&run, root));
}

#[test]
fn no_proxy_still_bypasses_a_socks_proxy() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let origin = origin();
    let socks = SocksServer::start(SocksRules::default());
    let run = fetch_via(
        root,
        &origin.url("f.bin"),
        &[],
        &[
            ("all_proxy", &socks.url("socks5h", "")),
            ("no_proxy", "127.0.0.1"),
        ],
    );
    assert_code(&run, root, 0);
    assert_eq!(socks.handshakes().len(), 0, "{}", ctx(&run, root));
    assert_origin_served_once(&run, root, &origin);
}

#[test]
fn an_unreachable_proxy_is_named_and_never_bypassed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let origin = origin();
    let closed = free_port();
    for scheme in ["socks5h", "socks5", "socks4a", "http"] {
        let proxy = format!("{scheme}://user:Secret2@127.0.0.1:{closed}");
        let run = fetch_via(root, &origin.url("f.bin"), &["--proxy", &proxy], &[]);
        assert_code(&run, root, 1);
        support::assert_stderr_has(&run, root, &format!("proxy 127.0.0.1:{closed}: "));
        assert!(
            !run.stderr.contains("Secret2"),
            "credentials shown\n{}",
            ctx(&run, root)
        );
        assert_eq!(origin.requests().len(), 0, "went direct\n{}", ctx(&run, root));
    }
}

// ---------------------------------------------------------------------------
// Proxy schemes fetchq does not speak
// ---------------------------------------------------------------------------

#[test]
fn unsupported_proxy_schemes_stop_the_run_naming_their_source() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let origin = origin();
    // A port that nothing should ever connect to: the listener counts.
    let trap = TestServer::start();
    let at = trap.addr();
    let cases = [
        (
            vec!["--proxy".to_string(), format!("socks://u:Secret1@{at}")],
            vec![],
            "--proxy",
            "socks",
        ),
        (
            vec![],
            vec![("all_proxy", format!("ftp://u:Secret1@{at}"))],
            "all_proxy",
            "ftp",
        ),
        (
            vec![],
            vec![("HTTP_PROXY", format!("quic://{at}"))],
            "HTTP_PROXY",
            "quic",
        ),
        (
            vec![],
            vec![("https_proxy", format!("socks6://{at}"))],
            "https_proxy",
            "socks6",
        ),
    ];
    for (flags, env, source, scheme) in cases {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let run = fetch_via(root, &origin.url("f.bin"), &flags, &env);
        assert_code(&run, root, 2);
        support::assert_stderr_has(
            &run,
            root,
            &format!("{source}: unsupported proxy scheme \"{scheme}\""),
        );
        assert!(
            !run.stderr.contains("Secret1"),
            "credentials shown\n{}",
            ctx(&run, root)
        );
        assert_eq!(origin.requests().len(), 0, "went direct\n{}", ctx(&run, root));
        assert_eq!(trap.connections_opened(), 0, "{}", ctx(&run, root));
        assert!(!root.join("out").exists(), "{}", ctx(&run, root));
    }
}

// ---------------------------------------------------------------------------
// HTTP proxy: absolute form for http://, CONNECT for https://
// ---------------------------------------------------------------------------

#[test]
fn http_urls_reach_an_http_proxy_in_absolute_form() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let origin = origin();
    origin.route("g.bin", Route::ok(b"second".to_vec()));
    let proxy = HttpProxy::start(Some(USER_PASS_BASIC));
    let list = format!("{}\n{}\n", origin.url("f.bin"), origin.url("g.bin"));
    write_list(root, "list.txt", list);
    let run = fetch_in_with_env(
        root,
        &["--retries", "0", "-j", "1", "-d", "out", "list.txt"],
        &[("http_proxy", &proxy.url("user:pass@"))],
    );
    assert_code(&run, root, 0);
    assert_out_file(&run, root, "f.bin", b"through the proxy");
    assert_out_file(&run, root, "g.bin", b"second");
    let requests = proxy.requests();
    assert_eq!(requests.len(), 2, "{requests:?}\n{}", ctx(&run, root));
    let authority = origin.addr().to_string();
    for (request, file) in requests.iter().zip(["f.bin", "g.bin"]) {
        assert_eq!(
            request.line,
            format!("GET http://{authority}/{file} HTTP/1.1"),
            "absolute form, not CONNECT\n{}",
            ctx(&run, root)
        );
        assert_eq!(request.header("host"), Some(authority.as_str()));
        assert_eq!(request.header("proxy-authorization"), Some(USER_PASS_BASIC));
    }
    assert_eq!(origin.requests().len(), 2, "{}", ctx(&run, root));
}

#[test]
fn https_urls_still_use_connect() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let probe = TlsProbe::start();
    let proxy = HttpProxy::start(Some(USER_PASS_BASIC));
    let url = format!("https://{}/f.bin", probe.addr);
    let run = fetch_via(root, &url, &["--proxy", &proxy.url("user:pass@")], &[]);
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1, "{requests:?}\n{}", ctx(&run, root));
    assert_eq!(requests[0].line, format!("CONNECT {} HTTP/1.1", probe.addr));
    assert_eq!(requests[0].header("proxy-authorization"), Some(USER_PASS_BASIC));
    assert_eq!(
        probe.hellos(),
        1,
        "TLS should start inside the tunnel\n{}",
        ctx(&run, root)
    );
}

// ---------------------------------------------------------------------------
// squid
// ---------------------------------------------------------------------------

const SQUID: &str = "/usr/sbin/squid";

/// A squid on a loopback port with Debian's stock access rules, stopped on drop.
struct Squid {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Squid {
    fn start() -> Squid {
        assert!(
            Path::new(SQUID).exists(),
            "the squid test needs {SQUID}: install the Debian package `squid` (apt-get install squid); .ci/run does"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        // Started as root, squid switches to `cache_effective_user` before it
        // writes its logs and pid file: that user gets the folder. Started as
        // anyone else, it keeps that user and needs no such line.
        let effective_user = if running_as_root() {
            chown_to_proxy_user(dir.path());
            "cache_effective_user proxy\n"
        } else {
            ""
        };
        // The stock rules of Debian's /etc/squid/squid.conf (squid 5), then
        // this test's port and a rule for 127.0.0.1 in place of the include.
        let conf = format!(
            "acl SSL_ports port 443
acl Safe_ports port 80
acl Safe_ports port 21
acl Safe_ports port 443
acl Safe_ports port 70
acl Safe_ports port 210
acl Safe_ports port 1025-65535
acl Safe_ports port 280
acl Safe_ports port 488
acl Safe_ports port 591
acl Safe_ports port 777
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost manager
http_access deny manager
acl fetchq_test src 127.0.0.1/32
http_access allow fetchq_test
http_access allow localhost
http_access deny all
http_port 127.0.0.1:{port}
cache deny all
cache_mem 8 MB
pid_filename {d}/squid.pid
cache_log {d}/cache.log
access_log stdio:{d}/access.log
coredump_dir {d}
netdb_filename none
shutdown_lifetime 0 seconds
{effective_user}",
        );
        let conf_path = dir.path().join("squid.conf");
        fs::write(&conf_path, conf).unwrap();
        // The service name prefixes squid's shared-memory segments
        // (/dev/shm/NAME-cf__*.shm): one per instance, so parallel or leftover
        // squids never collide.
        let child = Command::new(SQUID)
            .args(["-N", "-n", &format!("fetchq{port}"), "-f"])
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {SQUID}: {e}"));
        let mut squid = Squid { child, port, dir };
        squid.wait_until_listening();
        squid
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("squid exited ({status}) before listening\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "squid did not listen on 127.0.0.1:{} within 20 s\n{}",
                self.port,
                self.logs()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        ["stderr.log", "cache.log", "access.log"]
            .iter()
            .map(|name| {
                let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
                format!("--- squid {name} ---\n{text}")
            })
            .collect()
    }
}

impl Drop for Squid {
    /// SIGTERM first, so squid removes its shared memory; SIGKILL if it is
    /// still running after 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn running_as_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_some_and(|euid| euid == "0")
}

/// Hand `dir` to the `proxy` user (Debian's squid user), so squid can write
/// its logs and pid file there after dropping root.
fn chown_to_proxy_user(dir: &Path) {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let ids = passwd.lines().find_map(|l| {
        let fields: Vec<&str> = l.split(':').collect();
        (fields.first() == Some(&"proxy") && fields.len() > 3)
            .then(|| (fields[2].parse::<u32>().ok(), fields[3].parse::<u32>().ok()))
    });
    let Some((Some(uid), Some(gid))) = ids else {
        panic!("running as root, squid needs the `proxy` user (Debian's squid package creates it)")
    };
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
}

#[test]
fn squid_with_stock_rules_carries_http_downloads_on_other_ports() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let origin = origin();
    assert_ne!(origin.addr().port(), 443);
    origin.route("g.bin", Route::ok(b"second".to_vec()));
    let squid = Squid::start();
    // Two files, one worker: the second request reuses the connection to squid.
    let list = format!("{}\n{}\n", origin.url("f.bin"), origin.url("g.bin"));
    write_list(root, "list.txt", list);
    let proxy = format!("http://user:pass@127.0.0.1:{}", squid.port);
    let run = fetch_in_with_env(
        root,
        &["--proxy", &proxy, "-j", "1", "-d", "out", "list.txt"],
        &[],
    );
    let context = || format!("{}\n{}", ctx(&run, root), squid.logs());
    assert_eq!(run.code(), 0, "{}", context());
    for (name, want) in [("f.bin", &b"through the proxy"[..]), ("g.bin", b"second")] {
        let body = fs::read(root.join("out").join(name)).unwrap_or_default();
        assert_eq!(body, want, "{name}\n{}", context());
    }
    let requests = origin.requests();
    assert_eq!(requests.len(), 2, "{}", context());
    for request in &requests {
        assert!(
            request.header("via").is_some_and(|v| v.contains("squid")),
            "the origin should see squid's Via header: {:?}\n{}",
            request.headers,
            context()
        );
        assert_eq!(request.header("proxy-authorization"), None, "{}", context());
    }
}
