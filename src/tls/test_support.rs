//! Test support, not part of nvelox's interface (hidden from the docs): a
//! [`TlsSession`] driven against a rustls peer in memory, shared by the
//! session's unit tests, `tests/tls_idle_memory.rs` and the `tls_session`
//! fuzz oracle (`fuzz/fuzz_targets/tls_session_check.rs`, also run by
//! `tests/tls_session_fuzz.rs`).
//!
//! Owns: an in-memory non-blocking socket ([`MemSocket`]), the test
//! certificate and the configurations made with it, moving records
//! between a rustls peer and that socket ([`shuttle`]) and a handshake
//! driven step by step ([`handshake`]). Uses rustls only (the `tls`
//! feature's dependency), no dev-dependency; nothing in nvelox calls it,
//! so the binary does not link it. Does not own any check of the session
//! (the tests and the fuzz oracle do those).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, Connection, ServerConfig, SupportedProtocolVersion};

use super::client::NoVerification;
use super::{Handshake, TlsSession};
use crate::tcp::relay::ShutdownWrite;

/// The test server certificate (for `localhost`) and its key.
pub const CERT_PEM: &[u8] = include_bytes!("../../tests/go_compat/certs/test-server.pem");
pub const KEY_PEM: &[u8] = include_bytes!("../../tests/go_compat/certs/test-server.key");

/// A non-blocking socket in memory. `rx` is what the peer sent (the
/// session reads it; then `Ok(0)` if `fin`, else `WouldBlock`), `tx` what
/// the session wrote: a write takes at most `chunk` bytes and leaves at
/// most `room` bytes waiting in `tx` (a peer that does not read), and
/// fails once `shut`.
pub struct MemSocket {
    pub rx: VecDeque<u8>,
    pub tx: Vec<u8>,
    pub chunk: usize,
    pub room: usize,
    pub fin: bool,
    pub shut: bool,
}

impl Default for MemSocket {
    fn default() -> MemSocket {
        MemSocket {
            rx: VecDeque::new(),
            tx: Vec::new(),
            chunk: usize::MAX,
            room: usize::MAX,
            fin: false,
            shut: false,
        }
    }
}

impl MemSocket {
    pub fn new() -> MemSocket {
        MemSocket::default()
    }
}

impl Read for MemSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.rx.is_empty() {
            return if self.fin {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(self.rx.len());
        for (b, x) in buf.iter_mut().zip(self.rx.drain(..n)) {
            *b = x;
        }
        Ok(n)
    }
}

impl Write for MemSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.shut {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = buf
            .len()
            .min(self.chunk)
            .min(self.room.saturating_sub(self.tx.len()));
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.tx.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ShutdownWrite for MemSocket {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shut = true;
        Ok(())
    }
}

static TLS12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
static TLS13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

/// TLS 1.2 only, or TLS 1.3 only.
pub fn only(tls12: bool) -> &'static [&'static SupportedProtocolVersion] {
    if tls12 {
        &TLS12
    } else {
        &TLS13
    }
}

/// A server with nvelox's provider and the test certificate, offering
/// `versions` and ALPN `http/1.1` (default session cache: TLS 1.3
/// tickets are sent).
pub fn server_config(versions: &[&'static SupportedProtocolVersion]) -> Arc<ServerConfig> {
    server_config_with_chain(versions, 1)
}

/// As [`server_config`], the certificate sent `copies` times in its chain
/// (a large Certificate message).
pub fn server_config_with_chain(
    versions: &[&'static SupportedProtocolVersion],
    copies: usize,
) -> Arc<ServerConfig> {
    let one: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(CERT_PEM)
        .map(|c| c.expect("test certificate"))
        .collect();
    let chain = (0..copies).flat_map(|_| one.clone()).collect();
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM).expect("test key");
    let mut c = ServerConfig::builder_with_provider(super::server::provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("test certificate");
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

/// A client with `provider`, offering `versions` and ALPN `http/1.1`,
/// that takes any server certificate (signatures are still checked).
/// Not yet in an `Arc`, for callers that set more.
pub fn client_config_with(
    provider: Arc<CryptoProvider>,
    versions: &[&'static SupportedProtocolVersion],
) -> ClientConfig {
    let any = Arc::new(NoVerification(provider.clone()));
    let mut c = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(any)
        .with_no_client_auth();
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    c
}

/// [`client_config_with`] nvelox's provider.
pub fn client_config(versions: &[&'static SupportedProtocolVersion]) -> Arc<ClientConfig> {
    Arc::new(client_config_with(super::server::provider(), versions))
}

/// The name the test certificate is for.
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a valid name")
}

/// Moves `peer`'s records to the session (`sock.rx`) and what the
/// session wrote (`sock.tx`) to `peer`; the plaintext `peer` received.
/// Panics if `peer` refuses what came (use in tests of well-formed
/// traffic).
pub fn shuttle(peer: &mut Connection, sock: &mut MemSocket) -> Vec<u8> {
    let mut out = Vec::new();
    while peer.wants_write() {
        peer.write_tls(&mut out).expect("write to a Vec");
    }
    sock.rx.extend(out);
    let mut came = &sock.tx[..];
    let mut plain = Vec::new();
    while !came.is_empty() {
        peer.read_tls(&mut came).expect("read from a slice");
        peer.process_new_packets()
            .expect("the peer took our records");
        let _ = peer.reader().read_to_end(&mut plain);
    }
    sock.tx.clear();
    plain
}

/// Handshake steps of `ours` against `peer` until both are done, `peer`'s
/// records delivered `step` bytes per step; `each` sees the session after
/// every step. `None` if it has not ended after 100,000 steps. Panics if
/// a step fails: a real handshake must not.
pub fn handshake(
    peer: &mut Connection,
    mut ours: TlsSession,
    sock: &mut MemSocket,
    step: usize,
    mut each: impl FnMut(&TlsSession),
) -> Option<TlsSession> {
    let mut hold = Vec::new();
    for _ in 0..100_000 {
        while peer.wants_write() {
            peer.write_tls(&mut hold).expect("write to a Vec");
        }
        let n = step.min(hold.len());
        sock.rx.extend(hold.drain(..n));
        let st = ours.handshake(sock);
        each(&ours);
        if let Handshake::Failed(why) = st {
            panic!("a real handshake failed: {why}");
        }
        let mut came = &sock.tx[..];
        while !came.is_empty() {
            peer.read_tls(&mut came).expect("read from a slice");
            peer.process_new_packets()
                .expect("the peer took our records");
        }
        sock.tx.clear();
        if st == Handshake::Done && !peer.is_handshaking() && hold.is_empty() {
            return Some(ours);
        }
    }
    None
}
