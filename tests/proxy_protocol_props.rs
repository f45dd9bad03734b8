//! PROXY protocol: bounded property tests (round trip, fixed-buffer
//! writers, prefixes, random bytes, mutated headers) through the same oracle
//! the `fuzz/` target uses.

#[path = "common/proxy_vectors.rs"]
mod proxy_vectors;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use nvelox::proxy_protocol::{
    write_v1, write_v2, Accept, Command, Header, Parsed, Tlv, Transport, Version, V1_MAX_LEN,
    V2_ADDR_MAX_LEN,
};
use proptest::prelude::*;

use proxy_vectors::*;

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
