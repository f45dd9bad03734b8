//! PROXY protocol v1: one US-ASCII line,
//! `PROXY TCP4|TCP6 <src ip> <dst ip> <src port> <dst port>\r\n` or
//! `PROXY UNKNOWN[ anything]\r\n`, at most [`V1_MAX_LEN`] bytes.

use std::fmt::{self, Write as _};
use std::iter::Peekable;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{same_family, Command, Error, Family, Header, Parsed, Transport, Version};

/// `PROXY` and the one space after it.
pub(super) const SIGNATURE: &[u8; 6] = b"PROXY ";

/// Longest v1 line including CRLF (`PROXY UNKNOWN` with two full IPv6
/// addresses and ports): a line without CRLF by then is an error.
pub const V1_MAX_LEN: usize = 107;

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const SP: u8 = b' ';
const TCP4: &[u8] = b"TCP4";
const TCP6: &[u8] = b"TCP6";
const UNKNOWN: &[u8] = b"UNKNOWN";
/// Longest textual IPv6 address `Ipv6Addr::from_str` accepts
/// (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`).
const IPV6_TEXT_MAX: usize = 45;

/// Parses a v1 line; the caller has checked that `buf` starts like
/// [`SIGNATURE`].
pub(super) fn parse(buf: &[u8]) -> Result<Parsed, Error> {
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    match memchr::memchr2(CR, LF, window) {
        // A lone LF: the spec forbids tolerating it as a line end.
        Some(i) if window[i] == LF => Err(Error::V1MissingCrlf),
        Some(i) => {
            if i + 2 > V1_MAX_LEN {
                return Err(Error::V1TooLong);
            }
            let line = &buf[..i];
            match buf.get(i + 1) {
                Some(&LF) => match fields(line, true)? {
                    Some(header) => Ok(Parsed::Complete {
                        header,
                        consumed: i + 2,
                    }),
                    // fields() with complete = true returns a header or an error.
                    None => Err(Error::V1BadField("line")),
                },
                Some(_) => Err(Error::V1MissingCrlf),
                None => {
                    // The line is whole but for its LF: judge it now.
                    fields(line, true)?;
                    Ok(Parsed::Incomplete {
                        needed_hint: Some(1),
                    })
                }
            }
        }
        None => {
            fields(window, false)?;
            if window.len() >= V1_MAX_LEN {
                return Err(Error::V1TooLong);
            }
            Ok(Parsed::Incomplete { needed_hint: None })
        }
    }
}

/// Checks the fields of `line` (without CRLF). With `complete`, every field
/// must be there and the header is returned; without, the last field may be
/// cut short and `Ok(None)` means "a valid prefix so far".
fn fields(line: &[u8], complete: bool) -> Result<Option<Header>, Error> {
    let Some(rest) = line.get(SIGNATURE.len()..) else {
        // Shorter than "PROXY ": the caller checked it is a prefix of it.
        return if complete {
            Err(Error::V1BadField("protocol"))
        } else {
            Ok(None)
        };
    };
    let mut it = rest.split(|&b| b == SP).peekable();
    let family = match next_field(&mut it, complete, "protocol", parse_proto, |f| {
        [TCP4, TCP6, UNKNOWN].iter().any(|p| p.starts_with(f))
    })? {
        None => return Ok(None),
        // Whatever follows UNKNOWN up to the CRLF is ignored, per the spec.
        Some(None) => return Ok(complete.then(|| Header::local(Version::V1))),
        Some(Some(family)) => family,
    };
    let ip_full = |f: &[u8]| parse_ip(f, family);
    let ip_prefix = |f: &[u8]| ip_prefix_ok(f, family);
    let Some(src_ip) = next_field(&mut it, complete, "source address", ip_full, ip_prefix)? else {
        return Ok(None);
    };
    let Some(dst_ip) = next_field(&mut it, complete, "destination address", ip_full, ip_prefix)?
    else {
        return Ok(None);
    };
    let port_prefix = |f: &[u8]| f.is_empty() || parse_port(f).is_some();
    let Some(src_port) = next_field(&mut it, complete, "source port", parse_port, port_prefix)?
    else {
        return Ok(None);
    };
    let Some(dst_port) = next_field(
        &mut it,
        complete,
        "destination port",
        parse_port,
        port_prefix,
    )?
    else {
        return Ok(None);
    };
    if it.next().is_some() {
        return Err(Error::V1BadField("end of line after the destination port"));
    }
    Ok(Some(Header {
        version: Version::V1,
        command: Command::Proxy,
        transport: Transport::Stream,
        addresses: Some((
            SocketAddr::new(src_ip, src_port),
            SocketAddr::new(dst_ip, dst_port),
        )),
        tlvs: Vec::new(),
    }))
}

/// Takes the next space-separated field. `Ok(None)`: it is the cut-short
/// last field of an incomplete line and a valid prefix.
fn next_field<'a, I, T>(
    it: &mut Peekable<I>,
    complete: bool,
    name: &'static str,
    full: impl Fn(&[u8]) -> Option<T>,
    prefix: impl Fn(&[u8]) -> bool,
) -> Result<Option<T>, Error>
where
    I: Iterator<Item = &'a [u8]>,
{
    // An incomplete line returns at its last field, so running out of
    // fields only happens on a complete line that lacks this one.
    let field = it.next().ok_or(Error::V1BadField(name))?;
    if !complete && it.peek().is_none() {
        return if prefix(field) {
            Ok(None)
        } else {
            Err(Error::V1BadField(name))
        };
    }
    full(field).map(Some).ok_or(Error::V1BadField(name))
}

