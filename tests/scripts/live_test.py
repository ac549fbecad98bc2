#!/usr/bin/env python3
"""
tests/scripts/live_test.py — live capture end to end: kagami on one end of a
veth pair, a capture replayed into the other end by tcpreplay, and the alerts
compared with those of kagami reading the same file. Python 3 standard
library; needs root, iproute2 and tcpreplay.

Layout (names carry this process's pid, so parallel runs do not meet):

    root namespace                        namespace kgliveNNN
    kagami -i kglNNNa  <---- veth ---->   kglNNNb  <- tcpreplay --pps=2000 FILE
    --capture-threads 2

For each case (capture + indicator feeds):
  1. reference: kagami -r FILE --indicators F... -o file:ref.json (exit 0);
  2. live: kagami -i kglNNNa --capture-threads 2 --indicators F...
     -o file:live.json, started and waited for ("capturing on" in its log);
     tcpreplay into kglNNNb (every packet sent); a settle time; SIGTERM;
  3. kagami must exit 0 within 30 s and log exactly one line
     "[capture] info: kglNNNa: packets N, bytes B, kernel drops D,
     interface drops I" with D == 0 and I == 0 and N == packets sent
     (no capture has IPv4 fragments, which fanout's defrag would merge);
  4. the alerts must be the same multiset as the reference, compared on
     src/dest ip and port, proto, vlan and indicator type/value/where/seen
     (timestamps, flow and event ids legitimately differ).
Both ends have IPv6 disabled and no address, so the kernel adds no traffic
of its own.

Namespaces and links are removed on every exit path (also on SIGINT/SIGTERM);
a kagami that does not stop is killed. Leftovers of a run that was killed
with SIGKILL (kglive<pid> of a dead pid) are removed at the next start.

  live_test.py --kagami build/sensor/kagami --source-dir .
  live_test.py --kagami build/sensor/kagami --bench     # drop-free rate, not a test

Exit status: 0 pass, 1 fail, 77 skipped (not root, no ip/tcpreplay, no netns).
"""

import argparse
import collections
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77

# (capture, indicator feeds), relative to the source directory.
CASES = [
    ("pcaps/demo.pcap", ["config/indicators/demo.intel"]),
    ("pcaps/dns_udp.pcap", ["tests/cases/dns_udp/indicators.intel"]),
    ("pcaps/http.pcap", ["tests/cases/http/indicators.intel"]),
    ("pcaps/tls_split.pcap", ["tests/cases/tls_split/indicators.intel"]),
    ("pcaps/vlan.pcap", ["tests/cases/vlan/indicators.intel"]),
]

STATS_RE = re.compile(
    r"^\[capture\] info: (?P<iface>\S+): packets (?P<packets>\d+), bytes (?P<bytes>\d+), "
    r"kernel drops (?P<kdrops>\d+), interface drops (?P<idrops>\d+)$"
)


