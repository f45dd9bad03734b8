//! PROXY protocol v1/v2: byte-exact vectors written out from HAProxy's
//! `doc/proxy-protocol.txt` (not produced by our emitter), one input per
//! error variant, incremental feeding, and bounded property tests (round
//! trip, random bytes, mutated headers) through the same oracle the
//! `fuzz/` target uses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use nvelox::proxy_protocol::{
    same_family, write_v1, write_v2, Accept, Command, Error, Family, Header, Parsed, Tlv,
    Transport, Version, V1_MAX_LEN, V2_ADDR_MAX_LEN, V2_MAX_LEN,
};
use proptest::prelude::*;

/// The fuzz target's oracle, compiled and run here on stable.
mod parse_check {
    include!("../fuzz/fuzz_targets/parse_check.rs");
}
use parse_check::check_parse;

/// `"0d 0a ..."` -> bytes; panics on a typo in a test vector.
fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("bad hex {b:?}")))
        .collect()
}

const SIG: &str = "0d 0a 0d 0a 00 0d 0a 51 55 49 54 0a";

fn v2(rest: &str) -> Vec<u8> {
    hex(&format!("{SIG} {rest}"))
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn complete(buf: &[u8], accept: Accept) -> (Header, usize) {
    match Header::parse(buf, accept) {
        Ok(Parsed::Complete { header, consumed }) => (header, consumed),
        other => panic!("expected a complete header, got {other:?}"),
    }
}

fn emitted(h: &Header) -> Vec<u8> {
    let mut out = Vec::new();
    match h.emit(&mut out) {
        Ok(n) => assert_eq!(n, out.len()),
        Err(e) => panic!("emit {h:?}: {e}"),
    }
    out
}

fn parse_err(buf: &[u8], accept: Accept) -> Error {
    match Header::parse(buf, accept) {
        Err(e) => e,
        other => panic!("expected an error for {buf:02x?}, got {other:?}"),
    }
}

/// Checks both directions: the vector parses to `header` (consuming all of
/// it), and `header` emits exactly the vector.
fn vector(bytes: &[u8], header: Header) {
    let (parsed, consumed) = complete(bytes, Accept::Any);
    assert_eq!(parsed, header);
    assert_eq!(consumed, bytes.len());
    assert_eq!(emitted(&header), bytes);
    assert_eq!(header.encoded_len(), bytes.len());
    check_parse(bytes);
}

// ---- byte-exact vectors -------------------------------------------------

#[test]
fn v2_tcp_ipv4() {
    let bytes = v2("21 11 00 0c  c0 a8 00 01  c0 a8 00 0b  dc 04  01 bb");
    let h = Header::proxy(
        Version::V2,
        Transport::Stream,
        sa("192.168.0.1:56324"),
        sa("192.168.0.11:443"),
    );
    vector(&bytes, h);
    let mut buf = [0u8; V2_ADDR_MAX_LEN];
    let n = write_v2(
        &mut buf,
        Transport::Stream,
        sa("192.168.0.1:56324"),
        sa("192.168.0.11:443"),
    );
    assert_eq!(n, Ok(28));
    assert_eq!(&buf[..28], &bytes[..]);
}

#[test]
fn v2_tcp_ipv6() {
    let bytes = v2("21 21 00 24 \
         20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 \
         20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02 \
         30 39  01 bb");
    let (src, dst) = (sa("[2001:db8::1]:12345"), sa("[2001:db8::2]:443"));
    vector(
        &bytes,
        Header::proxy(Version::V2, Transport::Stream, src, dst),
    );
    let mut buf = [0u8; V2_ADDR_MAX_LEN];
    assert_eq!(write_v2(&mut buf, Transport::Stream, src, dst), Ok(52));
    assert_eq!(&buf[..], &bytes[..]);
}

#[test]
fn v2_udp_ipv4() {
    let bytes = v2("21 12 00 0c  0a 00 00 01  0a 00 00 02  14 e9  00 35");
    let (src, dst) = (sa("10.0.0.1:5353"), sa("10.0.0.2:53"));
    vector(
        &bytes,
        Header::proxy(Version::V2, Transport::Dgram, src, dst),
    );
    let mut buf = [0u8; V2_ADDR_MAX_LEN];
    assert_eq!(write_v2(&mut buf, Transport::Dgram, src, dst), Ok(28));
    assert_eq!(&buf[..28], &bytes[..]);
}

#[test]
fn v2_udp_ipv6() {
    let bytes = v2("21 22 00 24 \
         fe 80 00 00 00 00 00 00 00 00 00 00 00 00 00 01 \
         00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 \
         ff ff  00 00");
    let (src, dst) = (sa("[fe80::1]:65535"), sa("[::1]:0"));
    vector(
        &bytes,
        Header::proxy(Version::V2, Transport::Dgram, src, dst),
    );
}

#[test]
fn v2_local() {
    vector(&v2("20 00 00 00"), Header::local(Version::V2));
}

#[test]
fn v2_tlvs() {
    // PP2_TYPE_AUTHORITY "example.com", then a 2-byte PP2_TYPE_NOOP.
    let bytes = v2("21 11 00 1f  7f 00 00 01  7f 00 00 01  00 50  00 51 \
         02 00 0b  65 78 61 6d 70 6c 65 2e 63 6f 6d \
         04 00 02  00 00");
    let mut h = Header::proxy(
        Version::V2,
        Transport::Stream,
        sa("127.0.0.1:80"),
        sa("127.0.0.1:81"),
    );
    h.tlvs = vec![
        Tlv {
            kind: 0x02,
            value: b"example.com".to_vec(),
        },
        Tlv {
            kind: 0x04,
            value: vec![0, 0],
        },
    ];
    vector(&bytes, h);
}

#[test]
fn v2_unix_is_parsed_and_skipped() {
    let mut bytes = v2("21 31 00 db");
    bytes.extend_from_slice(&[b'/'; 216]);
    bytes.extend_from_slice(&hex("04 00 00")); // an empty NOOP TLV after the block
    let (h, consumed) = complete(&bytes, Accept::V2);
    assert_eq!(consumed, 16 + 219);
    assert_eq!(h.command, Command::Proxy);
    assert_eq!(h.transport, Transport::Stream);
    assert_eq!(h.addresses, None);
    assert_eq!(
        h.tlvs,
        vec![Tlv {
            kind: 4,
            value: vec![]
        }]
    );
    check_parse(&bytes);
}

#[test]
fn v2_local_ignores_family_and_addresses() {
    // LOCAL announcing TCP4 with an address block: addresses are dropped.
    let bytes = v2("20 11 00 0c  0a 00 00 01  0a 00 00 02  00 01  00 02");
    let (h, consumed) = complete(&bytes, Accept::V2);
    assert_eq!(consumed, 28);
    assert_eq!((h.command, h.addresses), (Command::Local, None));
    // ... and announcing TCP4 without one is tolerated, not AddressBlockTooShort.
    let (h, consumed) = complete(&v2("20 11 00 00"), Accept::V2);
    assert_eq!(
        (h.command, h.addresses, consumed),
        (Command::Local, None, 16)
    );
}

#[test]
fn v2_proxy_unspec_has_no_addresses() {
    let (h, _) = complete(&v2("21 00 00 00"), Accept::V2);
    assert_eq!(h.command, Command::Proxy);
    assert_eq!((h.transport, h.addresses), (Transport::Unspec, None));
    // INET with the UNSPEC transport: the block is skipped, nothing carried.
    let bytes = v2("21 10 00 0c  0a 00 00 01  0a 00 00 02  00 01  00 02");
    let (h, _) = complete(&bytes, Accept::V2);
    assert_eq!((h.transport, h.addresses), (Transport::Unspec, None));
}

#[test]
fn v1_tcp4() {
    // "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    let bytes = hex(
        "50 52 4f 58 59 20 54 43 50 34 20 31 39 32 2e 31 36 38 2e 30 2e 31 20 \
         31 39 32 2e 31 36 38 2e 30 2e 31 31 20 35 36 33 32 34 20 34 34 33 0d 0a",
    );
    let (src, dst) = (sa("192.168.0.1:56324"), sa("192.168.0.11:443"));
    vector(
        &bytes,
        Header::proxy(Version::V1, Transport::Stream, src, dst),
    );
    let mut buf = [0u8; V1_MAX_LEN];
    assert_eq!(write_v1(&mut buf, src, dst), Ok(bytes.len()));
    assert_eq!(&buf[..bytes.len()], &bytes[..]);
}

