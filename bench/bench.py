#!/usr/bin/env python3
"""nvelox benchmark harness (issue 8): nvelox, HAProxy and nginx `stream`
side by side on loopback, with a DIRECT baseline, in one run.

Every proxy runs one worker pinned to core 1 (`taskset -c 1`); the load
generators and the backends share core 0. Proxy CPU time is utime+stime of
the proxy process (nginx: its worker) read from /proc/PID/stat before and
after each measurement. Every wait is bounded by a deadline.

Run it through bench/run.sh, which installs the tools and builds the
helpers; `bench/run.sh --quick` is the short development mode. Results go
to docs/benchmarks.md (tables + the hand-written notes in bench/notes.md)
and bench/last-run.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/http_tls.py (sections 8 and 9) imports this module as `bench`: run as
# a script, let that be this very module (one Proc list, one NVELOX_BIN).
if __name__ == "__main__":
    sys.modules.setdefault("bench", sys.modules[__name__])
import http_tls  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BUILD = BENCH / ".build"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_CPU = "1"
LOAD_CPU = "0"
LOCAL_IP = "127.0.0.1"


# --------------------------------------------------------------------------
# /proc readings


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole thread group, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of the whole thread group, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def tree_rss(pid: int) -> int:
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            total += rss_bytes(p)
        except OSError:
            continue
        todo += children(p)
    return total


def listening_count(lo: int, hi: int) -> int:
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[3] != "0A":
                continue
            port = int(parts[1].rsplit(":", 1)[1], 16)
            if lo <= port <= hi:
                n += 1
    return n


# --------------------------------------------------------------------------
# processes


class Proc:
    """A process we started; `pid` is the one whose CPU and RSS we read."""

    all: list["Proc"] = []

    def __init__(self, name: str, argv: list[str], workdir: Path, cpu: str, **kw):
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self.log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            ["taskset", "-c", cpu] + argv,
            stdout=kw.pop("stdout", self.log),
            stderr=subprocess.STDOUT,
            stdin=kw.pop("stdin", subprocess.DEVNULL),
            **kw,
        )
        self.pid = self.popen.pid
        Proc.all.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        self.log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.alive():
            kids = children(self.popen.pid)
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except OSError:
                    pass
        self.log.close()
        if self in Proc.all:
            Proc.all.remove(self)


def stop_all() -> None:
    for p in list(reversed(Proc.all)):
        try:
            p.stop()
        except Exception as e:  # cleanup must go on
            print(f"warning: stopping {p.name}: {e}", file=sys.stderr)


def echo_once(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((LOCAL_IP, port), timeout=timeout) as s:
            s.sendall(b"ping")
            got = b""
            while len(got) < 4:
                b = s.recv(4 - len(got))
                if not b:
                    return False
                got += b
            return got == b"ping"
    except OSError:
        return False


def port_open(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((LOCAL_IP, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(pred, seconds: float, step: float = 0.01) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def port_free(port: int, udp: bool = False) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    # as the servers do: TIME_WAIT leftovers of an earlier run do not block a bind
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((LOCAL_IP, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def run(argv: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def version(argv: list[str]) -> str:
    try:
        r = run(argv, 10)
        text = (r.stdout + r.stderr).strip().splitlines()
        return text[0] if text else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "not found"


# --------------------------------------------------------------------------
# ports and configs


class Ports:
    def __init__(self, base: int):
        b = base
        # backends (core 0)
        self.iperf, self.http, self.udp_echo, self.echo = b + 1, b + 2, b + 3, b + 4
        # nvelox
        self.nv_iperf, self.nv_iperf_zc, self.nv_http, self.nv_echo, self.nv_udp = (
            b + 101, b + 102, b + 103, b + 104, b + 105)
        self.nv_http_zc = b + 106
        # haproxy
        self.ha_iperf, self.ha_iperf_splice, self.ha_http, self.ha_echo = (
            b + 201, b + 202, b + 203, b + 204)
        # nginx stream
        self.ng_iperf, self.ng_http, self.ng_echo, self.ng_udp = b + 301, b + 303, b + 304, b + 305
        # start-up timing listeners (section 7)
        self.st_nv, self.st_ha, self.st_ng = b + 401, b + 402, b + 403

    def tcp(self) -> list[int]:
        return [v for k, v in vars(self).items() if k not in ("udp_echo", "nv_udp", "ng_udp")]

    def udp(self) -> list[int]:
        return [self.udp_echo, self.nv_udp, self.ng_udp]


def nvelox_conf(p: Ports, log: Path, udp: bool) -> str:
    udp_listener = f"""
  - name: udp
    bind: "{LOCAL_IP}:{p.nv_udp}"
    protocol: udp
    default_backend: udp
    idle_timeout: 300s
""" if udp else ""
    udp_backend = f"""
  - name: udp
    servers: ["{LOCAL_IP}:{p.udp_echo}"]
""" if udp else ""
    return f"""# generated by bench/bench.py
version: "2"
server:
  workers: 1
  max_connections: 100000
logging:
  level: warn
  error_log: {log}
  access_log: off
listeners:
  - name: iperf
    bind: "{LOCAL_IP}:{p.nv_iperf}"
    default_backend: iperf
  - name: iperf_zc
    bind: "{LOCAL_IP}:{p.nv_iperf_zc}"
    default_backend: iperf
    zero_copy: true
  - name: http
    bind: "{LOCAL_IP}:{p.nv_http}"
    default_backend: http
  - name: http_zc
    bind: "{LOCAL_IP}:{p.nv_http_zc}"
    default_backend: http
    zero_copy: true
  - name: echo
    bind: "{LOCAL_IP}:{p.nv_echo}"
    default_backend: echo
{udp_listener}
backends:
  - name: iperf
    servers: ["{LOCAL_IP}:{p.iperf}"]
  - name: http
    servers: ["{LOCAL_IP}:{p.http}"]
  - name: echo
    servers: ["{LOCAL_IP}:{p.echo}"]
{udp_backend}"""


HAPROXY_DEFAULTS = """defaults
  mode tcp
  timeout connect 5s
  timeout client 300s
  timeout server 300s
"""


def haproxy_conf(p: Ports) -> str:
    return f"""# generated by bench/bench.py
global
  nbthread 1
  maxconn 9600
  maxpipes 256
{HAPROXY_DEFAULTS}
frontend iperf
  bind {LOCAL_IP}:{p.ha_iperf}
  default_backend iperf
