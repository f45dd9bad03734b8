//! A TCP socket's plaintext: the socket itself, or the socket seen through
//! its TLS session.
//!
//! Owns: the one dispatch between the two that the TCP relay
//! (`tcp/relay_tls.rs`) and the HTTP shell's client and server streams
//! (`http_proxy/client.rs`, `http_proxy/server_stream.rs`) read, write,
//! shut down and ask about short reads through. Does not own the socket,
//! the session (`session`) or any buffer.

use std::io::{self, Read, Write};

use mio::net::TcpStream;

use super::{TlsIo, TlsSession};
use crate::tcp::relay::{Readiness, ShortRead, ShortReadMeans, ShutdownWrite};

/// One side of a connection as a plaintext stream.
pub enum Plaintext<'a> {
    Plain(&'a mut TcpStream),
    Tls(TlsIo<'a, TcpStream>),
}

impl<'a> Plaintext<'a> {
    /// `sock`, through `tls` when it has a session.
    pub fn of(sock: &'a mut TcpStream, tls: Option<&'a mut TlsSession>) -> Plaintext<'a> {
        match tls {
            Some(t) => Plaintext::Tls(t.io(sock)),
            None => Plaintext::Plain(sock),
        }
    }
}

impl Read for Plaintext<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Plaintext::Plain(s) => s.read(buf),
            Plaintext::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Plaintext<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Plaintext::Plain(s) => s.write(buf),
            Plaintext::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Plaintext::Plain(s) => s.flush(),
            Plaintext::Tls(t) => t.flush(),
        }
    }
}

impl ShutdownWrite for Plaintext<'_> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Plaintext::Plain(s) => s.shutdown_write(),
            Plaintext::Tls(t) => t.shutdown_write(),
        }
    }
}

impl ShortRead for Plaintext<'_> {
    fn short_read(&self, ready: &Readiness) -> ShortReadMeans {
        match self {
            Plaintext::Plain(s) => s.short_read(ready),
            Plaintext::Tls(t) => t.session.short_read(ready),
        }
    }
}
