//! Property tests for the bind-string parser (`reactor::bind`), which every
//! listener's `bind:` goes through.

use proptest::prelude::*;
use reactor::bind::{BindError, BindHost, BindSpec};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn host() -> impl Strategy<Value = BindHost> {
    prop_oneof![
        Just(BindHost::DualStack),
        any::<u32>().prop_map(|v| BindHost::Ip(IpAddr::V4(Ipv4Addr::from(v)))),
        any::<u128>().prop_map(|v| BindHost::Ip(IpAddr::V6(Ipv6Addr::from(v)))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(s in ".{0,40}") {
        let _ = BindSpec::parse(&s);
    }

    #[test]
    fn display_round_trips(h in host(), a in 1u16..=65535, len in 0u16..2000) {
        let last = a.saturating_add(len);
        let spec = BindSpec { host: h, first_port: a, last_port: last };
        let text = spec.to_string();
        prop_assert_eq!(BindSpec::parse(&text), Ok(spec.clone()));
        prop_assert_eq!(spec.port_count(), usize::from(last - a) + 1);
    }

    #[test]
    fn reversed_ranges_are_refused(a in 2u16..=65535, d in 1u16..1000) {
        let b = a.saturating_sub(d).max(1);
        prop_assume!(b < a);
        prop_assert_eq!(
            BindSpec::parse(&format!("127.0.0.1:{a}-{b}")),
            Err(BindError::RangeReversed { first: a, last: b })
        );
    }

    #[test]
    fn out_of_range_ports_are_refused(p in 65536u64..10_000_000) {
        prop_assert_eq!(BindSpec::parse(&format!(":{p}")), Err(BindError::PortTooLarge(p)));
    }
}
