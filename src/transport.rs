//! fetchq's own TCP transport for ureq. It replaces ureq's `TcpConnector` to
//! give four things ureq's does not:
//!
//! - **A real idle timeout.** ureq's timeouts are deadlines per phase or for
//!   the whole body, so one used as `--timeout` would kill a healthy 10 GiB
//!   download on a slow link. Here a read fails only when *no byte at all*
//!   arrived for the idle limit; a steady trickle resets the clock on every
//!   read. (ureq 3.5 added a per-read timeout, but it cannot see the cancel flag.)
//! - **Prompt cancellation.** Reads wait in slices of [`SLICE`] and check the
//!   run's cancel flag between them, so Ctrl-C ends a stalled download within
//!   a fraction of a second.
//! - **A cheap liveness probe.** ureq probes a pooled connection when it is
//!   returned and again when it is reused, by switching the socket to
//!   non-blocking, reading, and switching back: three syscalls each time,
//!   under the pool's lock. A `recv(MSG_PEEK | MSG_DONTWAIT)` answers the same
//!   question in one. With thousands of small files this was a third of all
//!   of fetchq's syscalls.
//!
//! - **A fixed receive buffer for near peers.** See [`NEAR_RTT`].
//!
//! Connections to a proxy use this transport too: `ProxyConnector` (SOCKS,
//! and http:// through an HTTP proxy) and ureq's CONNECT connector (https://
//! through an HTTP proxy) run the chain again for the hop to the proxy.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::thread::LocalKey;
use std::time::{Duration, Instant};

use ureq::ProxyProtocol;
use ureq::config::Config as UreqConfig;
use ureq::http::uri::Scheme;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, Either, NextTimeout, Transport};

use crate::aligned::AlignedBuffers;
use crate::cancel::Cancel;
use crate::forward::Forward;
use crate::socks;

/// How long one wait on the socket lasts before the cancel flag is checked again.
/// Bounds the reaction to Ctrl-C on a stalled connection.
pub(crate) const SLICE: Duration = Duration::from_millis(200);

/// A peer whose TCP handshake took less than this is near: the same host or
/// the same LAN (1 ms is the round trip of about 100 km of fibre).
///
/// Near peers get a fixed receive buffer of [`NEAR_RCVBUF`] instead of the
/// kernel's autotuning. A fixed buffer caps a connection at buffer ÷ round
/// trip, which for a near peer is over 16 Gbit/s, so it costs nothing there;
/// and on 200 × 1 MiB files over loopback (-j 8) it took the run from
/// 0.175–0.20 s to 0.11 s and 18 % less CPU, where autotuning grew each
/// socket's buffer to 3–7 MiB of data waiting, cold in cache. A far peer keeps
/// autotuning, which can grow the window to what a long fat link needs.
pub(crate) const NEAR_RTT: Duration = Duration::from_millis(1);

/// Size of the buffer each worker streams through, and of ureq's socket
/// buffer (see `crate::client`). Measured on a 1 GiB download from a local
/// nginx into tmpfs: 64 KiB took 1.6–2.2 s, 256 KiB 1.2–1.6 s, 512 KiB
/// 0.87–1.3 s, 1–2 MiB about the same as 512 KiB; fewer, larger reads and
/// writes are what counts. 512 KiB keeps 8 workers' buffers at 8 MiB.
pub(crate) const CHUNK: usize = 512 * 1024;

/// A socket's buffers under TLS: the input stays unused (allocated only when
/// first used), and the TLS layer writes at most one record at a time, 16 KiB
/// of plaintext plus its header and tag; requests are small.
const UNDER_TLS: usize = 16 * 1024;

/// The receive buffer a near peer gets (`SO_RCVBUF`; the kernel doubles it
/// for its bookkeeping): room for two of the worker's reads.
pub(crate) const NEAR_RCVBUF: usize = 2 * CHUNK;

/// Whether the kernel grants a receive buffer of [`NEAR_RCVBUF`] (it silently
/// caps `SO_RCVBUF` at `net.core.rmem_max`, 208 KiB on a stock kernel, and a
/// capped buffer was no faster than autotuning and used more CPU).
fn near_rcvbuf_granted() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|max| max.trim().parse::<usize>().ok())
            .is_some_and(|max| max >= NEAR_RCVBUF)
    })
}

