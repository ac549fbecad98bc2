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
  5. Fingerprints: every `ja3` row's JA3 and every `cert_sha1` row's SHA1
     becomes a JA3 / CERT_HASH indicator; each such row must get an alert
     with indicator.where "tls.ja3" / "tls.cert_sha1" and indicator.seen the
     row's value on its 5-tuple (certificates of QUIC servers, sent
     encrypted, are left out: tshark had the keys).
  Formats: the distinct values of each kind are dealt out in turn to every
     feed format that can carry them (Zeek Intel, plain list, STIX 2.1
     bundle, MISP CSV, Suricata string dataset, abuse.ch SSLBL JA3 / cert
     lists), one file per format, all loaded together; every format must
     reach the threshold on its own rows too, so a format that loads but
     never matches fails the test.
Pass/fail: the rate over rows without "encap=" in their note must reach
--threshold (95 %), for names, URLs, fingerprints and each format. Rows with "encap=" (tunnelled
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
import base64
import collections
import csv
import re
import uuid
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
FP_WHERE = {"ja3": "tls.ja3", "cert_sha1": "tls.cert_sha1"}
FP_TYPE = {"ja3": "JA3", "cert_sha1": "CERT_HASH"}



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


# The formats each kind can be written in (docs/INDICATORS.md), dealt out in turn.
KIND_FORMATS = {
    "DOMAIN": ("zeek", "plain", "stix", "misp", "dataset-string"),
    "URL": ("zeek", "plain", "stix", "misp"),
    "JA3": ("zeek", "plain", "misp", "sslbl-ja3"),
    "CERT_HASH": ("zeek", "plain", "stix", "misp", "sslbl-cert"),
    "ADDR": ("dataset-ipv4", "dataset-ip", "stix", "misp", "zeek", "plain"),
}
PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]+")
NOT_HEX_OR_ADDR = re.compile(r"[g-zG-Z_-]")


def format_fits(fmt, kind, value):
    """Whether fmt can carry value without changing what it means (plain lists
    tell types apart by shape; string datasets keep DNS names only)."""
    if fmt == "plain" and kind == "DOMAIN":
        return bool(PLAIN_NAME.fullmatch(value) and NOT_HEX_OR_ADDR.search(value))
    if fmt == "dataset-string":
        return bool(PLAIN_NAME.fullmatch(value) and "." in value)
    if fmt == "plain" and kind == "URL":
        return not any(c in value for c in "#; \t")
    if fmt in ("stix", "misp"):
        return value.isprintable()
    if fmt == "dataset-ipv4":
        return ":" not in value
    return True


def deal_formats(kind, values):
    """{value: format}: the distinct values dealt out in turn to the formats of
    the kind; a value a format cannot carry goes to the next one (Zeek takes
    anything)."""
    fmts = KIND_FORMATS[kind]
    out = {}
    for i, v in enumerate(sorted(values)):
        for j in range(len(fmts)):
            f = fmts[(i + j) % len(fmts)]
            if format_fits(f, kind, v):
                out[v] = f
                break
        else:
            out[v] = "zeek"
    return out


def stix_string(v):
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


STIX_PATHS = {"DOMAIN": "domain-name:value", "URL": "url:value", "CERT_HASH": "x509-certificate:hashes.'SHA-1'",
              "ADDR": "ipv4-addr:value"}
MISP_TYPES = {"DOMAIN": "domain", "URL": "url", "JA3": "ja3-fingerprint-md5", "CERT_HASH": "x509-fingerprint-sha1",
              "ADDR": "ip-dst"}
PLAIN_PREFIX = {"DOMAIN": "", "URL": "", "JA3": "ja3:", "CERT_HASH": "cert:", "ADDR": ""}


