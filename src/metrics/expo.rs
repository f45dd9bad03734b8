//! The Prometheus text exposition (format 0.0.4) of a running
//! configuration: every family with its `# HELP` and `# TYPE` lines, label
//! values escaped as the format requires.
//!
//! Owns the family names, their help texts and labels. Does not own where
//! the numbers come from (`metrics/mod.rs`, `backend_rt.rs`, `runtime.rs`)
//! or serving them (`admin/`).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::{listener as lc, process, server as sc, DROP_REASONS, RELOADS_FAILED, RELOADS_OK};
use crate::backend_rt::{AdminMode, BackendRt, ServerRt};
use crate::config::Protocol;
use crate::health::state::State;
use crate::runtime::Runtime;

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends `v` escaped for a label value: `\`, `"` and newline.
pub fn escape_label(out: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Builds the exposition line by line.
struct Expo {
    out: String,
}

impl Expo {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label(&mut self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// One listener family: `(name, type, help, value of listener)`, for TCP
/// and UDP listeners or UDP only.
type ListenerFamily = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    fn(&Runtime, usize) -> u64,
);

fn lsum(rt: &Runtime, i: usize, c: usize) -> u64 {
    rt.listener_stats[i].sum(c)
}

const LISTENER_FAMILIES: &[ListenerFamily] = &[
    ("nvelox_listener_connections_total", "counter", "Connections accepted (UDP: sessions opened).", false, |rt, i| lsum(rt, i, lc::CONNECTIONS)),
    ("nvelox_listener_current_connections", "gauge", "Open connections (UDP: open sessions).", false, |rt, i| rt.listener_active[i].load(Ordering::Relaxed) as u64),
    ("nvelox_listener_bytes_in_total", "counter", "Bytes received from clients and passed on.", false, |rt, i| lsum(rt, i, lc::BYTES_IN)),
    ("nvelox_listener_bytes_out_total", "counter", "Bytes sent to clients.", false, |rt, i| lsum(rt, i, lc::BYTES_OUT)),
    ("nvelox_listener_connection_errors_total", "counter", "TCP connections closed before any server took them (no server, connect failures, PROXY header errors).", false, |rt, i| lsum(rt, i, lc::CONNECTION_ERRORS)),
    ("nvelox_listener_udp_sessions_total", "counter", "UDP sessions opened.", true, |rt, i| lsum(rt, i, lc::CONNECTIONS)),
    ("nvelox_listener_udp_sessions_current", "gauge", "Open UDP sessions.", true, |rt, i| rt.listener_active[i].load(Ordering::Relaxed) as u64),
    ("nvelox_listener_udp_datagrams_in_total", "counter", "Datagrams from clients passed to servers.", true, |rt, i| lsum(rt, i, lc::DATAGRAMS_IN)),
    ("nvelox_listener_udp_datagrams_out_total", "counter", "Datagrams from servers passed to clients.", true, |rt, i| lsum(rt, i, lc::DATAGRAMS_OUT)),
];

/// A server counter family: `(name, help, counter index)`.
const SERVER_COUNTERS: &[(&str, &str, usize)] = &[
    (
        "connections_total",
        "Connection attempts (UDP: sessions) sent to the server.",
        sc::CONNECTIONS,
    ),
    (
        "bytes_in_total",
        "Bytes from clients sent to the server.",
        sc::BYTES_IN,
    ),
    (
        "bytes_out_total",
        "Bytes from the server sent to clients.",
        sc::BYTES_OUT,
    ),
    (
        "connection_errors_total",
        "Connect failures, connect timeouts and resets before any byte (UDP: unreachable).",
        sc::CONNECTION_ERRORS,
    ),
    (
        "retries_total",
        "Connection attempts that were a retry after a failed attempt on another server.",
        sc::RETRIES,
    ),
    (
        "udp_datagrams_in_total",
        "Datagrams sent to the server.",
        sc::DATAGRAMS_IN,
    ),
    (
        "udp_datagrams_out_total",
        "Datagrams from the server.",
        sc::DATAGRAMS_OUT,
    ),
];

const STATES: [&str; 5] = ["up", "down", "probing", "draining", "disabled"];

fn server_up(s: &ServerRt) -> u8 {
    u8::from(s.health_state() == State::Up)
}

fn backend_sum(b: &BackendRt, c: usize) -> u64 {
    b.servers
        .iter()
        .map(|s| s.stats.sum(c))
        .fold(0, u64::wrapping_add)
}

/// The whole exposition. `access_log_dropped`: lines the access-log writer
/// could not take.
pub fn render(rt: &Runtime, access_log_dropped: u64) -> String {
    let mut e = Expo {
        out: String::with_capacity(4096 + 2048 * rt.plan.listeners.len()),
    };
    listeners(&mut e, rt);
    backends(&mut e, rt);
    servers(&mut e, rt);
    loops(&mut e, rt);
    e.family(
        "nvelox_reloads_total",
        "counter",
        "Configuration reloads (SIGHUP) by result.",
    );
    e.sample(
        "nvelox_reloads_total",
        &[("result", "ok")],
        RELOADS_OK.load(Ordering::Relaxed),
    );
    e.sample(
        "nvelox_reloads_total",
        &[("result", "failed")],
        RELOADS_FAILED.load(Ordering::Relaxed),
    );
    e.family(
        "nvelox_access_log_dropped_lines_total",
        "counter",
        "Access-log lines dropped because the writer fell behind.",
    );
    e.sample(
        "nvelox_access_log_dropped_lines_total",
        &[],
        access_log_dropped,
    );
    e.family("nvelox_build_info", "gauge", "Build information; always 1.");
    e.sample(
        "nvelox_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    process::render(&mut |name, kind, help, value| {
        e.family(name, kind, help);
        e.sample(name, &[], value);
    });
    e.out
}

fn listeners(e: &mut Expo, rt: &Runtime) {
    for &(name, kind, help, udp_only, value) in LISTENER_FAMILIES {
        e.family(name, kind, help);
        for (i, l) in rt.plan.listeners.iter().enumerate() {
            if udp_only && l.protocol != Protocol::Udp {
                continue;
            }
            e.sample(name, &[("listener", &l.name)], value(rt, i));
        }
    }
    let name = "nvelox_listener_udp_drops_total";
    e.family(
        name,
        "counter",
        "Datagrams from clients dropped, by reason.",
    );
    for (i, l) in rt.plan.listeners.iter().enumerate() {
        if l.protocol != Protocol::Udp {
            continue;
        }
        for (k, reason) in DROP_REASONS.iter().enumerate() {
            let v = lsum(rt, i, lc::DROPS + k);
            e.sample(name, &[("listener", &l.name), ("reason", reason)], v);
        }
    }
    let name = "nvelox_listener_http_responses_total";
    e.family(
        name,
        "counter",
        "HTTP responses sent to clients (nvelox's own included), by status class.",
    );
    for (i, l) in rt.plan.listeners.iter().enumerate() {
        if l.protocol != Protocol::Http {
            continue;
        }
        for (k, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            let v = lsum(rt, i, lc::HTTP_RESPONSES + k);
            e.sample(name, &[("listener", &l.name), ("code", class)], v);
        }
    }
    let name = "nvelox_tls_handshake_failures_total";
    e.family(
        name,
        "counter",
        "TLS clients refused before any byte reached a server (failed or timed-out handshakes; ClientHellos refused by sni_routes), by reason.",
    );
    for (i, l) in rt.plan.listeners.iter().enumerate() {
        if l.tls.is_none() && l.sni_routes.is_empty() {
            continue;
        }
        for (k, reason) in crate::metrics::TLS_FAILURE_REASONS.iter().enumerate() {
            let v = lsum(rt, i, lc::TLS_FAILURES + k);
            e.sample(name, &[("listener", &l.name), ("reason", reason)], v);
        }
    }
    let name = "nvelox_listener_denied_total";
    e.family(
        name,
        "counter",
        "Clients refused by access control, by reason.",
    );
    for (i, l) in rt.plan.listeners.iter().enumerate() {
        for why in crate::acl::Denied::ALL {
            let v = rt.access[i].denied_count(why);
            e.sample(name, &[("listener", &l.name), ("reason", why.label())], v);
        }
    }
}

fn backends(e: &mut Expo, rt: &Runtime) {
    let sums: &[(&str, &str, usize)] = &[
        (
            "nvelox_backend_connections_total",
            "Connection attempts (UDP: sessions) sent to the backend's servers.",
            sc::CONNECTIONS,
        ),
        (
            "nvelox_backend_bytes_in_total",
            "Bytes sent to the backend's servers.",
            sc::BYTES_IN,
        ),
        (
            "nvelox_backend_bytes_out_total",
            "Bytes from the backend's servers.",
            sc::BYTES_OUT,
        ),
        (
            "nvelox_backend_connection_errors_total",
            "Connection errors of the backend's servers.",
            sc::CONNECTION_ERRORS,
        ),
        (
            "nvelox_backend_retries_total",
            "Retried connection attempts.",
            sc::RETRIES,
        ),
    ];
    for &(name, help, c) in sums {
        e.family(name, "counter", help);
        for b in &rt.backends {
            e.sample(name, &[("backend", &b.plan.name)], backend_sum(b, c));
        }
    }
    let name = "nvelox_backend_current_connections";
    e.family(
        name,
        "gauge",
        "Open connections (UDP: sessions) to the backend's servers.",
    );
    for b in &rt.backends {
        let v: u64 = b
            .servers
            .iter()
            .map(|s| u64::from(s.active.load(Ordering::Relaxed)))
            .sum();
        e.sample(name, &[("backend", &b.plan.name)], v);
    }
    let name = "nvelox_backend_servers_up";
    e.family(
        name,
        "gauge",
        "Servers that are up and in service (not drained or disabled).",
    );
    for b in &rt.backends {
        let v = b
            .servers
            .iter()
            .filter(|s| s.health_state() == State::Up && s.admin_mode() == AdminMode::Ready)
            .count();
        e.sample(name, &[("backend", &b.plan.name)], v);
    }
}

fn servers(e: &mut Expo, rt: &Runtime) {
    let each = |e: &mut Expo, name: &str, f: &dyn Fn(&ServerRt) -> u64| {
        for b in &rt.backends {
            for s in &b.servers {
                e.sample(
                    name,
                    &[("backend", &b.plan.name), ("server", &s.plan.label)],
                    f(s),
                );
            }
        }
    };
    e.family(
        "nvelox_server_up",
        "gauge",
        "1 when health checks and passive checks consider the server up.",
    );
    each(e, "nvelox_server_up", &|s| u64::from(server_up(s)));
    e.family(
        "nvelox_server_state",
        "gauge",
        "1 for the server's current state (up, down, probing, draining, disabled), 0 for the others.",
    );
    for b in &rt.backends {
        for s in &b.servers {
            let now = s.state_label();
            for st in STATES {
                e.sample(
                    "nvelox_server_state",
                    &[
                        ("backend", &b.plan.name),
                        ("server", &s.plan.label),
                        ("state", st),
                    ],
                    u8::from(now == st),
                );
            }
        }
    }
    e.family(
        "nvelox_server_weight",
        "gauge",
        "Weight in force (configured, or set through the admin API).",
    );
    each(e, "nvelox_server_weight", &|s| u64::from(s.weight()));
    e.family(
        "nvelox_server_current_connections",
        "gauge",
        "Open connections (UDP: sessions) to the server.",
    );
    each(e, "nvelox_server_current_connections", &|s| {
        u64::from(s.active.load(Ordering::Relaxed))
    });
    for &(suffix, help, c) in SERVER_COUNTERS {
        let name = format!("nvelox_server_{suffix}");
        e.family(&name, "counter", help);
        each(e, &name, &|s| s.stats.sum(c));
    }
    let name = "nvelox_server_check_results_total";
    e.family(name, "counter", "Active health checks by result.");
    for b in &rt.backends {
        for s in &b.servers {
            for (result, c) in [("ok", sc::CHECKS_OK), ("failed", sc::CHECKS_FAILED)] {
                e.sample(
                    name,
                    &[
                        ("backend", &b.plan.name),
                        ("server", &s.plan.label),
                        ("result", result),
                    ],
                    s.stats.sum(c),
                );
            }
        }
    }
    let name = "nvelox_server_tls_handshake_failures_total";
    e.family(
        name,
        "counter",
        "backend_tls handshakes of traffic connections with the server that failed, by reason.",
    );
    for b in rt.backends.iter().filter(|b| b.plan.tls.is_some()) {
        for s in &b.servers {
            for (k, reason) in super::BACKEND_TLS_FAILURE_REASONS.iter().enumerate() {
                e.sample(
                    name,
                    &[
                        ("backend", &b.plan.name),
                        ("server", &s.plan.label),
                        ("reason", reason),
                    ],
                    s.stats.sum(sc::TLS_FAILURES + k),
                );
            }
        }
    }
    e.family(
        "nvelox_server_check_failures_total",
        "counter",
        "Failed active health checks.",
    );
    each(e, "nvelox_server_check_failures_total", &|s| {
        s.stats.sum(sc::CHECKS_FAILED)
    });
}

/// Wakeup buckets shown: upper bounds 2^10 ns (~1 us) .. 2^30 ns (~1.07 s);
/// the cumulative count of the first one includes the shorter wakeups.
const WAKEUP_FIRST_SHOWN: usize = 11;

/// The event loops' own figures (`reactor::LoopStats`), label `loop`.
fn loops(e: &mut Expo, rt: &Runtime) {
    use reactor::stats::{bucket_le, EVENT_BUCKETS, WAKEUP_BUCKETS};
    let snaps: Vec<_> = rt.loop_stats.iter().map(|s| s.snapshot()).collect();
    let name = "nvelox_loop_wakeup_seconds";
    e.family(
        name,
        "histogram",
        "Time an event loop stayed awake per wakeup: from the return of epoll_wait to its next call.",
    );
    for (i, s) in snaps.iter().enumerate() {
        let lp = i.to_string();
        let mut cum = 0u64;
        for (b, n) in s.wakeup_buckets.iter().enumerate() {
            cum = cum.wrapping_add(*n);
            let Some(le_ns) = bucket_le(b, WAKEUP_BUCKETS) else {
                continue;
            };
            if b >= WAKEUP_FIRST_SHOWN {
                let le = (le_ns as f64 / 1e9).to_string();
                e.sample(
                    &format!("{name}_bucket"),
                    &[("loop", &lp), ("le", &le)],
                    cum,
                );
            }
        }
        e.sample(
            &format!("{name}_bucket"),
            &[("loop", &lp), ("le", "+Inf")],
            s.wakeups(),
        );
        e.sample(
            &format!("{name}_sum"),
            &[("loop", &lp)],
            s.wakeup_ns_sum as f64 / 1e9,
        );
        e.sample(&format!("{name}_count"), &[("loop", &lp)], s.wakeups());
    }
    let name = "nvelox_loop_events_per_wakeup";
    e.family(
        name,
        "histogram",
        "Readiness events an event loop's epoll_wait returned per wakeup.",
    );
    for (i, s) in snaps.iter().enumerate() {
        let lp = i.to_string();
        let mut cum = 0u64;
        for (b, n) in s.event_buckets.iter().enumerate() {
            cum = cum.wrapping_add(*n);
            let le = bucket_le(b, EVENT_BUCKETS).map_or("+Inf".to_string(), |v| v.to_string());
            e.sample(
                &format!("{name}_bucket"),
                &[("loop", &lp), ("le", &le)],
                cum,
            );
        }
        e.sample(&format!("{name}_sum"), &[("loop", &lp)], s.events_sum);
        e.sample(&format!("{name}_count"), &[("loop", &lp)], s.wakeups());
    }
    let name = "nvelox_loop_requeues_total";
    e.family(
        name,
        "counter",
        "Sources an event loop re-queued behind the other ready ones because their per-wakeup budget ran out.",
    );
    for (i, s) in snaps.iter().enumerate() {
        e.sample(name, &[("loop", &i.to_string())], s.requeues);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_histograms_are_cumulative_with_count_sum_and_inf() {
        let text = "listeners:\n  - { name: l, bind: \"127.0.0.1:1\", default_backend: b }\nbackends:\n  - name: b\n    servers: [\"127.0.0.1:9\"]\n";
        let mut plan = crate::config::load_str(text, std::path::Path::new("t.yaml")).unwrap();
        plan.server.workers = 2;
        let rt = Runtime::new(plan);
        let s = &rt.loop_stats[1];
        s.record_wakeup(std::time::Duration::from_nanos(500), 1);
        s.record_wakeup(std::time::Duration::from_micros(3), 3);
        s.record_wakeup(std::time::Duration::from_secs(2), 0);
        s.record_requeues(4);
        let out = render(&rt, 0);
        for want in [
            "# TYPE nvelox_loop_wakeup_seconds histogram\n",
            // 500 ns and nothing else at or below ~1 us
            "nvelox_loop_wakeup_seconds_bucket{loop=\"1\",le=\"0.000001024\"} 1\n",
            "nvelox_loop_wakeup_seconds_bucket{loop=\"1\",le=\"0.000004096\"} 2\n",
            "nvelox_loop_wakeup_seconds_bucket{loop=\"1\",le=\"1.073741824\"} 2\n",
            "nvelox_loop_wakeup_seconds_bucket{loop=\"1\",le=\"+Inf\"} 3\n",
            "nvelox_loop_wakeup_seconds_sum{loop=\"1\"} 2.0000035\n",
            "nvelox_loop_wakeup_seconds_count{loop=\"1\"} 3\n",
            "nvelox_loop_wakeup_seconds_count{loop=\"0\"} 0\n",
            "# TYPE nvelox_loop_events_per_wakeup histogram\n",
            "nvelox_loop_events_per_wakeup_bucket{loop=\"1\",le=\"0\"} 1\n",
            "nvelox_loop_events_per_wakeup_bucket{loop=\"1\",le=\"1\"} 2\n",
            "nvelox_loop_events_per_wakeup_bucket{loop=\"1\",le=\"2\"} 2\n",
            "nvelox_loop_events_per_wakeup_bucket{loop=\"1\",le=\"4\"} 3\n",
            "nvelox_loop_events_per_wakeup_bucket{loop=\"1\",le=\"1024\"} 3\n",
            "nvelox_loop_events_per_wakeup_bucket{loop=\"1\",le=\"+Inf\"} 3\n",
            "nvelox_loop_events_per_wakeup_sum{loop=\"1\"} 4\n",
            "nvelox_loop_requeues_total{loop=\"1\"} 4\n",
            "nvelox_loop_requeues_total{loop=\"0\"} 0\n",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
    }

    #[test]
    fn label_values_are_escaped_as_the_format_says() {
        let mut s = String::new();
        escape_label(&mut s, "a\\b\"c\nd é");
        assert_eq!(s, "a\\\\b\\\"c\\nd é");
    }

    #[test]
    fn every_family_has_help_and_type_and_samples_follow_them() {
        let text = "listeners:\n  - { name: \"we\\\"b\", bind: \"127.0.0.1:1\", default_backend: b }\n  - { name: u, bind: \"127.0.0.1:1\", protocol: udp, default_backend: b }\nbackends:\n  - name: b\n    servers: [\"127.0.0.1:9\", \"127.0.0.1:10\"]\n";
        let plan = crate::config::load_str(text, std::path::Path::new("t.yaml")).unwrap();
        let rt = Runtime::new(plan);
        rt.listener_stats[0].add(0, lc::BYTES_IN, 42);
        let out = render(&rt, 3);
        assert!(
            out.contains("nvelox_listener_bytes_in_total{listener=\"we\\\"b\"} 42\n"),
            "{out}"
        );
        assert!(out.contains("nvelox_server_weight{backend=\"b\",server=\"127.0.0.1:10\"} 1\n"));
        assert!(out.contains("nvelox_access_log_dropped_lines_total 3\n"));
        assert!(out
            .contains("nvelox_listener_udp_drops_total{listener=\"u\",reason=\"no_server\"} 0\n"));
        assert!(
            !out.contains("nvelox_listener_udp_datagrams_in_total{listener=\"we"),
            "UDP families are for UDP listeners"
        );
        let mut typed = std::collections::HashSet::new();
        for line in out.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|x| name.strip_suffix(x).filter(|f| typed.contains(*f)))
                    .unwrap_or(name);
                assert!(typed.contains(family), "sample before its TYPE: {line}");
            }
        }
    }
}
