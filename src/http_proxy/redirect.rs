//! A request whose route has no backend to go to: a route `redirect`
//! (answered here, no server contacted) or no route at all (404).
//!
//! The template and the reply's bytes are `http::redirect`'s; the reply
//! goes out like every generated one ([`HttpProxy::reply_located`]), so the
//! connection stays open when the session says it may.

use reactor::Ctx;

use super::{HttpId, HttpProxy};
use crate::config::{BackendId, HttpListenerPlan, Routed};
use crate::events::Loop;
use crate::http::head::RequestHead;
use crate::http::redirect::RequestFacts;

/// A redirect to send: its status and `Location`.
pub(super) type Redirecting = Option<(u16, Vec<u8>)>;

/// Where a request goes: a backend, or (with `None`) a redirect or 404.
pub(super) fn route(
    hp: &HttpListenerPlan,
    head: &RequestHead,
    tls: bool,
) -> (Option<BackendId>, Redirecting) {
    match hp.route(head.host_name(), head.path()) {
        Routed::Backend(b) => (Some(b), None),
        Routed::Redirect(r) => (
            None,
            Some((r.code, r.location(&RequestFacts::of(head, tls)))),
        ),
        Routed::NoRoute => (None, None),
    }
}

impl HttpProxy {
    /// Answers a request [`route`] gave no backend: its redirect, or 404.
    pub(super) fn no_backend(
        &mut self,
        ctx: &mut Ctx<impl Loop>,
        id: HttpId,
        redirect: Redirecting,
    ) {
        match redirect {
            Some((code, location)) => {
                self.reply_located(ctx, id, code, "redirect", Some(&location))
            }
            None => self.reply(ctx, id, 404, "no route"),
        }
    }
}
