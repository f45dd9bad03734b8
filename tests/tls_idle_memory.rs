//! What an idle TLS session costs in heap: a server session after its
//! handshake and one request and response, measured by a counting
//! allocator as the bytes its drop frees. With rustls's buffered
//! connection it was 7,457 B (4 KiB of it the receive buffer rustls keeps
//! for the connection's life); nvelox's own buffers (`tls::session` over
//! rustls's unbuffered API) are given back when empty: 3,465 B (3,473 B
//! once ALPN `http/1.1` is agreed, as the test now does).
#![cfg(feature = "tls")]
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};

use nvelox::tls::test_support::{
    client_config, handshake, server_config, server_name, shuttle, MemSocket,
};
use nvelox::tls::TlsSession;
use rustls::{ClientConnection, Connection};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is only arithmetic on the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` was allocated by System with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` was allocated by System with layout `l`.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes held by an idle server session (TLS 1.2 or 1.3).
fn idle_session_bytes(version: &'static rustls::SupportedProtocolVersion) -> isize {
    let mut client: Connection = ClientConnection::new(client_config(&[version]), server_name())
        .unwrap()
        .into();
    let s = TlsSession::server(server_config(&[version])).unwrap();
    let mut pipe = MemSocket::new();
    let mut s = Box::new(handshake(&mut client, s, &mut pipe, usize::MAX, |_| {}).unwrap());
    shuttle(&mut client, &mut pipe);
    client
        .writer()
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    shuttle(&mut client, &mut pipe);
    let mut buf = [0u8; 256];
    assert_eq!(s.io(&mut pipe).read(&mut buf).unwrap(), 27);
    s.io(&mut pipe)
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        .unwrap();
    shuttle(&mut client, &mut pipe);
    assert!(
        s.io(&mut pipe).read(&mut buf).is_err(),
        "drained: WouldBlock"
    );
    let before = LIVE.load(Ordering::Relaxed);
    drop(s);
    before - LIVE.load(Ordering::Relaxed)
}

#[test]
fn an_idle_tls_session_holds_less_than_4_kib_of_heap() {
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let held = idle_session_bytes(version);
        eprintln!("{version:?}: an idle server session holds {held} B");
        assert!(held > 1000, "{version:?}: {held} B: measured something");
        assert!(held < 4096, "{version:?}: an idle session holds {held} B");
    }
}
