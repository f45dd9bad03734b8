//! PROXY protocol v2: the binary header (16 fixed bytes, an address block
//! whose size the family dictates, then TLVs up to the declared length).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

use super::{same_family, Command, Error, Family, Header, Parsed, Tlv, Transport};

/// `\r\n\r\n\0\r\nQUIT\n`: chosen by the spec to make other protocols fail.
pub(super) const SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

// Fixed part of the header.
const SIG: Range<usize> = 0..12;
/// High nibble version (must be 2), low nibble command.
const VER_CMD: usize = 12;
/// High nibble address family, low nibble transport.
const FAM: usize = 13;
/// Big-endian length of everything after the fixed part.
const LEN: Range<usize> = 14..16;
const FIXED_LEN: usize = LEN.end;

const VERSION_2: u8 = 0x2;
const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;
const FAM_UNSPEC: u8 = 0x0;
const FAM_INET: u8 = 0x1;
const FAM_INET6: u8 = 0x2;
const FAM_UNIX: u8 = 0x3;
const PROTO_UNSPEC: u8 = 0x0;
const PROTO_STREAM: u8 = 0x1;
const PROTO_DGRAM: u8 = 0x2;

/// Address block layouts, offsets relative to the end of the fixed part.
mod inet {
    use std::ops::Range;
    pub const SRC_ADDR: Range<usize> = 0..4;
    pub const DST_ADDR: Range<usize> = 4..8;
    pub const SRC_PORT: Range<usize> = 8..10;
    pub const DST_PORT: Range<usize> = 10..12;
    pub const LEN: usize = DST_PORT.end;
}
mod inet6 {
    use std::ops::Range;
    pub const SRC_ADDR: Range<usize> = 0..16;
    pub const DST_ADDR: Range<usize> = 16..32;
    pub const SRC_PORT: Range<usize> = 32..34;
    pub const DST_PORT: Range<usize> = 34..36;
    pub const LEN: usize = DST_PORT.end;
}
/// Two `sun_path`s of 108 bytes; parsed over, never carried.
const UNIX_ADDR_LEN: usize = 216;

// One TLV, offsets relative to its type byte.
const TLV_KIND: usize = 0;
const TLV_LEN: Range<usize> = 1..3;
const TLV_HEADER_LEN: usize = TLV_LEN.end;

/// Largest v2 header [`super::Header::parse`] accepts and
/// [`super::Header::emit`] writes: 16 fixed bytes + 2,048 bytes of addresses
/// and TLVs. Real senders stay far below it (HAProxy with every SSL TLV is a
/// few hundred bytes); the bound keeps a peer from making us buffer 64 KiB
/// per connection before the first payload byte.
pub const V2_MAX_LEN: usize = FIXED_LEN + 2048;

/// Largest header [`write_v2`] writes (TCP/UDP over IPv6): size a fixed
/// buffer with it.
pub const V2_ADDR_MAX_LEN: usize = FIXED_LEN + inet6::LEN;

/// Whatever bound the caller asks for, a whole header (fixed part included)
/// fits in 65,535 bytes, i.e. a declared length of at most 65,519.
const ABSOLUTE_MAX_LEN: usize = u16::MAX as usize;

/// Parses a v2 header; the caller has checked that `buf` starts like the
/// signature.
pub(super) fn parse(buf: &[u8], max_len: usize) -> Result<Parsed, Error> {
    debug_assert!(super::starts_like(buf, SIGNATURE));
    // Validate each fixed byte as soon as it is there, so garbage after the
    // signature fails fast instead of waiting for 16 bytes.
    let command = match buf.get(VER_CMD) {
        Some(&b) => parse_ver_cmd(b)?,
        None => return Ok(incomplete(buf.len(), FIXED_LEN)),
    };
    let (family, transport) = match buf.get(FAM) {
        Some(&b) => parse_fam(b)?,
        None => return Ok(incomplete(buf.len(), FIXED_LEN)),
    };
    if buf.len() < FIXED_LEN {
        return Ok(incomplete(buf.len(), FIXED_LEN));
    }
    debug_assert_eq!(&buf[SIG], SIGNATURE);
    let len = u16::from_be_bytes([buf[LEN.start], buf[LEN.start + 1]]);
    let total = FIXED_LEN + usize::from(len);
    if total > max_len.min(ABSOLUTE_MAX_LEN) {
        return Err(Error::TooLong(total));
    }
    let addr_len = address_block_len(family);
    // LOCAL: the spec says the family is ignored, so a sender that announces
    // a family without its addresses is tolerated; the whole block is skipped.
    let local_without_block = command == Command::Local && usize::from(len) < addr_len;
    if usize::from(len) < addr_len && !local_without_block {
        return Err(Error::AddressBlockTooShort { family, len });
    }
    if buf.len() < total {
        return Ok(incomplete(buf.len(), total));
    }
    let block = &buf[FIXED_LEN..total];

    let carries_addresses = command == Command::Proxy && transport != Transport::Unspec;
    let addresses = match family {
        Family::Inet if carries_addresses => Some(inet_addresses(block)),
        Family::Inet6 if carries_addresses => Some(inet6_addresses(block)),
        _ => None,
    };
    let tlvs = if local_without_block {
        Vec::new()
    } else {
        parse_tlvs(block, addr_len)?
    };
    Ok(Parsed::Complete {
        header: Header {
            version: super::Version::V2,
            command,
            transport,
            addresses,
            tlvs,
        },
        consumed: total,
    })
}

