//! Test harness: start the real `nvelox` binary on a generated config,
//! backends on 127.0.0.1 port 0, free-port helpers, bounded waits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(10);
/// How long a start may take: binding 1,000 ports in a debug build on a
/// loaded 2-core machine took more than `WAIT` once.
pub const START_WAIT: Duration = Duration::from_secs(30);

/// A unique scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "nvelox-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Ports for nvelox's listeners come from below the kernel's ephemeral
/// range: a port that a port-0 bind (every backend and client of the tests
/// running in parallel) or an outgoing connection gets can never be one of
/// them, so a port checked free stays free until nvelox binds it.
fn non_ephemeral_ports(n: u16) -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10000u16, ephemeral_low.saturating_sub(n));
    assert!(
        high > low,
        "no room for {n} ports below the ephemeral range"
    );
    (low, high)
}

/// A pseudo-random start in `[low, high)`, different per call and process.
fn pick(low: u16, high: u16) -> u16 {
    static SEED: AtomicU64 = AtomicU64::new(0);
    let mut seed = SEED.load(Ordering::Relaxed);
    if seed == 0 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        seed = t ^ (u64::from(std::process::id()) << 32);
    }
    let next = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    SEED.store(next, Ordering::Relaxed);
    low + ((next >> 33) % u64::from(high - low)) as u16
}

/// Handed out by this test process already: parallel tests of one binary
/// never get the same port.
fn claim(ports: std::ops::Range<u16>) -> bool {
    static CLAIMED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut claimed = CLAIMED.lock().unwrap_or_else(|p| p.into_inner());
    if ports.clone().any(|p| claimed.contains(&p)) {
        return false;
    }
    claimed.extend(ports);
    true
}

fn free_everywhere(p: u16) -> bool {
    let v6 = TcpListener::bind("[::1]:0").is_ok();
    let hosts: &[&str] = if v6 {
        &["0.0.0.0", "::", "127.0.0.1", "127.0.0.2"]
    } else {
        &["0.0.0.0", "127.0.0.1", "127.0.0.2"]
    };
    hosts
        .iter()
        .all(|h| TcpListener::bind((*h, p)).is_ok() && std::net::UdpSocket::bind((*h, p)).is_ok())
}

/// A port for an nvelox listener, free for TCP and UDP on every address
/// (wildcard, 127.0.0.1, 127.0.0.2, ::1), outside the ephemeral range and
/// not handed out before by this process (see [`non_ephemeral_ports`]).
pub fn free_port() -> u16 {
    free_port_range(1)
}

/// `n` consecutive ports, each as [`free_port`] promises.
pub fn free_port_range(n: u16) -> u16 {
    let (low, high) = non_ephemeral_ports(n);
    for _ in 0..500 {
        let base = pick(low, high);
        if (base..base + n).all(free_everywhere) && claim(base..base + n) {
            return base;
        }
    }
    panic!("no free port range of {n}");
}

/// Says that `test` did not run its checks and why: written straight to
/// stderr, which the test harness does not capture (unlike `eprintln!`), so
/// the line shows in the output of a passing run.
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

/// True when the tests run as root (CI does; some tests need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The running binary; SIGKILLed on drop if still alive.
pub struct Nvelox {
    pub child: Child,
    pub dir: TempDir,
    pub stderr: Arc<Mutex<Vec<String>>>,
    lines: Receiver<String>,
    /// The thread copying the child's stderr; joined once the child exited
    /// so that `stderr_text` is complete after `wait_exit`.
    reader: Option<thread::JoinHandle<()>>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_nvelox")
}

impl Nvelox {
    /// Writes `yaml` to a temp dir and starts `nvelox -c` on it; waits for
    /// the "started" line. `{dir}` in the yaml is replaced by the temp dir.
    pub fn start(yaml: &str) -> Nvelox {
        let n = Nvelox::spawn(yaml);
        n.wait_for_line("started", START_WAIT);
        n
    }

    pub fn spawn(yaml: &str) -> Nvelox {
        Nvelox::spawn_with(yaml, |_| {})
    }

