#!/usr/bin/env python3
"""TCP helpers for the benchmark (stdlib only).

  tcp_idle.py server PORT
      epoll echo server on 127.0.0.1:PORT; holds every connection until the
      peer closes. Used as the backend for idle connections and start-up
      timing.
  tcp_idle.py client PORT N HOLD_SECONDS
      opens N connections to 127.0.0.1:PORT, sends one byte on each and
      waits for it to come back (so the proxy has connected upstream and
      relayed once), prints "ready N", then holds them idle until stdin
      closes or HOLD_SECONDS pass.
"""

import resource
import select
import socket
import sys
import time


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def server(port: int) -> None:
    raise_nofile()
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4096)
    ls.setblocking(False)
    ep = select.epoll()
    ep.register(ls.fileno(), select.EPOLLIN)
    conns = {}
    while True:
        for fd, _ in ep.poll(1.0):
            if fd == ls.fileno():
                while True:
                    try:
                        c, _ = ls.accept()
                    except (BlockingIOError, OSError):
                        break
                    c.setblocking(False)
                    conns[c.fileno()] = c
                    ep.register(c.fileno(), select.EPOLLIN)
                continue
            c = conns.get(fd)
            if c is None:
                continue
            try:
                data = c.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                try:
                    c.sendall(data)
                except OSError:
                    pass
            else:
                ep.unregister(fd)
                conns.pop(fd, None)
                c.close()


def client(port: int, n: int, hold: float) -> int:
    raise_nofile()
    socks = []
    deadline = time.monotonic() + 120
    for i in range(n):
        if time.monotonic() > deadline:
            print(f"timeout after {i} connections", flush=True)
            return 1
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"x")
        if s.recv(1) != b"x":
            print(f"connection {i}: no echo", flush=True)
            return 1
        socks.append(s)
    print(f"ready {len(socks)}", flush=True)
    select.select([sys.stdin], [], [], hold)
    for s in socks:
        s.close()
    return 0


def main() -> int:
    a = sys.argv[1:]
    if len(a) == 2 and a[0] == "server":
        server(int(a[1]))
        return 0
    if len(a) == 4 and a[0] == "client":
        return client(int(a[1]), int(a[2]), float(a[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
