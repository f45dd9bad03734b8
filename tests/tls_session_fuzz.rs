//! The `tls_session` fuzz target's oracle on stable: over every committed
//! seed in `fuzz/seeds/tls_session/`, over hand-written scripts for the
//! attacks it models (one per finding), and over seeded random inputs. No
//! sockets: the server session runs over an in-memory socket.
#![cfg(feature = "tls")]

use std::path::Path;

mod check {
    include!("../fuzz/fuzz_targets/tls_session_check.rs");
    include!("../fuzz/fuzz_targets/tls_session_craft.rs");
}
use check::check_tls_session;

/// Script opcodes of the rustls modes (see `check_rustls_client`).
mod op {
    pub const CLIENT_WRITE: u8 = 0;
    pub const KEY_UPDATE: u8 = 1;
    pub const CLOSE_NOTIFY: u8 = 2;
    pub const INJECT: u8 = 3;
    pub const DELIVER: u8 = 5;
    pub const SERVER_READ: u8 = 6;
    pub const SERVER_WRITE: u8 = 7;
    pub const CLIENT_READ: u8 = 8;
    pub const SERVER_SHUT: u8 = 10;
    pub const ROOM: u8 = 11;
}

/// Crafted-mode opcodes (see `check_crafted`).
mod craft {
    pub const RECORD: u8 = 0;
    pub const HANDSHAKE_MSG: u8 = 1;
    pub const FLOOD: u8 = 2;
    pub const DELIVER: u8 = 4;
    pub const SERVER_READ: u8 = 5;
    pub const SERVER_WRITE: u8 = 6;
    pub const ROOM: u8 = 7;
}

const TLS13: u8 = 1;
const TLS12: u8 = 2;
const CRAFT13: u8 = 3;
const CRAFT12: u8 = 4;
/// Our session as the client (`backend_tls`), a rustls server as the peer.
const CLIENT13: u8 = 5;
const CLIENT12: u8 = 6;

fn u16b(n: usize) -> [u8; 2] {
    [(n >> 8) as u8, n as u8]
}

/// `mode`, a handshake step of 64 KiB (whole), then `ops`.
fn script(mode: u8, ops: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![mode, 255];
    if mode == CRAFT13 || mode == CRAFT12 {
        v.pop();
    }
    for o in ops {
        v.extend_from_slice(o);
    }
    v
}

fn client_write(n: usize) -> Vec<u8> {
    let [a, b] = u16b(n);
    vec![op::CLIENT_WRITE, a, b]
}

fn server_write(n: usize) -> Vec<u8> {
    let [a, b] = u16b(n);
    vec![op::SERVER_WRITE, a, b]
}

const DELIVER_ALL: &[u8] = &[op::DELIVER, 255, 255];
const READ: &[u8] = &[op::SERVER_READ, 64];
const CLIENT_READ: &[u8] = &[op::CLIENT_READ];

#[test]
fn a_request_and_a_response_in_both_versions() {
    for mode in [TLS13, TLS12] {
        check_tls_session(&script(
            mode,
            &[
                &client_write(300),
                DELIVER_ALL,
                READ,
                &server_write(5000),
                CLIENT_READ,
            ],
        ));
    }
}

#[test]
fn the_client_side_against_a_rustls_server() {
    for mode in [CLIENT13, CLIENT12] {
        let key_update: &[u8] = if mode == CLIENT13 {
            &[op::KEY_UPDATE]
        } else {
            &[]
        };
        check_tls_session(&script(
            mode,
            &[
                &server_write(300),
                CLIENT_READ,
                &client_write(30_000),
                key_update,
                &client_write(10),
                DELIVER_ALL,
                READ,
                &server_write(100),
                CLIENT_READ,
                &[op::CLOSE_NOTIFY],
                DELIVER_ALL,
                READ,
            ],
        ));
    }
}