/// Give a near peer's socket its fixed receive buffer (see [`NEAR_RTT`]).
/// Best effort: a refusal leaves the kernel's autotuning in place.
fn tune_for_distance(stream: &TcpStream, handshake: Duration) {
    if handshake < NEAR_RTT && near_rcvbuf_granted() {
        let _ = socket2::SockRef::from(stream).set_recv_buffer_size(NEAR_RCVBUF);
    }
}

/// The error a read reports when no byte arrived for the idle limit.
#[derive(Debug)]
pub(crate) struct IdleTimeout(pub Duration);

impl fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no data received for {} s", self.0.as_secs_f32())
    }
}

impl std::error::Error for IdleTimeout {}

/// How often a read watched by [`abandon_when`] asks whether it is still wanted.
const WATCH_SLICE: Duration = Duration::from_millis(20);

/// Whether the connection this thread reads is still wanted.
type Wanted = Arc<dyn Fn() -> bool + Send + Sync>;

thread_local! {
    /// Set by a split download on its worker's thread (see `fetch::split`):
    /// once it says true, the bytes the thread waits for were taken over by
    /// another connection, and the wait ends with [`Abandoned`].
    static ABANDON: RefCell<Option<Wanted>> = const { RefCell::new(None) };
}

/// While the returned guard lives, reads on this thread give up with
/// [`Abandoned`] within [`WATCH_SLICE`] of `gone` turning true.
pub(crate) fn abandon_when(gone: Wanted) -> Watch {
    ThreadSetting::set(&ABANDON, gone)
}

/// Ends the watch set up by [`abandon_when`] when dropped.
pub(crate) type Watch = ThreadSetting<Wanted>;

/// A setting of this thread's reads ([`ABANDON`], [`HELD`]), cleared when
/// the guard is dropped.
pub(crate) struct ThreadSetting<T: 'static>(&'static LocalKey<RefCell<Option<T>>>);

impl<T> ThreadSetting<T> {
    fn set(key: &'static LocalKey<RefCell<Option<T>>>, value: T) -> ThreadSetting<T> {
        key.with(|slot| *slot.borrow_mut() = Some(value));
        ThreadSetting(key)
    }
}

impl<T> Drop for ThreadSetting<T> {
    fn drop(&mut self) {
        self.0.with(|slot| *slot.borrow_mut() = None);
    }
}

/// Bytes a thread holds back from the disk while it reads on (see
/// `fetch::tail`): they must go down before the thread waits for the
/// network, so a stalled download's part holds all it received.
pub(crate) trait Held {
    /// Whether anything is held now.
    fn is_held(&self) -> bool;
    /// Write what is held; called on the thread that holds it.
    fn put_down(&self);
}

/// How long a read waits for bytes before what the thread holds is put
/// down. A busy stream's reads rarely wait at all (30–40 times per 512 MiB
/// over https); a stalled one leaves nothing held for longer than this.
const HOLD_WAIT: Duration = Duration::from_millis(2);

thread_local! {
    /// Set while a download on this thread holds bytes back (see [`Held`]).
    static HELD: RefCell<Option<Rc<dyn Held>>> = const { RefCell::new(None) };
}

/// While the returned guard lives, a read on this thread that finds no
/// bytes within [`HOLD_WAIT`] puts down what `held` holds before it waits on.
pub(crate) fn put_down_before_waiting(held: Rc<dyn Held>) -> Holding {
    ThreadSetting::set(&HELD, held)
}

/// Ends what [`put_down_before_waiting`] set up when dropped.
pub(crate) type Holding = ThreadSetting<Rc<dyn Held>>;

/// The error a read reports when its bytes were taken over (see [`abandon_when`]).
#[derive(Debug)]
pub(crate) struct Abandoned;

impl fmt::Display for Abandoned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection no longer needed")
    }
}

impl std::error::Error for Abandoned {}

/// The error a read reports when the run was cancelled.
#[derive(Debug)]
pub(crate) struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Cancelled {}

/// Opens TCP connections as [`Socket`]s; passes through a transport an
/// earlier connector (the CONNECT proxy) already made.
#[derive(Debug, Clone)]
pub(crate) struct SocketConnector {
    idle: Option<Duration>,
    cancel: Cancel,
}

impl SocketConnector {
    /// Watch every connection for `idle` silence and for `cancel`.
    pub(crate) fn new(idle: Option<Duration>, cancel: Cancel) -> SocketConnector {
        SocketConnector { idle, cancel }
    }
}

