#!/usr/bin/env python3
"""
redis_e2e.py - end-to-end test of kagami's Redis sink against a real,
throwaway redis-server.

Registered as ctest `test_redis_e2e` (label `redis`) by tests/redis_e2e.cmake.
Standard library only; needs redis-server and redis-cli on PATH.

Each case starts its own redis-server on a free loopback port, in a
temporary directory, without persistence (--save "" --appendonly no), runs
kagami with two sinks, a Redis list and a file, and then checks with
redis-cli (LLEN, LRANGE) that:
  - kagami exited 0 (it exits only after delivering every alert);
  - the list holds exactly the alerts of the file (same multiset of lines);
  - there is at least one alert;
  - every item is a JSON object with event_type "alert";
  - event_ids are unique.

Cases:
  plain     redis://127.0.0.1:PORT/kagami:alerts
  auth      server with --requirepass, password in the URL
            (redis://:PASSWORD@127.0.0.1:PORT/kagami:alerts); the password
            must not appear in kagami's output or logs
  late      the server starts ~2 s after kagami, on a bigger input (the demo
            capture repeated): the sensor must retry until it connects, and
            every alert must still arrive

Input: pcaps/demo.pcap with config/indicators/demo.intel. Until those exist,
ndpi__android.pcap from ../shared/pcaps/real with a small feed written here.

Every redis-server started here is killed on exit, whatever the exit path.
Exit codes: 0 pass, 1 fail, 77 skip (redis-server/redis-cli or any input
missing).
"""

import argparse
import collections
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

SKIP_RC = 77
KEY = "kagami:alerts"
PASSWORD = "kg-e2e-Pw.7f3a"   # distinctive, so a leak in the logs is easy to spot
LATE_START_S = 2.0
KAGAMI_TIMEOUT_S = 20

# Feed for the fallback capture (ndpi__android.pcap): names tshark sees there
# in TLS SNI and DNS queries.
FALLBACK_FEED = """#fields\tindicator\tindicator_type\tmeta.source
googleapis.com\tIntel::DOMAIN\tredis-e2e
google.com\tIntel::DOMAIN\tredis-e2e
gstatic.com\tIntel::DOMAIN\tredis-e2e
googlezip.net\tIntel::DOMAIN\tredis-e2e
app-measurement.com\tIntel::DOMAIN\tredis-e2e
"""

_servers = []   # every redis-server Popen we started, killed by cleanup()


