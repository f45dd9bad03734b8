//! Real HTTP peers for the HTTP tests: a Python `http.server` origin, an
//! nginx origin (generated config in a temp dir, single process), curl and
//! Python `http.client` scripts as clients. Each helper returns `None` when
//! its tool is absent; the test then prints `SKIP` and returns.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, TempDir, WAIT};

/// Whether `tool` runs (`tool --version` or `-v` exits 0).
pub fn have(tool: &str) -> bool {
    ["--version", "-v"].iter().any(|flag| {
        Command::new(tool)
            .arg(flag)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The Python origin: `python3 origin.py NAME LOG [die]`. Every request is
/// appended to LOG as `METHOD PATH`; the answer is 200 with `X-Origin: NAME`
/// and the body NAME, except: `/headers` (the request headers as text),
/// `/slow` (after 3 s), `POST /echo` (the request body, Content-Length or
/// chunked, echoed back chunked), `/die` with `die` given (the process kills
/// itself after reading the request), and a WebSocket upgrade (frames
/// echoed back until a close frame).
const PY_ORIGIN: &str = r#"
import base64, hashlib, http.server, os, signal, struct, sys, time
name, log = sys.argv[1], sys.argv[2]
die = len(sys.argv) > 3
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))
    def send(self, body, chunked=False):
        self.send_response(200)
        self.send_header("X-Origin", name)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 65536):
                piece = body[i:i + 65536]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        self.wfile.flush()
    def common(self, body):
        with open(log, "a") as f:
            f.write("%s %s\n" % (self.command, self.path))
        if self.path.startswith("/die") and die:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.path.startswith("/slow"):
            time.sleep(3)
        if self.path.startswith("/headers"):
            return self.send(str(self.headers).encode())
        if self.path.startswith("/echo"):
            return self.send(body, chunked=True)
        self.send(name.encode())
    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        self.common(b"")
    def do_POST(self):
        self.common(self.body())
    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        while True:
            b1, b2 = self.rfile.read(2)
            n = b2 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4)
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(self.rfile.read(n)))
            op = b1 & 0x0F
            head = bytes([0x80 | op])
            head += bytes([len(data)]) if len(data) < 126 else b"\x7e" + struct.pack(">H", len(data))
            self.wfile.write(head + data)
            self.wfile.flush()
            if op == 8:
                self.close_connection = True
                return
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
s.daemon_threads = True
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

