//! Name-based virtual hosts: `server_names` and `default_server` on one
//! listener, and the groups of `http`/`https` listeners written with the
//! same `bind`.
//!
//! A group shares one socket (its first listener's, in file order) and is
//! valid when its listeners are all `http` or all `https`, each has
//! `server_names` or `default_server: true`, at most one is the default,
//! no name is claimed twice, and the socket's own settings (`reuseport`,
//! `accept_proxy`, `max_connections`, the access rules applied at accept)
//! are the same on each. Other overlapping binds are refused by
//! `listeners.rs`. Does not own the lookup (`config/vhost.rs`).

use super::super::raw::RawListener;
use super::*;
use crate::config::VhostTable;

impl Validator<'_> {
    /// A listener's `server_names` and `default_server`.
    pub(super) fn vhost_keys(
        &mut self,
        f: FileId,
        p: &str,
        l: &RawListener,
        protocol: Protocol,
    ) -> (Vec<SniName>, bool) {
        let default_server = self.flag(f, &key(p, "default_server"), l.default_server.as_ref());
        let mut names = Vec::new();
        for (i, n) in l.server_names.iter().flatten().enumerate() {
            let at = format!("{p}.server_names[{i}]");
            match text(Some(n)).and_then(tls::name_pattern) {
                Some(name) => names.push(name),
                None => self.error(
                    f,
                    &at,
                    format!(
                        "bad server name {:?} (a host name, or *. and a domain)",
                        n.as_str()
                    ),
                ),
            }
        }
        if protocol != Protocol::Http {
            for (set, k) in [
                (l.server_names.is_some(), "server_names"),
                (l.default_server.is_some(), "default_server"),
            ] {
                if set {
                    self.error(
                        f,
                        &key(p, k),
                        format!("{k} is for http and https listeners (name-based virtual hosts)"),
                    );
                }
            }
        }
        (names, default_server)
    }

    /// Groups the http/https listeners written with the same bind, checks
    /// each group, and gives its first listener the table and the others
    /// `socket_of`. Draft indexes are the plan's listener ids.
    pub(super) fn vhost_groups(&mut self, drafts: &mut [ListenerDraft]) {
        let mut grouped = vec![false; drafts.len()];
        for first in 0..drafts.len() {
            if grouped[first] || drafts[first].protocol != Protocol::Http {
                continue;
            }
            let Some(bind) = drafts[first].bind.clone() else {
                continue;
            };
            let members: Vec<usize> = (first..drafts.len())
                .filter(|&j| {
                    drafts[j].protocol == Protocol::Http && drafts[j].bind.as_ref() == Some(&bind)
                })
                .collect();
            if members.len() < 2 {
                continue;
            }
            for &j in &members {
                grouped[j] = true;
            }
            self.check_group(drafts, &members, &bind);
            let mut names = Vec::new();
            let mut default = None;
            for &j in &members {
                names.extend(
                    drafts[j]
                        .server_names
                        .iter()
                        .map(|n| (n.clone(), ListenerId(j))),
                );
                if drafts[j].default_server {
                    default.get_or_insert(ListenerId(j));
                }
                if j != first {
                    drafts[j].socket_of = Some(ListenerId(first));
                }
            }
            drafts[first].vhosts = Some(VhostTable {
                names,
                default: default.unwrap_or(ListenerId(first)),
            });
        }
    }

    fn check_group(&mut self, drafts: &[ListenerDraft], members: &[usize], bind: &BindSpec) {
        let first = &drafts[members[0]];
        let who = |d: &ListenerDraft| format!("listener {:?}", d.name.as_deref().unwrap_or("?"));
        let mut default: Option<usize> = None;
        let mut claimed: Vec<(&SniName, usize)> = Vec::new();
        for &j in members {
            let d = &drafts[j];
            let (f, p) = (d.origin.file, d.origin.path.clone());
            let shares = format!(
                "shares bind {bind} with {} ({})",
                who(first),
                self.place(&first.origin)
            );
            if j != members[0] && d.https != first.https {
                let proto = |h: bool| if h { "https" } else { "http" };
                self.error(
                    f,
                    &key(&p, "protocol"),
                    format!(
                        "this {} listener {shares}, which is {}: listeners sharing a bind must all be http or all https",
                        proto(d.https),
                        proto(first.https)
                    ),
                );
            }
            if d.server_names.is_empty() && !d.default_server {
                self.error(
                    f,
                    &key(&p, "bind"),
                    format!("this listener {shares}: give each listener sharing a bind server_names, or default_server: true"),
                );
            }
            if d.default_server {
                match default {
                    Some(k) => {
                        let other = &drafts[k];
                        self.error(
                            f,
                            &key(&p, "default_server"),
                            format!(
                                "a second default_server on bind {bind}: {} ({}) is the default already",
                                who(other),
                                self.place(&other.origin)
                            ),
                        );
                    }
                    None => default = Some(j),
                }
            }
            for (i, n) in d.server_names.iter().enumerate() {
                if let Some((_, k)) = claimed.iter().find(|(c, _)| *c == n) {
                    let other = &drafts[*k];
                    self.error(
                        f,
                        &format!("{p}.server_names[{i}]"),
                        format!(
                            "server name {} is already {}'s ({}) on bind {bind}",
                            show_name(n),
                            who(other),
                            self.place(&other.origin)
                        ),
                    );
                } else {
                    claimed.push((n, j));
                }
            }
            if j == members[0] {
                continue;
            }
            let socket = [
                ("reuseport", d.reuseport == first.reuseport),
                ("accept_proxy", d.accept_proxy == first.accept_proxy),
                (
                    "max_connections",
                    d.max_connections == first.max_connections,
                ),
                ("ip_allowlist", d.access.allow == first.access.allow),
                ("ip_denylist", d.access.deny == first.access.deny),
                ("rate_limit", d.access.rate_limit == first.access.rate_limit),
                (
                    "max_connections_per_ip",
                    d.access.max_connections_per_ip == first.access.max_connections_per_ip,
                ),
            ];
            for (k, same) in socket {
                if !same {
                    self.error(
                        f,
                        &key(&p, k),
                        format!(
                            "{k} differs from {} ({}), which shares bind {bind}: listeners sharing a bind share one socket, so {k} must be the same on each",
                            who(first),
                            self.place(&first.origin)
                        ),
                    );
                }
            }
        }
    }
}

