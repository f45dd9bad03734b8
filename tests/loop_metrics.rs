//! The event loops' own histograms in the metrics exposition, against the
//! real binary on 127.0.0.1: `nvelox_loop_wakeup_seconds` and
//! `nvelox_loop_events_per_wakeup` (one series per loop, cumulative
//! buckets, `_sum`, `_count`) and `nvelox_loop_requeues_total`, and that
//! they count the wakeups traffic causes.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;

fn scrape(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// `name{labels}` -> value, for the `nvelox_loop_` families.
fn loop_samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with("nvelox_loop_"))
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {m:?}"))
}

/// The buckets of one histogram series in the order written, as (le, count).
fn buckets(text: &str, family: &str, lp: usize) -> Vec<(String, f64)> {
    let prefix = format!("{family}_bucket{{loop=\"{lp}\",le=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (le, v) = rest.split_once("\"} ").unwrap();
            (le.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn loop_histograms_appear_per_loop_and_count_the_wakeups_of_traffic() {
    let echo = Backend::start(Mode::Echo);
    let (tcp, mport) = (free_port(), free_port());
    let _n = Nvelox::start(&format!(
        r#"
server: {{ workers: 2 }}
metrics: {{ enabled: true, bind: "127.0.0.1:{mport}" }}
listeners:
  - {{ name: web, bind: "127.0.0.1:{tcp}", backend: app, reuseport: true }}
backends:
  - {{ name: app, servers: ["127.0.0.1:{}"] }}
"#,
        echo.port()
    ));
    let before = scrape(mport);
    for family in [
        "nvelox_loop_wakeup_seconds",
        "nvelox_loop_events_per_wakeup",
    ] {
        assert!(
            before.contains(&format!("# TYPE {family} histogram\n")),
            "{before}"
        );
        assert!(before.contains(&format!("# HELP {family} ")));
        for lp in 0..2 {
            let b = buckets(&before, family, lp);
            assert!(b.len() >= 10, "{family} loop {lp}: {b:?}");
            assert_eq!(b.last().unwrap().0, "+Inf");
            assert!(
                b.windows(2).all(|w| w[0].1 <= w[1].1),
                "not cumulative: {b:?}"
            );
            let m = loop_samples(&before);
            assert_eq!(
                b.last().unwrap().1,
                get(&m, &format!("{family}_count{{loop=\"{lp}\"}}"))
            );
            assert!(m.contains_key(&format!("{family}_sum{{loop=\"{lp}\"}}")));
        }
    }
    assert!(before.contains("# TYPE nvelox_loop_requeues_total counter\n"));
    assert!(!before.contains("loop=\"2\""), "two loops, two series");

    let conns = 20usize;
    for i in 0..conns {
        let mut s = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let data = payload(100, i as u64);
        s.write_all(&data).unwrap();
        let mut back = vec![0u8; data.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, data);
    }
    let after = scrape(mport);
    let (a, b) = (loop_samples(&before), loop_samples(&after));
    let total = |m: &HashMap<String, f64>, name: &str| -> f64 {
        (0..2)
            .map(|lp| get(m, &format!("{name}{{loop=\"{lp}\"}}")))
            .sum()
    };
    // Every proxied connection is at least one readiness event of its
    // own (client and server sockets) and one wakeup to serve it.
    let events = total(&b, "nvelox_loop_events_per_wakeup_sum")
        - total(&a, "nvelox_loop_events_per_wakeup_sum");
    let wakeups = total(&b, "nvelox_loop_wakeup_seconds_count")
        - total(&a, "nvelox_loop_wakeup_seconds_count");
    assert!(events >= 2.0 * conns as f64, "events {events}");
    assert!(wakeups >= conns as f64, "wakeups {wakeups}");
    assert!(
        total(&b, "nvelox_loop_wakeup_seconds_sum") > total(&a, "nvelox_loop_wakeup_seconds_sum")
    );
    // Both histograms count the same wakeups (exact for loop 0, which
    // renders the scrape: no wakeup of its own is half recorded).
    assert_eq!(
        get(&b, "nvelox_loop_wakeup_seconds_count{loop=\"0\"}"),
        get(&b, "nvelox_loop_events_per_wakeup_count{loop=\"0\"}")
    );
}
