#!/bin/bash
# bench/bench_redis.sh — events/s that a Redis sink delivers, plain and TLS,
# beside redis-benchmark's pipelined RPUSH rate with the same payload size.
#
#   bench/bench_redis.sh BUILD_DIR [COUNT] [SIZE] [ROUNDS]
#
# BUILD_DIR holds tests/bench_redis (cmake --build BUILD_DIR --target
# bench_redis; use a RelWithDebInfo or Release build). Starts its own
# redis-server (plain port and TLS port, certificates made with openssl)
# on free loopback ports in a temporary directory, killed on exit. Each
# round runs, back to back so that they see the same machine load:
#   redis-benchmark -P 64 -t rpush -d SIZE   (50 connections, plain, then TLS)
#   bench_redis: one sink, one connection, group=1 (one RPUSH per event)
#   bench_redis: the default (up to 64 events per RPUSH), plain and TLS
# and the best round of each is reported (the least disturbed by other
# work on the machine). Results go to docs/PERFORMANCE.md by hand.
set -euo pipefail

build=${1:?usage: bench_redis.sh BUILD_DIR [COUNT] [SIZE] [ROUNDS]}
count=${2:-300000}
size=${3:-600}
rounds=${4:-3}
driver=$build/tests/bench_redis
[ -x "$driver" ] || { echo "no $driver: build the bench_redis target" >&2; exit 2; }
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
  { echo "redis-server and redis-benchmark are needed" >&2; exit 2; }

tmp=$(mktemp -d /tmp/kg_bench_redis.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

(
  cd "$tmp"
  k='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > server.ext
  openssl req -x509 -new $k -keyout ca.key -out ca.crt -days 2 -subj /CN=bench-ca
  openssl req -new $k -keyout server.key -out server.csr -subj /CN=localhost
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 \
    -extfile server.ext
) >/dev/null 2>&1

port=$(free_port)
tport=$(free_port)
redis-server --port "$port" --tls-port "$tport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
  --tls-cert-file "$tmp/server.crt" --tls-key-file "$tmp/server.key" --tls-ca-cert-file "$tmp/ca.crt" \
  --tls-auth-clients no --logfile "$tmp/redis.log" &
pid=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done

rb() { # redis-benchmark rate (requests/s)
  redis-benchmark -p "$1" "${@:2}" -P 64 -t rpush -d "$size" -n "$count" -q 2>/dev/null |
    tr '\r' '\n' | awk '/requests per second/ {print int($2)}' | tail -1
  redis-cli -p "$port" flushall >/dev/null
}
kb() { # bench_redis rate (events/s)
  "$driver" --spec "$1" --count "$count" --size "$size" --batch 1024 | sed -n 's/.*events_per_s=\([0-9]*\).*/\1/p'
  redis-cli -p "$port" flushall >/dev/null
}

declare -A best
keep_best() { local k=$1 v=$2; [ -z "${best[$k]:-}" ] || [ "$v" -gt "${best[$k]}" ] && best[$k]=$v; true; }
for r in $(seq "$rounds"); do
  keep_best rb_plain "$(rb "$port")"
  keep_best kg_plain_g1 "$(kb "redis://127.0.0.1:$port/bench?group=1")"
  keep_best kg_plain "$(kb "redis://127.0.0.1:$port/bench")"
  keep_best rb_tls "$(rb "$tport" --tls --cacert "$tmp/ca.crt")"
  keep_best kg_tls_g1 "$(kb "rediss://127.0.0.1:$tport/bench?ca=$tmp/ca.crt&group=1")"
  keep_best kg_tls "$(kb "rediss://127.0.0.1:$tport/bench?ca=$tmp/ca.crt")"
  echo "round $r done" >&2
done

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
echo "events: $count x ~$size bytes; best of $rounds rounds; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-58s %10s %8s\n' "what" "per second" "vs rb"
printf '%-58s %10s %8s\n' "redis-benchmark -P 64 -t rpush (50 conns, plain)" "${best[rb_plain]}" "100%"
printf '%-58s %10s %8s\n' "kagami sink, plain, 1 conn, 1 event per RPUSH (group=1)" "${best[kg_plain_g1]}" \
  "$(pct "${best[kg_plain_g1]}" "${best[rb_plain]}")"
printf '%-58s %10s %8s\n' "kagami sink, plain, 1 conn, up to 64 events per RPUSH" "${best[kg_plain]}" \
  "$(pct "${best[kg_plain]}" "${best[rb_plain]}")"
printf '%-58s %10s %8s\n' "redis-benchmark --tls -P 64 -t rpush (50 conns)" "${best[rb_tls]}" "100%"
printf '%-58s %10s %8s\n' "kagami sink, TLS, 1 conn, 1 event per RPUSH (group=1)" "${best[kg_tls_g1]}" \
  "$(pct "${best[kg_tls_g1]}" "${best[rb_tls]}")"
printf '%-58s %10s %8s\n' "kagami sink, TLS, 1 conn, up to 64 events per RPUSH" "${best[kg_tls]}" \
  "$(pct "${best[kg_tls]}" "${best[rb_tls]}")"
