//! Error log (fern, level + target from the config) and the access log.
//!
//! Both write through [`ReopenableFile`] so SIGUSR1 can reopen them after
//! logrotate moved the files. The access log is written by its own thread
//! from a bounded queue: an event loop never blocks on disk; if the disk is
//! so slow that the queue fills, lines are dropped and counted (reported in
//! the error log) rather than stalling traffic.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{LogTarget, LoggingSettings};

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
    /// Reopens every log file (SIGUSR1).
    pub fn reopen(&self) {
        if let Some(f) = &self.error_file {
            if let Err(e) = f.reopen() {
                log::error!("cannot reopen error log {}: {e}", f.path.display());
            }
        }
        self.access.send(AccessMsg::Reopen);
        log::info!("log files reopened");
    }

    /// Flushes and stops the access-log writer.
    pub fn finish(mut self) {
        self.access.send(AccessMsg::Stop);
        if let Some(t) = self.access_thread.take() {
            let _ = t.join();
        }
    }
}

/// Installs the global logger and starts the access-log writer.
pub fn init(settings: &LoggingSettings) -> Result<Logs, String> {
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
            let f = ReopenableFile::open(path)
                .map_err(|e| format!("cannot open error_log {}: {e}", path.display()))?;
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
            let f = ReopenableFile::open(path)
                .map_err(|e| format!("cannot open access_log {}: {e}", path.display()))?;
            let (log, thread) =
                AccessLog::start(f).map_err(|e| format!("cannot start access log writer: {e}"))?;
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
        let (tx, rx) = mpsc::sync_channel(ACCESS_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let d2 = Arc::clone(&dropped);
        let t = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || access_writer(file, rx, d2))?;
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

fn access_writer(file: ReopenableFile, rx: Receiver<AccessMsg>, dropped: Arc<AtomicU64>) {
    let mut out = BufWriter::with_capacity(64 * 1024, file.clone());
    let mut reported = 0;
    loop {
        let msg = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = out.flush();
                let d = dropped.load(Ordering::Relaxed);
                if d > reported {
                    log::warn!(
                        "access log: {} lines dropped (writer too slow)",
                        d - reported
                    );
                    reported = d;
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            AccessMsg::Line(l) => {
                let _ = out.write_all(l.as_bytes());
                let _ = out.write_all(b"\n");
            }
            AccessMsg::Reopen => {
                let _ = out.flush();
                if let Err(e) = file.reopen() {
                    log::error!("cannot reopen access log: {e}");
                }
            }
            AccessMsg::Stop => break,
        }
    }
    let _ = out.flush();
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
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(timestamp(t), "2026-11-18T11:06:40.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&timestamp(leap)[..10], "2000-02-29");
    }
}
