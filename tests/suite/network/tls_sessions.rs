//! TLS connection reuse, session resumption and `--cacert`'s trust set: the
//! real `fetchq` binary against an in-process HTTPS/1.1 server (rustls) that
//! counts the TCP connections it accepts and the handshakes it completes,
//! full or resumed.
//!
//! The server's certificate is signed by a test CA made with the `openssl`
//! command-line tool at test time (as in `network::tls`); fetchq trusts it
//! with `--cacert`. Without `openssl` the tests fail, never pass silently.

use crate::support;
use crate::support::certs::{make_ca, make_leaf, server_ext};

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{HandshakeKind, ServerConfig, ServerConnection, StreamOwned};
use support::{assert_code, fetch_in, fetch_in_with_env, list_args, write_list};
use tempfile::TempDir;

/// Most connections one test server accepts; its accept loop ends there.
const MAX_CONNECTIONS: usize = 64;
/// Most requests one connection serves.
const MAX_REQUESTS: usize = 1_000;
/// How long a connection may sit idle before the server drops it.
const IDLE: Duration = Duration::from_secs(10);

/// `ca.pem` (a test CA) and `server.pem`/`server.key` (a leaf it signed for
/// 127.0.0.1) in `dir`.
fn make_certificates(dir: &Path) {
    make_ca(dir, "ca", "fetchq session test CA ca");
    make_leaf(dir, "server", "fetchq session test", &server_ext("IP:127.0.0.1"));
}

/// What the server saw.
#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    full: AtomicUsize,
    resumed: AtomicUsize,
    requests: AtomicUsize,
}

/// An HTTPS/1.1 server on 127.0.0.1 serving `body_of(path)` for every GET,
/// keeping connections alive unless `close_each` (then it answers with
/// `Connection: close`, sends close_notify and closes after every response).
struct Server {
    addr: SocketAddr,
    counts: Arc<Counts>,
}

impl Server {
    fn start(dir: &Path, close_each: bool) -> Server {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
            .expect("read server.pem")
            .collect::<Result<_, _>>()
            .expect("parse server.pem");
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("read server.key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        thread::spawn(move || {
            for stream in listener.incoming().take(MAX_CONNECTIONS) {
                let Ok(stream) = stream else { continue };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let (config, counts) = (config.clone(), shared.clone());
                thread::spawn(move || serve(stream, config, &counts, close_each));
            }
        });
        Server { addr, counts }
    }

    fn url(&self, name: &str) -> String {
        format!("https://{}/{name}", self.addr)
    }

    fn count(&self, which: fn(&Counts) -> &AtomicUsize) -> usize {
        which(&self.counts).load(Ordering::SeqCst)
    }
}

/// The body served for `/NAME`: `NAME` repeated to 40 KiB, so it spans
/// several TLS records.
fn body_of(name: &str) -> Vec<u8> {
    name.as_bytes().iter().copied().cycle().take(40 * 1024).collect()
}

fn serve(stream: TcpStream, config: Arc<ServerConfig>, counts: &Counts, close_each: bool) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, stream);
    let mut counted = false;
    for _ in 0..MAX_REQUESTS {
        let Some(path) = read_request(&mut tls) else {
            return;
        };
        if !counted {
            counted = true;
            match tls.conn.handshake_kind() {
                Some(HandshakeKind::Resumed) => counts.resumed.fetch_add(1, Ordering::SeqCst),
                _ => counts.full.fetch_add(1, Ordering::SeqCst),
            };
        }
        counts.requests.fetch_add(1, Ordering::SeqCst);
        let body = body_of(path.trim_start_matches('/'));
        let connection = if close_each { "close" } else { "keep-alive" };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
            body.len()
        );
        if tls.write_all(head.as_bytes()).is_err() || tls.write_all(&body).is_err() {
            return;
        }
        if close_each {
            tls.conn.send_close_notify();
            let _ = tls.flush();
            let _ = tls.conn.complete_io(&mut tls.sock);
            return;
        }
    }
}