/// A Python `http.server` origin process, killed on drop.
pub struct PyOrigin {
    pub addr: SocketAddr,
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl PyOrigin {
    pub fn start(name: &str) -> Option<PyOrigin> {
        PyOrigin::spawn(name, false)
    }

    /// An origin that kills itself when asked for `/die`.
    pub fn mortal(name: &str) -> Option<PyOrigin> {
        PyOrigin::spawn(name, true)
    }

    fn spawn(name: &str, die: bool) -> Option<PyOrigin> {
        if !have("python3") {
            return None;
        }
        let dir = TempDir::new("py-origin");
        let script = dir.path("origin.py");
        std::fs::write(&script, PY_ORIGIN).unwrap();
        let log = dir.path("requests.log");
        let mut cmd = Command::new("python3");
        cmd.arg(&script).arg(name).arg(&log);
        if die {
            cmd.arg("die");
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().ok()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the origin's port");
        Some(PyOrigin {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            log,
            _dir: dir,
        })
    }

    /// `METHOD PATH` of every request received so far.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits (bounded) for the process to end; true if it did.
    pub fn exited(&mut self) -> bool {
        crate::common::eventually(WAIT, || self.child.try_wait().ok().flatten().is_some())
    }
}

impl Drop for PyOrigin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An nginx origin: one process (`master_process off`, `-g 'daemon off;'`),
/// config, logs, pid and temp folders in a temp dir, serving `www/`,
/// `/headers` (the forwarding headers it received) and `/conn` (nginx's
/// connection number and the requests made on it). nginx cannot listen on
/// port 0: a free port is picked and another one tried on a collision.
pub struct Nginx {
    pub addr: SocketAddr,
    pub dir: TempDir,
    child: Child,
}

impl Nginx {
    /// `files`: (name, content) served from `www/`.
    pub fn start(files: &[(&str, &[u8])]) -> Option<Nginx> {
        // Not every PATH holds /usr/sbin, where packages put nginx.
        let bin = ["nginx", "/usr/sbin/nginx"].into_iter().find(|b| have(b))?;
        let dir = TempDir::new("nginx");
        let www = dir.path("www");
        std::fs::create_dir_all(&www).unwrap();
        for (name, content) in files {
            std::fs::write(www.join(name), content).unwrap();
        }
        // Proves that the server on the port is this nginx.
        let token = format!("nginx-{}-{:?}", std::process::id(), Instant::now());
        std::fs::write(www.join("ready.txt"), &token).unwrap();
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.path("nginx.conf");
            std::fs::write(&conf, nginx_conf(&dir, port)).unwrap();
            let mut child = Command::new(bin)
                .arg("-p")
                .arg(&dir.0)
                .arg("-e")
                .arg(dir.path("error.log"))
                .arg("-c")
                .arg(&conf)
                .args(["-g", "daemon off;"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    break; // most likely the port was taken: try another
                }
                if get_text(addr, "/ready.txt").is_some_and(|t| t.ends_with(&token)) {
                    return Some(Nginx { addr, dir, child });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path("error.log")).unwrap_or_default()
        );
    }
}

impl Nginx {
    /// The request lines nginx served (its access log), the readiness
    /// probe left out.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path("access.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains("/ready.txt"))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_conf(dir: &TempDir, port: u16) -> String {
    let d = dir.0.display();
    let user = if crate::common::is_root() {
        "user root;\n"
    } else {
        ""
    };
    format!(
        "{user}master_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n  log_format line '$request';\n  access_log {d}/access.log line;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  keepalive_requests 100000;\n  server {{\n    listen 127.0.0.1:{port};\n    root {d}/www;\n    location = /headers {{\n      default_type text/plain;\n      return 200 \"xff=$http_x_forwarded_for proto=$http_x_forwarded_proto port=$http_x_forwarded_port\";\n    }}\n    location = /conn {{\n      default_type text/plain;\n      return 200 \"$connection $connection_requests\";\n    }}\n  }}\n}}\n"
    )
}

/// One `GET path` with `Connection: close`; the whole answer as text.
pub fn get_text(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Runs curl with `args` (bounded by `--max-time 20`).
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs")
}

/// Runs a Python script (`http.client` clients) with `args`; its stdout.
pub fn python(script: &str, args: &[&str]) -> Output {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs")
}

/// A keep-alive `http.client` connection driven line by line on stdin:
/// `get PATH` prints `STATUS ORIGIN CONNECTION LOCAL_PORT BODY` (ORIGIN
/// from `X-Backend-Server`, `-` when absent; whitespace in BODY becomes
/// `|`); `closed?` prints `closed` when
/// the server closed the connection, else `open`.
const PY_CLIENT: &str = r#"
import http.client, select, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=20)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "get":
        conn.request("GET", cmd[1])
        r = conn.getresponse()
        body = "|".join(r.read().decode(errors="replace").split()) or "-"
        port = conn.sock.getsockname()[1] if conn.sock else 0
        print(r.status, r.getheader("X-Backend-Server", "-"), r.getheader("Connection", "-"), port, body, flush=True)
    elif cmd[0] == "closed?":
        ready, _, _ = select.select([conn.sock], [], [], 10)
        print("closed" if ready and conn.sock.recv(1) == b"" else "open", flush=True)
"#;

/// A Python `http.client` keep-alive client process (see [`PY_CLIENT`]).
pub struct PyClient {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
}

impl PyClient {
    pub fn connect(port: u16) -> PyClient {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(PY_CLIENT)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let lines = BufReader::new(child.stdout.take().unwrap());
        PyClient { child, lines }
    }

    /// Sends one command line and returns the answer's fields.
    pub fn ask(&mut self, cmd: &str) -> Vec<String> {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the client script died on {cmd:?}");
        line.split_whitespace().map(str::to_string).collect()
    }
}

impl Drop for PyClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
