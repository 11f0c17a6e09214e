//! fetchq's TLS layer for ureq: one rustls [`ClientConfig`] per run, and a
//! transport that hands ureq as much plaintext per call as has arrived.
//!
//! It replaces ureq's `RustlsConnector` for three reasons:
//!
//! - **Reads as large as the socket's.** ureq's TLS transport returns one TLS
//!   record (at most 16 KiB) per read, so a 512 MiB body became 32,768 reads
//!   and as many `write` calls to the file. [`TlsTransport`] keeps decrypting
//!   records while their bytes are already buffered, and returns only when the
//!   buffer is full or the next record has not arrived yet.
//! - **One client configuration, shared.** Every connection of the run uses
//!   the same [`ClientConfig`], so its session cache lets a reconnection to a
//!   server resume (a ticket, no certificate check) instead of a full handshake.
//! - **Records decrypted where they lie.** fetchq keeps the ciphertext and
//!   drives rustls' unbuffered API, so it can keep the copy of each record's
//!   plaintext out of `memcpy`'s slow case (see [`TlsTransport`]), and its
//!   socket reads straight into that ciphertext buffer (see [`Link`]).
//!
//! The TCP side stays fetchq's [`crate::transport::Socket`] (idle limit,
//! cancellation), read through [`Wire`].

use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rustls::client::UnbufferedClientConnection;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use ureq::unversioned::transport::time::Duration;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, Either, NextTimeout, Transport};

use crate::aligned::{self, AlignedBuffers};
use crate::transport::Socket;

/// How much ciphertext a connection holds for rustls to decrypt, which is
/// also the most one read from fetchq's socket takes (it reads straight into
/// this buffer, see [`Link`]). Pages are touched only as bytes arrive, so a
/// connection that only ever carries small files keeps a small footprint:
/// 2,000 × 64 KiB over 8 connections peaked at 11.4 MiB with 64 KiB and
/// with 256 KiB. On a 512 MiB body 256 KiB reads took the `recv` and
/// `write` calls from about 8,200 each to about 3,000.
const CIPHERTEXT_BUFFER: usize = 256 * 1024;

/// The plaintext ureq reads from, which is also the largest response head
/// fetchq accepts over TLS: 256 KiB, above curl's 100 KiB. The worker's reads
/// (and so its writes) get at most this much.
const PLAINTEXT_BUFFER: usize = 256 * 1024;

/// Which certificates a run trusts.
#[derive(Debug)]
pub(crate) enum Trust {
    /// The platform's verifier (the system store; corporate CAs work).
    Platform,
    /// `--cacert`: these certificates, then the system store and the
    /// built-in Mozilla roots (see [`UserFirst`]).
    UserFirst(Vec<CertificateDer<'static>>),
    /// Any certificate (`--insecure`).
    Anything,
}

/// The run's rustls configuration: ring, TLS 1.2 and 1.3, rustls' in-memory
/// session cache (256 servers), SNI on, and `identity` (`--cert`, `--key`)
/// presented to servers that ask for a client certificate.
pub(crate) fn client_config(
    trust: &Trust,
    identity: Option<&Arc<CertifiedKey>>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let config = match trust {
        Trust::Platform => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(rustls_platform_verifier::Verifier::new(provider)?)),
        Trust::UserFirst(user) => {
            let verifier = UserFirst::new(user.clone(), provider)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
        }
        Trust::Anything => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                provider.signature_verification_algorithms,
            ))),
    };
    Ok(Arc::new(match identity {
        Some(key) => config.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(key.clone()))),
        None => config.with_no_client_auth(),
    }))
}

/// Wraps a connection in TLS when its URL asks for it; passes everything
/// else (and a transport that is TLS already) through.
///
/// The configuration is built on the first TLS connection: the platform
/// verifier reads the system store when it is made (17 M instructions), which
/// a run over plain http never needs.
#[derive(Debug, Clone)]
pub(crate) struct TlsConnector {
    trust: Arc<Trust>,
    identity: Option<Arc<CertifiedKey>>,
    config: Arc<OnceLock<Result<Arc<ClientConfig>, rustls::Error>>>,
}