#[test]
fn v1_tcp6() {
    // "PROXY TCP6 2001:db8::1 2001:db8::2 12345 443\r\n"
    let bytes = hex(
        "50 52 4f 58 59 20 54 43 50 36 20 32 30 30 31 3a 64 62 38 3a 3a 31 20 \
         32 30 30 31 3a 64 62 38 3a 3a 32 20 31 32 33 34 35 20 34 34 33 0d 0a",
    );
    let (src, dst) = (sa("[2001:db8::1]:12345"), sa("[2001:db8::2]:443"));
    vector(
        &bytes,
        Header::proxy(Version::V1, Transport::Stream, src, dst),
    );
}

#[test]
fn v1_unknown() {
    // "PROXY UNKNOWN\r\n"
    let bytes = hex("50 52 4f 58 59 20 55 4e 4b 4e 4f 57 4e 0d 0a");
    vector(&bytes, Header::local(Version::V1));
    // The spec's worst case: whatever follows UNKNOWN is ignored, 107 bytes in all.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.extend_from_slice(&[b'f'; 91]);
    long.extend_from_slice(b"\r\n");
    assert_eq!(long.len(), V1_MAX_LEN);
    assert_eq!(
        complete(&long, Accept::V1),
        (Header::local(Version::V1), V1_MAX_LEN)
    );
}

