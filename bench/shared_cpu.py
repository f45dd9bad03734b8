#!/usr/bin/env python3
"""Latency tails under a shared CPU (issue 16): nvelox, HAProxy and nginx
`stream`, each with one worker pinned to core 1, measured quiet and with a
low-priority busy loop (nice 19, pinned to core 1 too) competing for
the proxy's core, for HTTP keep-alive, a new connection per request
(`Connection: close`) and UDP request/response. Every (section, mode,
proxy) case runs once per round, rounds interleaved, so a change in the
machine's load hits every case alike.

Per run: rate, p50/p99 (wrk's; UDP: `udp_load`'s round trip), proxy CPU
per request (utime+stime; nginx: its worker), the proxy's context
switches per request (voluntary = it blocked in epoll_wait,
non-voluntary = it was preempted), its run-queue wait per request
(/proc schedstat: woken but not yet running, e.g. behind the busy
loop) and, for nvelox, its event loop's
wakeups per request, events per wakeup and wakeup duration, read from
the `nvelox_loop_*` histograms of its metrics endpoint.

The UDP section also measures the bare echo server (`bench/udp_echo.c`)
pinned to core 1, quiet and shared: what the machine alone does to a
round trip's tail on the proxy's core, with no proxy at all.

`--nvelox-b PATH` adds a second nvelox binary (e.g. the build before a
change) measured the same way in the same run: before/after figures;
`--server-b 'scheduler_slice: off'` gives it a `server:` setting of its
own (the same binary twice, one setting changed).

Usage: bench/run.sh builds what this needs (release binary, C helpers);
then   python3 bench/shared_cpu.py [--secs 5] [--rounds 3]
Prints markdown tables and writes bench/shared_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the harness's helpers: processes, wrk, udp_load)
from bench import (BENCH, BUILD, LOAD_CPU, LOCAL_IP, PROXY_CPU, Proc,  # noqa: E402
                   cpu_seconds, port_free, port_open, stop_all, udp_rate, wait_until, wrk)

BARE = "udp_echo alone on core 1"


def own_autogroup(nice: int) -> bool:
    """Moves this process into a new session (a new scheduler autogroup,
    re-executing through setsid(1) when it leads a process group) and
    gives that group `nice`. False when it cannot."""
    if os.getsid(0) != os.getpid():
        if os.environ.get("NVELOX_BENCH_SETSID"):
            print("setsid did not start a new session", file=sys.stderr)
            return False
        env = dict(os.environ, NVELOX_BENCH_SETSID="1")
        os.execvpe("setsid", ["setsid", "-w", sys.executable, *sys.argv], env)
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))
        with open("/proc/self/autogroup") as f:
            print(f"scheduler group: {f.read().strip()}", flush=True)
    except OSError as e:
        print(f"cannot set the autogroup's nice ({e}); is CONFIG_SCHED_AUTOGROUP on?",
              file=sys.stderr)
        return False
    return True


def hog_argv() -> list[str]:
    """A busy loop at nice 19 whatever this process's own niceness."""
    return ["nice", "-n", str(19 - os.nice(0)), "python3", "-c", "while True: pass"]