fn incomplete(have: usize, want: usize) -> Parsed {
    Parsed::Incomplete {
        needed_hint: Some(want.saturating_sub(have)),
    }
}

fn parse_ver_cmd(b: u8) -> Result<Command, Error> {
    let (version, command) = (b >> 4, b & 0x0f);
    if version != VERSION_2 {
        return Err(Error::BadVersion(version));
    }
    match command {
        CMD_LOCAL => Ok(Command::Local),
        CMD_PROXY => Ok(Command::Proxy),
        other => Err(Error::BadCommand(other)),
    }
}

fn parse_fam(b: u8) -> Result<(Family, Transport), Error> {
    let family = match b >> 4 {
        FAM_UNSPEC => Family::Unspec,
        FAM_INET => Family::Inet,
        FAM_INET6 => Family::Inet6,
        FAM_UNIX => Family::Unix,
        other => return Err(Error::BadFamily(other)),
    };
    let transport = match b & 0x0f {
        PROTO_UNSPEC => Transport::Unspec,
        PROTO_STREAM => Transport::Stream,
        PROTO_DGRAM => Transport::Dgram,
        other => return Err(Error::BadTransport(other)),
    };
    Ok((family, transport))
}

fn address_block_len(family: Family) -> usize {
    match family {
        Family::Unspec => 0,
        Family::Inet => inet::LEN,
        Family::Inet6 => inet6::LEN,
        Family::Unix => UNIX_ADDR_LEN,
    }
}

fn be16(b: &[u8], r: Range<usize>) -> u16 {
    debug_assert_eq!(r.len(), 2);
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// `block` holds at least `inet::LEN` bytes (checked by the caller).
fn inet_addresses(block: &[u8]) -> (SocketAddr, SocketAddr) {
    let ip = |r: Range<usize>| {
        Ipv4Addr::new(
            block[r.start],
            block[r.start + 1],
            block[r.start + 2],
            block[r.start + 3],
        )
    };
    (
        SocketAddr::new(IpAddr::V4(ip(inet::SRC_ADDR)), be16(block, inet::SRC_PORT)),
        SocketAddr::new(IpAddr::V4(ip(inet::DST_ADDR)), be16(block, inet::DST_PORT)),
    )
}

/// `block` holds at least `inet6::LEN` bytes (checked by the caller).
fn inet6_addresses(block: &[u8]) -> (SocketAddr, SocketAddr) {
    let ip = |r: Range<usize>| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&block[r]);
        Ipv6Addr::from(octets)
    };
    (
        SocketAddr::new(
            IpAddr::V6(ip(inet6::SRC_ADDR)),
            be16(block, inet6::SRC_PORT),
        ),
        SocketAddr::new(
            IpAddr::V6(ip(inet6::DST_ADDR)),
            be16(block, inet6::DST_PORT),
        ),
    )
}

/// Walks the TLVs in `block[start..]`, checking each length against what is
/// left before reading the value.
fn parse_tlvs(block: &[u8], start: usize) -> Result<Vec<Tlv>, Error> {
    let mut tlvs = Vec::new();
    let mut at = start;
    while at < block.len() {
        let rest = &block[at..];
        let truncated = Error::TruncatedTlv {
            offset: FIXED_LEN + at,
        };
        if rest.len() < TLV_HEADER_LEN {
            return Err(truncated);
        }
        let value_len = usize::from(be16(rest, TLV_LEN));
        let Some(value) = rest.get(TLV_HEADER_LEN..TLV_HEADER_LEN + value_len) else {
            return Err(truncated);
        };
        tlvs.push(Tlv {
            kind: rest[TLV_KIND],
            value: value.to_vec(),
        });
        at += TLV_HEADER_LEN + value_len;
    }
    Ok(tlvs)
}

/// What goes on the wire for a header, once validated.
struct Layout {
    command: u8,
    transport: u8,
    addresses: Option<(SocketAddr, SocketAddr)>,
    total: usize,
}

fn transport_nibble(t: Transport) -> u8 {
    match t {
        Transport::Unspec => PROTO_UNSPEC,
        Transport::Stream => PROTO_STREAM,
        Transport::Dgram => PROTO_DGRAM,
    }
}