#[test]
fn v1_then_payload() {
    let mut bytes = b"PROXY TCP4 1.2.3.4 5.6.7.8 1000 80\r\n".to_vec();
    let header_len = bytes.len();
    bytes.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    let (h, consumed) = complete(&bytes, Accept::Any);
    assert_eq!(consumed, header_len);
    assert_eq!(h.addresses, Some((sa("1.2.3.4:1000"), sa("5.6.7.8:80"))));
}

#[test]
fn mixed_families_are_mapped_consistently() {
    // v4 client on a dual-stack socket: both mapped => plain IPv4.
    let src = sa("1.2.3.4:1000");
    let mapped_dst = sa("[::ffff:5.6.7.8]:80");
    assert_eq!(same_family(src, mapped_dst), (src, sa("5.6.7.8:80")));
    let mut buf = [0u8; V1_MAX_LEN];
    let n = write_v1(&mut buf, src, mapped_dst);
    // "PROXY TCP4 1.2.3.4 5.6.7.8 1000 80\r\n"
    let want = hex("50 52 4f 58 59 20 54 43 50 34 20 31 2e 32 2e 33 2e 34 20 \
         35 2e 36 2e 37 2e 38 20 31 30 30 30 20 38 30 0d 0a");
    assert_eq!(n, Ok(want.len()));
    assert_eq!(&buf[..want.len()], &want[..]);

    // v4 source, real v6 destination => both IPv6, the v4 one mapped.
    let dst6 = sa("[2001:db8::1]:80");
    let mut buf = [0u8; V1_MAX_LEN];
    // "PROXY TCP6 ::ffff:102:304 2001:db8::1 1000 80\r\n": hex groups, no dotted tail.
    let want = hex(
        "50 52 4f 58 59 20 54 43 50 36 20 3a 3a 66 66 66 66 3a 31 30 32 3a 33 30 34 20 \
         32 30 30 31 3a 64 62 38 3a 3a 31 20 31 30 30 30 20 38 30 0d 0a",
    );
    assert_eq!(write_v1(&mut buf, src, dst6), Ok(want.len()));
    assert_eq!(&buf[..want.len()], &want[..]);

    let mut buf = [0u8; V2_ADDR_MAX_LEN];
    let want = v2("21 21 00 24 \
         00 00 00 00 00 00 00 00 00 00 ff ff 01 02 03 04 \
         20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 \
         03 e8  00 50");
    assert_eq!(write_v2(&mut buf, Transport::Stream, src, dst6), Ok(52));
    assert_eq!(&buf[..], &want[..]);

    // A header with the mixed pair round-trips to its canonical form.
    let h = Header::proxy(Version::V2, Transport::Stream, src, mapped_dst);
    let (back, _) = complete(&emitted(&h), Accept::V2);
    assert_eq!(back, h.canonical());
    assert_eq!(back.addresses, Some((src, sa("5.6.7.8:80"))));
}

