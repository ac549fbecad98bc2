#!/usr/bin/env python3
"""
tests/scripts/flood_test.py — memory stays under the configured caps in a
flood: kagami reads a generated flood (bench/gen_traffic --flood) with small
caps, and its peak resident memory must stay under a bound derived from
those caps, and must not grow when the flood is ten times longer.
Python 3 standard library.

  flood_test.py --kagami build/sensor/kagami --gen-traffic build/bench/gen_traffic

The flood (--mode, default "mixed"): TCP SYNs from random sources (every
packet a new flow), IP fragments with random ids that never complete
(IPv4 and IPv6), UDP from random sources, TCP segments opening a 16 KB TLS
ClientHello that never completes (the sensor buffers handshake bytes for
each), ICMP from random sources. The generator's output is piped into
`kagami -r /dev/stdin`, so the ten-times run needs no 2 GB file on disk.

Runs, each with --workers 2 --set flow.max_flows=4096 --set defrag.max_mb=4
--set stats.interval=1 -o file:EVENTS (the caps are options):
  1. baseline: an empty capture (the 24-byte pcap header only): what the
     process costs before any packet (nDPI detection modules, flow tables,
     indicators, libraries);
  2. the flood, --packets packets (default 1,000,000);
  3. the same flood, --scale times longer (default 10x).

Checks, for runs 2 and 3:
  * kagami exits 0; its summary shows flows evicted > 0 (not for --mode
    frag: fragments that never complete make no flow) and fragments > 0
    (not for --mode syn);
  * in its last `stats` event (when the run lasted long enough to emit
    one; run 3 must have): defrag.evicted > 0 once the event has counted
    4 x as many fragments as the pools have slots (not for syn),
    defrag.bytes_held <=
    workers x defrag.max_mb, flows.active <= workers x flow.max_flows;
  * peak RSS <= BOUND (below);
  * run 3's peak RSS <= run 2's x (1 + --growth) (default 5 %): ten times
    the packets, flows and fragments, the same memory.

Peak RSS is the kernel's high-water mark for the kagami process: the larger
of ru_maxrss from wait4() and VmHWM polled from /proc/PID/status every
20 ms while it runs (they agree to within a few pages).

BOUND, from the caps (per worker W, F = flow.max_flows, D = defrag.max_mb):
  baseline (measured, run 1)
  + W x ( F x 2 KiB          flow slot: struct kg_flow (880 B) + an nDPI
                             flow state (688 B, nDPI 4.2) + hash bucket,
                             rounded up
        + D MiB              IP reassembly pool: bytes_held <= the cap by
                             construction (dissect/defrag.c)
        + 64 MiB             handshake reassembly budget per worker
                             (dissect.c stream_budget): an upper bound; the
                             flood's ClientHellos hold at most F x 4 KiB
        + R x 128 KiB )      the reader's packet batches, pipeline.ring_size
                             R = 256 arenas of 128 KiB, touched as filled
  + 10 % + 16 MiB            allocator arenas and fragmentation, thread
                             stacks, the export thread's queue
With W = 2, F = 4096, D = 4: baseline + 2 x (8 + 4 + 64 + 32) MiB, + 10 %
+ 16 MiB. The bound holds for any traffic under these caps; the growth
check is the tighter one: anything that grows with the traffic (a leak, a
table without a cap) shows there.

Exit status: 0 pass, 1 fail, 77 skipped (no /proc).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
KIB = 1024
MIB = 1024 * 1024

SUMMARY_RE = re.compile(
    r"^\[dissect\] info: flows created (?P<created>\d+), timed out (?P<timed_out>\d+), "
    r"evicted (?P<evicted>\d+);.* fragments (?P<fragments>\d+),"
)


class Fail(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def read_hwm(pid):
    """VmHWM of a live process in bytes, or 0 when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * KIB
    except OSError:
        pass
    return 0


def write_empty_pcap(path):
    # libpcap savefile header: magic, version 2.4, zone, sigfigs, snaplen, Ethernet
    with open(path, "wb") as f:
        f.write(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))