#[test]
fn a_client_key_update_then_a_response_reaches_the_client() {
    // The client asks for a key update (update_requested): the server's
    // own KeyUpdate must go out before anything encrypted with its new keys.
    check_tls_session(&script(
        TLS13,
        &[
            &client_write(10),
            &[op::KEY_UPDATE],
            &client_write(10),
            DELIVER_ALL,
            READ,
            &server_write(100),
            CLIENT_READ,
            &client_write(10),
            DELIVER_ALL,
            READ,
            &server_write(100),
            CLIENT_READ,
        ],
    ));
}

#[test]
fn key_updates_while_the_server_does_not_write() {
    let mut ops: Vec<Vec<u8>> = Vec::new();
    for _ in 0..20 {
        ops.push(vec![op::KEY_UPDATE]);
        ops.push(client_write(3));
        ops.push(DELIVER_ALL.to_vec());
        ops.push(READ.to_vec());
    }
    ops.push(server_write(40_000));
    ops.push(CLIENT_READ.to_vec());
    let refs: Vec<&[u8]> = ops.iter().map(|o| &o[..]).collect();
    check_tls_session(&script(TLS13, &refs));
}

#[test]
fn a_client_that_never_reads_while_the_server_writes() {
    for mode in [TLS13, TLS12] {
        check_tls_session(&script(
            mode,
            &[
                &[op::ROOM, 1],
                &server_write(60_000),
                &server_write(60_000),
                &client_write(30_000),
                DELIVER_ALL,
                READ,
                &server_write(60_000),
                CLIENT_READ,
            ],
        ));
    }
}

#[test]
fn close_notify_then_the_server_still_writes_and_the_client_still_reads() {
    for mode in [TLS13, TLS12] {
        check_tls_session(&script(
            mode,
            &[
                &client_write(100),
                &[op::CLOSE_NOTIFY],
                DELIVER_ALL,
                READ,
                &server_write(20_000),
                CLIENT_READ,
                &[op::SERVER_SHUT],
                CLIENT_READ,
            ],
        ));
    }
}

#[test]
fn records_delivered_one_byte_at_a_time() {
    let mut ops: Vec<Vec<u8>> = vec![client_write(2000)];
    for _ in 0..2100 {
        ops.push(vec![op::DELIVER, 0, 1]);
        ops.push(vec![op::SERVER_READ, 0]);
    }
    let refs: Vec<&[u8]> = ops.iter().map(|o| &o[..]).collect();
    check_tls_session(&script(TLS12, &refs));
}

#[test]
fn garbage_after_the_handshake_fails_the_read() {
    for mode in [TLS13, TLS12] {
        let mut junk = vec![op::INJECT, 40];
        junk.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nmore junk....");
        check_tls_session(&script(
            mode,
            &[
                &client_write(10),
                &junk,
                DELIVER_ALL,
                READ,
                &server_write(10),
            ],
        ));
    }
}

fn record(typ: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![craft::RECORD, typ, body.len() as u8];
    v.extend_from_slice(body);
    v
}

const CRAFT_DELIVER_ALL: &[u8] = &[craft::DELIVER, 255, 255];
const CRAFT_READ: &[u8] = &[craft::SERVER_READ, 32];

#[test]
fn post_handshake_records_of_every_type() {
    // content_type(): 0 appdata, 1 handshake, 2 alert, 3 ccs, 4 heartbeat.
    let hello = [1u8, 0, 0, 4, 3, 3, 0, 0];
    let cases: Vec<Vec<u8>> = vec![
        record(1, &hello),            // a renegotiating ClientHello
        record(1, &[4, 0, 0, 1, 0]),  // a NewSessionTicket from a client
        record(1, &[24, 0, 0, 1, 1]), // a KeyUpdate
        record(1, &[24, 0, 0, 1, 7]), // a KeyUpdate with a bad value
        record(2, &[1, 90]),          // a warning alert (user_canceled)
        record(2, &[1, 0]),           // close_notify
        record(2, &[2, 40]),          // a fatal alert
        record(3, &[1]),              // ChangeCipherSpec
        record(4, &[1, 0, 16]),       // heartbeat
        record(0, &[]),               // an empty application data record
        record(5, b"unknown content type"),
    ];
    for mode in [CRAFT13, CRAFT12] {
        for case in &cases {
            check_tls_session(&script(
                mode,
                &[case, &record(0, b"after"), CRAFT_DELIVER_ALL, CRAFT_READ],
            ));
        }
    }
}