#[test]
fn emit_appends() {
    let mut out = b"junk".to_vec();
    let n = Header::local(Version::V2).emit(&mut out);
    assert_eq!(n, Ok(16));
    assert_eq!(&out[..4], b"junk");
    assert_eq!(&out[4..], &v2("20 00 00 00")[..]);
}

// ---- one input per error variant ----------------------------------------

#[test]
fn error_bad_signature() {
    assert_eq!(
        parse_err(b"GET / HTTP/1.1\r\n", Accept::Any),
        Error::BadSignature
    );
    assert_eq!(parse_err(b"PROXX", Accept::Any), Error::BadSignature);
    assert_eq!(parse_err(b"\r\n\r\n\0X", Accept::Any), Error::BadSignature);
    assert_eq!(parse_err(b"\x16\x03\x01", Accept::V2), Error::BadSignature);
}

#[test]
fn error_not_accepted() {
    let v2_bytes = v2("21 11 00 0c  0a 00 00 01  0a 00 00 02  00 01  00 02");
    assert_eq!(
        parse_err(&v2_bytes, Accept::V1),
        Error::NotAccepted(Version::V2)
    );
    // Fails on the first byte, without waiting for the whole signature.
    assert_eq!(
        parse_err(b"\r", Accept::V1),
        Error::NotAccepted(Version::V2)
    );
    assert_eq!(
        parse_err(b"PROXY UNKNOWN\r\n", Accept::V2),
        Error::NotAccepted(Version::V1)
    );
    assert_eq!(
        parse_err(b"PR", Accept::V2),
        Error::NotAccepted(Version::V1)
    );
}

#[test]
fn error_v2_nibbles() {
    assert_eq!(parse_err(&v2("11"), Accept::V2), Error::BadVersion(1));
    assert_eq!(
        parse_err(&v2("31 11 00 00"), Accept::Any),
        Error::BadVersion(3)
    );
    assert_eq!(parse_err(&v2("22"), Accept::V2), Error::BadCommand(2));
    assert_eq!(
        parse_err(&v2("2f 11 00 0c"), Accept::V2),
        Error::BadCommand(0xf)
    );
    assert_eq!(parse_err(&v2("21 41"), Accept::V2), Error::BadFamily(4));
    assert_eq!(parse_err(&v2("21 13"), Accept::V2), Error::BadTransport(3));
}

#[test]
fn error_address_block_too_short() {
    let cases = [
        ("21 11 00 0b", Family::Inet, 11),
        ("21 22 00 0c", Family::Inet6, 12),
        ("21 31 00 24", Family::Unix, 36),
    ];
    for (bytes, family, len) in cases {
        // Reported from the 16 fixed bytes, before the body arrives.
        assert_eq!(
            parse_err(&v2(bytes), Accept::V2),
            Error::AddressBlockTooShort { family, len }
        );
    }
}

