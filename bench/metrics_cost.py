#!/usr/bin/env python3
"""What counting costs (issue 12): keep-alive HTTP request/response through
nvelox with counters compiled out (baseline) and with counters on, the
metrics endpoint enabled and scraped every second, in one run.

Both builds come from the same source: the baseline is built with
`RUSTFLAGS="--cfg nvelox_no_counters"` (every counter update compiled out),
so the difference is exactly the counting (plus the scrapes).

    cargo build --release --bin nvelox
    RUSTFLAGS="--cfg nvelox_no_counters" cargo build --release --bin nvelox --target-dir target/nocount
    python3 bench/metrics_cost.py [--rounds 5] [--secs 4]

Each nvelox runs one worker pinned to core 1; nginx (the origin), wrk and
the scraper share core 0. The proxies are measured interleaved (round 1 of
both, then round 2, ...); the figure is proxy CPU (utime+stime from
/proc/PID/stat) per request, and the median over the rounds is compared.
Appends nothing anywhere: prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as b  # noqa: E402

BASE = b.ROOT / "target" / "nocount" / "release" / "nvelox"
COUNTING = b.ROOT / "target" / "release" / "nvelox"


def conf(port: int, origin: int, metrics: int | None) -> str:
    m = f'metrics: {{ enabled: true, bind: "127.0.0.1:{metrics}" }}\n' if metrics else ""
    return f"""server: {{ workers: 1 }}
logging: {{ level: warn }}
{m}listeners:
  - {{ name: http, bind: "127.0.0.1:{port}", backend: origin }}
backends:
  - {{ name: origin, servers: ["127.0.0.1:{origin}"] }}
"""


def scraper(port: int, stop: threading.Event, count: list[int]) -> None:
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                if r.status == 200 and r.read():
                    count[0] += 1
        except OSError:
            pass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=int, default=4)
    ap.add_argument("--port-base", type=int, default=23000)
    args = ap.parse_args()
    for binary in (BASE, COUNTING):
        if not binary.exists():
            print(f"missing {binary}: build it first (see the header)", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="nvelox-metrics-cost-"))
    pb = args.port_base
    p = b.Ports(pb)
    origin, base_port, count_port, metrics_port = p.http, pb + 501, pb + 502, pb + 503
    try:
        b.start_nginx("origin", b.nginx_origin_conf(work, p), work, b.LOAD_CPU,
                      lambda: b.port_open(origin))
        proxies = {}
        for name, binary, port, mport in (
            ("counters off", BASE, base_port, None),
            ("counters on + metrics scraped 1/s", COUNTING, count_port, metrics_port),
        ):
            cfg = work / f"{port}.yaml"
            cfg.write_text(conf(port, origin, mport))
            proc = b.Proc(f"nvelox-{port}", [str(binary), "-c", str(cfg)], work, b.PROXY_CPU)
            if not b.wait_until(lambda: b.port_open(port), 10):
                raise RuntimeError(f"nvelox did not start: {proc.log_text()[-2000:]}")
            proxies[name] = (b.Proxy(name, proc, proc.pid), port)
        stop = threading.Event()
        scrapes = [0]
        t = threading.Thread(target=scraper, args=(metrics_port, stop, scrapes), daemon=True)
        t.start()
        runs: dict[str, list[float]] = {n: [] for n in proxies}
        rps: dict[str, list[float]] = {n: [] for n in proxies}
        for r in range(args.rounds):
            for name, (proxy, port) in proxies.items():
                res, cpu = b.measured(proxy, lambda: b.wrk(port, args.secs, False))
                if not res.get("requests") or cpu is None:
                    print(f"  round {r + 1} {name}: failed: {res}", flush=True)
                    continue
                us = cpu / res["requests"] * 1e6
                runs[name].append(us)
                rps[name].append(res["rps"])
                print(f"  round {r + 1} {name}: {res['rps']:.0f} req/s, {us:.3f} CPU-us/req",
                      flush=True)
                time.sleep(0.5)
        stop.set()
        names = list(proxies)
        base_med = statistics.median(runs[names[0]])
        print()
        print("| nvelox | req/s (median) | proxy CPU-us per request (median) | vs counters off | all runs, CPU-us/req |")
        print("|---|---:|---:|---:|---|")
        for n in names:
            med = statistics.median(runs[n])
            print(f"| {n} | {statistics.median(rps[n]):.0f} | {med:.3f} | "
                  f"{(med / base_med - 1) * 100:+.1f} % | "
                  f"{' / '.join(f'{x:.3f}' for x in runs[n])} |")
        print(f"\nscrapes during the run: {scrapes[0]}")
        return 0
    finally:
        b.stop_all()


if __name__ == "__main__":
    sys.exit(main())