fn show_name(n: &SniName) -> String {
    match n {
        SniName::Exact(e) => format!("{e:?}"),
        SniName::Suffix(s) => format!("\"*{s}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::load_named;
    use crate::config::*;

    #[test]
    fn a_group_gets_its_table_on_the_first_listener_and_the_others_share_its_socket() {
        let doc = r#"listeners:
  - { name: a, bind: "127.0.0.1:80", protocol: http, backend: b, server_names: [A.Test., "*.z.test"] }
  - { name: alone, bind: "127.0.0.1:81", protocol: http, backend: b, server_names: [x.test] }
  - { name: d, bind: "127.0.0.1:80", protocol: http, backend: b, default_server: true }
  - { name: u, bind: "127.0.0.1:80", protocol: udp, backend: b }
backends:
  - { name: b, servers: ["127.0.0.1:9"] }
"#;
        let plan = load_named("v.yaml", doc).unwrap();
        let l = &plan.listeners;
        assert_eq!(
            l[0].vhosts,
            Some(VhostTable {
                names: vec![
                    (SniName::Exact("a.test".into()), ListenerId(0)),
                    (SniName::Suffix(".z.test".into()), ListenerId(0)),
                ],
                default: ListenerId(2),
            })
        );
        assert_eq!(
            (l[0].socket_of, l[2].socket_of),
            (None, Some(ListenerId(0)))
        );
        assert_eq!(
            (&l[1].vhosts, l[1].socket_of),
            (&None, None),
            "alone: no group"
        );
        assert_eq!(
            (&l[3].vhosts, l[3].socket_of),
            (&None, None),
            "udp: not http"
        );
    }
}