impl TlsConnector {
    pub(crate) fn new(trust: Trust, identity: Option<Arc<CertifiedKey>>) -> TlsConnector {
        TlsConnector {
            trust: Arc::new(trust),
            identity,
            config: Arc::new(OnceLock::new()),
        }
    }
}

/// Next in the chain after [`Socket`]'s connector, so a connection on fetchq's
/// own socket reads its ciphertext straight from it (see [`Link`]).
impl<In: Transport> Connector<Either<In, Socket>> for TlsConnector {
    type Out = Either<Either<In, Socket>, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<Either<In, Socket>>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .host()
            .ok_or_else(|| ureq::Error::BadUri("URL has no host".into()))?;
        // An IPv6 literal comes bracketed in the URI; a server name never is.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host)
            .map_err(|_| ureq::Error::BadUri(format!("{host:?} is not a valid TLS server name")))?
            .to_owned();
        let link = match transport {
            Either::B(socket) => Link::Socket(socket),
            other => Link::Chained(other.boxed()),
        };
        let mut sock = Wire::new(link);
        sock.set_timeout(details.timeout);
        let config = self
            .config
            .get_or_init(|| client_config(&self.trust, self.identity.as_ref()))
            .clone()?;
        let output = details.config.output_buffer_size();
        let transport = TlsTransport::handshake(config, name, sock, output)?;
        Ok(Some(Either::B(transport)))
    }
}

/// One TLS connection as ureq sees it, on rustls' unbuffered API: fetchq
/// holds the ciphertext, rustls decrypts each record where it lies.
///
/// The buffered `rustls::ClientConnection` keeps its own record buffer, and
/// every record it decrypts there sits at the same address; its plaintext is
/// then copied into a fresh allocation that glibc hands back at the same
/// address each time. When those two addresses fall in the window where
/// `memcpy` crawls (see [`crate::aligned`]) every record of the connection
/// pays for it: on the 512 MiB file that was a third of a second. Here the
/// records stay in fetchq's [`Ciphertext`] buffer, which moves the next record
/// out of that window before rustls decrypts it.
pub(crate) struct TlsTransport {
    conn: UnbufferedClientConnection,
    sock: Wire,
    incoming: Ciphertext,
    /// Records rustls encoded, waiting to be sent.
    outgoing: Vec<u8>,
    /// The plaintext ureq reads.
    buffers: AlignedBuffers,
    /// Plaintext of a record that did not fit in `buffers`, and how much of it was taken.
    spill: Vec<u8>,
    spilled: usize,
    /// Where rustls put the last record's plaintext: the copy out of the next
    /// record likely goes to the same place.
    last_plaintext: usize,
    /// The server sent close_notify: no more plaintext will come.
    closed: bool,
    /// A read failed: the connection must not go back to the pool.
    failed: bool,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport")
            .field("inner", &self.sock.link)
            .finish()
    }
}

/// Largest plaintext in one TLS record (RFC 8446 §5.1).
const MAX_PLAINTEXT: usize = 16 * 1024;

/// What one step of rustls' state machine asked for.
enum Step {
    /// Records were processed or sent: ask again.
    Again,
    /// The handshake is done and nothing is buffered: send, or read more.
    Idle,
    /// The request was encrypted and sent.
    Sent,
    /// The handshake needs more from the server.
    Blocked,
    /// The server closed the TLS session.
    Closed,
}

/// An error from rustls (a bad record, a failed handshake) as ureq sees it:
/// an I/O error of kind `InvalidData`, as rustls' own streams report it.
fn tls_error(e: rustls::Error) -> ureq::Error {
    ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, e))
}

