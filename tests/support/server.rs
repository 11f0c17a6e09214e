//! In-process HTTP/1.1 test server for fetchq's integration tests.
//!
//! This module owns the server side of the wire in tests: a loopback listener
//! (`127.0.0.1:0`), a thread per connection, a route table that tests may
//! change at any time, and the counters tests assert on (hits, recorded
//! requests, concurrency). It deliberately speaks HTTP by writing raw bytes to
//! `std::net::TcpStream` instead of using an HTTP crate, because the point is
//! to misbehave on purpose: lie about lengths, cut bodies short, stall, drip.
//!
//! Every wait in here is bounded (stalls end after 30 s, idle keep-alive
//! connections after 30 s) and dropping the [`TestServer`] shuts every socket
//! down and waits at most about a second for its threads, so a misbehaving
//! client can never hang the test suite.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest a stall behaviour keeps a socket open; long enough for any client
/// timeout under test, short enough that a forgotten server cannot hang CI.
const MAX_STALL: Duration = Duration::from_secs(30);
/// Idle keep-alive connections are closed after this long without a request.
const IDLE_LIMIT: Duration = Duration::from_secs(30);
/// Read timeout used as a polling tick so handlers notice the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// Granularity of interruptible sleeps (delay, drip, stall).
const SLEEP_TICK: Duration = Duration::from_millis(5);
/// A client that stops reading cannot block a write for longer than this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `Drop` waits for threads before detaching them.
const DROP_WAIT: Duration = Duration::from_secs(1);
/// After a graceful close we drain the client's bytes for at most this long,
/// so unread request bytes do not turn our FIN into an RST that could destroy
/// response bytes the client has not read yet.
const LINGER_DRAIN: Duration = Duration::from_secs(2);
/// Upper bound on a request head; larger heads get 431 and a close.
const MAX_HEAD: usize = 64 * 1024;
/// Piece size used to write bodies when no drip is configured (also the
/// chunk size for chunked bodies, so a multi-chunk body is exercised).
const DEFAULT_PIECE: usize = 16 * 1024;

/// Locks a mutex, ignoring poisoning: a panicking handler thread must not turn
/// every later assertion into an unrelated `PoisonError`.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Normalises a route/hit path so `"a"` and `"/a"` mean the same thing.
fn normalise(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// The path part of a request target (everything before `?`).
fn path_only(target: &str) -> &str {
    target.split_once('?').map_or(target, |(p, _)| p)
}

// ---------------------------------------------------------------------------
// Recorded requests
// ---------------------------------------------------------------------------

/// One request as the server received it, for assertions on what the client
/// sent (headers, which connection it used, ...).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Request method as sent, e.g. `GET` or `HEAD`.
    pub method: String,
    /// Request target as sent, including any query string.
    pub path: String,
    /// Protocol version from the request line, e.g. `HTTP/1.1`.
    pub version: String,
    /// Headers in arrival order; names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
    /// Server-assigned id of the TCP connection (1-based, in accept order).
    pub connection_id: usize,
}

impl RecordedRequest {
    /// Value of the first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request path without its query string.
    pub fn path_only(&self) -> &str {
        path_only(&self.path)
    }

    /// True if the client asked to close the connection after this request
    /// (`Connection: close`, or HTTP/1.0 without `keep-alive`).
    fn wants_close(&self) -> bool {
        let tokens: Vec<String> = self
            .headers
            .iter()
            .filter(|(n, _)| n == "connection")
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        if tokens.iter().any(|t| t == "close") {
            return true;
        }
        self.version == "HTTP/1.0" && !tokens.iter().any(|t| t == "keep-alive")
    }
}

/// One response as the server wrote it, for assertions on what a client was
/// sent (e.g. "a 416 and not one body byte").
#[derive(Clone, Debug)]
pub struct SentResponse {
    /// The request path without its query string.
    pub path: String,
    /// The status written, or `None` if no head went out (a stall before
    /// the headers, a write error).
    pub status: Option<u16>,
    /// Body bytes written, without chunked framing.
    pub body_bytes: u64,
}

/// A response being written: recorded before its first byte goes out and
/// counted before each write, so a client that has read something always
/// finds it here.
struct Sending {
    path: String,
    /// The status written, or 0 before the head.
    status: AtomicUsize,
    body_bytes: AtomicUsize,
}

// ---------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------

/// How the body length is communicated to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Honest `Content-Length`.
    Length,
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// No length at all: the body ends when the connection closes.
    NoLength,
    /// This `Content-Length` is declared, the real body is sent, then close.
    Lie(u64),
}

/// Whether (and where) the response is cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cut {
    /// Send the whole response.
    None,
    /// Headers + n body bytes, then close abruptly.
    Reset(usize),
    /// Headers + n body bytes, then silence with the socket open.
    Stall(usize),
    /// Read the request, then silence with the socket open.
    StallBeforeHeaders,
}

