#!/usr/bin/env bash
# Chaos run: three TCP echo backends behind nvelox (active tcp checks every
# 200 ms, passive checks, retries), a client opening short connections in a
# loop, and a killer that stops and restarts a random backend every second.
# Reports connections failed vs. total. Loopback only; not part of cargo test.
#
#   bench/chaos.sh [SECONDS] [NVELOX_BINARY]
#
# SECONDS defaults to 20; the binary to target/debug/nvelox (built if missing).
set -euo pipefail

DURATION=${1:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${2:-$ROOT/target/debug/nvelox}
[ -x "$BIN" ] || (cd "$ROOT" && cargo build -q --bin nvelox)

WORK=$(mktemp -d /tmp/nvelox-chaos.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$WORK/backends.pids" ] && while read -r p; do kill "$p" 2>/dev/null || true; done <"$WORK/backends.pids"
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
LB_PORT=$(free_port)
B1=$(free_port); B2=$(free_port); B3=$(free_port)

cat >"$WORK/backend.py" <<'PY'
import socket, sys, threading
port = int(sys.argv[1])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port)); l.listen(128)
def serve(c):
    try:
        c.sendall(b"b%d\n" % port)
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
    except OSError:
        pass
    finally:
        c.close()
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY

cat >"$WORK/client.py" <<'PY'
import socket, sys, time
port, duration = int(sys.argv[1]), float(sys.argv[2])
total = failed = 0
end = time.time() + duration
while time.time() < end:
    total += 1
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.settimeout(5)
        f = s.makefile("rb")
        if not f.readline().startswith(b"b"):
            raise OSError("no greeting")
        s.sendall(b"ping\n")
        if f.readline() != b"ping\n":
            raise OSError("bad echo")
        s.close()
    except OSError:
        failed += 1
    time.sleep(0.005)
print(f"connections: {total} total, {failed} failed ({100.0 * failed / max(total, 1):.2f}%)")
PY

cat >"$WORK/nvelox.yaml" <<YAML
server:
  workers: 2
logging:
  level: warn
listeners:
  - name: chaos
    bind: "127.0.0.1:$LB_PORT"
    default_backend: pool
backends:
  - name: pool
    balance: roundrobin
    connect_timeout: 1s
    retries: 2
    servers: ["127.0.0.1:$B1", "127.0.0.1:$B2", "127.0.0.1:$B3"]
    health_check:
      active: { type: tcp, interval: 200ms, timeout: 200ms, fall: 2, rise: 2 }
      passive: { max_fails: 2, fail_timeout: 2s }
YAML

start_backend() { python3 "$WORK/backend.py" "$1" & echo $! >"$WORK/b$1.pid"; echo $! >>"$WORK/backends.pids"; }
for p in $B1 $B2 $B3; do start_backend "$p"; done

"$BIN" -c "$WORK/nvelox.yaml" 2>"$WORK/nvelox.log" &
PIDS+=($!)
sleep 0.5

python3 "$WORK/client.py" "$LB_PORT" "$DURATION" >"$WORK/client.out" &
CLIENT=$!

# Killer: stop one backend for ~1 s, bring it back, repeat; never all at once.
END=$((SECONDS + DURATION))
kills=0
while [ $SECONDS -lt $END ]; do
    ports=($B1 $B2 $B3)
    victim=${ports[$((RANDOM % 3))]}
    kill "$(cat "$WORK/b$victim.pid")" 2>/dev/null || true
    kills=$((kills + 1))
    sleep 1
    start_backend "$victim"
    sleep 0.5
done
wait "$CLIENT" || true

cat "$WORK/client.out"
echo "backend kills: $kills"
echo "state changes logged: $(grep -c -- '->' "$WORK/nvelox.log" || true)"
