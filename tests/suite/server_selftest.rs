//! Self-tests for the in-process HTTP test server (`tests/support`), using
//! raw `TcpStream` requests so the server is checked independently of the
//! HTTP client fetchq uses.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use support::server::{Route, TestServer, http_date, pattern, sha256_hex};

/// A raw HTTP/1.1 client connection: a buffered reader plus a writer on the
/// same socket, so several responses can be read from one connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// One parsed response. `complete` is false if the connection ended before
/// the framing said the body was over.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    complete: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Conn {
    fn open(server: &TestServer) -> Conn {
        let stream = TcpStream::connect(server.addr()).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Conn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.writer.write_all(req.as_bytes()).unwrap();
    }

    /// Reads one response; `head` means the request was HEAD (no body).
    fn read(&mut self, head: bool) -> Resp {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("bad status line {line:?}"))
            .parse()
            .unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header line");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').expect("header colon");
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
            complete: true,
        };
        if head || status == 304 || status == 204 {
            return resp;
        }
        if resp.header("transfer-encoding") == Some("chunked") {
            loop {
                line.clear();
                if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                    resp.complete = false;
                    return resp;
                }
                let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
                if size == 0 {
                    line.clear();
                    let _ = self.reader.read_line(&mut line);
                    return resp;
                }
                let mut chunk = vec![0u8; size];
                let got = read_up_to(&mut self.reader, &mut chunk);
                resp.body.extend_from_slice(&chunk[..got]);
                if got < size {
                    resp.complete = false;
                    return resp;
                }
                line.clear();
                let _ = self.reader.read_line(&mut line);
            }
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().unwrap();
            let mut body = vec![0u8; len];
            let got = read_up_to(&mut self.reader, &mut body);
            body.truncate(got);
            resp.complete = got == len;
            resp.body = body;
        } else {
            let _ = self.reader.read_to_end(&mut resp.body);
        }
        resp
    }

    fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.send("GET", path, headers);
        self.read(false)
    }

    /// True if the server has closed the connection (EOF or reset).
    fn at_eof(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

/// Reads until `buf` is full or the stream ends/errors; returns bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

fn get_once(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Resp {
    Conn::open(server).get(path, headers)
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let server = TestServer::start();
    let body = pattern(5000, 1);
    server.route("/a", Route::ok(body.clone()));
    let mut c = Conn::open(&server);
    let r1 = c.get("/a", &[]);
    let r2 = c.get("/a?x=1", &[("X-Test", "yes")]);
    assert_eq!((r1.status, r2.status), (200, 200));
    assert_eq!(r1.body, body);
    assert_eq!(r2.body, body);
    assert_eq!(r1.header("content-length"), Some("5000"));
    assert_eq!(r1.header("accept-ranges"), Some("bytes"));
    assert_eq!(server.hits("/a"), 2);
    assert_eq!(server.connections_opened(), 1);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].connection_id, reqs[1].connection_id);
    assert_eq!(reqs[1].path, "/a?x=1");
    assert_eq!(reqs[1].header("x-test"), Some("yes"));
    assert!(reqs[1].headers.iter().any(|(n, _)| n == "x-test"));

    // Client-requested close is honoured.
    let r3 = c.get("/a", &[("Connection", "close")]);
    assert_eq!(r3.header("connection"), Some("close"));
    assert!(c.at_eof());
}

