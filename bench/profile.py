#!/usr/bin/env python3
"""Profiles the proxies under one load at a time: syscalls per request (or per
GB) with `strace -c`, and where the CPU goes with `perf record -e cpu-clock`
(software clock: works where hardware counters are "not supported").

  python3 bench/profile.py                      # every scenario, nvelox and HAProxy/nginx
  python3 bench/profile.py --scenario ka,udp    # some of: ka close tcp zc udp http httpclose
  python3 bench/profile.py --no-perf            # syscall counts only

Run bench/run.sh once first (it builds the helpers). Uses the same set-up as
bench/bench.py: proxies on core 1, load and backends on core 0. strace slows
the proxy down: its counts are exact, its timings are not used.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as B  # noqa: E402
import http_tls  # noqa: E402

SECS = 3


def load(scenario: str, port: int) -> tuple[str, float]:
    """Runs the load; returns the unit and how many of it were done."""
    if scenario == "ka":
        return "req", B.wrk(port, SECS, False).get("requests", 0)
    if scenario in ("close", "httpclose"):
        return "req", B.wrk(port, SECS, True).get("requests", 0)
    if scenario == "http":
        return "req", B.wrk(port, SECS, False).get("requests", 0)
    if scenario in ("tcp", "zc"):
        return "GB", B.iperf(port, SECS, 1).get("bytes", 0) / 1e9
    return "req", B.udp_rate(port, SECS).get("replies", 0)


def syscalls(pid: int, scenario: str, port: int, out: Path) -> list[str]:
    st = subprocess.Popen(["strace", "-c", "-f", "-q", "-o", str(out), "-p", str(pid)])
    time.sleep(0.5)
    unit, n = load(scenario, port)
    st.send_signal(2)
    st.wait(20)
    lines = [f"  syscalls under strace ({n:,.2f} {unit}):"]
    for line in out.read_text().splitlines()[2:]:
        parts = line.split()
        if len(parts) >= 5 and parts[3].isdigit() and n and int(parts[3]) / n >= 0.005:
            errs = parts[4] if len(parts) == 6 else "0"
            lines.append(f"    {parts[-1]:16s} {int(parts[3]) / n:10.2f}/{unit}  (errors {errs})")
        elif parts and parts[-1] == "total" and n:
            lines.append(f"    {'total':16s} {int(parts[2]) / n:10.2f}/{unit}")
    return lines


def perf(pid: int, scenario: str, port: int, out: Path) -> list[str]:
    u0, s0 = B.cpu_split(pid)
    pr = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-o", str(out),
                           "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    unit, n = load(scenario, port)
    pr.send_signal(2)
    pr.wait(30)
    u1, s1 = B.cpu_split(pid)
    user, system = u1 - u0, s1 - s0
    lines = [f"  CPU: user {user:.2f} s + system {system:.2f} s for {n:,.2f} {unit}"
             + (f" = {(user + system) / n * (1e6 if unit == 'req' else 1):.2f} "
                f"{'us/req' if unit == 'req' else 'CPU-s/GB'}" if n else "")]
    for sort in ("dso", "sym"):
        r = subprocess.run(["perf", "report", "-i", str(out), "--no-children", "--sort", sort,
                            "--stdio", "-g", "none"], capture_output=True, text=True, timeout=120)
        rows = [x for x in r.stdout.splitlines() if "%" in x and not x.startswith("#")]
        lines.append(f"  perf top {sort}s:")
        lines += ["    " + x.strip() for x in rows[: 4 if sort == "dso" else 10]]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", default="ka,close,tcp,zc,udp")
    ap.add_argument("--no-perf", action="store_true")
    ap.add_argument("--port-base", type=int, default=30000)
    cfg = ap.parse_args()
    p = B.Ports(cfg.port_base)
    work = Path(tempfile.mkdtemp(prefix="nvelox-profile."))
    print(f"work dir: {work}")
    try:
        B.Proc("iperf3-server", ["iperf3", "-s", "-B", B.LOCAL_IP, "-p", str(p.iperf)], work, B.LOAD_CPU)
        (work / "origin.conf").write_text(B.nginx_origin_conf(work, p))
        B.Proc("origin", ["nginx", "-p", str(work), "-c", str(work / "origin.conf")], work, B.LOAD_CPU)
        B.Proc("udp-echo", [str(B.BUILD / "udp_echo"), str(p.udp_echo)], work, B.LOAD_CPU)
        B.Proc("echo", ["python3", str(B.BENCH / "tcp_idle.py"), "server", str(p.echo)], work, B.LOAD_CPU)
        if not B.wait_until(lambda: B.port_open(p.http) and B.echo_once(p.echo), 10):
            raise RuntimeError("backends did not start")
        (work / "nvelox.yaml").write_text(B.nvelox_conf(p, work / "nvelox.err.log", udp=True))
        nv = B.Proc("nvelox", [str(B.nvelox_bin()), "-c", str(work / "nvelox.yaml")], work, B.PROXY_CPU)
        (work / "haproxy.cfg").write_text(B.haproxy_conf(p))
        ha = B.Proc("haproxy", ["haproxy", "-db", "-f", str(work / "haproxy.cfg")], work, B.PROXY_CPU)
        _, ngw = B.start_nginx("nginx", B.nginx_stream_conf(work, p), work, B.PROXY_CPU,
                               lambda: B.echo_once(p.ng_echo))
        if not B.wait_until(lambda: B.echo_once(p.nv_echo) and B.echo_once(p.ha_echo), 10):
            raise RuntimeError("proxies did not start")
        plan = {
            "ka": [("nvelox", nv.pid, p.nv_http), ("HAProxy", ha.pid, p.ha_http)],
            "close": [("nvelox", nv.pid, p.nv_http), ("HAProxy", ha.pid, p.ha_http)],
            "tcp": [("nvelox", nv.pid, p.nv_iperf), ("HAProxy", ha.pid, p.ha_iperf)],
            "zc": [("nvelox zero_copy", nv.pid, p.nv_iperf_zc),
                   ("HAProxy splice", ha.pid, p.ha_iperf_splice)],
            "udp": [("nvelox", nv.pid, p.nv_udp), ("nginx", ngw, p.ng_udp)],
        }
        if {"http", "httpclose"} & set(cfg.scenario.split(",")):
            # HTTP mode (bench/http_tls.py, section 8): nvelox vs HAProxy mode http
            hp = http_tls.HPorts(cfg.port_base)
            ports = {"nvelox": hp.nv_http, "HAProxy": hp.ha_http, "nginx": hp.ng_http}
            hx = http_tls.start_three(work, "http", http_tls.http_confs(work, p, hp),
                                      {k: (lambda port=v: http_tls.http_ok(port)) for k, v in ports.items()})
            for sc in ("http", "httpclose"):
                plan[sc] = [(n, hx[n].cpu_pid, ports[n]) for n in ("nvelox", "HAProxy") if n in hx]
        for sc in cfg.scenario.split(","):
            for name, pid, port in plan[sc]:
                print(f"== {sc}: {name}", flush=True)
                tag = f"{sc}-{name.replace(' ', '_')}"
                print("\n".join(syscalls(pid, sc, port, work / f"strace-{tag}.txt")), flush=True)
                if not cfg.no_perf:
                    print("\n".join(perf(pid, sc, port, work / f"perf-{tag}.data")), flush=True)
    finally:
        B.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
