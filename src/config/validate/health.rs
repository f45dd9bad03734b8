//! `health_check.active` and `health_check.passive` of one backend.
//!
//! Decodes the probe's `send`/`expect` escapes and checks the http probe
//! path; running the probes is `crate::health`'s job.

use super::super::escape::decode_escapes;
use super::super::raw::{self, Text};
use super::*;

impl Validator<'_> {
    pub(super) fn active_check(
        &mut self,
        f: FileId,
        p: &str,
        a: &raw::RawActiveCheck,
    ) -> ActiveCheck {
        let kind = self.choice(
            f,
            &key(p, "type"),
            a.kind.as_ref(),
            &[
                ("tcp", CheckKind::Tcp),
                ("http", CheckKind::Http),
                ("udp", CheckKind::Udp),
            ],
            CheckKind::Tcp,
        );
        let port = self.port(f, &key(p, "port"), a.port.as_ref());
        let path = match (kind, text(a.path.as_ref())) {
            (CheckKind::Http, None) => "/".to_string(),
            (CheckKind::Http, Some(s)) if s.starts_with('/') => s.to_string(),
            (CheckKind::Http, Some(s)) => {
                self.error(
                    f,
                    &key(p, "path"),
                    format!("http path {s:?} must start with /"),
                );
                "/".to_string()
            }
            (_, Some(_)) => {
                self.error(f, &key(p, "path"), "`path` is only used by type: http");
                String::new()
            }
            (_, None) => String::new(),
        };
        let bytes = |this: &mut Self, name: &str, t: Option<&Text>| -> Vec<u8> {
            let Some(t) = t else { return Vec::new() };
            match decode_escapes(t.as_str()) {
                Ok(b) => b,
                Err(e) => {
                    this.error(f, &key(p, name), e);
                    Vec::new()
                }
            }
        };
        let send = bytes(self, "send", a.send.as_ref());
        let expect = bytes(self, "expect", a.expect.as_ref());
        if kind == CheckKind::Http && a.send.is_some() {
            self.error(
                f,
                &key(p, "send"),
                "`send` is for tcp and udp checks; http checks send a GET for `path`",
            );
        }
        let interval = self.duration(
            f,
            &key(p, "interval"),
            a.interval.as_ref(),
            DEFAULT_CHECK_INTERVAL,
            false,
        );
        let timeout = self.duration(
            f,
            &key(p, "timeout"),
            a.timeout.as_ref(),
            DEFAULT_CHECK_TIMEOUT,
            false,
        );
        let rise = self
            .number(f, &key(p, "rise"), a.rise.as_ref(), 1, 1000)
            .map_or(DEFAULT_RISE, |n| n as u32);
        let fall = self
            .number(f, &key(p, "fall"), a.fall.as_ref(), 1, 1000)
            .map_or(DEFAULT_FALL, |n| n as u32);
        ActiveCheck {
            kind,
            port,
            path,
            send,
            expect,
            interval,
            timeout,
            rise,
            fall,
        }
    }

    pub(super) fn passive_check(
        &mut self,
        f: FileId,
        p: &str,
        ps: &raw::RawPassiveCheck,
    ) -> PassiveCheck {
        let max_fails = self
            .number(f, &key(p, "max_fails"), ps.max_fails.as_ref(), 1, 1000)
            .map_or(DEFAULT_MAX_FAILS, |n| n as u32);
        let fail_timeout = self.duration(
            f,
            &key(p, "fail_timeout"),
            ps.fail_timeout.as_ref(),
            DEFAULT_FAIL_TIMEOUT,
            false,
        );
        PassiveCheck {
            max_fails,
            fail_timeout,
        }
    }
}
