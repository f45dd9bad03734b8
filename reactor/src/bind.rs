//! Bind strings: `":8080"`, `"0.0.0.0:8080"`, `"127.0.0.1:10000-11000"`,
//! `"[::1]:5000-5010"`, `"[::]:53"`.
//!
//! This module owns the *syntax* only: it turns a string into a [`BindSpec`]
//! (an address family choice plus an inclusive port range) or a
//! [`BindError`] that says exactly what is wrong. Opening sockets is
//! `listener.rs`'s job.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where a listener binds: one host part and an inclusive port range.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BindSpec {
    pub host: BindHost,
    pub first_port: u16,
    pub last_port: u16,
}

/// The host part of a bind string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindHost {
    /// `":port"`: every address, IPv4 and IPv6 (an IPv6 wildcard socket with
    /// `IPV6_V6ONLY` off).
    DualStack,
    /// A literal address; `0.0.0.0` and `[::]` are wildcards of one family
    /// (`[::]` is bound with `IPV6_V6ONLY` on).
    Ip(IpAddr),
}

/// Why a bind string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindError {
    Empty,
    MissingPort(String),
    BadAddress(String),
    BadPort(String),
    PortZero,
    PortTooLarge(u64),
    RangeReversed { first: u16, last: u16 },
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::Empty => write!(f, "bind address is empty"),
            BindError::MissingPort(s) => write!(
                f,
                "bind address {s:?} has no port (expected e.g. \":8080\", \"0.0.0.0:8080\", \"[::1]:5000-5010\")"
            ),
            BindError::BadAddress(s) => write!(f, "{s:?} is not an IP address"),
            BindError::BadPort(s) => write!(f, "{s:?} is not a port number or a range like 10000-11000"),
            BindError::PortZero => write!(f, "port 0 is not allowed (ports are 1-65535)"),
            BindError::PortTooLarge(p) => write!(f, "port {p} is out of range (ports are 1-65535)"),
            BindError::RangeReversed { first, last } => {
                write!(f, "port range {first}-{last} ends below its start")
            }
        }
    }
}

impl std::error::Error for BindError {}

impl BindSpec {
    /// Parses a bind string. Whitespace around the string is ignored.
    pub fn parse(input: &str) -> Result<BindSpec, BindError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(BindError::Empty);
        }
        let (host, ports) = if let Some(rest) = s.strip_prefix('[') {
            let close = rest
                .find(']')
                .ok_or_else(|| BindError::BadAddress(s.to_string()))?;
            let addr: Ipv6Addr = rest[..close]
                .parse()
                .map_err(|_| BindError::BadAddress(rest[..close].to_string()))?;
            let after = &rest[close + 1..];
            let ports = after
                .strip_prefix(':')
                .ok_or_else(|| BindError::MissingPort(s.to_string()))?;
            (BindHost::Ip(IpAddr::V6(addr)), ports)
        } else {
            let colon = s
                .rfind(':')
                .ok_or_else(|| BindError::MissingPort(s.to_string()))?;
            let (h, p) = (&s[..colon], &s[colon + 1..]);
            let host = if h.is_empty() || h == "*" {
                BindHost::DualStack
            } else {
                let ip: Ipv4Addr = h
                    .parse()
                    .map_err(|_| BindError::BadAddress(h.to_string()))?;
                BindHost::Ip(IpAddr::V4(ip))
            };
            (host, p)
        };
        if ports.is_empty() {
            return Err(BindError::MissingPort(s.to_string()));
        }
        let (first, last) = match ports.split_once('-') {
            Some((a, b)) => (parse_port(a)?, parse_port(b)?),
            None => {
                let p = parse_port(ports)?;
                (p, p)
            }
        };
        if last < first {
            return Err(BindError::RangeReversed { first, last });
        }
        Ok(BindSpec {
            host,
            first_port: first,
            last_port: last,
        })
    }

    /// Number of ports (and so of sockets) this spec binds.
    pub fn port_count(&self) -> usize {
        usize::from(self.last_port - self.first_port) + 1
    }

    /// Every port in the range, in order.
    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.first_port..=self.last_port
    }

    /// The socket address for one port of the range. `DualStack` gives `[::]`.
    pub fn addr(&self, port: u16) -> SocketAddr {
        match self.host {
            BindHost::DualStack => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
            BindHost::Ip(ip) => SocketAddr::new(ip, port),
        }
    }

    /// True when two specs could claim the same (address, port) pair.
    pub fn overlaps(&self, other: &BindSpec) -> bool {
        let ports = self.first_port <= other.last_port && other.first_port <= self.last_port;
        ports && hosts_overlap(self.host, other.host)
    }
}

