//! PROXY protocol: one input per error variant, and their messages.

#[path = "common/proxy_vectors.rs"]
mod proxy_vectors;

use nvelox::proxy_protocol::{
    write_v1, write_v2, Accept, Error, Family, Header, Parsed, Tlv, Transport, Version, V1_MAX_LEN,
    V2_MAX_LEN,
};

use proxy_vectors::*;

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