#[test]
fn range_requests() {
    let server = TestServer::start();
    let body = pattern(1000, 2);
    server.route("/r", Route::ok(body.clone()));
    server.route("/full", Route::ok(body.clone()).ignore_range());

    let r = get_once(&server, "/r", &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/1000"));
    assert_eq!(r.body, &body[100..200]);

    let r = get_once(&server, "/r", &[("Range", "bytes=900-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 900-999/1000"));
    assert_eq!(r.body, &body[900..]);

    let r = get_once(&server, "/r", &[("Range", "bytes=-10")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &body[990..]));

    let r = get_once(&server, "/r", &[("Range", "bytes=950-5000")]);
    assert_eq!(r.header("content-range"), Some("bytes 950-999/1000"));

    let r = get_once(&server, "/r", &[("Range", "bytes=1000-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1000"));

    let r = get_once(&server, "/full", &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    assert_eq!(r.header("accept-ranges"), None);
}

#[test]
fn responses_record_status_and_body_bytes() {
    let server = TestServer::start();
    server.route("/r", Route::ok(pattern(1000, 2)));
    server.route("/cut", Route::ok(pattern(1000, 2)).reset_after(300));

    assert_eq!(get_once(&server, "/r", &[("Range", "bytes=100-199")]).status, 206);
    assert_eq!(get_once(&server, "/r", &[("Range", "bytes=1000-")]).status, 416);
    let _ = get_once(&server, "/cut", &[]);

    let seen = |path| -> Vec<(Option<u16>, u64)> {
        let mut v: Vec<_> = server
            .responses_for(path)
            .iter()
            .map(|r| (r.status, r.body_bytes))
            .collect();
        v.sort();
        v
    };
    assert_eq!(seen("/r"), [(Some(206), 100), (Some(416), 0)]);
    assert_eq!(seen("/cut"), [(Some(200), 300)]);
    assert!(server.responses_for("/other").is_empty());
}

#[test]
fn conditional_requests_and_if_range() {
    let server = TestServer::start();
    let body = pattern(300, 3);
    let lm = http_date(1_700_000_000);
    server.route("/c", Route::ok(body.clone()).etag("\"v1\"").last_modified(&lm));

    let r = get_once(&server, "/c", &[("If-None-Match", "\"v1\"")]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some("\"v1\""));

    let r = get_once(&server, "/c", &[("If-None-Match", "\"v0\"")]);
    assert_eq!((r.status, r.body.len()), (200, 300));

    let later = http_date(1_700_000_100);
    let earlier = http_date(1_600_000_000);
    let r = get_once(&server, "/c", &[("If-Modified-Since", &later)]);
    assert_eq!(r.status, 304);
    let r = get_once(&server, "/c", &[("If-Modified-Since", &lm)]);
    assert_eq!(r.status, 304);
    let r = get_once(&server, "/c", &[("If-Modified-Since", &earlier)]);
    assert_eq!(r.status, 200);

    let range = ("Range", "bytes=100-");
    let r = get_once(&server, "/c", &[range, ("If-Range", "\"v1\"")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &body[100..]));
    let r = get_once(&server, "/c", &[range, ("If-Range", "\"v0\"")]);
    assert_eq!((r.status, r.body.len()), (200, 300));
    let r = get_once(&server, "/c", &[range, ("If-Range", &lm)]);
    assert_eq!(r.status, 206);
    let r = get_once(&server, "/c", &[range, ("If-Range", &earlier)]);
    assert_eq!(r.status, 200);

    // Replacing the route changes the validator seen by later requests.
    server.route("/c", Route::ok(pattern(300, 4)).etag("\"v2\""));
    let r = get_once(&server, "/c", &[range, ("If-Range", "\"v1\"")]);
    assert_eq!((r.status, r.body), (200, pattern(300, 4)));
}

#[test]
fn http_date_formats_imf_fixdate() {
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
}

#[test]
fn reset_after_closes_early() {
    let server = TestServer::start();
    server.route("/cut", Route::ok(pattern(10_000, 5)).reset_after(100));
    let mut c = Conn::open(&server);
    let r = c.get("/cut", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("10000"));
    assert!(!r.complete);
    assert_eq!(r.body, &pattern(10_000, 5)[..100]);
    assert!(c.at_eof());
}

#[test]
fn fail_times_then_success() {
    let server = TestServer::start();
    let body = pattern(2000, 6);
    server.route("/f", Route::ok(body.clone()).fail_times(2, 503).retry_after("1"));
    let mut c = Conn::open(&server);
    for _ in 0..2 {
        let r = c.get("/f", &[]);
        assert_eq!(r.status, 503);
        assert_eq!(r.body, b"error page 503");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    let r = c.get("/f", &[]);
    assert_eq!((r.status, &r.body), (200, &body));
    assert_eq!(r.header("retry-after"), None);
    assert_eq!(server.hits("/f"), 3);

    // fail_times_with: the first attempt is cut, the retry works.
    server.route(
        "/g",
        Route::ok(body.clone()).fail_times_with(1, Route::ok(body.clone()).reset_after(10)),
    );
    let r = get_once(&server, "/g", &[]);
    assert!(!r.complete);
    assert_eq!(r.body.len(), 10);
    let r = get_once(&server, "/g", &[]);
    assert!(r.complete);
    assert_eq!(sha256_hex(&r.body), sha256_hex(&body));
}

#[test]
fn concurrency_counters() {
    let server = Arc::new(TestServer::start());
    server.route("/slow", Route::ok("x").delay(Duration::from_millis(400)));
    let n = 4;
    let barrier = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (server, barrier) = (Arc::clone(&server), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut c = Conn::open(&server);
                barrier.wait();
                assert_eq!(c.get("/slow", &[]).status, 200);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.max_concurrent_connections(), n);
    assert_eq!(server.max_concurrent_requests(), n);
    assert_eq!(server.connections_opened(), n);

    // Sequential requests on one connection never overlap.
    let seq = TestServer::start();
    seq.route("/s", Route::ok("y").delay(Duration::from_millis(20)));
    let mut c = Conn::open(&seq);
    for _ in 0..3 {
        assert_eq!(c.get("/s", &[]).status, 200);
    }
    assert_eq!(seq.max_concurrent_requests(), 1);
    assert_eq!(seq.max_concurrent_connections(), 1);
}

#[test]
fn framing_variants() {
    let server = TestServer::start();
    let body = pattern(40_000, 7);
    server.route("/chunked", Route::ok(body.clone()).chunked());
    server.route("/nolen", Route::ok(body.clone()).no_length());
    server.route("/lie", Route::ok(body.clone()).lie_length(50_000));

    let mut c = Conn::open(&server);
    let r = c.get("/chunked", &[]);
    assert_eq!(r.header("content-length"), None);
    assert!(r.complete);
    assert_eq!(r.body, body);
    // Chunked keeps the connection alive.
    let r = c.get("/chunked", &[("Range", "bytes=39990-")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &body[39_990..]));

    let r = get_once(&server, "/nolen", &[]);
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.body, body);

    let r = get_once(&server, "/lie", &[]);
    assert_eq!(r.header("content-length"), Some("50000"));
    assert!(!r.complete);
    assert_eq!(r.body, body);
}

#[test]
fn head_404_auth_and_redirect() {
    let server = TestServer::start();
    server.route("/h", Route::ok(pattern(123, 8)));
    server.route(
        "/auth",
        Route::ok("secret").require_header("Authorization", "Bearer t"),
    );
    server.route("/moved", Route::redirect(302, "/h").header("X-Extra", "1"));

    let mut c = Conn::open(&server);
    c.send("HEAD", "/h", &[]);
    let r = c.read(true);
    assert_eq!((r.status, r.header("content-length")), (200, Some("123")));
    // The HEAD response had no body: the next response parses cleanly.
    let r = c.get("/nope", &[]);
    assert_eq!(r.status, 404);
    let r = c.get("/auth", &[]);
    assert_eq!((r.status, r.body.as_slice()), (401, &b"error page 401"[..]));
    let r = c.get("/auth", &[("authorization", "Bearer t")]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"secret"[..]));
    let r = c.get("/moved", &[]);
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/h"));
    assert_eq!(r.header("x-extra"), Some("1"));
    assert!(r.body.is_empty());
    assert_eq!(server.hits("/nope"), 1);
    assert_eq!(server.url("h"), format!("http://{}/h", server.addr()));
}

#[test]
fn drip_is_slow_but_complete() {
    let server = TestServer::start();
    let body = pattern(100, 9);
    server.route(
        "/drip",
        Route::ok(body.clone()).drip(25, Duration::from_millis(50)),
    );
    let start = Instant::now();
    let r = get_once(&server, "/drip", &[]);
    assert!(start.elapsed() >= Duration::from_millis(140));
    assert_eq!(r.body, body);
}

#[test]
fn stalls_are_released_promptly_on_drop() {
    let server = TestServer::start();
    server.route("/stall", Route::ok(pattern(1000, 10)).stall_after(10));
    server.route("/silent", Route::ok("x").stall_before_headers());

    let mut stalled = Conn::open(&server);
    stalled.send("GET", "/stall", &[]);
    let mut silent = Conn::open(&server);
    silent
        .writer
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    silent.send("GET", "/silent", &[]);
    let mut b = [0u8; 1];
    let err = silent.reader.read(&mut b).expect_err("no bytes before headers");
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));

    // Headers plus 10 bytes arrive, then nothing.
    let mut line = String::new();
    stalled.reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line:?}");
    while line.trim_end() != "" {
        line.clear();
        stalled.reader.read_line(&mut line).unwrap();
    }
    let mut ten = [0u8; 10];
    stalled.reader.read_exact(&mut ten).unwrap();
    assert_eq!(&ten[..], &pattern(1000, 10)[..10]);
    assert_eq!(server.max_concurrent_requests(), 2);

    let start = Instant::now();
    drop(server);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        start.elapsed()
    );
    assert!(stalled.at_eof());
}