fn hosts_overlap(a: BindHost, b: BindHost) -> bool {
    use BindHost::*;
    match (a, b) {
        (DualStack, _) | (_, DualStack) => true,
        (Ip(x), Ip(y)) => {
            x == y || (x.is_ipv4() == y.is_ipv4() && (x.is_unspecified() || y.is_unspecified()))
        }
    }
}

fn parse_port(s: &str) -> Result<u16, BindError> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BindError::BadPort(s.to_string()));
    }
    let n: u64 = s.parse().map_err(|_| BindError::PortTooLarge(u64::MAX))?;
    match n {
        0 => Err(BindError::PortZero),
        1..=65535 => Ok(n as u16),
        _ => Err(BindError::PortTooLarge(n)),
    }
}

impl fmt::Display for BindSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            BindHost::DualStack => write!(f, ":")?,
            BindHost::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:")?,
            BindHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
        }
        if self.first_port == self.last_port {
            write!(f, "{}", self.first_port)
        } else {
            write!(f, "{}-{}", self.first_port, self.last_port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        let s = BindSpec::parse(":8080").unwrap();
        assert_eq!(
            (s.host, s.first_port, s.last_port),
            (BindHost::DualStack, 8080, 8080)
        );
        let s = BindSpec::parse("127.0.0.1:10000-11000").unwrap();
        assert_eq!(s.host, BindHost::Ip("127.0.0.1".parse().unwrap()));
        assert_eq!(s.port_count(), 1001);
        let s = BindSpec::parse("[::1]:5000-5010").unwrap();
        assert_eq!(s.host, BindHost::Ip("::1".parse().unwrap()));
        assert_eq!(s.ports().count(), 11);
        let s = BindSpec::parse("[::]:53").unwrap();
        assert_eq!(s.addr(53), "[::]:53".parse().unwrap());
        assert_eq!(BindSpec::parse(":8080").unwrap().to_string(), ":8080");
        assert_eq!(
            BindSpec::parse("[::1]:1-2").unwrap().to_string(),
            "[::1]:1-2"
        );
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        assert_eq!(BindSpec::parse(":0"), Err(BindError::PortZero));
        assert_eq!(
            BindSpec::parse(":70000"),
            Err(BindError::PortTooLarge(70000))
        );
        assert_eq!(
            BindSpec::parse(":10-5"),
            Err(BindError::RangeReversed { first: 10, last: 5 })
        );
        assert!(matches!(
            BindSpec::parse("127.0.0.1"),
            Err(BindError::MissingPort(_))
        ));
        assert!(matches!(
            BindSpec::parse("127.0.0.1:"),
            Err(BindError::MissingPort(_))
        ));
        assert!(matches!(
            BindSpec::parse("[::1]"),
            Err(BindError::MissingPort(_))
        ));
        assert!(matches!(
            BindSpec::parse("garbage:80"),
            Err(BindError::BadAddress(_))
        ));
        assert!(matches!(
            BindSpec::parse(":http"),
            Err(BindError::BadPort(_))
        ));
        assert!(matches!(BindSpec::parse(":1-"), Err(BindError::BadPort(_))));
        assert!(matches!(
            BindSpec::parse("[zz]:1"),
            Err(BindError::BadAddress(_))
        ));
        assert_eq!(BindSpec::parse("  "), Err(BindError::Empty));
        assert!(BindSpec::parse(":99999999999999999999999").is_err());
        let msg = BindSpec::parse(":10-5").unwrap_err().to_string();
        assert!(msg.contains("10-5"), "{msg}");
    }

    #[test]
    fn overlap_rules() {
        let p = |s| BindSpec::parse(s).unwrap();
        assert!(p(":80").overlaps(&p("127.0.0.1:80")));
        assert!(p("0.0.0.0:80-90").overlaps(&p("127.0.0.1:85")));
        assert!(!p("127.0.0.1:80").overlaps(&p("127.0.0.2:80")));
        assert!(!p("127.0.0.1:80").overlaps(&p("127.0.0.1:81")));
        assert!(!p("0.0.0.0:80").overlaps(&p("[::1]:80")));
    }
}
