//! A listener's access-control keys: `ip_allowlist`, `ip_denylist` (CIDR
//! lists), `rate_limit`, `ip_rate_limit` (`{connections_per_second |
//! requests_per_second, burst}`) and `max_connections_per_ip`, for every
//! protocol. The sets and buckets themselves are `crate::acl`'s.

use super::super::raw::{RawListener, RawRate};
use crate::acl::{parse_cidr, IpSet, Rate};

use super::*;

/// The largest rate accepted (per second): a typo guard.
const MAX_RATE: f64 = 10_000_000.0;
/// The largest `burst`.
const MAX_BURST: u64 = 10_000_000;

impl Validator<'_> {
    pub(super) fn access(&mut self, f: FileId, p: &str, l: &RawListener) -> AccessPlan {
        // Go: an empty allow list restricts nothing.
        let allow = l
            .ip_allowlist
            .as_deref()
            .filter(|list| !list.is_empty())
            .map(|list| self.cidr_list(f, &key(p, "ip_allowlist"), list));
        let deny = l
            .ip_denylist
            .as_deref()
            .map(|list| self.cidr_list(f, &key(p, "ip_denylist"), list))
            .unwrap_or_default();
        let rate_limit = l
            .rate_limit
            .as_ref()
            .and_then(|r| self.rate(f, &key(p, "rate_limit"), r, false));
        let ip_rate_limit = l
            .ip_rate_limit
            .as_ref()
            .and_then(|r| self.rate(f, &key(p, "ip_rate_limit"), r, true));
        let max_connections_per_ip = self
            .number(
                f,
                &key(p, "max_connections_per_ip"),
                l.max_connections_per_ip.as_ref(),
                1,
                u64::from(u32::MAX),
            )
            .map(|n| n as u32);
        AccessPlan {
            allow,
            deny,
            rate_limit,
            ip_rate_limit,
            max_connections_per_ip,
            // Set by the caller, which knows the protocol.
            per_request: false,
        }
    }

    fn cidr_list(&mut self, f: FileId, path: &str, list: &[Text]) -> IpSet {
        let mut ranges = Vec::with_capacity(list.len());
        for (i, entry) in list.iter().enumerate() {
            match parse_cidr(entry.as_str()) {
                Ok(r) => ranges.push(r),
                Err(e) => self.error(f, &format!("{path}[{i}]"), e),
            }
        }
        IpSet::from_ranges(ranges)
    }

    /// `rate_limit` takes `connections_per_second`; `ip_rate_limit` either
    /// word (`requests_per_second` is Go's: new connections and sessions
    /// for tcp/udp, requests for http). `burst` defaults to the rate
    /// (at least 1).
    fn rate(&mut self, f: FileId, rp: &str, r: &RawRate, per_ip: bool) -> Option<Rate> {
        let value = match (&r.connections_per_second, &r.requests_per_second) {
            (Some(_), Some(_)) => {
                self.error(
                    f,
                    &key(rp, "requests_per_second"),
                    "`connections_per_second` and `requests_per_second` are the same limit here; keep one",
                );
                return None;
            }
            (Some(t), None) => (t, "connections_per_second"),
            (None, Some(t)) if per_ip => (t, "requests_per_second"),
            (None, Some(_)) => {
                self.error(
                    f,
                    &key(rp, "requests_per_second"),
                    "a listener's rate_limit counts new connections: write connections_per_second (ip_rate_limit takes requests_per_second)",
                );
                return None;
            }
            (None, None) => {
                let which = if per_ip {
                    "`connections_per_second` or `requests_per_second`"
                } else {
                    "`connections_per_second`"
                };
                self.error(f, rp, format!("missing required key {which}"));
                return None;
            }
        };
        let (t, name) = value;
        let path = key(rp, name);
        let s = t.as_str().trim();
        let per_second = match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 && v <= MAX_RATE => v,
            _ => {
                self.error(
                    f,
                    &path,
                    format!("expected a number greater than 0 and at most {MAX_RATE}, got {s:?}"),
                );
                return None;
            }
        };
        let burst = match &r.burst {
            None => per_second.ceil().max(1.0) as u32,
            Some(b) => self.number(f, &key(rp, "burst"), Some(b), 1, MAX_BURST)? as u32,
        };
        Some(Rate { per_second, burst })
    }
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