def write_feeds(workdir, entries):
    """entries: (kind, listed value, format). Writes one file per format;
    returns the --indicators arguments (with format prefixes)."""
    by_fmt = collections.defaultdict(list)
    for kind, v, fmt in entries:
        by_fmt[fmt].append((kind, v))
    args = []
    for fmt, items in sorted(by_fmt.items()):
        path = os.path.join(workdir, "oracle-%s.feed" % fmt)
        with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
            if fmt == "zeek":
                fh.write("#fields\tindicator\tindicator_type\tmeta.source\n")
                for kind, v in items:
                    fh.write("%s\tIntel::%s\toracle\n" % (v, kind))
            elif fmt == "plain":
                fh.write("# oracle values\n")
                for kind, v in items:
                    fh.write(PLAIN_PREFIX[kind] + v + "\n")
            elif fmt == "stix":
                objs = [{"type": "identity", "spec_version": "2.1", "id": "identity--" + str(uuid.uuid4()),
                         "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z",
                         "name": "oracle", "identity_class": "organization"}]
                for kind, v in items:
                    objs.append({"type": "indicator", "spec_version": "2.1", "id": "indicator--" + str(uuid.uuid4()),
                                 "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z",
                                 "created_by_ref": objs[0]["id"], "name": "oracle %s" % kind,
                                 "pattern": "[%s = %s]" % ("ipv6-addr:value" if kind == "ADDR" and ":" in v
                                                           else STIX_PATHS[kind], stix_string(v)),
                                 "pattern_type": "stix", "valid_from": "1990-01-01T00:00:00Z"})
                json.dump({"type": "bundle", "id": "bundle--" + str(uuid.uuid4()), "objects": objs}, fh)
            elif fmt == "misp":
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(["uuid", "event_id", "category", "type", "value", "comment", "to_ids"])
                for kind, v in items:
                    w.writerow([str(uuid.uuid4()), "1", "Network activity", MISP_TYPES[kind], v, "oracle", "1"])
            elif fmt == "dataset-string":
                for kind, v in items:
                    fh.write(base64.b64encode(v.encode("utf-8", "surrogateescape")).decode("ascii") + "\n")
            elif fmt in ("dataset-ipv4", "dataset-ip"):
                for kind, v in items:
                    fh.write("%s,1\n" % v)   # with a datarep reputation
            elif fmt == "sslbl-ja3":
                fh.write("# abuse.ch SSLBL JA3 (oracle)\n# ja3_md5,Firstseen,Lastseen,Listingreason\n")
                for kind, v in items:
                    fh.write("%s,2026-01-01 00:00:00,2026-01-02 00:00:00,oracle\n" % v)
            elif fmt == "sslbl-cert":
                fh.write("# abuse.ch SSLBL certificates (oracle)\n# Listingdate,SHA1,Listingreason\n")
                for kind, v in items:
                    fh.write("2026-01-01 00:00:00,%s,oracle\n" % v)
        args.append("%s:%s" % (fmt, path))
    return args


class RunResult:
    def __init__(self, pcap):
        self.pcap = pcap
        self.errors = []     # reasons this run fails the test
        self.alerts = []     # parsed alert objects
        self.repeats = 0     # alerts repeating a (flow_id, indicator, where) already seen
        self.seconds = 0.0


