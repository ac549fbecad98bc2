#!/usr/bin/env python3
"""Indicator hot reload under live capture (issue: indicator engine).

kagami listens on one end of a veth pair (2 capture threads, AF_PACKET
fanout) while tcpreplay sends captures into the other end, in a network
namespace. The test:

  1. starts kagami with a feed that matches nothing in pcaps/demo.pcap and
     replays the capture: no alert;
  2. replaces the feed file by rename (as rsync does) with
     config/indicators/demo.intel: a `reload` event must appear (inotify),
     and replaying the capture again must give exactly the alerts that
     `kagami -r` gives with that feed;
  3. replays a long loop of captures while SIGHUP triggers reloads again and
     again: every packet sent must be captured (no kernel drop), i.e. a
     reload never stops the workers;
  4. replaces the feed with a dangling symlink and sends SIGHUP: an `error`
     event, and the log says the previous indicators stay in force.

Needs root, iproute2 and tcpreplay (exit 77 otherwise). Shares its network
plumbing with live_test.py.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live_test as lt  # noqa: E402

NOMATCH_FEED = "#fields\tindicator\tindicator_type\tmeta.source\nnothing-here.invalid\tIntel::DOMAIN\ttest\n"


def events(path, kind):
    return [e for e in lt.read_alerts(path) if e.get("event_type") == kind]


def wait_for(path, kind, count, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(events(path, kind)) >= count:
            return
        time.sleep(0.1)
    raise lt.Fail("no %d '%s' event(s) in %s within %.0f s (have %d)" % (count, kind, path, timeout,
                                                                          len(events(path, kind))))


def replace_file(path, content):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(content)
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kagami", required=True)
    ap.add_argument("--source-dir", required=True)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: the reload test needs root (network namespaces)")
        return 77
    for tool in ("ip", "tcpreplay"):
        if not shutil.which(tool):
            print("SKIP: %s not found" % tool)
            return 77

    src = args.source_dir
    demo = os.path.join(src, "pcaps", "demo.pcap")
    demo_feed = open(os.path.join(src, "config", "indicators", "demo.intel")).read()
    other = os.path.join(src, "pcaps", "http.pcap")  # replayed in a loop during the SIGHUP reloads
    work = tempfile.mkdtemp(prefix="kagami-reload-")
    net = lt.Net()
    k = None
    try:
        lt.Net.remove_stale()
        net.setup()
        feed_dir = os.path.join(work, "feeds")
        os.mkdir(feed_dir)
        feed = os.path.join(feed_dir, "feed.intel")
        with open(feed, "w") as f:
            f.write(NOMATCH_FEED)
        out = os.path.join(work, "out.json")
        ctl = os.path.join(work, "control.json")  # stats.outputs: stats, reload and error events

        # What the same capture gives from file with the demo feed.
        ref_feed = os.path.join(work, "ref.intel")
        with open(ref_feed, "w") as f:
            f.write(demo_feed)
        ref_out = os.path.join(work, "ref.json")
        subprocess.run([args.kagami, "-q", "-r", demo, "--indicators", ref_feed, "-o", "file:" + ref_out],
                       check=True, timeout=60)
        want = sorted(lt.alert_key(a) for a in events(ref_out, "alert"))
        if not want:
            raise lt.Fail("the reference run gave no alert")

        k = lt.Kagami(args.kagami, ["-i", net.cap, "--capture-threads", "2", "--indicators", feed,
                                    "--set", "stats.interval=1", "--set", "stats.outputs=file:" + ctl,
                                    "-o", "file:" + out], work, "kagami")
        k.wait_ready()
        sent = 0

        # 1. Nothing matches yet.
        n, _ = lt.tcpreplay(net, demo, ["--pps=2000"])
        sent += n
        time.sleep(0.5)
        if events(out, "alert"):
            raise lt.Fail("alerts before the reload: %s" % events(out, "alert")[:2])

        # 2. The feed is replaced by rename: inotify reloads it.
        replace_file(feed, demo_feed)
        wait_for(ctl, "reload", 1)
        r = events(ctl, "reload")[0]["reload"]
        print("reload on file change: %d indicators in %.3f s (%s)" % (r["indicators"], r["seconds"], r["trigger"]))
        # The flows of step 1 are still in the flow table; a new replay with
        # the same 5-tuples would not be new flows. Wait for nothing: the
        # demo capture's flows are matched on their next packets (DNS, TLS
        # and HTTP metadata come with new packets), so replay it again.
        n, _ = lt.tcpreplay(net, demo, ["--pps=2000"])
        sent += n
        time.sleep(0.5)

        # 3. Reloads while packets flow: nothing may be dropped.
        proc = subprocess.Popen(["ip", "netns", "exec", net.ns, "tcpreplay", "-i", net.send, "--pps=5000",
                                 "--loop=40", other], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        reloads = 0
        while proc.poll() is None:
            k.p.send_signal(lt.signal.SIGHUP)
            reloads += 1
            time.sleep(0.2)
        rep = proc.stdout.read()
        m = lt.re.search(r"Successful packets:\s+(\d+)", rep)
        if not m:
            raise lt.Fail("cannot read tcpreplay's summary:\n%s" % rep)
        sent += int(m.group(1))
        wait_for(ctl, "reload", 1 + reloads, timeout=30)
        print("%d reloads on SIGHUP while replaying %s packets" % (reloads, m.group(1)))

        # 4. A feed that cannot be read: error event, old set stays.
        os.symlink(os.path.join(work, "does-not-exist.intel"), feed + ".link")
        os.rename(feed + ".link", feed)
        k.p.send_signal(lt.signal.SIGHUP)
        wait_for(ctl, "error", 1)
        err = events(ctl, "error")[0]["error"]
        print("failed reload reported: %s" % err["message"])
        time.sleep(1.0)

        rc = k.stop()
        stderr = k.stderr()
        if rc != 0:
            raise lt.Fail("kagami exited with %d:\n%s" % (rc, stderr))
        if "previous indicators stay in force" not in stderr:
            raise lt.Fail("no log line saying the previous indicators stay in force:\n%s" % stderr)
        st = lt.capture_stats(stderr, net.cap)
        print("sent %d packets; captured %d, kernel drops %d" % (sent, st["packets"], st["kdrops"]))
        if st["kdrops"] or st["packets"] < sent:
            raise lt.Fail("packets lost during reloads: sent %d, captured %d, kernel drops %d"
                          % (sent, st["packets"], st["kdrops"]))
        # Stats events (every second): they count what was captured.
        stats = [e["stats"] for e in events(ctl, "stats")]
        if not stats:
            raise lt.Fail("no stats event in %s" % ctl)
        if any(e.get("event_type") != "alert" for e in lt.read_alerts(out)):
            raise lt.Fail("control events reached the alert output despite stats.outputs")
        last = stats[-1]
        if last["capture"]["packets"] <= 0 or last["decoder"]["packets"] <= 0 or last["indicators"]["reloads"] < 1:
            raise lt.Fail("stats event does not count the traffic or the reloads: %s" % last)
        print("%d stats events; last: captured %d packets, %d flows created, %d reloads"
              % (len(stats), last["capture"]["packets"], last["flows"]["created"], last["indicators"]["reloads"]))
        got = sorted(lt.alert_key(a) for a in events(out, "alert"))
        if got != want:
            missing = [x for x in want if x not in got]
            extra = [x for x in got if x not in want]
            raise lt.Fail("alerts after the reload differ from the file run:\n missing %s\n extra %s"
                          % (missing, extra))
        print("PASS: %d alerts after the reload equal the file run; %d reloads, 1 failed reload kept the set"
              % (len(got), 1 + reloads))
        return 0
    except lt.Fail as e:
        print("FAIL: %s" % e)
        if k:
            print(k.stderr()[-4000:])
        return 1
    finally:
        if k:
            k.kill()
        net.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