frontend iperf_splice
  bind {LOCAL_IP}:{p.ha_iperf_splice}
  option splice-request
  option splice-response
  default_backend iperf_splice
frontend http
  bind {LOCAL_IP}:{p.ha_http}
  default_backend http
frontend echo
  bind {LOCAL_IP}:{p.ha_echo}
  default_backend echo
backend iperf
  server s1 {LOCAL_IP}:{p.iperf}
backend iperf_splice
  option splice-request
  option splice-response
  server s1 {LOCAL_IP}:{p.iperf}
backend http
  server s1 {LOCAL_IP}:{p.http}
backend echo
  server s1 {LOCAL_IP}:{p.echo}
"""


def nginx_main(work: Path, name: str, stream: bool, worker_connections: int) -> str:
    mod = "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n" if stream else ""
    return f"""# generated by bench/bench.py
{mod}daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 19900;
pid {work}/{name}.pid;
error_log {work}/{name}.error.log warn;
events {{ worker_connections {worker_connections}; }}
"""


def nginx_stream_conf(work: Path, p: Ports) -> str:
    return nginx_main(work, "nginx", True, 20000) + f"""stream {{
  server {{ listen {LOCAL_IP}:{p.ng_iperf}; proxy_pass {LOCAL_IP}:{p.iperf}; }}
  server {{ listen {LOCAL_IP}:{p.ng_http}; proxy_pass {LOCAL_IP}:{p.http}; }}
  server {{ listen {LOCAL_IP}:{p.ng_echo}; proxy_pass {LOCAL_IP}:{p.echo}; }}
  server {{ listen {LOCAL_IP}:{p.ng_udp} udp; proxy_pass {LOCAL_IP}:{p.udp_echo}; proxy_timeout 300s; }}
}}
"""


def nginx_origin_conf(work: Path, p: Ports) -> str:
    tmp = work / "origin-tmp"
    tmp.mkdir(exist_ok=True)
    return nginx_main(work, "origin", False, 4096) + f"""http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen {LOCAL_IP}:{p.http};
    location / {{ return 200 "hello from the origin\\n"; }}
  }}
}}
"""


# --------------------------------------------------------------------------
# the proxies under test


class Proxy:
    """One proxy process; `cpu_pid` is the process doing the relaying."""

    def __init__(self, name: str, proc: Proc, cpu_pid: int):
        self.name = name
        self.proc = proc
        self.cpu_pid = cpu_pid

    def cpu(self) -> float:
        return cpu_seconds(self.cpu_pid)

    def rss(self) -> int:
        return rss_bytes(self.cpu_pid)


def start_nginx(name: str, conf: str, work: Path, cpu: str, probe) -> tuple[Proc, int]:
    path = work / f"{name}.conf"
    path.write_text(conf)
    proc = Proc(name, ["nginx", "-p", str(work), "-c", str(path)], work, cpu)
    if not wait_until(probe, 10):
        raise RuntimeError(f"{name} did not start: {proc.log_text()[-2000:]}")
    kids: list[int] = []
    wait_until(lambda: bool(kids.extend(children(proc.pid)) or kids), 5)
    return proc, kids[0] if kids else proc.pid


NVELOX_BIN = ROOT / "target" / "release" / "nvelox"


def nvelox_bin() -> Path:
    return NVELOX_BIN


# --------------------------------------------------------------------------
# measurements


def iperf(port: int, secs: float, streams: int) -> dict:
    r = run(
        ["taskset", "-c", LOAD_CPU, "iperf3", "-c", LOCAL_IP, "-p", str(port),
         "-t", str(secs), "-P", str(streams), "-J"],
        secs + 30,
    )
    try:
        j = json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"error": (r.stdout + r.stderr)[-500:]}
    if "error" in j:
        return {"error": j["error"]}
    s = j["end"]["sum_received"]
    return {"bytes": s["bytes"], "gbps": s["bits_per_second"] / 1e9}


def parse_dur_us(s: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


def wrk(port: int, secs: float, close: bool) -> dict:
    return wrk_url(f"http://{LOCAL_IP}:{port}/", secs, close)


def wrk_url(url: str, secs: float, close: bool) -> dict:
    """wrk -c50 against any URL (https too): requests, rps, p50/p99, errors."""
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c50", f"-d{secs}s", "--latency",
            "--timeout", "2s"]
    if close:
        argv += ["-H", "Connection: close"]
    r = run(argv + [url], secs + 30)
    out = r.stdout
    res: dict = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        if m:
            res[f"p{pct}_us"] = parse_dur_us(m.group(1))
    m = re.search(r"Socket errors: (.*)", out)
    if m:
        res["socket_errors"] = m.group(1).strip()
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    if "rps" not in res:
        res["error"] = (out + r.stderr)[-500:]
    return res


def measured(proxy: Proxy | None, fn) -> tuple[dict, float | None]:
    """Runs fn() and returns its result and the proxy's CPU seconds; the
    share spent in user space goes into the result as `user_pct`."""
    c0 = cpu_split(proxy.cpu_pid) if proxy else None
    res = fn()
    if proxy is None or c0 is None:
        return res, None
    c1 = cpu_split(proxy.cpu_pid)
    user, system = c1[0] - c0[0], c1[1] - c0[1]
    if user + system > 0:
        res["user_pct"] = 100 * user / (user + system)
    return res, user + system


def best_of(rounds: int, cases: list, run_one, key: str) -> list[dict]:
    """Runs every case `rounds` times, interleaved (round 1 of every case,
    then round 2, ...), and keeps each case's best row by `key`: on a shared
    machine other work only ever slows a run down, so the best run is the
    closest to what the program can do. All values go into `runs`."""
    best: dict[int, dict] = {}
    for _ in range(rounds):
        for i, case in enumerate(cases):
            row = run_one(case)
            runs = best.get(i, {}).get("runs", []) + [row.get(key)]
            if i not in best or (row.get(key) or 0) > (best[i].get(key) or 0):
                best[i] = row
            best[i]["runs"] = runs
    return [best[i] for i in range(len(cases)) if i in best]


def runs_text(row: dict, spec: str) -> str:
    vals = [v for v in row.get("runs", []) if v is not None]
    return " / ".join(f"{v:{spec}}" for v in vals) if len(vals) > 1 else "-"


def section_tcp_throughput(cfg, targets: dict, p: Ports) -> list[dict]:
    rows = []
    paths = [
        ("direct", None, p.iperf),
        ("nvelox", targets.get("nvelox"), p.nv_iperf),
        ("nvelox zero_copy", targets.get("nvelox"), p.nv_iperf_zc),
        ("HAProxy", targets.get("haproxy"), p.ha_iperf),
        ("HAProxy splice", targets.get("haproxy"), p.ha_iperf_splice),
        ("nginx", targets.get("nginx"), p.ng_iperf),
    ]
    def one(case) -> dict:
        streams, name, proxy, port = case
        res, cpu = measured(proxy, lambda: iperf(port, cfg.tcp_secs, streams))
        row = {"path": name, "streams": streams, **res}
        if cpu is not None and res.get("bytes"):
            row["cpu_s"] = cpu
            row["cpu_s_per_gb"] = cpu / (res["bytes"] / 1e9)
        print(f"  tcp {streams} stream(s) {name}: {fmt_row(row)}", flush=True)
        time.sleep(0.5)
        return row

    cases = [(streams, name, proxy, port) for streams in (1, 8) for name, proxy, port in paths
             if name == "direct" or proxy is not None]
    return best_of(cfg.rounds, cases, one, "gbps")


def section_wrk(cfg, targets: dict, p: Ports, close: bool) -> list[dict]:
    rows = []
    paths = [
        ("direct", None, p.http),
        ("nvelox", targets.get("nvelox"), p.nv_http),
        ("nvelox zero_copy", targets.get("nvelox"), p.nv_http_zc),
        ("HAProxy", targets.get("haproxy"), p.ha_http),
        ("nginx", targets.get("nginx"), p.ng_http),
    ]
    def one(case) -> dict:
        name, proxy, port = case
        res, cpu = measured(proxy, lambda: wrk(port, cfg.wrk_secs, close))
        row = {"path": name, **res}
        if cpu is not None and res.get("requests"):
            row["cpu_s"] = cpu
            row["cpu_us_per_req"] = cpu / res["requests"] * 1e6
        print(f"  http {'close' if close else 'keep-alive'} {name}: {fmt_row(row)}", flush=True)
        # let TIME_WAIT sockets of the previous path not skew the next one
        time.sleep(1.0 if close else 0.5)
        return row

    cases = [c for c in paths if c[0] == "direct" or c[1] is not None]
    return best_of(cfg.rounds, cases, one, "rps")


def hold_clients(argv: list[str], work: Path, name: str, ready_prefix: str,
                 timeout: float) -> tuple[Proc | None, str]:
    proc = Proc(name, argv, work, LOAD_CPU, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = ""
    end = time.monotonic() + timeout
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.popen.stdout, selectors.EVENT_READ)
    buf = b""
    while time.monotonic() < end and proc.alive():
        if sel.select(timeout=0.5):
            chunk = os.read(proc.popen.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            if b"\n" in buf:
                line = buf.split(b"\n", 1)[0].decode(errors="replace")
                break
    sel.close()
    if not line.startswith(ready_prefix):
        proc.stop()
        return None, line or "no answer"
    return proc, line


def release_clients(proc: Proc) -> None:
    try:
        proc.popen.stdin.close()
        proc.popen.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pass
    proc.stop()


def section_idle_memory(cfg, targets: dict, p: Ports, work: Path) -> list[dict]:
    rows = []
    n = cfg.idle_conns
    for name, port in (("nvelox", p.nv_echo), ("HAProxy", p.ha_echo), ("nginx", p.ng_echo)):
        proxy = targets.get(name.lower())
        if proxy is None:
            continue
        time.sleep(1.0)
        before = proxy.rss()
        t0 = time.monotonic()
        clients, line = hold_clients(
            ["python3", str(BENCH / "tcp_idle.py"), "client", str(port), str(n), "300"],
            work, f"idle-{name}", "ready", 240)
        if clients is None:
            rows.append({"proxy": name, "n": n, "error": line})
            print(f"  idle {name}: failed: {line}", flush=True)
            continue
        took = time.monotonic() - t0
        time.sleep(1.0)
        after = proxy.rss()
        release_clients(clients)
        row = {"proxy": name, "n": n, "rss_before": before, "rss_after": after,
               "bytes_per_conn": (after - before) / n, "setup_s": took}
        rows.append(row)
        print(f"  idle {name}: {fmt_row(row)}", flush=True)
    time.sleep(2.0)
    return rows


def udp_rate(port: int, secs: float) -> dict:
    r = run(["taskset", "-c", LOAD_CPU, str(BUILD / "udp_load"), "rate", LOCAL_IP, str(port),
             "16", str(secs), "64"],
            secs + 30)
    try:
        return json.loads(r.stdout)
    except json.JSONDecodeError:
        return {"error": (r.stdout + r.stderr)[-500:]}


def section_udp(cfg, targets: dict, p: Ports, work: Path, nvelox_udp: bool) -> dict:
    rate_rows = []
    paths = [("direct", targets.get("udp_echo"), p.udp_echo), ("nvelox", targets.get("nvelox"), p.nv_udp),
             ("nginx", targets.get("nginx"), p.ng_udp)]
    def one(case) -> dict:
        name, proxy, port = case
        res, cpu = measured(proxy, lambda: udp_rate(port, cfg.udp_secs))
        row = {"path": name, **res}
        if cpu is not None and res.get("replies"):
            row["cpu_us_per_req"] = cpu / res["replies"] * 1e6
        print(f"  udp rate {name}: {fmt_row(row)}", flush=True)
        time.sleep(0.5)
        return row

    cases = []
    for name, proxy, port in paths:
        if name == "nvelox" and not nvelox_udp:
            rate_rows.append({"path": name, "na": "nvelox does not serve UDP yet"})
            print("  udp nvelox: n/a (udp is not supported yet)", flush=True)
        elif name == "direct" or proxy is not None:
            cases.append((name, proxy, port))
    rate_rows += best_of(cfg.rounds, cases, one, "rate")
    sess_rows = []
    n = cfg.udp_sessions
    for name, port in (("nvelox", p.nv_udp), ("nginx", p.ng_udp)):
        if name == "nvelox" and not nvelox_udp:
            sess_rows.append({"proxy": name, "na": "nvelox does not serve UDP yet"})
            continue
        proxy = targets.get(name)
        if proxy is None:
            continue
        time.sleep(1.0)
        before = proxy.rss()
        clients, line = hold_clients(
            [str(BUILD / "udp_load"), "sessions", LOCAL_IP,
             str(port), str(n), "300"], work, f"udp-sessions-{name}", "ready", 240)
        if clients is None:
            sess_rows.append({"proxy": name, "n": n, "error": line})
            continue
        time.sleep(1.0)
        after = proxy.rss()
        replied = int(line.split("=", 1)[1]) if "=" in line else 0
        release_clients(clients)
        # The proxy keeps its sessions (one upstream socket and ephemeral
        # port each) until they expire; stop it so that the next proxy's
        # 10,000 sessions do not run out of ephemeral ports.
        proxy.proc.stop()
        row = {"proxy": name, "n": n, "replied": replied, "rss_before": before,
               "rss_after": after, "bytes_per_session": (after - before) / max(replied, 1)}
        sess_rows.append(row)
        print(f"  udp sessions {name}: {fmt_row(row)}", flush=True)
    return {"rate": rate_rows, "sessions": sess_rows}


def time_to_listen(argv: list[str], name: str, work: Path, lo: int, hi: int,
                   cpu: str = PROXY_CPU) -> dict:
    """exec -> the last port of lo..hi accepts, then check every port listens."""
    t0 = time.monotonic()
    proc = Proc(name, argv, work, cpu)
    ok = wait_until(lambda: port_open(hi, 0.05) or not proc.alive(), 30, 0.0005)
    t_ready = time.monotonic() - t0
    res: dict = {"name": name}
    if not ok or not proc.alive():
        res["error"] = proc.log_text()[-800:] or "did not listen"
        proc.stop()
        return res
    rss_at_ready = tree_rss(proc.pid)
    count = listening_count(lo, hi)
    if count < hi - lo + 1:
        wait_until(lambda: listening_count(lo, hi) >= hi - lo + 1, 30, 0.05)
        t_ready = time.monotonic() - t0
        count = listening_count(lo, hi)
        res["note"] = "last port was not the last to listen"
    time.sleep(1.0)
    res.update({"ready_ms": t_ready * 1e3, "listening": count,
                "rss_at_ready": rss_at_ready, "rss": tree_rss(proc.pid)})
    res["log"] = proc.log_text()[-400:]
    proc.stop()
    # the kernel frees 10,000 sockets asynchronously; let it before the next
    wait_until(lambda: listening_count(lo, hi) == 0, 10, 0.2)
    return res


def section_many_ports(cfg, work: Path, have: dict) -> list[dict]:
    lo = cfg.range_base
    hi = lo + cfg.range_ports - 1
    busy = listening_count(lo, hi)
    if busy:
        return [{"name": "all", "error": f"{busy} ports in {lo}-{hi} are already in use"}]
    rows = []
    spec = f"{LOCAL_IP}:{lo}-{hi}"
    conf = work / "ports-nvelox.yaml"
    conf.write_text(f"""version: "2"