def run_kagami(args, workdir, name, gen_cmd=None, pcap=None):
    """Runs kagami on pcap, or on gen_cmd's output through a pipe. Returns
    a dict: rc, stderr, events, peak (bytes), polled (bytes), seconds."""
    events = os.path.join(workdir, name + ".events.json")
    err_path = os.path.join(workdir, name + ".stderr")
    cmd = [args.kagami, "-r", pcap or "/dev/stdin", "--workers", str(args.workers),
           "--set", "flow.max_flows=%d" % args.max_flows, "--set", "defrag.max_mb=%d" % args.defrag_mb,
           "--set", "stats.interval=1", "-o", "file:" + events, "--log-level", "info"]
    for feed in args.indicators:
        cmd += ["--indicators", feed]
    log("  $ %s%s" % ((" ".join(gen_cmd) + " | ") if gen_cmd else "", " ".join(cmd)))
    gen = None
    gen_err = None
    if gen_cmd:
        gen_err = open(os.path.join(workdir, name + ".gen.stderr"), "w")
        gen = subprocess.Popen(gen_cmd, stdout=subprocess.PIPE, stderr=gen_err)
    with open(err_path, "w") as err:
        t0 = time.monotonic()
        k = subprocess.Popen(cmd, stdin=gen.stdout if gen else subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=err)
        if gen:
            gen.stdout.close()  # kagami holds the read end now
        polled = [0]
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                polled[0] = max(polled[0], read_hwm(k.pid))
                stop.wait(0.02)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        deadline = t0 + args.timeout
        status = ru = None
        while True:
            pid, status, ru = os.wait4(k.pid, os.WNOHANG)
            if pid == k.pid:
                break
            if time.monotonic() > deadline:
                k.kill()
                pid, status, ru = os.wait4(k.pid, 0)
                stop.set()
                if gen:
                    gen.kill()
                    gen.wait()
                raise Fail("%s: kagami did not finish within %d s" % (name, args.timeout))
            time.sleep(0.02)
        seconds = time.monotonic() - t0
        stop.set()
        th.join()
        k.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if gen:
        grc = gen.wait()
        gen_err.close()
        if grc != 0:
            with open(gen_err.name) as f:
                raise Fail("%s: gen_traffic exited %d:\n%s" % (name, grc, f.read()))
    with open(err_path) as f:
        stderr = f.read()
    evs = []
    if os.path.exists(events):
        with open(events) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    evs.append(json.loads(line))
                except ValueError as e:
                    raise Fail("%s: %s:%d: not JSON (%s)" % (name, events, n, e))
    # The two agree to within a few pages (the kernel samples its
    # high-water mark at different moments); the larger is taken.
    return {"rc": k.returncode, "stderr": stderr, "events": evs, "peak": max(ru.ru_maxrss * KIB, polled[0]),
            "rusage": ru.ru_maxrss * KIB, "polled": polled[0], "seconds": seconds}


