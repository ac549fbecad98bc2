#!/usr/bin/env python3
"""
real_oracle.py - run kagami on the real third-party captures and compare
its alerts with what tshark saw (ORACLE.tsv).

Registered as ctest `test_real_captures` (label `real`) by tests/real.cmake.
Standard library only; runs with any Python 3.8+.

What it does:
  1. Builds a Zeek Intel feed from ORACLE.tsv: every distinct `sni` and
     `dns_query` value becomes an Intel::DOMAIN indicator (source "oracle").
  2. Runs kagami on every capture of the directory (two at a time, each with
     --workers 2 and a file sink). Every run must exit 0, write only JSON
     objects with event_type "alert", and leave no sanitizer report on its
     standard error (the sanitizer build runs this same test).
  3. For every `sni` / `dns_query` row, looks for an alert of that capture
     with indicator.where "tls.sni" / "dns.query", indicator.seen equal to the
     row's value (case-insensitive, trailing dot ignored) and the row's
     5-tuple in either direction. Prints rows / found / rate per capture and
     kind, every missed row, and the overall rate.

  4. URLs: every `http_url` row whose request target is in origin form
     ("/path"), with the `http_host` row of the same request for its host,
     becomes an Intel::URL indicator in the same feed, in one of three
     spellings by turn: as sent; respelled (the first letter of the path
     percent-encoded, the hex digits of the other escapes in lower case),
     which only matches if percent-encoding is normalised; or as a prefix,
     the path's directory and a '*'. Each such row must get an alert on its
     5-tuple with indicator.where "http.url" and indicator.value the most
     specific indicator of the feed for it, as ref_url() below works it out
     from docs/INDICATORS.md independently of kagami.
Pass/fail: the rate over rows without "encap=" in their note must reach
--threshold (95 %), for names and for URLs. Rows with "encap=" (tunnelled
packets) are reported but do not count yet.

Values tshark did not print verbatim ("escaped" below) are those in its own
escaped form (U+FFFD for bytes that are not UTF-8, \\ooo / \\r for control
bytes) and its placeholders ("<Unknown extended label>"). They are written to
the feed as they are, like every other value, and reported as misses when
nothing matches. They cannot match by construction: the feed then holds
tshark's text, not the bytes on the wire. They are counted apart and left out
of the threshold, which would otherwise be out of reach (108 of the 1127
non-encap rows, 9.6 %, are iodine/fuzz names of that kind); the rate
including them is printed too.

Exit codes: 0 pass, 1 fail, 77 skip (the capture set is not present).
"""

import argparse
import collections
import concurrent.futures
import ipaddress
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_common import (ORACLE_COLUMNS, PROTO_NUMBERS, SANITIZER_MARKERS, Run,  # noqa: E402
                           add_common_args, is_escaped, norm_ip, rate)

KIND_WHERE = {"sni": "tls.sni", "dns_query": "dns.query"}



def norm_name(s):
    s = s.lower()
    return s[:-1] if s.endswith(".") else s



def norm_port(p):
    try:
        return int(p)
    except (TypeError, ValueError):
        return None


def norm_proto(p):
    if isinstance(p, int):
        return p
    if isinstance(p, str):
        if p.isdigit():
            return int(p)
        return PROTO_NUMBERS.get(p.upper())
    return None



def printable(value):
    """The value for a report line: ASCII with \\x / \\u escapes, so that a
    miss list never breaks the terminal or the ctest log."""
    return value.encode("ascii", "backslashreplace").decode("ascii")


class Row:
    __slots__ = ("pcap", "kind", "value", "src_ip", "src_port", "dst_ip", "dst_port",
                 "proto", "note", "encap", "escaped", "found", "frame", "url", "want")

    def __init__(self, f):
        self.pcap = f["pcap"]
        self.kind = f["kind"]
        self.value = f["value"]
        self.src_ip = norm_ip(f["src_ip"])
        self.src_port = norm_port(f["src_port"])
        self.dst_ip = norm_ip(f["dst_ip"])
        self.dst_port = norm_port(f["dst_port"])
        self.proto = norm_proto(f["ip_proto"])
        self.note = f["note"]
        self.encap = "encap=" in self.note
        self.escaped = is_escaped(self.value)
        self.found = False

    def tuple_str(self):
        return "%s:%s -> %s:%s proto %s" % (self.src_ip, self.src_port, self.dst_ip,
                                             self.dst_port, self.proto)


