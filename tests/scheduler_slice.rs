//! `server.scheduler_slice` against the real binary: each event-loop thread
//! (`nvelox-N`) runs with the configured EEVDF slice, read back from
//! `/proc/PID/task/TID/sched` (`se.slice`); `off` and the default (key
//! absent) leave the kernel's default (the main thread's slice, which
//! nvelox never changes). SKIP on a kernel without custom slices for `SCHED_OTHER`
//! (before 6.12) or without `se.slice` in /proc.

mod common;

use std::time::Duration;

use common::*;

/// (thread name, se.slice) of every thread of `pid`.
fn thread_slices(pid: u32) -> Vec<(String, Option<Duration>)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let sched = std::fs::read_to_string(t.path().join("sched")).ok()?;
            Some((comm.trim().to_string(), reactor::sys::parse_slice(&sched)))
        })
        .collect()
}

/// Whether this kernel reports and honours a custom slice: tried on a
/// thread of the test itself.
fn kernel_has_custom_slices() -> Result<(), String> {
    std::thread::spawn(|| {
        let Some(default) = reactor::sys::thread_slice() else {
            return Err("no se.slice in /proc/thread-self/sched".to_string());
        };
        let want = Duration::from_micros(700);
        reactor::sys::set_thread_slice(Some(want)).map_err(|e| format!("sched_setattr: {e}"))?;
        let got = reactor::sys::thread_slice();
        if got == Some(default) {
            return Err("the kernel ignores sched_runtime for SCHED_OTHER (< 6.12)".into());
        }
        Ok(())
    })
    .join()
    .unwrap()
}

fn config(line: &str) -> String {
    let port = free_port();
    format!(
        r#"
server:
  workers: 2
{line}
listeners:
  - {{ name: web, bind: "127.0.0.1:{port}", backend: app }}
backends:
  - {{ name: app, servers: ["127.0.0.1:9"] }}
"#
    )
}

/// Starts nvelox with `line` under `server:` and returns the loop threads'
/// slices and the main thread's, once both loops exist and (when `want` is
/// given) have applied it: a loop applies the slice in its first callback,
/// which may come a moment after the "started" line.
fn slices_with(line: &str, want: Option<Duration>) -> (Vec<Option<Duration>>, Option<Duration>) {
    let n = Nvelox::start(&config(line));
    let loops_of = |s: &[(String, Option<Duration>)]| -> Vec<Option<Duration>> {
        s.iter()
            .filter(|(c, _)| c.starts_with("nvelox-"))
            .map(|(_, s)| *s)
            .collect()
    };
    let mut seen = Vec::new();
    eventually(WAIT, || {
        seen = thread_slices(n.pid());
        let loops = loops_of(&seen);
        loops.len() == 2 && want.map_or(true, |w| loops.iter().all(|s| *s == Some(w)))
    });
    let main = seen
        .iter()
        .find(|(c, _)| c == "nvelox")
        .and_then(|(_, s)| *s);
    (loops_of(&seen), main)
}

#[test]
fn loop_threads_get_the_configured_slice_and_off_leaves_the_default() {
    if let Err(why) = kernel_has_custom_slices() {
        skip("scheduler_slice", &why);
        return;
    }
    let two = Some(Duration::from_millis(2));
    let (loops, main) = slices_with("  scheduler_slice: 2ms", two);
    assert_eq!(loops, vec![two; 2]);
    assert!(main.is_some() && main != two);

    let quarter = Some(Duration::from_micros(250));
    let (loops, _) = slices_with("  scheduler_slice: 250us", quarter);
    assert_eq!(loops, vec![quarter; 2]);

    // `off` and the default (absent): the loops keep what the kernel gave
    // them, like the main thread.
    for line in ["  scheduler_slice: off", ""] {
        let (loops, main) = slices_with(line, None);
        assert!(main.is_some());
        assert_eq!(loops, vec![main; 2], "{line:?}");
    }
}
