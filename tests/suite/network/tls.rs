//! TLS tests: the real `fetchq` binary against a real HTTPS server on
//! 127.0.0.1 — certificate verification by default, `--insecure` as an
//! explicit opt-in with a warning, `--cacert` adding a CA on top of the
//! system store, and host-name checking.
//!
//! Certificates are made at test time with the `openssl` command-line tool (a
//! test CA with `CA:TRUE` that signs a leaf with `CA:FALSE`: webpki rejects a
//! self-signed `CA:TRUE` certificate used as its own end entity with
//! `CaUsedAsEndEntity`), and `openssl s_server -WWW` serves files from a
//! directory. It answers `HTTP/1.0 200 ok` with no Content-Length and closes
//! the connection, so every successful download here is a close-delimited
//! body. Without `openssl` the tests fail (they never pass silently).
//!
//! Layout: `Fixture::tls` holds the keys, certificates, served files (`www/`)
//! and the server log; `Fixture::root` is the working directory of each run
//! and holds only `list.txt`, with downloads going to `root/out`. Assertion
//! messages carry the run, the files under `root` and the server log.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::certs;
use crate::support::{Run, Setup, fetch_in, free_port, json_lines, list_args, pattern, write_list};
use serde_json::Value;
use tempfile::TempDir;

/// Longest the server may take to accept connections.
const READY_BOUND: Duration = Duration::from_secs(10);

/// Subject alternative names of the normal test server certificate.
const LOCAL_SAN: &str = "IP:127.0.0.1,DNS:localhost";

// ---------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------

/// A test CA in `dir`: `ca.pem` (`CA:TRUE`, may sign certificates) and `ca.key`.
fn make_ca(dir: &Path) {
    certs::make_ca(dir, "ca", "fetchq test CA");
}

