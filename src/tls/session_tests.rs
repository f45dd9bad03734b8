//! The session against rustls's own buffered connections over an
//! in-memory socket: handshakes (TLS 1.2 and 1.3, byte by byte), traffic
//! through a socket that takes little at a time, the end of the stream,
//! bad input, and that an idle session holds no buffer.
use rustls::{ClientConnection, Connection, ServerConnection};

use super::super::test_support::{
    client_config, handshake, only, server_config, server_config_with_chain, server_name, shuttle,
    MemSocket,
};
use super::*;

/// A handshake between a rustls client and our server session, the
/// client's records passed on `step` bytes at a time.
fn connect(tls12: bool, step: usize) -> (TlsSession, Connection, MemSocket) {
    let s = TlsSession::server(server_config(only(tls12))).unwrap();
    let mut c: Connection = ClientConnection::new(client_config(only(tls12)), server_name())
        .unwrap()
        .into();
    let mut pipe = MemSocket::new();
    let s = handshake(&mut c, s, &mut pipe, step, |_| {}).expect("no handshake");
    assert_eq!(s.alpn(), Some(&b"http/1.1"[..]));
    (s, c, pipe)
}

fn read_all(s: &mut TlsSession, pipe: &mut MemSocket, want: usize, buf_len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; buf_len];
    while got.len() < want {
        match s.io(pipe).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    got
}

#[test]
fn an_idle_session_holds_no_buffer_after_a_request_and_a_response() {
    for tls12 in [false, true] {
        let (mut s, mut c, mut pipe) = connect(tls12, usize::MAX);
        c.writer()
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        shuttle(&mut c, &mut pipe);
        assert_eq!(
            read_all(&mut s, &mut pipe, 27, 4096),
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        );
        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        assert_eq!(s.io(&mut pipe).write(reply).unwrap(), reply.len());
        assert_eq!(shuttle(&mut c, &mut pipe), reply);
        // The read side drained: a read would block, nothing is queued.
        assert_eq!(
            s.io(&mut pipe).read(&mut [0u8; 64]).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        assert!(!s.wants_write());
        assert_eq!(s.buffered_capacity(), 0, "tls12 {tls12}");
    }
}

#[test]
fn a_handshake_fed_one_byte_at_a_time_completes() {
    for tls12 in [false, true] {
        let (s, _, _) = connect(tls12, 1);
        assert_eq!(s.buffered_capacity(), 0);
        let (s, _, _) = connect(tls12, 7);
        assert!(!s.is_handshaking());
    }
}

#[test]
fn big_transfers_through_a_socket_that_takes_little_at_a_time() {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    for tls12 in [false, true] {
        let (mut s, mut c, mut pipe) = connect(tls12, usize::MAX);
        pipe.chunk = 1000;
        pipe.room = 5000;
        // Ours to the peer: writes refused while records wait.
        let (mut sent, mut got) = (0, Vec::new());
        for _ in 0..100_000 {
            if sent == data.len() && !s.wants_write() {
                break;
            }
            match s.io(&mut pipe).write(&data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    got.extend(shuttle(&mut c, &mut pipe));
                    let _ = s.flush(&mut pipe);
                }
                Err(e) => panic!("{e}"),
            }
        }
        got.extend(shuttle(&mut c, &mut pipe));
        assert!(
            got == data,
            "tls12 {tls12}: {} of {}",
            got.len(),
            data.len()
        );
        // The peer's to us, 3000 bytes at a time, read with a small buffer.
        let (mut put, mut hold, mut back) = (0, Vec::new(), Vec::new());
        for _ in 0..100_000 {
            if back.len() == data.len() {
                break;
            }
            put += c.writer().write(&data[put..]).unwrap();
            while c.wants_write() {
                c.write_tls(&mut hold).unwrap();
            }
            let n = hold.len().min(3000);
            pipe.rx.extend(hold.drain(..n));
            back.extend(read_all(&mut s, &mut pipe, usize::MAX, 1000));
        }
        assert!(
            back == data,
            "tls12 {tls12}: {} of {}",
            back.len(),
            data.len()
        );
        assert_eq!(s.buffered_capacity(), 0);
    }
}