#[test]
fn error_truncated_tlv() {
    // Two bytes left after the address block: not even a TLV header.
    let bytes = v2("21 11 00 0e  0a 00 00 01  0a 00 00 02  00 01  00 02  02 00");
    assert_eq!(
        parse_err(&bytes, Accept::V2),
        Error::TruncatedTlv { offset: 28 }
    );
    // A TLV whose value runs past the declared length.
    let bytes = v2("21 11 00 10  0a 00 00 01  0a 00 00 02  00 01  00 02  02 00 05 61");
    assert_eq!(
        parse_err(&bytes, Accept::V2),
        Error::TruncatedTlv { offset: 28 }
    );
    // The second TLV is the broken one.
    let bytes = v2("20 00 00 06  04 00 00  04 00 01");
    assert_eq!(
        parse_err(&bytes, Accept::V2),
        Error::TruncatedTlv { offset: 19 }
    );
}

#[test]
fn error_too_long() {
    // Declared 2,049 bytes: one over the default cap, rejected from the fixed part.
    assert_eq!(
        parse_err(&v2("21 00 08 01"), Accept::V2),
        Error::TooLong(16 + 2049)
    );
    let at_cap = v2("21 00 08 00");
    assert!(matches!(
        Header::parse(&at_cap, Accept::V2),
        Ok(Parsed::Incomplete {
            needed_hint: Some(2048)
        })
    ));
    // Caller's tighter bound.
    let tcp4 = v2("21 11 00 0c  0a 00 00 01  0a 00 00 02  00 01  00 02");
    assert_eq!(
        Header::parse_bounded(&tcp4, Accept::V2, 27),
        Err(Error::TooLong(28))
    );
    assert!(matches!(
        Header::parse_bounded(&tcp4, Accept::V2, 28),
        Ok(Parsed::Complete { consumed: 28, .. })
    ));
    // Whatever the caller asks, a declared length above 65,535 - 16 is refused.
    assert!(matches!(
        Header::parse_bounded(&v2("21 00 ff ef"), Accept::V2, usize::MAX),
        Ok(Parsed::Incomplete { .. })
    ));
    assert_eq!(
        Header::parse_bounded(&v2("21 00 ff f0"), Accept::V2, usize::MAX),
        Err(Error::TooLong(65536))
    );
    // Emitting more than V2_MAX_LEN is refused too.
    let mut h = Header::local(Version::V2);
    h.tlvs.push(Tlv {
        kind: 0xe0,
        value: vec![0; V2_MAX_LEN],
    });
    let mut out = vec![1, 2, 3];
    assert_eq!(h.emit(&mut out), Err(Error::TooLong(16 + 3 + V2_MAX_LEN)));
    assert_eq!(out, vec![1, 2, 3], "a failed emit leaves the buffer alone");
    assert_eq!(h.encoded_len(), 0);
}