/// `Some(None)` for UNKNOWN.
fn parse_proto(f: &[u8]) -> Option<Option<Family>> {
    match f {
        TCP4 => Some(Some(Family::Inet)),
        TCP6 => Some(Some(Family::Inet6)),
        UNKNOWN => Some(None),
        _ => None,
    }
}

fn parse_ip(f: &[u8], family: Family) -> Option<IpAddr> {
    match family {
        Family::Inet => parse_ipv4(f).map(IpAddr::V4),
        _ => std::str::from_utf8(f)
            .ok()?
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6),
    }
}

fn ip_prefix_ok(f: &[u8], family: Family) -> bool {
    match family {
        Family::Inet => {
            let groups = f.split(|&b| b == b'.').count();
            // Every group but the last is whole; the last may be empty.
            groups <= 4
                && f.split(|&b| b == b'.')
                    .enumerate()
                    .all(|(i, g)| (i + 1 == groups && g.is_empty()) || parse_octet(g).is_some())
        }
        _ => {
            f.len() <= IPV6_TEXT_MAX
                && f.iter()
                    .all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.')
        }
    }
}

/// Exactly four decimal octets, no leading zeros (they would read as octal
/// to some parsers).
fn parse_ipv4(f: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut groups = f.split(|&b| b == b'.');
    for o in &mut octets {
        *o = parse_octet(groups.next()?)?;
    }
    if groups.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

fn parse_octet(g: &[u8]) -> Option<u8> {
    if g.len() > 3 {
        return None;
    }
    u8::try_from(parse_decimal(g)?).ok()
}

/// 0..=65535 in decimal, no leading zeros.
fn parse_port(f: &[u8]) -> Option<u16> {
    if f.len() > 5 {
        return None;
    }
    u16::try_from(parse_decimal(f)?).ok()
}

/// Non-empty ASCII digits without a leading zero (bar "0" itself); callers
/// bound the length so the value fits.
fn parse_decimal(f: &[u8]) -> Option<u32> {
    let (&first, _) = f.split_first()?;
    if f.len() > 9 || (first == b'0' && f.len() > 1) {
        return None;
    }
    f.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Writes `header` as a v1 line into `out`.
pub(super) fn write_header(header: &Header, out: &mut [u8]) -> Result<usize, Error> {
    if !header.tlvs.is_empty() {
        return Err(Error::Unrepresentable("v1 has no TLVs"));
    }
    match header.addresses {
        None => {
            let line = b"PROXY UNKNOWN\r\n";
            let dst = out.get_mut(..line.len()).ok_or(Error::BufferTooSmall)?;
            dst.copy_from_slice(line);
            Ok(line.len())
        }
        Some(_) if header.command == Command::Local => Err(Error::Unrepresentable(
            "a LOCAL header carries no addresses",
        )),
        Some(_) if header.transport != Transport::Stream => {
            Err(Error::Unrepresentable("v1 carries TCP only"))
        }
        Some((src, dst)) => write_v1(out, src, dst),
    }
}

/// Writes `PROXY TCP4|TCP6 ...\r\n` for `(src, dst)` into `out` without
/// allocating and returns its length (at most 104 bytes, always within
/// [`V1_MAX_LEN`]). Mixed families are mapped as [`super::same_family`]
/// does; IPv6 is written as hex groups with `::` compression, never with a
/// dotted IPv4 tail.
pub fn write_v1(out: &mut [u8], src: SocketAddr, dst: SocketAddr) -> Result<usize, Error> {
    let (src, dst) = same_family(src, dst);
    let mut w = SliceWriter { buf: out, len: 0 };
    let proto = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    let written = (|| -> fmt::Result {
        write!(w, "PROXY {proto} ")?;
        write_ip(&mut w, src.ip())?;
        w.write_char(' ')?;
        write_ip(&mut w, dst.ip())?;
        write!(w, " {} {}\r\n", src.port(), dst.port())
    })();
    written.map_err(|_| Error::BufferTooSmall)?;
    Ok(w.len)
}

fn write_ip(w: &mut SliceWriter<'_>, ip: IpAddr) -> fmt::Result {
    match ip {
        IpAddr::V4(v4) => write!(w, "{v4}"),
        IpAddr::V6(v6) => write_ipv6(w, v6),
    }
}

/// RFC 5952 text without the dotted-quad forms `Display` uses for mapped
/// addresses, since the v1 spec describes IPv6 as hex groups only.
fn write_ipv6(w: &mut SliceWriter<'_>, ip: Ipv6Addr) -> fmt::Result {
    let seg = ip.segments();
    // Longest run of two or more zero groups, the first one on a tie.
    let (mut best, mut run) = ((0usize, 0usize), (0usize, 0usize));
    for (i, &s) in seg.iter().enumerate() {
        if s == 0 {
            if run.1 == 0 {
                run.0 = i;
            }
            run.1 += 1;
            if run.1 > best.1 {
                best = run;
            }
        } else {
            run.1 = 0;
        }
    }
    let write_groups = |w: &mut SliceWriter<'_>, groups: &[u16]| -> fmt::Result {
        for (i, g) in groups.iter().enumerate() {
            if i > 0 {
                w.write_char(':')?;
            }
            write!(w, "{g:x}")?;
        }
        Ok(())
    };
    if best.1 < 2 {
        return write_groups(w, &seg);
    }
    write_groups(w, &seg[..best.0])?;
    w.write_str("::")?;
    write_groups(w, &seg[best.0 + best.1..])
}

/// `fmt::Write` into a fixed slice; fails instead of growing.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
