//! Error log (fern, level + target from the config) and the access log.
//!
//! Both write through [`ReopenableFile`] so SIGUSR1 can reopen them after
//! logrotate moved the files. The access log is written by its own thread
//! from a bounded queue: an event loop never blocks on disk; if the disk is
//! so slow that the queue fills, lines are dropped and counted (reported in
//! the error log) rather than stalling traffic.

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::{LogTarget, LoggingSettings};

/// Why the logs could not be set up at start.
#[derive(Debug)]
pub enum LogError {
    Open {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    WriterThread(io::Error),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Open { what, path, source } => {
                write!(f, "cannot open {what} {}: {source}", path.display())
            }
            LogError::WriterThread(e) => write!(f, "cannot start access log writer: {e}"),
        }
    }
}

/// A file opened for appending that can be reopened in place.
#[derive(Clone)]
pub struct ReopenableFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)?;
        }
    }
    OpenOptions::new().create(true).append(true).open(path)
}

impl ReopenableFile {
    pub fn open(path: &Path) -> io::Result<ReopenableFile> {
        Ok(ReopenableFile {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(open_append(path)?)),
        })
    }

    /// Opens the path again (after logrotate moved the file). On failure
    /// the file open before stays in use: lines keep going to it.
    pub fn reopen(&self) -> io::Result<()> {
        let f = open_append(&self.path)?;
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = f;
        Ok(())
    }
}

impl Write for ReopenableFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.lock().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

/// Handles kept by `run` for SIGUSR1 and shutdown.
pub struct Logs {
    error_file: Option<ReopenableFile>,
    pub access: AccessLog,
    access_thread: Option<JoinHandle<()>>,
}

impl Logs {
    /// Reopens every log file (SIGUSR1), as the user the process runs as
    /// now. A file that cannot be opened again keeps the old one in use.
    pub fn reopen(&self) {
        if let Some(f) = &self.error_file {
            match f.reopen() {
                Ok(()) => log::info!("error log reopened"),
                Err(e) => log::warn!(
                    "{}",
                    ReopenFailed {
                        what: "error log",
                        path: &f.path,
                        error: &e
                    }
                ),
            }
        }
        // The writer thread reopens between two lines and reports.
        self.access.send(AccessMsg::Reopen);
    }

    /// Flushes and stops the access-log writer.
    pub fn finish(mut self) {
        self.access.send(AccessMsg::Stop);
        if let Some(t) = self.access_thread.take() {
            let _ = t.join();
        }
    }
}

/// The warning for a failed SIGUSR1 reopen.
struct ReopenFailed<'a> {
    what: &'static str,
    path: &'a Path,
    error: &'a io::Error,
}

impl fmt::Display for ReopenFailed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot reopen {} {}: {}; still writing to the file open before (after a privilege drop, the file and its folder must be writable by server.user)",
            self.what,
            self.path.display(),
            self.error
        )
    }
}

/// Installs the global logger and starts the access-log writer.
pub fn init(settings: &LoggingSettings) -> Result<Logs, LogError> {
    let mut dispatch = fern::Dispatch::new()
        .format(|out, message, record| {
            out.finish(format_args!(
                "{} {:<5} {}",
                timestamp(SystemTime::now()),
                record.level(),
                message
            ))
        })
        // fern passes everything; the global max level filters, so a reload
        // can raise or lower it (`log::set_max_level`).
        .level(log::LevelFilter::Trace);
    let error_file = match &settings.error_log {
        LogTarget::Stderr => {
            dispatch = dispatch.chain(io::stderr());
            None
        }
        LogTarget::File(path) => {
            let f = ReopenableFile::open(path).map_err(|source| LogError::Open {
                what: "error_log",
                path: path.clone(),
                source,
            })?;
            dispatch = dispatch.chain(Box::new(f.clone()) as Box<dyn Write + Send>);
            Some(f)
        }
    };
    // A second init in the same process (tests) keeps the first logger.
    let _ = dispatch.apply();
    log::set_max_level(settings.level);
    let (access, access_thread) = match &settings.access_log {
        None => (AccessLog::off(), None),
        Some(path) => {
            let f = ReopenableFile::open(path).map_err(|source| LogError::Open {
                what: "access_log",
                path: path.clone(),
                source,
            })?;
            let (log, thread) = AccessLog::start(f).map_err(LogError::WriterThread)?;
            (log, Some(thread))
        }
    };
    Ok(Logs {
        error_file,
        access,
        access_thread,
    })
}