#[test]
fn error_v1_missing_crlf() {
    assert_eq!(
        parse_err(b"PROXY UNKNOWN\n", Accept::V1),
        Error::V1MissingCrlf
    );
    assert_eq!(
        parse_err(b"PROXY UNKNOWN\rX", Accept::V1),
        Error::V1MissingCrlf
    );
    assert_eq!(
        parse_err(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", Accept::Any),
        Error::V1MissingCrlf
    );
}

#[test]
fn error_v1_bad_field() {
    let cases: &[(&[u8], &str)] = &[
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "protocol"),
        (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "protocol"),
        (b"PROXY \r\n", "protocol"),
        (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "protocol"),
        (b"PROXY UNKNOWNX\r\n", "protocol"),
        (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "source address"),
        (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "source address"),
        (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "source address"),
        (b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "source address"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "source address"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "source address"),
        (b"PROXY TCP6 ::1 ::g 1 2\r\n", "destination address"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "source port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "source port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "source port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n", "destination port"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "destination port"),
        (b"PROXY TCP4 1.2.3.4\r\n", "destination address"),
        (
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            "end of line after the destination port",
        ),
        // Rejected as soon as seen, without a CRLF.
        (b"PROXY TCP4 1.2.3.4x", "source address"),
        (b"PROXY TCPX", "protocol"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 00", "source port"),
        (b"PROXY TCP6 ::1 fe80::1%eth0", "destination address"),
    ];
    for (input, field) in cases {
        assert_eq!(
            parse_err(input, Accept::V1),
            Error::V1BadField(field),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    // Port 0 is "0", not a leading zero.
    let (h, _) = complete(b"PROXY TCP4 0.0.0.0 5.6.7.8 0 65535\r\n", Accept::V1);
    assert_eq!(h.addresses, Some((sa("0.0.0.0:0"), sa("5.6.7.8:65535"))));
}

#[test]
fn error_v1_too_long() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(V1_MAX_LEN - 1, b'f');
    assert!(matches!(
        Header::parse(&line, Accept::V1),
        Ok(Parsed::Incomplete { .. })
    ));
    line.push(b'f');
    assert_eq!(parse_err(&line, Accept::V1), Error::V1TooLong);
    // CR as the 107th byte: the LF would be the 108th.
    line[V1_MAX_LEN - 1] = b'\r';
    assert_eq!(parse_err(&line, Accept::V1), Error::V1TooLong);
}

#[test]
fn error_buffer_too_small() {
    let (src, dst) = (sa("1.2.3.4:1"), sa("5.6.7.8:2"));
    assert_eq!(
        write_v2(&mut [0u8; 27], Transport::Stream, src, dst),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(
        write_v2(&mut [0u8; 28], Transport::Stream, src, dst),
        Ok(28)
    );
    let six = (sa("[::1]:1"), sa("[::2]:2"));
    assert_eq!(
        write_v2(&mut [0u8; 51], Transport::Dgram, six.0, six.1),
        Err(Error::BufferTooSmall)
    );
    // "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" is 32 bytes.
    assert_eq!(
        write_v1(&mut [0u8; 31], src, dst),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(write_v1(&mut [0u8; 32], src, dst), Ok(32));
}

#[test]
fn error_unrepresentable() {
    let (src, dst) = (sa("1.2.3.4:1"), sa("5.6.7.8:2"));
    let mut out = Vec::new();
    let mut with_tlv = Header::local(Version::V1);
    with_tlv.tlvs.push(Tlv {
        kind: 4,
        value: vec![],
    });
    let udp_v1 = Header::proxy(Version::V1, Transport::Dgram, src, dst);
    let unspec = Header::proxy(Version::V2, Transport::Unspec, src, dst);
    let mut local_with_addresses = Header::local(Version::V2);
    local_with_addresses.addresses = Some((src, dst));
    for h in [with_tlv, udp_v1, unspec, local_with_addresses] {
        assert!(
            matches!(h.emit(&mut out), Err(Error::Unrepresentable(_))),
            "{h:?}"
        );
        assert_eq!(h.encoded_len(), 0);
    }
    assert!(out.is_empty());
    assert!(matches!(
        write_v2(&mut [0u8; 64], Transport::Unspec, src, dst),
        Err(Error::Unrepresentable(_))
    ));
}

#[test]
fn errors_display_without_panicking() {
    let all = [
        Error::BadSignature,
        Error::NotAccepted(Version::V1),
        Error::BadVersion(1),
        Error::BadCommand(2),
        Error::BadFamily(4),
        Error::BadTransport(3),
        Error::AddressBlockTooShort {
            family: Family::Inet,
            len: 3,
        },
        Error::TruncatedTlv { offset: 28 },
        Error::TooLong(9999),
        Error::V1MissingCrlf,
        Error::V1BadField("source port"),
        Error::V1TooLong,
        Error::BufferTooSmall,
        Error::Unrepresentable("why"),
    ];
    for e in all {
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        Error::V1BadField("source port").to_string(),
        "PROXY v1: bad or missing source port"
    );
}

// ---- incremental feeding -------------------------------------------------

#[test]
fn every_prefix_of_the_vectors_is_incomplete() {
    let vectors = [
        v2("21 11 00 0c  c0 a8 00 01  c0 a8 00 0b  dc 04  01 bb"),
        v2("20 00 00 00"),
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec(),
        b"PROXY TCP6 2001:db8::1 2001:db8::2 12345 443\r\n".to_vec(),
        b"PROXY UNKNOWN\r\n".to_vec(),
    ];
    for bytes in vectors {
        for accept in [Accept::Any, version_of(&bytes)] {
            for k in 0..bytes.len() {
                match Header::parse(&bytes[..k], accept) {
                    Ok(Parsed::Incomplete { needed_hint }) => {
                        if let Some(more) = needed_hint {
                            assert!(more > 0 && k + more <= bytes.len(), "hint {more} at {k}");
                        }
                    }
                    other => panic!("{k} of {} bytes: {other:?}", bytes.len()),
                }
            }
            let (_, consumed) = complete(&bytes, accept);
            assert_eq!(consumed, bytes.len());
        }
    }
}

fn version_of(bytes: &[u8]) -> Accept {
    if bytes.starts_with(b"PROXY") {
        Accept::V1
    } else {
        Accept::V2
    }
}

#[test]
fn seed_corpus_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/parse");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.map(|e| e.path()).unwrap_or_else(|e| panic!("{e}"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The hand-written seeds (`v1_*.bin`, `v2_*.bin`) are complete
        // headers; the rest is the fuzzer's minimized corpus, any bytes.
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("v1_") || name.starts_with("v2_") {
            let (_, consumed) = complete(&bytes, Accept::Any);
            assert!(consumed <= bytes.len());
            seen += 1;
        }
        check_parse(&bytes);
    }
    assert!(seen >= 8, "only {seen} hand-written seeds");
}

// ---- property tests -------------------------------------------------------

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        any::<[u8; 4]>().prop_map(|o| IpAddr::V6(Ipv4Addr::from(o).to_ipv6_mapped())),
    ]
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    (arb_ip(), any::<u16>(), any::<u32>(), any::<u32>()).prop_map(
        |(ip, port, flow, scope)| match ip {
            IpAddr::V4(_) => SocketAddr::new(ip, port),
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, flow, scope)),
        },
    )
}