class Fail(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def run(cmd, check=True, timeout=60, **kw):
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise Fail("%s: did not finish within %d s" % (" ".join(cmd), timeout))
    if check and r.returncode != 0:
        raise Fail("%s: exit %d\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r


def pcap_frames(path):
    """Number of records of a classic pcap and how many are IPv4 fragments."""
    with open(path, "rb") as f:
        d = f.read()
    magic = struct.unpack("<I", d[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        e = "<"
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        e = ">"
    else:
        raise Fail("%s: not a classic pcap" % path)
    off, n, frags = 24, 0, 0
    while off + 16 <= len(d):
        caplen = struct.unpack(e + "I", d[off + 8 : off + 12])[0]
        fr = d[off + 16 : off + 16 + caplen]
        if len(fr) >= 34 and fr[12:14] == b"\x08\x00" and struct.unpack(">H", fr[20:22])[0] & 0x3FFF:
            frags += 1
        n += 1
        off += 16 + caplen
    return n, frags


class Net:
    """A namespace and a veth pair; undone by close()."""

    def __init__(self):
        pid = os.getpid()
        self.ns = "kglive%d" % pid
        self.cap = "kgl%da" % pid  # root namespace: kagami listens here
        self.send = "kgl%db" % pid  # in the namespace: tcpreplay sends here
        self.made = False

    def sh_ns(self, *cmd, check=True, timeout=60):
        return run(["ip", "netns", "exec", self.ns] + list(cmd), check=check, timeout=timeout)

    def setup(self):
        run(["ip", "netns", "add", self.ns])
        self.made = True
        run(["ip", "link", "add", self.cap, "type", "veth", "peer", "name", self.send])
        # No IPv6 (router solicitations, MLD, DAD) on either end: the
        # capture must see only what tcpreplay sends.
        self.disable_ipv6(self.cap)
        run(["ip", "link", "set", self.send, "netns", self.ns])
        self.sh_ns("sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6" % self.send, check=False)
        run(["ip", "link", "set", self.cap, "up"])
        self.sh_ns("ip", "link", "set", self.send, "up")
        self.sh_ns("ip", "link", "set", "lo", "up")

    @staticmethod
    def disable_ipv6(ifname):
        try:
            with open("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % ifname, "w") as f:
                f.write("1")
        except OSError:
            pass  # no IPv6 in this kernel: nothing to silence

    def close(self):
        if not self.made:
            return
        self.made = False
        # The namespace takes its veth end with it, and the pair goes too;
        # deleting the root end as well covers a half-built setup.
        run(["ip", "netns", "del", self.ns], check=False)
        run(["ip", "link", "del", self.cap], check=False)

    @staticmethod
    def remove_stale():
        """Namespaces left by runs that were SIGKILLed (their pid is gone)."""
        r = run(["ip", "netns", "list"], check=False)
        for line in r.stdout.splitlines():
            m = re.match(r"^kglive(\d+)\b", line)
            if m and not os.path.exists("/proc/%s" % m.group(1)):
                run(["ip", "netns", "del", "kglive%s" % m.group(1)], check=False)
                run(["ip", "link", "del", "kgl%sa" % m.group(1)], check=False)


def read_alerts(path):
    alerts = []
    if not os.path.exists(path):
        return alerts
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                alerts.append(json.loads(line))
            except ValueError as e:
                raise Fail("%s:%d: not JSON (%s): %r" % (path, n, e, line[:200]))
    return alerts


def alert_key(a):
    ind = a.get("indicator", {})
    vlan = a.get("vlan")
    return (
        a.get("src_ip"),
        a.get("src_port"),
        a.get("dest_ip"),
        a.get("dest_port"),
        a.get("proto"),
        tuple(vlan) if vlan else None,
        ind.get("type"),
        ind.get("value"),
        ind.get("where"),
        ind.get("seen"),
    )


class Kagami:
    """A live kagami; stop() sends SIGTERM and waits, kill() is the last resort."""

    def __init__(self, binary, args, workdir, name):
        self.stderr_path = os.path.join(workdir, name + ".stderr")
        self.err = open(self.stderr_path, "w")
        self.p = subprocess.Popen([binary] + args, stdout=subprocess.DEVNULL, stderr=self.err)

    def stderr(self):
        with open(self.stderr_path) as f:
            return f.read()

    def wait_ready(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "capturing on" in self.stderr():
                return
            if self.p.poll() is not None:
                raise Fail("kagami exited with %d before capturing:\n%s" % (self.p.returncode, self.stderr()))
            time.sleep(0.05)
        raise Fail("kagami did not report 'capturing on' within %.0f s:\n%s" % (timeout, self.stderr()))

    def stop(self, timeout=30.0):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Fail("kagami did not exit within %.0f s of SIGTERM:\n%s" % (timeout, self.stderr()))
        self.err.close()
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if not self.err.closed:
            self.err.close()


def capture_stats(stderr, iface):
    lines = [m for m in (STATS_RE.match(line) for line in stderr.splitlines()) if m]
    mine = [m for m in lines if m.group("iface") == iface]
    if len(mine) != 1:
        raise Fail("expected one capture statistics line for %s, found %d:\n%s" % (iface, len(mine), stderr))
    m = mine[0]
    return {k: int(m.group(k)) for k in ("packets", "bytes", "kdrops", "idrops")}


def tcpreplay(net, pcap, rate_args, loops=1):
    cmd = ["tcpreplay", "-i", net.send] + rate_args
    if loops > 1:
        cmd.append("--loop=%d" % loops)
    cmd.append(pcap)
    t0 = time.monotonic()
    r = net.sh_ns(*cmd, timeout=300)
    elapsed = time.monotonic() - t0
    out = r.stdout + r.stderr
    m = re.search(r"Successful packets:\s+(\d+)", out)
    f = re.search(r"Failed packets:\s+(\d+)", out)
    if not m or not f:
        raise Fail("cannot read tcpreplay's summary:\n%s" % out)
    if int(f.group(1)):
        raise Fail("tcpreplay failed to send %s packets:\n%s" % (f.group(1), out))
    return int(m.group(1)), elapsed


def run_case(args, net, workdir, pcap_rel, feeds_rel):
    name = os.path.splitext(os.path.basename(pcap_rel))[0]
    pcap = os.path.join(args.source_dir, pcap_rel)
    feeds = [os.path.join(args.source_dir, f) for f in feeds_rel]
    ind_args = []
    for f in feeds:
        ind_args += ["--indicators", f]
    nframes, nfrags = pcap_frames(pcap)

    ref_out = os.path.join(workdir, name + ".ref.json")
    r = run([args.kagami, "-r", pcap, "-o", "file:" + ref_out] + ind_args, check=False)
    if r.returncode != 0:
        raise Fail("%s: kagami -r exited %d:\n%s" % (name, r.returncode, r.stderr))
    ref = read_alerts(ref_out)
    if not ref:
        raise Fail("%s: the reference run raised no alert: the comparison would prove nothing" % name)

    live_out = os.path.join(workdir, name + ".live.json")
    k = Kagami(
        args.kagami,
        ["-i", net.cap, "--capture-threads", str(args.threads), "-o", "file:" + live_out] + ind_args,
        workdir,
        name,
    )
    try:
        k.wait_ready()
        sent, elapsed = tcpreplay(net, pcap, ["--pps=%d" % args.pps])
        time.sleep(args.settle)
        rc = k.stop()
    finally:
        k.kill()
    stderr = k.stderr()
    if rc != 0:
        raise Fail("%s: live kagami exited %d:\n%s" % (name, rc, stderr))
    st = capture_stats(stderr, net.cap)
    problems = []
    if sent != nframes:
        problems.append("tcpreplay sent %d of %d packets" % (sent, nframes))
    if st["kdrops"] or st["idrops"]:
        problems.append("drops: kernel %d, interface %d" % (st["kdrops"], st["idrops"]))
    if nfrags == 0 and st["packets"] != sent:
        problems.append("captured %d packets, sent %d" % (st["packets"], sent))

    live = read_alerts(live_out)
    want = collections.Counter(alert_key(a) for a in ref)
    got = collections.Counter(alert_key(a) for a in live)
    if want != got:
        for key in sorted((want - got).elements(), key=repr):
            problems.append("missing live: %r" % (key,))
        for key in sorted((got - want).elements(), key=repr):
            problems.append("extra live:   %r" % (key,))
    log(
        "%-10s %3d packets in %.2f s, captured %d (%d bytes), kernel drops %d, interface drops %d, "
        "alerts %d live / %d file%s"
        % (
            name,
            sent,
            elapsed,
            st["packets"],
            st["bytes"],
            st["kdrops"],
            st["idrops"],
            len(live),
            len(ref),
            "" if not problems else "  FAIL",
        )
    )
    if problems:
        raise Fail("%s:\n  %s\n--- kagami stderr ---\n%s" % (name, "\n  ".join(problems), stderr))


def bench(args, net, workdir):
    """Not a test: replays demo.pcap in a loop at rising rates and reports
    what kagami captured and dropped at each."""
    pcap = os.path.join(args.source_dir, "pcaps/demo.pcap")
    feeds = ["--indicators", os.path.join(args.source_dir, "config/indicators/demo.intel")]
    nframes, _ = pcap_frames(pcap)
    for rate in args.bench_rates:
        # --topspeed: as many loops as 200,000 packets/s would send.
        loops = max(1, int((rate if rate > 0 else 200000) * args.bench_seconds / nframes))
        out = os.path.join(workdir, "bench.json")
        k = Kagami(
            args.kagami,
            ["-i", net.cap, "--capture-threads", str(args.threads), "-o", "file:" + out] + feeds + args.kagami_arg,
            workdir,
            "bench",
        )
        try:
            k.wait_ready()
            rate_args = ["--topspeed"] if rate <= 0 else ["--pps=%d" % rate]
            sent, elapsed = tcpreplay(net, pcap, rate_args, loops)
            time.sleep(args.settle)
            rc = k.stop()
        finally:
            k.kill()
        st = capture_stats(k.stderr(), net.cap)
        log(
            "rate %-9s sent %8d in %6.2f s (%8.0f pps): captured %8d, kernel drops %d, interface drops %d, "
            "exit %d%s"
            % (
                "top" if rate <= 0 else str(rate),
                sent,
                elapsed,
                sent / elapsed if elapsed else 0,
                st["packets"],
                st["kdrops"],
                st["idrops"],
                rc,
                "" if st["packets"] + st["kdrops"] + st["idrops"] == sent else "  (captured + drops != sent)",
            )
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kagami", required=True)
    ap.add_argument("--source-dir", default=os.environ.get("KG_SOURCE_DIR", "."))
    ap.add_argument("--pps", type=int, default=2000, help="tcpreplay rate (default 2000 packets/s)")
    ap.add_argument("--threads", type=int, default=2, help="--capture-threads (default 2)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds between replay end and SIGTERM")
    ap.add_argument("--case", action="append", help="only these captures (basename, e.g. demo)")
    ap.add_argument("--bench", action="store_true", help="measure drop-free rates instead of testing")
    ap.add_argument("--bench-rates", type=lambda s: [int(x) for x in s.split(",")],
                    default=[10000, 50000, 100000, 0], help="pps list, 0 = tcpreplay --topspeed")
    ap.add_argument("--bench-seconds", type=float, default=3.0)
    ap.add_argument("--kagami-arg", action="append", default=[],
                    help="extra kagami argument for --bench (repeatable), e.g. --kagami-arg=--set=capture.buffer_mb=4")
    args = ap.parse_args()

    if os.geteuid() != 0:
        log("SKIP: needs root (network namespaces, veth, packet sockets)")
        return SKIP
    for tool in ("ip", "tcpreplay"):
        if not shutil.which(tool):
            log("SKIP: %s not found (apt-get install %s)" % (tool, "iproute2" if tool == "ip" else tool))
            return SKIP
    if not os.access(args.kagami, os.X_OK):
        log("FAIL: %s is not an executable" % args.kagami)
        return 1
    args.source_dir = os.path.abspath(args.source_dir)

    # SIGTERM/SIGINT (ctest's timeout, ^C) unwind through the finally below.
    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    Net.remove_stale()
    net = Net()
    workdir = tempfile.mkdtemp(prefix="kg_live_")
    failed = []
    try:
        try:
            net.setup()
        except Fail as e:
            log("SKIP: cannot set up a network namespace and a veth pair: %s" % e)
            return SKIP
        if args.bench:
            bench(args, net, workdir)
            return 0
        for pcap, feeds in CASES:
            name = os.path.splitext(os.path.basename(pcap))[0]
            if args.case and name not in args.case:
                continue
            try:
                run_case(args, net, workdir, pcap, feeds)
            except Fail as e:
                failed.append(name)
                log("FAIL %s" % e)
    finally:
        net.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if failed:
        log("%d case(s) failed: %s" % (len(failed), ", ".join(failed)))
        return 1
    log("all live cases passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
