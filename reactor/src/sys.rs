//! Process-wide resource facts: the file-descriptor limit (and raising it),
//! how many fds are open, and resident memory; and the calling thread's
//! scheduler slice.
//!
//! Owns only reading and setting `RLIMIT_NOFILE`, the thread's EEVDF slice
//! and reading `/proc/self`; what to do when fds run short (pausing accept,
//! capping sessions) or which slice to ask for belongs to the callers.

use std::io;
use std::time::Duration;

fn get_nofile() -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim)
}

fn set_nofile(lim: &libc::rlimit) -> io::Result<()> {
    // SAFETY: `lim` points at a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's ceiling for any single process (`fs.nr_open`), used when the
/// hard limit is "unlimited", which RLIMIT_NOFILE's soft limit cannot be.
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns
/// `(soft now, hard)`. An unprivileged process may always do this.
pub fn raise_fd_limit() -> io::Result<(u64, u64)> {
    let lim = get_nofile()?;
    let hard = lim.rlim_max;
    if lim.rlim_cur < hard {
        let mut target = hard;
        if hard == libc::RLIM_INFINITY {
            target = nr_open().unwrap_or(1 << 20);
        }
        set_nofile(&libc::rlimit {
            rlim_cur: target,
            rlim_max: hard,
        })?;
    }
    let now = get_nofile()?;
    Ok((now.rlim_cur, now.rlim_max))
}

/// The current soft `RLIMIT_NOFILE` (0 if it cannot be read).
pub fn fd_limit() -> u64 {
    get_nofile().map(|l| l.rlim_cur).unwrap_or(0)
}

/// How many file descriptors this process has open right now (entries of
/// `/proc/self/fd`, not counting the one used to list them). For tests and
/// benchmarks; 0 if `/proc` is unavailable.
pub fn open_fds() -> usize {
    match std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself is one of the listed entries.
        Ok(dir) => dir.count().saturating_sub(1),
        Err(_) => 0,
    }
}

/// Resident set size in bytes, from `/proc/self/statm`.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = u64::try_from(page).ok().filter(|p| *p > 0)?;
    Some(pages * page)
}

/// The shortest and longest slice Linux accepts for a `SCHED_OTHER` task
/// (it clamps `sched_runtime` to this range).
pub const MIN_SLICE: Duration = Duration::from_micros(100);
pub const MAX_SLICE: Duration = Duration::from_millis(100);

/// Asks the kernel for a custom EEVDF slice for the calling thread
/// (`sched_setattr` with `sched_runtime`, Linux 6.12+), keeping its policy
/// (`SCHED_OTHER`) and nice value; `None` goes back to the kernel's default
/// slice. Under EEVDF a waking task whose slice is shorter than the running
/// one's preempts it at once (`PREEMPT_SHORT`) instead of waiting for the
/// end of that task's slice, so an event loop that sleeps and wakes often
/// gets its core back sooner from a CPU-bound neighbour.
///
/// Older kernels ignore `sched_runtime` for `SCHED_OTHER` (the call
/// succeeds and nothing changes); a kernel or sandbox without the system
/// call gives `ENOSYS`/`EPERM`/`EINVAL`, returned as an error for the caller
/// to log: nothing else depends on it.
pub fn set_thread_slice(slice: Option<Duration>) -> io::Result<()> {
    // SAFETY: getpriority has no memory effects; `who` 0 = the calling
    // thread (Linux applies PRIO_PROCESS to a single thread).
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, 0)
    };
    if nice == -1 && io::Error::last_os_error().raw_os_error().unwrap_or(0) != 0 {
        return Err(io::Error::last_os_error());
    }
    let runtime = slice.map_or(0, |s| {
        let s = s.clamp(MIN_SLICE, MAX_SLICE);
        u64::try_from(s.as_nanos()).unwrap_or(u64::MAX)
    });
    let attr = libc::sched_attr {
        // The first version of the struct (48 bytes): no utilization clamps.
        size: 48,
        sched_policy: libc::SCHED_OTHER as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: runtime,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: `attr` is a valid, initialised `struct sched_attr` whose `size`
    // (48, SCHED_ATTR_SIZE_VER0) is no larger than the Rust struct, alive for
    // the duration of the call; pid 0 = the calling thread; flags 0. The
    // kernel only reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0 as libc::pid_t,
            &attr as *const libc::sched_attr,
            0 as libc::c_uint,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread's EEVDF slice as the kernel reports it (`se.slice` in
/// `/proc/thread-self/sched`); `None` when that file or line is absent
/// (kernels before EEVDF, or without `CONFIG_SCHED_DEBUG`).
pub fn thread_slice() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
    parse_slice(&text)
}

/// `se.slice` out of a `/proc/.../sched` text, for tests that look at other
/// threads or processes.
pub fn parse_slice(sched: &str) -> Option<Duration> {
    sched.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        if key.trim() != "se.slice" {
            return None;
        }
        value.trim().parse::<u64>().ok().map(Duration::from_nanos)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_limit_is_raised_to_hard() {
        let (soft, hard) = raise_fd_limit().unwrap();
        assert!(soft > 0);
        if hard != libc::RLIM_INFINITY {
            assert_eq!(soft, hard);
        }
        assert_eq!(fd_limit(), soft);
    }

    #[test]
    fn open_fds_sees_stdio_and_rss_is_plausible() {
        // stdin/stdout/stderr at least.
        assert!(open_fds() >= 3);
        let rss = rss_bytes().unwrap();
        assert!(rss > 100 * 1024 && rss < 64 << 30, "{rss}");
    }

    #[test]
    fn slice_is_applied_and_reset_on_this_thread() {
        // A thread of its own, so the test harness's threads keep theirs.
        std::thread::spawn(|| {
            let Some(default) = thread_slice() else {
                eprintln!("SKIP: no se.slice in /proc/thread-self/sched");
                return;
            };
            let want = Duration::from_micros(300);
            if let Err(e) = set_thread_slice(Some(want)) {
                eprintln!("SKIP: sched_setattr refused: {e}");
                return;
            }
            let got = thread_slice().unwrap();
            if got == default {
                eprintln!("SKIP: this kernel ignores sched_runtime for SCHED_OTHER (< 6.12)");
                return;
            }
            assert_eq!(got, want);
            // Clamped to the kernel's range rather than refused.
            set_thread_slice(Some(Duration::from_nanos(1))).unwrap();
            assert_eq!(thread_slice(), Some(MIN_SLICE));
            set_thread_slice(None).unwrap();
            assert_eq!(thread_slice(), Some(default));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn setting_the_slice_keeps_the_nice_value() {
        std::thread::spawn(|| {
            // SAFETY: setpriority/getpriority on the calling thread only.
            let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            let raised = (before + 3).min(19);
            // SAFETY: as above; raising one's own nice needs no privilege.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, raised) };
            if set_thread_slice(Some(Duration::from_micros(500))).is_err() {
                eprintln!("SKIP: sched_setattr refused");
                return;
            }
            // SAFETY: as above.
            assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, raised);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn parses_se_slice() {
        let text = "x (1, #threads: 1)\nse.exec_start : 1.0\nse.slice                                     :              1400000\n";
        assert_eq!(parse_slice(text), Some(Duration::from_micros(1400)));
        assert_eq!(parse_slice("se.slicex : 5\n"), None);
        assert_eq!(parse_slice(""), None);
    }
}