fn arb_transport() -> impl Strategy<Value = Transport> {
    prop_oneof![
        Just(Transport::Unspec),
        Just(Transport::Stream),
        Just(Transport::Dgram)
    ]
}

fn arb_tlvs() -> impl Strategy<Value = Vec<Tlv>> {
    prop::collection::vec(
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(kind, value)| Tlv { kind, value }),
        0..4,
    )
}

/// Headers `emit` accepts, in every shape the API can express.
fn arb_header() -> impl Strategy<Value = Header> {
    let ip_transport = prop_oneof![Just(Transport::Stream), Just(Transport::Dgram)];
    prop_oneof![
        (arb_addr(), arb_addr()).prop_map(|(s, d)| Header::proxy(
            Version::V1,
            Transport::Stream,
            s,
            d
        )),
        Just(Header::local(Version::V1)),
        (ip_transport, arb_addr(), arb_addr(), arb_tlvs()).prop_map(|(t, s, d, tlvs)| Header {
            tlvs,
            ..Header::proxy(Version::V2, t, s, d)
        }),
        (arb_transport(), any::<bool>(), arb_tlvs()).prop_map(|(transport, proxy, tlvs)| Header {
            command: if proxy {
                Command::Proxy
            } else {
                Command::Local
            },
            transport,
            tlvs,
            ..Header::local(Version::V2)
        }),
    ]
}