fn layout(h: &Header) -> Result<Layout, Error> {
    let command = match (h.command, h.addresses) {
        (Command::Local, Some(_)) => {
            return Err(Error::Unrepresentable(
                "a LOCAL header carries no addresses",
            ))
        }
        (Command::Local, None) => CMD_LOCAL,
        (Command::Proxy, _) => CMD_PROXY,
    };
    if h.transport == Transport::Unspec && h.addresses.is_some() {
        return Err(Error::Unrepresentable(
            "addresses need a STREAM or DGRAM transport",
        ));
    }
    let addresses = h.addresses.map(|(s, d)| same_family(s, d));
    let tlv_len: usize = h
        .tlvs
        .iter()
        .map(|t| TLV_HEADER_LEN.saturating_add(t.value.len()))
        .fold(0usize, usize::saturating_add);
    let total = (FIXED_LEN + addresses_len(addresses)).saturating_add(tlv_len);
    // V2_MAX_LEN is below 16 + 65,535, so this also rules out a TLV value
    // too long for its 16-bit length field.
    if total > V2_MAX_LEN {
        return Err(Error::TooLong(total));
    }
    Ok(Layout {
        command,
        transport: transport_nibble(h.transport),
        addresses,
        total,
    })
}

fn addresses_len(addresses: Option<(SocketAddr, SocketAddr)>) -> usize {
    match addresses {
        None => 0,
        Some((SocketAddr::V4(_), _)) => inet::LEN,
        Some((SocketAddr::V6(_), _)) => inet6::LEN,
    }
}

pub(super) fn encoded_len(h: &Header) -> Result<usize, Error> {
    layout(h).map(|l| l.total)
}

pub(super) fn emit(h: &Header, out: &mut Vec<u8>) -> Result<usize, Error> {
    let l = layout(h)?;
    let start = out.len();
    out.resize(start + l.total, 0);
    let buf = &mut out[start..];
    let mut at = write_fixed_and_addresses(buf, l.command, l.transport, l.addresses, l.total);
    for tlv in &h.tlvs {
        // Lengths fit in u16: layout() bounded the total by V2_MAX_LEN.
        let value_len = tlv.value.len() as u16;
        buf[at + TLV_KIND] = tlv.kind;
        buf[at + TLV_LEN.start..at + TLV_LEN.end].copy_from_slice(&value_len.to_be_bytes());
        buf[at + TLV_HEADER_LEN..at + TLV_HEADER_LEN + tlv.value.len()].copy_from_slice(&tlv.value);
        at += TLV_HEADER_LEN + tlv.value.len();
    }
    debug_assert_eq!(at, l.total);
    Ok(l.total)
}

/// Writes the fixed part and the address block; `buf` holds at least
/// `FIXED_LEN + addresses_len(addresses)` bytes and `addresses` are of one
/// family. Returns the bytes written.
fn write_fixed_and_addresses(
    buf: &mut [u8],
    command: u8,
    transport: u8,
    addresses: Option<(SocketAddr, SocketAddr)>,
    total: usize,
) -> usize {
    let family = match addresses {
        None => FAM_UNSPEC,
        Some((SocketAddr::V4(_), _)) => FAM_INET,
        Some((SocketAddr::V6(_), _)) => FAM_INET6,
    };
    buf[SIG].copy_from_slice(SIGNATURE);
    buf[VER_CMD] = (VERSION_2 << 4) | command;
    buf[FAM] = (family << 4) | transport;
    // total <= V2_MAX_LEN, checked by every caller.
    let len = (total - FIXED_LEN) as u16;
    buf[LEN].copy_from_slice(&len.to_be_bytes());
    let block = &mut buf[FIXED_LEN..];
    match addresses {
        None => FIXED_LEN,
        Some((src, dst)) => {
            match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    block[inet::SRC_ADDR].copy_from_slice(&s.octets());
                    block[inet::DST_ADDR].copy_from_slice(&d.octets());
                }
                (s, d) => {
                    block[inet6::SRC_ADDR].copy_from_slice(&ipv6_octets(s));
                    block[inet6::DST_ADDR].copy_from_slice(&ipv6_octets(d));
                }
            }
            let (sp, dp, n) = match src {
                SocketAddr::V4(_) => (inet::SRC_PORT, inet::DST_PORT, inet::LEN),
                SocketAddr::V6(_) => (inet6::SRC_PORT, inet6::DST_PORT, inet6::LEN),
            };
            block[sp].copy_from_slice(&src.port().to_be_bytes());
            block[dp].copy_from_slice(&dst.port().to_be_bytes());
            FIXED_LEN + n
        }
    }
}

fn ipv6_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Writes a v2 PROXY header for `(src, dst)` into `out` without allocating
/// and returns its length (28 bytes for IPv4, 52 for IPv6; at most
/// [`V2_ADDR_MAX_LEN`]). Mixed families are mapped as
/// [`super::same_family`] does.
pub fn write_v2(
    out: &mut [u8],
    transport: Transport,
    src: SocketAddr,
    dst: SocketAddr,
) -> Result<usize, Error> {
    if transport == Transport::Unspec {
        return Err(Error::Unrepresentable(
            "addresses need a STREAM or DGRAM transport",
        ));
    }
    let addresses = Some(same_family(src, dst));
    let total = FIXED_LEN + addresses_len(addresses);
    if out.len() < total {
        return Err(Error::BufferTooSmall);
    }
    Ok(write_fixed_and_addresses(
        out,
        CMD_PROXY,
        transport_nibble(transport),
        addresses,
        total,
    ))
}
