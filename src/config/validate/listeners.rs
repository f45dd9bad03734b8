//! One `listeners[]` entry (its own keys), the checks across listeners
//! (duplicate names, overlapping binds), and linking each listener to its
//! backend once every backend is known (`link`).
//!
//! Go Nvelox's `backend` / `default_backend` and `timeouts` rules live in
//! `go.rs`.

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
        // `https` is HTTP mode with the `tls:` block (required for it).
        let https = text(l.protocol.as_ref()).is_some_and(|p| p.eq_ignore_ascii_case("https"));
        let protocol = if https {
            Protocol::Http
        } else {
            self.choice(
                f,
                &key(&p, "protocol"),
                l.protocol.as_ref(),
                &[
                    ("tcp", Protocol::Tcp),
                    ("udp", Protocol::Udp),
                    ("http", Protocol::Http),
                    ("https", Protocol::Http),
                ],
                Protocol::Tcp,
            )
        };
        let (server_names, default_server) = self.vhost_keys(f, &p, &l, protocol);
        let http = if protocol == Protocol::Http {
            Some(self.http_listener(f, &p, &l))
        } else {
            self.http_keys_on_stream_or_datagram(f, &p, &l, protocol);
            None
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
            Protocol::Http => DEFAULT_HTTP_IDLE_TIMEOUT,
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
        let mut http_timeouts = HttpListenerTimeouts {
            head: Some(DEFAULT_HTTP_HEAD_TIMEOUT),
            write: Some(DEFAULT_HTTP_WRITE_TIMEOUT),
        };
        if let Some(t) = &l.timeouts {
            let is_http = protocol == Protocol::Http;
            let (idle, c, h) = self.listener_timeouts(f, &p, t, is_http, l.idle_timeout.is_some());
            idle_timeout = idle.unwrap_or(idle_timeout);
            connect = c;
            http_timeouts = h;
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
        let mut access = self.access(f, &p, &l);
        access.per_request = protocol == Protocol::Http;
        let has_routes = l.sni_routes.is_some();
        let sni_routes = l
            .sni_routes
            .map(|r| self.sni_routes(f, &p, r))
            .unwrap_or_default();
        let has_tls = l.tls.is_some();
        let tls = l.tls.and_then(|t| self.tls_block(f, &p, t, https));
        if https && !has_tls {
            self.error(
                f,
                &key(&p, "protocol"),
                "protocol: https needs a tls: block (cert and key)",
            );
        }
        if protocol == Protocol::Http && !https && has_tls {
            self.error(
                f,
                &key(&p, "tls"),
                "tls: on an http listener: write protocol: https for HTTP over TLS",
            );
        }
        if protocol == Protocol::Udp && has_tls {
            self.error(f, &key(&p, "tls"), "tls is for tcp and https listeners");
        }
        if protocol != Protocol::Tcp && has_routes {
            self.error(
                f,
                &key(&p, "sni_routes"),
                "sni_routes is for tcp listeners only (https listeners choose by SNI with server_names)",
            );
        }
        if has_routes && has_tls {
            self.error(
                f,
                &key(&p, "sni_routes"),
                "sni_routes route TLS passthrough (nvelox does not decrypt); with tls: the listener terminates TLS: use one or the other",
            );
        }
        if has_tls && zero_copy {
            self.error(
                f,
                &key(&p, "zero_copy"),
                "zero_copy (splice) cannot move TLS records that nvelox decrypts; remove zero_copy or tls",
            );
        }
        ListenerDraft {
            sni_routes,
            tls,
            origin,
            name,
            bind,
            protocol,
            https,
            server_names,
            default_server,
            vhosts: None,
            socket_of: None,
            http,
            http_timeouts,
            backend_name,
            backend_key,
            connect,
            zero_copy,
            accept_proxy,
            idle_timeout,
            max_connections,
            reuseport,
            access,
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
                // http/https listeners with the very same bind are a
                // group of virtual hosts (`vhosts.rs`). tcp and http both
                // bind stream sockets.
                let vhosts = l.protocol == Protocol::Http
                    && earlier.protocol == Protocol::Http
                    && bind == other;
                let same_kind = earlier.protocol.is_stream() == l.protocol.is_stream();
                if !vhosts && same_kind && bind.overlaps(other) {
                    let proto = if earlier.https {
                        "https"
                    } else {
                        earlier.protocol.name()
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

    /// Resolves each listener's backend names (its `backend`, its routes')
    /// to indexes and builds the listener plans; applies a listener's Go
    /// `timeouts.connect` to its backend; refuses HTTP-only backend keys
    /// (`timeouts.read`, `retry`, `keepalive`) on a backend that a tcp or
    /// udp listener uses.
    pub(super) fn link(
        &mut self,
        drafts: Vec<ListenerDraft>,
        backends: &mut [BackendDraft],
        by_name: &HashMap<String, usize>,
    ) -> Vec<ListenerPlan> {
        let mut plans = Vec::with_capacity(drafts.len());
        let mut http_only_refused = vec![false; backends.len()];
        let mut tls_refused = vec![false; backends.len()];
        for l in drafts {
            let default = match l.backend_name.as_deref() {
                Some(name) => {
                    let path = key(&l.origin.path, l.backend_key);
                    match self.backend_index(l.origin.file, &path, name, by_name) {
                        Some(b) => Some(b),
                        None => continue,
                    }
                }
                None => None,
            };
            let mut routes = Vec::new();
            let mut routes_ok = true;
            for r in l.http.iter().flat_map(|h| &h.routes) {
                let b = match &r.backend {
                    Some(name) => self.backend_index(l.origin.file, &r.path, name, by_name),
                    None => None,
                };
                if r.backend.is_some() && b.is_none() {
                    routes_ok = false;
                    continue;
                }
                let action = match (&r.redirect, b) {
                    (Some(x), _) => RouteAction::Redirect(x.clone()),
                    (None, Some(b)) => RouteAction::Backend(BackendId(b)),
                    (None, None) => continue,
                };
                routes.push(RoutePlan {
                    host: r.host.clone(),
                    path_prefix: r.path_prefix.clone(),
                    action,
                });
            }
            // A listener without `backend` has routes (else `backend` was
            // required): connect timeouts go to its default backend only.
            let first_routed = l.http.iter().flat_map(|h| &h.routes).find_map(|r| {
                let name = r.backend.as_ref()?;
                by_name.get(name).copied()
            });
            let backend = default.or(first_routed);
            // Go: an http/https listener of redirects only needs no backend
            // (a request no route matches gets 404). Others have one, or
            // were refused for lacking it.
            let redirects_only = l.protocol == Protocol::Http
                && !routes.is_empty()
                && routes
                    .iter()
                    .all(|r| matches!(r.action, RouteAction::Redirect(_)));
            if backend.is_none() && !(routes_ok && redirects_only) {
                continue;
            }
            if let (Some(c), Some(d)) = (&l.connect, default) {
                self.listener_connect(&l, c, &mut backends[d]);
            }
            if !routes_ok {
                continue;
            }
            if let Some(backend) =
                backend.filter(|&b| l.protocol != Protocol::Http && !http_only_refused[b])
            {
                http_only_refused[backend] = true;
                let b = &backends[backend];
                let file = b.origin.file;
                let keys = b.http_only.clone();
                let who = l.name.as_deref().unwrap_or("?");
                for (name, path) in keys {
                    self.error(
                        file,
                        &path,
                        format!(
                            "not supported by nvelox: {name} on a backend that {} listener {who:?} uses (an HTTP setting, meaningless for tcp/udp: remove it{})",
                            l.protocol.name(),
                            match name {
                                "timeouts.read" => "; the relay's timeout is the listener's idle_timeout",
                                "retry" => "; tcp connects are retried by `retries`",
                                _ => "",
                            }
                        ),
                    );
                }
            }
            let udp_backend = backend.filter(|_| l.protocol == Protocol::Udp);
            if let Some(b) = udp_backend
                .map(|b| &backends[b].plan)
                .filter(|b| b.send_proxy == Some(ProxyVersion::V1))
            {
                let path = key(&l.origin.path, l.backend_key);
                let name = &b.name;
                self.error(
                    l.origin.file,
                    &path,
                    format!(
                        "backend {name:?} sends PROXY v1, which is TCP only; use send_proxy: v2 for UDP listeners"
                    ),
                );
            }
            if l.protocol == Protocol::Udp {
                let used = routes
                    .iter()
                    .filter_map(|r| match r.action {
                        RouteAction::Backend(b) => Some(b.0),
                        RouteAction::Redirect(_) => None,
                    })
                    .chain(default);
                for bi in used.collect::<Vec<_>>() {
                    if backends[bi].plan.tls.is_none() || tls_refused[bi] {
                        continue;
                    }
                    tls_refused[bi] = true;
                    let (file, path) = (backends[bi].origin.file, backends[bi].origin.path.clone());
                    let who = l.name.as_deref().unwrap_or("?");
                    self.error(
                        file,
                        &key(&path, "backend_tls"),
                        format!(
                            "backend_tls on a backend that {} listener {who:?} uses: TLS to servers is for tcp, http and https listeners",
                            l.protocol.name()
                        ),
                    );
                }
            }
            let mut sni_routes = Vec::new();
            for r in &l.sni_routes {
                match by_name.get(&r.backend) {
                    Some(&b) => sni_routes.push(SniRoute {
                        name: r.name.clone(),
                        backend: BackendId(b),
                    }),
                    None => self.error(
                        l.origin.file,
                        &r.path,
                        format!("unknown backend {:?}", r.backend),
                    ),
                }
            }
            let http = l.http.map(|h| HttpListenerPlan {
                default_backend: default.map(BackendId),
                routes,
                edits: h.edits,
                timeouts: l.http_timeouts,
                max_header_size: h.max_header_size,
                max_body_size: h.max_body_size,
            });
            if let (Some(bind), Some(name)) = (l.bind, l.name) {
                plans.push(ListenerPlan {
                    name,
                    bind,
                    protocol: l.protocol,
                    backend: backend.map(BackendId),
                    zero_copy: l.zero_copy,
                    accept_proxy: l.accept_proxy,
                    idle_timeout: l.idle_timeout,
                    max_connections: l.max_connections,
                    reuseport: l.reuseport,
                    sni_routes,
                    tls: l.tls,
                    http,
                    access: l.access,
                    vhosts: l.vhosts,
                    socket_of: l.socket_of,
                });
            }
        }
        plans
    }

    /// The index of backend `name`, or an error at `path` listing the
    /// defined ones.
    fn backend_index(
        &mut self,
        file: FileId,
        path: &str,
        name: &str,
        by_name: &HashMap<String, usize>,
    ) -> Option<usize> {
        if let Some(&b) = by_name.get(name) {
            return Some(b);
        }
        let mut known: Vec<&str> = by_name.keys().map(String::as_str).collect();
        known.sort_unstable();
        let known = if known.is_empty() {
            "no backends are defined".to_string()
        } else {
            format!("defined backends: {}", known.join(", "))
        };
        self.error(file, path, format!("unknown backend {name:?} ({known})"));
        None
    }
}
