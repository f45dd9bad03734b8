//! CIDR lists (`ip_allowlist`, `ip_denylist`) as sorted, merged ranges of
//! 128-bit addresses: IPv4 entries and IPv4 clients both live in the
//! IPv4-mapped range `::ffff:0:0/96`, so a mapped IPv6 client
//! (`::ffff:10.0.0.1`, as a dual-stack socket reports it) matches an IPv4
//! entry. A lookup is one binary search (at most 17 steps for 100,000
//! entries); building sorts once.
//!
//! Owns parsing a CIDR entry and membership. Does not own what a match
//! means (allow or deny: `access.rs`).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// Why a list entry was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CidrError {
    /// Not an address, or `ADDR/LEN` with a bad address.
    Address(String),
    /// A prefix length that is not a number or too long for the family.
    PrefixLength(String),
    /// Bits set below the prefix (`10.0.0.1/8`): probably a typo.
    HostBits { input: String, network: String },
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::Address(s) => write!(
                f,
                "{s:?} is not an IP address or CIDR (expected e.g. 10.0.0.0/8, 192.0.2.7, 2001:db8::/32)"
            ),
            CidrError::PrefixLength(s) => {
                write!(f, "{s:?} has a bad prefix length (0-32 for IPv4, 0-128 for IPv6)")
            }
            CidrError::HostBits { input, network } => write!(
                f,
                "{input:?} has bits set after the prefix; write the network {network}"
            ),
        }
    }
}

impl std::error::Error for CidrError {}

/// An address as a 128-bit number; IPv4 as its IPv4-mapped IPv6 form.
pub fn addr_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// One entry: `ADDR` (a single address) or `ADDR/LEN`. Returns the first
/// and last address of the range, as [`addr_bits`].
pub fn parse_cidr(entry: &str) -> Result<(u128, u128), CidrError> {
    let s = entry.trim();
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| CidrError::Address(s.to_string()))?;
    let (family_bits, offset) = match ip {
        IpAddr::V4(_) => (32u32, 96u32),
        IpAddr::V6(_) => (128, 0),
    };
    let len = match len {
        None => family_bits,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if n <= family_bits && !l.starts_with('+') => n,
            _ => return Err(CidrError::PrefixLength(s.to_string())),
        },
    };
    let bits = addr_bits(ip);
    let host_bits = 128 - (offset + len);
    let host_mask: u128 = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let first = bits & !host_mask;
    if first != bits {
        let network = match ip {
            IpAddr::V4(_) => {
                let v6 = Ipv6Addr::from(first);
                match v6.to_ipv4_mapped() {
                    Some(v4) => format!("{v4}/{len}"),
                    None => format!("{v6}/{len}"),
                }
            }
            IpAddr::V6(_) => format!("{}/{len}", Ipv6Addr::from(first)),
        };
        return Err(CidrError::HostBits {
            input: s.to_string(),
            network,
        });
    }
    Ok((first, first | host_mask))
}

/// A set of address ranges, sorted and merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpSet {
    /// Disjoint, non-adjacent, ascending `(first, last)` ranges.
    ranges: Vec<(u128, u128)>,
}

