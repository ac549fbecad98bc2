#!/bin/bash
# bench/bench_pipeline.sh — what the whole sensor sustains: `kagami -r` on
# ~1.1 GB of generated LAN traffic (bench/gen_traffic.c) with 1 and 2
# workers, and the highest drop-free live rate on a veth pair
# (tests/scripts/live_test.py --bench). Results go to docs/PERFORMANCE.md
# ("Pipeline") by hand.
#
#   bench/bench_pipeline.sh BUILD_DIR [PCAP]
#
# BUILD_DIR holds sensor/kagami and bench/gen_traffic (cmake --build BUILD_DIR
# --target kagami gen_traffic; use a RelWithDebInfo or Release build). PCAP:
# a capture to reuse; without it, one is generated into a temporary
# directory (removed on exit). Environment:
#   RUNS=3             runs per worker count; the best (least disturbed) wall time is reported
#   WORKERS="1 2"      --workers values
#   BYTES=1100000000   size of the generated capture; SEED=1 its seed
#   LIVE=1             also run the live benchmark (needs root, iproute2, tcpreplay)
#   LIVE_RATES=...     packets/s list for live_test.py --bench-rates (0 = tcpreplay --topspeed)
#   LIVE_SECONDS=10    seconds of replay per rate; LIVE_SETTLE=3 seconds before SIGTERM
#
# The live rates are held for 10 s, not live_test.py's default 3 s: the
# capture rings (capture.buffer_mb, 64 MiB per thread) hold about 2 s of
# demo.pcap at 300,000 packets/s, so a short burst measures the rings, not
# the sensor; and the settle time lets a backlog drain before SIGTERM, since
# packets still in a ring at exit are neither processed nor counted as
# dropped.
#
# Each offline run is
#   kagami -r PCAP --indicators config/indicators/demo.intel -o file:/dev/null --workers N
# timed from exec to exit (start-up, indicator load and nDPI set-up
# included), with its peak RSS from /usr/bin/time (GNU time's %M, the
# kernel's ru_maxrss) or, without it, VmHWM polled from /proc/PID/status.
# Throughput = packets (and frame bytes x 8) that kagami reports having
# read, divided by the wall time. The page cache is warmed first, so the
# disk is not measured.
set -euo pipefail

build=${1:?usage: bench_pipeline.sh BUILD_DIR [PCAP]}
pcap=${2:-}
runs=${RUNS:-3}
workers=${WORKERS:-1 2}
bytes=${BYTES:-1100000000}
seed=${SEED:-1}
live=${LIVE:-1}
live_rates=${LIVE_RATES:-100000,150000,200000,250000,300000}
live_seconds=${LIVE_SECONDS:-10}
live_settle=${LIVE_SETTLE:-3}
src=$(cd "$(dirname "$0")/.." && pwd)
kagami=$build/sensor/kagami
gen=$build/bench/gen_traffic
feed=$src/config/indicators/demo.intel
[ -x "$kagami" ] || { echo "no $kagami: build the kagami target" >&2; exit 2; }

tmp=$(mktemp -d /tmp/kg_bench_pipeline.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

if [ -z "$pcap" ]; then
  [ -x "$gen" ] || { echo "no $gen: build the gen_traffic target" >&2; exit 2; }
  pcap=$tmp/traffic.pcap
  echo "== generating $bytes bytes (seed $seed)"
  echo "\$ $gen --bytes $bytes --seed $seed --out $pcap"
  "$gen" --bytes "$bytes" --seed "$seed" --out "$pcap"
fi
[ -r "$pcap" ] || { echo "$pcap: not readable" >&2; exit 2; }
cat "$pcap" >/dev/null # into the page cache

echo "== machine"
echo "nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'); kernel $(uname -r);" \
  "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg)"

# run_once N: one kagami run; sets wall (s), rss (KiB), pkts, fbytes.
run_once() {
  local n=$1 err=$tmp/kagami.err
  local cmd=("$kagami" -r "$pcap" --indicators "$feed" -o file:/dev/null --workers "$n")
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%e %M' -o "$tmp/time" "${cmd[@]}" 2>"$err" || { cat "$err" >&2; exit 1; }
    read -r wall rss <"$tmp/time"
  else
    local t0 t1 pid hwm
    t0=$(date +%s%N)
    "${cmd[@]}" 2>"$err" &
    pid=$!
    rss=0
    while kill -0 "$pid" 2>/dev/null; do
      hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      [ -n "$hwm" ] && [ "$hwm" -gt "$rss" ] && rss=$hwm
      sleep 0.05
    done
    wait "$pid" || { cat "$err" >&2; exit 1; }
    t1=$(date +%s%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
  fi
  # "[sensor] info: read N packets, B bytes in T s; A alerts"
  read -r pkts fbytes < <(sed -n 's/^\[sensor\] info: read \([0-9]*\) packets, \([0-9]*\) bytes in .*/\1 \2/p' "$err")
  [ -n "${pkts:-}" ] || { echo "no summary line in kagami's output:" >&2; cat "$err" >&2; exit 1; }
}

echo "== offline: best of $runs runs"
echo "\$ $kagami -r $pcap --indicators $feed -o file:/dev/null --workers N"
printf '%-8s %9s %10s %12s %9s %11s  %s\n' workers "best s" packets "packets/s" "Gbit/s" "peak RSS" "all runs (s)"
for n in $workers; do
  best="" all="" peak=0
  for _ in $(seq "$runs"); do
    run_once "$n"
    all="$all $wall"
    if [ -z "$best" ] || awk -v a="$wall" -v b="$best" 'BEGIN {exit !(a < b)}'; then best=$wall; fi
    [ "$rss" -gt "$peak" ] && peak=$rss
  done
  awk -v n="$n" -v t="$best" -v p="$pkts" -v b="$fbytes" -v r="$peak" -v all="$all" 'BEGIN {
    printf "%-8s %9.2f %10d %12.0f %9.2f %7.0f MiB %s\n", n, t, p, p / t, b * 8 / t / 1e9, r / 1024, all }'
done
tail -n +2 "$tmp/kagami.err" | sed 's/^/  last run: /'

if [ "$live" = 1 ]; then
  echo "== live: tests/scripts/live_test.py --bench (demo.pcap looped by tcpreplay into a veth pair)"
  if [ "$(id -u)" != 0 ] || ! command -v tcpreplay >/dev/null || ! command -v ip >/dev/null; then
    echo "skipped: needs root, iproute2 and tcpreplay"
    exit 0
  fi
  echo "\$ python3 tests/scripts/live_test.py --kagami $kagami --bench --bench-rates $live_rates" \
    "--bench-seconds $live_seconds --settle $live_settle"
  python3 "$src/tests/scripts/live_test.py" --kagami "$kagami" --source-dir "$src" --bench \
    --bench-rates "$live_rates" --bench-seconds "$live_seconds" --settle "$live_settle" | tee "$tmp/live.txt"
  # A rate is drop-free when nothing was dropped, every packet sent was
  # captured and kagami exited 0.
  # "rate R sent S in T s (P pps): captured C, kernel drops K, interface drops I, exit E"
  awk '/^rate / {
         gsub(/[(),:]/, " ")
         sent = $4; pps = $8; cap = $11; kd = $14; id = $17; ex = $19
         if (kd == 0 && id == 0 && cap == sent && ex == 0 && pps + 0 > best) best = pps + 0
       }
       END { if (best) printf "highest drop-free live rate: %.0f packets/s\n", best
             else print "no drop-free live rate" }' "$tmp/live.txt"
fi