/// What the server does for one path: a builder started by [`Route::ok`],
/// [`Route::status`] or [`Route::redirect`] and refined by chained methods.
///
/// Request handling order: `delay`, then `require_header` (401 on mismatch,
/// not counted as a failure), then `fail_times*` (the first n requests are
/// answered entirely by the failing route, plus `retry_after`), then
/// conditional requests (304), then `Range`, then framing/misbehaviour.
#[derive(Clone, Debug)]
pub struct Route {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    etag: Option<String>,
    last_modified: Option<String>,
    honour_range: bool,
    framing: Framing,
    cut: Cut,
    drip: Option<(usize, Duration)>,
    delay: Duration,
    failing: Option<(usize, Box<Route>)>,
    retry_after: Option<String>,
    required: Vec<(String, String)>,
    close: bool,
    /// The first N 206 responses are cut after this many body bytes.
    reset_ranges: Option<(usize, Arc<AtomicUsize>)>,
}

impl Route {
    fn base(status: u16, body: Vec<u8>) -> Route {
        Route {
            status,
            body,
            headers: Vec::new(),
            etag: None,
            last_modified: None,
            honour_range: false,
            framing: Framing::Length,
            cut: Cut::None,
            drip: None,
            delay: Duration::ZERO,
            failing: None,
            retry_after: None,
            required: Vec::new(),
            close: false,
            reset_ranges: None,
        }
    }

    /// 200 with this body and an honest `Content-Length`. Honours a single
    /// `Range` (206 + `Content-Range`, 416 if unsatisfiable, `Accept-Ranges:
    /// bytes` advertised) unless [`Route::ignore_range`] is used.
    pub fn ok(body: impl Into<Vec<u8>>) -> Route {
        let mut r = Route::base(200, body.into());
        r.honour_range = true;
        r
    }

    /// This status with the small body `error page NNN` (no body for 204,
    /// 304 and 1xx, which must not carry one).
    pub fn status(code: u16) -> Route {
        Route::base(code, format!("error page {code}").into_bytes())
    }

    /// A redirect with this status, a `Location` header and an empty body.
    pub fn redirect(code: u16, location: &str) -> Route {
        Route::base(code, Vec::new()).header("Location", location)
    }

