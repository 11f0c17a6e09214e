//! The client side of a SOCKS handshake, spoken over a connection already open
//! to the proxy: SOCKS5 (RFC 1928) with username/password authentication
//! (RFC 1929), and SOCKS4 with its 4a extension for host names.
//!
//! The bytes go through ureq's [`Transport`] interface, so the connection is
//! fetchq's own socket (see [`crate::transport`]): the handshake waits with
//! the same idle limit and cancel checks as any read. Once the proxy says
//! "granted", the same connection is a byte tunnel to the target, and TLS for
//! an https:// URL runs inside it.

use std::io;
use std::net::{IpAddr, SocketAddr};

use ureq::ProxyProtocol;
use ureq::unversioned::transport::{NextTimeout, Transport};

/// Where the proxy is asked to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// An address fetchq resolved itself (`socks5://`, `socks4://`) or an IP literal in the URL.
    Addr(SocketAddr),
    /// A host name for the proxy to resolve (`socks5h://`, `socks4a://`),
    /// so no DNS query for it leaves this machine.
    Name(&'a str, u16),
}

/// Why a SOCKS handshake failed. Credentials never appear in these messages.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SocksError {
    /// The proxy hung up mid-handshake.
    #[error("the SOCKS proxy closed the connection during the handshake")]
    Closed,
    /// The reply is not SOCKS of the version asked for.
    #[error("not a SOCKS{0} proxy (unexpected reply)")]
    NotSocks(u8),
    /// A SOCKS5 proxy that wants authentication when the URL gives no credentials.
    #[error("the SOCKS5 proxy requires a user name and password (socks5://USER:PASSWORD@HOST:PORT)")]
    AuthNeeded,
    /// A SOCKS5 proxy that accepts none of the methods offered.
    #[error("the SOCKS5 proxy accepts none of the offered authentication methods")]
    NoMethod,
    /// RFC 1929: status other than 0.
    #[error("the SOCKS5 proxy refused the user name and password")]
    AuthRefused,
    /// The proxy could not or would not connect to the target.
    #[error("the SOCKS{version} proxy could not connect to the target: {why}")]
    Refused {
        /// 4 or 5.
        version: u8,
        /// The meaning of the reply code.
        why: &'static str,
    },
    /// The request cannot be expressed in this SOCKS version.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// SOCKS5 authentication methods (RFC 1928 §3).
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xFF;

/// Run the handshake for `protocol` on `transport`, an open connection to
/// the proxy. `credentials` come from the proxy URL's userinfo.
pub(crate) fn handshake(
    transport: &mut dyn Transport,
    protocol: ProxyProtocol,
    credentials: Option<(&str, &str)>,
    target: Target<'_>,
    timeout: NextTimeout,
) -> Result<(), ureq::Error> {
    let mut wire = Wire { transport, timeout };
    match protocol {
        ProxyProtocol::Socks4 | ProxyProtocol::Socks4A => {
            let user = credentials.map_or("", |(user, _)| user);
            wire.send(&socks4_request(target, user)?)?;
            let mut reply = [0; 8];
            wire.recv(&mut reply)?;
            Ok(socks4_reply(&reply)?)
        }
        _ => socks5(&mut wire, credentials, target),
    }
}

fn socks5(
    wire: &mut Wire<'_>,
    credentials: Option<(&str, &str)>,
    target: Target<'_>,
) -> Result<(), ureq::Error> {
    wire.send(&greeting(credentials.is_some()))?;
    let mut choice = [0; 2];
    wire.recv(&mut choice)?;
    if chosen_method(choice, credentials.is_some())? == USER_PASS {
        let (user, password) = credentials.unwrap_or_default();
        wire.send(&auth_request(user, password)?)?;
        let mut status = [0; 2];
        wire.recv(&mut status)?;
        // RFC 1929 §2: version 1, status 0 is success.
        if status[0] != 1 {
            return Err(SocksError::NotSocks(5).into());
        }
        if status[1] != 0 {
            return Err(SocksError::AuthRefused.into());
        }
    }
    wire.send(&connect_request(target)?)?;
    // VER REP RSV ATYP and the first byte of BND.ADDR: enough to know the rest's length.
    let mut head = [0; 5];
    wire.recv(&mut head)?;
    let rest = socks5_reply_rest(head)?;
    // BND.ADDR and BND.PORT mean nothing for CONNECT, but they are on the wire
    // ahead of the tunnel's first byte.
    let mut skip = [0; 256 + 2];
    wire.recv(&mut skip[..rest])?;
    Ok(())
}