#[test]
fn a_huge_fragmented_handshake_message_and_floods_of_tiny_records() {
    for mode in [CRAFT13, CRAFT12] {
        // A 64 KiB handshake message in 65-byte records.
        check_tls_session(&script(
            mode,
            &[
                &[craft::HANDSHAKE_MSG, 24, 16, 0, 1],
                CRAFT_DELIVER_ALL,
                CRAFT_READ,
            ],
        ));
        // 4,999 records of 1 byte, of 0 bytes, and 4,999 warning alerts.
        for (typ, len) in [(0u8, 1u8), (0, 0), (2, 2)] {
            check_tls_session(&script(
                mode,
                &[
                    &[craft::ROOM, 0],
                    &[craft::FLOOD, typ, 0x13, 0x87, len],
                    CRAFT_DELIVER_ALL,
                    &[craft::SERVER_WRITE, 1, 0],
                    CRAFT_READ,
                ],
            ));
        }
    }
}

#[test]
fn every_seed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/tls_session");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("fuzz/seeds/tls_session") {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| check_tls_session(&data));
        assert!(r.is_ok(), "seed {}", path.display());
        n += 1;
    }
    assert!(n >= 10, "only {n} seeds");
}

#[test]
fn seeded_random_inputs() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..300 {
        let mut data = vec![(i % 6) as u8];
        let len = 1 + i * 3 % 200;
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            data.push(x as u8);
        }
        check_tls_session(&data);
    }
}

/// What an idle connection holds while a record is incomplete: a client
/// that sends part of a record (or of its first flight) and waits must not
/// pin a whole 32 KiB buffer.
#[test]
fn a_partial_record_holds_only_its_own_bytes() {
    use check::*;
    use std::io::Write;
    for tls12 in [false, true] {
        let mut client = rustls_client(tls12);
        let mut w = Wire::new();
        let mut s = handshake(&mut client, &mut w, usize::MAX).unwrap();
        client.writer().write_all(b"hello").unwrap();
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        let mut got = Vec::new();
        w.rx.extend(&wire[..wire.len() - 1]);
        assert_eq!(
            server_read(&mut s, &mut w, 4096, &mut got),
            ReadEnd::Blocked
        );
        assert!(got.is_empty());
        let held = s.buffered_capacity();
        assert!(
            held <= 4096,
            "tls12 {tls12}: {held} B for {} waiting",
            wire.len() - 1
        );
        w.rx.extend(&wire[wire.len() - 1..]);
        assert_eq!(
            server_read(&mut s, &mut w, 4096, &mut got),
            ReadEnd::Blocked
        );
        assert_eq!(got, b"hello");
        assert_eq!(s.buffered_capacity(), 0);
    }
    // One byte of a ClientHello.
    let mut s = nvelox::tls::TlsSession::server(tls_server_config()).unwrap();
    let mut w = Wire::new();
    w.rx.push_back(0x16);
    assert_eq!(s.handshake(&mut w), nvelox::tls::Handshake::Pending);
    assert!(s.buffered_capacity() <= 4096, "{}", s.buffered_capacity());
}

/// Bytes after the peer's close_notify are never processed: they are not
/// kept either.
#[test]
fn bytes_after_close_notify_are_not_kept() {
    use check::*;
    for tls12 in [false, true] {
        let mut client = rustls_client(tls12);
        let mut w = Wire::new();
        let mut s = handshake(&mut client, &mut w, usize::MAX).unwrap();
        client.send_close_notify();
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        wire.extend_from_slice(&[0x17; 3000]);
        w.rx.extend(&wire);
        let mut got = Vec::new();
        assert_eq!(server_read(&mut s, &mut w, 4096, &mut got), ReadEnd::Eof);
        assert_eq!(s.buffered_capacity(), 0, "tls12 {tls12}");
    }
}