    /// Adds a response header. A header with the same name as one the server
    /// would add itself (e.g. `Content-Length`, `Content-Type`, `ETag`)
    /// replaces the automatic one, so tests can forge any header they like.
    pub fn header(mut self, name: &str, value: &str) -> Route {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the `ETag` (give it with quotes, e.g. `"\"v1\""`, or `W/"v1"`).
    /// Makes `If-None-Match` answer 304 and `If-Range` with a different
    /// validator fall back to a full 200.
    pub fn etag(mut self, etag: &str) -> Route {
        self.etag = Some(etag.to_string());
        self
    }

    /// Sets `Last-Modified` (an IMF-fixdate such as
    /// `Sun, 06 Nov 1994 08:49:37 GMT`, see [`http_date`]). Makes
    /// `If-Modified-Since` answer 304 when not modified and lets `If-Range`
    /// carry a date.
    pub fn last_modified(mut self, http_date: &str) -> Route {
        self.last_modified = Some(http_date.to_string());
        self
    }

    /// Ignores `Range`: always 200 with the full body, no `Accept-Ranges`.
    pub fn ignore_range(mut self) -> Route {
        self.honour_range = false;
        self
    }

    /// Sends the body with `Transfer-Encoding: chunked` and no
    /// `Content-Length`.
    pub fn chunked(mut self) -> Route {
        self.framing = Framing::Chunked;
        self
    }

    /// Sends no `Content-Length`: the body is delimited by closing the
    /// connection.
    pub fn no_length(mut self) -> Route {
        self.framing = Framing::NoLength;
        self
    }

    /// Declares `Content-Length: declared` but sends the real body, then
    /// closes the connection (short or long lie, both work).
    pub fn lie_length(mut self, declared: u64) -> Route {
        self.framing = Framing::Lie(declared);
        self
    }

    /// Sends the headers and the first `n` body bytes, then closes the
    /// connection abruptly (std cannot set `SO_LINGER` 0, so the client sees
    /// a premature EOF rather than a guaranteed RST).
    pub fn reset_after(mut self, n: usize) -> Route {
        self.cut = Cut::Reset(n);
        self
    }

    /// Sends the headers and the first `n` body bytes, then nothing, keeping
    /// the socket open until the server is dropped or 30 s pass.
    pub fn stall_after(mut self, n: usize) -> Route {
        self.cut = Cut::Stall(n);
        self
    }

    /// Reads the request, then sends nothing, keeping the socket open until
    /// the server is dropped or 30 s pass.
    pub fn stall_before_headers(mut self) -> Route {
        self.cut = Cut::StallBeforeHeaders;
        self
    }

    /// Writes the body `chunk` bytes at a time, pausing `every` between
    /// pieces (with [`Route::chunked`], each piece is one HTTP chunk).
    pub fn drip(mut self, chunk: usize, every: Duration) -> Route {
        self.drip = Some((chunk.max(1), every));
        self
    }

    /// Waits this long after reading the request before answering, applied to
    /// every request of the route (including failing ones), so tests can
    /// observe how many requests the client keeps in flight.
    pub fn delay(mut self, d: Duration) -> Route {
        self.delay = d;
        self
    }

    /// The first `n` requests get `status` (body `error page NNN`), later
    /// ones the normal behaviour. The count restarts when the route is
    /// registered again.
    pub fn fail_times(self, n: usize, status: u16) -> Route {
        self.fail_times_with(n, Route::status(status))
    }

    /// The first `n` requests are answered as `failing` would answer them
    /// (its own status, body, headers, misbehaviour, delay; its own
    /// `fail_times`/`require_header` are ignored), later ones as `self`.
    pub fn fail_times_with(mut self, n: usize, failing: Route) -> Route {
        self.failing = Some((n, Box::new(failing)));
        self
    }

    /// Adds `Retry-After: value` to the failing responses of
    /// [`Route::fail_times`]; on a route without `fail_times` it is added to
    /// the route's own responses (e.g. `Route::status(429).retry_after("1")`).
    pub fn retry_after(mut self, value: &str) -> Route {
        self.retry_after = Some(value.to_string());
        self
    }

    /// Answers 401 (body `error page 401`) unless the request carries this
    /// header (name case-insensitive) with exactly this value. May be given
    /// several times; all must match.
    pub fn require_header(mut self, name: &str, value: &str) -> Route {
        self.required.push((name.to_string(), value.to_string()));
        self
    }

    /// The first `times` answers to range requests (206) send `after` body
    /// bytes and then close abruptly; the whole-file answer is never cut.
    pub fn reset_ranges(mut self, after: usize, times: usize) -> Route {
        self.reset_ranges = Some((after, Arc::new(AtomicUsize::new(times))));
        self
    }

    /// Sends `Connection: close` and closes the connection after an otherwise
    /// normal response (for testing clients' connection reuse).
    pub fn close_connection(mut self) -> Route {
        self.close = true;
        self
    }
}

/// A registered route plus its own request counter for `fail_times`.
struct Entry {
    route: Route,
    served: AtomicUsize,
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

/// State shared by the accept loop, the connection handlers and the tests.
struct Shared {
    stop: AtomicBool,
    routes: Mutex<HashMap<String, Arc<Entry>>>,
    requests: Mutex<Vec<RecordedRequest>>,
    responses: Mutex<Vec<Arc<Sending>>>,
    hits: Mutex<HashMap<String, usize>>,
    active_requests: AtomicUsize,
    max_requests: AtomicUsize,
    open_connections: AtomicUsize,
    max_connections: AtomicUsize,
    opened: AtomicUsize,
    /// Clones of open sockets, so `Drop` can shut them all down and unblock
    /// their handlers immediately.
    streams: Mutex<HashMap<usize, TcpStream>>,
    handlers: Mutex<Vec<JoinHandle<()>>>,
}

/// An HTTP/1.1 server on an ephemeral loopback port, running until dropped.
///
/// Dropping it stops the accept loop, shuts down every open connection and
/// waits about a second at most for the threads (stragglers are detached).
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with an empty route table (every path answers 404
    /// until routed).
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test server on 127.0.0.1:0");
        let addr = listener.local_addr().expect("test server local_addr");
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            routes: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            responses: Mutex::new(Vec::new()),
            hits: Mutex::new(HashMap::new()),
            active_requests: AtomicUsize::new(0),
            max_requests: AtomicUsize::new(0),
            open_connections: AtomicUsize::new(0),
            max_connections: AtomicUsize::new(0),
            opened: AtomicUsize::new(0),
            streams: Mutex::new(HashMap::new()),
            handlers: Mutex::new(Vec::new()),
        });
        let loop_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name(format!("testserver-accept-{}", addr.port()))
            .spawn(move || accept_loop(listener, loop_shared))
            .expect("spawn test server accept thread");
        TestServer {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// Adds or replaces the route for `path` (query strings are not part of
    /// the match). Safe while requests are in flight; replacing a route
    /// restarts its `fail_times` count.
    pub fn route(&self, path: &str, r: Route) {
        let entry = Arc::new(Entry {
            route: r,
            served: AtomicUsize::new(0),
        });
        lock(&self.shared.routes).insert(normalise(path), entry);
    }

    /// Full URL for `path`, e.g. `http://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, normalise(path))
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Number of requests received for `path` (query ignored), whatever the
    /// answer was, including 404s.
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.shared.hits)
            .get(&normalise(path))
            .copied()
            .unwrap_or(0)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The requests received for `path` (query ignored), in arrival order.
    pub fn requests_for(&self, path: &str) -> Vec<RecordedRequest> {
        let path = normalise(path);
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.path_only() == path)
            .cloned()
            .collect()
    }

    /// The responses to requests for `path` (query ignored), in the order
    /// the requests arrived; one still being written shows what went out so
    /// far.
    pub fn responses_for(&self, path: &str) -> Vec<SentResponse> {
        let path = normalise(path);
        lock(&self.shared.responses)
            .iter()
            .filter(|r| r.path == path)
            .map(|r| SentResponse {
                path: r.path.clone(),
                status: match r.status.load(Ordering::SeqCst) {
                    0 => None,
                    s => u16::try_from(s).ok(),
                },
                body_bytes: r.body_bytes.load(Ordering::SeqCst) as u64,
            })
            .collect()
    }

    /// Highest number of requests being served at once, counted from the
    /// moment a request head is read until its response is fully written
    /// (or its connection closed, for stalls).
    pub fn max_concurrent_requests(&self) -> usize {
        self.shared.max_requests.load(Ordering::SeqCst)
    }

    /// Highest number of simultaneously open TCP connections.
    pub fn max_concurrent_connections(&self) -> usize {
        self.shared.max_connections.load(Ordering::SeqCst)
    }

    /// Number of TCP connections accepted so far.
    pub fn connections_opened(&self) -> usize {
        self.shared.opened.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the loop sees the stop flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        // Unblock every handler (reads see EOF, writes fail) right away.
        for s in lock(&shared.streams).values() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + DROP_WAIT;
        if let Some(accept) = self.accept.take() {
            wait_until_finished(&accept, deadline);
            if accept.is_finished() {
                let _ = accept.join();
            }
        }
        let handlers = std::mem::take(&mut *lock(&shared.handlers));
        for h in handlers {
            wait_until_finished(&h, deadline);
            if h.is_finished() {
                // A handler's panic is not the test's failure; ignore it.
                let _ = h.join();
            }
            // Otherwise dropping the handle detaches the thread; it is
            // bounded by MAX_STALL / WRITE_TIMEOUT and the stop flag.
        }
    }
}

