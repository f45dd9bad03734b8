//! `accept_proxy` on a TCP listener: reading the client's PROXY header.
//!
//! Owns: reading what the client sent so far (at most
//! [`PROXY_HEADER_MAX`] bytes; [`read_intake`] reads ClientHellos too)
//! and judging it ([`judge`], pure): complete
//! (the original endpoints are recorded, bytes past the header are kept
//! for the server), incomplete, or refused with a reason that is logged.
//! Also writes our own PROXY header for a connection's server
//! ([`Conn::proxy_header`]). Does not own parsing (`proxy_protocol/`) or
//! what happens next (the state machine in `phase.rs` gets
//! `HeaderComplete` / `HeaderRejected`).

use std::io::Read;
use std::net::SocketAddr;

use reactor::{Ctx, IoStatus};

use super::conn::Conn;
use super::phase::Event;
use super::relay::Readiness;
use super::{show, ConnId, TcpProxy};
use crate::config::{AcceptProxy, ProxyVersion};
use crate::events::Loop;
use crate::proxy_protocol::{Accept, Command, Header, Parsed, Transport, Version};

impl Conn {
    /// Our PROXY header for this connection's server (empty when none is sent).
    pub(super) fn proxy_header(&self, version: Option<ProxyVersion>) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(version) = version {
            let (src, dst) = match self.origin {
                Some(o) => o,
                None => (self.peer, self.client.local_addr().unwrap_or(self.peer)),
            };
            let v = match version {
                ProxyVersion::V1 => Version::V1,
                ProxyVersion::V2 => Version::V2,
            };
            if let Err(e) = Header::proxy(v, Transport::Stream, src, dst).emit(&mut out) {
                log::warn!("cannot write PROXY header for {}: {e}", show(&src));
                out.clear();
            }
        }
        out
    }
}

/// The most we buffer while waiting for a complete PROXY header.
pub const PROXY_HEADER_MAX: usize = 4096;

/// Reads what a client sends before anything is relayed (a PROXY header;
/// a ClientHello for `sni_routes` and https virtual hosts) into `buf`,
/// while the socket is readable and `buf` holds less than `limit` bytes.
/// True when the client closed or reset the connection: what came so far
/// is all there will be.
pub fn read_intake(
    sock: &mut impl Read,
    ready: &mut Readiness,
    buf: &mut Vec<u8>,
    limit: usize,
) -> bool {
    let mut chunk = [0u8; 2048];
    while ready.readable && buf.len() < limit {
        let room = (limit - buf.len()).min(chunk.len());
        match reactor::io::read(sock, &mut chunk[..room]) {
            IoStatus::Progress(n) => buf.extend_from_slice(&chunk[..n]),
            IoStatus::WouldBlock => ready.readable = false,
            IoStatus::Closed | IoStatus::Error(_) => return true,
        }
    }
    false
}

/// What the bytes received so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Intake {
    /// The header is complete. `origin` is the original client and
    /// destination (`None` for `LOCAL` or `UNKNOWN`); `consumed` bytes
    /// belong to the header, the rest is the client's payload.
    Complete {
        origin: Option<(SocketAddr, SocketAddr)>,
        consumed: usize,
    },
    /// A valid prefix: wait for more.
    NeedMore,
    /// Close the client; the reason goes to the log.
    Refused(String),
}

/// Judges `buf`, the client's first bytes. `closed`: the client sent its
/// FIN (or an error) after them, so nothing more will come.
pub fn judge(buf: &[u8], closed: bool, accept: Accept) -> Intake {
    match Header::parse(buf, accept) {
        Ok(Parsed::Complete { header, consumed }) => Intake::Complete {
            origin: match header.command {
                Command::Proxy => header.addresses,
                Command::Local => None,
            },
            consumed,
        },
        Ok(Parsed::Incomplete { .. }) if closed => {
            Intake::Refused("client closed before its PROXY header ended".to_string())
        }
        Ok(Parsed::Incomplete { .. }) if buf.len() >= PROXY_HEADER_MAX => {
            Intake::Refused("PROXY header too long".to_string())
        }
        Ok(Parsed::Incomplete { .. }) => Intake::NeedMore,
        Err(e) => Intake::Refused(e.to_string()),
    }
}

pub(crate) fn accepted_versions(a: AcceptProxy) -> Accept {
    match a {
        AcceptProxy::V1 => Accept::V1,
        AcceptProxy::V2 => Accept::V2,
        AcceptProxy::Any | AcceptProxy::Off => Accept::Any,
    }
}

