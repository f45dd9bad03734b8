//! UDP load balancing through the real binary, on loopback: sessions,
//! balancing, datagram sizes, addresses, port ranges, PROXY headers. The
//! life of a session (caps, idle expiry, sockets given back, SIGTERM) is in
//! `udp_sessions.rs`.

mod common;
#[path = "common/udp.rs"]
mod udp_support;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use nvelox::proxy_protocol::{Header, Transport};
use udp_support::*;

// ---------------------------------------------------------------- tests

#[test]
fn two_clients_get_independent_sessions_and_each_stays_on_its_server() {
    let (a, b) = (
        UdpBackend::start(Reply::Named("a")),
        UdpBackend::start(Reply::Named("b")),
    );
    let port = free_port();
    let _n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(a.addr), quoted(b.addr)],
        "",
        2,
    ));
    let (c1, c2) = (client(), client());
    assert_eq!(ask(&c1, v4(port), b"x"), "a:x");
    assert_eq!(ask(&c2, v4(port), b"y"), "b:y");
    for i in 0..5 {
        let m = format!("m{i}");
        assert_eq!(ask(&c1, v4(port), m.as_bytes()), format!("a:{m}"));
        assert_eq!(ask(&c2, v4(port), m.as_bytes()), format!("b:{m}"));
    }
    // One upstream socket per session: each backend saw one source address.
    assert_eq!((a.received(), b.received()), (6, 6));
    assert_eq!((a.distinct_peers(), b.distinct_peers()), (1, 1));
}

#[test]
fn new_sessions_go_round_robin() {
    let bs = [
        UdpBackend::start(Reply::Named("s1")),
        UdpBackend::start(Reply::Named("s2")),
        UdpBackend::start(Reply::Named("s3")),
    ];
    let port = free_port();
    let servers: Vec<String> = bs.iter().map(|b| quoted(b.addr)).collect();
    let _n = Nvelox::start(&config(&format!("127.0.0.1:{port}"), &servers, "", 2));
    let got: Vec<String> = (0..6).map(|_| ask(&client(), v4(port), b"hi")).collect();
    assert_eq!(got, ["s1:hi", "s2:hi", "s3:hi", "s1:hi", "s2:hi", "s3:hi"]);
}

#[test]
fn a_backend_answering_three_datagrams_per_request_gets_all_three_to_the_client() {
    let b = UdpBackend::start(Reply::Three("r"));
    let port = free_port();
    let _n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        "",
        1,
    ));
    let c = client();
    for _ in 0..2 {
        c.send_to(b"go", v4(port)).unwrap();
        let got: Vec<String> = (0..3)
            .map(|_| {
                let (d, from) = recv(&c).expect("a reply");
                assert_eq!(from, v4(port));
                String::from_utf8(d).unwrap()
            })
            .collect();
        assert_eq!(got, ["r:1", "r:2", "r:3"]);
    }
    assert!(silent(&c), "more than three replies");
}

#[test]
fn an_empty_datagram_passes_both_ways() {
    let b = UdpBackend::start(Reply::Echo);
    let port = free_port();
    let _n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        "",
        1,
    ));
    let c = client();
    let (data, from) = ask_from(&c, v4(port), b"");
    assert!(data.is_empty());
    assert_eq!(from, v4(port));
    assert_eq!(*b.lens.lock().unwrap(), vec![0]);
}

#[test]
fn the_largest_datagram_arrives_intact_both_ways() {
    const MAX: usize = 65_507;
    let b = UdpBackend::start(Reply::Echo);
    let port = free_port();
    let _n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        "",
        1,
    ));
    let c = client();
    let data = payload(MAX, 7);
    let (got, from) = ask_from(&c, v4(port), &data);
    assert_eq!(from, v4(port));
    assert_eq!(got.len(), MAX);
    assert!(got == data, "payload changed on the way");
    assert_eq!(*b.lens.lock().unwrap(), vec![MAX]);
}

