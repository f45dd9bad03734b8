#!/usr/bin/env python3
"""Accept cost with a 100,000-entry `ip_denylist` against none (issue 15).

Run through `bench/run.sh --acl [--secs N]` (which builds the release
binary). nvelox (workers: 1, pinned to core 1) relays short connections to
an asyncio echo server; client threads on core 0 each connect, send one
byte, read it back and close, for `--secs` seconds. Reported per case:
connections per second, nvelox CPU microseconds per connection (utime +
stime from /proc), and the CPU time `nvelox --check` takes to load the file.
The deny list's entries never match the loopback client, so every
connection pays the lookup and is then served.
"""

import argparse
import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "nvelox"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def echo_server(port: int, ready: threading.Event) -> None:
    async def handle(reader, writer):
        try:
            data = await reader.read(64)
            if data:
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def config(port: int, backend: int, deny: int) -> str:
    lines = [
        "server:\n  workers: 1\n",
        "logging:\n  level: error\n",
        "listeners:\n",
        f"  - name: bench\n    bind: \"127.0.0.1:{port}\"\n    backend: b\n",
    ]
    if deny:
        lines.append("    ip_denylist:\n")
        base = 0x0B000000
        for i in range(deny):
            a = base + 2 * i
            lines.append(f"      - {a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}\n")
    lines.append(f"backends:\n  - name: b\n    servers: [\"127.0.0.1:{backend}\"]\n")
    return "".join(lines)


def load(port: int, secs: float, threads: int) -> int:
    stop = time.monotonic() + secs
    counts = [0] * threads

    def worker(k: int) -> None:
        while time.monotonic() < stop:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(b"x")
                    if s.recv(1) == b"x":
                        counts[k] += 1
            except OSError:
                pass

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts)


def one_case(work: Path, backend: int, deny: int, secs: float, threads: int) -> dict:
    port = free_port()
    conf = work / f"deny{deny}.yaml"
    conf.write_text(config(port, backend, deny))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([str(BIN), "-c", str(conf), "--check"], check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU time, not wall time: the figure that does not depend on the load.
    check_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    proc = subprocess.Popen(
        ["taskset", "-c", "1", str(BIN), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        load(port, 0.5, threads)  # warm-up
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.monotonic()
        n = load(port, secs, threads)
        elapsed = time.monotonic() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {
        "deny_entries": deny,
        "conns_per_s": n / elapsed,
        "cpu_us_per_conn": cpu * 1e6 / max(n, 1),
        "check_s": check_s,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--secs", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--entries", type=int, default=100_000)
    args = ap.parse_args()
    if not BIN.exists():
        print(f"build {BIN} first (bench/run.sh --acl does)", file=sys.stderr)
        return 2
    backend = free_port()
    ready = threading.Event()
    threading.Thread(target=echo_server, args=(backend, ready), daemon=True).start()
    ready.wait(5)
    os.sched_setaffinity(0, {0})
    rows = []
    with tempfile.TemporaryDirectory(prefix="nvelox-acl-") as d:
        for deny in (0, args.entries, 0, args.entries):
            rows.append(one_case(Path(d), backend, deny, args.secs, args.threads))
    print("| ip_denylist entries | conns/s | nvelox CPU us/conn | --check CPU time |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['deny_entries']:,} | {r['conns_per_s']:,.0f} | "
            f"{r['cpu_us_per_conn']:.1f} | {r['check_s'] * 1000:.0f} ms |"
        )
    base = [r for r in rows if r["deny_entries"] == 0]
    big = [r for r in rows if r["deny_entries"] != 0]
    b_cpu = min(r["cpu_us_per_conn"] for r in base)
    d_cpu = min(r["cpu_us_per_conn"] for r in big)
    print(f"\nCPU per connection, {args.entries:,} entries vs none (best of 2): {d_cpu / b_cpu:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