def task_files(pid: int, name: str):
    """The text of /proc/PID/task/TID/NAME for each thread still there."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/{name}") as f:
                yield f.read()
        except OSError:
            continue


def ctx_switches(pid: int) -> tuple[int, int]:
    """(voluntary, non-voluntary) context switches summed over threads."""
    vol = invol = 0
    for text in task_files(pid, "status"):
        for line in text.splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                vol += int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                invol += int(line.split()[1])
    return vol, invol


def schedstat(pid: int) -> tuple[int, int]:
    """(ns on the CPU, ns waiting on a run queue) summed over threads, from
    /proc/PID/task/TID/schedstat: the wait is how long the proxy was
    runnable (woken) but not running, e.g. behind the busy loop."""
    run = wait = 0
    for text in task_files(pid, "schedstat"):
        fields = text.split()
        try:
            run += int(fields[0])
            wait += int(fields[1])
        except (IndexError, ValueError):
            continue
    return run, wait


def scrape_loop(port: int | None) -> dict | None:
    """The `nvelox_loop_*` families of one scrape, summed over loops:
    {"wakeups", "events", "wakeup_s", "buckets": {le: cumulative}}."""
    if port is None:
        return None
    try:
        with urllib.request.urlopen(f"http://{LOCAL_IP}:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    out: dict = {"wakeups": 0.0, "events": 0.0, "wakeup_s": 0.0, "buckets": {},
                 "ebuckets": {}, "requeues": 0.0}
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith("nvelox_loop_"):
            continue
        name, value = line.rsplit(" ", 1)
        v = float(value)
        if name.startswith("nvelox_loop_wakeup_seconds_bucket"):
            le = name.split('le="', 1)[1].split('"', 1)[0]
            out["buckets"][le] = out["buckets"].get(le, 0.0) + v
        elif name.startswith("nvelox_loop_events_per_wakeup_bucket"):
            le = name.split('le="', 1)[1].split('"', 1)[0]
            out["ebuckets"][le] = out["ebuckets"].get(le, 0.0) + v
        elif name.startswith("nvelox_loop_wakeup_seconds_count"):
            out["wakeups"] += v
        elif name.startswith("nvelox_loop_wakeup_seconds_sum"):
            out["wakeup_s"] += v
        elif name.startswith("nvelox_loop_events_per_wakeup_sum"):
            out["events"] += v
        elif name.startswith("nvelox_loop_requeues_total"):
            out["requeues"] += v
    return out if out["buckets"] else None


def loop_delta(a: dict | None, b: dict | None, n: int) -> dict:
    if not a or not b or not n:
        return {}
    wakeups = b["wakeups"] - a["wakeups"]
    if wakeups <= 0:
        return {}
    d = {"wakeups_per_req": wakeups / n,
         "events_per_wakeup": (b["events"] - a["events"]) / wakeups,
         "wakeup_mean_us": (b["wakeup_s"] - a["wakeup_s"]) / wakeups * 1e6,
         "requeues_per_req": (b["requeues"] - a["requeues"]) / n}
    # p99 of the wakeup duration: the first bucket whose cumulative delta
    # reaches 99 % (an upper bound, the buckets are powers of two)
    d["wakeup_hist"] = {k: b["buckets"][k] - a["buckets"].get(k, 0.0) for k in b["buckets"]}
    d["events_hist"] = {k: b["ebuckets"][k] - a["ebuckets"].get(k, 0.0) for k in b["ebuckets"]}
    les = sorted((float(k), k) for k in b["buckets"] if k != "+Inf")
    for f, k in les:
        if b["buckets"][k] - a["buckets"].get(k, 0.0) >= 0.99 * wakeups:
            d["wakeup_p99_le_us"] = f * 1e6
            break
    return d


def nvelox_conf(http: int, udp: int, metrics: int, origin: int, echo: int, log: Path,
                server_extra: list[str] | None = None) -> str:
    extra = "".join(f"  {line}\n" for line in server_extra or [])
    return f"""# generated by bench/shared_cpu.py
version: "2"
server:
  workers: 1
  max_connections: 100000
{extra}logging:
  level: warn
  error_log: {log}
  access_log: off
metrics:
  enabled: true
  bind: "{LOCAL_IP}:{metrics}"
listeners:
  - name: http
    bind: "{LOCAL_IP}:{http}"
    default_backend: http
  - name: udp
    bind: "{LOCAL_IP}:{udp}"
    protocol: udp
    default_backend: udp
    idle_timeout: 300s
backends:
  - name: http
    servers: ["{LOCAL_IP}:{origin}"]
  - name: udp
    servers: ["{LOCAL_IP}:{echo}"]
"""


def haproxy_conf(http: int, origin: int) -> str:
    return f"""# generated by bench/shared_cpu.py
global
  nbthread 1
  maxconn 9600
{bench.HAPROXY_DEFAULTS}
frontend http
  bind {LOCAL_IP}:{http}
  default_backend http
backend http
  server s1 {LOCAL_IP}:{origin}
