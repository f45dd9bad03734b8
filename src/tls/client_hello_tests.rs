use super::*;

/// A ClientHello as python's `ssl` (OpenSSL) sends it: TLS 1.3, SNI
/// `app.example.com`, padded to 512 bytes, in one record.
const PYTHON_SNI: &[u8] = include_bytes!("../../fuzz/seeds/client_hello/python_tls13_sni.bin");
const PYTHON_NO_SNI: &[u8] = include_bytes!("../../fuzz/seeds/client_hello/python_no_sni.bin");
/// TLS 1.2 only, SNI written `Legacy.Example.COM`.
const PYTHON_TLS12: &[u8] =
    include_bytes!("../../fuzz/seeds/client_hello/python_tls12_sni_upper.bin");

fn name(s: &str) -> Peek {
    Peek::ServerName(Some(s.to_string()))
}

/// The handshake message of a single-record hello, re-cut into records of
/// `size` bytes each.
fn records_of(hello: &[u8], size: usize) -> Vec<u8> {
    let len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
    let msg = &hello[5..5 + len];
    let mut out = Vec::new();
    for frag in msg.chunks(size) {
        out.extend_from_slice(&[0x16, 0x03, 0x01]);
        out.extend_from_slice(&(frag.len() as u16).to_be_bytes());
        out.extend_from_slice(frag);
    }
    out
}

/// A minimal ClientHello with the given extensions block (`None`: no
/// extensions at all, as TLS 1.0-1.2 allow).
fn hello_with(extensions: Option<&[u8]>) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
    body.extend_from_slice(&[1, 0]); // null compression
    if let Some(ext) = extensions {
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(ext);
    }
    let mut msg = vec![1];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    rec.extend_from_slice(&msg);
    rec
}

fn sni_ext(names: &[(u8, &[u8])]) -> Vec<u8> {
    let mut list = Vec::new();
    for (kind, n) in names {
        list.push(*kind);
        list.extend_from_slice(&(n.len() as u16).to_be_bytes());
        list.extend_from_slice(n);
    }
    let mut data = (list.len() as u16).to_be_bytes().to_vec();
    data.extend_from_slice(&list);
    let mut ext = vec![0, 0];
    ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
    ext.extend_from_slice(&data);
    ext
}

#[test]
fn real_client_hellos_give_their_server_name() {
    assert_eq!(peek(PYTHON_SNI), name("app.example.com"));
    assert_eq!(peek(PYTHON_NO_SNI), Peek::ServerName(None));
    assert_eq!(peek(PYTHON_TLS12), name("legacy.example.com"));
}

#[test]
fn every_split_point_waits_then_gives_the_same_answer() {
    for hello in [PYTHON_SNI, PYTHON_NO_SNI, PYTHON_TLS12] {
        let whole = peek(hello);
        for k in 0..hello.len() {
            assert_eq!(peek(&hello[..k]), Peek::NeedMore, "prefix of {k} bytes");
        }
        // Bytes after the hello (a client that pipelines) change nothing.
        let mut more = hello.to_vec();
        more.extend_from_slice(b"\x17\x03\x03\x00\x05hello");
        assert_eq!(peek(&more), whole);
    }
}

#[test]
fn a_hello_over_many_records_is_reassembled_at_every_split_point() {
    for size in [1, 2, 3, 4, 5, 100, 511] {
        let split = records_of(PYTHON_SNI, size);
        if split.len() >= MAX_CLIENT_HELLO {
            // 1-byte records: 6 bytes per byte of hello, over the bound.
            assert_eq!(peek(&split), Peek::NotTls("ClientHello too long"));
            continue;
        }
        assert_eq!(peek(&split), name("app.example.com"), "records of {size}");
        for k in 0..split.len() {
            assert_eq!(peek(&split[..k]), Peek::NeedMore, "size {size}, prefix {k}");
        }
    }
}

