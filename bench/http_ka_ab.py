#!/usr/bin/env python3
"""Same-run A/B of HTTP keep-alive CPU per request (section 8.1's load:
wrk -t1 -c50 through `protocol: http` / HAProxy `mode http` to the nginx
origin): nvelox (and a second nvelox binary with --nvelox-b) and HAProxy,
interleaved rounds, per run user and system CPU per request, voluntary and
involuntary context switches per request, and with --perf-stat the proxy's
system calls per request counted by `perf stat` (tracepoints: no ptrace
slow-down, unlike strace).

  python3 bench/http_ka_ab.py --rounds 5 --group-nice -10
  python3 bench/http_ka_ab.py --nvelox-b /tmp/nvelox.old --perf-stat

Proxies on core 1, wrk and the origin on core 0 (bench/bench.py's set-up).
Prints a line per run and the medians; wrap it in
`flock /work/notes/bench.lock`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as B  # noqa: E402
import http_tls  # noqa: E402
from shared_cpu import ctx_switches, hog_argv, own_autogroup  # noqa: E402

EVENTS = ("syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,"
          "syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_read,"
          "syscalls:sys_enter_write,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_readv,"
          "syscalls:sys_enter_writev,context-switches,cpu-migrations,sched:sched_waking,"
          "ipi:ipi_send_cpu,irq_vectors:call_function_single_entry,irq_vectors:reschedule_entry,"
          "sched:sched_wake_idle_without_ipi,skb:kfree_skb,skb:consume_skb,net:net_dev_xmit")


def median(v: list[float]) -> float:
    v = sorted(v)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def one_run(name: str, pid: int, port: int, secs: float, perf_stat: bool, work: Path,
            record: bool = False) -> dict:
    u0, s0 = B.cpu_split(pid)
    v0, n0 = ctx_switches(pid)
    ps = None
    out = work / f"perf-{name}.txt"
    if perf_stat:
        ps = subprocess.Popen(["perf", "stat", "-x", ",", "-e", EVENTS, "-p", str(pid), "-o", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)
    if record:
        ps = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-o",
                               str(work / f"perf-{name}.data"), "-p", str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
    res = B.wrk(port, secs, False)
    if "error" in res:
        print(f"{name}: {res['error']}", flush=True)
    if ps:
        ps.send_signal(2)
        ps.wait(20)
    u1, s1 = B.cpu_split(pid)
    v1, n1 = ctx_switches(pid)
    n = res.get("requests", 0) or 1
    row = {"name": name, "rps": res.get("rps", 0), "p50": res.get("p50_us"), "p99": res.get("p99_us"),
           "user": (u1 - u0) / n * 1e6, "sys": (s1 - s0) / n * 1e6,
           "vcs": (v1 - v0) / n, "ivcs": (n1 - n0) / n}
    row["cpu"] = row["user"] + row["sys"]
    if ps and not record:
        for line in out.read_text().splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[0].strip().isdigit():
                ev = parts[2].replace("syscalls:sys_enter_", "")
                row[ev] = int(parts[0]) / n
    return row


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=int, default=4)
    ap.add_argument("--nvelox-b", help="a second nvelox binary (e.g. the build before a change)")
    ap.add_argument("--no-haproxy", action="store_true")
    ap.add_argument("--perf-stat", action="store_true", help="count system calls with perf stat")
    ap.add_argument("--perf-record", action="store_true",
                    help="perf record -g (cpu-clock) each proxy in the last round, into the work dir")
    ap.add_argument("--group-nice", type=int, default=None,
                    help="run in a session of its own whose autogroup gets this nice (e.g. -10)")
    ap.add_argument("--hog", action="store_true",
                    help="a nice-19 busy loop on the proxy core during the runs (the core then "
                         "never idles: does sleeping cost the proxy CPU?)")
    ap.add_argument("--port-base", type=int, default=31000)
    cfg = ap.parse_args()
    if cfg.group_nice is not None and not own_autogroup(cfg.group_nice):
        return 2
    load = [os.getloadavg()]
    p = B.Ports(cfg.port_base)
    hp = http_tls.HPorts(cfg.port_base)
    work = Path(tempfile.mkdtemp(prefix="nvelox-ka-ab."))
    print(f"work dir: {work}; load average {load[0][0]:.2f}", flush=True)
    try:
        (work / "origin.conf").write_text(B.nginx_origin_conf(work, p))
        B.Proc("origin", ["nginx", "-p", str(work), "-c", str(work / "origin.conf")], work, B.LOAD_CPU)
        if not B.wait_until(lambda: B.port_open(p.http), 10):
            raise RuntimeError("origin did not start")
        nv_conf, ha_conf, _ = http_tls.http_confs(work, p, hp)
        targets = []
        bins = [("nvelox", B.nvelox_bin(), hp.nv_http)]
        if cfg.nvelox_b:
            bins.append(("nvelox-b", Path(cfg.nvelox_b), hp.ng_http))
        for name, binary, port in bins:
            conf = nv_conf.replace(f":{hp.nv_http}\"", f":{port}\"").replace(
                "nvelox-http.err.log", f"{name}.err.log")
            (work / f"{name}.yaml").write_text(conf)
            proc = B.Proc(name, [str(binary), "-c", str(work / f"{name}.yaml")], work, B.PROXY_CPU)
            if not B.wait_until(lambda port=port: http_tls.http_ok(port), 10):
                raise RuntimeError(f"{name} did not start: {proc.log_text()[-2000:]}")
            targets.append((name, proc.pid, port))
        if not cfg.no_haproxy:
            (work / "haproxy.cfg").write_text(ha_conf)
            ha = B.Proc("HAProxy", ["haproxy", "-db", "-f", str(work / "haproxy.cfg")], work, B.PROXY_CPU)
            if not B.wait_until(lambda: http_tls.http_ok(hp.ha_http), 10):
                raise RuntimeError("haproxy did not start")
            targets.append(("HAProxy", ha.pid, hp.ha_http))
        if cfg.hog:
            B.Proc("hog", hog_argv(), work, B.PROXY_CPU)
        for name, pid, port in targets:  # warm-up (pools, free lists)
            B.wrk(port, 1, False)
        rows: dict[str, list[dict]] = {t[0]: [] for t in targets}
        for r in range(cfg.rounds):
            order = targets if r % 2 == 0 else list(reversed(targets))
            for name, pid, port in order:
                row = one_run(name, pid, port, cfg.secs, cfg.perf_stat and not cfg.perf_record, work,
                              cfg.perf_record and r == cfg.rounds - 1)
                rows[name].append(row)
                print(f"round {r} " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                                for k, v in row.items()), flush=True)
                time.sleep(0.5)
        load.append(os.getloadavg())
        print(f"\nmedians over {cfg.rounds} rounds (load average {load[0][0]:.2f} -> {load[1][0]:.2f}):")
        keys = [k for k in rows[targets[0][0]][0] if k != "name"]
        names = [t[0] for t in targets]
        print(f"{'':40s}" + "".join(f"{n:>12s}" for n in names))
        meds = {n: {k: median([x[k] for x in rows[n] if x.get(k) is not None] or [0]) for k in keys}
                for n in names}
        for k in keys:
            if any(meds[n][k] for n in names):
                print(f"{k:40s}" + "".join(f"{meds[n][k]:12.3f}" for n in names))
        if "HAProxy" in meds:
            for name, _, _ in targets:
                if name != "HAProxy":
                    ratios = [a["cpu"] / b["cpu"] for a, b in zip(rows[name], rows["HAProxy"])]
                    print(f"{name} CPU/request vs HAProxy: median {meds[name]['cpu'] / meds['HAProxy']['cpu']:.3f}x"
                          f" (per round {' '.join(f'{x:.2f}' for x in ratios)})")
    finally:
        B.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