impl<In: Transport> Connector<In> for SocketConnector {
    type Out = Either<In, Socket>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if let Some(transport) = chained {
            return Ok(Some(Either::A(transport)));
        }
        let budget = details.timeout.not_zero().map(|d| *d);
        let (stream, handshake) = connect_any(&details.addrs, budget)?;
        if details.config.no_delay() {
            stream.set_nodelay(true)?;
        }
        tune_for_distance(&stream, handshake);
        let config = details.config;
        // Under TLS the TLS layer reads ciphertext into its own buffer and
        // ureq reads plaintext from another (see crate::tls).
        let buffers = if details.needs_tls() {
            AlignedBuffers::new(UNDER_TLS, UNDER_TLS)
        } else {
            AlignedBuffers::new(config.input_buffer_size(), config.output_buffer_size())
        };
        Ok(Some(Either::B(Socket {
            stream,
            buffers,
            idle: self.idle,
            cancel: self.cancel.clone(),
            read_timeout: None,
            write_timeout: None,
            just_read: false,
        })))
    }
}

/// Makes the connections ureq's own chain would get wrong through a proxy:
/// every request through a SOCKS proxy, and http:// requests through an HTTP
/// proxy (absolute form, see [`crate::forward`]). https:// through an HTTP
/// proxy is left to ureq's CONNECT connector, next in the chain.
///
/// The hop to the proxy runs the agent's chain again, so it is a [`Socket`]
/// (idle limit, cancellation), with TLS when the proxy URL is https://.
#[derive(Debug, Clone)]
pub(crate) struct ProxyConnector {
    /// The agent's configuration, which names no proxy: the hop to the proxy
    /// must not be proxied itself.
    hop: Arc<UreqConfig>,
}

impl ProxyConnector {
    /// A connector whose hops to the proxy use `agent_config` (with no proxy set).
    pub(crate) fn new(agent_config: &UreqConfig) -> ProxyConnector {
        ProxyConnector {
            hop: Arc::new(agent_config.clone()),
        }
    }
}

impl<In: Transport> Connector<In> for ProxyConnector {
    type Out = Either<In, Box<dyn Transport>>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if let Some(transport) = chained {
            return Ok(Some(Either::A(transport)));
        }
        let Some(proxy) = details.config.proxy() else {
            return Ok(None);
        };
        let protocol = proxy.protocol();
        let forward = match protocol {
            // https:// goes through ureq's CONNECT connector.
            ProxyProtocol::Http | ProxyProtocol::Https => {
                if details.uri.scheme() != Some(&Scheme::HTTP) {
                    return Ok(None);
                }
                true
            }
            ProxyProtocol::Socks4
            | ProxyProtocol::Socks4A
            | ProxyProtocol::Socks5
            | ProxyProtocol::Socks5h => false,
            // Never a direct connection for a proxy fetchq cannot speak.
            _ => return Err(ureq::Error::InvalidProxyUrl),
        };
        let authority = details
            .uri
            .authority()
            .ok_or_else(|| ureq::Error::BadUri("URL has no host".into()))?;
        let proxy_uri = proxy.uri();
        let hop = ConnectionDetails {
            uri: proxy_uri,
            addrs: details
                .resolver
                .resolve(proxy_uri, &self.hop, details.timeout)
                .map_err(|e| at_proxy(e, proxy))?,
            config: &self.hop,
            request_level: false,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        let mut transport = (details.run_connector)(&hop).map_err(|e| at_proxy(e, proxy))?;
        let credentials = (proxy.username().is_some() || proxy.password().is_some())
            .then(|| (proxy.username().unwrap_or(""), proxy.password().unwrap_or("")));
        // The authority without userinfo: credentials for the origin travel
        // in ureq's Authorization header, never in the request line.
        let host_port = authority.as_str().rsplit('@').next().unwrap_or_default();
        if forward {
            return Ok(Some(Either::B(Box::new(Forward::new(
                transport,
                host_port,
                credentials,
            )))));
        }
        let default_port = if details.needs_tls() { 443 } else { 80 };
        let port = authority.port_u16().unwrap_or(default_port);
        let target = socks::target(protocol, authority.host(), port, &details.addrs)?;
        socks::handshake(&mut *transport, protocol, credentials, target, details.timeout)
            .map_err(|e| at_proxy(e, proxy))?;
        Ok(Some(Either::B(transport)))
    }
}

