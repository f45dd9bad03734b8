//! An HTTPS origin (rustls, in process) for the `backend_tls` tests:
//! answers every request `200 NAME:TARGET` with keep-alive, records each
//! request and what each TLS connection looked like (SNI, ALPN, client
//! certificate), ends idle connections with close_notify.
#![allow(dead_code)]

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;

use super::certs::{chain, provider};
use super::common::{payload, WAIT};
use super::origin::{ok, read_request, Seen};

/// What a server saw of one TLS connection.
#[derive(Clone, Debug, Default)]
pub struct ConnInfo {
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
    pub client_cert: bool,
    /// The handshake completed.
    pub ok: bool,
    /// The server ended it: close_notify sent (the FIN follows at once).
    pub closed: bool,
}

/// An HTTPS origin: answers every request `200 NAME:TARGET`, keep-alive;
/// an idle connection is ended with close_notify after `idle`.
pub struct TlsOrigin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    conns: Arc<Mutex<Vec<ConnInfo>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

impl TlsOrigin {
    /// Serves with `dir/CERT.pem`; `require_client`: a client certificate
    /// signed by the test CA is required.
    pub fn start(dir: &Path, cert: &str, name: &'static str, require_client: bool) -> TlsOrigin {
        TlsOrigin::start_idle(dir, cert, name, require_client, WAIT)
    }

    pub fn start_idle(
        dir: &Path,
        cert: &str,
        name: &'static str,
        require_client: bool,
        idle: Duration,
    ) -> TlsOrigin {
        let key = PrivateKeyDer::from_pem_file(dir.join(format!("{cert}.key"))).unwrap();
        let b = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let b = if require_client {
            let mut roots = rustls::RootCertStore::empty();
            for c in chain(&dir.join("ca.pem")) {
                roots.add(c).unwrap();
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            b.with_client_cert_verifier(v)
        } else {
            b.with_no_client_auth()
        };
        let mut cfg = b
            .with_single_cert(chain(&dir.join(format!("{cert}.pem"))), key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let cfg = Arc::new(cfg);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let o = TlsOrigin {
            addr,
            seen: Arc::default(),
            conns: Arc::default(),
            stop: Arc::default(),
        };
        let (seen, conns, stop) = (
            Arc::clone(&o.seen),
            Arc::clone(&o.conns),
            Arc::clone(&o.stop),
        );
        thread::spawn(move || {
            for s in l.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = s else { continue };
                let (cfg, seen, conns) = (Arc::clone(&cfg), Arc::clone(&seen), Arc::clone(&conns));
                thread::spawn(move || serve(s, cfg, name, idle, &seen, &conns));
            }
        });
        o
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn conns(&self) -> Vec<ConnInfo> {
        self.conns.lock().unwrap().clone()
    }
}

fn serve(
    mut s: TcpStream,
    cfg: Arc<rustls::ServerConfig>,
    name: &str,
    idle: Duration,
    seen: &Mutex<Vec<Seen>>,
    conns: &Mutex<Vec<ConnInfo>>,
) {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut conn = rustls::ServerConnection::new(cfg).unwrap();
    let k = {
        let mut c = conns.lock().unwrap();
        c.push(ConnInfo::default());
        c.len() - 1
    };
    while conn.is_handshaking() {
        if conn.complete_io(&mut s).is_err() {
            return;
        }
    }
    conns.lock().unwrap()[k] = ConnInfo {
        sni: conn.server_name().map(str::to_string),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        client_cert: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
        ok: true,
        closed: false,
    };
    s.set_read_timeout(Some(idle)).unwrap();
    let mut r = BufReader::new(rustls::StreamOwned::new(conn, s));
    while let Some(req) = read_request(&mut r) {
        if req.header("upgrade").is_some() {
            // A tunnel: 101, then every byte echoed until the end.
            let tls = r.get_mut();
            let head =
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";
            if tls.write_all(head).is_err() {
                return;
            }
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut r, &mut buf) {
                if n == 0 || r.get_mut().write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            return;
        }
        let answer = match req.target.strip_prefix("/big/") {
            // `/big/N`: N bytes of the test payload (seed 7).
            Some(n) => ok(&payload(n.parse().unwrap(), 7)),
            None => ok(format!("{name}:{}", req.target).as_bytes()),
        };
        seen.lock().unwrap().push(req);
        if r.get_mut().write_all(&answer).is_err() {
            return;
        }
    }
    // Idle (or the client left): close_notify, then the FIN.
    let tls = r.get_mut();
    tls.conn.send_close_notify();
    let _ = tls.flush();
    conns.lock().unwrap()[k].closed = true;
}
