//! A listener's `tls:` block and `sni_routes:` list: their keys, and
//! loading the certificates (`tls::server::load`) so that `--check`
//! reports a missing file, a key that does not match its certificate or an
//! expired certificate. Relative file names start in the folder of the
//! file that names them.
//!
//! Does not own what TLS does at run time (`tls/`, `tcp/`) nor linking a
//! route's backend name (`listeners.rs`, once every backend is known).

use super::super::raw::{RawBackendTls, RawSniRoute, RawTls};
use super::*;

/// A route as written, its backend still a name.
pub(super) struct SniRouteDraft {
    pub name: SniName,
    pub backend: String,
    /// YAML path of the route's `backend` (for an unknown name).
    pub path: String,
}

impl Validator<'_> {
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    fn folder_of(&self, file: FileId) -> PathBuf {
        match self.sources[file].path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    pub(super) fn sni_routes(
        &mut self,
        f: FileId,
        p: &str,
        routes: Vec<RawSniRoute>,
    ) -> Vec<SniRouteDraft> {
        let mut out = Vec::new();
        for (i, r) in routes.into_iter().enumerate() {
            let at = format!("{p}.sni_routes[{i}]");
            let name = self.required(f, &at, "server_name", r.server_name.as_ref());
            let backend = self.required(f, &at, "backend", r.backend.as_ref());
            let (Some(name), Some(backend)) = (name, backend) else {
                continue;
            };
            match name_pattern(name) {
                Some(name) => out.push(SniRouteDraft {
                    name,
                    backend: backend.to_string(),
                    path: key(&at, "backend"),
                }),
                _ => self.error(
                    f,
                    &key(&at, "server_name"),
                    format!("bad server_name {name:?} (a host name, or *. and a domain)"),
                ),
            }
        }
        out
    }

    #[cfg(not(feature = "tls"))]
    pub(super) fn tls_block(
        &mut self,
        f: FileId,
        p: &str,
        _t: RawTls,
        _https: bool,
    ) -> Option<ServerTls> {
        self.error(f, &key(p, "tls"), crate::tls::BUILT_WITHOUT_TLS);
        None
    }

    #[cfg(feature = "tls")]
    pub(super) fn tls_block(
        &mut self,
        f: FileId,
        p: &str,
        t: RawTls,
        https: bool,
    ) -> Option<ServerTls> {
        use crate::tls::server::{load, ClientAuth, FileRef, MinVersion, ServerSpec};
        let at = key(p, "tls");
        let folder = self.folder_of(f);
        let cert = self.required(f, &at, "cert", t.cert.as_ref());
        let key_file = self.required(f, &at, "key", t.key.as_ref());
        let mut pairs = Vec::new();
        let mut complete = true;
        match (cert, key_file) {
            (Some(c), Some(k)) => pairs.push((FileRef::new(c, &folder), FileRef::new(k, &folder))),
            _ => complete = false,
        }
        for (i, pair) in t.certificates.iter().flatten().enumerate() {
            let pp = format!("{at}.certificates[{i}]");
            let c = self.required(f, &pp, "cert", pair.cert.as_ref());
            let k = self.required(f, &pp, "key", pair.key.as_ref());
            match (c, k) {
                (Some(c), Some(k)) => {
                    pairs.push((FileRef::new(c, &folder), FileRef::new(k, &folder)))
                }
                _ => complete = false,
            }
        }
        let client_auth = self.choice(
            f,
            &key(&at, "client_auth"),
            t.client_auth.as_ref(),
            &[
                ("none", ClientAuth::None),
                ("request", ClientAuth::Request),
                ("require", ClientAuth::Require),
            ],
            ClientAuth::None,
        );
        let client_ca = text(t.client_ca.as_ref()).map(|c| FileRef::new(c, &folder));
        let min_version = self.choice(
            f,
            &key(&at, "min_version"),
            t.min_version.as_ref(),
            &[
                ("1.2", MinVersion::Tls12),
                ("tls1.2", MinVersion::Tls12),
                ("1.3", MinVersion::Tls13),
                ("tls1.3", MinVersion::Tls13),
            ],
            MinVersion::Tls12,
        );
        let mut alpn = Vec::new();
        for (i, a) in t.alpn.iter().flatten().enumerate() {
            match text(Some(a)) {
                Some(s) if !s.is_empty() && s.len() <= 255 => alpn.push(s.to_string()),
                _ => self.error(
                    f,
                    &format!("{at}.alpn[{i}]"),
                    "an ALPN protocol name is 1 to 255 bytes (e.g. http/1.1)",
                ),
            }
        }
        if https {
            alpn = self.https_alpn(f, &at, alpn);
        }
        if !complete {
            return None;
        }
        let spec = ServerSpec {
            pairs,
            client_auth,
            client_ca,
            min_version,
            alpn,
        };
        match load(&spec) {
            Ok((tls, warnings)) => {
                for w in warnings {
                    let e = self.located(f, &format!("{at}.{}", w.key), w.message);
                    self.warnings.push((f, e));
                }
                Some(tls)
            }
            Err(problems) => {
                for pr in problems {
                    self.error(f, &format!("{at}.{}", pr.key), pr.message);
                }
                None
            }
        }
    }

    /// ALPN of an https listener: nvelox speaks HTTP/1.x only, so it
    /// offers `http/1.1` (a client offering h2 and http/1.1 falls back to
    /// http/1.1; one offering only h2 is refused with the
    /// no_application_protocol alert). Other names written are dropped
    /// with a warning.
    #[cfg(feature = "tls")]
    fn https_alpn(&mut self, f: FileId, at: &str, written: Vec<String>) -> Vec<String> {
        let mut kept = Vec::new();
        for (i, a) in written.into_iter().enumerate() {
            if a == "http/1.1" || a == "http/1.0" {
                kept.push(a);
            } else {
                let e = self.located(
                    f,
                    &format!("{at}.alpn[{i}]"),
                    format!("ALPN {a:?} not offered: https listeners speak HTTP/1.x only (clients fall back to http/1.1)"),
                );
                self.warnings.push((f, e));
            }
        }
        if kept.is_empty() {
            kept.push("http/1.1".to_string());
        }
        kept
    }

    #[cfg(not(feature = "tls"))]
    pub(super) fn backend_tls(
        &mut self,
        f: FileId,
        at: &str,
        t: RawBackendTls,
    ) -> Option<crate::tls::ClientTls> {
        if self.flag(f, &key(at, "enabled"), t.enabled.as_ref()) {
            self.error(f, at, crate::tls::BUILT_WITHOUT_TLS);
        }
        None
    }

    /// `backend_tls` (`at` is its YAML path). Like Go Nvelox, the block
    /// does nothing unless `enabled: true`.
    #[cfg(feature = "tls")]
    pub(super) fn backend_tls(
        &mut self,
        f: FileId,
        at: &str,
        t: RawBackendTls,
    ) -> Option<crate::tls::ClientTls> {
        use crate::tls::client::{load, ClientSpec};
        use crate::tls::server::FileRef;
        let enabled = self.flag(f, &key(at, "enabled"), t.enabled.as_ref());
        let insecure = self.flag(f, &key(at, "insecure"), t.insecure.as_ref());
        if !enabled {
            let e = self.located(
                f,
                at,
                "backend_tls is not enabled (write enabled: true): plain TCP to the servers, its other keys unused".to_string(),
            );
            self.warnings.push((f, e));
            return None;
        }
        let folder = self.folder_of(f);
        let file = |t: Option<&Text>| text(t).map(|s| FileRef::new(s, &folder));
        let client_cert = match (file(t.client_cert.as_ref()), file(t.client_key.as_ref())) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                self.error(f, &key(at, "client_cert"), "client_cert needs client_key");
                return None;
            }
            (None, Some(_)) => {
                self.error(f, &key(at, "client_key"), "client_key needs client_cert");
                return None;
            }
        };
        let spec = ClientSpec {
            ca_cert: file(t.ca_cert.as_ref()),
            insecure,
            server_name: text(t.server_name.as_ref()).map(str::to_string),
            client_cert,
        };
        match load(&spec) {
            Ok((tls, warnings)) => {
                for w in warnings {
                    let e = self.located(f, &key(at, &w.key), w.message);
                    self.warnings.push((f, e));
                }
                Some(tls)
            }
            Err(problems) => {
                for pr in problems {
                    self.error(f, &key(at, &pr.key), pr.message);
                }
                None
            }
        }
    }
}

/// A `server_name` / `server_names` entry: `app.example.com` (exact) or
/// `*.example.com` (any name ending in `.example.com`), lower case,
/// without a trailing dot; `None` when it is not a host name.
pub(super) fn name_pattern(name: &str) -> Option<SniName> {
    let lower = name.trim_end_matches('.').to_ascii_lowercase();
    let body = lower.strip_prefix("*.").unwrap_or(&lower);
    let valid = !body.is_empty()
        && body.len() <= 253
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid {
        return None;
    }
    Some(match lower.strip_prefix("*.") {
        Some(rest) => SniName::Suffix(format!(".{rest}")),
        None => SniName::Exact(lower.clone()),
    })
}