class TestFailure(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def cleanup():
    while _servers:
        p = _servers.pop()
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


def _on_signal(signum, frame):
    cleanup()
    sys.exit(128 + signum)


def free_port():
    """A loopback TCP port nobody listens on right now (the kernel's choice
    for port 0). Another process could take it before we do: start_redis()
    retries with a new port when the server cannot bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(port, *args, password=None, json_out=False, timeout=10):
    cmd = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
    if password:
        cmd += ["--no-auth-warning", "-a", password]
    if json_out:
        cmd += ["--json"]
    cmd += list(args)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if p.returncode != 0:
        raise TestFailure("redis-cli %s failed: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p.stdout.decode("utf-8", errors="replace")


def start_redis(workdir, port=None, password=None):
    """Starts redis-server on `port` (or a free one) and waits for PING.
    Returns (Popen, port)."""
    attempts = 1 if port else 5
    for _ in range(attempts):
        p_port = port or free_port()
        logf = os.path.join(workdir, "redis-%d.log" % p_port)
        cmd = ["redis-server", "--port", str(p_port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", workdir, "--daemonize", "no",
               "--logfile", logf, "--protected-mode", "no"]
        if password:
            cmd += ["--requirepass", password]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _servers.append(proc)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if cli(p_port, "PING", password=password, timeout=2).strip() == "PONG":
                    return proc, p_port
            except (TestFailure, subprocess.TimeoutExpired):
                pass
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        tail = ""
        if os.path.exists(logf):
            with open(logf, errors="replace") as fh:
                tail = "".join(fh.readlines()[-5:])
        if port:
            raise TestFailure("redis-server did not answer PING on port %d:\n%s" % (p_port, tail))
        log("redis-server could not start on port %d, trying another one:\n%s" % (p_port, tail))
    raise TestFailure("could not start redis-server")


def stop_redis(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=5)
    if proc in _servers:
        _servers.remove(proc)


def repeat_pcap(src, dst, copies):
    """Writes `copies` back-to-back copies of a classic pcap file, each one
    shifted by a day so that its flows are new flows (earlier ones have timed
    out). Returns False if src is not a classic pcap (pcapng): the caller
    then uses src as it is."""
    with open(src, "rb") as fh:
        data = fh.read()
    if len(data) < 24:
        return False
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        return False
    hdr = struct.Struct(endian + "IIII")
    records = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = hdr.unpack_from(data, off)
        body = data[off + 16: off + 16 + incl]
        if len(body) < incl:
            break
        records.append((sec, frac, incl, orig, body))
        off += 16 + incl
    with open(dst, "wb") as out:
        out.write(data[:24])
        for k in range(copies):
            for sec, frac, incl, orig, body in records:
                out.write(hdr.pack(sec + k * 86400, frac, incl, orig))
                out.write(body)
    return True


def start_kagami(kagami, pcap, feed, sinks, workdir, name):
    cmd = [kagami, "-r", pcap, "--indicators", feed, "--workers", "2"]
    for s in sinks:
        cmd += ["-o", s]
    out = open(os.path.join(workdir, name + ".stdout"), "wb")
    err = open(os.path.join(workdir, name + ".stderr"), "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    out.close()
    err.close()
    return proc, cmd


def wait_kagami(proc, cmd, workdir, name, timeout=KAGAMI_TIMEOUT_S):
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise TestFailure("%s: kagami did not exit within %d s: %s%s"
                          % (name, timeout, " ".join(cmd), stderr_tail(workdir, name)))
    if rc != 0:
        raise TestFailure("%s: kagami exited with %s: %s%s"
                          % (name, rc, " ".join(cmd), stderr_tail(workdir, name)))


def stderr_tail(workdir, name, n=15):
    path = os.path.join(workdir, name + ".stderr")
    try:
        with open(path, errors="replace") as fh:
            lines = fh.read().strip().splitlines()[-n:]
    except OSError:
        return ""
    return "".join("\n    stderr: " + l for l in lines)


def check_delivery(name, port, file_path, password=None, workdir=None):
    """The list must hold exactly the file's alerts. Returns the count."""
    try:
        with open(file_path, "rb") as fh:
            file_data = fh.read()
    except FileNotFoundError:
        file_data = b""
    file_lines = [l.decode("utf-8", errors="surrogateescape") for l in file_data.split(b"\n") if l]

    llen = int(cli(port, "LLEN", KEY, password=password).strip())
    items = json.loads(cli(port, "LRANGE", KEY, "0", "-1", password=password, json_out=True))
    if not isinstance(items, list):
        raise TestFailure("%s: LRANGE did not return a list: %r" % (name, items))
    if llen != len(items):
        raise TestFailure("%s: LLEN %d but LRANGE returned %d items" % (name, llen, len(items)))
    # An event may be pushed with or without its trailing newline.
    redis_lines = [i[:-1] if i.endswith("\n") else i for i in items]

    if not file_lines:
        raise TestFailure("%s: no alert at all in %s (expected at least one)" % (name, file_path))
    fc = collections.Counter(file_lines)
    rc = collections.Counter(redis_lines)
    if fc != rc:
        only_file = fc - rc
        only_redis = rc - fc
        msg = ["%s: Redis list (%d items) and file (%d lines) differ" % (name, len(redis_lines), len(file_lines)),
               "  %d alert(s) only in the file, %d only in Redis" % (sum(only_file.values()),
                                                                     sum(only_redis.values()))]
        for l in list(only_file)[:3]:
            msg.append("  only in file:  " + l[:300])
        for l in list(only_redis)[:3]:
            msg.append("  only in Redis: " + l[:300])
        raise TestFailure("\n".join(msg))

    ids = collections.Counter()
    for n, line in enumerate(redis_lines, 1):
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise TestFailure("%s: item %d is not JSON (%s): %s" % (name, n, e, line[:300]))
        if not isinstance(obj, dict) or obj.get("event_type") != "alert":
            raise TestFailure("%s: item %d is not an alert object: %s" % (name, n, line[:300]))
        eid = obj.get("event_id")
        if not isinstance(eid, str) or not eid:
            raise TestFailure("%s: item %d has no event_id: %s" % (name, n, line[:300]))
        ids[eid] += 1
    dup = [e for e, c in ids.items() if c > 1]
    if dup:
        raise TestFailure("%s: %d duplicated event_id(s), e.g. %s" % (name, len(dup), dup[0]))
    return len(redis_lines)


def check_no_password_leak(workdir, name):
    for ext in (".stdout", ".stderr"):
        path = os.path.join(workdir, name + ext)
        with open(path, "rb") as fh:
            if PASSWORD.encode() in fh.read():
                raise TestFailure("%s: the Redis password appears in kagami's %s" % (name, ext[1:]))


def case_plain(kagami, pcap, feed, workdir):
    name = "plain"
    proc_r, port = start_redis(workdir)
    try:
        alerts = os.path.join(workdir, name + ".alerts.json")
        k, cmd = start_kagami(kagami, pcap, feed,
                              ["redis://127.0.0.1:%d/%s" % (port, KEY), "file:" + alerts], workdir, name)
        wait_kagami(k, cmd, workdir, name)
        n = check_delivery(name, port, alerts)
    finally:
        stop_redis(proc_r)
    log("ok   %-6s %d alerts in Redis and in the file" % (name, n))


def case_auth(kagami, pcap, feed, workdir):
    name = "auth"
    proc_r, port = start_redis(workdir, password=PASSWORD)
    try:
        # The server must really refuse unauthenticated clients, or this
        # case would prove nothing about the password in the URL.
        p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "LLEN", KEY],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=5)
        if b"NOAUTH" not in p.stdout:
            raise TestFailure("auth: server accepted a client without password: %r" % p.stdout)
        alerts = os.path.join(workdir, name + ".alerts.json")
        k, cmd = start_kagami(kagami, pcap, feed,
                              ["redis://:%s@127.0.0.1:%d/%s" % (PASSWORD, port, KEY), "file:" + alerts],
                              workdir, name)
        wait_kagami(k, cmd, workdir, name)
        n = check_delivery(name, port, alerts, password=PASSWORD)
        check_no_password_leak(workdir, name)
    finally:
        stop_redis(proc_r)
    log("ok   %-6s %d alerts in Redis and in the file (password in URL, not in logs)" % (name, n))