server: {{ workers: 1 }}
logging: {{ level: warn, error_log: stderr }}
listeners:
  - {{ name: range, bind: "{spec}", default_backend: same_port }}
backends:
  - {{ name: same_port, servers: ["127.0.0.2"] }}
""")
    rows.append(time_to_listen([str(nvelox_bin()), "-c", str(conf)], "nvelox", work, lo, hi))
    mp = ROOT / "target" / "release" / "examples" / "many_ports"
    if mp.exists():
        r = time_to_listen([str(mp), spec, "--loops", "1"], "many_ports example", work, lo, hi)
        m = re.search(r"ready in ([\d.]+) ms", r.get("log", ""))
        if m:
            r["self_reported_ms"] = float(m.group(1))
        rows.append(r)
    if have.get("haproxy"):
        hc = work / "ports-haproxy.cfg"
        hc.write_text(f"global\n  nbthread 1\n  maxconn 2000\n{HAPROXY_DEFAULTS}"
                      f"frontend range\n  bind {spec}\n  default_backend same_port\n"
                      f"backend same_port\n  server s1 127.0.0.2\n")
        rows.append(time_to_listen(["haproxy", "-db", "-f", str(hc)], "HAProxy", work, lo, hi))
    if have.get("nginx"):
        nc = work / "ports-nginx.conf"
        listens = "".join(f"    listen {LOCAL_IP}:{port};\n" for port in range(lo, hi + 1))
        nc.write_text(nginx_main(work, "ports-nginx", True, cfg.range_ports + 2000)
                      + f"stream {{\n  server {{\n{listens}    proxy_pass 127.0.0.2:$server_port;\n  }}\n}}\n")
        rows.append(time_to_listen(["nginx", "-p", str(work), "-c", str(nc)], "nginx", work, lo, hi))
    for r in rows:
        r.pop("log", None)
        print(f"  ports {r['name']}: {fmt_row(r)}", flush=True)
    return rows


def time_to_first_relay(argv: list[str], name: str, work: Path, port: int) -> dict:
    t0 = time.monotonic()
    proc = Proc(name, argv, work, PROXY_CPU)
    ok = wait_until(lambda: echo_once(port, 0.05) or not proc.alive(), 10, 0.0005)
    took = time.monotonic() - t0
    res: dict = {"name": name}
    if not ok or not proc.alive():
        res["error"] = proc.log_text()[-800:]
    else:
        time.sleep(1.0)
        res.update({"first_relay_ms": took * 1e3, "idle_rss": tree_rss(proc.pid)})
    proc.stop()
    return res


def default_conf_rss(binary: Path, label: str, work: Path) -> dict:
    proc = Proc(f"nvelox-default-conf-{label}", [str(binary), "-c", str(ROOT / "conf/nvelox.yaml")],
                work, PROXY_CPU)
    up = wait_until(lambda: port_open(8080, 0.05) or not proc.alive(), 10, 0.001)
    if up and proc.alive():
        time.sleep(1.0)
        res = {"idle_rss": rss_bytes(proc.pid)}
    else:
        res = {"error": proc.log_text()[-600:] or "did not start"}
    proc.stop()
    return res


def section_footprint(cfg, work: Path, p: Ports, have: dict) -> dict:
    out: dict = {"sizes": {}}
    for label, path in (
        ("nvelox x86_64-gnu (target/release)", nvelox_bin()),
        ("nvelox x86_64-musl static", ROOT / "target/x86_64-unknown-linux-musl/release/nvelox"),
        ("nvelox aarch64-musl static", ROOT / "target/aarch64-unknown-linux-musl/release/nvelox"),
        ("haproxy (Debian, dynamic)", Path(shutil.which("haproxy") or "/nonexistent")),
        ("nginx (Debian, dynamic)", Path(shutil.which("nginx") or "/nonexistent")),
    ):
        if path.exists():
            out["sizes"][label] = path.stat().st_size
    # idle RSS with the shipped default configuration, glibc and static musl
    out["default_conf"] = default_conf_rss(nvelox_bin(), "glibc", work)
    musl = ROOT / "target/x86_64-unknown-linux-musl/release/nvelox"
    if musl.exists():
        out["default_conf_musl"] = default_conf_rss(musl, "musl", work)
    # exec -> first proxied connection, one listener to the echo backend
    starts = []
    c = work / "start-nvelox.yaml"
    c.write_text(f"""version: "2"