#[test]
fn close_notify_or_a_fin_ends_the_stream_and_ours_goes_before_the_fin() {
    let (mut s, mut c, mut pipe) = connect(false, usize::MAX);
    c.writer().write_all(b"last words").unwrap();
    c.send_close_notify();
    shuttle(&mut c, &mut pipe);
    assert_eq!(read_all(&mut s, &mut pipe, usize::MAX, 64), b"last words");
    assert_eq!(s.io(&mut pipe).read(&mut [0u8; 8]).unwrap(), 0);
    s.io(&mut pipe).shutdown_write().unwrap();
    assert!(pipe.shut);
    let mut came = &pipe.tx[..];
    c.read_tls(&mut came).unwrap();
    assert!(c.process_new_packets().unwrap().peer_has_closed());

    let (mut s, mut c, mut pipe) = connect(true, usize::MAX);
    c.writer().write_all(b"cut").unwrap();
    shuttle(&mut c, &mut pipe);
    pipe.fin = true;
    assert_eq!(read_all(&mut s, &mut pipe, usize::MAX, 64), b"cut");
    assert_eq!(s.io(&mut pipe).read(&mut [0u8; 8]).unwrap(), 0);
}

#[test]
fn bad_input_fails_the_handshake_with_an_alert_and_never_panics() {
    let mut hello = Vec::new();
    let mut c = ClientConnection::new(client_config(only(false)), server_name()).unwrap();
    c.write_tls(&mut hello).unwrap();
    let mut cases: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(),
        vec![0x16, 0x03, 0x01, 0xff, 0xff],
        vec![0x17, 0x03, 0x03, 0x00, 0x01, 0x00],
        vec![0x16, 0x03, 0x03, 0x00, 0x00, 0x16, 0x03, 0x03, 0x00, 0x00],
    ];
    for cut in [6, 40, hello.len() / 2] {
        let mut bad = hello.clone();
        for b in &mut bad[cut..] {
            *b ^= 0x5a;
        }
        cases.push(bad);
    }
    for (i, case) in cases.iter().enumerate() {
        let mut s = TlsSession::server(server_config(only(false))).unwrap();
        let mut pipe = MemSocket::new();
        pipe.rx.extend(case);
        pipe.fin = true;
        let st = s.handshake(&mut pipe);
        assert!(matches!(st, Handshake::Failed(_)), "case {i}: {st:?}");
        assert!(s.handshake(&mut pipe) != Handshake::Done);
        assert!(!s.wants_write(), "case {i}: nothing left to send");
        assert!(s.io(&mut pipe).read(&mut [0u8; 8]).is_err() || s.peer_gone());
        if i == 0 {
            assert_eq!(pipe.tx.first(), Some(&0x15), "case {i}: an alert");
        }
        // Fed bytes (after a PROXY header) fail the same way.
        let mut s = TlsSession::server(server_config(only(false))).unwrap();
        let fed = s.feed(case);
        assert!(fed.is_err() || s.handshake(&mut MemSocket::new()) == Handshake::Pending);
    }
}

#[test]
fn the_client_side_talks_to_a_rustls_server() {
    for tls12 in [false, true] {
        let mut s: Connection = ServerConnection::new(server_config(only(tls12)))
            .unwrap()
            .into();
        let c = TlsSession::client(client_config(only(tls12)), server_name()).unwrap();
        let mut pipe = MemSocket::new();
        let mut c = handshake(&mut s, c, &mut pipe, usize::MAX, |_| {}).expect("no handshake");
        assert_eq!(c.io(&mut pipe).write(b"ping").unwrap(), 4);
        assert_eq!(shuttle(&mut s, &mut pipe), b"ping");
        s.writer().write_all(b"pong").unwrap();
        shuttle(&mut s, &mut pipe);
        assert_eq!(read_all(&mut c, &mut pipe, 4, 64), b"pong");
        assert_eq!(c.buffered_capacity(), 0);
    }
}

