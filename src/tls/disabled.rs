//! Stand-ins for the TLS types in a build without the `tls` feature: empty
//! enums, so the shell compiles unchanged and no TLS value can exist.
//! Does not own anything that runs.

use std::io::{self, Read, Write};

use crate::tcp::relay::{Readiness, ShortRead, ShortReadMeans, ShutdownWrite};

/// No `tls:` block can be loaded without the feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerTls {}

impl ServerTls {
    pub fn session(&self) -> Result<TlsSession, String> {
        match *self {}
    }
}

/// No `backend_tls:` block can be loaded without the feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientTls {}

impl ClientTls {
    pub fn session(&self, _server: &crate::config::ServerPlan) -> Result<TlsSession, String> {
        match *self {}
    }

    pub fn http_session(&self, _server: &crate::config::ServerPlan) -> Result<TlsSession, String> {
        match *self {}
    }

    pub fn id(&self, _server: &crate::config::ServerPlan) -> ClientTlsId {
        match *self {}
    }

    pub fn unusable_host(&self, _host: &str) -> Option<String> {
        match *self {}
    }
}

/// No loaded `backend_tls:` block, so no identity of one.
#[derive(Clone, PartialEq)]
pub enum ClientTlsId {}

/// No TLS connection can exist without the feature.
pub enum TlsSession {}

#[derive(Debug, PartialEq, Eq)]
pub enum Handshake {
    Done,
    Pending,
    Failed(String),
}

pub struct TlsIo<'a, S> {
    pub session: &'a mut TlsSession,
    pub sock: &'a mut S,
}

impl TlsSession {
    pub fn io<'a, S>(&'a mut self, sock: &'a mut S) -> TlsIo<'a, S> {
        TlsIo {
            session: self,
            sock,
        }
    }

    pub fn handshake<S>(&mut self, _sock: &mut S) -> Handshake {
        match *self {}
    }

    pub fn flush<S>(&mut self, _sock: &mut S) -> io::Result<bool> {
        match *self {}
    }

    pub fn feed(&mut self, _early: &[u8]) -> Result<(), String> {
        match *self {}
    }

    pub fn server_name(&self) -> Option<&str> {
        match *self {}
    }

    pub fn peer_gone(&self) -> bool {
        match *self {}
    }

    pub fn cert_rejected(&self) -> bool {
        match *self {}
    }

    pub fn is_handshaking(&self) -> bool {
        match *self {}
    }

    pub fn wants_write(&self) -> bool {
        match *self {}
    }

    pub fn ended(&self) -> bool {
        match *self {}
    }
}

impl ShortRead for TlsSession {
    fn short_read(&self, _ready: &Readiness) -> ShortReadMeans {
        match *self {}
    }
}

impl<S> Read for TlsIo<'_, S> {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        match *self.session {}
    }
}

impl<S> Write for TlsIo<'_, S> {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        match *self.session {}
    }

    fn flush(&mut self) -> io::Result<()> {
        match *self.session {}
    }
}

impl<S> ShutdownWrite for TlsIo<'_, S> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        match *self.session {}
    }
}
