//! `--cert` and `--key`: the real `fetchq` binary against an in-process
//! HTTPS/1.1 server (rustls) that requires a client certificate signed by a
//! test CA, and records the subject of each one it accepted.
//!
//! Certificates and keys are made with the `openssl` command-line tool at test
//! time (as in `network::tls_sessions`). Without `openssl` the tests fail,
//! never pass silently.

use crate::support;
use crate::support::certs::{CLIENT_EXT, make_ca, make_leaf, openssl, server_ext};

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use support::{assert_code, assert_stderr_has, fetch_in, list_args, write_list};
use tempfile::TempDir;

/// Most connections one test server accepts; its accept loop ends there.
const MAX_CONNECTIONS: usize = 32;
/// The body served for every GET.
const BODY: &[u8] = b"for certified clients only\n";
/// The subject of the client certificate the test CA signs.
const CLIENT_CN: &str = "fetchq test client";

/// In `dir`: `ca.pem` (a test CA), `server.pem`/`server.key` (for
/// 127.0.0.1), `client.pem`/`client.key` (a client certificate the CA signed)
/// and `other.key` (an EC key that matches neither).
fn make_certificates(dir: &Path) {
    make_ca(dir, "ca", "fetchq client-cert test CA");
    make_leaf(
        dir,
        "server",
        "fetchq client-cert test server",
        &server_ext("IP:127.0.0.1"),
    );
    make_leaf(dir, "client", CLIENT_CN, CLIENT_EXT);
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
            "other.key",
        ],
    );
}

/// An HTTPS/1.1 server on 127.0.0.1 that requires a client certificate
/// signed by `ca.pem`, serves [`BODY`] for every GET (one per connection),
/// and records the subject line of every client certificate it accepted.
struct Server {
    addr: SocketAddr,
    clients: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
            .expect("read server.pem")
            .collect::<Result<_, _>>()
            .expect("parse server.pem");
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("read server.key");
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(dir.join("ca.pem")).expect("read ca.pem"))
            .expect("CA as a root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .expect("client verifier");
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .expect("server certificate");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let clients = Arc::new(Mutex::new(Vec::new()));
        let shared = clients.clone();
        thread::spawn(move || {
            for stream in listener.incoming().take(MAX_CONNECTIONS) {
                let Ok(stream) = stream else { continue };
                let (config, clients) = (config.clone(), shared.clone());
                thread::spawn(move || serve(stream, config, &clients));
            }
        });
        Server { addr, clients }
    }

    fn url(&self, name: &str) -> String {
        format!("https://{}/{name}", self.addr)
    }

    /// One entry per request served with a client certificate: [`CLIENT_CN`]
    /// when that certificate was the test client's, else "another".
    fn clients(&self) -> Vec<String> {
        self.clients.lock().expect("clients lock").clone()
    }
}

fn serve(stream: TcpStream, config: Arc<ServerConfig>, clients: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, stream);
    // The request line, once the handshake (which checks the certificate) is done.
    let mut reader = BufReader::new(Read::take(&mut tls, 64 * 1024));
    let mut seen = 0;
    for _ in 0..100 {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(n) if n > 0 && line != "\r\n" => seen += 1,
            _ => break,
        }
    }
    drop(reader);
    if seen == 0 {
        // A refused handshake: the alert is written; read until the client
        // hangs up, so closing with its request unread sends no reset that
        // could overtake the alert.
        let _ = std::io::copy(&mut Read::take(&tls.sock, 1 << 20), &mut std::io::sink());
        return;
    }
    if let Some(leaf) = tls.conn.peer_certificates().and_then(|c| c.first()) {
        // The CN's bytes appear verbatim in the DER encoding.
        let der = leaf.as_ref();
        let found = der.windows(CLIENT_CN.len()).any(|w| w == CLIENT_CN.as_bytes());
        clients.lock().expect("clients lock").push(if found {
            CLIENT_CN.to_string()
        } else {
            "another".to_string()
        });
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        BODY.len()
    );
    let _ = tls.write_all(head.as_bytes());
    let _ = tls.write_all(BODY);
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

struct Setup {
    dir: TempDir,
    server: Server,
}