/// An error on the way to or through the proxy, saying which proxy (host and
/// port, never the credentials), so it is not taken for the server's.
/// Cancellation and the idle timeout pass unchanged: fetch recognises them.
fn at_proxy(e: ureq::Error, proxy: &ureq::Proxy) -> ureq::Error {
    let e = match e {
        ureq::Error::HostNotFound => io::Error::new(io::ErrorKind::NotFound, "host not found"),
        ureq::Error::Io(e)
            if !e
                .get_ref()
                .is_some_and(|inner| inner.is::<Cancelled>() || inner.is::<IdleTimeout>()) =>
        {
            e
        }
        other => return other,
    };
    let message = format!("proxy {}:{}: {e}", proxy.host(), proxy.port());
    ureq::Error::Io(io::Error::new(e.kind(), message))
}

/// Try each resolved address in turn, sharing the connect budget between
/// them; also says how long the successful handshake took.
fn connect_any(addrs: &[SocketAddr], budget: Option<Duration>) -> Result<(TcpStream, Duration), ureq::Error> {
    let start = Instant::now();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
    for (i, addr) in addrs.iter().enumerate() {
        let attempt_start = Instant::now();
        let attempt = match budget {
            Some(budget) => {
                let left = budget.saturating_sub(start.elapsed());
                if left.is_zero() {
                    return Err(ureq::Error::Timeout(ureq::Timeout::Connect));
                }
                // Later addresses get what is left; earlier ones an equal share.
                let share = left / (addrs.len() - i) as u32;
                TcpStream::connect_timeout(addr, share.max(Duration::from_millis(10)))
            }
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => return Ok((stream, attempt_start.elapsed())),
            Err(e) => last = e,
        }
    }
    if last.kind() == io::ErrorKind::TimedOut {
        return Err(ureq::Error::Timeout(ureq::Timeout::Connect));
    }
    Err(ureq::Error::Io(last))
}

/// One TCP connection with sliced, cancellable, idle-limited reads.
pub(crate) struct Socket {
    stream: TcpStream,
    buffers: AlignedBuffers,
    idle: Option<Duration>,
    cancel: Cancel,
    /// The socket's current timeouts, to skip redundant setsockopt calls.
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// The last operation was a read: the next `is_open` is the pool's
    /// check-in probe (see `is_open`).
    just_read: bool,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("peer", &self.stream.peer_addr().ok())
            .finish()
    }
}

impl Socket {
    /// A socket over `stream` with an input buffer of `input` bytes, no idle limit.
    #[cfg(test)]
    pub(crate) fn for_test(stream: TcpStream, input: usize) -> Socket {
        Socket {
            stream,
            buffers: AlignedBuffers::new(input, 1024),
            idle: None,
            cancel: Cancel::new(),
            read_timeout: None,
            write_timeout: None,
            just_read: false,
        }
    }