/// A server certificate `NAME.pem` with key `NAME.key` in `dir`, signed by the
/// CA of [`make_ca`], valid for the subject alternative names `san`.
fn make_leaf(dir: &Path, name: &str, san: &str) {
    certs::make_leaf(dir, name, "fetchq test server", &certs::server_ext(san));
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// `openssl s_server -WWW` serving a directory over HTTPS on 127.0.0.1; killed
/// (by its own id) and reaped on drop.
struct SServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl SServer {
    /// Starts the server with `cert`/`key` serving files from `www`, logging to
    /// `log`, and waits (at most [`READY_BOUND`]) until it accepts connections.
    fn start(www: &Path, cert: &Path, key: &Path, log: &Path) -> SServer {
        let deadline = Instant::now() + READY_BOUND;
        loop {
            let port = free_port();
            let out = File::create(log).expect("create server log");
            let err = out.try_clone().expect("clone server log");
            let child = Command::new("openssl")
                .current_dir(www)
                .arg("s_server")
                .args(["-accept", &format!("127.0.0.1:{port}")])
                .arg("-cert")
                .arg(cert)
                .arg("-key")
                .arg(key)
                .args(["-WWW", "-quiet"])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start `openssl s_server` ({e}); the TLS tests need openssl installed")
                });
            let mut server = SServer {
                child,
                port,
                log: log.to_path_buf(),
            };
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            loop {
                if let Ok(Some(status)) = server.child.try_wait() {
                    // Someone else took the port between our probe and its bind: try another.
                    let log = server.log_text();
                    if log.contains("in use") && Instant::now() < deadline {
                        break;
                    }
                    panic!("openssl s_server exited ({status}) on port {port}\n--- log ---\n{log}");
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return server;
                }
                if Instant::now() >= deadline {
                    panic!(
                        "openssl s_server did not accept connections on {addr} within {READY_BOUND:?}\n\
                         --- log ---\n{}",
                        server.log_text()
                    );
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// What the server printed so far.
    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Fixture and assertions
// ---------------------------------------------------------------------------

/// A CA, a server certificate for given names signed by it, an HTTPS server
/// using that certificate, and a working directory whose `list.txt` names
/// `https://127.0.0.1:PORT/file.bin`.
struct Fixture {
    // Declared first so the server is stopped before its files are removed.
    server: SServer,
    tls: TempDir,
    root: TempDir,
    /// What `/file.bin` serves.
    body: Vec<u8>,
}

impl Fixture {
    /// The fixture with a server certificate for `san` (e.g. [`LOCAL_SAN`]).
    fn new(san: &str) -> Fixture {
        let tls = TempDir::new().expect("temp dir");
        let root = TempDir::new().expect("temp dir");
        make_ca(tls.path());
        make_leaf(tls.path(), "server", san);
        let www = tls.path().join("www");
        fs::create_dir(&www).expect("create www");
        let body = pattern(200_000, 41);
        fs::write(www.join("file.bin"), &body).expect("write file.bin");
        let server = SServer::start(
            &www,
            &tls.path().join("server.pem"),
            &tls.path().join("server.key"),
            &tls.path().join("s_server.log"),
        );
        let fixture = Fixture {
            server,
            tls,
            root,
            body,
        };
        fixture.list(&[&fixture.url("127.0.0.1", "file.bin")]);
        fixture
    }

    /// `https://HOST:PORT/NAME` on the test server.
    fn url(&self, host: &str, name: &str) -> String {
        format!("https://{host}:{}/{name}", self.server.port)
    }

    /// Replaces `list.txt` with these URLs.
    fn list(&self, urls: &[&str]) {
        let text: String = urls.iter().map(|u| format!("{u}\n")).collect();
        write_list(self.root.path(), "list.txt", text);
    }

    /// A path in the certificate directory, as a string for arguments.
    fn tls_file(&self, name: &str) -> String {
        self.tls.path().join(name).to_string_lossy().into_owned()
    }

    /// Runs fetchq in `root` with `-d out --retry-wait 0.05`, `args` and
    /// `list.txt` last; its failure messages carry the server log.
    fn fetch(&self, args: &[&str]) -> Run {
        let mut run = fetch_in(self.root.path(), &list_args("out", args));
        run.note = format!("--- s_server log ---\n{}", self.server.log_text());
        run
    }

    /// Asserts a clean download: exit 0, `out/file.bin` holds [`Fixture::body`],
    /// and nothing but `list.txt` and that file is under `root`.
    fn assert_downloaded(&self, run: &Run) {
        run.assert_downloaded_alone("out/file.bin", &self.body);
    }

    /// Asserts a failed entry: exit 1, a stderr line names the URL and says
    /// `certificate`, nothing left under `root` but the list. Returns the line.
    fn assert_certificate_failure<'a>(&self, run: &'a Run) -> &'a str {
        run.assert_code(1).assert_files(&["list.txt"]);
        let line = run.stderr_line(&self.url("127.0.0.1", "file.bin"));
        assert!(
            line.to_lowercase().contains("certificate"),
            "the error should say it is about the certificate: {line:?}\n{}",
            run.ctx()
        );
        line
    }

    /// Runs with `--cacert` pointing at `name` in the certificate directory
    /// and asserts a usage error: exit 2, a `fetchq: ` line naming the path
    /// and saying `reason`, nothing left under `root` but the list. `what`
    /// describes the case in the message.
    fn assert_cacert_usage_error(&self, name: &str, reason: &str, what: &str) {
        let path = self.tls_file(name);
        let r = self.fetch(&["--cacert", &path]);
        r.assert_code(2).assert_files(&["list.txt"]);
        let line = r.stderr_line(&path);
        assert!(
            line.starts_with("fetchq: ") && line.contains(reason),
            "{what}: unclear message {line:?}\n{}",
            r.ctx()
        );
    }

    /// The single `entry` object of a `--json` run.
    fn json_entry(&self, run: &Run) -> Value {
        json_lines(run, self.root.path())
            .into_iter()
            .find(|v| v["type"] == "entry")
            .unwrap_or_else(|| panic!("no entry object on stdout\n{}", run.ctx()))
    }
}

// ---------------------------------------------------------------------------
// Verification on by default
// ---------------------------------------------------------------------------

#[test]
fn untrusted_certificate_fails_and_leaves_nothing() {
    let f = Fixture::new(LOCAL_SAN);
    let r = f.fetch(&[]);
    let line = f.assert_certificate_failure(&r);
    // Visible with --nocapture: what a user sees for an untrusted certificate.
    eprintln!("untrusted certificate: {line}");
    assert!(
        !r.stderr.contains("--insecure: TLS certificates are NOT verified"),
        "no --insecure warning without --insecure\n{}",
        r.ctx()
    );
}

#[test]
fn certificate_error_is_not_retried() {
    // A certificate the client does not trust will not become trusted on the
    // next attempt (FetchError::Client: "a TLS ... failure that no retry will
    // mend"), so it should fail after one attempt, not count as a
    // connection error that --retries repeats.
    let f = Fixture::new(LOCAL_SAN);
    let r = f.fetch(&["--json", "--retries", "3"]);
    r.assert_code(1);
    let entry = f.json_entry(&r);
    assert_eq!(
        entry["attempts"],
        1,
        "a certificate failure should not be retried: entry {entry}\n{}",
        r.ctx()
    );
}

#[test]
fn certificate_error_says_connection_failed_once() {
    let f = Fixture::new(LOCAL_SAN);
    let r = f.fetch(&["--retries", "0"]);
    let line = f.assert_certificate_failure(&r);
    assert!(
        !line.contains("connection failed: connection failed"),
        "the error repeats its prefix: {line:?}\n{}",
        r.ctx()
    );
}

/// An https:// URL whose server speaks plain HTTP: the message says so in
/// plain words, not as rustls' "corrupt message of type InvalidContentType".
#[test]
fn a_plain_http_server_behind_an_https_url_is_named_as_such() {
    let t = Setup::new();
    // A plain HTTP server answers a TLS ClientHello with a 400, as nginx,
    // Apache and Python's http.server do.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/f.bin", listener.local_addr().unwrap());
    thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut conn, _)) = listener.accept() {
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = conn.read(&mut [0u8; 1024]);
            let _ =
                conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    t.list(&[&url]);
    let run = t.run(&["--retries", "0"]);
    run.assert_code(1);
    let line = run.stderr_line("list.txt:1:");
    assert!(
        line.contains(&url) && line.contains("the server's reply is not TLS"),
        "the failure should name the URL and say the server is not TLS: {line:?}"
    );
}

// ---------------------------------------------------------------------------
// --insecure
// ---------------------------------------------------------------------------

#[test]
fn insecure_accepts_untrusted_certificate_with_warning() {
    let f = Fixture::new(LOCAL_SAN);
    let r = f.fetch(&["--insecure"]);
    f.assert_downloaded(&r);
    let warning = r
        .stderr
        .lines()
        .find(|l| l.contains("--insecure"))
        .unwrap_or_else(|| panic!("stderr should warn about --insecure\n{}", r.ctx()));
    assert!(
        warning.to_lowercase().contains("warning"),
        "the --insecure line should be a warning: {warning:?}\n{}",
        r.ctx()
    );
}

// ---------------------------------------------------------------------------
// --cacert
// ---------------------------------------------------------------------------

#[test]
fn cacert_trusts_the_test_ca() {
    let f = Fixture::new(LOCAL_SAN);
    let r = f.fetch(&["--cacert", &f.tls_file("ca.pem")]);
    f.assert_downloaded(&r);
    assert!(
        !r.stderr.contains("--insecure"),
        "--cacert must not turn verification off\n{}",
        r.ctx()
    );
}

#[test]
fn cacert_verifies_dns_name_localhost() {
    let f = Fixture::new(LOCAL_SAN);
    f.list(&[&f.url("localhost", "file.bin")]);
    let r = f.fetch(&["--cacert", &f.tls_file("ca.pem")]);
    r.assert_code(0);
    r.assert_file("out/file.bin", &f.body);
}

#[test]
fn cacert_with_wrong_host_name_fails() {
    // Signed by the trusted CA, but only for example.com: not for 127.0.0.1.
    let f = Fixture::new("DNS:example.com");
    let r = f.fetch(&["--retries", "0", "--cacert", &f.tls_file("ca.pem")]);
    let line = f.assert_certificate_failure(&r);
    eprintln!("wrong host name: {line}");
    assert!(
        line.contains("127.0.0.1") && line.contains("example.com"),
        "the error should name the host asked for and the one the certificate is for: {line:?}\n{}",
        r.ctx()
    );
}

#[test]
fn cacert_without_certificate_is_usage_error() {
    let f = Fixture::new(LOCAL_SAN);
    fs::write(f.tls.path().join("empty.pem"), "").expect("write empty.pem");
    // A private key is PEM too, but not a certificate.
    for name in ["server.key", "empty.pem"] {
        f.assert_cacert_usage_error(name, "no PEM certificate", &format!("--cacert {name}"));
    }
}

#[test]
fn cacert_missing_file_is_usage_error() {
    let f = Fixture::new(LOCAL_SAN);
    f.assert_cacert_usage_error("no-such-ca.pem", "No such file", "--cacert with a missing file");
}

/// `--resolve` keeps the name for TLS: a certificate for the pinned name
/// verifies, one for another name does not.
#[test]
fn resolve_keeps_the_name_for_certificate_checks() {
    let pin = |f: &Fixture| format!("files.example.test:{}:127.0.0.1", f.server.port);

    let f = Fixture::new("DNS:files.example.test");
    f.list(&[&f.url("files.example.test", "file.bin")]);
    let r = f.fetch(&["--resolve", &pin(&f), "--cacert", &f.tls_file("ca.pem")]);
    r.assert_code(0);
    r.assert_file("out/file.bin", &f.body);

    let f = Fixture::new("DNS:example.com");
    f.list(&[&f.url("files.example.test", "file.bin")]);
    let r = f.fetch(&[
        "--retries",
        "0",
        "--resolve",
        &pin(&f),
        "--cacert",
        &f.tls_file("ca.pem"),
    ]);
    r.assert_code(1).assert_files(&["list.txt"]);
    let line = r.stderr_line(&f.url("files.example.test", "file.bin"));
    assert!(
        line.contains("certificate not valid for name \"files.example.test\""),
        "{line:?}\n{}",
        r.ctx()
    );
}