/// VER, NMETHODS, METHODS: offer user/password only when the URL has credentials.
fn greeting(with_credentials: bool) -> Vec<u8> {
    if with_credentials {
        vec![5, 2, NO_AUTH, USER_PASS]
    } else {
        vec![5, 1, NO_AUTH]
    }
}

/// The method the proxy picked from the greeting's offer.
fn chosen_method(reply: [u8; 2], offered_credentials: bool) -> Result<u8, SocksError> {
    match reply {
        [5, NO_AUTH] => Ok(NO_AUTH),
        [5, USER_PASS] if offered_credentials => Ok(USER_PASS),
        [5, USER_PASS] => Err(SocksError::AuthNeeded),
        [5, NO_ACCEPTABLE] if !offered_credentials => Err(SocksError::AuthNeeded),
        [5, _] => Err(SocksError::NoMethod),
        _ => Err(SocksError::NotSocks(5)),
    }
}

/// RFC 1929 §2: VER=1, ULEN, UNAME, PLEN, PASSWD.
fn auth_request(user: &str, password: &str) -> Result<Vec<u8>, SocksError> {
    let too_long = "SOCKS5 user names and passwords are at most 255 bytes";
    let ulen = u8::try_from(user.len()).map_err(|_| SocksError::Unsupported(too_long))?;
    let plen = u8::try_from(password.len()).map_err(|_| SocksError::Unsupported(too_long))?;
    let mut request = Vec::with_capacity(3 + user.len() + password.len());
    request.extend([1, ulen]);
    request.extend_from_slice(user.as_bytes());
    request.push(plen);
    request.extend_from_slice(password.as_bytes());
    Ok(request)
}

/// RFC 1928 §4: VER=5, CMD=CONNECT, RSV, ATYP, DST.ADDR, DST.PORT.
fn connect_request(target: Target<'_>) -> Result<Vec<u8>, SocksError> {
    let mut request = vec![5, 1, 0];
    let port = match target {
        Target::Addr(SocketAddr::V4(addr)) => {
            request.push(1);
            request.extend_from_slice(&addr.ip().octets());
            addr.port()
        }
        Target::Addr(SocketAddr::V6(addr)) => {
            request.push(4);
            request.extend_from_slice(&addr.ip().octets());
            addr.port()
        }
        Target::Name(name, port) => {
            let len = u8::try_from(name.len())
                .ok()
                .filter(|len| *len > 0)
                .ok_or(SocksError::Unsupported("SOCKS5 host names are 1 to 255 bytes"))?;
            request.extend([3, len]);
            request.extend_from_slice(name.as_bytes());
            port
        }
    };
    request.extend_from_slice(&port.to_be_bytes());
    Ok(request)
}

/// Check a SOCKS5 reply's head; how many bytes of it are still to come.
fn socks5_reply_rest(head: [u8; 5]) -> Result<usize, SocksError> {
    let [version, code, _, atyp, first] = head;
    if version != 5 {
        return Err(SocksError::NotSocks(5));
    }
    if code != 0 {
        let why = match code {
            1 => "general failure",
            2 => "not allowed by the proxy's rules",
            3 => "network unreachable",
            4 => "host unreachable",
            5 => "connection refused",
            6 => "TTL expired",
            7 => "command not supported",
            8 => "address type not supported",
            _ => "unknown reply code",
        };
        return Err(SocksError::Refused { version: 5, why });
    }
    // The first address byte is already read; the port's 2 bytes follow the address.
    match atyp {
        1 => Ok(4 - 1 + 2),
        4 => Ok(16 - 1 + 2),
        3 => Ok(usize::from(first) + 2),
        _ => Err(SocksError::NotSocks(5)),
    }
}

