//! The HAProxy PROXY protocol header (v1 text, v2 binary) that a load balancer sends
//! before the client's first byte, so that a listener behind it learns the real
//! client address. Parsing (and, for tests and the simulator, writing) only: whether a
//! listener expects the header is the driver's configuration.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a PROXY header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProxyHeader {
    /// The client as the load balancer saw it; `None` for v1 `UNKNOWN`, v2 `LOCAL`
    /// (a health check from the balancer itself), and v2 `UNSPEC` or `AF_UNIX`
    /// addresses. Then the connection's own peer address stands.
    pub source: Option<(IpAddr, u16)>,
    /// The address the client connected to, under the same rules.
    pub destination: Option<(IpAddr, u16)>,
}

/// Bounds of the parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyLimits {
    /// The largest v2 header accepted, the 16-byte fixed part included. The format
    /// allows 16 + 65535 bytes; addresses take at most 216 and Sluice reads no TLV,
    /// so anything much larger is a misconfigured or hostile peer. Default 1024.
    pub max_v2_header: usize,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits {
            max_v2_header: 1024,
        }
    }
}

/// Why the bytes are not an acceptable PROXY header. The listener closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("not a PROXY protocol header")]
    NotProxy,
    #[error("PROXY v1 line longer than 107 bytes")]
    LineTooLong,
    #[error("malformed PROXY v1 line")]
    MalformedLine,
    #[error("unsupported PROXY v2 version {0}")]
    UnsupportedVersion(u8),
    #[error("unsupported PROXY v2 command {0}")]
    UnsupportedCommand(u8),
    #[error("unsupported PROXY v2 address family and transport {0:#04x}")]
    UnsupportedFamily(u8),
    #[error("PROXY v2 header of {0} bytes is over the limit")]
    TooLong(usize),
    #[error("PROXY v2 address block too short for its family")]
    ShortAddressBlock,
    #[error("malformed PROXY v2 TLV")]
    MalformedTlv,
}

const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line, CRLF included (the specification's worst case, TCP6).
pub const V1_MAX_LINE: usize = 107;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V2_FIXED: usize = 16;
const V2_VERSION: u8 = 2;
const V2_LOCAL: u8 = 0;
const V2_PROXY: u8 = 1;
const V2_UNSPEC: u8 = 0x00;
const V2_TCP4: u8 = 0x11;
const V2_TCP6: u8 = 0x21;
const V2_UNIX_STREAM: u8 = 0x31;
const V2_TCP4_BLOCK: usize = 12;
const V2_TCP6_BLOCK: usize = 36;
const V2_UNIX_BLOCK: usize = 216;

/// Parses a PROXY header at the start of `bytes` with default limits.
///
/// `Ok(None)`: every byte so far is consistent with a header, send more.
/// `Ok(Some((header, consumed)))`: the header and its length; the client's own bytes
/// start at `consumed`.
pub fn parse(bytes: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    parse_with_limits(bytes, &ProxyLimits::default())
}

/// [`parse`] with explicit limits.
pub fn parse_with_limits(
    bytes: &[u8],
    limits: &ProxyLimits,
) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    match bytes.first() {
        None => Ok(None),
        Some(b'P') => parse_v1(bytes),
        Some(b'\r') => parse_v2(bytes, limits),
        Some(_) => Err(ProxyError::NotProxy),
    }
}

/// Whether `bytes` and `expected` agree on their common length.
fn agrees_with(bytes: &[u8], expected: &[u8]) -> bool {
    let common = bytes.len().min(expected.len());
    bytes.get(..common) == expected.get(..common)
}