fn wait_until_finished(h: &JoinHandle<()>, deadline: Instant) {
    while !h.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2));
    }
}

/// Sleeps for `d` in small ticks; returns false early if the server stops.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        thread::sleep((end - now).min(SLEEP_TICK));
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match conn {
            Ok(s) => s,
            // Transient accept errors (e.g. EMFILE) must not kill the loop.
            Err(_) => {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        // Count before spawning so the counters are exact the moment the
        // client's connect() returns.
        let id = shared.opened.fetch_add(1, Ordering::SeqCst) + 1;
        let open = shared.open_connections.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_connections.fetch_max(open, Ordering::SeqCst);
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.streams).insert(id, clone);
        }
        let conn_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("testserver-conn-{id}"))
            .spawn(move || {
                let _guard = ConnGuard {
                    shared: &conn_shared,
                    id,
                };
                handle_connection(stream, id, &conn_shared);
            });
        let mut handlers = lock(&shared.handlers);
        handlers.retain(|h| !h.is_finished());
        match spawned {
            Ok(h) => handlers.push(h),
            Err(_) => {
                // The closure (and its guard) never ran: undo the counting.
                shared.open_connections.fetch_sub(1, Ordering::SeqCst);
                lock(&shared.streams).remove(&id);
            }
        }
    }
}

/// Keeps the open-connection count and the socket registry right even if a
/// handler panics.
struct ConnGuard<'a> {
    shared: &'a Shared,
    id: usize,
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.streams).remove(&self.id);
        self.shared.open_connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a request as "being served" for its lifetime.
struct ActiveGuard<'a>(&'a Shared);