def run_capture(kagami, pcap_path, feeds, outdir, workers, timeout):
    name = os.path.basename(pcap_path)
    res = RunResult(name)
    out = os.path.join(outdir, name + ".alerts.json")
    cmd = [kagami, "-r", pcap_path]
    for f in feeds:
        cmd += ["--indicators", f]
    cmd += ["-o", "file:" + out, "--workers", str(workers)]
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
    # Certificates of QUIC servers travel in encrypted Handshake packets: tshark had the keys, a
    # sensor never has (meta_oracle.py calls such rows "decrypt-only").
    frows = [r for r in load_oracle(oracle_path, FP_WHERE)
             if not r.escaped and not (r.kind == "cert_sha1" and "proto=quic" in r.note.split(";"))]
    for r in frows:
        r.value = r.value.lower()
    dom_fmt = deal_formats("DOMAIN", {r.value for r in rows})
    url_fmt = deal_formats("URL", {u[0] for u in uinds})
    fp_fmt = {k: deal_formats(FP_TYPE[k], {r.value for r in frows if r.kind == k}) for k in FP_WHERE}
    # Addresses: the servers of the HTTP requests above, against flow endpoints.
    arows = [r for r in urows if not r.encap]
    addr_fmt = deal_formats("ADDR", {r.dst_ip for r in arows})
    entries = [("DOMAIN", v, f) for v, f in dom_fmt.items()] + [("URL", v, f) for v, f in url_fmt.items()]
    entries += [("ADDR", v, f) for v, f in addr_fmt.items()]
    for k in FP_WHERE:
        entries += [(FP_TYPE[k], v, f) for v, f in fp_fmt[k].items()]
    feed = write_feeds(workdir, entries)
    print("feeds: %d DOMAIN indicators from %d sni/dns_query rows, %d URL indicators (%d prefixes) from %d "
          "http_url rows, %d JA3 and %d CERT_HASH from %d ja3/cert_sha1 rows of %s, in %d formats"
          % (len(dom_fmt), len(rows), len(uinds), sum(1 for u in uinds if u[2]), len(urows),
             len(fp_fmt["ja3"]), len(fp_fmt["cert_sha1"]), len(frows), oracle_path, len(feed)))
    for f in feed:
        print("  --indicators " + f)
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

    # Fingerprints: an alert at the row's place on its 5-tuple whose seen is the row's value.
    fp_alerts = set()
    for c, r in results.items():
        for a in r.alerts:
            ind = a["indicator"]
            if ind.get("where") not in FP_WHERE.values() or not isinstance(ind.get("seen"), str):
                continue
            ends = [(norm_ip(str(a.get("src_ip"))), norm_port(a.get("src_port"))),
                    (norm_ip(str(a.get("dest_ip"))), norm_port(a.get("dest_port")))]
            for x, y in (ends, ends[::-1]):
                fp_alerts.add((c, ind["where"], ind["seen"].replace(":", "").lower(), x, y, norm_proto(a.get("proto"))))
    fplain = [r for r in frows if not r.encap]
    for r in frows:
        r.found = (r.pcap, FP_WHERE[r.kind], r.value, (r.src_ip, r.src_port), (r.dst_ip, r.dst_port),
                   r.proto) in fp_alerts
    for k in FP_WHERE:
        ks = [r for r in fplain if r.kind == k]
        kf = sum(1 for r in ks if r.found)
        print("%-9s rows without encap=:          %4d/%4d found, %5.1f%%" % (k, kf, len(ks), rate(kf, len(ks))))
        for r in ks:
            if not r.found:
                print("MISS %s %s %s  [%s]" % (k, r.pcap, r.value, r.tuple_str()))
        if len(ks) < 20 or rate(kf, len(ks)) < args.threshold:
            print("FAIL: %s found rate below %.1f%% (or fewer than 20 rows)" % (k, args.threshold))
            failed = True

    # Addresses: an alert naming the server's address on each request's 5-tuple.
    addr_alerts = set()
    for c, r in results.items():
        for a in r.alerts:
            ind = a["indicator"]
            if ind.get("where") in ("conn.src_ip", "conn.dest_ip") and isinstance(ind.get("value"), str):
                ends = [(norm_ip(str(a.get("src_ip"))), norm_port(a.get("src_port"))),
                        (norm_ip(str(a.get("dest_ip"))), norm_port(a.get("dest_port")))]
                for x, y in (ends, ends[::-1]):
                    addr_alerts.add((c, norm_ip(ind["value"]), x, y, norm_proto(a.get("proto"))))
    afound = {id(r): (r.pcap, r.dst_ip, (r.src_ip, r.src_port), (r.dst_ip, r.dst_port), r.proto) in addr_alerts
              for r in arows}
    af = sum(afound.values())
    print("ADDR rows (HTTP servers):            %4d/%4d found, %5.1f%%" % (af, len(arows), rate(af, len(arows))))
    for r in arows:
        if not afound[id(r)]:
            print("MISS addr %s %s  [%s]" % (r.pcap, r.dst_ip, r.tuple_str()))
    if rate(af, len(arows)) < args.threshold:
        print("FAIL: ADDR found rate below %.1f%%" % args.threshold)
        failed = True

    # Each format on its own rows (verbatim, without tunnels).
    per_fmt = collections.defaultdict(lambda: [0, 0])
    for r in counted:
        st = per_fmt[dom_fmt[r.value]]
        st[0] += 1
        st[1] += r.found
    for r in uplain:
        st = per_fmt[url_fmt[r.want]] if r.want in url_fmt else per_fmt["(none)"]
        st[0] += 1
        st[1] += r.found
    for r in fplain:
        st = per_fmt[fp_fmt[r.kind][r.value]]
        st[0] += 1
        st[1] += r.found
    for r in arows:
        st = per_fmt[addr_fmt[r.dst_ip]]
        st[0] += 1
        st[1] += afound[id(r)]
    print("\n== per format (rows it carries the indicator of) ==")
    for fmt in sorted(per_fmt):
        n, f = per_fmt[fmt]
        print("%-16s %4d/%4d found, %5.1f%%" % (fmt, f, n, rate(f, n)))
        if rate(f, n) < args.threshold:
            print("FAIL: format %s found rate below %.1f%%" % (fmt, args.threshold))
            failed = True
    missing = sorted({f for fs in KIND_FORMATS.values() for f in fs} - set(per_fmt))
    if missing:
        print("FAIL: formats with no row to show for: %s" % ", ".join(missing))
        failed = True
    if failed:
        print("FAIL")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