"""


def nginx_conf(work: Path, http: int, udp: int, origin: int, echo: int) -> str:
    return bench.nginx_main(work, "nginx-shared", True, 20000) + f"""stream {{
  server {{ listen {LOCAL_IP}:{http}; proxy_pass {LOCAL_IP}:{origin}; }}
  server {{ listen {LOCAL_IP}:{udp} udp; proxy_pass {LOCAL_IP}:{echo}; proxy_timeout 300s; }}
}}
"""


class Target:
    def __init__(self, name: str, proc: Proc, cpu_pid: int, http: int, udp: int | None,
                 metrics: int | None):
        self.name, self.proc, self.cpu_pid = name, proc, cpu_pid
        self.http, self.udp, self.metrics = http, udp, metrics


def start_nvelox(name: str, binary: Path, work: Path, ports: tuple[int, int, int],
                 origin: int, echo: int, server_extra: list[str] | None = None) -> Target:
    http, udp, metrics = ports
    conf = work / f"{name}.yaml"
    conf.write_text(nvelox_conf(http, udp, metrics, origin, echo, work / f"{name}.err.log",
                                server_extra))
    proc = Proc(name, [str(binary), "-c", str(conf)], work, PROXY_CPU)
    if not wait_until(lambda: port_open(http) or not proc.alive(), 10) or not proc.alive():
        raise RuntimeError(f"{name} did not start: {proc.log_text()[-2000:]}")
    return Target(name, proc, proc.pid, http, udp, metrics)


def one_run(t: Target, section: str, secs: float) -> dict:
    c0 = cpu_seconds(t.cpu_pid)
    s0 = ctx_switches(t.cpu_pid)
    q0 = schedstat(t.cpu_pid)
    m0 = scrape_loop(t.metrics)
    if section == "udp":
        res = udp_rate(t.udp, secs)
        n = res.get("replies") or 0
    else:
        res = wrk(t.http, secs, section == "close")
        n = res.get("requests") or 0
    c1 = cpu_seconds(t.cpu_pid)
    s1 = ctx_switches(t.cpu_pid)
    q1 = schedstat(t.cpu_pid)
    m1 = scrape_loop(t.metrics)
    row = {"proxy": t.name, "section": section, **res}
    if n:
        row["cpu_us_per_req"] = (c1 - c0) / n * 1e6
        row["vol_cs_per_req"] = (s1[0] - s0[0]) / n
        row["invol_cs_per_req"] = (s1[1] - s0[1]) / n
        row["rq_wait_us_per_req"] = (q1[1] - q0[1]) / n / 1e3
        row.update(loop_delta(m0, m1, n))
    return row


SECTIONS = {"keepalive": "keep-alive (wrk -c50)", "close": "Connection: close (wrk -c50)",
            "udp": "UDP request/response (16 sessions)"}


def median(rows: list[dict], key: str):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def table(rows: list[dict], order: list[str]) -> list[str]:
    out = []
    for section, title in SECTIONS.items():
        peer = "nginx" if section == "udp" else "HAProxy"
        srows = [r for r in rows if r["section"] == section]
        if not srows:
            continue
        out += [f"**{title}**, medians of the runs (all runs after the slash where it matters):",
                "",
                f"| proxy | mode | req/s | p50 | p99 | p99 vs {peer} | CPU us/req | "
                "CPU vs " + peer + " | blocks/req | preempted/req | run-queue wait us/req | "
                "loop wakeups/req | events/wakeup | p99 runs |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for mode in ("quiet", "shared"):
            ref = [r for r in srows if r["proxy"] == peer and r["mode"] == mode]
            ref_p99, ref_cpu = median(ref, "p99_us"), median(ref, "cpu_us_per_req")
            for name in order:
                rs = [r for r in srows if r["proxy"] == name and r["mode"] == mode]
                if not rs:
                    continue

                def f(key, spec=".0f", rr=rs):
                    v = median(rr, key)
                    return "-" if v is None else f"{v:{spec}}"

                p99, cpu = median(rs, "p99_us"), median(rs, "cpu_us_per_req")
                vs = f"{p99 / ref_p99:.2f}x" if p99 and ref_p99 and name != peer else "-"
                vc = f"{cpu / ref_cpu:.2f}x" if cpu and ref_cpu and name != peer else "-"
                runs = " / ".join(f"{r['p99_us']:.0f}" for r in rs if r.get("p99_us") is not None)
                out.append(
                    f"| {name} | {mode} | {f('rps' if section != 'udp' else 'rate', ',.0f')} "
                    f"| {f('p50_us')} us | {f('p99_us')} us | {vs} | {f('cpu_us_per_req', '.1f')} "
                    f"| {vc} | {f('vol_cs_per_req', '.2f')} | {f('invol_cs_per_req', '.3f')} "
                    f"| {f('rq_wait_us_per_req', '.2f')} | {f('wakeups_per_req', '.2f')} | {f('events_per_wakeup', '.1f')} | {runs} |")
        out.append("")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port-base", type=int, default=30600)
    ap.add_argument("--only", default="keepalive,close,udp")
    ap.add_argument("--nvelox", default=str(bench.NVELOX_BIN))
    ap.add_argument("--nvelox-b", help="a second nvelox binary, measured alike (before/after)")
    ap.add_argument("--label-b", default="nvelox (before)")
    ap.add_argument("--server-b", action="append", default=[],
                    help="a `server:` line for the second binary only, e.g. "
                         "'scheduler_slice: off' (repeatable): the same build with a "
                         "setting changed")
    ap.add_argument("--no-peers", action="store_true", help="nvelox only")
    ap.add_argument("--json", default=str(BENCH / "shared_cpu.json"))
    ap.add_argument("--group-nice", type=int, default=None,
                    help="run in a session of its own whose autogroup gets this nice value "
                         "(e.g. -10): with autogroups, other sessions' builds take a share "
                         "of the cores whatever the processes' own nice values; inside, "
                         "proxies stay at nice 0 and the hog at 19")
    cfg = ap.parse_args()
    if cfg.group_nice is not None and not own_autogroup(cfg.group_nice):
        return 2
    sections = [s for s in cfg.only.split(",") if s in SECTIONS]
    b = cfg.port_base
    origin, echo = b + 1, b + 2
    nv_ports = (b + 11, b + 12, b + 13)
    nvb_ports = (b + 21, b + 22, b + 23)
    ha_http, ng_http, ng_udp, bare_udp = b + 31, b + 41, b + 42, b + 51
    tcp = [origin, nv_ports[0], nv_ports[2], nvb_ports[0], nvb_ports[2], ha_http, ng_http]
    udp = [echo, nv_ports[1], nvb_ports[1], ng_udp, bare_udp]
    if not all(port_free(x) for x in tcp) or not all(port_free(x, True) for x in udp):
        print("ports in use; pick another --port-base", file=sys.stderr)
        return 2
    for need in (Path(cfg.nvelox), BUILD / "udp_load", BUILD / "udp_echo"):
        if not need.exists():
            print(f"{need} is missing: run bench/run.sh --quick --only 7 first", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="nvelox-shared."))
    print(f"work dir: {work}", flush=True)
    p = bench.Ports(b)
    p.http = origin
    rows: list[dict] = []
    load = [open("/proc/loadavg").read().split()[:3]]
    try:
        (work / "origin.conf").write_text(bench.nginx_origin_conf(work, p))
        Proc("origin", ["nginx", "-p", str(work), "-c", str(work / "origin.conf")], work, LOAD_CPU)
        Proc("udp-echo", [str(BUILD / "udp_echo"), str(echo)], work, LOAD_CPU)
        if not wait_until(lambda: port_open(origin), 10):
            raise RuntimeError("origin did not start")
        targets = [start_nvelox("nvelox", Path(cfg.nvelox), work, nv_ports, origin, echo)]
        if cfg.nvelox_b:
            targets.append(start_nvelox(cfg.label_b, Path(cfg.nvelox_b), work, nvb_ports,
                                        origin, echo, cfg.server_b))
        if not cfg.no_peers:
            (work / "haproxy.cfg").write_text(haproxy_conf(ha_http, origin))
            ha = Proc("haproxy", ["haproxy", "-db", "-f", str(work / "haproxy.cfg")], work,
                      PROXY_CPU)
            if not wait_until(lambda: port_open(ha_http), 10):
                raise RuntimeError(f"haproxy did not start: {ha.log_text()[-2000:]}")
            targets.append(Target("HAProxy", ha, ha.pid, ha_http, None, None))
            ng, worker = bench.start_nginx("nginx-shared", nginx_conf(work, ng_http, ng_udp, origin,
                                                                      echo),
                                           work, PROXY_CPU, lambda: port_open(ng_http))
            targets.append(Target("nginx", ng, worker, ng_http, ng_udp, None))
        # Not a proxy: the bare echo server on the proxy's core, i.e. what
        # the machine alone does to a round trip's tail on that core.
        bare = Proc("udp-echo-core1", [str(BUILD / "udp_echo"), str(bare_udp)], work, PROXY_CPU)
        targets.append(Target(BARE, bare, bare.pid, 0, bare_udp, None))
        order = [t.name for t in targets]
        for rnd in range(cfg.rounds):
            for section in sections:
                for mode in ("quiet", "shared"):
                    for t in targets:
                        if (section == "udp" and t.udp is None) or (section != "udp"
                                                                      and t.name == BARE):
                            continue
                        hog = Proc("hog", hog_argv(), work, PROXY_CPU) if mode == "shared" else None
                        if hog:
                            time.sleep(0.3)
                            h0 = cpu_seconds(hog.pid)
                        t0 = time.monotonic()
                        row = one_run(t, section, cfg.secs)
                        el = time.monotonic() - t0
                        if hog:
                            row["hog_cpu_share"] = (cpu_seconds(hog.pid) - h0) / el
                            hog.stop()
                        row.update({"mode": mode, "round": rnd + 1,
                                    "loadavg": open("/proc/loadavg").read().split()[0]})
                        rows.append(row)
                        print(f"  r{rnd + 1} {section} {mode} {t.name}: " + ", ".join(
                            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in row.items()
                            if k not in ("proxy", "section", "mode", "round", "wakeup_hist",
                                         "events_hist")), flush=True)
                        time.sleep(1.0 if section == "close" else 0.5)
    finally:
        stop_all()
    load.append(open("/proc/loadavg").read().split()[:3])
    Path(cfg.json).write_text(json.dumps({"loadavg": load, "secs": cfg.secs, "group_nice": cfg.group_nice,
                                          "rounds": cfg.rounds, "rows": rows}, indent=1) + "\n")
    print()
    print(f"load average {' '.join(load[0])} -> {' '.join(load[1])}; autogroup nice {cfg.group_nice}")
    print()
    print("\n".join(table(rows, order)))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