#[test]
fn a_wildcard_listener_replies_from_the_address_the_client_reached() {
    let b = UdpBackend::start(Reply::Named("w"));
    let port = free_port();
    let _n = Nvelox::start(&config(
        &format!("0.0.0.0:{port}"),
        &[quoted(b.addr)],
        "",
        1,
    ));
    for ip in [[127, 0, 0, 2], [127, 0, 0, 1], [127, 0, 0, 3]] {
        let to = SocketAddr::from((ip, port));
        let c = client();
        let (data, from) = ask_from(&c, to, b"q");
        assert_eq!(data, b"w:q");
        assert_eq!(
            from, to,
            "reply must come from the address the client reached"
        );
    }
}

#[test]
fn a_dual_stack_listener_replies_from_the_address_the_client_reached() {
    let b = UdpBackend::start(Reply::Named("d"));
    let port = free_port();
    let _n = Nvelox::start(&config(&format!(":{port}"), &[quoted(b.addr)], "", 1));
    let to = SocketAddr::from(([127, 0, 0, 2], port));
    let (data, from) = ask_from(&client(), to, b"q");
    assert_eq!(data, b"d:q");
    assert_eq!(from, to);
}

#[test]
fn a_thousand_port_range_to_a_portless_server_lands_on_the_same_port() {
    const N: u16 = 1000;
    let base = free_port_range(N);
    // Backends on 127.0.0.2, same ports, one thread polling all of them.
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    let mut socks = Vec::new();
    for p in base..base + N {
        let s = mio::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 2], p))).unwrap();
        socks.push(s);
    }
    let backend = thread::spawn(move || {
        let mut poll = mio::Poll::new().unwrap();
        for (i, s) in socks.iter_mut().enumerate() {
            poll.registry()
                .register(s, mio::Token(i), mio::Interest::READABLE)
                .unwrap();
        }
        let mut events = mio::Events::with_capacity(256);
        let mut buf = [0u8; 512];
        while !s2.load(Ordering::Relaxed) {
            let _ = poll.poll(&mut events, Some(Duration::from_millis(50)));
            for e in events.iter() {
                let s = &socks[e.token().0];
                let port = s.local_addr().unwrap().port();
                while let Ok((_, from)) = s.recv_from(&mut buf) {
                    let _ = s.send_to(format!("port:{port}").as_bytes(), from);
                }
            }
        }
    });
    let bind = format!("127.0.0.1:{base}-{}", base + N - 1);
    let n = Nvelox::start(&config(&bind, &["\"127.0.0.2\"".into()], "", 2));
    let c = client();
    for p in base..base + N {
        assert_eq!(ask(&c, v4(p), b"?"), format!("port:{p}"));
    }
    drop(n);
    stop.store(true, Ordering::Relaxed);
    backend.join().unwrap();
}

#[test]
fn ipv6_loopback_sessions_work() {
    let Ok(bsock) = UdpSocket::bind("[::1]:0") else {
        skip("ipv6_loopback_sessions_work", "needs IPv6 loopback (::1)");
        return;
    };
    let b = UdpBackend::on(bsock, Reply::Named("six"));
    let port = free_port();
    let _n = Nvelox::start(&config(&format!("[::1]:{port}"), &[quoted(b.addr)], "", 1));
    let to: SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let c = client_on("[::1]:0");
    assert_eq!(ask(&c, to, b"v6"), "six:v6");
    assert_eq!(ask(&c, to, b"again"), "six:again");
    let peers = b.peers.lock().unwrap().clone();
    assert!(peers
        .iter()
        .all(|p| p.ip() == IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])));
    assert_eq!(b.distinct_peers(), 1);
}

