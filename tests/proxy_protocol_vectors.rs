//! PROXY protocol v1/v2: byte-exact vectors written out from HAProxy's
//! `doc/proxy-protocol.txt` (not produced by our emitter), incremental
//! feeding and the fuzz seed corpus. Error variants are in
//! `proxy_protocol_errors.rs`, property tests in `proxy_protocol_props.rs`.

#[path = "common/proxy_vectors.rs"]
mod proxy_vectors;

use nvelox::proxy_protocol::{
    same_family, write_v1, write_v2, Accept, Command, Header, Parsed, Tlv, Transport, Version,
    V1_MAX_LEN, V2_ADDR_MAX_LEN,
};

use proxy_vectors::*;

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
