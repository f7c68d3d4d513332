//! Reads the HAProxy PROXY header (v1 text or v2 binary) that a proxy sends before
//! the client's first byte, exactly to its end and not one byte further (the TLS
//! ClientHello may follow at once), and yields the client address it carries.
//! Parsing is core's (`sluice_core::proxy`); this only feeds it bytes.

use sluice_core::proxy::{self, ProxyHeader};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt};

/// No header is shorter: `PROXY UNKNOWN\r\n` (v1); v2 has a 16-byte fixed part.
const SHORTEST_HEADER: usize = 15;

#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("connection failed before the PROXY header ended: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Invalid(#[from] proxy::ProxyError),
}

/// The client address from the header; `peer` when the header names none (v1
/// `UNKNOWN`, v2 `LOCAL`: the proxy's own health checks).
pub async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
) -> Result<SocketAddr, ProxyHeaderError> {
    let mut bytes = vec![0u8; SHORTEST_HEADER];
    stream.read_exact(&mut bytes).await?;
    loop {
        if let Some((header, _consumed)) = proxy::parse(&bytes)? {
            return Ok(client_address(&header, peer));
        }
        // One byte at a time: only the parser knows where the header ends, and a
        // byte too many would be taken from the client's own stream.
        let mut next = [0u8; 1];
        stream.read_exact(&mut next).await?;
        bytes.push(next[0]);
    }
}

fn client_address(header: &ProxyHeader, peer: SocketAddr) -> SocketAddr {
    header
        .source
        .map_or(peer, |(ip, port)| SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn peer() -> SocketAddr {
        "127.0.0.1:9".parse().unwrap()
    }

    #[tokio::test]
    async fn a_v1_header_is_read_to_its_end_and_no_further() {
        let mut input: &[u8] = b"PROXY TCP4 198.51.100.7 10.0.0.1 40000 25\r\nEHLO x\r\n";
        let client = read(&mut input, peer()).await.unwrap();
        assert_eq!(client, "198.51.100.7:40000".parse().unwrap());
        assert_eq!(input, b"EHLO x\r\n");
    }

    #[tokio::test]
    async fn a_v2_header_is_read_to_its_end_and_no_further() {
        let header = ProxyHeader {
            source: Some((IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)), 5555)),
            destination: Some((IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 465)),
        };
        let mut bytes = header.to_v2();
        bytes.extend_from_slice(b"\x16\x03\x01");
        let mut input: &[u8] = &bytes;
        let client = read(&mut input, peer()).await.unwrap();
        assert_eq!(client, "203.0.113.9:5555".parse().unwrap());
        assert_eq!(input, b"\x16\x03\x01");
    }

    #[tokio::test]
    async fn unknown_keeps_the_peer_and_garbage_is_refused() {
        let mut input: &[u8] = b"PROXY UNKNOWN\r\n";
        assert_eq!(read(&mut input, peer()).await.unwrap(), peer());
        let mut input: &[u8] = b"EHLO client.test\r\n";
        assert!(read(&mut input, peer()).await.is_err());
    }
}