fn parse_v1(bytes: &[u8]) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    if !agrees_with(bytes, V1_PREFIX) {
        return Err(ProxyError::NotProxy);
    }
    let window = bytes.get(..bytes.len().min(V1_MAX_LINE)).unwrap_or(bytes);
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        return if bytes.len() >= V1_MAX_LINE {
            Err(ProxyError::LineTooLong)
        } else {
            Ok(None)
        };
    };
    let line = window
        .get(..newline)
        .and_then(|line| line.strip_suffix(b"\r"))
        .and_then(|line| line.strip_prefix(V1_PREFIX))
        .ok_or(ProxyError::MalformedLine)?;
    let text = core::str::from_utf8(line).map_err(|_| ProxyError::MalformedLine)?;
    if !text.is_ascii() || text.contains('\r') {
        return Err(ProxyError::MalformedLine);
    }
    let consumed = newline + 1;
    let mut fields = text.split(' ');
    let header = match fields.next() {
        // The specification lets anything follow UNKNOWN, to be ignored.
        Some("UNKNOWN") => ProxyHeader::UNKNOWN,
        Some(protocol @ ("TCP4" | "TCP6")) => {
            let v6 = protocol == "TCP6";
            let mut next = || fields.next().ok_or(ProxyError::MalformedLine);
            let source = parse_v1_ip(next()?, v6)?;
            let destination = parse_v1_ip(next()?, v6)?;
            let source_port = parse_v1_port(next()?)?;
            let destination_port = parse_v1_port(next()?)?;
            if fields.next().is_some() {
                return Err(ProxyError::MalformedLine);
            }
            ProxyHeader {
                source: Some((source, source_port)),
                destination: Some((destination, destination_port)),
            }
        }
        _ => return Err(ProxyError::MalformedLine),
    };
    Ok(Some((header, consumed)))
}

fn parse_v1_ip(text: &str, v6: bool) -> Result<IpAddr, ProxyError> {
    let address = if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    };
    address.map_err(|_| ProxyError::MalformedLine)
}

/// A decimal port: digits only (`u16::from_str` would also take a `+` sign).
fn parse_v1_port(text: &str) -> Result<u16, ProxyError> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProxyError::MalformedLine);
    }
    text.parse().map_err(|_| ProxyError::MalformedLine)
}