#[test]
fn corrupted_or_cut_records_after_the_handshake_fail_reads_and_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..200 {
        // A fresh session each round, fed the peer's records with one bit
        // flipped, or cut short with the peer gone.
        let (mut s, mut c, mut pipe) = connect(round % 2 == 0, usize::MAX);
        let mut stream = Vec::new();
        c.writer().write_all(&[7u8; 3000]).unwrap();
        c.writer().write_all(b"tail").unwrap();
        while c.wants_write() {
            c.write_tls(&mut stream).unwrap();
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let at = (seed as usize) % stream.len();
        if round % 3 == 2 {
            stream.truncate(at);
            pipe.fin = true;
        } else {
            stream[at] ^= 1 << ((seed >> 60) % 8);
        }
        pipe.rx.extend(&stream);
        let (mut got, mut failed) = (Vec::new(), false);
        let mut buf = [0u8; 1500];
        for _ in 0..100 {
            match s.io(&mut pipe).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        // Only what the peer sent, in order: never a corrupted byte.
        let mut sent = vec![7u8; 3000];
        sent.extend_from_slice(b"tail");
        assert!(sent.starts_with(&got), "round {round}");
        assert!(failed || got.len() < sent.len(), "round {round}");
        if failed {
            // Sticky: the session does no more work and says so again.
            assert!(s.io(&mut pipe).read(&mut [0u8; 8]).is_err());
            assert!(s.io(&mut pipe).write(b"x").is_err());
            assert_eq!(s.buffered_capacity() - s.bufs.output.capacity(), 0);
        }
    }
}

#[test]
fn a_certificate_message_over_several_records_and_key_updates_work() {
    for tls12 in [false, true] {
        // A 40 KB chain: the server's Certificate message spans three
        // records, joined in the client session's input buffer.
        let chain = server_config_with_chain(only(tls12), 80);
        let mut s: Connection = ServerConnection::new(chain).unwrap().into();
        let c = TlsSession::client(client_config(only(tls12)), server_name()).unwrap();
        let mut pipe = MemSocket::new();
        let mut c = handshake(&mut s, c, &mut pipe, usize::MAX, |_| {}).expect("no handshake");
        assert_eq!(c.buffered_capacity(), 0);
        if !tls12 {
            // The peer updates its keys and asks us to: we answer, and
            // data flows both ways on the new keys.
            s.refresh_traffic_keys().unwrap();
            s.writer().write_all(b"after update").unwrap();
            shuttle(&mut s, &mut pipe);
            assert_eq!(read_all(&mut c, &mut pipe, 12, 64), b"after update");
            assert_eq!(c.io(&mut pipe).write(b"ack").unwrap(), 3);
            assert_eq!(shuttle(&mut s, &mut pipe), b"ack");
        }
    }
}

#[test]
fn a_peer_that_stops_mid_record_costs_about_what_it_sent() {
    let (mut s, mut c, mut pipe) = connect(false, usize::MAX);
    c.writer().write_all(&[3u8; 10_000]).unwrap();
    let mut stream = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut stream).unwrap();
    }
    // 300 bytes of a 10 KB record, then silence.
    pipe.rx.extend(&stream[..300]);
    assert_eq!(
        s.io(&mut pipe).read(&mut [0u8; 512]).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    assert_eq!(s.buffered_capacity(), 300);
    // The rest arrives: the record is whole again.
    pipe.rx.extend(&stream[300..]);
    assert_eq!(read_all(&mut s, &mut pipe, 10_000, 4096), vec![3u8; 10_000]);
    assert_eq!(s.buffered_capacity(), 0);
}

#[test]
fn a_short_read_means_drained_until_the_session_read_the_end() {
    use crate::tcp::relay::{Readiness, ShortRead, ShortReadMeans};
    let quiet = Readiness::default();
    let hangup = Readiness {
        hangup: true,
        fin: true,
        ..Readiness::default()
    };
    for tls12 in [false, true] {
        let (mut s, mut c, mut pipe) = connect(tls12, usize::MAX);
        c.writer().write_all(b"data").unwrap();
        shuttle(&mut c, &mut pipe);
        assert_eq!(s.io(&mut pipe).read(&mut [0u8; 64]).unwrap(), 4);
        assert_eq!(s.short_read(&quiet), ShortReadMeans::Drained);
        // The socket's FIN is not the end of the TLS stream: read on.
        assert_eq!(s.short_read(&hangup), ShortReadMeans::ReadOn);
        // The last data and close_notify in one read: no edge will come
        // for the end, which that short read already took.
        c.writer().write_all(b"last").unwrap();
        c.send_close_notify();
        shuttle(&mut c, &mut pipe);
        assert_eq!(s.io(&mut pipe).read(&mut [0u8; 64]).unwrap(), 4);
        assert_eq!(s.short_read(&quiet), ShortReadMeans::Ended);
        assert_eq!(s.io(&mut pipe).read(&mut [0u8; 64]).unwrap(), 0);
        // A FIN without close_notify ends it the same way.
        let (mut s, mut c, mut pipe) = connect(tls12, usize::MAX);
        c.writer().write_all(b"cut").unwrap();
        shuttle(&mut c, &mut pipe);
        pipe.fin = true;
        assert_eq!(s.io(&mut pipe).read(&mut [0u8; 64]).unwrap(), 3);
        assert_eq!(s.short_read(&quiet), ShortReadMeans::Ended);
    }
}
