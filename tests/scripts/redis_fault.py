#!/usr/bin/env python3
"""
redis_fault.py - fault test of the Redis sink: no event may be lost while
the collector fails.

Registered as ctest `test_redis_fault` (label `redis`) by tests/redis.cmake.
Standard library only; needs redis-server on PATH. Exit codes: 0 pass,
1 fail, 77 skip (redis-server missing).

Set-up, all on loopback ports chosen here, in a temporary directory:
  - a Redis master and one replica, both with appendonly yes /
    appendfsync always (a confirmed write survives SIGKILL) and a config
    file of their own (Sentinel rewrites it when it changes their role);
  - one Redis Sentinel watching them (quorum 1, down-after 4 s, so the
    short kills below do not start failovers of their own).

The driver (bench/bench_redis.c, built as `bench_redis`) writes --count
events (100,000 by default) with unique event_ids through
  redis-sentinel://127.0.0.1:S/mymaster/kagami:fault?spool=DIR&wait=1...
at a steady rate, flushing every 500 events, and "restarts" (frees the
sink and makes a new one on the same spool) every 30,000 events. Meanwhile
this script:
  - kills the current master with SIGKILL and starts it again 5 times
    (it comes back from its append-only file);
  - once, between kills, switches the master with SENTINEL FAILOVER.

Check: the driver must end with everything delivered, and the set of
event_ids in the list on the final master must equal the set sent.
Duplicates are allowed (delivery is at least once) and reported.

Every process started here is killed on every exit path.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP_RC = 77
KEY = "kagami:fault"
MASTER_NAME = "mymaster"


# --- a minimal RESP client (no third-party module) ------------------------------

class Resp:
    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line[:40])

    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._reply()


def try_cmd(port, *args, timeout=2.0):
    try:
        c = Resp(port, timeout)
        try:
            return c.cmd(*args)
        finally:
            c.close()
    except (OSError, ConnectionError, RuntimeError):
        return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --- processes --------------------------------------------------------------------

class Node:
    """One redis-server (or sentinel) with its own config file and dir."""

    def __init__(self, name, port, root, conf_lines, sentinel=False):
        self.name, self.port, self.sentinel = name, port, sentinel
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, name + ".conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(["port %d" % port, "bind 127.0.0.1", "dir %s" % self.dir,
                               "logfile %s" % os.path.join(self.dir, "log")] + conf_lines) + "\n")
        self.proc = None

    def start(self):
        args = ["redis-server", self.conf] + (["--sentinel"] if self.sentinel else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited (see %s/log)" % (self.name, self.dir))
            if try_cmd(self.port, "PING", timeout=0.5) == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("%s did not answer" % self.name)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def role(self):
        r = try_cmd(self.port, "ROLE")
        return r[0].decode() if r else None


def wait_for(what, pred, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    raise RuntimeError("timed out waiting for " + what)


def master_port(sentinel):
    r = try_cmd(sentinel.port, "SENTINEL", "get-master-addr-by-name", MASTER_NAME)
    return int(r[1]) if r else None


def replica_known(sentinel):
    r = try_cmd(sentinel.port, "SENTINEL", "replicas", MASTER_NAME)
    if not r:
        return False
    for rep in r:
        fields = dict(zip(rep[0::2], rep[1::2]))
        if fields.get(b"flags") == b"slave" and fields.get(b"master-link-status") == b"ok":
            return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True, help="the bench_redis executable")
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--rate", type=int, default=6000, help="events per second written")
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    if not shutil.which("redis-server"):
        print("redis-server not found: skipped")
        return SKIP_RC

    root = tempfile.mkdtemp(prefix="kg_redis_fault_")
    nodes = []
    driver = None
    t0 = time.time()
    try:
        persist = ["appendonly yes", "appendfsync always", 'save ""']
        pm, pr, ps = free_port(), free_port(), free_port()
        a = Node("node-a", pm, root, persist)
        b = Node("node-b", pr, root, persist + ["replicaof 127.0.0.1 %d" % pm])
        sen = Node("sentinel", ps, root, [
            "sentinel monitor %s 127.0.0.1 %d 1" % (MASTER_NAME, pm),
            "sentinel down-after-milliseconds %s 4000" % MASTER_NAME,
            "sentinel failover-timeout %s 8000" % MASTER_NAME,
        ], sentinel=True)
        nodes = [a, b, sen]
        by_port = {pm: a, pr: b}
        for n in nodes:
            n.start()
        wait_for("the replica to sync", lambda: b.role() == "slave" and
                 b"master_link_status:up" in (try_cmd(pr, "INFO", "replication") or b""), 20)
        wait_for("the sentinel to see the replica", lambda: replica_known(sen), 30)

        spool = os.path.join(root, "spool")
        spec = ("redis-sentinel://127.0.0.1:%d/%s/%s?spool=%s&wait=1&wait_timeout_ms=500"
                "&connect_timeout_ms=500&timeout_ms=2000" % (ps, MASTER_NAME, KEY, spool))
        driver_log = open(os.path.join(root, "driver.log"), "w")
        driver = subprocess.Popen([args.driver, "--spec", spec, "--count", str(args.count), "--prefix", "ev",
                                   "--rate", str(args.rate), "--batch", "500", "--restart-every", "30000",
                                   "--drain-timeout", "60"],
                                  stdout=subprocess.PIPE, stderr=driver_log, text=True)
        print("driver started: %d events at %d/s through %s" % (args.count, args.rate,
                                                                spec.replace(root, "$TMP")))

        # Faults: kill/restart the master; a Sentinel failover after the 2nd.
        duration = args.count / args.rate
        gap = duration / (args.kills + 2)
        failed_over = False
        for k in range(args.kills):
            time.sleep(gap)
            port = master_port(sen)
            node = by_port[port]
            node.kill()
            down = time.time()
            time.sleep(0.3)
            node.start()
            print("t=%5.1fs kill %d: master %s (:%d) killed, back after %.1f s" %
                  (time.time() - t0, k + 1, node.name, port, time.time() - down))
            if k == 1 and not failed_over:
                wait_for("the replica to resync", lambda: replica_known(sen), 30)
                old = master_port(sen)
                r = try_cmd(ps, "SENTINEL", "FAILOVER", MASTER_NAME)
                wait_for("the failover", lambda: master_port(sen) not in (None, old), 30)
                new = master_port(sen)
                wait_for("the old master to follow", lambda: by_port[old].role() == "slave", 30)
                failed_over = True
                print("t=%5.1fs SENTINEL FAILOVER (%s): master :%d -> :%d" %
                      (time.time() - t0, r, old, new))
            wait_for("the master to answer", lambda: try_cmd(master_port(sen), "PING") == "PONG", 20)

        out, _ = driver.communicate(timeout=150)
        rc = driver.returncode
        driver = None
        print("driver: " + out.strip())
        if rc != 0:
            print("FAIL: the driver ended with events undelivered (exit %d); see %s/driver.log" % (rc, root))
            args.keep = True
            return 1

        # Read the list from the final master.
        port = master_port(sen)
        c = Resp(port, timeout=30)
        n = c.cmd("LLEN", KEY)
        ids = []
        bad = 0
        for start in range(0, n, 20000):
            for item in c.cmd("LRANGE", KEY, start, start + 19999):
                try:
                    ids.append(json.loads(item)["event_id"])
                except (ValueError, KeyError):
                    bad += 1
        c.close()
        sent = {"ev-%d" % i for i in range(args.count)}
        got = set(ids)
        missing = sent - got
        extra = got - sent
        dups = len(ids) - len(got)
        print("received %d items on :%d, %d distinct, %d duplicates, %d missing, %d unexpected, %d unparsable"
              % (len(ids), port, len(got), dups, len(missing), len(extra), bad))
        print("elapsed %.1f s" % (time.time() - t0))
        if not failed_over:
            print("FAIL: the failover did not happen")
            return 1
        if missing or extra or bad:
            print("FAIL: first missing: %s" % sorted(missing, key=lambda s: int(s[3:]))[:10])
            args.keep = True
            return 1
        print("PASS: every event delivered (at least once) across %d kills and a failover" % args.kills)
        return 0
    except Exception as e:  # noqa: BLE001 - report any set-up failure as a test failure
        print("FAIL: %s" % e)
        args.keep = True
        return 1
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        for n in nodes:
            n.kill()
        if args.keep:
            print("kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