server: {{ workers: 1 }}
logging: {{ level: warn, error_log: stderr }}
listeners:
  - {{ name: echo, bind: "{LOCAL_IP}:{p.st_nv}", default_backend: echo }}
backends:
  - {{ name: echo, servers: ["{LOCAL_IP}:{p.echo}"] }}
""")
    starts.append(time_to_first_relay([str(nvelox_bin()), "-c", str(c)], "nvelox", work, p.st_nv))
    if have.get("haproxy"):
        c = work / "start-haproxy.cfg"
        c.write_text(f"global\n  nbthread 1\n{HAPROXY_DEFAULTS}frontend echo\n"
                     f"  bind {LOCAL_IP}:{p.st_ha}\n  default_backend echo\n"
                     f"backend echo\n  server s1 {LOCAL_IP}:{p.echo}\n")
        starts.append(time_to_first_relay(["haproxy", "-db", "-f", str(c)], "HAProxy", work, p.st_ha))
    if have.get("nginx"):
        c = work / "start-nginx.conf"
        c.write_text(nginx_main(work, "start-nginx", True, 1024)
                     + f"stream {{ server {{ listen {LOCAL_IP}:{p.st_ng}; "
                       f"proxy_pass {LOCAL_IP}:{p.echo}; }} }}\n")
        starts.append(time_to_first_relay(["nginx", "-p", str(work), "-c", str(c)], "nginx",
                                          work, p.st_ng))
    out["start"] = starts
    for s in starts:
        print(f"  start {s['name']}: {fmt_row(s)}", flush=True)
    print(f"  sizes: {out['sizes']}  default conf: {out['default_conf']}", flush=True)
    return out


def fmt_row(row: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in row.items() if k not in ("path", "proxy", "name"))


# --------------------------------------------------------------------------
# report


def os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "?"


def machine_info(cfg) -> dict:
    def first(path: str, key: str) -> str:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    git = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], 10).stdout.strip()
    dirty = run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                10).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": first("/proc/cpuinfo", "model name"),
        "cores": os.cpu_count(),
        "mem": first("/proc/meminfo", "MemTotal"),
        "kernel": platform.release(),
        "os": os_name(),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "mode": "quick" if cfg.quick else "full",
        "versions": {
            "nvelox": version([str(nvelox_bin()), "--version"]) + f" (git {git}{'+dirty' if dirty else ''})",
            "HAProxy": version(["haproxy", "-v"]),
            "nginx": version(["nginx", "-v"]),
            "iperf3": version(["iperf3", "--version"]),
            "wrk": version(["wrk", "-v"]),
            "rustc": version(["rustc", "-V"]),
            "python": platform.python_version(),
        },
    }


def num(v, spec: str = ".2f", unit: str = "") -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:{spec}}{unit}"


def ratio(a, b) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def find(rows: list[dict], key: str, value, **more):
    for r in rows:
        if r.get(key) == value and all(r.get(k) == v for k, v in more.items()):
            return r
    return {}


def render(res: dict, cfg) -> str:
    m = res["machine"]
    L: list[str] = []
    w = L.append
    w("# Benchmarks")
    w("")
    w("Generated by `bench/run.sh` (the tables) from `bench/bench.py`; the notes")
    w("after the tables come from `bench/notes.md`. Raw numbers of this run:")
    w("`bench/last-run.json`. Ratios compare numbers measured in the same run.")
    w("")
    w("## Machine and versions")
    w("")
    w(f"- date: {m['date']}, mode: {m['mode']} (durations: iperf3 {cfg.tcp_secs}s, "
      f"wrk {cfg.wrk_secs}s, UDP {cfg.udp_secs}s per run; "
      f"{getattr(cfg, 'rounds', 1)} interleaved run(s) per path, the best one reported, all listed)")
    w(f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['mem']}; {m['os']}, kernel {m['kernel']}")
    w(f"- load average at start: {' '.join(m['loadavg_start'])}; at end: "
      f"{' '.join(res.get('loadavg_end', ['?']))} (other engineers build on this machine)")
    for k, v in m["versions"].items():
        w(f"- {k}: {v}")
    for rr in res.get("reruns", []):
        w(f"- re-run on {rr['date']} (load average {' '.join(rr['loadavg'][0])} -> "
          f"{' '.join(rr['loadavg'][1])}, {rr['nvelox']}): sections {', '.join(rr['sections'])}")
    w("- Set-up: every proxy runs one worker (nvelox `workers: 1`, HAProxy `nbthread 1`,")
    w("  nginx `worker_processes 1`) pinned to core 1; load generators and backends share")
    w("  core 0. Proxy CPU = utime+stime from /proc/PID/stat (nginx: the worker) around")
    w("  each measurement; `user %` is the share of it spent in user space (the rest is")
    w("  the kernel: on loopback the sender's CPU also runs the receiver's TCP input).")
    w("  Defaults otherwise (16 KiB buffers in HAProxy and nginx).")
    w("")

    tcp = res.get("tcp", [])
    if tcp:
        w(f"## 1. TCP throughput (iperf3, {cfg.tcp_secs} s per run)")
        w("")
        w("| path | streams | Gbit/s | x direct | proxy CPU-s | CPU-s/GB | CPU-s/GB vs HAProxy | user % | all runs, Gbit/s |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in tcp:
            d = find(tcp, "path", "direct", streams=r["streams"])
            h = find(tcp, "path", "HAProxy", streams=r["streams"])
            if "error" in r:
                w(f"| {r['path']} | {r['streams']} | error: {r['error'][:80]} | | | | | | |")
                continue
            w(f"| {r['path']} | {r['streams']} | {num(r.get('gbps'))} | {ratio(r.get('gbps'), d.get('gbps'))} "
              f"| {num(r.get('cpu_s'))} | {num(r.get('cpu_s_per_gb'), '.3f')} "
              f"| {ratio(r.get('cpu_s_per_gb'), h.get('cpu_s_per_gb')) if r['path'] != 'direct' else '-'} "
              f"| {num(r.get('user_pct'), '.0f')} | {runs_text(r, '.1f')} |")
        w("")

    for key, title in (("keepalive", "2. Request/response, 50 keep-alive connections"),
                       ("close", "3. A new connection per request (`Connection: close`)")):
        rows = res.get(key, [])
        if not rows:
            continue
        w(f"## {title} (wrk -t1 -c50, {cfg.wrk_secs} s per run)")
        w("")
        w("| path | req/s | x direct | vs HAProxy | p50 | p99 | proxy CPU us/req | user % | errors | all runs, req/s |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
        d = find(rows, "path", "direct")
        h = find(rows, "path", "HAProxy")
        for r in rows:
            if "error" in r:
                w(f"| {r['path']} | error: {r['error'][:80]} | | | | | | | | |")
                continue
            err = r.get("socket_errors", "")
            if r.get("non2xx"):
                err += f" non-2xx {r['non2xx']}"
            w(f"| {r['path']} | {num(r.get('rps'), ',.0f')} | {ratio(r.get('rps'), d.get('rps'))} "
              f"| {ratio(r.get('rps'), h.get('rps')) if r['path'] != 'direct' else '-'} "
              f"| {num(r.get('p50_us'), '.0f', ' us')} | {num(r.get('p99_us'), '.0f', ' us')} "
              f"| {num(r.get('cpu_us_per_req'), '.1f')} | {num(r.get('user_pct'), '.0f')} | {err or '-'} "
              f"| {runs_text(r, ',.0f')} |")
        w("")

    rows = res.get("idle", [])
    if rows:
        w(f"## 4. Memory per idle proxied TCP connection ({cfg.idle_conns} connections)")
        w("")
        w("Each connection relayed one byte both ways, then stayed idle. RSS of the proxy")
        w("process (nginx: worker) before and after; user-space memory only (kernel socket")
        w("buffers are not in RSS and are the same for every proxy).")
        w("")
        w("| proxy | connections | RSS before | RSS after | bytes per connection |")
        w("|---|---:|---:|---:|---:|")
        for r in rows:
            if "error" in r:
                w(f"| {r['proxy']} | {r['n']} | error: {r['error'][:80]} | | |")
                continue
            w(f"| {r['proxy']} | {r['n']} | {mib(r['rss_before'])} | {mib(r['rss_after'])} "
              f"| {num(r['bytes_per_conn'], ',.0f')} |")
        w("")

    udp = res.get("udp")
    if udp:
        w(f"## 5. UDP request/response ({cfg.udp_secs} s per run, 16 sessions with one 64-byte request "
          f"outstanding each) and memory per session ({cfg.udp_sessions} sessions)")
        w("")
        w("HAProxy has no UDP load balancing. In the direct row, the CPU columns are those of")
        w("the echo backend itself (`bench/udp_echo.c`: batched receive + send, no other work):")
        w("the kernel's cost of one datagram in and one out, half of what a proxy must do.")
        w("")
        w("| path | req/s | x direct | vs nginx | proxy CPU us/req | user % | lost (re-sent after 200 ms) | all runs, req/s |")
        w("|---|---:|---:|---:|---:|---:|---:|---|")
        d = find(udp["rate"], "path", "direct")
        n = find(udp["rate"], "path", "nginx")
        for r in udp["rate"]:
            if "na" in r:
                w(f"| {r['path']} | n/a: {r['na']} | | | | | | |")
                continue
            if "error" in r:
                w(f"| {r['path']} | error: {r['error'][:80]} | | | | | | |")
                continue
            w(f"| {r['path']} | {num(r.get('rate'), ',.0f')} | {ratio(r.get('rate'), d.get('rate'))} "
              f"| {ratio(r.get('rate'), n.get('rate')) if r['path'] == 'nvelox' else '-'} "
              f"| {num(r.get('cpu_us_per_req'), '.1f')} | {num(r.get('user_pct'), '.0f')} | {r.get('lost', '-')} "
              f"| {runs_text(r, ',.0f')} |")
        w("")
        w("| proxy | sessions | answered | RSS before | RSS after | bytes per session |")
        w("|---|---:|---:|---:|---:|---:|")
        for r in udp["sessions"]:
            if "na" in r:
                w(f"| {r['proxy']} | n/a: {r['na']} | | | | |")
            elif "error" in r:
                w(f"| {r['proxy']} | {r['n']} | error: {r['error'][:80]} | | | |")
            else:
                w(f"| {r['proxy']} | {r['n']} | {r['replied']} | {mib(r['rss_before'])} "
                  f"| {mib(r['rss_after'])} | {num(r['bytes_per_session'], ',.0f')} |")
        w("")

    rows = res.get("ports", [])
    if rows:
        w(f"## 6. Binding a {cfg.range_ports:,}-port range")
        w("")
        w("From exec until the last port accepts a connection (polled every 0.5 ms), then")
        w("checked in /proc/net/tcp that every port listens. RSS summed over the process")
        w("tree (nginx: master + worker), at ready and 1 s later.")
        w("")
        w("| program | ready | vs HAProxy | RSS at ready | RSS 1 s later | listening |")
        w("|---|---:|---:|---:|---:|---:|")
        h = find(rows, "name", "HAProxy")
        for r in rows:
            if "error" in r:
                w(f"| {r['name']} | error: {r['error'][:100]!r} | | | | |")
                continue
            extra = f" (self-reported {r['self_reported_ms']:.0f} ms)" if "self_reported_ms" in r else ""
            w(f"| {r['name']} | {r['ready_ms']:.0f} ms{extra} | {ratio(r['ready_ms'], h.get('ready_ms'))} "
              f"| {mib(r['rss_at_ready'])} | {mib(r['rss'])} | {r['listening']} |")
        w("")

    fp = res.get("footprint")
    if fp:
        w("## 7. Footprint")
        w("")
        w("| item | value |")
        w("|---|---:|")
        for k, v in fp["sizes"].items():
            w(f"| binary size: {k} | {v / 1024 / 1024:.2f} MiB ({v:,} B) |")
        for key, label in (("default_conf", "glibc"), ("default_conf_musl", "static musl")):
            dc = fp.get(key)
            if dc is None:
                continue
            if "idle_rss" in dc:
                w(f"| nvelox ({label}) idle RSS with `conf/nvelox.yaml` (workers: auto) "
                  f"| {mib(dc['idle_rss'])} |")
            else:
                w(f"| nvelox ({label}) with `conf/nvelox.yaml` | error: {dc.get('error', '?')[:100]!r} |")
        for s in fp.get("start", []):
            if "error" in s:
                w(f"| {s['name']}: exec to first proxied connection | error |")
            else:
                w(f"| {s['name']}: exec to first proxied connection | {s['first_relay_ms']:.1f} ms |")
                w(f"| {s['name']}: idle RSS, one listener | {mib(s['idle_rss'])} |")
        w("")

    http_tls.render(res, cfg, w)
    w("## Targets (issue 8)")
    w("")
    w("| target | measured | met |")
    w("|---|---|---|")
    for t in targets(res):
        w(f"| {t[0]} | {t[1]} | {t[2]} |")
    w("")
    notes = BENCH / "notes.md"
    if notes.exists():
        w(notes.read_text().rstrip())
        w("")
    return "\n".join(L)


def mib(b) -> str:
    return "-" if b is None else f"{b / 1024 / 1024:.1f} MiB"


def targets(res: dict) -> list[tuple[str, str, str]]:
    out = []

    def check(name: str, value, limit, le: bool, fmt: str = ".2f", unit: str = ""):
        if value is None or limit is None:
            out.append((name, "not measured", "-"))
            return
        ok = value <= limit if le else value >= limit
        out.append((name, f"{value:{fmt}}{unit}", "yes" if ok else "**no**"))

    tcp = res.get("tcp", [])
    nv = find(tcp, "path", "nvelox", streams=1)
    zc = find(tcp, "path", "nvelox zero_copy", streams=1)
    ha = find(tcp, "path", "HAProxy", streams=1)

    def rel(a: dict, b: dict, k: str):
        return a[k] / b[k] if a.get(k) and b.get(k) else None

    check("TCP 1 stream >= 1.1x HAProxy throughput", rel(nv, ha, "gbps"), 1.1, False, ".2f", "x")
    check("TCP 1 stream CPU-s/GB <= 0.7x HAProxy", rel(nv, ha, "cpu_s_per_gb"), 0.7, True, ".2f", "x")
    check("TCP 1 stream zero_copy CPU-s/GB <= 0.5x HAProxy", rel(zc, ha, "cpu_s_per_gb"), 0.5, True,
          ".2f", "x")
    ka = res.get("keepalive", [])
    check("keep-alive req/s >= 1.1x HAProxy", rel(find(ka, "path", "nvelox"), find(ka, "path", "HAProxy"),
                                                  "rps"), 1.1, False, ".2f", "x")
    check("keep-alive proxy CPU <= 7 us/request", find(ka, "path", "nvelox").get("cpu_us_per_req"), 7,
          True, ".1f", " us")
    cl = res.get("close", [])
    check("new connections/s >= 1.2x HAProxy", rel(find(cl, "path", "nvelox"), find(cl, "path", "HAProxy"),
                                                   "rps"), 1.2, False, ".2f", "x")
    check("new connection proxy CPU <= 25 us", find(cl, "path", "nvelox").get("cpu_us_per_req"), 25,
          True, ".1f", " us")
    check("<= 1,000 B per idle proxied TCP connection",
          find(res.get("idle", []), "proxy", "nvelox").get("bytes_per_conn"), 1000, True, ",.0f", " B")
    udp = res.get("udp", {"rate": [], "sessions": []})
    check("<= 1,000 B per UDP session", find(udp["sessions"], "proxy", "nvelox").get("bytes_per_session"),
          1000, True, ",.0f", " B")
    check("UDP req/s >= 1.5x nginx", rel(find(udp["rate"], "path", "nvelox"),
                                         find(udp["rate"], "path", "nginx"), "rate"), 1.5, False, ".2f", "x")
    ports = res.get("ports", [])
    check("10,000 ports ready in <= 0.5x HAProxy's time",
          rel(find(ports, "name", "nvelox"), find(ports, "name", "HAProxy"), "ready_ms"), 0.5, True,
          ".2f", "x")
    r = find(ports, "name", "nvelox").get("rss")
    check("10,000 ports: RSS <= 8 MiB", r / 1048576 if r else None, 8, True, ".1f", " MiB")
    fp = res.get("footprint", {"sizes": {}})
    s = fp["sizes"].get("nvelox x86_64-musl static")
    check("static (musl) binary <= 2 MiB", s / 1048576 if s else None, 2, True, ".2f", " MiB")
    r = fp.get("default_conf_musl", {}).get("idle_rss")
    check("idle RSS <= 2 MiB (conf/nvelox.yaml, static musl)", r / 1048576 if r else None, 2, True,
          ".2f", " MiB")
    r = fp.get("default_conf", {}).get("idle_rss")
    check("idle RSS <= 2 MiB (conf/nvelox.yaml, glibc build)", r / 1048576 if r else None, 2, True,
          ".2f", " MiB")
    return out


# --------------------------------------------------------------------------


def main() -> int:
    global NVELOX_BIN
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short durations, fewer connections")
    ap.add_argument("--port-base", type=int, default=30000)
    ap.add_argument("--range-base", type=int, default=12000, help="first port of the 10k range")
    ap.add_argument("--only", default="1,2,3,4,5,6,7,8,9",
                    help="sections to run, e.g. 1,4 (8: HTTP mode, 9: TLS; bench/http_tls.py)")
    ap.add_argument("--nvelox", default=str(NVELOX_BIN), help="the nvelox binary to measure")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--json", default=str(BENCH / "last-run.json"))
    ap.add_argument("--merge", action="store_true",
                    help="update only the sections run now in --json (noted in the report)")
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite --out from --json (e.g. after editing bench/notes.md)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved runs per case (default 3, 1 with --quick)")
    ap.add_argument("--group-nice", type=int, default=None,
                    help="run in a session of its own whose scheduler autogroup gets this nice "
                         "(e.g. -10; see bench/shared_cpu.py): other sessions' builds then take "
                         "less of the cores")
    cfg = ap.parse_args()
    cfg.rounds = cfg.rounds or (1 if cfg.quick else 3)
    cfg.tcp_secs = 2 if cfg.quick else 4
    cfg.wrk_secs = 2 if cfg.quick else 4
    cfg.udp_secs = 2 if cfg.quick else 4
    cfg.idle_conns = 1000 if cfg.quick else 9000
    cfg.udp_sessions = 1000 if cfg.quick else 10000
    cfg.range_ports = 10000
    http_tls.configure(cfg)
    if cfg.render_only:
        res = json.loads(Path(cfg.json).read_text())
        for k, v in res.get("config", {}).items():
            setattr(cfg, k, v)
        Path(cfg.out).write_text(render(res, cfg) + "\n")
        print(f"wrote {cfg.out} from {cfg.json}")
        return 0
    only = {int(x) for x in cfg.only.split(",") if x.strip()}
    NVELOX_BIN = Path(cfg.nvelox).resolve()
    if cfg.group_nice is not None:
        from shared_cpu import own_autogroup  # imports this module: not at the top

        if not own_autogroup(cfg.group_nice):
            return 2

    if not nvelox_bin().exists():
        print(f"{nvelox_bin()} is missing: cargo build --release", file=sys.stderr)
        return 2
    have = {"haproxy": bool(shutil.which("haproxy")), "nginx": bool(shutil.which("nginx"))}
    p = Ports(cfg.port_base)
    busy = [x for x in p.tcp() if not port_free(x)] + [x for x in p.udp() if not port_free(x, True)]
    busy += http_tls.busy_ports(cfg.port_base)
    if busy:
        print(f"ports in use: {busy}; pick another --port-base", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="nvelox-bench."))
    print(f"work dir (configs, logs): {work}", flush=True)
    res: dict = {"machine": machine_info(cfg)}
    res["config"] = {k: getattr(cfg, k) for k in (
        "quick", "rounds", "tcp_secs", "wrk_secs", "udp_secs", "idle_conns", "udp_sessions", "range_ports",
        *http_tls.CONFIG_KEYS)}
    t_start = time.monotonic()
    try:
        # backends on the load core
        Proc("iperf3-server", ["iperf3", "-s", "-B", LOCAL_IP, "-p", str(p.iperf)], work, LOAD_CPU)
        (work / "origin.conf").write_text(nginx_origin_conf(work, p))
        Proc("origin", ["nginx", "-p", str(work), "-c", str(work / "origin.conf")], work, LOAD_CPU)
        udp_echo = Proc("udp-echo", [str(BUILD / "udp_echo"), str(p.udp_echo)], work, LOAD_CPU)
        Proc("echo-backend", ["python3", str(BENCH / "tcp_idle.py"), "server", str(p.echo)], work,
             LOAD_CPU)
        if not wait_until(lambda: port_open(p.http) and echo_once(p.echo), 10):
            raise RuntimeError("backends did not start; see logs in " + str(work))

        # the proxies under test, each pinned to the proxy core
        # not a proxy: its CPU per request is the kernel's cost of one receive
        # and one send, the floor for half of what a UDP proxy does
        targets_: dict[str, Proxy] = {"udp_echo": Proxy("udp echo", udp_echo, udp_echo.pid)}
        nlog = work / "nvelox.err.log"
        (work / "nvelox.yaml").write_text(nvelox_conf(p, nlog, udp=True))
        nv = Proc("nvelox", [str(nvelox_bin()), "-c", str(work / "nvelox.yaml")], work, PROXY_CPU)
        if not wait_until(lambda: echo_once(p.nv_echo) or not nv.alive(), 10):
            raise RuntimeError(f"nvelox did not start: {nv.log_text()[-2000:]}")
        nvelox_udp = True
        if not nv.alive():
            raise RuntimeError(f"nvelox exited: {nv.log_text()[-2000:]}")
        time.sleep(0.2)
        errlog = nlog.read_text(errors="replace") if nlog.exists() else ""
        if "udp is not supported" in errlog or "udp is not supported" in nv.log_text():
            nvelox_udp = False
        targets_["nvelox"] = Proxy("nvelox", nv, nv.pid)
        if have["haproxy"]:
            (work / "haproxy.cfg").write_text(haproxy_conf(p))
            ha = Proc("haproxy", ["haproxy", "-db", "-f", str(work / "haproxy.cfg")], work, PROXY_CPU)
            if not wait_until(lambda: echo_once(p.ha_echo), 10):
                raise RuntimeError(f"haproxy did not start: {ha.log_text()[-2000:]}")
            targets_["haproxy"] = Proxy("HAProxy", ha, ha.pid)
        if have["nginx"]:
            ng, worker = start_nginx("nginx", nginx_stream_conf(work, p), work, PROXY_CPU,
                                     lambda: echo_once(p.ng_echo))
            targets_["nginx"] = Proxy("nginx", ng, worker)

        if 1 in only:
            print("1. TCP throughput", flush=True)
            res["tcp"] = section_tcp_throughput(cfg, targets_, p)
        if 2 in only:
            print("2. keep-alive request/response", flush=True)
            res["keepalive"] = section_wrk(cfg, targets_, p, close=False)
        if 3 in only:
            print("3. new connection per request", flush=True)
            res["close"] = section_wrk(cfg, targets_, p, close=True)
        if 4 in only:
            print("4. memory per idle TCP connection", flush=True)
            res["idle"] = section_idle_memory(cfg, targets_, p, work)
        if 5 in only:
            print("5. UDP", flush=True)
            res["udp"] = section_udp(cfg, targets_, p, work, nvelox_udp)
        for t in targets_.values():
            t.proc.stop()
        if 8 in only:
            print("8. HTTP mode", flush=True)
            res["http"] = http_tls.section_http(cfg, p, work)
        if 9 in only:
            print("9. TLS", flush=True)
            res["tls"] = http_tls.section_tls(cfg, work)
        if 6 in only:
            print("6. 10,000-port range", flush=True)
            res["ports"] = section_many_ports(cfg, work, have)
        if 7 in only:
            print("7. footprint", flush=True)
            res["footprint"] = section_footprint(cfg, work, p, have)
    finally:
        stop_all()
    res["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    res["duration_s"] = time.monotonic() - t_start
    if cfg.merge and Path(cfg.json).exists():
        base = json.loads(Path(cfg.json).read_text())
        sections = [k for k in ("tcp", "keepalive", "close", "idle", "udp", "ports", "footprint",
                                *http_tls.SECTIONS.values()) if k in res]
        base.setdefault("reruns", []).append({
            "date": res["machine"]["date"], "sections": sections,
            "loadavg": [res["machine"]["loadavg_start"], res["loadavg_end"]],
            "nvelox": res["machine"]["versions"]["nvelox"]})
        for k in sections:
            base[k] = res[k]
        res = base
    Path(cfg.json).write_text(json.dumps(res, indent=1, default=str) + "\n")
    Path(cfg.out).write_text(render(res, cfg) + "\n")
    print(f"done in {res['duration_s']:.0f} s: wrote {cfg.out} and {cfg.json}", flush=True)
    for t in targets(res) + http_tls.targets(res):
        print(f"  target: {t[0]}: {t[1]} ({t[2]})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
