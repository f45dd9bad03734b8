//! Process-wide resource facts: the file-descriptor limit (and raising it),
//! how many fds are open, and resident memory.
//!
//! Owns only reading and setting `RLIMIT_NOFILE` and reading `/proc/self`;
//! what to do when fds run short (pausing accept, capping sessions) belongs to
//! the callers.

use std::io;

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
}