pub enum AccessMsg {
    Line(String),
    Reopen,
    Stop,
}

/// Cheap, cloneable handle to the access-log writer.
#[derive(Clone)]
pub struct AccessLog {
    tx: Option<SyncSender<AccessMsg>>,
    dropped: Arc<AtomicU64>,
}

const ACCESS_QUEUE: usize = 16 * 1024;

impl AccessLog {
    pub fn off() -> AccessLog {
        AccessLog {
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    fn start(file: ReopenableFile) -> io::Result<(AccessLog, JoinHandle<()>)> {
        AccessLog::start_with(
            file,
            WriterSetup {
                queue: ACCESS_QUEUE,
                buffer: 64 * 1024,
                report_every: DROP_REPORT_INTERVAL,
            },
            |n| log::warn!("access log: {n} lines dropped (writer too slow)"),
        )
    }

    /// Starts the writer thread on any sink; `report(n)` is told about `n`
    /// newly dropped lines, at most once per `setup.report_every`.
    fn start_with<S: AccessSink>(
        sink: S,
        setup: WriterSetup,
        report: impl FnMut(u64) + Send + 'static,
    ) -> io::Result<(AccessLog, JoinHandle<()>)> {
        let (tx, rx) = mpsc::sync_channel(setup.queue);
        let dropped = Arc::new(AtomicU64::new(0));
        let d2 = Arc::clone(&dropped);
        let t = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || access_writer(sink, &setup, rx, &d2, report))?;
        Ok((
            AccessLog {
                tx: Some(tx),
                dropped,
            },
            t,
        ))
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Lines dropped so far because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn line(&self, line: String) {
        self.send(AccessMsg::Line(line));
    }

    fn send(&self, msg: AccessMsg) {
        if let Some(tx) = &self.tx {
            match tx.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Full(AccessMsg::Line(_))) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                // Control messages are worth a short wait.
                Err(TrySendError::Full(m)) => {
                    let _ = tx.send(m);
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
    }
}

/// Where the writer thread puts lines: a file that SIGUSR1 can reopen
/// (or a fake in tests).
trait AccessSink: Write + Send + 'static {
    fn reopen(&mut self) -> io::Result<()>;
    fn path(&self) -> &Path;
}

impl AccessSink for ReopenableFile {
    fn reopen(&mut self) -> io::Result<()> {
        ReopenableFile::reopen(self)
    }
    fn path(&self) -> &Path {
        &self.path
    }
}

struct WriterSetup {
    /// Lines queued at most; more are dropped and counted.
    queue: usize,
    /// Bytes buffered before a write to the sink.
    buffer: usize,
    report_every: Duration,
}

/// Dropped lines are reported at most this often while drops go on.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// When to report dropped lines: at the first drop, then at most once per
/// interval while drops continue, whether or not the queue ever empties.
struct DropReport {
    reported: u64,
    last: Option<Instant>,
    every: Duration,
}

impl DropReport {
    fn new(every: Duration) -> DropReport {
        DropReport {
            reported: 0,
            last: None,
            every,
        }
    }

    /// `Some(new drops)` when a report is due at `now`, given the total.
    fn due(&mut self, dropped: u64, now: Instant) -> Option<u64> {
        if dropped <= self.reported {
            return None;
        }
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < self.every)
        {
            return None;
        }
        let new = dropped - self.reported;
        self.reported = dropped;
        self.last = Some(now);
        Some(new)
    }
}

fn access_writer<S: AccessSink>(
    sink: S,
    setup: &WriterSetup,
    rx: Receiver<AccessMsg>,
    dropped: &AtomicU64,
    mut report: impl FnMut(u64),
) {
    let mut out = BufWriter::with_capacity(setup.buffer, sink);
    let mut drops = DropReport::new(setup.report_every);
    let mut check_drops = |drops: &mut DropReport| {
        let d = dropped.load(Ordering::Relaxed);
        // The clock is read only while there is something to report.
        if d > drops.reported {
            if let Some(n) = drops.due(d, Instant::now()) {
                report(n);
            }
        }
    };
    loop {
        let msg = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = out.flush();
                check_drops(&mut drops);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            AccessMsg::Line(l) => {
                let _ = out.write_all(l.as_bytes());
                let _ = out.write_all(b"\n");
                // Under sustained overload the queue never empties: report
                // from here too, not only when the writer goes idle.
                check_drops(&mut drops);
            }
            AccessMsg::Reopen => {
                let _ = out.flush();
                let sink = out.get_mut();
                match sink.reopen() {
                    Ok(()) => log::info!("access log reopened"),
                    Err(e) => log::warn!(
                        "{}",
                        ReopenFailed {
                            what: "access log",
                            path: sink.path(),
                            error: &e
                        }
                    ),
                }
            }
            AccessMsg::Stop => break,
        }
    }
    let _ = out.flush();
    // At exit whatever is left is reported, interval or not.
    let d = dropped.load(Ordering::Relaxed);
    if d > drops.reported {
        report(d - drops.reported);
    }
}

