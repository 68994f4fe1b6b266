//! The PROXY protocol header (HAProxy, versions 1 and 2) that a proxy may send at the
//! start of a connection to say where the client really is. Both sides: parse (mailbox
//! servers) and encode v2 (the proxy).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

/// The v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The client's address, `None` for `UNKNOWN` / `LOCAL` (health checks).
    pub source: Option<SocketAddr>,
    /// The address the client connected to, when given.
    pub destination: Option<SocketAddr>,
    /// Bytes the header used.
    pub consumed: usize,
}

/// Why no header came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ProxyError {
    /// Not all of the header yet.
    #[error("incomplete PROXY header")]
    Incomplete,
    /// Not a PROXY header, or a malformed one.
    #[error("invalid PROXY header: {0}")]
    Invalid(&'static str),
}

/// Parses a v1 or v2 header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Header, ProxyError> {
    if buf.len() < 12 {
        let v1 = b"PROXY ";
        let n = buf.len().min(v1.len());
        if buf[..n] == v1[..n] || buf[..] == V2_SIGNATURE[..buf.len()] {
            return Err(ProxyError::Incomplete);
        }
        return Err(ProxyError::Invalid("no PROXY signature"));
    }
    if buf.starts_with(&V2_SIGNATURE) {
        return parse_v2(buf);
    }
    if buf.starts_with(b"PROXY ") {
        return parse_v1(buf);
    }
    Err(ProxyError::Invalid("no PROXY signature"))
}

fn parse_v1(buf: &[u8]) -> Result<Header, ProxyError> {
    // At most 107 bytes, CRLF included.
    let Some(end) = buf.windows(2).take(107).position(|w| w == b"\r\n") else {
        return if buf.len() >= 107 {
            Err(ProxyError::Invalid("v1 line too long"))
        } else {
            Err(ProxyError::Incomplete)
        };
    };
    let line =
        std::str::from_utf8(&buf[6..end]).map_err(|_| ProxyError::Invalid("v1 not ASCII"))?;
    let parts: Vec<&str> = line.split(' ').collect();
    let consumed = end + 2;
    match parts.as_slice() {
        ["UNKNOWN", ..] => Ok(Header {
            source: None,
            destination: None,
            consumed,
        }),
        [proto @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let src: IpAddr = src
                .parse()
                .map_err(|_| ProxyError::Invalid("v1 bad source"))?;
            let dst: IpAddr = dst
                .parse()
                .map_err(|_| ProxyError::Invalid("v1 bad destination"))?;
            if src.is_ipv4() != (*proto == "TCP4") || dst.is_ipv4() != (*proto == "TCP4") {
                return Err(ProxyError::Invalid("v1 address family mismatch"));
            }
            let port = |p: &str| -> Result<u16, ProxyError> {
                if p.is_empty() || (p.len() > 1 && p.starts_with('0')) {
                    return Err(ProxyError::Invalid("v1 bad port"));
                }
                p.parse().map_err(|_| ProxyError::Invalid("v1 bad port"))
            };
            Ok(Header {
                source: Some(SocketAddr::new(src, port(sport)?)),
                destination: Some(SocketAddr::new(dst, port(dport)?)),
                consumed,
            })
        }
        _ => Err(ProxyError::Invalid("v1 malformed")),
    }
}

fn parse_v2(buf: &[u8]) -> Result<Header, ProxyError> {
    if buf.len() < 16 {
        return Err(ProxyError::Incomplete);
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::Invalid("v2 bad version"));
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let consumed = 16 + len;
    if buf.len() < consumed {
        return Err(ProxyError::Incomplete);
    }
    let body = &buf[16..consumed];
    match ver_cmd & 0x0f {
        0 => {
            return Ok(Header {
                source: None,
                destination: None,
                consumed,
            })
        } // LOCAL
        1 => {}
        _ => return Err(ProxyError::Invalid("v2 bad command")),
    }
    let (source, destination) = match buf[13] {
        0x11 | 0x12 => {
            if body.len() < 12 {
                return Err(ProxyError::Invalid("v2 short IPv4 block"));
            }
            let ip = |o: usize| {
                IpAddr::V4(Ipv4Addr::new(
                    body[o],
                    body[o + 1],
                    body[o + 2],
                    body[o + 3],
                ))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            (
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            )
        }
        0x21 | 0x22 => {
            if body.len() < 36 {
                return Err(ProxyError::Invalid("v2 short IPv6 block"));
            }
            let ip = |o: usize| {
                let mut a = [0u8; 16];
                a.copy_from_slice(&body[o..o + 16]);
                IpAddr::V6(Ipv6Addr::from(a))
            };
            let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
            (
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            )
        }
        0x00 => {
            return Ok(Header {
                source: None,
                destination: None,
                consumed,
            })
        }
        _ => return Err(ProxyError::Invalid("v2 unsupported address family")),
    };
    Ok(Header {
        source: Some(source),
        destination: Some(destination),
        consumed,
    })
}

/// Encodes a v2 PROXY header for a TCP connection from `source` to `destination`.
pub fn encode_v2(out: &mut Vec<u8>, source: SocketAddr, destination: SocketAddr) {
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21);
    let (src, dst) = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (IpAddr::V4(s), IpAddr::V4(d)),
        (s, d) => (IpAddr::V6(to_v6(s)), IpAddr::V6(to_v6(d))),
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.push(0x21);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        _ => unreachable!("both sides were made the same family above"),
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1() {
        let h = parse(b"PROXY TCP4 192.0.2.7 10.0.0.1 51000 143\r\nA1 LOGIN").unwrap();
        assert_eq!(h.source, Some("192.0.2.7:51000".parse().unwrap()));
        assert_eq!(h.consumed, 41);
        let h = parse(b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n").unwrap();
        assert_eq!(h.source, Some("[2001:db8::1]:1".parse().unwrap()));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().source, None);
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Err(ProxyError::Incomplete));
        assert_eq!(parse(b"PRO"), Err(ProxyError::Incomplete));
        assert!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n").is_err());
        assert!(parse(b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n").is_err());
        assert!(parse(b"A1 LOGIN x y\r\n").is_err());
        assert!(parse(b"a").is_err());
    }

    #[test]
    fn v2_round_trip_and_chunks() {
        for (s, d) in [
            ("192.0.2.7:51000", "10.0.0.1:143"),
            ("[2001:db8::7]:5", "[::1]:993"),
            ("192.0.2.7:1", "[::1]:2"),
        ] {
            let (s, d): (SocketAddr, SocketAddr) = (s.parse().unwrap(), d.parse().unwrap());
            let mut out = Vec::new();
            encode_v2(&mut out, s, d);
            let h = parse(&out).unwrap();
            assert_eq!(h.consumed, out.len());
            let src = h.source.unwrap();
            assert_eq!(src.port(), s.port());
            assert!(src.ip() == s.ip() || src.ip() == IpAddr::V6(to_v6(s.ip())));
            for cut in 0..out.len() {
                assert_eq!(parse(&out[..cut]), Err(ProxyError::Incomplete), "cut {cut}");
            }
        }
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap().source, None);
    }
}
