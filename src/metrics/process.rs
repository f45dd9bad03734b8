//! The standard `process_*` figures, read from `/proc/self` at scrape time
//! (Linux): resident and virtual memory, open and maximum file
//! descriptors, CPU seconds and start time. A figure that cannot be read
//! is left out, never guessed.

use std::fs;

/// Calls `emit(name, type, help, value)` for each figure that could be read.
pub fn render(emit: &mut dyn FnMut(&str, &str, &str, f64)) {
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    if let Some(stat) = fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(stat_fields)
    {
        if ticks > 0.0 {
            emit(
                "process_cpu_seconds_total",
                "counter",
                "Total user and system CPU time spent in seconds.",
                (stat.utime + stat.stime) as f64 / ticks,
            );
            if let Some(boot) = boot_time() {
                emit(
                    "process_start_time_seconds",
                    "gauge",
                    "Start time of the process since unix epoch in seconds.",
                    boot as f64 + stat.starttime as f64 / ticks,
                );
            }
        }
        emit(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            stat.vsize as f64,
        );
        if page > 0.0 {
            emit(
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                stat.rss as f64 * page,
            );
        }
    }
    if let Ok(dir) = fs::read_dir("/proc/self/fd") {
        // Minus the descriptor of the directory listing itself.
        let open = dir.count().saturating_sub(1);
        emit(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            open as f64,
        );
    }
    let max = reactor::sys::fd_limit();
    emit(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        max as f64,
    );
}

#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    starttime: u64,
    vsize: u64,
    rss: u64,
}

/// Fields of `/proc/self/stat` after the command name (which may contain
/// spaces and parentheses: split at the last `)`).
fn stat_fields(s: &str) -> Option<Stat> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); field n is f[n - 3].
    let n = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        utime: n(14)?,
        stime: n(15)?,
        starttime: n(22)?,
        vsize: n(23)?,
        rss: n(24)?,
    })
}

fn boot_time() -> Option<u64> {
    let s = fs::read_to_string("/proc/stat").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_a_command_name_with_spaces_and_parens() {
        let line = "123 (a b) c)) S 1 1 1 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 4 0 5000 1000000 250 18446744073709551615";
        let s = stat_fields(line).unwrap();
        assert_eq!(
            s,
            Stat {
                utime: 7,
                stime: 3,
                starttime: 5000,
                vsize: 1_000_000,
                rss: 250
            }
        );
        assert_eq!(stat_fields("garbage"), None);
    }

    #[test]
    fn this_process_reports_every_figure() {
        let mut names = Vec::new();
        render(&mut |n, _, _, v| {
            assert!(v >= 0.0);
            names.push(n.to_string());
        });
        for want in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
    }
}
