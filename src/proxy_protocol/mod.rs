//! PROXY protocol v1 (text) and v2 (binary) headers: parse and emit, sans-IO.
//!
//! Owns the wire format of HAProxy's `doc/proxy-protocol.txt`: detecting which
//! version a connection starts with, validating every field before it is
//! read, walking v2 TLVs, and writing headers for the relay (allocating
//! through [`Header::emit`], or into a caller's fixed buffer through
//! [`write_v1`] / [`write_v2`]). It does not own sockets, timeouts or the
//! decision to trust a peer: the caller feeds bytes, gets back
//! [`Parsed::Incomplete`] until a whole header is there, and decides what to
//! do with the addresses.
//!
//! Parsing never panics and never waits forever: a v1 line has at most
//! [`V1_MAX_LEN`] bytes, a v2 header at most [`V2_MAX_LEN`] (or a smaller
//! caller bound, see [`Header::parse_bounded`]), and a prefix that can no
//! longer become a valid header is an error as soon as it is seen.
//!
//! Representation choices (what `parse(emit(h))` gives back, see
//! [`Header::canonical`]):
//! - `addresses` is `Some` only for a PROXY command over INET/INET6 with a
//!   STREAM or DGRAM transport. LOCAL, v1 `UNKNOWN`, AF_UNSPEC, AF_UNIX (parsed
//!   and skipped) and the UNSPEC transport carry `None`.
//! - v1 `UNKNOWN` means "use the real connection's endpoints", which is what
//!   v2 LOCAL means, so it parses as [`Command::Local`] with
//!   [`Transport::Unspec`]; [`Header::local`] with [`Version::V1`] emits
//!   `PROXY UNKNOWN\r\n`.
//! - An address pair of mixed families is emitted in one family: IPv4 when
//!   both are IPv4 or IPv4-mapped IPv6, else IPv6 for both (IPv4 mapped into
//!   `::ffff:0:0/96`). IPv6 flow info and scope id are not carried.

mod v1;
mod v2;

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

pub use v1::{write_v1, V1_MAX_LEN};
pub use v2::{write_v2, V2_ADDR_MAX_LEN, V2_MAX_LEN};

/// Protocol version of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// Human-readable `PROXY TCP4 ...\r\n` line.
    V1,
    /// Binary header starting with the 12-byte signature.
    V2,
}

/// v2 command nibble (v1 `UNKNOWN` maps to [`Command::Local`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// The proxy opened the connection itself (health check): use the real
    /// endpoints.
    Local,
    /// The connection is relayed on behalf of the client in `addresses`.
    Proxy,
}

/// v2 transport nibble (v1 TCP is [`Transport::Stream`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unknown or unspecified transport: carries no addresses.
    Unspec,
    /// SOCK_STREAM (TCP).
    Stream,
    /// SOCK_DGRAM (UDP).
    Dgram,
}

/// v2 address family nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// AF_UNSPEC: no address block.
    Unspec,
    /// AF_INET: 2 x 4 address bytes + 2 x 2 port bytes.
    Inet,
    /// AF_INET6: 2 x 16 address bytes + 2 x 2 port bytes.
    Inet6,
    /// AF_UNIX: 2 x 108 path bytes.
    Unix,
}

/// Which header versions a listener accepts (`accept_proxy: v1 | v2 | any`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accept {
    /// Only the text format; a v2 signature is [`Error::NotAccepted`].
    V1,
    /// Only the binary format; `PROXY ` is [`Error::NotAccepted`].
    V2,
    /// Either, told apart by the first byte.
    Any,
}

/// One v2 type-length-value extension, kept as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tlv {
    /// `PP2_TYPE_*` value.
    pub kind: u8,
    /// At most 65,535 bytes (the length field is 16 bits).
    pub value: Vec<u8>,
}

/// A PROXY protocol header, v1 or v2.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// Wire format.
    pub version: Version,
    /// LOCAL or PROXY.
    pub command: Command,
    /// STREAM, DGRAM or UNSPEC.
    pub transport: Transport,
    /// `(source = real client, destination = address the client reached)`.
    /// None for LOCAL / UNKNOWN / AF_UNSPEC / AF_UNIX / UNSPEC transport.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
    /// v2 only; v1 always empty.
    pub tlvs: Vec<Tlv>,
}

