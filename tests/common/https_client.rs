//! A keep-alive HTTPS client (rustls, in process) for the https and
//! virtual-host tests.
#![allow(dead_code)]

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};

use super::common::WAIT;
use super::origin::{read_response, Got};

type Stream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A keep-alive HTTPS client connection (rustls).
pub struct Tls {
    pub r: BufReader<Stream>,
}

impl Tls {
    /// Connects and completes the handshake as `name` (verified against
    /// the test CA).
    pub fn connect(port: u16, cfg: Arc<rustls::ClientConfig>, name: &str) -> Result<Tls, String> {
        Tls::connect_after(port, cfg, name, b"")
    }

    /// [`Tls::connect`], writing `prefix` (a PROXY header) first in clear.
    pub fn connect_after(
        port: u16,
        cfg: Arc<rustls::ClientConfig>,
        name: &str,
        prefix: &[u8],
    ) -> Result<Tls, String> {
        let mut conn =
            rustls::ClientConnection::new(cfg, ServerName::try_from(name.to_string()).unwrap())
                .map_err(|e| e.to_string())?;
        let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(WAIT)).unwrap();
        sock.write_all(prefix).map_err(|e| e.to_string())?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).map_err(|e| e.to_string())?;
        }
        Ok(Tls {
            r: BufReader::new(rustls::StreamOwned::new(conn, sock)),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).unwrap();
    }

    pub fn response(&mut self) -> Got {
        read_response(&mut self.r, false).expect("a response")
    }

    pub fn get(&mut self, path: &str) -> Got {
        self.get_host(path, "a.test")
    }

    pub fn get_host(&mut self, path: &str, host: &str) -> Got {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        self.response()
    }

    pub fn cert(&self) -> CertificateDer<'static> {
        self.r.get_ref().conn.peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    }
}
