//! One `listeners[]` entry (its own keys), and the checks across listeners:
//! duplicate names and overlapping binds.
//!
//! Resolving `default_backend` to a backend index is done in `mod.rs`,
//! once every backend is known.

use std::collections::HashMap;

use super::super::raw::RawListener;
use super::*;

impl Validator<'_> {
    pub(super) fn listener(&mut self, origin: Origin, l: RawListener) -> ListenerDraft {
        let f = origin.file;
        let p = origin.path.clone();
        let name = self
            .required(f, &p, "name", l.name.as_ref())
            .map(str::to_string);
        let bind =
            self.required(f, &p, "bind", l.bind.as_ref())
                .and_then(|b| match BindSpec::parse(b) {
                    Ok(spec) => Some(spec),
                    Err(e) => {
                        self.error(f, &key(&p, "bind"), e);
                        None
                    }
                });
        let protocol = self.choice(
            f,
            &key(&p, "protocol"),
            l.protocol.as_ref(),
            &[("tcp", Protocol::Tcp), ("udp", Protocol::Udp)],
            Protocol::Tcp,
        );
        let backend_name = self
            .required(f, &p, "default_backend", l.default_backend.as_ref())
            .map(str::to_string);
        let zero_copy = self.flag(f, &key(&p, "zero_copy"), l.zero_copy.as_ref());
        if zero_copy && protocol == Protocol::Udp {
            self.error(
                f,
                &key(&p, "zero_copy"),
                "zero_copy (splice) is for tcp listeners only",
            );
        }
        let accept_path = key(&p, "accept_proxy");
        let accept_proxy = self.choice(
            f,
            &accept_path,
            l.accept_proxy.as_ref(),
            &[
                ("off", AcceptProxy::Off),
                ("false", AcceptProxy::Off),
                ("v1", AcceptProxy::V1),
                ("v2", AcceptProxy::V2),
                ("any", AcceptProxy::Any),
            ],
            AcceptProxy::Off,
        );
        if accept_proxy == AcceptProxy::V1 && protocol == Protocol::Udp {
            self.error(
                f,
                &accept_path,
                "PROXY v1 is TCP only; use v2 (or any) on udp listeners",
            );
        }
        let idle_default = match protocol {
            Protocol::Tcp => DEFAULT_TCP_IDLE_TIMEOUT,
            Protocol::Udp => DEFAULT_UDP_IDLE_TIMEOUT,
        };
        let idle_timeout = self.duration(
            f,
            &key(&p, "idle_timeout"),
            l.idle_timeout.as_ref(),
            idle_default,
            false,
            MAX_IDLE_TIMEOUT,
        );
        let max_connections = self
            .number(
                f,
                &key(&p, "max_connections"),
                l.max_connections.as_ref(),
                1,
                usize::MAX as u64,
            )
            .map(|n| n as usize);
        let reuseport = self.flag(f, &key(&p, "reuseport"), l.reuseport.as_ref());
        ListenerDraft {
            origin,
            name,
            bind,
            protocol,
            backend_name,
            zero_copy,
            accept_proxy,
            idle_timeout,
            max_connections,
            reuseport,
        }
    }

    pub(super) fn duplicate_listener_names(&mut self, drafts: &[ListenerDraft]) {
        let mut first: HashMap<&str, &Origin> = HashMap::new();
        for l in drafts {
            let Some(name) = l.name.as_deref() else {
                continue;
            };
            if let Some(origin) = first.get(name) {
                let msg = format!(
                    "duplicate listener name {name:?} (first defined at {})",
                    self.place(origin)
                );
                self.error(l.origin.file, &key(&l.origin.path, "name"), msg);
            } else {
                first.insert(name, &l.origin);
            }
        }
    }

    pub(super) fn overlapping_binds(&mut self, drafts: &[ListenerDraft]) {
        for (i, l) in drafts.iter().enumerate() {
            let Some(bind) = &l.bind else { continue };
            for earlier in &drafts[..i] {
                let Some(other) = &earlier.bind else { continue };
                if earlier.protocol == l.protocol && bind.overlaps(other) {
                    let proto = match l.protocol {
                        Protocol::Tcp => "tcp",
                        Protocol::Udp => "udp",
                    };
                    let who = match &earlier.name {
                        Some(n) => format!("{proto} listener {n:?}"),
                        None => format!("the {proto} listener"),
                    };
                    let msg = format!(
                        "bind {bind} overlaps {who} (bind {other}, at {})",
                        self.place(&earlier.origin)
                    );
                    self.error(l.origin.file, &key(&l.origin.path, "bind"), msg);
                }
            }
        }
    }
}
