//! Backend server addresses: `10.0.0.1`, `10.0.0.1:80`, `::1`, `[::1]`,
//! `[::1]:80`, and host names (`db.internal`, `db.internal:5432`).
//!
//! Host names are resolved once, when the configuration is loaded, through
//! a [`Resolver`] so tests never touch DNS. A missing port means "the port
//! the client connected to" (1:1 port mapping), so it is kept as `None`.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, ToSocketAddrs};

/// Turns a host name into addresses. The system one uses `getaddrinfo`.
pub trait Resolver {
    fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// `getaddrinfo` through std's `ToSocketAddrs`.
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        (host, 0u16)
            .to_socket_addrs()
            .map(|it| it.map(|sa| sa.ip()).collect())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressError {
    Empty,
    BadPort(String),
    PortZero,
    PortTooLarge(String),
    /// An IPv6 address followed by a port without brackets: ambiguous.
    Ipv6NeedsBrackets(String),
    BadIp(String),
    BadHost(String),
    Unresolved {
        host: String,
        reason: String,
    },
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressError::Empty => write!(f, "server address is empty"),
            AddressError::BadPort(p) => write!(f, "{p:?} is not a port number"),
            AddressError::PortZero => write!(f, "port 0 is not allowed (ports are 1-65535)"),
            AddressError::PortTooLarge(p) => {
                write!(f, "port {p} is out of range (ports are 1-65535)")
            }
            AddressError::Ipv6NeedsBrackets(s) => write!(
                f,
                "{s:?}: an IPv6 address with a port needs brackets, e.g. \"[::1]:80\""
            ),
            AddressError::BadIp(s) => write!(f, "{s:?} is not a valid IP address"),
            AddressError::BadHost(s) => write!(
                f,
                "{s:?} is not an IP address or a host name (expected e.g. \"10.0.0.1:80\", \"[::1]:80\", \"10.0.0.1\")"
            ),
            AddressError::Unresolved { host, reason } => {
                write!(f, "host name {host:?} does not resolve: {reason}")
            }
        }
    }
}

impl std::error::Error for AddressError {}

/// Parses (and if needed resolves) one server address.
pub fn parse_server_address(
    input: &str,
    resolver: &dyn Resolver,
) -> Result<(IpAddr, Option<u16>), AddressError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(AddressError::Empty);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| AddressError::BadIp(s.to_string()))?;
        let ip: Ipv6Addr = rest[..close]
            .parse()
            .map_err(|_| AddressError::BadIp(rest[..close].to_string()))?;
        let port = match &rest[close + 1..] {
            "" => None,
            after => match after.strip_prefix(':') {
                Some(p) => Some(parse_port(p)?),
                None => return Err(AddressError::BadHost(s.to_string())),
            },
        };
        return Ok((IpAddr::V6(ip), port));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => {
            if h.contains(':') {
                return Err(AddressError::Ipv6NeedsBrackets(s.to_string()));
            }
            (h, Some(parse_port(p)?))
        }
        None => (s, None),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok((ip, port));
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // `10.0.0.256` or `10.0.0`: meant as an IP, not a host name.
        return Err(AddressError::BadIp(host.to_string()));
    }
    if !is_host_name(host) {
        return Err(AddressError::BadHost(s.to_string()));
    }
    let ips = resolver
        .resolve(host)
        .map_err(|e| AddressError::Unresolved {
            host: host.to_string(),
            reason: e.to_string(),
        })?;
    // Prefer IPv4 when a name has both: backends on dual-stack hosts are far
    // more often listening on IPv4 only than the other way round.
    let ip = ips
        .iter()
        .find(|ip| ip.is_ipv4())
        .or_else(|| ips.first())
        .copied()
        .ok_or_else(|| AddressError::Unresolved {
            host: host.to_string(),
            reason: "no addresses".to_string(),
        })?;
    Ok((ip, port))
}

/// The host name of an address [`parse_server_address`] accepted, when it
/// was written as a name (`"db.internal:5432"` -> `db.internal`, without
/// a final dot); `None` for IP literals.
pub fn written_host_name(input: &str) -> Option<&str> {
    let s = input.trim();
    if s.starts_with('[') || s.parse::<IpAddr>().is_ok() {
        return None;
    }
    let host = s.rsplit_once(':').map_or(s, |(h, _)| h);
    match host.parse::<IpAddr>() {
        Ok(_) => None,
        Err(_) => Some(host.strip_suffix('.').unwrap_or(host)),
    }
}

