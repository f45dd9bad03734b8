//! PROXY protocol on UDP: every datagram carries its own v2 header.
//!
//! Owns stripping the header a sending proxy put in front of each datagram
//! (`accept_proxy`; its addresses then stand for the client), writing one
//! in front of each datagram we send (`send_proxy_v2`) into a reused
//! scratch buffer, and the address a client reached.
//! Does not own header parsing or encoding (`proxy_protocol/`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::listeners::ListenerSlot;
use crate::proxy_protocol::{
    self, write_v2, Accept, Command, Header, Parsed, Transport, V2_ADDR_MAX_LEN,
};

/// The original client and the address it reached, from a PROXY header.
pub type Origin = (SocketAddr, SocketAddr);

/// Why a datagram's PROXY header was refused (the datagram is dropped).
#[derive(Debug)]
pub enum BadHeader {
    /// The datagram ends inside its header.
    Truncated,
    Invalid(proxy_protocol::Error),
}

impl fmt::Display for BadHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadHeader::Truncated => f.write_str("datagram shorter than its PROXY header"),
            BadHeader::Invalid(e) => e.fmt(f),
        }
    }
}

/// `accept_proxy` on a UDP listener: the datagram must start with a PROXY
/// v2 header; returns the payload after it and the original endpoints
/// (`None` for `LOCAL`).
pub fn strip_proxy_header(buf: &[u8]) -> Result<(&[u8], Option<Origin>), BadHeader> {
    match Header::parse(buf, Accept::V2) {
        Ok(Parsed::Complete { header, consumed }) => {
            let origin = match header.command {
                Command::Proxy => header.addresses,
                Command::Local => None,
            };
            Ok((&buf[consumed..], origin))
        }
        Ok(Parsed::Incomplete { .. }) => Err(BadHeader::Truncated),
        Err(e) => Err(BadHeader::Invalid(e)),
    }
}

/// The address and port a client reached on `slot`: the datagram's
/// destination (PKTINFO), else the socket's own address.
pub(super) fn reached(local_ip: Option<IpAddr>, slot: &ListenerSlot) -> SocketAddr {
    let ip = local_ip
        .or_else(|| slot.l.sock.local_addr().ok().map(|a| a.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    SocketAddr::new(ip, slot.l.port)
}

/// `scratch` = PROXY v2 DGRAM header for (client -> reached) + payload.
/// `None` (datagram dropped) only if the header cannot be written, which
/// the fixed-size buffer rules out for any IPv4/IPv6 pair.
pub(super) fn with_proxy_header<'a>(
    scratch: &'a mut Vec<u8>,
    client: SocketAddr,
    reached: SocketAddr,
    payload: &[u8],
) -> Option<&'a [u8]> {
    let mut hdr = [0u8; V2_ADDR_MAX_LEN];
    let n = match write_v2(&mut hdr, Transport::Dgram, client, reached) {
        Ok(n) => n,
        Err(e) => {
            log::debug!("cannot write PROXY header for {client}: {e}");
            return None;
        }
    };
    scratch.clear();
    scratch.extend_from_slice(&hdr[..n]);
    scratch.extend_from_slice(payload);
    Some(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxied_datagram_is_one_v2_dgram_header_then_the_payload() {
        let client: SocketAddr = "[::ffff:192.0.2.7]:40000".parse().unwrap();
        let reached: SocketAddr = "127.0.0.2:5353".parse().unwrap();
        let mut scratch = vec![0xAA; 3];
        let out = with_proxy_header(&mut scratch, client, reached, b"query")
            .unwrap()
            .to_vec();
        let Ok(Parsed::Complete { header, consumed }) = Header::parse(&out, Accept::V2) else {
            panic!("not a complete v2 header: {out:?}");
        };
        assert_eq!(header.command, Command::Proxy);
        assert_eq!(header.transport, Transport::Dgram);
        // The mapped client is written as plain IPv4, like the destination.
        assert_eq!(
            header.addresses,
            Some(("192.0.2.7:40000".parse().unwrap(), reached))
        );
        assert_eq!(consumed, 28);
        assert_eq!(&out[consumed..], b"query");
        // An empty datagram still carries its header.
        let out = with_proxy_header(&mut scratch, client, reached, b"").unwrap();
        assert_eq!(out.len(), 28);
    }

    #[test]
    fn stripping_returns_the_payload_and_the_origin() {
        let client: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let reached: SocketAddr = "198.51.100.1:53".parse().unwrap();
        let mut scratch = Vec::new();
        let dgram = with_proxy_header(&mut scratch, client, reached, b"query")
            .unwrap()
            .to_vec();
        let (payload, origin) = strip_proxy_header(&dgram).unwrap();
        assert_eq!(payload, b"query");
        assert_eq!(origin, Some((client, reached)));
    }

    #[test]
    fn a_cut_or_foreign_header_is_refused() {
        let client: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let reached: SocketAddr = "198.51.100.1:53".parse().unwrap();
        let mut scratch = Vec::new();
        let dgram = with_proxy_header(&mut scratch, client, reached, b"")
            .unwrap()
            .to_vec();
        assert!(matches!(
            strip_proxy_header(&dgram[..dgram.len() - 1]),
            Err(BadHeader::Truncated)
        ));
        let v1 = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 53\r\nquery";
        let err = strip_proxy_header(v1).unwrap_err();
        assert!(matches!(err, BadHeader::Invalid(_)), "{err}");
        assert!(strip_proxy_header(b"plain payload").is_err());
    }
}
