#!/usr/bin/env bash
# nvelox benchmark harness: nvelox vs HAProxy vs nginx `stream` on loopback.
#
#   bench/run.sh            full run (about 6-10 minutes), writes docs/benchmarks.md
#   bench/run.sh --quick    short durations and fewer connections, for development
#   bench/run.sh --only 1,4 --quick   only some sections (see bench/bench.py --help)
#   bench/run.sh --acl      accept cost with a 100,000-entry ip_denylist vs none
#                           (bench/acl_accept.py; nvelox only, nothing installed)
#
# Installs HAProxy, nginx with the stream module, iperf3, wrk, curl, openssl
# and libssl-dev from Debian when missing (needs root), builds
# `target/release/nvelox` (a no-op when it is fresh) and the C helpers, then runs bench/bench.py. Never part of
# `cargo test`; needs 2 cores (proxies on core 1, load on core 0).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--acl" ]; then
    shift
    cargo build --release --bin nvelox
    exec python3 bench/acl_accept.py "$@"
fi

need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
# sections 8-9 (HTTP mode, TLS): certificates, the TLS load client, bulk download
command -v openssl >/dev/null || need+=(openssl)
[ -e /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts the packaged services on install where an init system runs;
# they are not ours and would take port 80 and CPU, so stop them if they did.
for svc in nginx haproxy; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done

if [ "$(nproc)" -lt 2 ]; then
    echo "need at least 2 cores (proxy on core 1, load on core 0)" >&2
    exit 2
fi

cargo build --release --bin nvelox
cargo build --release -p nvelox-reactor --example many_ports

mkdir -p bench/.build
for prog in udp_echo udp_load; do
    if [ ! -x "bench/.build/$prog" ] || [ "bench/$prog.c" -nt "bench/.build/$prog" ]; then
        gcc -O2 -Wall -Wextra -o "bench/.build/$prog" "bench/$prog.c"
    fi
done
if [ ! -x bench/.build/tls_load ] || [ bench/tls_load.c -nt bench/.build/tls_load ]; then
    gcc -O2 -Wall -Wextra -o bench/.build/tls_load bench/tls_load.c -lssl -lcrypto
fi

exec python3 bench/bench.py "$@"