/// SOCKS4: VN=4, CD=CONNECT, DSTPORT, DSTIP, USERID, NUL; SOCKS4a puts
/// 0.0.0.1 in DSTIP and the host name, NUL-terminated, after the user id.
fn socks4_request(target: Target<'_>, user: &str) -> Result<Vec<u8>, SocksError> {
    if user.contains('\0') {
        return Err(SocksError::Unsupported("a SOCKS4 user id cannot contain NUL"));
    }
    let mut request = vec![4, 1];
    match target {
        Target::Addr(SocketAddr::V4(addr)) => {
            request.extend_from_slice(&addr.port().to_be_bytes());
            request.extend_from_slice(&addr.ip().octets());
            request.extend_from_slice(user.as_bytes());
            request.push(0);
        }
        Target::Addr(SocketAddr::V6(_)) => {
            return Err(SocksError::Unsupported(
                "SOCKS4 cannot reach IPv6 addresses (use socks5)",
            ));
        }
        Target::Name(name, port) => {
            if name.is_empty() || name.contains('\0') {
                return Err(SocksError::Unsupported("unusable host name for SOCKS4a"));
            }
            request.extend_from_slice(&port.to_be_bytes());
            request.extend_from_slice(&[0, 0, 0, 1]);
            request.extend_from_slice(user.as_bytes());
            request.push(0);
            request.extend_from_slice(name.as_bytes());
            request.push(0);
        }
    }
    Ok(request)
}

/// SOCKS4 reply: VN=0, CD=90 for granted.
fn socks4_reply(reply: &[u8; 8]) -> Result<(), SocksError> {
    let why = match (reply[0], reply[1]) {
        (0, 90) => return Ok(()),
        (0, 91) => "request rejected or failed",
        (0, 92) => "the proxy cannot reach identd on this machine",
        (0, 93) => "identd reports a different user id",
        _ => return Err(SocksError::NotSocks(4)),
    };
    Err(SocksError::Refused { version: 4, why })
}

impl From<SocksError> for ureq::Error {
    fn from(e: SocksError) -> ureq::Error {
        let kind = match e {
            SocksError::Closed => io::ErrorKind::UnexpectedEof,
            SocksError::Refused { .. } => io::ErrorKind::ConnectionRefused,
            _ => io::ErrorKind::Other,
        };
        ureq::Error::Io(io::Error::new(kind, e))
    }
}

/// Whole messages over a transport, within the connect budget.
struct Wire<'a> {
    transport: &'a mut dyn Transport,
    timeout: NextTimeout,
}

impl Wire<'_> {
    fn send(&mut self, message: &[u8]) -> Result<(), ureq::Error> {
        // Handshake messages are at most 513 bytes; ureq's output buffer is far larger.
        let output = self.transport.buffers().output();
        let Some(room) = output.get_mut(..message.len()) else {
            return Err(SocksError::Unsupported("SOCKS message larger than the output buffer").into());
        };
        room.copy_from_slice(message);
        self.transport.transmit_output(message.len(), self.timeout)
    }

    /// Fill `into` exactly, waiting as the socket's reads do (idle limit, cancel).
    fn recv(&mut self, into: &mut [u8]) -> Result<(), ureq::Error> {
        loop {
            let buffers = self.transport.buffers();
            let input = buffers.input();
            if input.len() >= into.len() {
                into.copy_from_slice(&input[..into.len()]);
                buffers.input_consume(into.len());
                return Ok(());
            }
            if !self.transport.await_input(self.timeout)? {
                return Err(SocksError::Closed.into());
            }
        }
    }
}