    /// Waits until a stderr line contains `needle` (lines already seen count).
    pub fn wait_for_line(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "no stderr line containing {needle:?}; got:\n{}",
                    self.stderr_text()
                );
            }
            let _ = self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)));
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety concerns.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for exit with a timeout; returns the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                // The child is gone, so its stderr is at EOF: the reader ends.
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return st.code();
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nvelox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with args; returns (code, stdout, stderr).
pub fn run_bin(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("nvelox {args:?} did not exit");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A TCP backend on its own thread. Modes decide what a connection gets.
pub struct Backend {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

#[derive(Clone, Copy)]
pub enum Mode {
    /// Writes `name\n`, then echoes until EOF, then closes.
    NamedEcho(&'static str),
    /// Echoes until EOF, then closes (byte-exact, no greeting).
    Echo,
    /// Writes `name:port\n` (the port it was reached on) and closes.
    Port,
}

impl Backend {
    pub fn start(mode: Mode) -> Backend {
        Backend::on(TcpListener::bind("127.0.0.1:0").unwrap(), mode)
    }

    pub fn on(l: TcpListener, mode: Mode) -> Backend {
        let addr = l.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a2, s2) = (Arc::clone(&accepted), Arc::clone(&stop));
        let handle = thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                // Blocking accept; `halt` wakes it with a connection of its own.
                while let Ok((s, _)) = l.accept() {
                    if s2.load(Ordering::Relaxed) {
                        break;
                    }
                    a2.fetch_add(1, Ordering::Relaxed);
                    thread::spawn(move || serve(s, mode, addr));
                }
            })
            .unwrap();
        Backend {
            addr,
            accepted,
            stop,
            handle: Some(handle),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn count(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes the listening socket (connects are refused).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
            let _ = h.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.halt();
    }
}

fn serve(mut s: TcpStream, mode: Mode, addr: SocketAddr) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    match mode {
        Mode::NamedEcho(name) => {
            let _ = s.write_all(format!("{name}\n").as_bytes());
            echo(s);
        }
        Mode::Echo => echo(s),
        Mode::Port => {
            let _ = s.write_all(format!("port:{}\n", addr.port()).as_bytes());
        }
    }
}

fn echo(mut s: TcpStream) {
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
}

/// Connects and reads the first line the backend sends.
pub fn first_line(addr: SocketAddr) -> String {
    let s = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.trim().to_string()
}

/// Deterministic pseudo-random bytes.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Polls `cond` every 10 ms until true or the timeout.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    cond()
}

impl Nvelox {
    /// [`Nvelox::spawn`] with a hook to adjust the command first (e.g. a
    /// `pre_exec` that lowers RLIMIT_NOFILE).
    pub fn spawn_with(yaml: &str, setup: impl FnOnce(&mut Command)) -> Nvelox {
        let dir = TempDir::new("run");
        let yaml = yaml.replace("{dir}", dir.0.to_str().unwrap());
        let cfg = dir.path("nvelox.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("-c")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        setup(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let store = Arc::clone(&stderr);
        let reader = thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if std::env::var_os("NVELOX_TEST_VERBOSE").is_some() {
                    eprintln!("[nvelox] {line}");
                }
                store.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Nvelox {
            child,
            dir,
            stderr,
            lines: rx,
            reader: Some(reader),
        }
    }

    /// How many stderr lines contain `needle` so far.
    /// Sends SIGHUP and waits for one more `expect` line than before it
    /// ("configuration reloaded" is logged once every loop switched).
    pub fn reload(&self, expect: &str) {
        let before = self.stderr_text().matches(expect).count();
        self.signal(libc::SIGHUP);
        assert!(
            eventually(WAIT, || self.stderr_text().matches(expect).count() > before),
            "no {expect:?} after SIGHUP:\n{}",
            self.stderr_text()
        );
    }

    pub fn count_lines(&self, needle: &str) -> usize {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

/// A backend that sends `payload` to its first client, waits a moment and
/// then resets the connection (SO_LINGER 0).
pub fn resetting_backend(payload: Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            if s.write_all(&payload).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
    });
    addr
}

/// Reads `s` to its end and asserts it got `expected` and then a reset.
pub fn expect_reset_after(mut s: TcpStream, expected: &[u8]) {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = Vec::new();
    let r = s.read_to_end(&mut buf);
    assert_eq!(buf, expected);
    let e = r.expect_err("a reset must reach the client as a reset, not a FIN");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
}

/// A backend that writes to its first client as fast as it can, up to
/// 256 MiB, until a write blocks for 500 ms; reports how much it wrote.
pub fn firehose_backend() -> (SocketAddr, mpsc::Receiver<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0usize;
        while sent < (256 << 20) {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break, // blocked: backpressure reached the backend
            }
        }
        let _ = tx.send(sent);
    });
    (addr, rx)
}

/// A `kB` figure of `/proc/PID/status`, e.g. `VmRSS:` (resident now) or
/// `VmHWM:` (the peak resident size so far).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