#[test]
fn pattern_and_sha256_helpers() {
    assert_eq!(pattern(1000, 1), pattern(1000, 1));
    assert_ne!(pattern(1000, 1), pattern(1000, 2));
    assert_eq!(&pattern(1000, 1)[..10], &pattern(10, 1)[..]);
    assert!(pattern(64, 0).iter().any(|b| *b != 0));
    // No short period: shifting by 256 bytes must not line up.
    let p = pattern(1024, 3);
    assert_ne!(&p[..256], &p[256..512]);
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn run_helpers_capture_output_and_exit_code() {
    let r = support::run(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]));
    assert_eq!(r.code(), 3, "{r}");
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    assert!(r.describe().contains("exit status: 3"), "{r}");

    let r = support::run_with_stdin(&mut Command::new("cat"), b"hello");
    assert_eq!((r.code(), r.stdout.as_str()), (0, "hello"), "{r}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sub/deeper")).unwrap();
    std::fs::write(dir.path().join("b.txt"), "b").unwrap();
    std::fs::write(dir.path().join("sub/deeper/a.txt"), "a").unwrap();
    assert_eq!(
        support::list_files(dir.path()),
        vec!["b.txt".to_string(), "sub/deeper/a.txt".to_string()]
    );
}

#[test]
fn fetchq_command_has_scrubbed_environment() {
    let cmd = support::fetchq();
    let envs: Vec<_> = cmd.get_envs().map(|(k, _)| k.to_owned()).collect();
    assert!(envs.iter().any(|k| k == "NO_COLOR"));
    assert!(!envs.iter().any(|k| k.to_string_lossy().ends_with("_proxy")));
    assert!(std::path::Path::new(cmd.get_program()).exists());
}
