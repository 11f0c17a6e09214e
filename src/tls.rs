//! fetchq's TLS layer for ureq: one rustls [`ClientConfig`] per run, and a
//! transport that hands ureq as much plaintext per call as has arrived.
//!
//! It replaces ureq's `RustlsConnector` for two reasons:
//!
//! - **Reads as large as the socket's.** ureq's TLS transport returns one TLS
//!   record (at most 16 KiB) per read, so a 512 MiB body became 32,768 reads
//!   and as many `write` calls to the file. [`TlsTransport`] keeps decrypting
//!   records while their bytes are already buffered, and returns only when the
//!   buffer is full or the next record has not arrived yet.
//! - **One client configuration, shared.** Every connection of the run uses
//!   the same [`ClientConfig`], so its session cache lets a reconnection to a
//!   server resume (a ticket, no certificate check) instead of a full handshake.
//!
//! The TCP side stays fetchq's [`crate::transport::Socket`] (idle limit,
//! cancellation), read through ureq's `TransportAdapter`.

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme, StreamOwned,
};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport, TransportAdapter,
};

/// How much ciphertext the socket under a TLS connection reads at once.
/// ureq zero-fills its buffers in full when a connection opens, so each one
/// costs its whole size in memory for as long as the connection lives: with
/// 2,000 × 64 KiB over 8 connections, going from 512 KiB to this took peak
/// RSS from 18.6 to 15.4 MiB, at no cost in instructions.
pub(crate) const CIPHERTEXT_BUFFER: usize = 64 * 1024;

/// The socket's output buffer under TLS: rustls writes at most one record
/// (16 KiB of plaintext plus its header and tag) at a time, and requests are
/// small; one record's worth is enough.
pub(crate) const RECORD_OUTPUT: usize = 16 * 1024;

/// The plaintext ureq reads from, which is also the largest response head
/// fetchq accepts over TLS: 128 KiB, above curl's 100 KiB. The worker's
/// reads get at most this much, which already cuts the `write` calls of a
/// 512 MiB body from 32,768 to about 12,000.
pub(crate) const PLAINTEXT_BUFFER: usize = 128 * 1024;

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

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
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
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
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

/// One TLS connection as ureq sees it.
pub(crate) struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
    /// A read failed: the connection must not go back to the pool.
    failed: bool,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport")
            .field("inner", &self.stream.sock.get_ref())
            .finish()
    }
}

impl TlsTransport {
    /// Run the handshake with the server at the other end of `sock`;
    /// `output` is ureq's output buffer size (the largest request head).
    fn handshake(
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        sock: TransportAdapter,
        output: usize,
    ) -> Result<TlsTransport, ureq::Error> {
        let conn = ClientConnection::new(config, name)?;
        let mut stream = StreamOwned::new(conn, sock);
        stream.conn.complete_io(&mut stream.sock)?;
        Ok(TlsTransport {
            buffers: LazyBuffers::new(PLAINTEXT_BUFFER, output),
            stream,
            failed: false,
        })
    }

    /// Whether decrypting the next record would have to wait for the network:
    /// rustls holds no plaintext and the socket's buffer holds no ciphertext.
    fn would_wait(&mut self) -> bool {
        self.stream.conn.wants_read() && self.stream.sock.get_mut().buffers().input().is_empty()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.sock.set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    /// Fill ureq's buffer with the plaintext of every record already
    /// received; wait for the network only while nothing has been read.
    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.sock.set_timeout(timeout);
        let mut total = 0;
        loop {
            if total > 0 && self.would_wait() {
                break;
            }
            let input = self.buffers.input_append_buf();
            if input.is_empty() {
                break;
            }
            match self.stream.read(input) {
                Ok(0) => break,
                Ok(n) => {
                    self.buffers.input_appended(n);
                    total += n;
                }
                Err(e) => {
                    self.failed = true;
                    return Err(e.into());
                }
            }
        }
        Ok(total > 0)
    }

    /// A connection whose last read ended in an error is never reused.
    fn is_open(&mut self) -> bool {
        !self.failed && self.stream.sock.get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
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
    use rustls::{ServerConfig, ServerConnection};
    use ureq::unversioned::transport::time;

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

    /// A TLS connection to an in-process server that, once the handshake is
    /// done, sends `body`, then `raw` bytes outside TLS (a forged record),
    /// and then waits for the client to hang up. Returns
    /// the client side once all of the body's ciphertext (records of 16 KiB
    /// plus 22 bytes of header and tag) has arrived in the client's socket.
    fn connected(body: Vec<u8>, raw: &'static [u8]) -> (TlsTransport, std::thread::JoinHandle<()>) {
        let body_len = body.len() + raw.len();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let (sent_tx, sent_rx) = mpsc::channel();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = vec![CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap();
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
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
        let adapter = TransportAdapter::new(
            Box::new(socket) as Box<dyn Transport>,
            Arc::new(time::Instant::now),
        );
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