    /// Wait for bytes from the server (within `timeout`, the idle limit and
    /// cancellation, and while the thread's watch allows) and read them:
    /// into the socket's own input buffer, or straight `into` a caller's
    /// buffer (the TLS layer's ciphertext, which saves copying every byte
    /// through the socket's buffer). 0 at the end of the stream.
    pub(crate) fn receive(
        &mut self,
        timeout: NextTimeout,
        mut into: Option<&mut [u8]>,
    ) -> Result<usize, ureq::Error> {
        let start = Instant::now();
        let watch = ABANDON.with(|slot| slot.borrow().clone());
        let held = HELD.with(|slot| slot.borrow().clone());
        loop {
            if self.cancel.is_requested() {
                return Err(ureq::Error::Io(io::Error::other(Cancelled)));
            }
            if watch.as_ref().is_some_and(|gone| gone()) {
                return Err(ureq::Error::Io(io::Error::other(Abandoned)));
            }
            let waited = start.elapsed();
            let mut slice = if watch.is_some() { WATCH_SLICE } else { SLICE };
            if !timeout.after.is_not_happening() {
                let left = timeout.after.saturating_sub(waited);
                if left.is_zero() {
                    return Err(ureq::Error::Timeout(timeout.reason));
                }
                slice = slice.min(left);
            }
            if let Some(idle) = self.idle {
                let left = idle.saturating_sub(waited);
                if left.is_zero() {
                    let error = io::Error::new(io::ErrorKind::TimedOut, IdleTimeout(idle));
                    return Err(ureq::Error::Io(error));
                }
                slice = slice.min(left);
            }
            let holding = held.as_ref().is_some_and(|held| held.is_held());
            if holding {
                slice = slice.min(HOLD_WAIT);
            }
            self.set_read_timeout(slice.max(Duration::from_millis(1)))?;
            let read = match into.as_deref_mut() {
                Some(buf) => self.stream.read(buf),
                None => self.stream.read(self.buffers.input_append_buf()),
            };
            match read {
                Ok(n) => {
                    if into.is_none() {
                        self.buffers.input_appended(n);
                    }
                    self.just_read = true;
                    return Ok(n);
                }
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {
                    if holding
                        && is_timeout(&e)
                        && let Some(held) = &held
                    {
                        held.put_down();
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        if self.read_timeout != Some(timeout) {
            self.stream.set_read_timeout(Some(timeout))?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl Transport for Socket {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let limit = timeout.not_zero().map(|d| *d);
        if self.write_timeout != limit {
            self.stream.set_write_timeout(limit)?;
            self.write_timeout = limit;
        }
        self.just_read = false;
        let output = &self.buffers.output()[..amount];
        match self.stream.write_all(output) {
            Err(e) if is_timeout(&e) => Err(ureq::Error::Timeout(timeout.reason)),
            other => Ok(other?),
        }
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let n = self.receive(timeout, None)?;
        Ok(n > 0)
    }

    /// Open means: nothing to read and no EOF. Bytes waiting on an idle
    /// connection are garbage (or a close), so it must not be reused.
    ///
    /// ureq asks twice per request: when the connection goes back to the pool
    /// (right after the body's last read) and when it is taken out again. The
    /// second probe sees everything the first would have (stray bytes and a
    /// close alike), so the first is skipped: one syscall per request saved.
    fn is_open(&mut self) -> bool {
        if std::mem::take(&mut self.just_read) {
            return true;
        }
        let mut byte = [MaybeUninit::<u8>::uninit()];
        let socket = socket2::SockRef::from(&self.stream);
        match socket.recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
            Ok(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair() -> (Socket, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let socket = Socket {
            stream: client,
            buffers: AlignedBuffers::new(1024, 1024),
            idle: Some(Duration::from_millis(300)),
            cancel: Cancel::new(),
            read_timeout: None,
            write_timeout: None,
            just_read: false,
        };
        (socket, server)
    }

    #[test]
    fn only_near_peers_get_a_fixed_receive_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let buffer = |stream: &TcpStream| socket2::SockRef::from(stream).recv_buffer_size().unwrap();

        let far = TcpStream::connect(addr).unwrap();
        let before = buffer(&far);
        tune_for_distance(&far, NEAR_RTT);
        assert_eq!(buffer(&far), before, "a far peer keeps the kernel's buffer");

        let near = TcpStream::connect(addr).unwrap();
        tune_for_distance(&near, Duration::from_micros(50));
        if near_rcvbuf_granted() {
            // Linux reports the doubled size it reserves.
            assert!(buffer(&near) >= NEAR_RCVBUF, "{} < {NEAR_RCVBUF}", buffer(&near));
        } else {
            assert_eq!(buffer(&near), before, "a capped buffer is not worth locking");
        }
    }

    #[test]
    fn probe_sees_open_data_and_close() {
        let (mut socket, mut server) = pair();
        assert!(socket.is_open());
        // The check-in probe right after a read is skipped; the next one probes.
        socket.just_read = true;
        server.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(socket.is_open(), "check-in probe is skipped");
        server.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!socket.is_open(), "unread bytes make a connection unusable");
        let (mut socket, server) = pair();
        drop(server);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!socket.is_open(), "a closed peer is not open");
    }

    #[test]
    fn silence_hits_the_idle_limit_and_cancel_is_prompt() {
        let (mut socket, _server) = pair();
        let start = Instant::now();
        let err = socket.await_input(NextTimeout::default()).unwrap_err();
        assert!(err.to_string().contains("no data received"), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(300));

        let (mut socket, _server) = pair();
        socket.idle = None;
        let cancel = socket.cancel.clone();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            cancel.request(2);
        });
        let start = Instant::now();
        let err = socket.await_input(NextTimeout::default()).unwrap_err();
        stopper.join().unwrap();
        assert!(err.to_string().contains("interrupted"), "{err}");
        assert!(start.elapsed() < SLICE * 3);
    }
}
