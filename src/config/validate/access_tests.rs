//! Unit tests of the access-control keys.

use std::net::IpAddr;
use std::path::Path;

use super::super::load_str_with;
use crate::config::address::tests::FakeResolver;
use crate::config::*;

fn load(doc: &str) -> Result<Plan, Vec<String>> {
    load_str_with(doc, Path::new("a.yaml"), &FakeResolver)
        .map_err(|e| e.errors.iter().map(ToString::to_string).collect())
}

#[track_caller]
fn has(errs: &[String], prefix: &str, needle: &str) {
    assert!(
        errs.iter()
            .any(|e| e.starts_with(prefix) && e.contains(needle)),
        "no error starting {prefix:?} containing {needle:?}; got:\n{}",
        errs.join("\n")
    );
}

/// A listener of `proto` (lines 1-5) with `extra` from line 6 on.
fn listener(proto: &str, extra: &str) -> String {
    format!("listeners:\n  - name: l\n    bind: \"127.0.0.1:7000\"\n    protocol: {proto}\n    backend: b\n{extra}backends:\n  - name: b\n    servers: [\"127.0.0.1:9001\"]\n")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn every_key_on_every_protocol() {
    for proto in ["tcp", "udp", "http"] {
        let plan = load(&listener(
            proto,
            "    ip_allowlist: [\"127.0.0.0/8\", \"::1/128\"]\n    ip_denylist:\n      - 127.0.0.3\n    rate_limit: { connections_per_second: 1000, burst: 2000 }\n    ip_rate_limit: { requests_per_second: 20, burst: 40 }\n    max_connections_per_ip: 100\n",
        ))
        .unwrap();
        let a = &plan.listeners[0].access;
        let allow = a.allow.as_ref().unwrap();
        assert!(allow.contains(ip("127.0.0.2")) && allow.contains(ip("::1")));
        assert!(!allow.contains(ip("10.0.0.1")));
        assert!(a.deny.contains(ip("::ffff:127.0.0.3")));
        assert_eq!(
            a.rate_limit,
            Some(Rate {
                per_second: 1000.0,
                burst: 2000
            })
        );
        assert_eq!(
            a.ip_rate_limit,
            Some(Rate {
                per_second: 20.0,
                burst: 40
            })
        );
        assert_eq!(a.max_connections_per_ip, Some(100));
    }
    // Defaults: nothing restricted, nothing tracked; burst defaults to the rate.
    let plan = load(&listener(
        "tcp",
        "    ip_allowlist: []\n    ip_rate_limit: { connections_per_second: 2.5 }\n",
    ))
    .unwrap();
    let a = &plan.listeners[0].access;
    assert_eq!(a.allow, None);
    assert!(a.deny.is_empty());
    assert_eq!(
        a.ip_rate_limit,
        Some(Rate {
            per_second: 2.5,
            burst: 3
        })
    );
    assert_eq!(plan.server.max_tracked_sources, 65_536);
    let plan = load(&format!(
        "server: {{ max_tracked_sources: 1000 }}\n{}",
        listener("tcp", "")
    ))
    .unwrap();
    assert_eq!(plan.server.max_tracked_sources, 1000);
    assert_eq!(plan.listeners[0].access, AccessPlan::default());
}

#[test]
fn errors_name_the_entry_and_line() {
    let errs = load(&listener(
        "tcp",
        "    ip_allowlist:\n      - 10.0.0.0/8\n      - 10.0.0.1/8\n      - example.com\n    ip_denylist: [\"::/200\"]\n    rate_limit: { requests_per_second: 5 }\n    ip_rate_limit:\n      requests_per_second: 5\n      connections_per_second: 5\n    max_connections_per_ip: 0\n",
    ))
    .unwrap_err();
    has(
        &errs,
        "a.yaml:8: listeners[0].ip_allowlist[1]: ",
        "write the network 10.0.0.0/8",
    );
    has(
        &errs,
        "a.yaml:9: listeners[0].ip_allowlist[2]: ",
        "is not an IP address or CIDR",
    );
    has(
        &errs,
        "a.yaml:10: listeners[0].ip_denylist[0]: ",
        "bad prefix length",
    );
    has(
        &errs,
        "a.yaml:11: listeners[0].rate_limit.requests_per_second: ",
        "write connections_per_second",
    );
    has(
        &errs,
        "a.yaml:13: listeners[0].ip_rate_limit.requests_per_second: ",
        "keep one",
    );
    has(
        &errs,
        "a.yaml:15: listeners[0].max_connections_per_ip: ",
        "at least 1",
    );
    assert_eq!(errs.len(), 6, "{errs:#?}");

    for (extra, prefix, needle) in [
        (
            "    rate_limit: { burst: 5 }\n",
            "a.yaml:6: listeners[0].rate_limit: ",
            "missing required key `connections_per_second`",
        ),
        (
            "    rate_limit: { connections_per_second: 0 }\n",
            "a.yaml:6: listeners[0].rate_limit.connections_per_second: ",
            "greater than 0",
        ),
        (
            "    rate_limit: { connections_per_second: -3 }\n",
            "a.yaml:6: listeners[0].rate_limit.connections_per_second: ",
            "greater than 0",
        ),
        (
            "    rate_limit: { connections_per_second: NaN }\n",
            "a.yaml:6: listeners[0].rate_limit.connections_per_second: ",
            "greater than 0",
        ),
        (
            "    rate_limit: { connections_per_second: 1e12 }\n",
            "a.yaml:6: listeners[0].rate_limit.connections_per_second: ",
            "at most",
        ),
        (
            "    rate_limit: { connections_per_second: 5, burst: 0 }\n",
            "a.yaml:6: listeners[0].rate_limit.burst: ",
            "at least 1",
        ),
        (
            "    ip_rate_limit: { rps: 5 }\n",
            "a.yaml:6: listeners[0].ip_rate_limit: ",
            "unknown field `rps`",
        ),
        (
            "    ip_allowlist: 10.0.0.0/8\n",
            "a.yaml:6: listeners[0].ip_allowlist: ",
            "expected a sequence",
        ),
    ] {
        let errs = load(&listener("tcp", extra)).unwrap_err();
        has(&errs, prefix, needle);
        assert_eq!(errs.len(), 1, "{extra}: {errs:?}");
    }
    let errs = load(&format!(
        "server: {{ max_tracked_sources: 0 }}\n{}",
        listener("tcp", "")
    ))
    .unwrap_err();
    has(
        &errs,
        "a.yaml:1: server.max_tracked_sources: ",
        "at least 1",
    );
}

#[test]
fn a_hundred_thousand_entry_deny_list_loads() {
    let mut extra = String::from("    ip_denylist:\n");
    for i in 0..100_000u32 {
        let a = std::net::Ipv4Addr::from(0x0b00_0000u32 + i * 2);
        extra.push_str(&format!("      - {a}\n"));
    }
    let plan = load(&listener("tcp", &extra)).unwrap();
    let a = &plan.listeners[0].access;
    assert_eq!(a.deny.range_count(), 100_000);
    assert!(a.deny.contains(ip("11.0.0.2")));
    assert!(!a.deny.contains(ip("11.0.0.3")));
}