impl<'a> ActiveGuard<'a> {
    fn new(shared: &'a Shared) -> Self {
        let now = shared.active_requests.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_requests.fetch_max(now, Ordering::SeqCst);
        ActiveGuard(shared)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active_requests.fetch_sub(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------
// Connection handling
// ---------------------------------------------------------------------------

/// What to do with the connection after a response.
#[derive(PartialEq, Eq)]
enum After {
    KeepAlive,
    /// Send FIN and drain, so all response bytes reach the client.
    Close,
    /// Close without ceremony (misbehaviours, write errors, stop).
    Abort,
}

fn handle_connection(mut stream: TcpStream, conn_id: usize, shared: &Shared) {
    // Short read timeout = polling tick for the stop flag and idle limit.
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head = match read_head(&mut stream, &mut buf, &shared.stop) {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(HeadError::TooLarge) => {
                let _ = write_simple(&mut stream, 431, "request head too large");
                close_gracefully(stream, &shared.stop);
                return;
            }
            Err(HeadError::Io) => return,
        };
        let Some(req) = parse_head(&head, conn_id) else {
            let _ = write_simple(&mut stream, 400, "bad request");
            close_gracefully(stream, &shared.stop);
            return;
        };
        // Request bodies are not used, but must be consumed so the next
        // request on the connection parses.
        let body_len = req
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if !discard(&mut stream, &mut buf, body_len, &shared.stop) {
            return;
        }
        *lock(&shared.hits).entry(req.path_only().to_string()).or_insert(0) += 1;
        lock(&shared.requests).push(req.clone());

        let after = {
            let _active = ActiveGuard::new(shared);
            respond(&mut stream, &req, shared)
        };
        match after {
            After::KeepAlive => {}
            After::Close => {
                close_gracefully(stream, &shared.stop);
                return;
            }
            After::Abort => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

enum HeadError {
    TooLarge,
    Io,
}

/// Reads until a complete request head is buffered; returns it (without the
/// blank line) and leaves any following bytes in `buf` for the next request.
/// `Ok(None)` means the client closed, the server stops, or the connection
/// was idle for too long.
fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<Option<Vec<u8>>, HeadError> {
    let mut idle_since = Instant::now();
    let mut tmp = [0u8; 8192];
    loop {
        // Tolerate stray CRLFs between requests (RFC 9112 section 2.2).
        while buf.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
            buf.remove(0);
        }
        if let Some(end) = head_end(buf) {
            let head: Vec<u8> = buf.drain(..end).collect();
            return Ok(Some(head));
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        if stop.load(Ordering::SeqCst) || idle_since.elapsed() > IDLE_LIMIT {
            return Ok(None);
        }
        match stream.read(&mut tmp) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                idle_since = Instant::now();
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(HeadError::Io),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// Index just past the blank line ending a head (`\r\n\r\n` or bare `\n\n`).
fn head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

fn parse_head(head: &[u8], conn_id: usize) -> Option<RecordedRequest> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let mut parts = lines.next()?.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let version = parts.next()?.to_string();
    if parts.next().is_some() || !version.starts_with("HTTP/") {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Some(RecordedRequest {
        method,
        path,
        version,
        headers,
        connection_id: conn_id,
    })
}

/// Reads and drops `len` request-body bytes (buffered ones first). Returns
/// false if the connection ended first.
fn discard(stream: &mut TcpStream, buf: &mut Vec<u8>, len: u64, stop: &AtomicBool) -> bool {
    let from_buf = usize::try_from(len).unwrap_or(usize::MAX).min(buf.len());
    buf.drain(..from_buf);
    let mut left = len - from_buf as u64;
    let mut tmp = [0u8; 8192];
    let mut idle_since = Instant::now();
    while left > 0 {
        if stop.load(Ordering::SeqCst) || idle_since.elapsed() > IDLE_LIMIT {
            return false;
        }
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(tmp.len());
        match stream.read(&mut tmp[..want]) {
            Ok(0) => return false,
            Ok(n) => {
                left -= n as u64;
                idle_since = Instant::now();
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Half-closes our side and drains what the client still sends, bounded,
/// so the kernel sends FIN rather than RST and no response byte is lost.
fn close_gracefully(mut stream: TcpStream, stop: &AtomicBool) {
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    let end = Instant::now() + LINGER_DRAIN;
    let mut tmp = [0u8; 4096];
    while Instant::now() < end && !stop.load(Ordering::SeqCst) {
        match stream.read(&mut tmp) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// A minimal response used for protocol errors before routing.
fn write_simple(stream: &mut TcpStream, status: u16, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// Answers `req`, recording what is written (see [`SentResponse`]).
fn respond(stream: &mut TcpStream, req: &RecordedRequest, shared: &Shared) -> After {
    let sent = Arc::new(Sending {
        path: req.path_only().to_string(),
        status: AtomicUsize::new(0),
        body_bytes: AtomicUsize::new(0),
    });
    lock(&shared.responses).push(Arc::clone(&sent));
    route_and_serve(stream, req, shared, &sent)
}

fn route_and_serve(stream: &mut TcpStream, req: &RecordedRequest, shared: &Shared, sent: &Sending) -> After {
    let stop = &shared.stop;
    let entry = lock(&shared.routes).get(req.path_only()).cloned();
    let Some(entry) = entry else {
        let not_found = Route::base(404, b"not found".to_vec());
        return serve(stream, req, &not_found, None, stop, sent);
    };
    let route = &entry.route;
    if !sleep_unless_stopped(route.delay, stop) {
        return After::Abort;
    }
    let authorised = route
        .required
        .iter()
        .all(|(name, value)| req.header(name) == Some(value.as_str()));
    if !authorised {
        return serve(stream, req, &Route::status(401), None, stop, sent);
    }
    let nth = entry.served.fetch_add(1, Ordering::SeqCst);
    match &route.failing {
        Some((n, failing)) if nth < *n => {
            if !sleep_unless_stopped(failing.delay, stop) {
                return After::Abort;
            }
            serve(stream, req, failing, route.retry_after.as_deref(), stop, sent)
        }
        Some(_) => serve(stream, req, route, None, stop, sent),
        None => serve(stream, req, route, route.retry_after.as_deref(), stop, sent),
    }
}

/// Outcome of interpreting a `Range` header against a body length.
enum RangeResult {
    /// Absent, malformed or multi-range: serve the full body with 200.
    Ignore,
    Unsatisfiable,
    /// Inclusive byte positions.
    Satisfiable(u64, u64),
}

fn parse_range(spec: &str, total: u64) -> RangeResult {
    let spec = spec.trim();
    let Some(unit_end) = spec.find('=') else {
        return RangeResult::Ignore;
    };
    if !spec[..unit_end].trim().eq_ignore_ascii_case("bytes") {
        return RangeResult::Ignore;
    }
    let set = &spec[unit_end + 1..];
    // Multiple ranges would need multipart/byteranges; a server may answer
    // those with the full body, which is what we do.
    if set.contains(',') {
        return RangeResult::Ignore;
    }
    let Some((first, last)) = set.split_once('-') else {
        return RangeResult::Ignore;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        let Ok(n) = last.parse::<u64>() else {
            return RangeResult::Ignore;
        };
        if n == 0 || total == 0 {
            return RangeResult::Unsatisfiable;
        }
        return RangeResult::Satisfiable(total.saturating_sub(n), total - 1);
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeResult::Ignore;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return RangeResult::Ignore,
        }
    };
    if start >= total {
        return RangeResult::Unsatisfiable;
    }
    RangeResult::Satisfiable(start, end.min(total - 1))
}

/// Weak comparison of two entity tags (RFC 9110 section 8.8.3.2), as used by
/// `If-None-Match`.
fn etag_weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

/// `If-None-Match` / `If-Modified-Since` evaluation: true means 304.
fn not_modified(req: &RecordedRequest, route: &Route) -> bool {
    if req.method != "GET" && req.method != "HEAD" {
        return false;
    }
    // If-None-Match takes precedence; If-Modified-Since is then ignored.
    if let Some(inm) = req.header("if-none-match") {
        let Some(etag) = &route.etag else {
            return false;
        };
        return inm
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || etag_weak_eq(t, etag));
    }
    if let (Some(ims), Some(lm)) = (req.header("if-modified-since"), &route.last_modified)
        && let (Some(since), Some(modified)) = (parse_http_date(ims), parse_http_date(lm))
    {
        return modified <= since;
    }
    false
}

/// True if a `Range` may be honoured given `If-Range` (absent = yes). An
/// entity tag must match strongly; a date must equal `Last-Modified`.
fn if_range_allows(req: &RecordedRequest, route: &Route) -> bool {
    let Some(v) = req.header("if-range") else {
        return true;
    };
    let v = v.trim();
    if v.starts_with('"') || v.starts_with("W/") {
        return match &route.etag {
            Some(etag) => !v.starts_with("W/") && !etag.starts_with("W/") && v == etag,
            None => false,
        };
    }
    match (&route.last_modified, parse_http_date(v)) {
        (Some(lm), Some(date)) => parse_http_date(lm) == Some(date),
        _ => false,
    }
}

/// Writes one response as `route` describes it and says what to do with the
/// connection next.
fn serve(
    stream: &mut TcpStream,
    req: &RecordedRequest,
    route: &Route,
    retry_after: Option<&str>,
    stop: &AtomicBool,
    sent: &Sending,
) -> After {
    if route.cut == Cut::StallBeforeHeaders {
        sleep_unless_stopped(MAX_STALL, stop);
        return After::Abort;
    }
    let mut status = route.status;
    let mut body: &[u8] = &route.body;
    let total = route.body.len() as u64;
    let mut auto: Vec<(String, String)> = Vec::new();
    let mut add = |n: &str, v: String| auto.push((n.to_string(), v));

    if let Some(etag) = &route.etag {
        add("ETag", etag.clone());
    }
    if let Some(lm) = &route.last_modified {
        add("Last-Modified", lm.clone());
    }
    if status == 200 {
        if not_modified(req, route) {
            status = 304;
        } else if route.honour_range {
            add("Accept-Ranges", "bytes".to_string());
            if let Some(range) = req.header("range")
                && if_range_allows(req, route)
            {
                match parse_range(range, total) {
                    RangeResult::Ignore => {}
                    RangeResult::Unsatisfiable => {
                        status = 416;
                        body = &[];
                        add("Content-Range", format!("bytes */{total}"));
                    }
                    RangeResult::Satisfiable(first, last) => {
                        status = 206;
                        body = &route.body[first as usize..=last as usize];
                        add("Content-Range", format!("bytes {first}-{last}/{total}"));
                    }
                }
            }
        }
    }
    if let Some(ra) = retry_after {
        add("Retry-After", ra.to_string());
    }

    // Statuses that never carry a body (RFC 9110 sections 15.3.5, 15.4.5).
    let bodyless = status == 304 || status == 204 || (100..200).contains(&status);
    if bodyless {
        body = &[];
    }
    let mut after = if route.close || req.wants_close() {
        After::Close
    } else {
        After::KeepAlive
    };
    if !bodyless {
        match route.framing {
            Framing::Length => add("Content-Length", body.len().to_string()),
            Framing::Chunked => add("Transfer-Encoding", "chunked".to_string()),
            Framing::NoLength => after = After::Close,
            Framing::Lie(declared) => {
                add("Content-Length", declared.to_string());
                after = After::Close;
            }
        }
    }
    if after == After::Close && route.cut == Cut::None {
        add("Connection", "close".to_string());
    }

    // User headers replace automatic ones of the same name.
    let mut headers: Vec<(String, String)> = auto
        .into_iter()
        .filter(|(n, _)| !route.headers.iter().any(|(u, _)| u.eq_ignore_ascii_case(n)))
        .collect();
    headers.extend(route.headers.iter().cloned());

    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (n, v) in &headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    sent.status.store(usize::from(status), Ordering::SeqCst);
    if stream.write_all(head.as_bytes()).is_err() {
        return After::Abort;
    }

    if req.method == "HEAD" {
        body = &[];
    }
    let mut cut = route.cut;
    if status == 206
        && let Some((after, left)) = &route.reset_ranges
        && left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    {
        cut = Cut::Reset(*after);
    }
    let limit = match cut {
        Cut::Reset(n) | Cut::Stall(n) => Some(n),
        _ => None,
    };
    let chunked = route.framing == Framing::Chunked && !bodyless && req.method != "HEAD";
    if write_body(stream, body, chunked, limit, route.drip, stop, &sent.body_bytes).is_err() {
        return After::Abort;
    }
    let _ = stream.flush();
    match cut {
        Cut::Reset(_) => After::Abort,
        Cut::Stall(_) => {
            sleep_unless_stopped(MAX_STALL, stop);
            After::Abort
        }
        _ => after,
    }
}

/// Writes `body` in pieces (drip size or [`DEFAULT_PIECE`]), as HTTP chunks
/// if `chunked`, stopping after `limit` payload bytes if given (a cut body
/// never gets the chunked terminator). Adds each piece's payload to
/// `written` before writing it.
fn write_body(
    stream: &mut TcpStream,
    body: &[u8],
    chunked: bool,
    limit: Option<usize>,
    drip: Option<(usize, Duration)>,
    stop: &AtomicBool,
    written: &AtomicUsize,
) -> io::Result<()> {
    let piece = drip.map_or(DEFAULT_PIECE, |(c, _)| c);
    let cap = limit.unwrap_or(usize::MAX);
    let mut sent = 0usize;
    for (i, part) in body.chunks(piece).enumerate() {
        if sent >= cap {
            return Ok(());
        }
        if i > 0
            && let Some((_, every)) = drip
        {
            stream.flush()?;
            if !sleep_unless_stopped(every, stop) {
                return Err(io::ErrorKind::Interrupted.into());
            }
        }
        if chunked {
            stream.write_all(format!("{:x}\r\n", part.len()).as_bytes())?;
        }
        let n = part.len().min(cap - sent);
        written.fetch_add(n, Ordering::SeqCst);
        stream.write_all(&part[..n])?;
        sent += n;
        if n < part.len() {
            return Ok(());
        }
        if chunked {
            stream.write_all(b"\r\n")?;
        }
    }
    if chunked && limit.is_none() {
        stream.write_all(b"0\r\n\r\n")?;
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        410 => "Gone",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

// ---------------------------------------------------------------------------
// Dates and data helpers
// ---------------------------------------------------------------------------

/// Parses an HTTP-date (RFC 9110 section 5.6.7: the IMF-fixdate and the two
/// obsolete forms); `None` for anything else, which callers treat as "does
/// not match".
fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s.trim()).ok()
}

/// Formats Unix seconds as an IMF-fixdate, e.g. for
/// [`Route::last_modified`] and `If-Modified-Since` in tests.
pub fn http_date(unix_secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix_secs))
}

/// Lowercase hex SHA-256 of `data`, for comparing downloaded files.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// `len` deterministic pseudo-random bytes for `seed` (xorshift64*): cheap,
/// never all zeros, and without a short period, so a resume at the wrong
/// offset or a spliced body cannot compare equal by accident. Different
/// seeds give different data; a prefix of a longer pattern equals the
/// shorter pattern with the same seed.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ (u64::from(seed) << 32 | u64::from(seed));
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------
// A server whose responses wait for the test
// ---------------------------------------------------------------------------

/// A minimal server on 127.0.0.1 for races a test must put in order. Each
/// path serves a body (200, `Content-Length`, then the connection closes); a
/// *held* path sends its headers and first byte, then waits until the test
/// calls [`GateServer::release`] (at most [`MAX_STALL`]) before the rest.
pub struct GateServer {
    addr: SocketAddr,
    gate: Arc<Gate>,
    accept: Option<JoinHandle<()>>,
}

/// What the accept loop and the handlers of a [`GateServer`] share.
struct Gate {
    stop: AtomicBool,
    /// Path → (body, held).
    bodies: Mutex<HashMap<String, (Vec<u8>, bool)>>,
    hits: Mutex<Vec<String>>,
    released: Mutex<bool>,
    opened: std::sync::Condvar,
}

impl GateServer {
    /// Starts a server that answers 404 until paths are added.
    pub fn start() -> GateServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind gate server");
        let addr = listener.local_addr().expect("gate server local_addr");
        let gate = Arc::new(Gate {
            stop: AtomicBool::new(false),
            bodies: Mutex::new(HashMap::new()),
            hits: Mutex::new(Vec::new()),
            released: Mutex::new(false),
            opened: std::sync::Condvar::new(),
        });
        let shared = Arc::clone(&gate);
        let accept = thread::spawn(move || {
            for conn in listener.incoming() {
                if shared.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let shared = Arc::clone(&shared);
                thread::spawn(move || gate_serve(stream, &shared));
            }
        });
        GateServer {
            addr,
            gate,
            accept: Some(accept),
        }
    }

    /// Serves `body` at `path` at once.
    pub fn serve(&self, path: &str, body: Vec<u8>) {
        lock(&self.gate.bodies).insert(normalise(path), (body, false));
    }

    /// Serves `body` at `path`, holding all but its first byte until [`GateServer::release`].
    pub fn hold(&self, path: &str, body: Vec<u8>) {
        lock(&self.gate.bodies).insert(normalise(path), (body, true));
    }

    /// Full URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, normalise(path))
    }

    /// Waits until a request for `path` arrived, `limit` at most; whether it did.
    pub fn wait_for_hit(&self, path: &str, limit: Duration) -> bool {
        let path = normalise(path);
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if lock(&self.gate.hits).contains(&path) {
                return true;
            }
            thread::sleep(SLEEP_TICK);
        }
        false
    }

    /// Lets every held response (current and later) send the rest of its body.
    pub fn release(&self) {
        *lock(&self.gate.released) = true;
        self.gate.opened.notify_all();
    }
}

impl Drop for GateServer {
    fn drop(&mut self) {
        self.gate.stop.store(true, Ordering::SeqCst);
        self.release();
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        if let Some(accept) = self.accept.take() {
            wait_until_finished(&accept, Instant::now() + DROP_WAIT);
        }
    }
}

fn gate_serve(mut stream: TcpStream, gate: &Gate) {
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let mut buf = Vec::new();
    let Ok(Some(head)) = read_head(&mut stream, &mut buf, &gate.stop) else {
        return;
    };
    let Some(req) = parse_head(&head, 0) else {
        return;
    };
    let path = req.path_only().to_string();
    lock(&gate.hits).push(path.clone());
    let Some((body, held)) = lock(&gate.bodies).get(&path).cloned() else {
        let _ = write_simple(&mut stream, 404, "not found");
        return;
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let first = body.len().min(1);
    if stream.write_all(head.as_bytes()).is_err() || stream.write_all(&body[..first]).is_err() {
        return;
    }
    let _ = stream.flush();
    if held {
        let released = lock(&gate.released);
        let _ = gate
            .opened
            .wait_timeout_while(released, MAX_STALL, |released| !*released);
    }
    let _ = stream.write_all(&body[first..]);
    close_gracefully(stream, &gate.stop);
}

impl TestServer {
    /// Serve `r` for a request target matched verbatim, such as the absolute
    /// form `http://host/path` a client sends to an HTTP proxy (this server
    /// then stands in for every host reached through it).
    pub fn route_target(&self, target: &str, r: Route) {
        let entry = Arc::new(Entry {
            route: r,
            served: AtomicUsize::new(0),
        });
        lock(&self.shared.routes).insert(target.to_string(), entry);
    }
}