/// RFC 3339 UTC timestamp with milliseconds, without a date crate.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, dd) = civil_from_days(days as i64);
    let mut s = String::with_capacity(24);
    let _ = write!(
        s,
        "{y:04}-{m:02}-{dd:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    );
    s
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_lines_are_reported_at_once_then_at_most_once_per_interval() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut r = DropReport::new(Duration::from_secs(10));
        assert_eq!(r.due(0, t0), None, "nothing dropped");
        assert_eq!(r.due(3, t0), Some(3), "the first drop at once");
        assert_eq!(r.due(9, t0 + s), None, "within the interval");
        assert_eq!(r.due(20, t0 + 10 * s), Some(17), "all new drops since");
        assert_eq!(r.due(20, t0 + 30 * s), None, "no new drops");
        // Any interval, any clock: no overflow.
        let mut r = DropReport::new(Duration::MAX);
        assert_eq!(r.due(1, t0), Some(1));
        assert_eq!(r.due(2, t0 + 10 * s), None);
        assert_eq!(
            r.due(3, t0.checked_sub(s).unwrap_or(t0)),
            None,
            "a clock going back is no panic"
        );
    }

    /// Takes 1 ms per write: slower than any producer.
    struct SlowSink;

    impl Write for SlowSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(1));
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl AccessSink for SlowSink {
        fn reopen(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn path(&self) -> &Path {
            Path::new("slow")
        }
    }

    #[test]
    fn drops_are_reported_while_the_writer_stays_overloaded() {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let r2 = Arc::clone(&reports);
        let setup = WriterSetup {
            queue: 4,
            buffer: 1,
            report_every: Duration::from_millis(20),
        };
        let (log, thread) =
            AccessLog::start_with(SlowSink, setup, move |n| r2.lock().unwrap().push(n)).unwrap();
        // The queue never empties: lines keep coming until a report arrives.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut sent = 0u64;
        while reports.lock().unwrap().len() < 2 && Instant::now() < deadline {
            log.line("x".repeat(32));
            sent += 1;
        }
        let during = reports.lock().unwrap().clone();
        log.send(AccessMsg::Stop);
        thread.join().unwrap();
        assert!(
            during.len() >= 2,
            "no drop report during {sent} lines of sustained overload"
        );
        let total: u64 = reports.lock().unwrap().iter().sum();
        assert_eq!(
            total,
            log.dropped.load(Ordering::Relaxed),
            "every drop is reported"
        );
    }

    #[test]
    fn a_failed_reopen_keeps_writing_to_the_old_file() {
        let dir = std::env::temp_dir().join(format!("nvelox-reopen-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.log");
        let mut f = ReopenableFile::open(&path).unwrap();
        f.write_all(b"one\n").unwrap();
        std::fs::rename(&path, dir.join("a.log.1")).unwrap();
        // A directory where the file was: opening it fails, even as root.
        std::fs::create_dir(&path).unwrap();
        assert!(f.reopen().is_err());
        f.write_all(b"two\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("a.log.1")).unwrap(),
            "one\ntwo\n"
        );
        std::fs::remove_dir(&path).unwrap();
        f.reopen().unwrap();
        f.write_all(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(timestamp(t), "2026-11-18T11:06:40.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&timestamp(leap)[..10], "2000-02-29");
    }
}
