//! What each path answers: the metrics text, the status page, the JSON
//! views and the server actions (drain, enable, disable, weight).
//!
//! Owns routing (404 / 405 / 400), the JSON documents and applying an
//! action to the running backends (logged, one line each). Does not own
//! parsing or access rules (`request.rs`) or sockets (`mod.rs`).

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::json::Json;
use super::request::{check_access, query_param, Denied, Request};
use crate::backend_rt::AdminMode;
use crate::config::Protocol;
use crate::metrics::{self, listener as lc, server as sc};
use crate::runtime::Runtime;

/// The status page: one self-contained file (inline CSS and JavaScript).
pub const STATUS_PAGE: &str = include_str!("status.html");

/// The largest weight the API accepts (as the configuration).
pub const MAX_WEIGHT: u32 = 1_000_000;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// `WWW-Authenticate` on a 401, so a browser asks for the password.
    pub challenge: bool,
    /// `Allow` on a 405.
    pub allow: Option<&'static str>,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: String) -> Response {
        Response {
            status,
            content_type,
            body,
            challenge: false,
            allow: None,
        }
    }

    /// A short JSON error body: `{"error": "..."}`.
    pub fn error(status: u16, message: &str) -> Response {
        let mut j = Json::new();
        j.begin_object();
        j.str("error", message);
        j.end_object();
        Response::new(status, JSON, j.out)
    }
}

const JSON: &str = "application/json";

/// What the socket a request came in on serves.
#[derive(Clone, Copy, Debug)]
pub struct Roles {
    pub metrics: bool,
    pub admin: bool,
    pub bind_is_loopback: bool,
}

/// Everything one request needs besides the request itself.
pub struct Env<'a> {
    pub rt: &'a Runtime,
    pub roles: Roles,
    pub peer: IpAddr,
    pub access_log_dropped: u64,
    pub started: SystemTime,
}

pub fn respond(req: &Request, env: &Env<'_>) -> Response {
    let plan = &env.rt.plan;
    if env.roles.metrics && plan.metrics.as_ref().is_some_and(|m| m.path == req.path) {
        if req.method != "GET" && req.method != "HEAD" {
            return not_allowed("GET, HEAD");
        }
        return Response::new(
            200,
            metrics::expo::CONTENT_TYPE,
            metrics::expo::render(env.rt, env.access_log_dropped),
        );
    }
    if !env.roles.admin {
        return Response::error(404, "not found");
    }
    let segments: Vec<&str> = req.path.split('/').skip(1).collect();
    enum Route<'p> {
        Page,
        Stats,
        Backends,
        Action(&'p str, &'p str),
    }
    let route = match segments.as_slice() {
        [""] => Route::Page,
        ["api", "v1", "stats"] => Route::Stats,
        ["api", "v1", "backends"] => Route::Backends,
        ["api", "v1", "backends", b, action] => Route::Action(b, action),
        _ => return Response::error(404, "not found"),
    };
    let key = plan.admin.as_ref().and_then(|a| a.api_key.as_deref());
    match check_access(req, env.peer, env.roles.bind_is_loopback, key) {
        Ok(()) => {}
        Err(Denied::Forbidden) => return Response::error(403, "forbidden: loopback clients only"),
        Err(Denied::Unauthorized) => {
            let mut r = Response::error(
                401,
                "unauthorized: send X-API-Key or HTTP Basic authentication",
            );
            r.challenge = true;
            return r;
        }
    }
    match route {
        Route::Page | Route::Stats | Route::Backends
            if req.method != "GET" && req.method != "HEAD" =>
        {
            not_allowed("GET, HEAD")
        }
        Route::Page => Response::new(200, "text/html; charset=utf-8", STATUS_PAGE.to_string()),
        Route::Stats => Response::new(200, JSON, stats(env)),
        Route::Backends => Response::new(200, JSON, backends(env.rt)),
        Route::Action(..) if req.method != "POST" => not_allowed("POST"),
        Route::Action(b, action) => act(env, req, b, action),
    }
}

