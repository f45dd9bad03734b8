#!/usr/bin/env bash
# Proof that the static x86_64 musl build starts and relays: builds it, checks
# it is statically linked, runs it on a generated config on 127.0.0.1 in
# front of a python3 echo backend, sends 256 KiB of random bytes and checks
# they come back unchanged, then stops it with SIGTERM and expects exit 0.
# Installs the rustup musl target if missing. Bounded: every wait has a
# deadline; the whole script is meant to finish well within 3 minutes.
#
#   bench/musl_smoke.sh                                    x86_64, native
#   TARGET=aarch64-unknown-linux-musl bench/musl_smoke.sh  aarch64 under qemu-aarch64
#       (Debian: gcc-aarch64-linux-gnu for the link, qemu-user to run it)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${TARGET:-x86_64-unknown-linux-musl}
RUNNER=""
case "$TARGET" in
    x86_64-*) ;;
    aarch64-*) RUNNER=qemu-aarch64 ;;
    *) echo "musl smoke: unsupported TARGET $TARGET" >&2; exit 2 ;;
esac

if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    rustup target add "$TARGET" >/dev/null
fi
# ring (rustls' crypto, feature `tls`) compiles C and assembly for the
# target: musl-gcc (Debian: musl-tools) for x86_64, the cross gcc for aarch64.
case "$TARGET" in
    x86_64-*)
        if ! command -v musl-gcc >/dev/null; then
            (apt-get install -y musl-tools || (apt-get update && apt-get install -y musl-tools)) >/dev/null 2>&1 || true
        fi
        export CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}"
        ;;
    aarch64-*) export CC_aarch64_unknown_linux_musl="${CC_aarch64_unknown_linux_musl:-aarch64-linux-gnu-gcc}" ;;
esac
cargo build --release --target "$TARGET" --bin nvelox
BIN="target/$TARGET/release/nvelox"

if [ -n "$RUNNER" ] || ldd "$BIN" 2>&1 | grep -qE "not a dynamic executable|statically linked"; then
    echo "musl smoke: $BIN is static, $(stat -c %s "$BIN") bytes"
else
    echo "musl smoke: $BIN is not statically linked:" >&2
    ldd "$BIN" >&2 || true
    exit 1
fi
$RUNNER "$BIN" --version

exec python3 - "$RUNNER" "$BIN" <<'PY'
import os, signal, socket, subprocess, sys, tempfile, threading, time

binary = [a for a in sys.argv[1:3] if a]

def echo_backend(ls):
    def serve(c):
        with c:
            while True:
                b = c.recv(65536)
                if not b:
                    c.shutdown(socket.SHUT_WR)
                    return
                c.sendall(b)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()

backend = socket.socket()
backend.bind(("127.0.0.1", 0))
backend.listen(16)
threading.Thread(target=echo_backend, args=(backend,), daemon=True).start()
bport = backend.getsockname()[1]

# a free port for the balancer (the tiny race with other programs is retried)
def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

work = tempfile.mkdtemp(prefix="nvelox-musl-smoke.")
payload = os.urandom(256 * 1024)
for attempt in range(3):
    port = free_port()
    conf = os.path.join(work, "nvelox.yaml")
    with open(conf, "w") as f:
        f.write(f"""version: "2"
server: {{ workers: 1, shutdown_timeout: 2s }}
logging: {{ level: info, error_log: stderr }}
listeners:
  - {{ name: smoke, bind: "127.0.0.1:{port}", default_backend: echo }}
backends:
  - {{ name: echo, servers: ["127.0.0.1:{bport}"] }}
""")
    check = subprocess.run(binary + ["-c", conf, "--check"], capture_output=True, text=True, timeout=20)
    if check.returncode != 0:
        print("musl smoke: --check failed:", check.stdout, check.stderr, file=sys.stderr)
        sys.exit(1)
    proc = subprocess.Popen(binary + ["-c", conf], stderr=subprocess.PIPE, text=True)
    got = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.settimeout(10)
                sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
                sender.start()
                chunks = []
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    chunks.append(b)
                sender.join(10)
                got = b"".join(chunks)
                break
        except OSError:
            time.sleep(0.02)
    if proc.poll() is not None and got is None:
        err = proc.stderr.read()
        if "in use" in err.lower() and attempt < 2:
            continue
        print(f"musl smoke: nvelox exited with {proc.returncode}: {err}", file=sys.stderr)
        sys.exit(1)
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        print("musl smoke: nvelox did not exit within 10 s of SIGTERM", file=sys.stderr)
        sys.exit(1)
    if got != payload:
        n = -1 if got is None else len(got)
        print(f"musl smoke: relayed {n} bytes, expected {len(payload)} identical bytes", file=sys.stderr)
        print(proc.stderr.read(), file=sys.stderr)
        sys.exit(1)
    if code != 0:
        print(f"musl smoke: exit code {code} after SIGTERM, expected 0", file=sys.stderr)
        sys.exit(1)
    print(f"musl smoke: OK, {len(payload)} bytes relayed byte-exact through the static binary; clean exit on SIGTERM")
    sys.exit(0)
print("musl smoke: could not find a free port", file=sys.stderr)
sys.exit(1)
PY
