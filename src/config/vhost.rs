//! Name-based virtual hosts, the plan side: several `http` or `https`
//! listeners written with the same `bind` share one socket, and each
//! client (https: by the ClientHello's server name) or each request (http:
//! by its `Host`) is served by the listener whose `server_names` match,
//! else by the one with `default_server: true` (else the first one).
//!
//! Owns: [`VhostTable`] (kept on the listener that owns the socket, the
//! first of the group in file order) and the name lookup. Does not own
//! the checks (`validate/vhosts.rs`) or the dispatch (`http_proxy/`).

use super::plan::{ListenerId, SniName};

/// The listeners sharing one socket, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VhostTable {
    /// Every `server_names` entry of the group, in file order.
    pub names: Vec<(SniName, ListenerId)>,
    /// `default_server: true`, else the group's first listener.
    pub default: ListenerId,
}

impl VhostTable {
    /// The listener for `name` (a server name or a `Host` header, any
    /// case, with or without a port or a trailing dot; `None`: none sent):
    /// an exact name first, then the longest `*.` suffix (the first written
    /// among equals), else the default.
    pub fn choose(&self, name: Option<&[u8]>) -> ListenerId {
        name.and_then(|n| self.lookup(&normalize(n)))
            .unwrap_or(self.default)
    }

    fn lookup(&self, name: &str) -> Option<ListenerId> {
        if name.is_empty() {
            return None;
        }
        if let Some((_, l)) = self
            .names
            .iter()
            .find(|(n, _)| matches!(n, SniName::Exact(e) if e == name))
        {
            return Some(*l);
        }
        let mut best: Option<(usize, ListenerId)> = None;
        for (n, l) in &self.names {
            if let SniName::Suffix(s) = n {
                if name.len() > s.len()
                    && name.ends_with(s.as_str())
                    && best.map_or(true, |(len, _)| s.len() > len)
                {
                    best = Some((s.len(), *l));
                }
            }
        }
        best.map(|(_, l)| l)
    }
}

/// Lower case, without a `:port` (an IPv6 literal keeps its brackets) or
/// a trailing dot.
fn normalize(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name).to_ascii_lowercase();
    let host = if s.starts_with('[') {
        match s.find(']') {
            Some(i) => &s[..=i],
            None => &s,
        }
    } else {
        s.rsplit_once(':').map_or(s.as_str(), |(h, _)| h)
    };
    host.trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> VhostTable {
        VhostTable {
            names: vec![
                (SniName::Exact("api.test".into()), ListenerId(0)),
                (SniName::Suffix(".zone.test".into()), ListenerId(1)),
                (SniName::Suffix(".a.zone.test".into()), ListenerId(2)),
                (SniName::Exact("x.zone.test".into()), ListenerId(3)),
            ],
            default: ListenerId(4),
        }
    }

    #[test]
    fn exact_then_longest_suffix_then_default() {
        let t = table();
        let c = |n: &str| t.choose(Some(n.as_bytes())).0;
        assert_eq!(c("api.test"), 0);
        assert_eq!(c("API.Test:8443"), 0, "case and port ignored");
        assert_eq!(c("api.test."), 0, "trailing dot ignored");
        assert_eq!(c("b.zone.test"), 1);
        assert_eq!(c("deep.b.zone.test"), 1, "one label or more");
        assert_eq!(c("b.a.zone.test"), 2, "the longest suffix");
        assert_eq!(c("x.zone.test"), 3, "exact before suffix");
        assert_eq!(c("zone.test"), 4, "*.zone.test is not zone.test");
        assert_eq!(c("other.test"), 4);
        assert_eq!(c(""), 4);
        assert_eq!(c("[::1]:443"), 4);
        assert_eq!(t.choose(None).0, 4);
    }

    #[test]
    fn normalize_strips_ports_but_keeps_ipv6_literals() {
        assert_eq!(normalize(b"[::1]:8080"), "[::1]");
        assert_eq!(normalize(b"Host.Test:80"), "host.test");
        assert_eq!(normalize(b"\xff.test"), "\u{fffd}.test");
    }
}