/// Random bytes, and random bytes behind each signature so the generator
/// reaches past the first byte.
fn arb_input() -> impl Strategy<Value = Vec<u8>> {
    let v1_chars = prop::collection::vec(
        prop::sample::select(b"PROXY TCP46UNKOW0123456789abcdef.:\r\n ".to_vec()),
        0..120,
    )
    .prop_map(|tail| [b"PROXY ".as_slice(), &tail].concat());
    let v2_tail = prop::collection::vec(any::<u8>(), 0..80)
        .prop_map(|tail| [v2("").as_slice(), &tail].concat());
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        v1_chars,
        v2_tail
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, 1 << bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let at = |i: usize| i % bytes.len();
    match *m {
        Mutation::Set(i, b) => {
            let i = at(i);
            bytes[i] = b;
        }
        Mutation::Flip(i, mask) => {
            let i = at(i);
            bytes[i] ^= mask;
        }
        Mutation::Insert(i, b) => {
            let i = at(i);
            bytes.insert(i, b);
        }
        Mutation::Remove(i) => {
            let i = at(i);
            bytes.remove(i);
        }
        Mutation::Truncate(i) => {
            let i = at(i);
            bytes.truncate(i);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parse_emit_round_trip(h in arb_header(), payload in prop::collection::vec(any::<u8>(), 0..16)) {
        let bytes = emitted(&h);
        prop_assert_eq!(bytes.len(), h.encoded_len());
        let mut with_payload = bytes.clone();
        with_payload.extend_from_slice(&payload);
        for accept in [Accept::Any, version_of(&bytes)] {
            prop_assert_eq!(
                Header::parse(&with_payload, accept),
                Ok(Parsed::Complete { header: h.canonical(), consumed: bytes.len() })
            );
        }
        // Canonical headers are fixed points: what was sent is what is read.
        let c = h.canonical();
        prop_assert_eq!(complete(&emitted(&c), Accept::Any).0, c);
    }

    #[test]
    fn fixed_buffer_writers_match_emit(s in arb_addr(), d in arb_addr(), udp in any::<bool>()) {
        let t = if udp { Transport::Dgram } else { Transport::Stream };
        let mut buf = [0u8; V2_ADDR_MAX_LEN];
        let n = write_v2(&mut buf, t, s, d);
        prop_assert_eq!(n.map(|n| buf[..n].to_vec()), Ok(emitted(&Header::proxy(Version::V2, t, s, d))));
        let mut buf = [0u8; V1_MAX_LEN];
        let n = write_v1(&mut buf, s, d);
        let line = emitted(&Header::proxy(Version::V1, Transport::Stream, s, d));
        prop_assert!(line.len() <= 104);
        prop_assert_eq!(n.map(|n| buf[..n].to_vec()), Ok(line));
    }

    #[test]
    fn v1_ipv6_text_matches_std_outside_mapped(a in any::<[u8; 16]>(), b in any::<[u8; 16]>()) {
        let (a, b) = (Ipv6Addr::from(a), Ipv6Addr::from(b));
        prop_assume!(a.to_ipv4_mapped().is_none() && b.to_ipv4_mapped().is_none());
        let mut buf = [0u8; V1_MAX_LEN];
        let n = write_v1(&mut buf, SocketAddr::new(a.into(), 1), SocketAddr::new(b.into(), 2));
        let want = format!("PROXY TCP6 {a} {b} 1 2\r\n");
        prop_assert_eq!(n.map(|n| buf[..n].to_vec()), Ok(want.into_bytes()));
    }

    #[test]
    fn every_prefix_is_incomplete(h in arb_header()) {
        let bytes = emitted(&h);
        for k in 0..bytes.len() {
            match Header::parse(&bytes[..k], Accept::Any) {
                Ok(Parsed::Incomplete { needed_hint }) => {
                    if let Some(more) = needed_hint {
                        prop_assert!(more > 0 && k + more <= bytes.len());
                    }
                }
                other => prop_assert!(false, "prefix {} of {}: {:?}", k, bytes.len(), other),
            }
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in arb_input()) {
        check_parse(&bytes);
    }

    #[test]
    fn mutated_headers_never_panic(
        h in arb_header(),
        mutations in prop::collection::vec(arb_mutation(), 1..4),
    ) {
        let mut bytes = emitted(&h);
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        check_parse(&bytes);
    }
}