def check_flood(args, name, r, bound):
    problems = []
    if r["rc"] != 0:
        problems.append("exit status %d" % r["rc"])
    m = None
    for line in r["stderr"].splitlines():
        m = SUMMARY_RE.match(line) or m
    if not m:
        problems.append("no '[dissect] info: flows created ...' summary line")
    else:
        if args.mode != "frag" and int(m.group("evicted")) == 0:
            problems.append("no flow evicted: the flow table cap was not reached")
        if args.mode != "syn" and int(m.group("fragments")) == 0:
            problems.append("no fragment seen")
    stats = [e["stats"] for e in r["events"] if e.get("event_type") == "stats"]
    if stats:
        s = stats[-1]
        # The last periodic event may come early in a short run: judge the
        # reassembly cap only once the event has seen four times as many
        # fragments as the pools have 1040-byte slots (a new datagram takes
        # two, dissect/defrag.c).
        slots = args.workers * args.defrag_mb * MIB // 1040
        if args.mode != "syn" and s["defrag"]["fragments"] >= 4 * slots and s["defrag"]["evicted"] == 0:
            problems.append("stats: defrag.evicted is 0 after %d fragments: the reassembly cap was not reached"
                            % s["defrag"]["fragments"])
        if s["defrag"]["bytes_held"] > args.workers * args.defrag_mb * MIB:
            problems.append("stats: defrag.bytes_held %d > %d x %d MiB"
                            % (s["defrag"]["bytes_held"], args.workers, args.defrag_mb))
        if s["flows"]["active"] > args.workers * args.max_flows:
            problems.append("stats: flows.active %d > %d x %d" % (s["flows"]["active"], args.workers, args.max_flows))
    elif r["seconds"] >= 3:
        problems.append("no stats event in a run of %.1f s (stats.interval=1)" % r["seconds"])
    if args.check_rss and r["peak"] > bound:
        problems.append("peak RSS %.1f MiB above the bound %.1f MiB" % (r["peak"] / MIB, bound / MIB))
    s = stats[-1] if stats else None
    log("  %s: exit %d in %.1f s; %s; %s; peak RSS %.1f MiB (ru_maxrss %.1f, VmHWM polled %.1f)%s"
        % (name, r["rc"], r["seconds"],
           "flows created %s, evicted %s, fragments %s" % (m.group("created"), m.group("evicted"),
                                                           m.group("fragments")) if m else "no summary",
           "last stats: defrag evicted %d, bytes_held %d, flows active %d, handshake budget exhausted %d"
           % (s["defrag"]["evicted"], s["defrag"]["bytes_held"], s["flows"]["active"],
              s["app"]["handshake_budget_exhausted"]) if s else "no stats event",
           r["peak"] / MIB, r["rusage"] / MIB, r["polled"] / MIB, "" if not problems else "  FAIL"))
    if problems:
        raise Fail("%s:\n  %s\n--- kagami stderr ---\n%s" % (name, "\n  ".join(problems), r["stderr"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kagami", required=True)
    ap.add_argument("--gen-traffic", required=True)
    ap.add_argument("--source-dir", default=os.environ.get("KG_SOURCE_DIR", "."))
    ap.add_argument("--mode", default="mixed", choices=["syn", "frag", "mixed"])
    ap.add_argument("--packets", type=int, default=1000000)
    ap.add_argument("--scale", type=int, default=10, help="the long run has SCALE x packets (0: no long run)")
    ap.add_argument("--growth", type=float, default=0.05, help="allowed peak RSS growth of the long run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-flows", type=int, default=4096)
    ap.add_argument("--defrag-mb", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=240, help="seconds per kagami run")
    ap.add_argument("--no-rss-check", dest="check_rss", action="store_false",
                    help="report memory without checking it (sanitizer builds)")
    args = ap.parse_args()

    if not os.path.exists("/proc/self/status"):
        log("SKIP: no /proc")
        return SKIP
    for exe in (args.kagami, args.gen_traffic):
        if not os.access(exe, os.X_OK):
            log("FAIL: %s is not an executable" % exe)
            return 1
    feed = os.path.join(os.path.abspath(args.source_dir), "config/indicators/demo.intel")
    args.indicators = [feed] if os.path.exists(feed) else []

    workdir = tempfile.mkdtemp(prefix="kg_flood_")
    try:
        log("baseline: an empty capture")
        empty = os.path.join(workdir, "empty.pcap")
        write_empty_pcap(empty)
        base = run_kagami(args, workdir, "baseline", pcap=empty)
        if base["rc"] != 0:
            raise Fail("baseline: exit status %d:\n%s" % (base["rc"], base["stderr"]))
        per_worker = args.max_flows * 2 * KIB + args.defrag_mb * MIB + 64 * MIB + 256 * 128 * KIB
        bound = int((base["peak"] + args.workers * per_worker) * 1.10) + 16 * MIB
        log("  baseline peak RSS %.1f MiB; bound = (%.1f + %d x (%d x 2 KiB + %d MiB + 64 MiB + 256 x 128 KiB))"
            " x 1.1 + 16 MiB = %.1f MiB"
            % (base["peak"] / MIB, base["peak"] / MIB, args.workers, args.max_flows, args.defrag_mb, bound / MIB))

        results = []
        sizes = [args.packets] + ([args.packets * args.scale] if args.scale else [])
        for n in sizes:
            name = "flood-%s-%d" % (args.mode, n)
            log("%s: %d packets" % (name, n))
            gen = [args.gen_traffic, "--flood", args.mode, "--packets", str(n), "--seed", str(args.seed),
                   "--out", "-", "-q"]
            r = run_kagami(args, workdir, name, gen_cmd=gen)
            check_flood(args, name, r, bound)
            results.append(r)
        if len(results) == 2:
            a, b = results[0]["peak"], results[1]["peak"]
            growth = (b - a) / a
            log("peak RSS: %.1f MiB for %d packets, %.1f MiB for %d (%+.1f %%; allowed %+.1f %%)"
                % (a / MIB, sizes[0], b / MIB, sizes[1], 100 * growth, 100 * args.growth))
            if args.check_rss and growth > args.growth:
                raise Fail("peak RSS grew by %.1f %% with %dx the flood" % (100 * growth, args.scale))
    except Fail as e:
        log("FAIL %s" % e)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    log("flood test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