def load_oracle(path, kinds=None):
    kinds = kinds or KIND_WHERE
    rows = []
    with open(path, encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        if header[:len(ORACLE_COLUMNS)] != ORACLE_COLUMNS:
            raise SystemExit("FAIL: %s: unexpected header %r" % (path, header))
        for lineno, line in enumerate(fh, 2):
            line = line.rstrip("\n")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != len(header):
                raise SystemExit("FAIL: %s:%d: %d columns, expected %d"
                                 % (path, lineno, len(parts), len(header)))
            f = dict(zip(header, parts))
            if f["kind"] in kinds:
                row = Row(f)
                row.frame = f["first_frame"]
                rows.append(row)
    return rows


UNRESERVED = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
HEX = "0123456789abcdefABCDEF"


def pct_normal(t):
    """RFC 3986 6.2.2: escapes of unreserved characters decoded, the hex
    digits of the others in upper case, a '%' without two hex digits kept."""
    out, i = [], 0
    while i < len(t):
        if t[i] == "%" and i + 2 < len(t) and t[i + 1] in HEX and t[i + 2] in HEX:
            c = int(t[i + 1:i + 3], 16)
            out.append(chr(c) if c in UNRESERVED else "%" + t[i + 1:i + 3].upper())
            i += 3
        else:
            out.append(t[i])
            i += 1
    return "".join(out)


def respell(target):
    """The same target, spelled differently: its first letter percent-encoded,
    the hex digits of its escapes in lower case."""
    out, done, i = [], False, 0
    while i < len(target):
        c = target[i]
        if c == "%" and i + 2 < len(target) and target[i + 1] in HEX and target[i + 2] in HEX:
            out.append("%" + target[i + 1:i + 3].lower())
            i += 3
            continue
        if not done and c.isascii() and c.isalpha():
            out.append("%%%02x" % ord(c))
            done = True
        else:
            out.append(c)
        i += 1
    return "".join(out)


def url_rows(http_rows):
    """The http_url rows usable for URL indicators, each with .url set to host
    + target (host from the http_host row of the same request)."""
    hosts = {}
    for r in http_rows:
        if r.kind == "http_host":
            hosts[(r.pcap, r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.frame)] = r.value
    out = []
    for r in http_rows:
        if r.kind != "http_url" or r.escaped or not r.value.startswith("/"):
            continue
        h = hosts.get((r.pcap, r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.frame))
        if not h or is_escaped(h) or any(ord(c) <= 0x20 or ord(c) >= 0x7f for c in h + r.value):
            continue
        if h.endswith(":80"):
            h = h[:-3]
        r.url = h.lower() + r.value
        out.append(r)
    return out


def url_indicators(rows):
    """The URL indicators made of the rows (three spellings by turn): a list of
    (listed value, normalised key, is prefix)."""
    inds, seen = [], set()
    for i, r in enumerate(sorted(rows, key=lambda x: (x.pcap, x.frame, x.url))):
        host, target = r.url.split("/", 1)[0], "/" + r.url.split("/", 1)[1]
        if i % 3 == 0:
            listed, key, prefix = r.url, host + pct_normal(target), False
        elif i % 3 == 1:
            listed, key, prefix = host + respell(target), host + pct_normal(target), False
        else:
            path = pct_normal(target).split("?", 1)[0]
            d = path[:path.rfind("/") + 1]
            listed, key, prefix = host + d + "*", host + d, True
        if (key, prefix) not in seen:
            seen.add((key, prefix))
            inds.append((listed, key, prefix))
    return inds


def ref_url(inds, url):
    """The listed value of the most specific indicator matching url (host +
    target as sent), per docs/INDICATORS.md: the exact one, else the longest
    prefix P with url = P..., P ending in '/' or followed by '/' or '?'."""
    host, target = url.split("/", 1)[0], "/" + url.split("/", 1)[1]
    u = host + pct_normal(target)
    best, found = -1, None
    for listed, key, prefix in inds:
        if not prefix and key == u:
            return listed
    for listed, key, prefix in inds:
        if prefix and u.startswith(key) and len(key) > best and (
                len(key) == len(u) or key.endswith("/") or u[len(key)] in "/?"):
            best, found = len(key), listed
    return found


def write_feed(rows, path, urls=()):
    values = sorted({r.value for r in rows})
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
        fh.write("#fields\tindicator\tindicator_type\tmeta.source\n")
        for v in values:
            fh.write("%s\tIntel::DOMAIN\toracle\n" % v)
        for listed, _, _ in urls:
            fh.write("%s\tIntel::URL\toracle\n" % listed)
    return len(values)


class RunResult:
    def __init__(self, pcap):
        self.pcap = pcap
        self.errors = []     # reasons this run fails the test
        self.alerts = []     # parsed alert objects
        self.repeats = 0     # alerts repeating a (flow_id, indicator, where) already seen
        self.seconds = 0.0


def run_capture(kagami, pcap_path, feed, outdir, workers, timeout):
    name = os.path.basename(pcap_path)
    res = RunResult(name)
    out = os.path.join(outdir, name + ".alerts.json")
    cmd = [kagami, "-r", pcap_path, "--indicators", feed, "-o", "file:" + out,
           "--workers", str(workers)]
    if os.path.exists(out):
        os.unlink(out)   # the file sink appends; --keep may reuse a directory
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        res.seconds = time.monotonic() - t0
        res.errors.append("timed out after %d s" % timeout)
        stderr = e.stderr or b""
        rc = None
    else:
        res.seconds = time.monotonic() - t0
        stderr = proc.stderr
        rc = proc.returncode
    err_text = stderr.decode("utf-8", "replace")
    if rc is not None and rc != 0:
        what = ("killed by signal %d" % -rc) if rc < 0 else ("exit code %d" % rc)
        res.errors.append(what)
    for marker in SANITIZER_MARKERS:
        if marker in err_text:
            res.errors.append("sanitizer report on stderr (%r)" % marker)
            break
    if res.errors:
        tail = err_text.strip().splitlines()[-15:]
        res.errors.append("command: " + " ".join(cmd))
        res.errors.extend("stderr: " + l for l in tail)
        if rc is None:
            return res
    try:
        with open(out, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        data = b""   # no alert: a file sink may never create its file
    if data and not data.endswith(b"\n"):
        res.errors.append("output does not end with a newline (truncated last line?)")
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        if not raw:
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            res.errors.append("line %d is not valid JSON (%s): %r" % (lineno, e, raw[:200]))
            continue
        if not isinstance(obj, dict):
            res.errors.append("line %d is not a JSON object: %r" % (lineno, raw[:200]))
            continue
        if obj.get("event_type") != "alert":
            res.errors.append("line %d: event_type is %r, not \"alert\"" % (lineno, obj.get("event_type")))
            continue
        if not isinstance(obj.get("indicator"), dict):
            res.errors.append("line %d: no indicator object" % lineno)
            continue
        res.alerts.append(obj)
    ids = collections.Counter(a.get("event_id") for a in res.alerts)
    dup = [i for i, n in ids.items() if n > 1]
    if dup:
        res.errors.append("%d event_id(s) used more than once, e.g. %r" % (len(dup), dup[0]))
    # One alert per flow, indicator and place (kg_flow_mark): more is noise
    # for the analyst, not a failure of this test.
    keys = collections.Counter((a.get("flow_id"), a["indicator"].get("value"), a["indicator"].get("where"))
                               for a in res.alerts)
    res.repeats = sum(n - 1 for n in keys.values() if n > 1)
    return res


def alert_keys(alert):
    """Yields the lookup keys of an alert: (where, seen, endpoint pair, proto),
    with the endpoint pair in both orders."""
    ind = alert["indicator"]
    where = ind.get("where")
    seen = ind.get("seen")
    if not isinstance(where, str) or not isinstance(seen, str):
        return
    a = (norm_ip(str(alert.get("src_ip"))), norm_port(alert.get("src_port")))
    b = (norm_ip(str(alert.get("dest_ip"))), norm_port(alert.get("dest_port")))
    proto = norm_proto(alert.get("proto"))
    yield (where, norm_name(seen), a, b, proto)
    yield (where, norm_name(seen), b, a, proto)



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap)
    ap.add_argument("--threshold", type=float, default=95.0,
                    help="minimum found rate in %% over non-encap rows (default 95)")
    args = ap.parse_args()

    run = Run(args, "kg-real-")
    if run.rc is not None:
        return run.rc
    # `run` keeps the temporary work directory alive until main() returns.
    real_dir, oracle_path, captures, workdir = run.real_dir, run.oracle_path, run.captures, run.workdir
    rows = load_oracle(oracle_path)
    urows = url_rows(load_oracle(oracle_path, ("http_url", "http_host")))
    uinds = url_indicators(urows)
    for r in urows:
        r.want = ref_url(uinds, r.url)
    feed = os.path.join(workdir, "oracle.intel")
    nind = write_feed(rows, feed, uinds)
    print("feed: %d Intel::DOMAIN indicators from %d sni/dns_query rows and %d Intel::URL indicators "
          "(%d prefixes) from %d http_url rows of %s"
          % (nind, len(rows), len(uinds), sum(1 for u in uinds if u[2]), len(urows), oracle_path))
    print("running kagami on %d captures (%d at a time, --workers %d)"
          % (len(captures), args.jobs, args.workers))

    t0 = time.monotonic()
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {pool.submit(run_capture, args.kagami, os.path.join(real_dir, c), feed, workdir,
                            args.workers, args.timeout): c for c in captures}
        for fut in concurrent.futures.as_completed(futs):
            results[futs[fut]] = fut.result()
    elapsed = time.monotonic() - t0

    failed = False
    print("\n== runs (%.1f s in all) ==" % elapsed)
    for c in captures:
        r = results[c]
        status = "ok" if not r.errors else "FAILED"
        extra = ("  (%d repeated for the same flow, indicator and place)" % r.repeats) if r.repeats else ""
        print("%-55s %-6s %5d alerts %6.2f s%s" % (c, status, len(r.alerts), r.seconds, extra))
        for e in r.errors:
            print("    " + e)
        failed = failed or bool(r.errors)

    # Match rows against the alerts of their capture.
    index = {}
    for c, r in results.items():
        keys = set()
        for a in r.alerts:
            keys.update(alert_keys(a))
        index[c] = keys
    unknown_pcaps = sorted({row.pcap for row in rows} - set(captures))
    for row in rows:
        keys = index.get(row.pcap, ())
        k = (KIND_WHERE[row.kind], norm_name(row.value), (row.src_ip, row.src_port),
             (row.dst_ip, row.dst_port), row.proto)
        row.found = k in keys

    def table(title, subset):
        print("\n== %s ==" % title)
        print("%-55s %-10s %6s %6s %7s" % ("capture", "kind", "rows", "found", "rate"))
        per = collections.OrderedDict()
        for row in sorted(subset, key=lambda x: (x.pcap, x.kind)):
            per.setdefault((row.pcap, row.kind), []).append(row)
        for (pcap, kind), rs in per.items():
            n = len(rs)
            f = sum(1 for x in rs if x.found)
            print("%-55s %-10s %6d %6d %6.1f%%" % (pcap, kind, n, f, rate(f, n)))
        n = len(subset)
        f = sum(1 for x in subset if x.found)
        for kind in KIND_WHERE:
            kn = sum(1 for x in subset if x.kind == kind)
            kf = sum(1 for x in subset if x.kind == kind and x.found)
            print("%-55s %-10s %6d %6d %6.1f%%" % ("(all captures)", kind, kn, kf, rate(kf, kn)))
        return n, f

    plain = [r for r in rows if not r.encap]
    encap = [r for r in rows if r.encap]
    n_all, f_all = table("rows without encap= (these count)", plain)

    misses = [r for r in plain if not r.found]
    print("\n== missed rows without encap= (%d) ==" % len(misses))
    for r in sorted(misses, key=lambda x: (x.escaped, x.pcap, x.kind, x.value)):
        print("MISS %s%s %s %s  [%s]" % ("[escaped] " if r.escaped else "", r.pcap, r.kind,
                                         printable(r.value), r.tuple_str()))

    n_enc, f_enc = table("rows with encap= (informational: tunnels come later)", encap)
    enc_misses = [r for r in encap if not r.found]
    for r in sorted(enc_misses, key=lambda x: (x.pcap, x.kind, x.value)):
        print("MISS(encap) %s %s %s  [%s] %s" % (r.pcap, r.kind, printable(r.value),
                                                r.tuple_str(), r.note))

    counted = [r for r in plain if not r.escaped]
    n_c = len(counted)
    f_c = sum(1 for r in counted if r.found)
    esc = [r for r in plain if r.escaped]
    print("\n== summary ==")
    print("all rows without encap=:            %4d/%4d found, %5.1f%%" % (f_all, n_all, rate(f_all, n_all)))
    print("  of which not verbatim in tshark:  %4d/%4d found (not matchable: the feed holds "
          "tshark's escaped text or placeholder)" % (sum(1 for r in esc if r.found), len(esc)))
    print("rows without encap=, verbatim:      %4d/%4d found, %5.1f%% (threshold %.1f%%)"
          % (f_c, n_c, rate(f_c, n_c), args.threshold))
    print("rows with encap= (informational):   %4d/%4d found, %5.1f%%" % (f_enc, n_enc, rate(f_enc, n_enc)))
    if unknown_pcaps:
        print("oracle rows for captures not in the directory (counted as misses): %s"
              % ", ".join(unknown_pcaps))

    if rate(f_c, n_c) < args.threshold:
        print("FAIL: found rate %.1f%% is below %.1f%%" % (rate(f_c, n_c), args.threshold))
        failed = True

    # URLs: an http.url alert on the row's 5-tuple naming the expected indicator.
    url_alerts = {}
    for c, r in results.items():
        for a in r.alerts:
            ind = a["indicator"]
            if ind.get("where") != "http.url" or not isinstance(ind.get("value"), str):
                continue
            ends = [(norm_ip(str(a.get("src_ip"))), norm_port(a.get("src_port"))),
                    (norm_ip(str(a.get("dest_ip"))), norm_port(a.get("dest_port")))]
            for x, y in (ends, ends[::-1]):
                url_alerts.setdefault((c, x, y, norm_proto(a.get("proto"))), set()).add(ind["value"])
    uplain = [r for r in urows if not r.encap]
    for r in urows:
        got = url_alerts.get((r.pcap, (r.src_ip, r.src_port), (r.dst_ip, r.dst_port), r.proto), set())
        r.found = r.want in got
        if not r.found and (not r.encap):
            print("MISS url %s %s: want %s, alerts %s  [%s]" % (r.pcap, printable(r.url), printable(str(r.want)),
                                                              sorted(got) or "none", r.tuple_str()))
    uf = sum(1 for r in uplain if r.found)
    print("URL rows without encap=:            %4d/%4d found, %5.1f%% (threshold %.1f%%); with encap= %d/%d"
          % (uf, len(uplain), rate(uf, len(uplain)), args.threshold,
             sum(1 for r in urows if r.encap and r.found), sum(1 for r in urows if r.encap)))
    if len(uplain) < 20 or rate(uf, len(uplain)) < args.threshold:
        print("FAIL: URL found rate below %.1f%% (or fewer than 20 usable rows)" % args.threshold)
        failed = True
    if failed:
        print("FAIL")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
