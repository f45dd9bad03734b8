//! One `listeners[]` entry (its own keys), the checks across listeners
//! (duplicate names, overlapping binds), and linking each listener to its
//! backend once every backend is known (`link`).
//!
//! Go Nvelox's `backend` / `default_backend` and `timeouts` rules live in
//! `go.rs`.

use std::collections::HashMap;

use super::super::compat::is_later_protocol;
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
        // `http` / `https` are refused by the Go-only key scan (not yet).
        let later_protocol = text(l.protocol.as_ref()).is_some_and(is_later_protocol);
        let protocol = if later_protocol {
            Protocol::Tcp
        } else {
            self.choice(
                f,
                &key(&p, "protocol"),
                l.protocol.as_ref(),
                &[("tcp", Protocol::Tcp), ("udp", Protocol::Udp)],
                Protocol::Tcp,
            )
        };
        let (backend_name, backend_key) = self.listener_backend(f, &p, &l);
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
        let mut idle_timeout = self.duration(
            f,
            &key(&p, "idle_timeout"),
            l.idle_timeout.as_ref(),
            idle_default,
            false,
            MAX_IDLE_TIMEOUT,
        );
        let mut connect = None;
        if let Some(t) = &l.timeouts {
            let (idle, c) =
                self.listener_timeouts(f, &p, t, later_protocol, l.idle_timeout.is_some());
            idle_timeout = idle.unwrap_or(idle_timeout);
            connect = c;
        }
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
            later_protocol,
            backend_name,
            backend_key,
            connect,
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
                // http/https listeners may share a bind in Go (name-based
                // virtual hosts); they are refused anyway, so say nothing.
                let either_later = l.later_protocol || earlier.later_protocol;
                if !either_later && earlier.protocol == l.protocol && bind.overlaps(other) {
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

    /// Resolves each listener's backend name to an index and builds the
    /// listener plans; applies a listener's Go `timeouts.connect` to its
    /// backend; refuses Go's HTTP-only backend `timeouts.read` on a backend
    /// that a tcp or udp listener uses.
    pub(super) fn link(
        &mut self,
        drafts: Vec<ListenerDraft>,
        backends: &mut [BackendDraft],
        by_name: &HashMap<String, usize>,
    ) -> Vec<ListenerPlan> {
        let mut plans = Vec::with_capacity(drafts.len());
        let mut read_refused = vec![false; backends.len()];
        for l in drafts {
            let Some(name) = l.backend_name.as_deref() else {
                continue;
            };
            let path = key(&l.origin.path, l.backend_key);
            let Some(&backend) = by_name.get(name) else {
                let mut known: Vec<&str> = by_name.keys().map(String::as_str).collect();
                known.sort_unstable();
                let known = if known.is_empty() {
                    "no backends are defined".to_string()
                } else {
                    format!("defined backends: {}", known.join(", "))
                };
                self.error(
                    l.origin.file,
                    &path,
                    format!("unknown backend {name:?} ({known})"),
                );
                continue;
            };
            if let Some(c) = &l.connect {
                self.listener_connect(&l, c, &mut backends[backend]);
            }
            if l.later_protocol {
                continue;
            }
            let b = &backends[backend];
            if let (Some(read), false) = (&b.read_timeout, read_refused[backend]) {
                read_refused[backend] = true;
                let (file, read) = (b.origin.file, read.clone());
                let who = l.name.as_deref().unwrap_or("?");
                self.error(
                    file,
                    &read,
                    format!(
                        "not supported by nvelox: timeouts.read on a backend that {} listener {who:?} uses (the wait for an HTTP response: Go Nvelox ignores it for tcp/udp too, so remove it; the relay's timeout is the listener's idle_timeout)",
                        proto_name(l.protocol)
                    ),
                );
            }
            let b = &backends[backend].plan;
            if l.protocol == Protocol::Udp && b.send_proxy == Some(ProxyVersion::V1) {
                self.error(
                    l.origin.file,
                    &path,
                    format!(
                        "backend {name:?} sends PROXY v1, which is TCP only; use send_proxy: v2 for UDP listeners"
                    ),
                );
            }
            if let (Some(bind), Some(name)) = (l.bind, l.name) {
                plans.push(ListenerPlan {
                    name,
                    bind,
                    protocol: l.protocol,
                    backend: BackendId(backend),
                    zero_copy: l.zero_copy,
                    accept_proxy: l.accept_proxy,
                    idle_timeout: l.idle_timeout,
                    max_connections: l.max_connections,
                    reuseport: l.reuseport,
                });
            }
        }
        plans
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}