#[test]
fn garbage_is_refused_on_its_first_bytes() {
    assert!(matches!(peek(b"G"), Peek::NotTls(_)));
    assert!(matches!(peek(b"GET / HTTP/1.1\r\n"), Peek::NotTls(_)));
    assert!(matches!(peek(b"SSH-2.0-OpenSSH"), Peek::NotTls(_)));
    // A handshake record of a version that is not TLS.
    assert!(matches!(peek(&[0x16, 0x02]), Peek::NotTls(_)));
    // An alert record, then an application-data record.
    assert!(matches!(peek(&[0x15, 3, 3, 0, 2, 2, 40]), Peek::NotTls(_)));
    // A handshake message that is not a ClientHello (ServerHello).
    assert!(matches!(peek(&[0x16, 3, 3, 0, 4, 2]), Peek::NotTls(_)));
    assert_eq!(peek(b""), Peek::NeedMore);
    assert_eq!(peek(&[0x16, 3, 1, 0]), Peek::NeedMore);
}

#[test]
fn bounded_lengths_are_refused_before_waiting_for_them() {
    // A record announcing more than 2^14 bytes.
    assert!(matches!(peek(&[0x16, 3, 1, 0x40, 0x01]), Peek::NotTls(_)));
    // An empty record.
    assert!(matches!(peek(&[0x16, 3, 1, 0, 0]), Peek::NotTls(_)));
    // A ClientHello announcing 1 MB.
    assert_eq!(
        peek(&[0x16, 3, 1, 0, 4, 1, 0x10, 0, 0]),
        Peek::NotTls("ClientHello too long")
    );
    // Valid records that never end the message: refused at the bound.
    let mut endless = vec![0x16, 3, 1, 0, 4, 1, 0, 0x3f, 0xff];
    while endless.len() < MAX_CLIENT_HELLO {
        endless.extend_from_slice(&[0x16, 3, 1, 0x01, 0x00]);
        endless.extend_from_slice(&[0u8; 256]);
    }
    assert_eq!(peek(&endless), Peek::NotTls("ClientHello too long"));
}

#[test]
fn a_non_handshake_record_inside_the_hello_is_refused() {
    let mut split = records_of(PYTHON_SNI, 100);
    split[105] = 0x17;
    assert_eq!(
        peek(&split),
        Peek::NotTls("a non-handshake record inside the ClientHello")
    );
}

#[test]
fn hand_built_hellos() {
    assert_eq!(peek(&hello_with(None)), Peek::ServerName(None));
    assert_eq!(peek(&hello_with(Some(&[]))), Peek::ServerName(None));
    let ok = sni_ext(&[(0, b"Host.Test.")]);
    assert_eq!(peek(&hello_with(Some(&ok))), name("host.test"));
    // Another name type first is skipped.
    let other = sni_ext(&[(7, b"\xff\xff"), (0, b"a.b")]);
    assert_eq!(peek(&hello_with(Some(&other))), name("a.b"));
    // Unknown extensions before it are skipped.
    let mut exts = vec![0xaa, 0xaa, 0, 1, 0];
    exts.extend_from_slice(&ok);
    assert_eq!(peek(&hello_with(Some(&exts))), name("host.test"));
}

#[test]
fn bad_server_names_are_refused() {
    for bad in [
        sni_ext(&[(0, b"")]),
        sni_ext(&[(0, b"a\0b")]),
        sni_ext(&[(0, b"caf\xc3\xa9.test")]),
        sni_ext(&[(0, b"a b")]),
        sni_ext(&[(0, &[b'a'; 254])]),
        sni_ext(&[(0, b"a.test"), (0, b"b.test")]),
    ] {
        assert!(
            matches!(peek(&hello_with(Some(&bad))), Peek::NotTls(_)),
            "{bad:?}"
        );
    }
    let twice = [sni_ext(&[(0, b"a")]), sni_ext(&[(0, b"b")])].concat();
    assert_eq!(
        peek(&hello_with(Some(&twice))),
        Peek::NotTls("two server_name extensions")
    );
    // An extension whose length runs past the block.
    assert_eq!(
        peek(&hello_with(Some(&[0, 0, 0, 9, 0]))),
        Peek::NotTls("a truncated ClientHello")
    );
}
