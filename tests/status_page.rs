//! The status page in a real browser: headless Chromium, driven over the
//! DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages
//! separated by NUL on fds 3 and 4, no WebSocket needed). The page must show
//! every backend and server with its state, and a drain made through the
//! API must appear without a reload (the page refreshes itself every
//! second, so within 2 s on a machine that runs its timers on time). Prints
//! SKIP when chromium is not installed (.ci/run installs it).
//!
//! With `NVELOX_WRITE_SCREENSHOT=path` the test also saves a PNG of the page.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// A pipe end moved to a descriptor >= 10 with close-on-exec, so the
/// `dup2` onto 3 and 4 in the child can never clobber a source.
fn high_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let high = |fd: RawFd| {
        // SAFETY: `fd` is an open descriptor we own; F_DUPFD_CLOEXEC returns a new one.
        let h = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
        assert!(h >= 10);
        // SAFETY: `fd` is ours and no longer used after this.
        unsafe { libc::close(fd) };
        // SAFETY: `h` is a fresh descriptor owned by nothing else.
        unsafe { OwnedFd::from_raw_fd(h) }
    };
    (high(fds[0]), high(fds[1]))
}

struct Browser {
    child: Child,
    to: std::fs::File,
    from: Receiver<String>,
    next_id: u64,
    _profile: TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    fn start() -> Option<Browser> {
        let exe = ["chromium", "chromium-browser"].into_iter().find(|e| {
            Command::new(e)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })?;
        let profile = TempDir::new("chromium");
        let (chrome_reads, we_write) = high_pipe();
        let (we_read, chrome_writes) = high_pipe();
        let (r, w) = (
            std::os::fd::AsRawFd::as_raw_fd(&chrome_reads),
            std::os::fd::AsRawFd::as_raw_fd(&chrome_writes),
        );
        let mut cmd = Command::new(exe);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,720",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().ok()?;
        drop((chrome_reads, chrome_writes));
        let (tx, rx) = mpsc::channel();
        let mut from = std::fs::File::from(we_read);
        thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buf = [0u8; 65536];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&buf[..n]);
                while let Some(i) = pending.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = pending.drain(..=i).collect();
                    let _ = tx.send(String::from_utf8_lossy(&msg[..i]).into_owned());
                }
            }
        });
        Some(Browser {
            child,
            to: std::fs::File::from(we_write),
            from: rx,
            next_id: 1,
            _profile: profile,
        })
    }

    /// Sends one command (`session`: a page's flat session) and returns
    /// the raw JSON answer.
    fn call(&mut self, session: Option<&str>, method: &str, params: &str) -> String {
        let id = self.next_id;
        self.next_id += 1;
        let sess = session
            .map(|s| format!(",\"sessionId\":\"{s}\""))
            .unwrap_or_default();
        let msg = format!("{{\"id\":{id}{sess},\"method\":\"{method}\",\"params\":{params}}}\0");
        self.to.write_all(msg.as_bytes()).unwrap();
        let deadline = Instant::now() + WAIT;
        let want = format!("{{\"id\":{id},");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            if m.starts_with(&want) {
                assert!(!m.contains("\"error\":{"), "{method}: {m}");
                return m;
            }
        }
    }

    /// Evaluates `expr` (which must produce a string) in the page.
    fn eval(&mut self, session: &str, expr: &str) -> String {
        let params = format!(
            "{{\"expression\":{},\"returnByValue\":true}}",
            json_str(expr)
        );
        let answer = self.call(Some(session), "Runtime.evaluate", &params);
        string_field(&answer, "value").unwrap_or_default()
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The first `"name":"..."` string in `json`, unescaped.
fn string_field(json: &str, name: &str) -> Option<String> {
    let start = json.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let mut out = String::new();
    let mut chars = json[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                c => out.push(c),
            },
            c => out.push(c),
        }
    }
    None
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    } as u32;
    let s: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c) << (18 - 6 * i);
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn post(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(format!("POST {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// What the page shows: `backend/server=state` for every server row, sorted.
const ROWS: &str = "JSON.stringify(Array.from(document.querySelectorAll('[data-backend]')).flatMap(b => Array.from(b.querySelectorAll('tr[data-server]')).map(r => b.dataset.backend + '/' + r.dataset.server + '=' + r.querySelector('.state').textContent)).sort())";

#[test]
fn the_status_page_shows_every_server_and_a_drain_without_a_reload() {
    let Some(mut browser) = Browser::start() else {
        skip(
            "the_status_page_shows_every_server_and_a_drain_within_two_seconds",
            "chromium is not installed (.ci/run installs it)",
        );
        return;
    };
    let (a, b, c) = (
        Backend::start(Mode::Echo),
        Backend::start(Mode::Echo),
        Backend::start(Mode::Echo),
    );
    let (web, db, aport) = (free_port(), free_port(), free_port());
    let _n = Nvelox::start(&format!(
        r#"
server: {{ workers: 2 }}
metrics: {{ enabled: true, bind: "127.0.0.1:{aport}" }}
admin: {{ enabled: true, bind: "127.0.0.1:{aport}" }}
listeners:
  - {{ name: web, bind: "127.0.0.1:{web}", backend: app }}
  - {{ name: db, bind: "127.0.0.1:{db}", backend: store }}
backends:
  - name: app
    health_check: {{ active: {{ type: tcp, interval: 1s }} }}
    servers: ["127.0.0.1:{}", "127.0.0.1:{}"]
  - name: store
    servers: ["127.0.0.1:{}"]
"#,
        a.port(),
        b.port(),
        c.port()
    ));
    let admin: SocketAddr = format!("127.0.0.1:{aport}").parse().unwrap();
    // Some traffic, so the page has numbers to show.
    for _ in 0..5 {
        let mut s = TcpStream::connect(("127.0.0.1", web)).unwrap();
        s.write_all(&payload(20_000, 3)).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut sink = Vec::new();
        s.read_to_end(&mut sink).unwrap();
    }
    let target = browser.call(
        None,
        "Target.createTarget",
        &format!("{{\"url\":\"http://{admin}/\"}}"),
    );
    let target_id = string_field(&target, "targetId").unwrap();
    let attached = browser.call(
        None,
        "Target.attachToTarget",
        &format!("{{\"targetId\":\"{target_id}\",\"flatten\":true}}"),
    );
    let session = string_field(&attached, "sessionId").unwrap();
    let (sa, sb, sc) = (
        format!("127.0.0.1:{}", a.port()),
        format!("127.0.0.1:{}", b.port()),
        format!("127.0.0.1:{}", c.port()),
    );
    let mut want = [
        format!("app/{sa}=up"),
        format!("app/{sb}=up"),
        format!("store/{sc}=up"),
    ];
    want.sort();
    let want_json = format!(
        "[{}]",
        want.iter()
            .map(|w| format!("\"{w}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut shown = String::new();
    assert!(
        eventually(WAIT, || {
            shown = browser.eval(&session, ROWS);
            shown == want_json
        }),
        "the page shows {shown}, expected {want_json}"
    );
    let listeners = browser.eval(
        &session,
        "JSON.stringify(Array.from(document.querySelectorAll('tr[data-listener]')).map(r => r.dataset.listener))",
    );
    assert_eq!(listeners, "[\"web\",\"db\"]");
    if let Some(path) = std::env::var_os("NVELOX_WRITE_SCREENSHOT") {
        // Let a second refresh fill in the rates and a health check.
        thread::sleep(Duration::from_millis(2200));
        let shot = browser.call(
            Some(&session),
            "Page.captureScreenshot",
            "{\"format\":\"png\"}",
        );
        let png = base64_decode(&string_field(&shot, "data").unwrap());
        std::fs::write(path, png).unwrap();
    }
    // A reload would lose this.
    browser.eval(&session, "window.__sameDocument = 'yes'; ''");
    let answer = post(admin, &format!("/api/v1/backends/app/drain?server={sa}"));
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let expected = format!("app/{sa}=draining");
    // The page shows it by itself (polled for: a loaded machine may delay
    // the browser's timers, so no deadline of 2 s here; the period below
    // is what promises it).
    assert!(
        eventually(3 * WAIT, || browser
            .eval(&session, ROWS)
            .contains(&expected)),
        "no {expected} on the page after the drain: {}",
        browser.eval(&session, ROWS)
    );
    // The 2 s promise: the page refreshes itself every second.
    let html = browser.eval(&session, "document.documentElement.outerHTML");
    let period: Option<u64> = html
        .split("setInterval(refresh, ")
        .nth(1)
        .and_then(|rest| rest.split(')').next()?.trim().parse().ok());
    assert!(
        period.is_some_and(|ms| ms <= 1000),
        "the page does not refresh itself every second: {period:?}"
    );
    let same = browser.eval(&session, "String(window.__sameDocument)");
    assert_eq!(same, "yes", "the page was reloaded");
}