fn parse_v2(
    bytes: &[u8],
    limits: &ProxyLimits,
) -> Result<Option<(ProxyHeader, usize)>, ProxyError> {
    if !agrees_with(bytes, V2_SIGNATURE) {
        return Err(ProxyError::NotProxy);
    }
    let Some(&[version_command, family, length_high, length_low]) = bytes.get(12..V2_FIXED) else {
        return Ok(None);
    };
    let version = version_command >> 4;
    let command = version_command & 0x0f;
    if version != V2_VERSION {
        return Err(ProxyError::UnsupportedVersion(version));
    }
    if command != V2_LOCAL && command != V2_PROXY {
        return Err(ProxyError::UnsupportedCommand(command));
    }
    let total = V2_FIXED + usize::from(u16::from_be_bytes([length_high, length_low]));
    if total > limits.max_v2_header {
        return Err(ProxyError::TooLong(total));
    }
    let Some(block) = bytes.get(V2_FIXED..total) else {
        return Ok(None);
    };
    // LOCAL: the balancer speaking for itself; whatever follows is to be ignored.
    if command == V2_LOCAL {
        return Ok(Some((ProxyHeader::UNKNOWN, total)));
    }
    let (header, address_length) = match family {
        V2_UNSPEC => (ProxyHeader::UNKNOWN, 0),
        V2_TCP4 => {
            let address = block
                .get(..V2_TCP4_BLOCK)
                .ok_or(ProxyError::ShortAddressBlock)?;
            let ip = |at: usize| -> IpAddr {
                let mut octets = [0u8; 4];
                octets.copy_from_slice(address.get(at..at + 4).unwrap_or(&[0; 4]));
                IpAddr::V4(Ipv4Addr::from(octets))
            };
            (
                ProxyHeader {
                    source: Some((ip(0), port_at(address, 8))),
                    destination: Some((ip(4), port_at(address, 10))),
                },
                V2_TCP4_BLOCK,
            )
        }
        V2_TCP6 => {
            let address = block
                .get(..V2_TCP6_BLOCK)
                .ok_or(ProxyError::ShortAddressBlock)?;
            let ip = |at: usize| -> IpAddr {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(address.get(at..at + 16).unwrap_or(&[0; 16]));
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            (
                ProxyHeader {
                    source: Some((ip(0), port_at(address, 32))),
                    destination: Some((ip(16), port_at(address, 34))),
                },
                V2_TCP6_BLOCK,
            )
        }
        V2_UNIX_STREAM => {
            if block.len() < V2_UNIX_BLOCK {
                return Err(ProxyError::ShortAddressBlock);
            }
            (ProxyHeader::UNKNOWN, V2_UNIX_BLOCK)
        }
        other => return Err(ProxyError::UnsupportedFamily(other)),
    };
    if family != V2_UNSPEC {
        check_tlvs(block.get(address_length..).unwrap_or(&[]))?;
    }
    Ok(Some((header, total)))
}

fn port_at(block: &[u8], at: usize) -> u16 {
    match block.get(at..at + 2) {
        Some(&[high, low]) => u16::from_be_bytes([high, low]),
        _ => 0,
    }
}

/// TLVs carry nothing Sluice uses, but their framing must add up exactly: a header
/// whose length disagrees with its contents was not written by a sane balancer.
fn check_tlvs(mut tlvs: &[u8]) -> Result<(), ProxyError> {
    while !tlvs.is_empty() {
        let Some(&[_kind, length_high, length_low]) = tlvs.get(..3) else {
            return Err(ProxyError::MalformedTlv);
        };
        let end = 3 + usize::from(u16::from_be_bytes([length_high, length_low]));
        tlvs = tlvs.get(end..).ok_or(ProxyError::MalformedTlv)?;
    }
    Ok(())
}

impl ProxyHeader {
    /// A header that names no addresses (v1 `UNKNOWN`, v2 `LOCAL`).
    pub const UNKNOWN: ProxyHeader = ProxyHeader {
        source: None,
        destination: None,
    };

    /// The v1 line for this header: `TCP4` or `TCP6` when both ends are known and of
    /// one family, `UNKNOWN` otherwise.
    pub fn to_v1(&self) -> Vec<u8> {
        let line = match (self.source, self.destination) {
            (Some((IpAddr::V4(source), sport)), Some((IpAddr::V4(destination), dport))) => {
                format!("PROXY TCP4 {source} {destination} {sport} {dport}\r\n")
            }
            (Some((IpAddr::V6(source), sport)), Some((IpAddr::V6(destination), dport))) => {
                format!("PROXY TCP6 {source} {destination} {sport} {dport}\r\n")
            }
            _ => "PROXY UNKNOWN\r\n".to_owned(),
        };
        line.into_bytes()
    }

    /// The v2 header for this header, without TLVs: `PROXY` over TCP4 or TCP6 when both
    /// ends are known and of one family, `LOCAL` otherwise.
    pub fn to_v2(&self) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        let mut block = Vec::new();
        let family = match (self.source, self.destination) {
            (Some((IpAddr::V4(source), sport)), Some((IpAddr::V4(destination), dport))) => {
                block.extend_from_slice(&source.octets());
                block.extend_from_slice(&destination.octets());
                block.extend_from_slice(&sport.to_be_bytes());
                block.extend_from_slice(&dport.to_be_bytes());
                Some(V2_TCP4)
            }
            (Some((IpAddr::V6(source), sport)), Some((IpAddr::V6(destination), dport))) => {
                block.extend_from_slice(&source.octets());
                block.extend_from_slice(&destination.octets());
                block.extend_from_slice(&sport.to_be_bytes());
                block.extend_from_slice(&dport.to_be_bytes());
                Some(V2_TCP6)
            }
            _ => None,
        };
        match family {
            Some(family) => bytes.extend_from_slice(&[(V2_VERSION << 4) | V2_PROXY, family]),
            None => bytes.extend_from_slice(&[(V2_VERSION << 4) | V2_LOCAL, V2_UNSPEC]),
        }
        // At most 36 bytes: the length always fits.
        let length = u16::try_from(block.len()).unwrap_or(u16::MAX);
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(&block);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> IpAddr {
        IpAddr::V4(text.parse().unwrap())
    }

    fn v6(text: &str) -> IpAddr {
        IpAddr::V6(text.parse().unwrap())
    }

    #[test]
    fn v1_tcp4() {
        let bytes = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\nEHLO x\r\n";
        let (header, consumed) = parse(bytes).unwrap().unwrap();
        assert_eq!(header.source, Some((v4("192.0.2.1"), 56324)));
        assert_eq!(header.destination, Some((v4("198.51.100.2"), 25)));
        assert_eq!(&bytes[consumed..], b"EHLO x\r\n");
    }

    #[test]
    fn v1_tcp6_and_unknown() {
        let (header, _) = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 587\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(header.source, Some((v6("2001:db8::1"), 4000)));
        assert_eq!(header.destination, Some((v6("2001:db8::2"), 587)));
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Ok(Some((ProxyHeader::UNKNOWN, 15)))
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"),
            Ok(Some((ProxyHeader::UNKNOWN, 35)))
        );
    }

    #[test]
    fn v1_refusals() {
        for bad in [
            &b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\n"[..],
            b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
            b"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n",
            b"PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY \r\n",
        ] {
            assert_eq!(parse(bad), Err(ProxyError::MalformedLine), "{bad:?}");
        }
        assert_eq!(parse(b"PROXX"), Err(ProxyError::NotProxy));
        assert_eq!(parse(b"EHLO x\r\n"), Err(ProxyError::NotProxy));
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX_LINE, b'x');
        assert_eq!(parse(&long), Err(ProxyError::LineTooLong));
        long.truncate(V1_MAX_LINE - 1);
        assert_eq!(parse(&long), Ok(None));
        long.extend_from_slice(b"\n");
        long[V1_MAX_LINE - 2] = b'\r';
        assert_eq!(parse(&long), Ok(Some((ProxyHeader::UNKNOWN, V1_MAX_LINE))));
    }

    #[test]
    fn v2_tcp4_with_tlvs() {
        let header = ProxyHeader {
            source: Some((v4("203.0.113.9"), 40000)),
            destination: Some((v4("192.0.2.25"), 25)),
        };
        let mut bytes = header.to_v2();
        // A NOOP TLV of 2 bytes and an ALPN TLV, then the client's first bytes.
        bytes.extend_from_slice(&[0x04, 0, 2, 0, 0, 0x01, 0, 4, b's', b'm', b't', b'p']);
        bytes[15] += 12;
        let length = bytes.len();
        bytes.extend_from_slice(b"EHLO");
        assert_eq!(parse(&bytes), Ok(Some((header, length))));
        // A TLV running past the end of the header.
        // (16 fixed bytes, 12 of addresses, the 5-byte NOOP, then ALPN's type byte.)
        bytes[16 + 12 + 5 + 1] = 0xff;
        assert_eq!(parse(&bytes), Err(ProxyError::MalformedTlv));
    }

    #[test]
    fn v2_local_unspec_and_unix() {
        let local = ProxyHeader::UNKNOWN.to_v2();
        assert_eq!(local.len(), 16);
        assert_eq!(parse(&local), Ok(Some((ProxyHeader::UNKNOWN, 16))));
        let mut unix = V2_SIGNATURE.to_vec();
        unix.extend_from_slice(&[0x21, 0x31, 0, 216]);
        unix.resize(16 + 216, 0);
        assert_eq!(parse(&unix), Ok(Some((ProxyHeader::UNKNOWN, 232))));
        let mut unspec = V2_SIGNATURE.to_vec();
        unspec.extend_from_slice(&[0x21, 0x00, 0, 3, 1, 2, 3]);
        assert_eq!(parse(&unspec), Ok(Some((ProxyHeader::UNKNOWN, 19))));
    }

    #[test]
    fn v2_refusals() {
        let header = ProxyHeader {
            source: Some((v6("2001:db8::1"), 1)),
            destination: Some((v6("2001:db8::2"), 2)),
        };
        let good = header.to_v2();
        let patched = |at: usize, value: u8| {
            let mut bytes = good.clone();
            bytes[at] = value;
            parse(&bytes)
        };
        assert_eq!(patched(12, 0x11), Err(ProxyError::UnsupportedVersion(1)));
        assert_eq!(patched(12, 0x22), Err(ProxyError::UnsupportedCommand(2)));
        assert_eq!(patched(13, 0x22), Err(ProxyError::UnsupportedFamily(0x22)));
        assert_eq!(patched(13, 0x12), Err(ProxyError::UnsupportedFamily(0x12)));
        assert_eq!(patched(15, 12), Err(ProxyError::ShortAddressBlock));
        assert_eq!(patched(3, b'x'), Err(ProxyError::NotProxy));
        assert_eq!(patched(14, 0x10), Err(ProxyError::TooLong(16 + 0x1024)));
        let generous = ProxyLimits {
            max_v2_header: 16 + 65535,
        };
        let mut big = good.clone();
        big[14] = 0x10;
        assert_eq!(parse_with_limits(&big, &generous), Ok(None));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let header = ProxyHeader {
            source: Some((v4("192.0.2.1"), 1)),
            destination: Some((v4("192.0.2.2"), 65535)),
        };
        for bytes in [header.to_v1(), header.to_v2()] {
            for cut in 0..bytes.len() {
                assert_eq!(parse(&bytes[..cut]), Ok(None), "{cut}");
            }
            assert_eq!(parse(&bytes), Ok(Some((header, bytes.len()))));
        }
    }
}