fn parse_port(p: &str) -> Result<u16, AddressError> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::BadPort(p.to_string()));
    }
    match p.parse::<u64>() {
        Ok(0) => Err(AddressError::PortZero),
        Ok(n) => u16::try_from(n).map_err(|_| AddressError::PortTooLarge(p.to_string())),
        Err(_) => Err(AddressError::PortTooLarge(p.to_string())),
    }
}

/// RFC 1123 host name syntax: dot-separated labels of letters, digits and
/// inner hyphens, at most 63 bytes each and 253 in all.
fn is_host_name(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Knows `db.test` (v6 and v4) and nothing else; never touches DNS.
    pub(crate) struct FakeResolver;

    impl Resolver for FakeResolver {
        fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
            match host {
                "db.test" => Ok(vec!["::5".parse().unwrap(), "10.9.9.9".parse().unwrap()]),
                "v6only.test" => Ok(vec!["::6".parse().unwrap()]),
                "empty.test" => Ok(vec![]),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "Name or service not known",
                )),
            }
        }
    }

    fn p(s: &str) -> Result<(IpAddr, Option<u16>), AddressError> {
        parse_server_address(s, &FakeResolver)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_documented_form() {
        assert_eq!(p("10.0.0.1"), Ok((ip("10.0.0.1"), None)));
        assert_eq!(p("10.0.0.1:80"), Ok((ip("10.0.0.1"), Some(80))));
        assert_eq!(p("[::1]:80"), Ok((ip("::1"), Some(80))));
        assert_eq!(p("::1"), Ok((ip("::1"), None)));
        assert_eq!(p("[::1]"), Ok((ip("::1"), None)));
        assert_eq!(p(" 10.0.0.1:65535 "), Ok((ip("10.0.0.1"), Some(65535))));
        assert_eq!(p("db.test"), Ok((ip("10.9.9.9"), None)));
        assert_eq!(p("db.test:5432"), Ok((ip("10.9.9.9"), Some(5432))));
        assert_eq!(p("v6only.test:1"), Ok((ip("::6"), Some(1))));
    }

    #[test]
    fn refuses_bad_addresses_with_a_reason() {
        assert_eq!(p(""), Err(AddressError::Empty));
        assert_eq!(p("10.0.0.1:0"), Err(AddressError::PortZero));
        assert_eq!(
            p("10.0.0.1:70000"),
            Err(AddressError::PortTooLarge("70000".into()))
        );
        assert_eq!(p("[::1]:0"), Err(AddressError::PortZero));
        assert_eq!(
            p("10.0.0.1:http"),
            Err(AddressError::BadPort("http".into()))
        );
        assert_eq!(p("10.0.0.1:"), Err(AddressError::BadPort("".into())));
        assert!(matches!(
            p("::1:80:x"),
            Err(AddressError::Ipv6NeedsBrackets(_))
        ));
        assert!(matches!(p("10.0.0.256"), Err(AddressError::BadIp(_))));
        assert!(matches!(p("[zz]:80"), Err(AddressError::BadIp(_))));
        assert!(matches!(p("[::1]x"), Err(AddressError::BadHost(_))));
        assert!(matches!(p("bad host!"), Err(AddressError::BadHost(_))));
        assert!(matches!(p("-a.test"), Err(AddressError::BadHost(_))));
        assert!(matches!(
            p("nowhere.test:80"),
            Err(AddressError::Unresolved { .. })
        ));
        assert!(matches!(
            p("empty.test"),
            Err(AddressError::Unresolved { .. })
        ));
        let msg = p("nowhere.test").unwrap_err().to_string();
        assert!(
            msg.contains("nowhere.test") && msg.contains("does not resolve"),
            "{msg}"
        );
    }

    #[test]
    fn the_host_name_as_written_only_for_names() {
        assert_eq!(written_host_name("db.test:5432"), Some("db.test"));
        assert_eq!(written_host_name(" Db.Test. "), Some("Db.Test"));
        for ip in ["10.0.0.1", "10.0.0.1:80", "::1", "[::1]", "[::1]:80"] {
            assert_eq!(written_host_name(ip), None, "{ip}");
        }
    }
}
