//! Unit tests of `routes[].redirect` (Go Nvelox's): what loads, what is
//! refused with its line, and where requests go.

use super::super::test_support::{errors_named, load_named};
use crate::config::*;
use crate::http::redirect::RequestFacts;

const BACKENDS: &str = "backends:\n  - name: app\n    servers: [\"127.0.0.1:9001\"]\n";

/// An http listener (lines 1-6) whose `routes:` start at line 7.
fn doc(routes: &str) -> String {
    format!("listeners:\n  - name: web\n    bind: \"127.0.0.1:8080\"\n    protocol: http\n    backend: app\n    routes:\n{routes}{BACKENDS}")
}

#[test]
fn redirect_routes_load_and_win_over_their_backend() {
    let plan = load_named(
        "r.yaml",
        &doc("      - match: { path_prefix: /old }\n        redirect: { url: \"https://${host}${uri}\", code: 308 }\n      - match: { path_prefix: /tmp }\n        redirect: { url: /new }\n        backend: app\n      - match: { path_prefix: /api }\n        backend: app\n"),
    )
    .unwrap();
    let h = plan.listeners[0].http.as_ref().unwrap();
    let Routed::Redirect(r) = h.route(Some(b"a.test"), b"/old/x?y") else {
        panic!("not a redirect");
    };
    assert_eq!(r.code, 308);
    let f = RequestFacts {
        host: Some(b"a.test:80"),
        uri: b"/old/x?y",
        tls: false,
    };
    assert_eq!(r.location(&f), b"https://a.test/old/x?y");
    // No code: Go's default, 302; the route's backend is not used.
    let Routed::Redirect(r) = h.route(None, b"/tmp") else {
        panic!("not a redirect");
    };
    assert_eq!(r.code, 302);
    assert_eq!(h.route(None, b"/api"), Routed::Backend(BackendId(0)));
    assert_eq!(h.route(None, b"/"), Routed::Backend(BackendId(0)));
    assert_eq!(h.backend_for(None, b"/old"), None);
}

#[test]
fn bad_redirects_are_refused_with_their_line() {
    let errs = errors_named(
        "r.yaml",
        &doc("      - match: { path_prefix: /a }\n        redirect: { url: /x, code: 200 }\n      - match: { path_prefix: /b }\n        redirect: { code: 301 }\n      - match: { path_prefix: /c }\n        redirect: { url: \"/${nope}\" }\n      - match: { path_prefix: /e }\n        redirect: { url: /z }\n        backend: nosuch\n"),
    );
    let want = [
        "r.yaml:8: listeners[0].routes[0].redirect.code: redirect code 200 is not one of 301, 302, 303, 307, 308",
        "r.yaml:10: listeners[0].routes[1].redirect: missing required key `url`",
        "r.yaml:12: listeners[0].routes[2].redirect.url: redirect url \"/${nope}\": unknown variable ${nope}",
        "r.yaml:15: listeners[0].routes[3].backend: unknown backend \"nosuch\"",
    ];
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for (e, w) in errs.iter().zip(want) {
        assert!(e.starts_with(w), "{e:?} does not start with {w:?}");
    }
    let errs = errors_named(
        "r.yaml",
        &doc("      - match: { path_prefix: /d }\n        redirect: { url: /y, when: now }\n"),
    );
    assert_eq!(
        errs,
        ["r.yaml:8: listeners[0].routes[0].redirect: unknown field `when`, expected `url` or `code`"]
    );
}

#[test]
fn a_listener_of_redirects_only_needs_no_backend() {
    let redirect = "      - match: { path_prefix: / }\n        redirect: { url: \"https://${host}${path}\" }\n";
    let d = doc(redirect).replace("    backend: app\n    routes", "    routes");
    let plan = load_named("r.yaml", &d).unwrap();
    let l = &plan.listeners[0];
    assert_eq!(l.backend, None);
    let h = l.http.as_ref().unwrap();
    assert_eq!(h.default_backend, None);
    assert!(matches!(h.route(None, b"/x"), Routed::Redirect(_)));
    // No `backends:` at all: still fine.
    let alone = d.replace(BACKENDS, "");
    assert_eq!(
        load_named("r.yaml", &alone).unwrap().listeners[0].backend,
        None
    );
    // A route without redirect, or a tcp listener, still needs a backend.
    let d = doc("      - match: { path_prefix: /a }\n        redirect: { url: /b }\n      - match: { path_prefix: /c }\n        backend: nowhere\n")
        .replace("    backend: app\n    routes", "    routes");
    let errs = errors_named("r.yaml", &d);
    assert!(
        errs.iter().any(|e| e.contains("unknown backend")),
        "{errs:?}"
    );
    let tcp = "listeners:\n  - name: t\n    bind: \"127.0.0.1:8080\"\n    protocol: tcp\n";
    let errs = errors_named("r.yaml", &format!("{tcp}{BACKENDS}"));
    assert!(
        errs.iter()
            .any(|e| e.contains("missing required key `backend`")),
        "{errs:?}"
    );
}