impl TlsTransport {
    /// Run the handshake with the server at the other end of `sock`;
    /// `output` is ureq's output buffer size (the largest request head).
    fn handshake(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        sock: Wire,
        output: usize,
    ) -> Result<TlsTransport, ureq::Error> {
        let conn = UnbufferedClientConnection::new(config, name)?;
        let mut tls = TlsTransport {
            conn,
            sock,
            incoming: Ciphertext::new(CIPHERTEXT_BUFFER),
            outgoing: Vec::new(),
            buffers: AlignedBuffers::new(PLAINTEXT_BUFFER, output),
            spill: Vec::new(),
            spilled: 0,
            last_plaintext: 0,
            closed: false,
            failed: false,
        };
        loop {
            match tls.step(None).map_err(not_tls)? {
                Step::Again => {}
                Step::Idle | Step::Sent => return Ok(tls),
                Step::Blocked => {
                    if !tls.fill(true)? {
                        return Err(ureq::Error::Io(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the server closed the connection during the TLS handshake",
                        )));
                    }
                }
                Step::Closed => {
                    return Err(ureq::Error::Io(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the server closed the TLS session during the handshake",
                    )));
                }
            }
        }
    }

    /// One turn of rustls' state machine over the ciphertext received so far.
    /// Plaintext goes to ureq's buffer (what does not fit, to `spill`); once
    /// rustls may encrypt, `request` (at most one record's worth) is sent.
    fn step(&mut self, request: Option<&[u8]>) -> Result<Step, ureq::Error> {
        self.incoming.place_away_from(self.last_plaintext);
        let status = self.conn.process_tls_records(self.incoming.unread());
        let mut discard = status.discard;
        let step = match status.state.map_err(tls_error)? {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record.map_err(tls_error)?;
                    discard += record.discard;
                    self.last_plaintext = record.payload.as_ptr() as usize;
                    let input = self.buffers.input_append_buf();
                    let n = aligned::copy(input, record.payload);
                    self.buffers.input_appended(n);
                    self.spill.extend_from_slice(&record.payload[n..]);
                }
                Step::Again
            }
            ConnectionState::EncodeTlsData(mut data) => {
                let start = self.outgoing.len();
                self.outgoing.resize(start + MAX_PLAINTEXT, 0);
                let n = match data.encode(&mut self.outgoing[start..]) {
                    Ok(n) => n,
                    Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                        self.outgoing.resize(start + required_size, 0);
                        data.encode(&mut self.outgoing[start..])
                            .map_err(|e| tls_error(rustls::Error::General(e.to_string())))?
                    }
                    Err(e) => return Err(tls_error(rustls::Error::General(e.to_string()))),
                };
                self.outgoing.truncate(start + n);
                Step::Again
            }
            ConnectionState::TransmitTlsData(data) => {
                self.sock.send(&self.outgoing)?;
                self.outgoing.clear();
                data.done();
                Step::Again
            }
            ConnectionState::BlockedHandshake => Step::Blocked,
            ConnectionState::WriteTraffic(mut traffic) => match request {
                Some(request) => {
                    self.outgoing.resize(request.len() + 1024, 0);
                    let n = match traffic.encrypt(request, &mut self.outgoing) {
                        Ok(n) => n,
                        Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                            self.outgoing.resize(required_size, 0);
                            traffic
                                .encrypt(request, &mut self.outgoing)
                                .map_err(|e| tls_error(rustls::Error::General(e.to_string())))?
                        }
                        Err(e) => return Err(tls_error(rustls::Error::General(e.to_string()))),
                    };
                    self.outgoing.truncate(n);
                    self.sock.send(&self.outgoing)?;
                    self.outgoing.clear();
                    Step::Sent
                }
                None => Step::Idle,
            },
            ConnectionState::PeerClosed | ConnectionState::Closed => Step::Closed,
            _ => {
                let e = rustls::Error::General("unexpected TLS connection state".into());
                return Err(tls_error(e));
            }
        };
        self.incoming.consume(discard);
        Ok(step)
    }

    /// Move ciphertext from the socket into [`Ciphertext`]; with `wait`, wait
    /// for the network when the socket has nothing buffered. False at the end
    /// of the stream (or, without `wait`, when nothing is buffered).
    fn fill(&mut self, wait: bool) -> Result<bool, ureq::Error> {
        self.sock.receive(&mut self.incoming, wait)
    }

    /// Plaintext left over from a record that did not fit, into ureq's buffer.
    fn drain_spill(&mut self) -> usize {
        let left = &self.spill[self.spilled..];
        if left.is_empty() {
            return 0;
        }
        let n = aligned::copy(self.buffers.input_append_buf(), left);
        self.buffers.input_appended(n);
        self.spilled += n;
        if self.spilled == self.spill.len() {
            self.spill.clear();
            self.spilled = 0;
        }
        n
    }

    /// Fill ureq's buffer with the plaintext of every record already received,
    /// waiting for the network only while nothing has been read; false once
    /// the server closed the session and everything was read.
    fn read_plaintext(&mut self) -> Result<bool, ureq::Error> {
        let mut total = self.drain_spill();
        loop {
            // Room for one more record; the spill holds the rest.
            if !self.spill.is_empty() || self.buffers.input_append_buf().len() < MAX_PLAINTEXT && total > 0 {
                break;
            }
            if self.closed {
                break;
            }
            let before = self.buffers.input().len();
            match self.step(None)? {
                Step::Again | Step::Sent => {
                    total += self.buffers.input().len().saturating_sub(before);
                    total += self.drain_spill();
                }
                Step::Idle | Step::Blocked => {
                    // Wait for the network only while nothing has been read.
                    if !self.fill(total == 0)? {
                        if total == 0 {
                            return Err(ureq::Error::Io(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "peer closed connection without sending TLS close_notify",
                            )));
                        }
                        break;
                    }
                }
                Step::Closed => self.closed = true,
            }
        }
        Ok(total > 0)
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.sock.set_timeout(timeout);
        // A request head is small; a copy lets rustls' state machine borrow `self`.
        let request = self.buffers.output()[..amount].to_vec();
        for record in request.chunks(MAX_PLAINTEXT) {
            // Until rustls may encrypt; records that arrive meanwhile are read.
            loop {
                match self.step(Some(record))? {
                    Step::Sent => break,
                    Step::Again | Step::Idle => {}
                    Step::Blocked => {
                        if !self.fill(true)? {
                            return Err(ureq::Error::Io(io::ErrorKind::UnexpectedEof.into()));
                        }
                    }
                    Step::Closed => {
                        self.closed = true;
                        return Err(ureq::Error::Io(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "the server closed the TLS session",
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Fill ureq's buffer with the plaintext of every record already
    /// received; wait for the network only while nothing has been read.
    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.sock.set_timeout(timeout);
        let read = self.read_plaintext();
        if read.is_err() {
            self.failed = true;
        }
        read
    }

    /// A connection whose last read ended in an error, or whose server
    /// closed the session, is never reused.
    fn is_open(&mut self) -> bool {
        !self.failed && !self.closed && self.sock.transport().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// The ciphertext received and not yet decrypted. rustls decrypts each
/// record in place here; [`Ciphertext::place_away_from`] moves the next
/// record when the copy of its plaintext would run into `memcpy`'s slow case.
struct Ciphertext {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// Bytes of a TLS record before its payload.
const RECORD_HEADER: usize = 5;

impl Ciphertext {
    fn new(capacity: usize) -> Ciphertext {
        Ciphertext {
            buf: vec![0; capacity],
            start: 0,
            end: 0,
        }
    }

    fn unread(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// The free room after the unread bytes, at least `want` (or half the
    /// buffer) if moving the unread rest to the front makes it so.
    fn room(&mut self, want: usize) -> &mut [u8] {
        if self.buf.len() - self.end < want.min(self.buf.len() / 2) && self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were put in [`Ciphertext::room`].
    fn filled(&mut self, n: usize) {
        self.end += n;
    }

    /// Append what fits of `bytes`; returns how much was taken.
    fn append(&mut self, bytes: &[u8]) -> usize {
        let n = aligned::copy(self.room(bytes.len()), bytes);
        self.filled(n);
        n
    }

    /// If the next record's payload lies 1 to 63 bytes before `plaintext`
    /// modulo a page, where `memcpy` from it would crawl, move the unread
    /// bytes by 64.
    fn place_away_from(&mut self, plaintext: usize) {
        if plaintext == 0 || self.start == self.end {
            return;
        }
        let payload = self.buf.as_ptr() as usize + self.start + RECORD_HEADER;
        let ahead = plaintext.wrapping_sub(payload) % aligned::PAGE;
        if !(1..64).contains(&ahead) {
            return;
        }
        let len = self.end - self.start;
        let to = if self.start >= 64 {
            self.start - 64
        } else if self.end + 64 <= self.buf.len() {
            self.start + 64
        } else {
            return;
        };
        self.buf.copy_within(self.start..self.end, to);
        self.start = to;
        self.end = to + len;
    }
}

/// The ciphertext side of a TLS connection: the link to the server, with
/// ureq's timeout for the call in progress.
struct Wire {
    link: Link,
    timeout: NextTimeout,
    /// When `timeout` was set: each wait gets what is left of it.
    set_at: Instant,
}

/// What a TLS connection's ciphertext travels over.
#[derive(Debug)]
enum Link {
    /// fetchq's own socket, read straight into the [`Ciphertext`]: every
    /// byte copied once less than through the socket's own buffer.
    Socket(Socket),
    /// Any other transport (the tunnel through a proxy), read through its
    /// input buffer.
    Chained(Box<dyn Transport>),
}

impl Wire {
    fn new(link: Link) -> Wire {
        Wire {
            link,
            timeout: NextTimeout::default(),
            set_at: Instant::now(),
        }
    }

    fn set_timeout(&mut self, timeout: NextTimeout) {
        self.timeout = timeout;
        self.set_at = Instant::now();
    }

    /// The timeout for a wait now: the one set, less the time since.
    fn timeout_now(&self) -> NextTimeout {
        let mut timeout = self.timeout;
        if let Duration::Exact(after) = timeout.after {
            timeout.after = Duration::Exact(after.saturating_sub(self.set_at.elapsed()));
        }
        timeout
    }

    fn transport(&mut self) -> &mut dyn Transport {
        match &mut self.link {
            Link::Socket(socket) => socket,
            Link::Chained(transport) => transport.as_mut(),
        }
    }

    /// Move ciphertext from the server into `incoming`; with `wait`, wait
    /// for the network when nothing is buffered. False at the end of the
    /// stream (or, without `wait`, when nothing is buffered).
    fn receive(&mut self, incoming: &mut Ciphertext, wait: bool) -> Result<bool, ureq::Error> {
        let timeout = self.timeout_now();
        let n = match &mut self.link {
            // The socket buffers nothing of its own.
            Link::Socket(_) if !wait => return Ok(false),
            Link::Socket(socket) => {
                let room = incoming.room(usize::MAX);
                if room.is_empty() {
                    return Err(record_too_large());
                }
                let n = socket.receive(timeout, Some(room))?;
                incoming.filled(n);
                n
            }
            Link::Chained(transport) => {
                if !wait && transport.buffers().input().is_empty() {
                    return Ok(false);
                }
                if !transport.maybe_await_input(timeout)? {
                    return Ok(false);
                }
                let n = incoming.append(transport.buffers().input());
                if n == 0 {
                    return Err(record_too_large());
                }
                transport.buffers().input_consume(n);
                n
            }
        };
        Ok(n > 0)
    }

    /// Send all of `bytes` through the transport's output buffer.
    fn send(&mut self, mut bytes: &[u8]) -> Result<(), ureq::Error> {
        while !bytes.is_empty() {
            let n = aligned::copy(self.transport().buffers().output(), bytes);
            let timeout = self.timeout_now();
            self.transport().transmit_output(n, timeout)?;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

/// A handshake whose first reply is not a TLS record at all: the server
/// speaks something else on that port (most often plain HTTP), which
/// rustls calls a "corrupt message of type InvalidContentType".
fn not_tls(e: ureq::Error) -> ureq::Error {
    let ureq::Error::Io(io) = &e else { return e };
    let invalid = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
    match io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(error) if *error == invalid => ureq::Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server's reply is not TLS (a plain http:// server behind an https:// URL?)",
        )),
        _ => e,
    }
}

/// The ciphertext buffer is full and rustls found no whole record in it:
/// never happens with records of the sizes TLS allows.
fn record_too_large() -> ureq::Error {
    tls_error(rustls::Error::General(
        "a TLS record larger than the receive buffer".into(),
    ))
}

/// `--cacert`'s trust: the user's certificates, the system store and the
/// built-in roots. Reading and decoding the system store cost 17.2 M of the
/// 26.0 M instructions of a one-file https run, so it is done only when a server's
/// chain does not verify against the user's certificates alone; the verdict
/// is then the one of the whole set.
#[derive(Debug)]
struct UserFirst {
    user_certs: Vec<CertificateDer<'static>>,
    user: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
    everything: OnceLock<Result<Arc<WebPkiServerVerifier>, rustls::Error>>,
}

impl UserFirst {
    fn new(
        user_certs: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<UserFirst, rustls::Error> {
        let user = verifier(user_certs.iter().cloned(), &provider)?;
        Ok(UserFirst {
            user_certs,
            user,
            provider,
            everything: OnceLock::new(),
        })
    }

    /// The verifier for the whole set, built on first use.
    fn everything(&self) -> Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.everything
            .get_or_init(|| {
                // A system store that cannot be read only loses its extra
                // roots; the built-in roots and the user's still apply.
                let system = rustls_native_certs::load_native_certs().certs;
                let builtin = webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned();
                verifier(
                    self.user_certs.iter().cloned().chain(system).chain(builtin),
                    &self.provider,
                )
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// A webpki verifier trusting `certs` (those that parse as trust anchors).
fn verifier(
    certs: impl IntoIterator<Item = CertificateDer<'static>>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(certs);
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))
}

impl ServerCertVerifier for UserFirst {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.user
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .or_else(|_| {
                self.everything()?.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                )
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.user.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.user.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.user.supported_verify_schemes()
    }
}

/// `--insecure`: trusts any certificate and any handshake signature.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    use rustls::{ServerConfig, ServerConnection, StreamOwned};
    use std::io::{Read, Write};

    use crate::transport::Socket;

    /// A self-signed test certificate for `localhost` and its key (test only).
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBoDCCAUagAwIBAgIUU6DACSc1siFO570DPoQCIyrq3GkwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQZmV0Y2hxLXVuaXQtdGVzdDAgFw0yNjExMjkwNDA1MTdaGA8y
MTI2MTEwNTA0MDUxN1owGzEZMBcGA1UEAwwQZmV0Y2hxLXVuaXQtdGVzdDBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABG9y0bVBAFT4wowxaa/pICOTno7T1fe2xMBC
PXVJS4KBPxccPmvjNvbAiFEnGEnkGVReh94fI2AvKEmGHpEsnuSjZjBkMB0GA1Ud
DgQWBBSHsdgYAJ76pJt0KTpwo3pAeE++8zAfBgNVHSMEGDAWgBSHsdgYAJ76pJt0
KTpwo3pAeE++8zAUBgNVHREEDTALgglsb2NhbGhvc3QwDAYDVR0TAQH/BAIwADAK
BggqhkjOPQQDAgNIADBFAiAGDnv9pU51tDW8FhAy8sQTtGoIFGv0XQONcl17R88v
JgIhAOMDKlzHQLVFut0dvxNe0oHKEhtz4p0yUOpZP8scCDDC
-----END CERTIFICATE-----
";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgV/myIMsC1ojdrLLo
99XrgALBi+1kikC/Cx7xv4aVLrKhRANCAARvctG1QQBU+MKMMWmv6SAjk56O09X3
tsTAQj11SUuCgT8XHD5r4zb2wIhRJxhJ5BlUXofeHyNgLyhJhh6RLJ7k
-----END PRIVATE KEY-----
";

    /// Largest plaintext in one TLS record.
    const RECORD: usize = 16 * 1024;

    /// Both ends of a loopback TCP connection: (client, server).
    fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    /// The test server's TLS configuration: the test certificate and key.
    fn server_config() -> ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = vec![CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
        ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap()
    }

    /// A TLS connection to an in-process server that, once the handshake is
    /// done, sends `body`, then `raw` bytes outside TLS (a forged record),
    /// and then waits for the client to hang up. Returns
    /// the client side once all of the body's ciphertext (records of 16 KiB
    /// plus 22 bytes of header and tag) has arrived in the client's socket.
    fn connected(body: Vec<u8>, raw: &'static [u8]) -> (TlsTransport, std::thread::JoinHandle<()>) {
        let body_len = body.len() + raw.len();
        let (client, server) = socket_pair();
        let (sent_tx, sent_rx) = mpsc::channel();
        let config = server_config();
        let server = std::thread::spawn(move || {
            server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut tls = StreamOwned::new(ServerConnection::new(Arc::new(config)).unwrap(), server);
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock).unwrap();
            }
            tls.write_all(&body).unwrap();
            tls.flush().unwrap();
            tls.sock.write_all(raw).unwrap();
            sent_tx.send(()).unwrap();
            // Until the client hangs up (or the read timeout).
            let _ = tls.read(&mut [0u8; 1]);
        });
        let peek = client.try_clone().unwrap();
        let socket = Socket::for_test(client, 1024 * 1024);
        let adapter = Wire::new(Link::Socket(socket));
        let config = client_config(&Trust::Anything, None).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let transport = TlsTransport::handshake(config, name, adapter, 1024).unwrap();
        sent_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // Loopback delivers a write before it returns; check anyway, bounded.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut scratch = vec![0u8; 1024 * 1024];
        let ciphertext = body_len + body_len.div_ceil(RECORD) * 22;
        while peek.peek(&mut scratch).unwrap() < ciphertext && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        (transport, server)
    }

    /// Where `plaintext` lies from the next record's payload, modulo a page.
    fn ahead(c: &Ciphertext, plaintext: usize) -> usize {
        let payload = c.buf.as_ptr() as usize + c.start + RECORD_HEADER;
        plaintext.wrapping_sub(payload) % aligned::PAGE
    }

    #[test]
    fn the_next_record_moves_out_of_the_slow_copy_window() {
        let bytes: Vec<u8> = (0..20_000u32).map(|i| (i % 241) as u8).collect();
        // (where the plaintext lies from the payload, bytes consumed before): moved or not
        let cases = [
            (0, 100, false),
            (1, 100, true),
            (11, 100, true),
            (63, 100, true),
            (64, 100, false),
            (4095, 100, false),
            (1, 10, true), // too near the front to move down: moves up
            (30, 0, true),
        ];
        for (distance, consumed, moves) in cases {
            let mut c = Ciphertext::new(64 * 1024);
            assert_eq!(c.append(&bytes), bytes.len());
            c.consume(consumed);
            let payload = c.buf.as_ptr() as usize + c.start + RECORD_HEADER;
            let plaintext = payload + distance + 7 * aligned::PAGE;
            let start = c.start;
            c.place_away_from(plaintext);
            assert_eq!(
                c.start != start,
                moves,
                "distance {distance}, consumed {consumed}"
            );
            assert!(
                !(1..64).contains(&ahead(&c, plaintext)),
                "distance {distance}: still {} ahead",
                ahead(&c, plaintext)
            );
            assert!(
                c.unread() == &bytes[consumed..],
                "distance {distance}: bytes changed"
            );
        }
        // Nothing to place, or no plaintext yet: nothing moves.
        let mut empty = Ciphertext::new(1024);
        empty.place_away_from(12345);
        assert_eq!((empty.start, empty.end), (0, 0));
    }

    #[test]
    fn ciphertext_appends_after_moving_the_rest_to_the_front() {
        let mut c = Ciphertext::new(1000);
        assert_eq!(c.append(&[1; 900]), 900);
        c.consume(850);
        // 50 unread at 850..900; 100 free at the end, less than wanted: move first.
        assert_eq!(c.append(&[2; 600]), 600);
        assert_eq!(c.start, 0);
        assert_eq!(c.unread().len(), 650);
        assert_eq!(&c.unread()[48..52], &[1, 1, 2, 2]);
        // Full: takes what fits.
        assert_eq!(c.append(&[3; 600]), 350);
        c.consume(1000);
        assert_eq!((c.start, c.end), (0, 0), "all read: starts over");
    }

    #[test]
    fn one_read_returns_every_record_already_received() {
        let body: Vec<u8> = (0..RECORD * 6).map(|i| (i % 251) as u8).collect();
        let (mut tls, server) = connected(body.clone(), b"");
        assert!(tls.await_input(NextTimeout::default()).unwrap());
        let got = tls.buffers().input().len();
        assert!(
            got > RECORD * 4,
            "one read gave {got} bytes of the 6 records waiting"
        );
        let mut all = tls.buffers().input().to_vec();
        let n = all.len();
        tls.buffers().input_consume(n);
        // The rest, bounded: one read per record at the very least.
        for _ in 0..16 {
            if all.len() >= body.len() {
                break;
            }
            assert!(tls.await_input(NextTimeout::default()).unwrap());
            all.extend_from_slice(tls.buffers().input());
            let n = tls.buffers().input().len();
            tls.buffers().input_consume(n);
        }
        assert!(all == body, "plaintext differs from what the server sent");
        drop(tls);
        server.join().unwrap();
    }

    /// Read from `tls` until `want` bytes of plaintext came (bounded).
    fn read_all(tls: &mut TlsTransport, want: usize) -> Vec<u8> {
        let mut all = Vec::new();
        for _ in 0..4096 {
            if all.len() >= want {
                break;
            }
            assert!(tls.await_input(NextTimeout::default()).unwrap(), "ended early");
            all.extend_from_slice(tls.buffers().input());
            let n = tls.buffers().input().len();
            tls.buffers().input_consume(n);
        }
        all
    }

    #[test]
    fn keys_updated_mid_body_and_a_request_after_it() {
        let body: Vec<u8> = (0..RECORD * 5 + 123).map(|i| (i % 247) as u8).collect();
        let (client, server) = socket_pair();
        let config = server_config();
        let sent = body.clone();
        let server = std::thread::spawn(move || {
            server.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut tls = StreamOwned::new(ServerConnection::new(Arc::new(config)).unwrap(), server);
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock).unwrap();
            }
            let half = sent.len() / 2;
            tls.write_all(&sent[..half]).unwrap();
            // A KeyUpdate that asks the client to update its keys too.
            tls.conn.refresh_traffic_keys().unwrap();
            tls.write_all(&sent[half..]).unwrap();
            tls.flush().unwrap();
            // The client's next request, under its new keys.
            let mut request = [0u8; 5];
            tls.read_exact(&mut request).unwrap();
            assert_eq!(&request, b"ping\n");
            tls.write_all(b"pong").unwrap();
            tls.flush().unwrap();
            let _ = tls.read(&mut [0u8; 1]);
        });
        let socket = Socket::for_test(client, 1024 * 1024);
        let config = client_config(&Trust::Anything, None).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        // Through a transport's buffer, as through a proxy's tunnel.
        let mut tls =
            TlsTransport::handshake(config, name, Wire::new(Link::Chained(Box::new(socket))), 1024).unwrap();

        let got = read_all(&mut tls, body.len());
        assert!(
            got == body,
            "plaintext differs ({} of {} bytes)",
            got.len(),
            body.len()
        );
        tls.buffers().output()[..5].copy_from_slice(b"ping\n");
        tls.transmit_output(5, NextTimeout::default()).unwrap();
        assert_eq!(read_all(&mut tls, 4), b"pong");
        assert!(tls.is_open());
        drop(tls);
        server.join().unwrap();
    }

    #[test]
    fn a_bad_record_fails_the_read_and_the_connection() {
        let body: Vec<u8> = (0..RECORD * 2).map(|i| (i % 13) as u8).collect();
        // An application-data record whose 16 bytes cannot decrypt.
        const FORGED: &[u8] = b"\x17\x03\x03\x00\x10sixteen bytes!!!";
        let (mut tls, server) = connected(body.clone(), FORGED);
        let mut all = Vec::new();
        let mut error = None;
        for _ in 0..8 {
            match tls.await_input(NextTimeout::default()) {
                Ok(true) => {
                    all.extend_from_slice(tls.buffers().input());
                    let n = tls.buffers().input().len();
                    tls.buffers().input_consume(n);
                }
                Ok(false) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        assert!(
            all == body,
            "got {} of {} bytes before the error",
            all.len(),
            body.len()
        );
        let error = error.expect("the forged record is an error");
        assert!(error.to_string().contains("decrypt"), "{error}");
        assert!(!tls.is_open(), "a connection that failed is not reused");
        drop(tls);
        server.join().unwrap();
    }
}