def case_late(kagami, pcap, feed, workdir):
    name = "late"
    big = os.path.join(workdir, "big.pcap")
    if repeat_pcap(pcap, big, 20):
        desc = "input: %s repeated 20 times" % os.path.basename(pcap)
    else:
        big = pcap
        desc = "input: %s (pcapng: not repeated)" % os.path.basename(pcap)
    port = free_port()
    alerts = os.path.join(workdir, name + ".alerts.json")
    k, cmd = start_kagami(kagami, big, feed, ["redis://127.0.0.1:%d/%s" % (port, KEY), "file:" + alerts],
                          workdir, name)
    proc_r = None
    try:
        time.sleep(LATE_START_S)
        if k.poll() is not None:
            raise TestFailure(
                "late: kagami exited (code %s) before Redis came up %.0f s after it started: the sensor "
                "must retry until it connects and exit only after delivering every alert%s"
                % (k.returncode, LATE_START_S, stderr_tail(workdir, name)))
        proc_r, _ = start_redis(workdir, port=port)
        wait_kagami(k, cmd, workdir, name)
        n = check_delivery(name, port, alerts)
    finally:
        if k.poll() is None:
            k.kill()
            k.wait()
        if proc_r:
            stop_redis(proc_r)
    log("ok   %-6s %d alerts in Redis and in the file, Redis started %.0f s after kagami (%s)"
        % (name, n, LATE_START_S, desc))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kagami", required=True)
    ap.add_argument("--source-dir", default=os.path.dirname(os.path.dirname(here)))
    ap.add_argument("--pcap", help="capture (default: pcaps/demo.pcap)")
    ap.add_argument("--indicators", help="feed (default: config/indicators/demo.intel)")
    ap.add_argument("--case", action="append", choices=["plain", "auth", "late"],
                    help="run only these cases")
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (logs, outputs)")
    args = ap.parse_args()

    for tool in ("redis-server", "redis-cli"):
        if not shutil.which(tool):
            log("SKIP: %s not found on PATH" % tool)
            return SKIP_RC
    if not (os.path.isfile(args.kagami) and os.access(args.kagami, os.X_OK)):
        log("FAIL: kagami binary not found or not executable: %s" % args.kagami)
        return 1

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)

    tmp = None
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        workdir = os.path.abspath(args.keep)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="kg-redis-")
        workdir = tmp.name

    pcap = args.pcap or os.path.join(args.source_dir, "pcaps", "demo.pcap")
    feed = args.indicators or os.path.join(args.source_dir, "config", "indicators", "demo.intel")
    if not (args.pcap or args.indicators) and not (os.path.isfile(pcap) and os.path.isfile(feed)):
        fallback = os.path.normpath(os.path.join(args.source_dir, "..", "shared", "pcaps", "real",
                                                 "ndpi__android.pcap"))
        log("NOTE: %s or %s missing; using %s with a feed written here" % (pcap, feed, fallback))
        pcap = fallback
        feed = os.path.join(workdir, "fallback.intel")
        with open(feed, "w") as fh:
            fh.write(FALLBACK_FEED)
    for path in (pcap, feed):
        if not os.path.isfile(path):
            log("SKIP: input not found: %s" % path)
            return SKIP_RC
    log("input: %s, indicators: %s" % (pcap, feed))

    cases = {"plain": case_plain, "auth": case_auth, "late": case_late}
    failed = []
    t0 = time.monotonic()
    try:
        for name in args.case or ["plain", "auth", "late"]:
            try:
                cases[name](args.kagami, pcap, feed, workdir)
            except TestFailure as e:
                log("FAIL %s" % e)
                failed.append(name)
    finally:
        cleanup()
    log("%.1f s" % (time.monotonic() - t0))
    if failed:
        log("FAIL: %s" % ", ".join(failed))
        return 1
    log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
