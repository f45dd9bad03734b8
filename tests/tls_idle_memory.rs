//! What an idle TLS session costs in heap: a server session after its
//! handshake and one request and response, measured by a counting
//! allocator as the bytes its drop frees. With rustls's buffered
//! connection it was 7,457 B (4 KiB of it the receive buffer rustls keeps
//! for the connection's life); nvelox's own buffers (`tls::session` over
//! rustls's unbuffered API) are given back when empty: 3,465 B.
#![cfg(feature = "tls")]
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use nvelox::tcp::relay::ShutdownWrite;
use nvelox::tls::{Handshake, TlsSession};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme};

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

/// A non-blocking socket in memory.
#[derive(Default)]
struct Pipe {
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl Read for Pipe {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        if self.rx.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = b.len().min(self.rx.len());
        b[..n].copy_from_slice(&self.rx[..n]);
        self.rx.drain(..n);
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.tx.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ShutdownWrite for Pipe {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        nvelox::tls::server::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Bytes held by an idle server session (TLS 1.2 or 1.3).
fn idle_session_bytes(version: &'static rustls::SupportedProtocolVersion) -> isize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go_compat/certs");
    let chain = CertificateDer::pem_file_iter(dir.join("test-server.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("test-server.key")).unwrap();
    let provider = nvelox::tls::server::provider();
    let mut sc = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    sc.alpn_protocols = vec![b"http/1.1".to_vec()];
    let cc = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer))
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = ClientConnection::new(Arc::new(cc), name).unwrap();
    let mut s = Box::new(TlsSession::server(Arc::new(sc)).unwrap());
    let mut pipe = Pipe::default();
    let shuttle = |client: &mut ClientConnection, pipe: &mut Pipe| {
        while client.wants_write() {
            client.write_tls(&mut pipe.rx).unwrap();
        }
        let mut came = &pipe.tx[..];
        while !came.is_empty() {
            client.read_tls(&mut came).unwrap();
            client.process_new_packets().unwrap();
        }
        pipe.tx.clear();
    };
    for _ in 0..10 {
        shuttle(&mut client, &mut pipe);
        if s.handshake(&mut pipe) == Handshake::Done && !client.is_handshaking() {
            break;
        }
    }
    shuttle(&mut client, &mut pipe);
    assert!(!s.is_handshaking() && !client.is_handshaking());
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