/// The target of a request to `host`:`port` given to a SOCKS proxy:
/// the address fetchq resolved (`resolved`, when the protocol resolves
/// locally), else the host itself: an IP literal as an address, a name as a name.
pub(crate) fn target<'a>(
    protocol: ProxyProtocol,
    host: &'a str,
    port: u16,
    resolved: &[SocketAddr],
) -> Result<Target<'a>, ureq::Error> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Target::Addr(SocketAddr::new(ip, port)));
    }
    match protocol {
        ProxyProtocol::Socks5h | ProxyProtocol::Socks4A => Ok(Target::Name(host, port)),
        // SOCKS4 carries only IPv4.
        ProxyProtocol::Socks4 => resolved
            .iter()
            .find(|a| a.is_ipv4())
            .or(resolved.first())
            .map(|a| Target::Addr(*a))
            .ok_or(ureq::Error::HostNotFound),
        _ => resolved
            .first()
            .map(|a| Target::Addr(*a))
            .ok_or(ureq::Error::HostNotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Target<'static> {
        Target::Addr(s.parse().unwrap())
    }

    #[test]
    fn socks5_messages() {
        assert_eq!(greeting(false), [5, 1, 0]);
        assert_eq!(greeting(true), [5, 2, 0, 2]);
        assert_eq!(auth_request("u", "pw").unwrap(), [1, 1, b'u', 2, b'p', b'w']);
        assert!(auth_request(&"x".repeat(256), "").is_err());
        let cases: [(Target<'_>, &[u8]); 3] = [
            (v4("10.0.0.1:80"), &[5, 1, 0, 1, 10, 0, 0, 1, 0, 80]),
            (
                Target::Addr("[::1]:443".parse().unwrap()),
                &[5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187],
            ),
            (
                Target::Name("ab.c", 8080),
                &[5, 1, 0, 3, 4, b'a', b'b', b'.', b'c', 0x1f, 0x90],
            ),
        ];
        for (target, want) in cases {
            assert_eq!(connect_request(target).unwrap(), want, "{target:?}");
        }
        assert!(connect_request(Target::Name("", 80)).is_err());
        assert!(connect_request(Target::Name(&"a".repeat(256), 80)).is_err());
    }

    #[test]
    fn socks5_method_choice() {
        let cases = [
            ([5, 0], false, Ok(NO_AUTH)),
            ([5, 0], true, Ok(NO_AUTH)),
            ([5, 2], true, Ok(USER_PASS)),
            ([5, 2], false, Err(SocksError::AuthNeeded)),
            ([5, 0xFF], false, Err(SocksError::AuthNeeded)),
            ([5, 0xFF], true, Err(SocksError::NoMethod)),
            ([4, 0], false, Err(SocksError::NotSocks(5))),
            ([b'H', b'T'], false, Err(SocksError::NotSocks(5))),
        ];
        for (reply, creds, want) in cases {
            assert_eq!(chosen_method(reply, creds), want, "{reply:?} {creds}");
        }
    }

    #[test]
    fn socks5_reply_lengths_and_codes() {
        assert_eq!(socks5_reply_rest([5, 0, 0, 1, 127]), Ok(5));
        assert_eq!(socks5_reply_rest([5, 0, 0, 4, 0]), Ok(17));
        assert_eq!(socks5_reply_rest([5, 0, 0, 3, 9]), Ok(11));
        assert_eq!(socks5_reply_rest([5, 0, 0, 7, 0]), Err(SocksError::NotSocks(5)));
        assert_eq!(
            socks5_reply_rest([5, 5, 0, 1, 0]),
            Err(SocksError::Refused {
                version: 5,
                why: "connection refused"
            })
        );
        assert_eq!(socks5_reply_rest([4, 0, 0, 1, 0]), Err(SocksError::NotSocks(5)));
    }

    #[test]
    fn socks4_messages() {
        assert_eq!(
            socks4_request(v4("1.2.3.4:80"), "me").unwrap(),
            [4, 1, 0, 80, 1, 2, 3, 4, b'm', b'e', 0]
        );
        assert_eq!(
            socks4_request(Target::Name("h", 80), "").unwrap(),
            [4, 1, 0, 80, 0, 0, 0, 1, 0, b'h', 0]
        );
        assert!(socks4_request(Target::Addr("[::1]:80".parse().unwrap()), "").is_err());
        assert_eq!(socks4_reply(&[0, 90, 0, 0, 0, 0, 0, 0]), Ok(()));
        assert!(matches!(
            socks4_reply(&[0, 91, 0, 0, 0, 0, 0, 0]),
            Err(SocksError::Refused { version: 4, .. })
        ));
        assert_eq!(
            socks4_reply(&[5, 0, 0, 0, 0, 0, 0, 0]),
            Err(SocksError::NotSocks(4))
        );
    }

    #[test]
    fn targets_follow_where_names_are_resolved() {
        let resolved: Vec<SocketAddr> = vec!["[::1]:80".parse().unwrap(), "127.0.0.1:80".parse().unwrap()];
        let t = |p, host| target(p, host, 80, &resolved).unwrap();
        assert_eq!(
            t(ProxyProtocol::Socks5h, "example.com"),
            Target::Name("example.com", 80)
        );
        assert_eq!(
            t(ProxyProtocol::Socks4A, "example.com"),
            Target::Name("example.com", 80)
        );
        assert_eq!(t(ProxyProtocol::Socks5, "example.com"), Target::Addr(resolved[0]));
        assert_eq!(t(ProxyProtocol::Socks4, "example.com"), Target::Addr(resolved[1]));
        assert_eq!(t(ProxyProtocol::Socks5h, "10.1.2.3"), v4("10.1.2.3:80"));
        assert_eq!(
            t(ProxyProtocol::Socks5h, "[::2]"),
            Target::Addr("[::2]:80".parse().unwrap())
        );
        assert!(target(ProxyProtocol::Socks5, "example.com", 80, &[]).is_err());
    }
}