impl TcpProxy {
    /// Reads what the client sent so far and, once the PROXY header is
    /// complete, records the original endpoints and lets the connection
    /// go on. Garbage closes the connection with a log line.
    pub(super) fn read_header(&mut self, ctx: &mut Ctx<impl Loop>, id: ConnId) {
        let Some(c) = self.conns.get_mut(id.0) else {
            return;
        };
        let accept = accepted_versions(c.rt.plan.listener(c.listener).accept_proxy);
        let closed = read_intake(
            &mut c.client,
            &mut c.client_ready,
            &mut c.header,
            PROXY_HEADER_MAX,
        );
        let event = match judge(&c.header, closed, accept) {
            Intake::NeedMore => return,
            Intake::Complete { origin, consumed } => {
                if origin.is_some() {
                    c.origin = origin;
                }
                c.early = c.header.split_off(consumed);
                c.header = Vec::new();
                // The header's client is the one the access rules judge.
                let client = c.client();
                let lp = c.rt.plan.listener(c.listener);
                match c.rt.access(c.listener).admit(
                    ctx.loop_index(),
                    &lp.access,
                    client.ip(),
                    ctx.now(),
                    false,
                ) {
                    Ok(a) => {
                        c.admitted = Some(a);
                        Event::HeaderComplete
                    }
                    Err(why) => {
                        let listener = c.listener;
                        self.warn_denied(ctx.now(), listener, &client, why);
                        Event::Denied
                    }
                }
            }
            Intake::Refused(why) => {
                if let Some(n) = self.header_warn.allow(ctx.now()) {
                    log::warn!(
                        "listener {}: closing {}: {why} ({n} similar messages suppressed)",
                        c.rt.plan.listener(c.listener).name,
                        show(&c.peer)
                    );
                }
                Event::HeaderRejected
            }
        };
        self.step(ctx, id, event);
        // Bytes past the header may already hold the ClientHello or the
        // start of the TLS handshake: no new edge will announce them.
        self.continue_intake(ctx, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &[u8] = b"PROXY TCP4 192.0.2.1 198.51.100.2 40000 443\r\n";

    #[test]
    fn a_complete_header_gives_the_origin_and_where_the_payload_starts() {
        let mut buf = V1.to_vec();
        buf.extend_from_slice(b"GET /");
        let origin = Some((
            "192.0.2.1:40000".parse().unwrap(),
            "198.51.100.2:443".parse().unwrap(),
        ));
        assert_eq!(
            judge(&buf, false, Accept::Any),
            Intake::Complete {
                origin,
                consumed: V1.len()
            }
        );
        // Bytes after the header do not matter, nor does a FIN after it.
        assert_eq!(
            judge(V1, true, Accept::V1),
            Intake::Complete {
                origin,
                consumed: V1.len()
            }
        );
    }

    #[test]
    fn a_prefix_waits_unless_the_client_closed_or_it_is_too_long() {
        let half = &V1[..10];
        assert_eq!(judge(half, false, Accept::Any), Intake::NeedMore);
        assert!(
            matches!(judge(half, true, Accept::Any), Intake::Refused(w) if w.contains("closed"))
        );
        assert_eq!(judge(b"", false, Accept::Any), Intake::NeedMore);
    }

    #[test]
    fn garbage_or_the_wrong_version_is_refused() {
        assert!(matches!(
            judge(b"GET / HTTP/1.1\r\n\r\n", false, Accept::Any),
            Intake::Refused(_)
        ));
        assert!(matches!(judge(V1, false, Accept::V2), Intake::Refused(_)));
    }

    #[test]
    fn unknown_and_local_carry_no_origin() {
        let unknown = b"PROXY UNKNOWN\r\nrest";
        assert_eq!(
            judge(unknown, false, Accept::V1),
            Intake::Complete {
                origin: None,
                consumed: 15
            }
        );
    }

    #[test]
    fn the_setting_maps_to_the_accepted_versions() {
        assert_eq!(accepted_versions(AcceptProxy::V1), Accept::V1);
        assert_eq!(accepted_versions(AcceptProxy::V2), Accept::V2);
        assert_eq!(accepted_versions(AcceptProxy::Any), Accept::Any);
    }

    /// Yields its chunks one per read, then `WouldBlock` or the end.
    struct Chunks(Vec<Vec<u8>>, bool);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let Some(c) = self.0.first_mut() else {
                return if self.1 {
                    Ok(0)
                } else {
                    Err(std::io::ErrorKind::WouldBlock.into())
                };
            };
            let n = c.len().min(buf.len());
            buf[..n].copy_from_slice(&c[..n]);
            c.drain(..n);
            if c.is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }
    }

    #[test]
    fn intake_reads_until_it_would_block_the_limit_or_the_end() {
        let readable = || Readiness {
            readable: true,
            ..Readiness::default()
        };
        let (mut buf, mut ready) = (Vec::new(), readable());
        let mut src = Chunks(vec![b"PROXY ".to_vec(), b"TCP4".to_vec()], false);
        assert!(!read_intake(&mut src, &mut ready, &mut buf, 100));
        assert_eq!(buf, b"PROXY TCP4");
        assert!(!ready.readable, "waits for the next edge");
        // Never past the limit, and the rest stays in the socket.
        let (mut buf, mut ready) = (Vec::new(), readable());
        let mut src = Chunks(vec![vec![7u8; 5000]], false);
        assert!(!read_intake(&mut src, &mut ready, &mut buf, 4096));
        assert_eq!(buf.len(), 4096);
        assert!(ready.readable && src.0[0].len() == 904);
        // The client closed after its bytes.
        let (mut buf, mut ready) = (Vec::new(), readable());
        let mut src = Chunks(vec![b"\x16\x03".to_vec()], true);
        assert!(read_intake(&mut src, &mut ready, &mut buf, 100));
        assert_eq!(buf, b"\x16\x03");
    }
}
