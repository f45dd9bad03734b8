//! One `backends[]` entry: balance, PROXY sending, timeouts, its servers
//! (address, weight, backup, limits), and duplicate backend names.
//!
//! The `health_check:` block is delegated to `health.rs`, the HTTP keys
//! (`retry`, `keepalive`) to `http.rs`.

use super::super::address::{parse_server_address, written_host_name};
use super::super::raw::{RawBackend, RawServerEntry};
use super::*;

impl Validator<'_> {
    pub(super) fn backend(&mut self, origin: Origin, b: RawBackend) -> BackendDraft {
        let f = origin.file;
        let p = origin.path.clone();
        let name = self
            .required(f, &p, "name", b.name.as_ref())
            .map(str::to_string);
        let balance = self.choice(
            f,
            &key(&p, "balance"),
            b.balance.as_ref(),
            &[
                ("roundrobin", BalanceKind::RoundRobin),
                ("leastconn", BalanceKind::LeastConn),
                ("random", BalanceKind::Random),
                ("source_hash", BalanceKind::SourceHash),
                ("maglev", BalanceKind::Maglev),
            ],
            BalanceKind::RoundRobin,
        );
        let hash_key = self.choice(
            f,
            &key(&p, "hash_key"),
            b.hash_key.as_ref(),
            &[("ip", HashKey::Ip), ("ip_port", HashKey::IpPort)],
            HashKey::Ip,
        );
        if b.hash_key.is_some() && balance != BalanceKind::Maglev {
            self.error(f, &key(&p, "hash_key"), "applies to `balance: maglev` only");
        }
        let send_proxy = self.send_proxy(f, &p, &b);
        let mut connect_timeout = self.duration(
            f,
            &key(&p, "connect_timeout"),
            b.connect_timeout.as_ref(),
            DEFAULT_CONNECT_TIMEOUT,
            false,
            MAX_TIMEOUT,
        );
        let mut connect_set = b.connect_timeout.is_some().then(|| {
            let at = go::SetAt {
                value: connect_timeout,
                path: key(&p, "connect_timeout"),
            };
            (at, origin.clone())
        });
        let mut http_only = Vec::new();
        let mut read = None;
        if let Some(t) = &b.timeouts {
            let (connect, r) = self.backend_timeouts(f, &p, t, connect_set.is_some());
            if let Some(c) = connect {
                connect_timeout = c.value;
                connect_set = Some((c, origin.clone()));
            }
            if let Some((path, value)) = r {
                http_only.push(("timeouts.read", path));
                read = Some(value);
            }
        }
        let retries = self
            .number(f, &key(&p, "retries"), b.retries.as_ref(), 0, 100)
            .map_or(DEFAULT_RETRIES, |n| n as u32);
        if b.retry.is_some() {
            http_only.push(("retry", key(&p, "retry")));
        }
        if b.keepalive.is_some() {
            http_only.push(("keepalive", key(&p, "keepalive")));
        }
        let max_connections = self
            .number(
                f,
                &key(&p, "max_connections"),
                b.max_connections.as_ref(),
                1,
                usize::MAX as u64,
            )
            .map(|n| n as usize);
        let http = self.http_backend(f, &p, &b, retries, read);
        let tls = b
            .backend_tls
            .and_then(|t| self.backend_tls(f, &key(&p, "backend_tls"), t));
        let mut servers = Vec::new();
        match &b.servers {
            None => self.error(f, &p, "missing required key `servers`"),
            Some(list) if list.is_empty() => {
                self.error(f, &key(&p, "servers"), "needs at least one server")
            }
            Some(list) => {
                for (j, entry) in list.iter().enumerate() {
                    let sp = format!("{p}.servers[{j}]");
                    if let Some(s) = self.server_entry(f, &sp, entry) {
                        // The address as written names the server in metrics
                        // and in the admin API: it must be unique.
                        if servers.iter().any(|o: &ServerPlan| o.label == s.label) {
                            self.error(
                                f,
                                &sp,
                                format!(
                                    "server {:?} is listed twice in this backend (to send it more traffic, give it a `weight`)",
                                    s.label
                                ),
                            );
                            continue;
                        }
                        if let (Some(t), Some(h)) = (&tls, &s.host) {
                            if let Some(why) = t.unusable_host(h) {
                                self.error(f, &sp, why);
                            }
                        }
                        servers.push(s);
                    }
                }
            }
        }
        let health = match &b.health_check {
            None => HealthPlan::default(),
            Some(h) => {
                let hp = key(&p, "health_check");
                HealthPlan {
                    active: h
                        .active
                        .as_ref()
                        .map(|a| self.active_check(f, &key(&hp, "active"), a)),
                    passive: h
                        .passive
                        .as_ref()
                        .map(|ps| self.passive_check(f, &key(&hp, "passive"), ps)),
                }
            }
        };
        BackendDraft {
            origin,
            connect_set,
            listener_connect: None,
            http_only,
            name: name.clone(),
            plan: BackendPlan {
                name: name.unwrap_or_default(),
                balance,
                hash_key,
                send_proxy,
                connect_timeout,
                retries,
                max_connections,
                servers,
                health,
                http,
                tls,
            },
        }
    }

    pub(super) fn send_proxy(
        &mut self,
        f: FileId,
        p: &str,
        b: &RawBackend,
    ) -> Option<ProxyVersion> {
        let v2_path = key(p, "send_proxy_v2");
        let sp_path = key(p, "send_proxy");
        let v2 = self.flag(f, &v2_path, b.send_proxy_v2.as_ref());
        let named = self.choice(
            f,
            &sp_path,
            b.send_proxy.as_ref(),
            &[
                ("off", None),
                ("false", None),
                ("v1", Some(ProxyVersion::V1)),
                ("v2", Some(ProxyVersion::V2)),
            ],
            None,
        );
        if v2 && named == Some(ProxyVersion::V1) {
            self.error(
                f,
                &sp_path,
                "conflicts with send_proxy_v2: true (choose one PROXY version)",
            );
        }
        if v2 {
            Some(ProxyVersion::V2)
        } else {
            named
        }
    }

    pub(super) fn server_entry(
        &mut self,
        f: FileId,
        sp: &str,
        entry: &RawServerEntry,
    ) -> Option<ServerPlan> {
        let (addr_text, addr_path, weight, backup, max_connections) = match entry {
            RawServerEntry::Plain(t) => (Some(t.as_str().trim()), sp.to_string(), 1, false, None),
            RawServerEntry::Full(s) => {
                let addr = self.required(f, sp, "address", s.address.as_ref());
                let weight_path = key(sp, "weight");
                let weight = match text(s.weight.as_ref()) {
                    Some("0") => {
                        self.error(
                            f,
                            &weight_path,
                            "weight must be at least 1 (to stop sending traffic to a server, remove it or mark it backup)",
                        );
                        1
                    }
                    _ => self
                        .number(f, &weight_path, s.weight.as_ref(), 1, 1_000_000)
                        .map_or(1, |n| n as u32),
                };
                let backup = self.flag(f, &key(sp, "backup"), s.backup.as_ref());
                let max_conn = self
                    .number(
                        f,
                        &key(sp, "max_connections"),
                        s.max_connections.as_ref(),
                        1,
                        usize::MAX as u64,
                    )
                    .map(|n| n as usize);
                (addr, key(sp, "address"), weight, backup, max_conn)
            }
        };
        let addr = addr_text?;
        match parse_server_address(addr, self.resolver) {
            Ok((ip, port)) => Some(ServerPlan {
                label: addr.to_string(),
                ip,
                host: written_host_name(addr).map(Into::into),
                port,
                weight,
                backup,
                max_connections,
            }),
            Err(e) => {
                self.error(f, &addr_path, e);
                None
            }
        }
    }

    /// Name -> index of the first backend with that name; later duplicates
    /// are errors.
    pub(super) fn backend_names(&mut self, drafts: &[BackendDraft]) -> HashMap<String, usize> {
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (i, b) in drafts.iter().enumerate() {
            let Some(name) = &b.name else { continue };
            if let Some(&first) = by_name.get(name) {
                let msg = format!(
                    "duplicate backend name {name:?} (first defined at {})",
                    self.place(&drafts[first].origin)
                );
                self.error(b.origin.file, &key(&b.origin.path, "name"), msg);
            } else {
                by_name.insert(name.clone(), i);
            }
        }
        by_name
    }
}