#[test]
fn reuseport_spreads_one_port_over_the_loops_and_sessions_still_work() {
    let b = UdpBackend::start(Reply::Named("r"));
    let port = free_port();
    let n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        "    reuseport: true\n",
        2,
    ));
    n.wait_for_line("2 sockets", WAIT);
    let clients: Vec<UdpSocket> = (0..16).map(|_| client()).collect();
    let mut upstream_of: HashMap<SocketAddr, usize> = HashMap::new();
    for round in 0..3 {
        for (i, c) in clients.iter().enumerate() {
            assert_eq!(ask(c, v4(port), b"z"), "r:z", "client {i} round {round}");
        }
    }
    // Every client kept one upstream socket across rounds.
    for p in b.peers.lock().unwrap().iter() {
        *upstream_of.entry(*p).or_default() += 1;
    }
    assert_eq!(upstream_of.len(), 16);
    assert!(upstream_of.values().all(|&k| k == 3));
}

#[test]
fn send_proxy_v2_puts_a_header_with_the_real_client_in_front_of_every_datagram() {
    let b = UdpBackend::start(Reply::ProxySource);
    let port = free_port();
    let yaml = config(&format!("0.0.0.0:{port}"), &[quoted(b.addr)], "", 1).replace(
        "balance: roundrobin\n",
        "balance: roundrobin\n    send_proxy_v2: true\n",
    );
    let _n = Nvelox::start(&yaml);
    let to = SocketAddr::from(([127, 0, 0, 2], port));
    let c = client();
    let me = c.local_addr().unwrap();
    assert_eq!(ask(&c, to, b"one"), format!("{me} {to} one"));
    assert_eq!(ask(&c, to, b"two"), format!("{me} {to} two"));
    assert_eq!(ask(&c, to, b""), format!("{me} {to} "));
}

#[test]
fn two_chained_udp_balancers_preserve_the_original_client() {
    let b = UdpBackend::start(Reply::ProxySource);
    let (front, back) = (free_port(), free_port());
    let with_pp = |yaml: String| {
        yaml.replace(
            "balance: roundrobin\n",
            "balance: roundrobin\n    send_proxy_v2: true\n",
        )
    };
    let inner = config(
        &format!("127.0.0.1:{back}"),
        &[quoted(b.addr)],
        "    accept_proxy: v2\n",
        1,
    );
    let _b = Nvelox::start(&with_pp(inner));
    let outer = config(&format!("127.0.0.1:{front}"), &[quoted(v4(back))], "", 1);
    let _a = Nvelox::start(&with_pp(outer));
    let c = client_on("127.0.0.9:0");
    let me = c.local_addr().unwrap();
    let to = v4(front);
    assert_eq!(ask(&c, to, b"hop"), format!("{me} {to} hop"));
    assert_eq!(ask(&c, to, b"again"), format!("{me} {to} again"));
}

#[test]
fn accept_proxy_on_udp_drops_datagrams_without_a_header() {
    let b = UdpBackend::start(Reply::Echo);
    let port = free_port();
    let n = Nvelox::start(&config(
        &format!("127.0.0.1:{port}"),
        &[quoted(b.addr)],
        "    accept_proxy: v2\n",
        1,
    ));
    let c = client();
    c.send_to(b"no header", v4(port)).unwrap();
    assert!(silent(&c), "a datagram without a PROXY header was relayed");
    n.wait_for_line("bad PROXY header", WAIT);
    assert_eq!(b.received(), 0);
    // A valid header is stripped before the payload goes on.
    let mut dgram = Vec::new();
    Header::proxy(
        nvelox::proxy_protocol::Version::V2,
        Transport::Dgram,
        "192.0.2.1:5000".parse().unwrap(),
        "198.51.100.2:53".parse().unwrap(),
    )
    .emit(&mut dgram)
    .unwrap();
    dgram.extend_from_slice(b"payload");
    c.send_to(&dgram, v4(port)).unwrap();
    let (got, _) = recv(&c).expect("reply");
    assert_eq!(got, b"payload");
}