/// Outcome of feeding bytes to [`Header::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole, valid header; the payload starts at `buf[consumed..]`.
    Complete {
        /// The decoded header.
        header: Header,
        /// Bytes of `buf` that belong to the header.
        consumed: usize,
    },
    /// The bytes so far are a valid prefix; read more and call again with
    /// the whole buffer.
    Incomplete {
        /// At least this many more bytes are needed, when known.
        needed_hint: Option<usize>,
    },
}

/// Every way a header can be malformed, or impossible to write.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Neither `PROXY ` nor the v2 signature.
    BadSignature,
    /// A well-formed start of a version the caller does not accept.
    NotAccepted(Version),
    /// v2 version nibble other than 2.
    BadVersion(u8),
    /// v2 command nibble other than LOCAL (0) or PROXY (1).
    BadCommand(u8),
    /// v2 family nibble above AF_UNIX (3).
    BadFamily(u8),
    /// v2 transport nibble above DGRAM (2).
    BadTransport(u8),
    /// v2 length smaller than the family's address block.
    AddressBlockTooShort {
        /// Family announced in the header.
        family: Family,
        /// Declared length of everything after the 16 fixed bytes.
        len: u16,
    },
    /// A TLV starting at `offset` (from the first header byte) runs past
    /// the declared header length.
    TruncatedTlv {
        /// Offset of the TLV's type byte.
        offset: usize,
    },
    /// v2 header of this total size exceeds the limit in force (or a TLV
    /// value exceeds 65,535 bytes when emitting).
    TooLong(usize),
    /// v1 line with a lone CR or LF instead of CRLF.
    V1MissingCrlf,
    /// v1 field that is missing, extra or malformed.
    V1BadField(&'static str),
    /// v1 line without CRLF within [`V1_MAX_LEN`] bytes.
    V1TooLong,
    /// Output buffer shorter than the header.
    BufferTooSmall,
    /// A [`Header`] the chosen version cannot express (v1 with TLVs or UDP,
    /// LOCAL with addresses, UNSPEC transport with addresses).
    Unrepresentable(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadSignature => f.write_str("not a PROXY protocol header"),
            Error::NotAccepted(v) => {
                let v = match v {
                    Version::V1 => "v1",
                    Version::V2 => "v2",
                };
                write!(f, "PROXY protocol {v} header where it is not accepted")
            }
            Error::BadVersion(n) => write!(f, "PROXY v2: unsupported version {n:#x}"),
            Error::BadCommand(n) => write!(f, "PROXY v2: unknown command {n:#x}"),
            Error::BadFamily(n) => write!(f, "PROXY v2: unknown address family {n:#x}"),
            Error::BadTransport(n) => write!(f, "PROXY v2: unknown transport {n:#x}"),
            Error::AddressBlockTooShort { family, len } => write!(
                f,
                "PROXY v2: length {len} is shorter than the {family:?} address block"
            ),
            Error::TruncatedTlv { offset } => {
                write!(f, "PROXY v2: TLV at offset {offset} runs past the header")
            }
            Error::TooLong(n) => write!(f, "PROXY v2: header of {n} bytes is too long"),
            Error::V1MissingCrlf => f.write_str("PROXY v1: line not ended by CRLF"),
            Error::V1BadField(what) => write!(f, "PROXY v1: bad or missing {what}"),
            Error::V1TooLong => write!(f, "PROXY v1: no CRLF within {V1_MAX_LEN} bytes"),
            Error::BufferTooSmall => f.write_str("PROXY header: output buffer too small"),
            Error::Unrepresentable(why) => write!(f, "PROXY header cannot be written: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl Header {
    /// A PROXY-command header for a relayed connection from `src` (the
    /// client) to `dst` (the address it reached).
    pub fn proxy(
        version: Version,
        transport: Transport,
        src: SocketAddr,
        dst: SocketAddr,
    ) -> Header {
        Header {
            version,
            command: Command::Proxy,
            transport,
            addresses: Some((src, dst)),
            tlvs: Vec::new(),
        }
    }

    /// A LOCAL header (v1: `PROXY UNKNOWN\r\n`), as sent by health checks.
    pub fn local(version: Version) -> Header {
        Header {
            version,
            command: Command::Local,
            transport: Transport::Unspec,
            addresses: None,
            tlvs: Vec::new(),
        }
    }

    /// Parses the header at the start of `buf`, accepting v2 headers up to
    /// [`V2_MAX_LEN`] bytes.
    ///
    /// Returns `Incomplete` while `buf` is a valid prefix of a header, and an
    /// error as soon as it cannot become one.
    pub fn parse(buf: &[u8], accept: Accept) -> Result<Parsed, Error> {
        Header::parse_bounded(buf, accept, V2_MAX_LEN)
    }

    /// Like [`Header::parse`], with the caller's bound on the total size of a
    /// v2 header (clamped to 65,535 bytes in all; v1 is always bounded by
    /// [`V1_MAX_LEN`]). A larger declared length is [`Error::TooLong`] as
    /// soon as the 16 fixed bytes are in, without waiting for the rest.
    pub fn parse_bounded(buf: &[u8], accept: Accept, max_v2_len: usize) -> Result<Parsed, Error> {
        let Some(&first) = buf.first() else {
            return Ok(Parsed::Incomplete { needed_hint: None });
        };
        if first == v1::SIGNATURE[0] {
            if !starts_like(buf, v1::SIGNATURE) {
                return Err(Error::BadSignature);
            }
            if accept == Accept::V2 {
                return Err(Error::NotAccepted(Version::V1));
            }
            v1::parse(buf)
        } else if first == v2::SIGNATURE[0] {
            if !starts_like(buf, v2::SIGNATURE) {
                return Err(Error::BadSignature);
            }
            if accept == Accept::V1 {
                return Err(Error::NotAccepted(Version::V2));
            }
            v2::parse(buf, max_v2_len)
        } else {
            Err(Error::BadSignature)
        }
    }

    /// Appends the encoded header to `out` and returns the number of bytes
    /// written. On error `out` is left as it was.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<usize, Error> {
        match self.version {
            Version::V1 => {
                let mut line = [0u8; V1_MAX_LEN];
                let n = v1::write_header(self, &mut line)?;
                out.extend_from_slice(&line[..n]);
                Ok(n)
            }
            Version::V2 => v2::emit(self, out),
        }
    }

    /// Bytes [`Header::emit`] writes for this header; 0 when `emit` would
    /// reject it.
    pub fn encoded_len(&self) -> usize {
        match self.version {
            Version::V1 => {
                let mut line = [0u8; V1_MAX_LEN];
                v1::write_header(self, &mut line).unwrap_or(0)
            }
            Version::V2 => v2::encoded_len(self).unwrap_or(0),
        }
    }

    /// The header `parse(emit(self))` returns when `emit` succeeds: address
    /// pair mapped to one family without flow info or scope id, and for v1 a
    /// header without addresses becomes LOCAL / UNSPEC (`PROXY UNKNOWN`).
    pub fn canonical(&self) -> Header {
        let mut h = self.clone();
        h.addresses = h.addresses.map(|(s, d)| same_family(s, d));
        if h.version == Version::V1 && h.addresses.is_none() {
            h.command = Command::Local;
            h.transport = Transport::Unspec;
        }
        h
    }
}

/// Maps a source/destination pair into one address family: IPv4 when both
/// are IPv4 or IPv4-mapped IPv6, else IPv6 for both (IPv4 as `::ffff:a.b.c.d`).
/// Flow info and scope id are dropped since neither wire format carries them.
pub fn same_family(src: SocketAddr, dst: SocketAddr) -> (SocketAddr, SocketAddr) {
    match (as_v4(src), as_v4(dst)) {
        (Some(s), Some(d)) => (SocketAddr::V4(s), SocketAddr::V4(d)),
        _ => (SocketAddr::V6(as_v6(src)), SocketAddr::V6(as_v6(dst))),
    }
}

fn as_v4(a: SocketAddr) -> Option<SocketAddrV4> {
    match a {
        SocketAddr::V4(v4) => Some(v4),
        SocketAddr::V6(v6) => v6
            .ip()
            .to_ipv4_mapped()
            .map(|ip| SocketAddrV4::new(ip, v6.port())),
    }
}

fn as_v6(a: SocketAddr) -> SocketAddrV6 {
    let ip: Ipv6Addr = match a.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    SocketAddrV6::new(ip, a.port(), 0, 0)
}

/// True when `buf` and `sig` agree on their common length, i.e. `buf` is a
/// prefix of `sig` or starts with it.
fn starts_like(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf[..n] == sig[..n]
}
