//! Configuration reload (SIGHUP), the pure part: which listeners of the
//! running plan a new plan keeps, and which changes need a restart.
//!
//! A listener is *kept* when the new plan has one with the same socket
//! identity (bind string, protocol, reuseport): it keeps its sockets, its
//! connections and its counters, and takes the new listener's settings
//! (backend, timeouts, caps, PROXY options) for new connections. Everything
//! else is closed (removed) or bound (added). The shell is in `run.rs`.

use crate::config::{ListenerId, ListenerPlan, Plan};

/// True when `b` can take over `a`'s sockets.
/// A virtual host that shares its group's socket only matches another
/// one (it has no socket to hand over).
pub fn same_socket(a: &ListenerPlan, b: &ListenerPlan) -> bool {
    a.bind == b.bind
        && a.protocol == b.protocol
        && a.reuseport == b.reuseport
        && a.socket_of.is_none() == b.socket_of.is_none()
}

/// `keep[i] = Some(j)`: listener `i` of `old` is listener `j` of `new`
/// (`keep` is indexed by the old `ListenerId`'s index).
pub fn keep_map(old: &Plan, new: &Plan) -> Vec<Option<ListenerId>> {
    let mut taken = vec![false; new.listeners.len()];
    old.listeners
        .iter()
        .map(|o| {
            let j = new
                .listeners
                .iter()
                .enumerate()
                .position(|(j, n)| !taken[j] && same_socket(o, n))?;
            taken[j] = true;
            Some(ListenerId(j))
        })
        .collect()
}

/// Indexes of `new` listeners that no old listener maps to (to be bound).
pub fn added(new: &Plan, keep: &[Option<ListenerId>]) -> Vec<ListenerId> {
    new.listener_ids()
        .map(|(j, _)| j)
        .filter(|j| !keep.contains(&Some(*j)))
        .collect()
}

/// Settings a running process cannot change: reports each difference and
/// puts the running value back into `new`, so the plan in force describes
/// what actually runs.
pub fn keep_restart_only_settings(old: &Plan, new: &mut Plan) -> Vec<String> {
    let mut notes = Vec::new();
    let mut check = |what: &str, changed: bool| {
        if changed {
            notes.push(format!("{what} changed: takes effect after a restart"));
        }
    };
    check("server.workers", old.server.workers != new.server.workers);
    check(
        "server.scheduler_slice",
        old.server.scheduler_slice != new.server.scheduler_slice,
    );
    check("server.user", old.server.user != new.server.user);
    check("server.group", old.server.group != new.server.group);
    check(
        "server.pid_file",
        old.server.pid_file != new.server.pid_file,
    );
    check(
        "logging.error_log",
        old.logging.error_log != new.logging.error_log,
    );
    check(
        "logging.access_log",
        old.logging.access_log != new.logging.access_log,
    );
    let metrics_bind = |p: &Plan| p.metrics.as_ref().map(|m| m.bind);
    let admin_bind = |p: &Plan| p.admin.as_ref().map(|a| a.bind);
    check(
        "metrics.enabled / metrics.bind",
        metrics_bind(old) != metrics_bind(new),
    );
    check(
        "admin.enabled / admin.bind",
        admin_bind(old) != admin_bind(new),
    );
    // The sockets stay as they are; `metrics.path` and `admin.api_key`
    // apply at once.
    match (&old.metrics, &mut new.metrics) {
        (Some(o), Some(n)) => n.bind = o.bind,
        (o, n) => *n = o.clone(),
    }
    match (&old.admin, &mut new.admin) {
        (Some(o), Some(n)) => n.bind = o.bind,
        (o, n) => *n = o.clone(),
    }
    new.server.workers = old.server.workers;
    new.server.scheduler_slice = old.server.scheduler_slice;
    new.server.user = old.server.user.clone();
    new.server.group = old.server.group.clone();
    new.server.pid_file = old.server.pid_file.clone();
    new.logging.error_log = old.logging.error_log.clone();
    new.logging.access_log = old.logging.access_log.clone();
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use std::path::Path;

    fn plan(listeners: &str) -> Plan {
        let text = format!(
            "server:\n  workers: 2\nlisteners:\n{listeners}backends:\n  - name: b\n    servers: [\"127.0.0.1:9\"]\n"
        );
        load_str(&text, Path::new("t.yaml")).unwrap()
    }

    #[test]
    fn listeners_are_matched_by_socket_not_by_name_or_order() {
        let old = plan(
            "  - { name: a, bind: \"127.0.0.1:1000\", default_backend: b }\n  - { name: u, bind: \"127.0.0.1:1000\", protocol: udp, default_backend: b }\n  - { name: gone, bind: \"127.0.0.1:2000\", default_backend: b }\n",
        );
        let new = plan(
            "  - { name: fresh, bind: \"127.0.0.1:3000\", default_backend: b }\n  - { name: renamed, bind: \"127.0.0.1:1000\", default_backend: b, idle_timeout: 5s }\n  - { name: u, bind: \"127.0.0.1:1000\", protocol: udp, default_backend: b }\n",
        );
        let keep = keep_map(&old, &new);
        assert_eq!(keep, vec![Some(ListenerId(1)), Some(ListenerId(2)), None]);
        assert_eq!(added(&new, &keep), vec![ListenerId(0)]);
    }

    #[test]
    fn reuseport_or_range_changes_mean_a_new_socket() {
        let old = plan("  - { name: a, bind: \"127.0.0.1:1000-1001\", default_backend: b }\n");
        let new = plan("  - { name: a, bind: \"127.0.0.1:1000-1002\", default_backend: b }\n");
        assert_eq!(keep_map(&old, &new), vec![None]);
        let new = plan(
            "  - { name: a, bind: \"127.0.0.1:1000-1001\", default_backend: b, reuseport: true }\n",
        );
        assert_eq!(keep_map(&old, &new), vec![None]);
    }

    #[test]
    fn restart_only_settings_are_reported_and_kept() {
        let old = plan("  - { name: a, bind: \"127.0.0.1:1000\", default_backend: b }\n");
        let mut new = old.clone();
        new.server.workers = 7;
        new.server.max_connections = 5;
        let notes = keep_restart_only_settings(&old, &mut new);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("server.workers"));
        assert_eq!(new.server.workers, 2);
        assert_eq!(new.server.max_connections, 5, "a live setting is applied");

        // The loops' threads got their slice when they started.
        let mut new = old.clone();
        new.server.scheduler_slice = Some(std::time::Duration::from_micros(200));
        let notes = keep_restart_only_settings(&old, &mut new);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("server.scheduler_slice"));
        assert_eq!(new.server.scheduler_slice, old.server.scheduler_slice);
    }
}