impl IpSet {
    /// Builds the set from ranges in any order, overlapping or not.
    pub fn from_ranges(mut ranges: Vec<(u128, u128)>) -> IpSet {
        ranges.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (first, last) in ranges {
            match merged.last_mut() {
                Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        merged.shrink_to_fit();
        IpSet { ranges: merged }
    }

    /// Whether `ip` is in the set (IPv4 and IPv4-mapped IPv6 alike).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let x = addr_bits(ip);
        // The last range starting at or before x.
        let i = self.ranges.partition_point(|&(first, _)| first <= x);
        i > 0 && self.ranges[i - 1].1 >= x
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Merged ranges (fewer than the entries when some overlap).
    pub fn range_count(&self) -> usize {
        self.ranges.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[&str]) -> IpSet {
        IpSet::from_ranges(entries.iter().map(|e| parse_cidr(e).unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_v6_and_mapped_membership() {
        let s = set(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1/128"]);
        for yes in [
            "10.0.0.0",
            "10.255.255.255",
            "192.0.2.7",
            "::ffff:10.1.2.3",
            "::ffff:192.0.2.7",
            "2001:db8::1",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "::1",
        ] {
            assert!(s.contains(ip(yes)), "{yes}");
        }
        for no in [
            "11.0.0.0",
            "9.255.255.255",
            "192.0.2.6",
            "192.0.2.8",
            "::ffff:11.0.0.1",
            "2001:db9::",
            "::2",
            "127.0.0.1",
            // An IPv4-compatible (not mapped) address is not IPv4.
            "::10.0.0.1",
        ] {
            assert!(!s.contains(ip(no)), "{no}");
        }
        assert!(set(&["0.0.0.0/0"]).contains(ip("::ffff:1.2.3.4")));
        assert!(!set(&["0.0.0.0/0"]).contains(ip("2001:db8::1")));
        assert!(set(&["::/0"]).contains(ip("1.2.3.4")));
        assert!(!IpSet::default().contains(ip("1.2.3.4")));
    }

    #[test]
    fn overlapping_and_adjacent_entries_merge() {
        let s = set(&["10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "10.0.3.0/24"]);
        assert_eq!(s.range_count(), 2);
        assert!(s.contains(ip("10.0.1.255")));
        assert!(!s.contains(ip("10.0.2.0")));
        assert!(s.contains(ip("10.0.3.0")));
    }

    #[test]
    fn bad_entries_say_why() {
        assert!(matches!(parse_cidr("10.0.0/8"), Err(CidrError::Address(_))));
        assert!(matches!(
            parse_cidr("example.com"),
            Err(CidrError::Address(_))
        ));
        assert!(matches!(parse_cidr(""), Err(CidrError::Address(_))));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "1.2.3.4/-1",
        ] {
            assert!(
                matches!(parse_cidr(bad), Err(CidrError::PrefixLength(_))),
                "{bad}"
            );
        }
        assert_eq!(
            parse_cidr("10.0.0.1/8").unwrap_err().to_string(),
            "\"10.0.0.1/8\" has bits set after the prefix; write the network 10.0.0.0/8"
        );
        assert!(parse_cidr("2001:db8::1/32")
            .unwrap_err()
            .to_string()
            .contains("2001:db8::/32"));
        assert_eq!(parse_cidr(" 1.2.3.4 "), parse_cidr("1.2.3.4/32"));
    }

    #[test]
    fn a_hundred_thousand_entries_build_and_look_up() {
        let entries: Vec<String> = (0..100_000u32)
            .map(|i| {
                let a = 0x0b00_0000u32 + i * 4;
                format!("{}/30", std::net::Ipv4Addr::from(a))
            })
            .collect();
        let s = IpSet::from_ranges(entries.iter().map(|e| parse_cidr(e).unwrap()).collect());
        // Adjacent /30s merge into one range.
        assert_eq!(s.range_count(), 1);
        let odd: Vec<String> = (0..100_000u32)
            .map(|i| format!("{}", std::net::Ipv4Addr::from(0x0c00_0000u32 + i * 8)))
            .collect();
        let s = IpSet::from_ranges(odd.iter().map(|e| parse_cidr(e).unwrap()).collect());
        assert_eq!(s.range_count(), 100_000);
        assert!(s.contains(ip("12.0.0.8")));
        assert!(!s.contains(ip("12.0.0.9")));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,48}") {
            let _ = parse_cidr(&s);
        }

        #[test]
        fn membership_matches_a_linear_scan(
            nets in proptest::collection::vec((proptest::num::u32::ANY, 0u32..=32), 0..40),
            probes in proptest::collection::vec(proptest::num::u32::ANY, 0..40),
        ) {
            let ranges: Vec<(u128, u128)> = nets
                .iter()
                .map(|&(a, len)| {
                    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                    let net = std::net::Ipv4Addr::from(a & mask);
                    parse_cidr(&format!("{net}/{len}")).unwrap()
                })
                .collect();
            let s = IpSet::from_ranges(ranges.clone());
            for p in probes {
                let x = IpAddr::V4(p.into());
                let b = addr_bits(x);
                let linear = ranges.iter().any(|&(f, l)| f <= b && b <= l);
                proptest::prop_assert_eq!(s.contains(x), linear);
            }
        }
    }
}