impl Setup {
    fn new() -> Setup {
        let dir = TempDir::new().expect("temp dir");
        let certs = dir.path().join("certs");
        fs::create_dir(&certs).expect("certs dir");
        make_certificates(&certs);
        let server = Server::start(&certs);
        write_list(dir.path(), "list.txt", server.url("secret.bin") + "\n");
        Setup { dir, server }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn cert(&self, name: &str) -> PathBuf {
        self.root().join("certs").join(name)
    }

    /// Runs fetchq over `list.txt` into `out`, trusting the test CA, with `args`.
    fn fetch(&self, args: &[&str]) -> support::Run {
        let ca = self.cert("ca.pem");
        let mut all = vec!["--cacert", ca.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        fetch_in(self.root(), &list_args("out", &all))
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn a_client_certificate_and_key_are_presented_to_the_server() {
    let s = Setup::new();
    let (cert, key) = (s.cert("client.pem"), s.cert("client.key"));
    let run = s.fetch(&["--cert", path(&cert), "--key", path(&key)]);
    assert_code(&run, s.root(), 0);
    let got = fs::read(s.root().join("out/secret.bin")).expect("downloaded file");
    assert!(got == BODY, "wrong content ({} bytes)", got.len());
    assert_eq!(
        s.server.clients(),
        [CLIENT_CN],
        "the server saw the client's certificate"
    );
}

#[test]
fn a_cert_file_that_holds_the_key_too_needs_no_key_option() {
    let s = Setup::new();
    let both = s.cert("both.pem");
    let mut pem = fs::read(s.cert("client.pem")).expect("client.pem");
    pem.extend(fs::read(s.cert("client.key")).expect("client.key"));
    fs::write(&both, pem).expect("write both.pem");
    let run = s.fetch(&["--cert", path(&both)]);
    assert_code(&run, s.root(), 0);
    assert_eq!(
        s.server.clients(),
        [CLIENT_CN],
        "the server saw the client's certificate"
    );
}

#[test]
fn without_a_client_certificate_the_server_refuses_and_the_entry_fails() {
    let s = Setup::new();
    let run = s.fetch(&["--retries", "0"]);
    assert_code(&run, s.root(), 1);
    assert_stderr_has(&run, s.root(), "Certificate");
    assert!(!s.root().join("out/secret.bin").exists(), "nothing saved");
    assert!(s.server.clients().is_empty(), "no certificate accepted");
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_a_usage_error() {
    let s = Setup::new();
    let (cert, other) = (s.cert("client.pem"), s.cert("other.key"));
    let run = s.fetch(&["--cert", path(&cert), "--key", path(&other)]);
    assert_code(&run, s.root(), 2);
    assert_stderr_has(&run, s.root(), "other.key");
    assert_stderr_has(&run, s.root(), "does not match");
    let key = fs::read_to_string(&other).expect("other.key");
    let secret = key.lines().nth(1).expect("a base64 line");
    assert!(
        !run.stderr.contains(secret),
        "key material printed\n{}",
        run.stderr
    );
    assert!(!s.root().join("out").exists(), "a usage error leaves nothing");
    assert!(s.server.clients().is_empty(), "nothing reached the server");
}

#[test]
fn a_cert_without_a_key_and_unreadable_files_are_usage_errors_naming_the_file() {
    let s = Setup::new();
    let cert = s.cert("client.pem");
    // Only a certificate, and no --key.
    let run = s.fetch(&["--cert", path(&cert)]);
    assert_code(&run, s.root(), 2);
    assert_stderr_has(&run, s.root(), "client.pem");
    assert_stderr_has(&run, s.root(), "no PEM private key");
    // A key file that is not there.
    let missing = s.cert("missing.key");
    let run = s.fetch(&["--cert", path(&cert), "--key", path(&missing)]);
    assert_code(&run, s.root(), 2);
    assert_stderr_has(&run, s.root(), "missing.key");
    // A certificate file that holds no certificate.
    let key = s.cert("client.key");
    let run = s.fetch(&["--cert", path(&key), "--key", path(&key)]);
    assert_code(&run, s.root(), 2);
    assert_stderr_has(&run, s.root(), "no PEM certificate");
    assert!(!s.root().join("out").exists(), "a usage error leaves nothing");
}

#[test]
fn key_without_cert_is_a_usage_error() {
    let s = Setup::new();
    let key = s.cert("client.key");
    let run = s.fetch(&["--key", path(&key)]);
    assert_code(&run, s.root(), 2);
    assert_stderr_has(&run, s.root(), "--cert");
    assert!(!s.root().join("out").exists(), "a usage error leaves nothing");
}
