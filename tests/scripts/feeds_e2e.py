#!/usr/bin/env python3
"""End-to-end checks of how indicators reach the sensor, besides plain files:

  signed   a feed signed with Ed25519 by the openssl command line (the central
           team's procedure in docs/INDICATORS.md) loads with
           indicators.require_signature; a tampered feed, a missing signature
           and an untrusted key are refused with a message naming the feed;
  redis    the Redis feed source: the feed text at a key and its version at
           key:version on a real redis-server; the sensor's alerts on
           pcaps/demo.pcap equal those of the same feed given as a file;
  tuning   a GSOC tuning file suppresses one alert and overrides severities;
           the alerts are the file run's, minus the suppressed, with the new
           severity.

Exits 77 (skipped) when redis-server or openssl are missing.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time


class Fail(Exception):
    pass


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def alerts(path):
    out = []
    with open(path) as f:
        for line in f:
            if line.strip():
                e = json.loads(line)
                if e.get("event_type") == "alert":
                    out.append(e)
    return out


def key(a):
    i = a["indicator"]
    return (a["src_ip"], a.get("src_port"), a["dest_ip"], a.get("dest_port"), a["proto"], i["type"], i["value"],
            i["where"], i["seen"])


def kagami(binary, work, name, args):
    out = os.path.join(work, name + ".json")
    r = run([binary, "-q", "-r", PCAP, "-o", "file:" + out] + args)
    return r, (alerts(out) if os.path.exists(out) else [])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def test_signed(binary, work, feed_text):
    feed = os.path.join(work, "signed.intel")
    with open(feed, "w") as f:
        f.write(feed_text)
    keyf, pub = os.path.join(work, "feed.key"), os.path.join(work, "feed.pub")
    for cmd in (["openssl", "genpkey", "-algorithm", "ed25519", "-out", keyf],
                ["openssl", "pkey", "-in", keyf, "-pubout", "-out", pub],
                ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", keyf, "-in", feed, "-out", feed + ".sig"]):
        r = run(cmd)
        if r.returncode:
            raise Fail("%s: %s" % (" ".join(cmd), r.stderr))
    sig = ["--set", "indicators.require_signature=true", "--set", "indicators.trusted_keys=" + pub]
    r = run([binary, "--indicators", feed, "--check-indicators"] + sig)
    if r.returncode != 0:
        raise Fail("a correctly signed feed was refused:\n%s" % r.stderr)
    r, got = kagami(binary, work, "signed", ["--indicators", feed] + sig)
    if r.returncode != 0 or not got:
        raise Fail("signed feed run: rc %d, %d alerts\n%s" % (r.returncode, len(got), r.stderr))
    # Tampered: one byte changed after signing.
    with open(feed, "a") as f:
        f.write("tampered.example\tIntel::DOMAIN\tattacker\n")
    r = run([binary, "--indicators", feed, "--check-indicators"] + sig)
    if r.returncode == 0 or "signed.intel" not in r.stderr:
        raise Fail("a tampered feed was not refused with its name (rc %d):\n%s" % (r.returncode, r.stderr))
    tampered_msg = r.stderr.strip().splitlines()[-1]
    # Untrusted key.
    other, other_pub = os.path.join(work, "other.key"), os.path.join(work, "other.pub")
    run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", other])
    run(["openssl", "pkey", "-in", other, "-pubout", "-out", other_pub])
    with open(feed, "w") as f:
        f.write(feed_text)
    r = run([binary, "--indicators", feed, "--check-indicators", "--set", "indicators.require_signature=true",
             "--set", "indicators.trusted_keys=" + other_pub])
    if r.returncode == 0:
        raise Fail("a feed signed by an untrusted key was accepted")
    # Missing signature.
    os.unlink(feed + ".sig")
    r = run([binary, "--indicators", feed, "--check-indicators"] + sig)
    if r.returncode == 0:
        raise Fail("a feed without signature was accepted")
    print("signed: accepted when signed (%d alerts); refused when tampered (%s), untrusted, unsigned"
          % (len(got), tampered_msg))


def test_redis(binary, work, feed_text, want):
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        return False
    port = free_port()
    rdir = os.path.join(work, "redis")
    os.mkdir(rdir)
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--dir", rdir], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if run(["redis-cli", "-p", str(port), "PING"]).stdout.strip() == "PONG":
                break
            time.sleep(0.05)
        else:
            raise Fail("redis-server did not start")
        cli = ["redis-cli", "-p", str(port), "-x"]
        subprocess.run(cli + ["SET", "kagami:feed"], input=feed_text, text=True, check=True, capture_output=True)
        run(["redis-cli", "-p", str(port), "SET", "kagami:feed:version", "2026-11-25T00:00Z"])
        r, got = kagami(binary, work, "redis", ["--set", "indicators.redis=redis://127.0.0.1:%d/kagami:feed" % port])
        if r.returncode != 0:
            raise Fail("redis feed run failed (%d):\n%s" % (r.returncode, r.stderr))
        if sorted(map(key, got)) != want:
            raise Fail("alerts with the Redis feed differ from the file run: %d vs %d" % (len(got), len(want)))
        print("redis: %d alerts from the feed fetched from Redis equal the file run" % len(got))
        return True
    finally:
        srv.terminate()
        srv.wait(10)


def test_tuning(binary, work, feed, base):
    tun = os.path.join(work, "tuning.yaml")
    victim = base[0]["indicator"]["value"]
    with open(tun, "w") as f:
        f.write("suppress:\n  - {indicator: '%s', name: test-suppress}\n"
                "severity:\n  - {feed_source: kagami-demo, severity: 3}\n" % victim)
    r, got = kagami(binary, work, "tuned", ["--indicators", feed, "--set", "indicators.tuning=" + tun])
    if r.returncode != 0:
        raise Fail("tuning run failed:\n%s" % r.stderr)
    want = sorted(key(a) for a in base if a["indicator"]["value"] != victim)
    if sorted(map(key, got)) != want:
        raise Fail("tuned alerts: got %d, want %d (all but %s)" % (len(got), len(want), victim))
    if any(a["alert"]["severity"] != 3 for a in got):
        raise Fail("severity override not applied: %s" % [a["alert"]["severity"] for a in got])
    # A broken tuning file stops the start with file:line.
    with open(tun, "w") as f:
        f.write("suppress:\n  - {indicatr: x}\n")
    r, _ = kagami(binary, work, "badtuning", ["--indicators", feed, "--set", "indicators.tuning=" + tun])
    if r.returncode == 0 or "tuning.yaml:2" not in r.stderr:
        raise Fail("a bad tuning file was not reported as file:line (rc %d):\n%s" % (r.returncode, r.stderr))
    print("tuning: %d alerts suppressed, severity overridden on %d; bad file reported as %s"
          % (len(base) - len(got), len(got), r.stderr.strip().splitlines()[-1]))


def main():
    global PCAP
    ap = argparse.ArgumentParser()
    ap.add_argument("--kagami", required=True)
    ap.add_argument("--source-dir", required=True)
    a = ap.parse_args()
    if not shutil.which("openssl"):
        print("SKIP: openssl not found")
        return 77
    PCAP = os.path.join(a.source_dir, "pcaps", "demo.pcap")
    feed = os.path.join(a.source_dir, "config", "indicators", "demo.intel")
    feed_text = open(feed).read()
    work = tempfile.mkdtemp(prefix="kagami-feeds-")
    try:
        r, base = kagami(a.kagami, work, "base", ["--indicators", feed])
        if r.returncode or not base:
            raise Fail("reference run failed")
        want = sorted(map(key, base))
        test_signed(a.kagami, work, feed_text)
        if not test_redis(a.kagami, work, feed_text, want):
            print("redis: skipped (redis-server not found)")
        test_tuning(a.kagami, work, feed, base)
        print("PASS")
        return 0
    except Fail as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


PCAP = None
if __name__ == "__main__":
    sys.exit(main())
