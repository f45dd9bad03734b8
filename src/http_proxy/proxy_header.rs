//! `accept_proxy` on an HTTP listener (`http` or `https`): the client's
//! PROXY header, read before anything else (before the TLS handshake).
//!
//! Owns: peeking at the raw socket (at most [`PROXY_HEADER_MAX`] bytes) and
//! judging the bytes ([`judge`], shared with TCP listeners), then taking
//! exactly the header's bytes off the socket so that what follows (a
//! request, or a ClientHello) stays for the next reader; the header's
//! client becoming the connection's client (access rules, balancing,
//! `X-Forwarded-For`, the access log); the header deadline. Does not own
//! parsing (`proxy_protocol/`) or the access rules (`acl/`).

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use reactor::Ctx;

use super::{HttpId, HttpProxy};
use crate::events::Loop;
use crate::proxy_protocol::Accept;
use crate::tcp::header::{judge, Intake, PROXY_HEADER_MAX};

/// A client that has not sent its whole PROXY header by then is closed
/// (as on TCP listeners).
pub const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection still waiting for its PROXY header.
pub(super) struct AwaitingHeader {
    pub accept: Accept,
    pub due: Instant,
}

impl HttpProxy {
    /// Reads connection `id`'s PROXY header when it still waits for one.
    /// True when the connection may go on (no header expected, or it is
    /// complete and the header's client is admitted); false while it is
    /// incomplete or after it was refused (the connection is closed then).
    pub(super) fn proxy_header_step(&mut self, ctx: &mut Ctx<impl Loop>, id: HttpId) -> bool {
        let now = ctx.now();
        let Some(c) = self.conns.get_mut(id.0) else {
            return false;
        };
        let Some(wait) = c.proxy_header.as_ref() else {
            return true;
        };
        let mut buf = [0u8; PROXY_HEADER_MAX];
        let (seen, closed) = match c.client.tcp().peek(&mut buf) {
            Ok(n) => (n, n == 0),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => (0, true),
        };
        let why = match judge(&buf[..seen], closed, wait.accept) {
            Intake::NeedMore => return false,
            Intake::Refused(why) => why,
            Intake::Complete { origin, consumed } => {
                // The header's bytes are in the socket: take exactly them.
                let mut left = consumed;
                while left > 0 {
                    match c.client.tcp().read(&mut buf[..left]) {
                        Ok(n) if n > 0 => left -= n,
                        _ => break,
                    }
                }
                if left > 0 {
                    self.close(ctx, id, "client reset");
                    return false;
                }
                if let Some((client, _)) = origin {
                    c.peer = client;
                }
                c.proxy_header = None;
                // The header's client is the one the access rules of the
                // accepting listener judge.
                let lp = c.rt.plan.listener(c.owner);
                match c
                    .rt
                    .access(c.owner)
                    .admit(&lp.access, c.peer.ip(), now, false)
                {
                    Ok(a) => {
                        c.admitted = Some(a);
                        return true;
                    }
                    Err(denied) => denied.describe().to_string(),
                }
            }
        };
        if let Some(n) = self.proxy_warn.allow(now) {
            log::warn!(
                "listener {}: closing {}: {why} ({n} similar messages suppressed)",
                c.rt.plan.listener(c.owner).name,
                c.peer
            );
        }
        self.close(ctx, id, "PROXY header refused");
        false
    }
}