/// The path of the next GET on the connection, or None at its end.
fn read_request(tls: &mut StreamOwned<ServerConnection, TcpStream>) -> Option<String> {
    let mut reader = BufReader::new(Read::take(&mut *tls, 64 * 1024));
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let path = line.split_whitespace().nth(1)?.to_string();
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) => return None,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    // Requests carry no body, and fetchq sends one request at a time, so the
    // BufReader holds nothing that belongs to the next request.
    Some(path)
}

/// Writes the list, runs fetchq with `--cacert` and `args`, checks every file.
fn fetch_all(server: &Server, dir: &TempDir, names: &[&str], args: &[&str]) {
    let root = dir.path();
    let urls: Vec<String> = names.iter().map(|n| server.url(n)).collect();
    write_list(root, "list.txt", urls.join("\n") + "\n");
    let ca = root.join("certs/ca.pem");
    let ca = ca.to_str().expect("utf-8 path");
    let mut all = vec!["--cacert", ca];
    all.extend_from_slice(args);
    let run = fetch_in(root, &list_args("out", &all));
    assert_code(&run, root, 0);
    for name in names {
        let got = fs::read(root.join("out").join(name)).expect("downloaded file");
        assert!(
            got == body_of(name),
            "{name}: wrong content ({} bytes)",
            got.len()
        );
    }
}

fn setup(close_each: bool) -> (TempDir, Server) {
    let dir = TempDir::new().expect("temp dir");
    let certs = dir.path().join("certs");
    fs::create_dir(&certs).expect("certs dir");
    make_certificates(&certs);
    let server = Server::start(&certs, close_each);
    (dir, server)
}

/// Waits (bounded) until the server has counted `want` handshakes: its
/// counters are bumped on its own threads.
fn settle(server: &Server, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.count(|c| &c.full) + server.count(|c| &c.resumed) < want && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn files_after_the_first_reuse_the_connection_without_a_handshake() {
    let (dir, server) = setup(false);
    let names = ["a", "b", "c", "d", "e"];
    fetch_all(&server, &dir, &names, &["-j", "1"]);
    settle(&server, 1);
    assert_eq!(server.count(|c| &c.requests), 5, "requests");
    assert_eq!(server.count(|c| &c.accepted), 1, "one connection for five files");
    assert_eq!(server.count(|c| &c.full), 1, "one full handshake");
    assert_eq!(server.count(|c| &c.resumed), 0, "no further handshake");
}

#[test]
fn a_new_connection_to_the_same_server_resumes_the_session() {
    let (dir, server) = setup(true);
    let names = ["a", "b", "c"];
    fetch_all(&server, &dir, &names, &["-j", "1"]);
    settle(&server, 3);
    assert_eq!(
        server.count(|c| &c.accepted),
        3,
        "the server closed after every file"
    );
    assert_eq!(
        server.count(|c| &c.full),
        1,
        "only the first connection checks the certificate"
    );
    assert_eq!(server.count(|c| &c.resumed), 2, "later connections resume");
}

#[test]
fn cacert_still_trusts_the_system_store_when_its_own_ca_does_not_match() {
    let (dir, server) = setup(false);
    let root = dir.path();
    let certs = root.join("certs");
    make_ca(&certs, "other", "fetchq session test CA other");
    write_list(root, "list.txt", server.url("a") + "\n");
    let other = certs.join("other.pem");
    let args = list_args("out", &["--cacert", other.to_str().expect("utf-8 path")]);
    // The server's CA only in the "system store" (rustls-native-certs reads
    // SSL_CERT_FILE in its place).
    let ca = certs.join("ca.pem");
    let run = fetch_in_with_env(
        root,
        &args,
        &[("SSL_CERT_FILE", ca.to_str().expect("utf-8 path"))],
    );
    assert_code(&run, root, 0);
    assert!(fs::read(root.join("out/a")).expect("downloaded") == body_of("a"));
    // Trusted by neither: refused.
    fs::remove_dir_all(root.join("out")).expect("clear out");
    let run = fetch_in_with_env(
        root,
        &args,
        &[("SSL_CERT_FILE", other.to_str().expect("utf-8 path"))],
    );
    assert!(run.code() != 0, "an untrusted server must fail\n{}", run.stderr);
    assert!(
        !root.join("out/a").exists(),
        "nothing saved from an untrusted server"
    );
}