fn not_allowed(allow: &'static str) -> Response {
    let mut r = Response::error(405, "method not allowed");
    r.allow = Some(allow);
    r
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn stats(env: &Env<'_>) -> String {
    let rt = env.rt;
    let mut j = Json::new();
    j.begin_object();
    j.str("version", env!("CARGO_PKG_VERSION"));
    j.num("time", format!("{:.3}", unix(SystemTime::now())));
    j.num("started", format!("{:.3}", unix(env.started)));
    j.num("workers", rt.plan.server.workers);
    j.object_field("reloads");
    j.num("ok", metrics::RELOADS_OK.load(Ordering::Relaxed));
    j.num("failed", metrics::RELOADS_FAILED.load(Ordering::Relaxed));
    j.end_object();
    j.num("access_log_dropped_lines", env.access_log_dropped);
    j.array_field("listeners");
    for (i, l) in rt.plan.listeners.iter().enumerate() {
        let s = &rt.listener_stats[i];
        let udp = l.protocol == Protocol::Udp;
        // A virtual host sharing another listener's socket has none.
        let copies = if l.socket_of.is_some() {
            0
        } else if l.reuseport {
            rt.plan.server.workers.max(1)
        } else {
            1
        };
        j.begin_object();
        j.str("name", &l.name);
        let protocol = match l.protocol {
            Protocol::Http if l.tls.is_some() => "https",
            p => p.name(),
        };
        j.str("protocol", protocol);
        j.str("bind", &l.bind.to_string());
        j.num("sockets", l.bind.port_count() * copies);
        match l.backend {
            Some(b) => j.str("backend", &rt.plan.backend(b).name),
            // An http/https listener of redirects only.
            None => j.null("backend"),
        }
        j.num(
            "current_connections",
            rt.listener_active[i].load(Ordering::Relaxed),
        );
        j.num("connections_total", s.sum(lc::CONNECTIONS));
        j.num("bytes_in", s.sum(lc::BYTES_IN));
        j.num("bytes_out", s.sum(lc::BYTES_OUT));
        j.num("connection_errors", s.sum(lc::CONNECTION_ERRORS));
        if udp {
            j.num("datagrams_in", s.sum(lc::DATAGRAMS_IN));
            j.num("datagrams_out", s.sum(lc::DATAGRAMS_OUT));
            let drops: u64 = (0..metrics::DROP_REASONS.len())
                .map(|k| s.sum(lc::DROPS + k))
                .sum();
            j.num("drops", drops);
        }
        j.end_object();
    }
    j.end_array();
    j.end_object();
    j.out
}

fn backends(rt: &Runtime) -> String {
    let mut j = Json::new();
    j.begin_object();
    j.array_field("backends");
    for b in &rt.backends {
        j.begin_object();
        j.str("name", &b.plan.name);
        j.str(
            "balance",
            &format!("{:?}", b.plan.balance).to_ascii_lowercase(),
        );
        j.array_field("servers");
        for s in &b.servers {
            j.begin_object();
            j.str("address", &s.plan.label);
            j.str("state", s.state_label());
            j.str("health", &s.health_state().to_string());
            j.str("admin", s.admin_mode().as_str());
            j.num("weight", s.weight());
            j.bool("backup", s.plan.backup);
            j.num("current_connections", s.active.load(Ordering::Relaxed));
            j.num("connections_total", s.stats.sum(sc::CONNECTIONS));
            j.num("connection_errors", s.stats.sum(sc::CONNECTION_ERRORS));
            j.num("bytes_in", s.stats.sum(sc::BYTES_IN));
            j.num("bytes_out", s.stats.sum(sc::BYTES_OUT));
            match s.last_check() {
                Some(c) => {
                    j.object_field("last_check");
                    j.bool("ok", c.ok);
                    j.num("time", format!("{:.3}", unix(c.at)));
                    j.str("detail", &c.detail);
                    j.end_object();
                }
                None => j.null("last_check"),
            }
            j.end_object();
        }
        j.end_array();
        j.end_object();
    }
    j.end_array();
    j.end_object();
    j.out
}

fn act(env: &Env<'_>, req: &Request, backend: &str, action: &str) -> Response {
    let rt = env.rt;
    let mode = match action {
        "drain" => Some(AdminMode::Drain),
        "disable" => Some(AdminMode::Disabled),
        "enable" => Some(AdminMode::Ready),
        "weight" => None,
        _ => return Response::error(404, "unknown action (drain, enable, disable, weight)"),
    };
    let Some(b) = rt.backends.iter().find(|b| b.plan.name == backend) else {
        return Response::error(404, "no such backend");
    };
    let Some(server) = query_param(&req.query, "server") else {
        return Response::error(
            400,
            "missing ?server=ADDRESS (as written in the configuration)",
        );
    };
    let Some(id) = b.find_server(&server) else {
        return Response::error(404, "no such server in this backend");
    };
    let what = match mode {
        Some(m) => {
            b.set_admin_mode(id, m);
            action.to_string()
        }
        None => {
            let value = query_param(&req.query, "value").and_then(|v| v.parse::<u32>().ok());
            let Some(w) = value.filter(|w| (1..=MAX_WEIGHT).contains(w)) else {
                return Response::error(400, "expected &value=N with N from 1 to 1000000");
            };
            b.set_weight(id, w);
            format!("weight {w}")
        }
    };
    log::warn!(
        "admin: backend {} server {}: {what} (by {}; lasts until restart)",
        b.plan.name,
        server,
        env.peer
    );
    let s = b.server(id);
    let mut j = Json::new();
    j.begin_object();
    j.str("backend", &b.plan.name);
    j.str("server", &s.plan.label);
    j.str("state", s.state_label());
    j.num("weight", s.weight());
    j.end_object();
    Response::new(200, JSON, j.out)
}
