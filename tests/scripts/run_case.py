#!/usr/bin/env python3
"""
tests/scripts/run_case.py — runs one end-to-end case (tests/cases/<name>/)
through kagami and checks its alerts. Python 3 standard library only.

A case directory holds:
  case.json        {"description": ..., "pcap": "pcaps/x.pcap" (relative to the
                   repository root), "indicators": ["indicators.intel"] (relative
                   to the case directory), "workers": [1, 2],
                   optionally "args": [extra kagami arguments, e.g. "--set",
                   "events.dns=true"], and optionally "events": {"types":
                   [metadata event types checked], "projection": {"*": [dotted
                   paths kept for every event], "<type>": [paths for that type]}},
                   and optionally "same_as_plain": "pcaps/x.plain.pcap" (relative to
                   the repository root)}
  indicators.intel the Zeek Intel feed
  expected.jsonl   one JSON object per expected alert, holding only the fields
                   to compare (written by scripts/make_pcaps.py)
  expected_events.jsonl  (with "events") one projected metadata event per line

For each worker count, kagami runs as
  kagami -r PCAP --indicators FEED... -o file:TMP/alerts.json --workers N [args]
and must exit 0. Every output line must be a JSON alert with the required
fields; then each expected alert must match exactly one actual alert on every
field it gives (nested objects compare key by key, lists exactly; a field
given as null must be absent), and every actual alert must be matched.

With "events", output lines whose event_type is one of "types" are metadata
events instead: each is checked for the common header, reduced to the
projection (the "*" paths and those of its type; a path through a list keeps
that member of every element; absent members stay absent), and the multiset
of projected events must equal expected_events.jsonl exactly: nothing
missing, nothing extra. Any other event_type is an error.

With "same_as_plain" (the encapsulation cases: the same inner packets without
their wrapping), kagami also runs on that capture with the same arguments.
Its alerts must match expected.jsonl with every "vlan" absent, and the two
runs must give the same alerts: equal multisets once "timestamp",
"event_id", "flow_id" and "vlan" are left out of each alert.

  run_case.py --kagami build/sensor/kagami --case tests/cases/dns_udp
  run_case.py --case tests/cases/dns_udp --dry-run-output alerts.json
  run_case.py --case tests/cases/encap_gre --dry-run-output a.json --dry-run-plain-output p.json

Exit status: 0 pass, 1 fail, 2 usage or case error.
"""

import argparse
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000$")
IND_TYPES = {"ADDR", "SUBNET", "DOMAIN", "URL", "CERT_HASH", "JA3", "JA4", "SOFTWARE", "FILE_HASH"}
# Which indicator types can be matched at each place.
WHERE_TYPES = {
    "conn.src_ip": {"ADDR", "SUBNET"},
    "conn.dest_ip": {"ADDR", "SUBNET"},
    "dns.query": {"DOMAIN"},
    "dns.answer": {"ADDR", "SUBNET"},
    "conn.resolved": {"DOMAIN"},
    "tls.sni": {"DOMAIN"},
    "http.host": {"DOMAIN"},
    "http.url": {"URL"},
    "http.user_agent": {"SOFTWARE"},
    "tls.ja3": {"JA3"},
    "tls.ja4": {"JA4"},
    "tls.cert_sha1": {"CERT_HASH"},
}
CID_RE = re.compile(r"^1:[A-Za-z0-9+/]{27}=$")
PROTOS = {"TCP", "UDP", "ICMP", "IPv6-ICMP"}

ABSENT = object()


class CaseError(Exception):
    pass


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_alert(a):
    """Returns the list of problems with one alert's shape."""
    errs = []

    def need(obj, key, types, where=""):
        if not isinstance(obj, dict) or key not in obj:
            errs.append("missing field %s%s" % (where, key))
            return None
        v = obj[key]
        ok = is_int(v) if types is int else isinstance(v, types)
        if not ok:
            errs.append("field %s%s has the wrong type: %r" % (where, key, v))
            return None
        return v

    ts = need(a, "timestamp", str)
    if ts is not None and not TS_RE.match(ts):
        errs.append("bad timestamp %r" % ts)
    need(a, "event_id", str)
    need(a, "host", str)
    need(a, "flow_id", int)
    if need(a, "event_type", str) not in (None, "alert"):
        errs.append("event_type is %r, not 'alert'" % a["event_type"])
    for k in ("src_ip", "dest_ip"):
        v = need(a, k, str)
        if v is not None:
            try:
                ipaddress.ip_address(v)
            except ValueError:
                errs.append("%s is not an address: %r" % (k, v))
    proto = need(a, "proto", str)
    if proto is not None and proto not in PROTOS:
        errs.append("unknown proto %r" % proto)
    if proto in ("TCP", "UDP"):
        for k in ("src_port", "dest_port"):
            v = need(a, k, int)
            if v is not None and not 0 <= v <= 65535:
                errs.append("%s out of range: %r" % (k, v))
    if "app_proto" in a and not isinstance(a["app_proto"], str):
        errs.append("app_proto is not a string: %r" % a["app_proto"])
    if "vlan" in a:
        v = a["vlan"]
        if not (isinstance(v, list) and v and all(is_int(x) and 0 <= x < 4096 for x in v)):
            errs.append("bad vlan %r" % v)
    al = need(a, "alert", dict)
    if al is not None:
        need(al, "signature", str, "alert.")
        need(al, "signature_id", int, "alert.")
        need(al, "category", str, "alert.")
        need(al, "severity", int, "alert.")
    ind = need(a, "indicator", dict)
    if ind is not None:
        need(ind, "value", str, "indicator.")
        need(ind, "seen", str, "indicator.")
        need(ind, "source", str, "indicator.")
        t = need(ind, "type", str, "indicator.")
        w = need(ind, "where", str, "indicator.")
        if t is not None and t not in IND_TYPES:
            errs.append("unknown indicator.type %r" % t)
        if w is not None and w not in WHERE_TYPES:
            errs.append("unknown indicator.where %r" % w)
        elif w is not None and t in IND_TYPES and t not in WHERE_TYPES[w]:
            errs.append("indicator.type %s cannot match at %s" % (t, w))
    return errs


def check_event(e):
    """Returns the list of problems with one metadata event's common header."""
    errs = []
    for k, types in (("timestamp", str), ("flow_id", int), ("event_type", str), ("src_ip", str), ("dest_ip", str),
                     ("proto", str)):
        v = e.get(k)
        if not (is_int(v) if types is int else isinstance(v, types)):
            errs.append("missing or mistyped field %s: %r" % (k, v))
    if isinstance(e.get("timestamp"), str) and not TS_RE.match(e["timestamp"]):
        errs.append("bad timestamp %r" % e["timestamp"])
    for k in ("src_ip", "dest_ip"):
        if isinstance(e.get(k), str):
            try:
                ipaddress.ip_address(e[k])
            except ValueError:
                errs.append("%s is not an address: %r" % (k, e[k]))
    if e.get("proto") in ("TCP", "UDP"):
        for k in ("src_port", "dest_port"):
            if not (is_int(e.get(k)) and 0 <= e[k] <= 65535):
                errs.append("bad %s %r" % (k, e.get(k)))
    if "community_id" in e and not (isinstance(e["community_id"], str) and CID_RE.match(e["community_id"])):
        errs.append("bad community_id %r" % e["community_id"])
    if not isinstance(e.get(e.get("event_type")), dict):
        errs.append("no %r object" % e.get("event_type"))
    return errs


def read_alerts(path, event_types=()):
    """Parses the output file; returns (alerts, events, problems). Lines whose
    event_type is in event_types are metadata events, the others alerts."""
    alerts, events, problems = [], [], []
    if not os.path.exists(path):
        return alerts, events, problems  # a sink may create its file on the first event only
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        problems.append("output does not end with a newline (last line cut?)")
    for n, raw in enumerate(data.split(b"\n"), 1):
        if not raw:
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            problems.append("line %d: not UTF-8 (%s)" % (n, e))
            continue
        try:
            a = json.loads(line)
        except ValueError as e:
            problems.append("line %d: invalid JSON (%s): %s" % (n, e, line[:200]))
            continue
        if not isinstance(a, dict):
            problems.append("line %d: not a JSON object" % n)
            continue
        if event_types and a.get("event_type") in event_types:
            for e in check_event(a):
                problems.append("line %d (%s event): %s" % (n, a.get("event_type"), e))
            events.append(a)
            continue
        if a.get("event_type") != "alert" and isinstance(a.get("event_type"), str):
            problems.append("line %d: a %r event, not a type this case checks (%s): %s" % (
                n, a["event_type"], ", ".join(["alert"] + list(event_types)), line[:200]))
            continue
        for e in check_alert(a):
            problems.append("line %d: %s" % (n, e))
        alerts.append(a)
    ids = {}
    for n, a in enumerate(alerts + events):
        ids.setdefault(a.get("event_id"), []).append(n)
    for eid, where in ids.items():
        if eid is not None and len(where) > 1:
            problems.append("event_id %r used by %d alerts" % (eid, len(where)))
    # One alert per flow, indicator and place.
    seen = {}
    for a in alerts:
        ind = a.get("indicator") if isinstance(a.get("indicator"), dict) else {}
        key = (a.get("flow_id"), ind.get("type"), ind.get("value"), ind.get("where"))
        if key in seen:
            problems.append("two alerts for one flow, indicator and place: flow_id=%r %s %r at %s"
                            % (key[0], key[1], key[2], key[3]))
        seen[key] = True
    return alerts, events, problems


def mismatches(exp, act, path=""):
    """Fields of `exp` that `act` does not match, as 'path: expected X, got Y'."""
    out = []
    for k, v in exp.items():
        p = path + k
        got = act.get(k, ABSENT) if isinstance(act, dict) else ABSENT
        if v is None:
            if got is not ABSENT and got is not None:
                out.append("%s: expected absent, got %s" % (p, json.dumps(got)))
        elif isinstance(v, dict):
            if not isinstance(got, dict):
                out.append("%s: expected an object, got %s" % (p, "nothing" if got is ABSENT else json.dumps(got)))
            else:
                out += mismatches(v, got, p + ".")
        elif got is ABSENT:
            out.append("%s: missing (expected %s)" % (p, json.dumps(v)))
        elif got != v or type(got) is not type(v):
            out.append("%s: expected %s, got %s" % (p, json.dumps(v), json.dumps(got)))
    return out


def brief(a):
    """The fields that identify an alert, for messages."""
    ind = a.get("indicator") if isinstance(a.get("indicator"), dict) else {}
    return "%s %s:%s -> %s:%s %s %s=%s at %s seen=%s" % (
        a.get("proto"), a.get("src_ip"), a.get("src_port", "-"), a.get("dest_ip"), a.get("dest_port", "-"),
        ("vlan=%s" % a["vlan"]) if a.get("vlan") else "", ind.get("type"), json.dumps(ind.get("value")),
        ind.get("where"), json.dumps(ind.get("seen")))


def compare(expected, actual):
    """Returns a list of failure messages (empty on success)."""
    fails = []
    claimed = {}
    for i, exp in enumerate(expected):
        cands = [j for j, act in enumerate(actual) if not mismatches(exp, act)]
        if len(cands) == 1:
            claimed.setdefault(cands[0], []).append(i)
            continue
        if not cands:
            msg = "MISSING expected alert #%d: %s\n    %s" % (i + 1, brief(exp), json.dumps(exp))
            # Point at the closest actual alert to make the difference obvious.
            best = min(actual, key=lambda act: len(mismatches(exp, act)), default=None)
            if best is not None:
                msg += "\n    closest actual alert: %s\n      differs: %s" % (
                    brief(best), "; ".join(mismatches(exp, best)))
            fails.append(msg)
        else:
            fails.append("AMBIGUOUS expected alert #%d matches %d actual alerts (duplicates?): %s\n%s" % (
                i + 1, len(cands), brief(exp), "\n".join("    " + json.dumps(actual[j]) for j in cands)))
            for j in cands:
                claimed.setdefault(j, []).append(i)
    for j, who in claimed.items():
        if len(who) > 1:
            fails.append("actual alert matched by several expected alerts (%s): %s" % (
                ", ".join("#%d" % (i + 1) for i in who), brief(actual[j])))
    for j, act in enumerate(actual):
        if j not in claimed:
            fails.append("UNEXPECTED alert: %s\n    %s" % (brief(act), json.dumps(act)))
    return fails


def path_tree(paths):
    """["a.b", "a.c", "d"] -> {"a": {"b": {}, "c": {}}, "d": {}}."""
    tree = {}
    for p in paths:
        node = tree
        for part in p.split("."):
            node = node.setdefault(part, {})
    return tree


def project(value, tree):
    """Keeps the members of `value` named by `tree`; through a list, keeps them
    in every element. A leaf keeps the whole value."""
    if not tree:
        return value
    if isinstance(value, list):
        return [project(v, tree) for v in value]
    if isinstance(value, dict):
        return {k: project(value[k], sub) for k, sub in tree.items() if k in value}
    return value


def project_event(e, projection):
    return project(e, path_tree(projection.get("*", []) + projection.get(e.get("event_type"), [])))


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def event_diff(a, b, path=""):
    """Paths where two projected events differ (for messages)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append("%s%s: %s vs %s" % (path, k, json.dumps(a.get(k, "(absent)")),
                                               json.dumps(b.get(k, "(absent)"))))
            else:
                out += event_diff(a[k], b[k], path + k + ".")
        return out
    return [] if a == b else ["%s: %s vs %s" % (path.rstrip("."), json.dumps(a), json.dumps(b))]


def ebrief(e):
    return "%s %s %s:%s -> %s:%s" % (e.get("event_type"), e.get("proto"), e.get("src_ip"), e.get("src_port", "-"),
                                     e.get("dest_ip"), e.get("dest_port", "-"))


def compare_events(expected, actual, projection):
    """Multiset comparison of projected events; returns failure messages."""
    exp = {}
    for e in expected:
        exp.setdefault(canon(e), []).append(e)
    act = {}
    for a in actual:
        p = project_event(a, projection)
        act.setdefault(canon(p), []).append(p)
    missing, extra = [], []
    for k in sorted(set(exp) | set(act)):
        ne, na = len(exp.get(k, [])), len(act.get(k, []))
        if ne > na:
            missing += exp[k][:ne - na]
        elif na > ne:
            extra += act[k][:na - ne]
    fails = []
    for e in missing:
        msg = "MISSING event: %s\n    %s" % (ebrief(e), canon(e))
        same = [x for x in extra if x.get("event_type") == e.get("event_type")]
        if same:
            best = min(same, key=lambda x: len(event_diff(e, x)))
            msg += "\n    closest unexpected event differs (expected vs actual): %s" % "; ".join(event_diff(e, best))
        fails.append(msg)
    for a in extra:
        fails.append("UNEXPECTED event: %s\n    %s" % (ebrief(a), canon(a)))
    return fails


# Alert members that legitimately differ between a capture and its plain form.
PLAIN_IGNORED = ("timestamp", "event_id", "flow_id", "vlan")


def without_vlan(expected):
    """The expected alerts of the plain form: no tags, so no "vlan"."""
    return [dict(e, vlan=None) for e in expected]


def compare_plain(actual, plain):
    """Failure messages when the alerts of a capture and of its plain form
    differ (as multisets, PLAIN_IGNORED members left out). An alert on one
    side paired with one on the other for the same flow, indicator and place
    is reported once, with the members that differ."""
    def strip(a):
        return {k: v for k, v in a.items() if k not in PLAIN_IGNORED}

    def ident(a):
        ind = a.get("indicator") if isinstance(a.get("indicator"), dict) else {}
        return canon([a.get(k) for k in ("proto", "src_ip", "src_port", "dest_ip", "dest_port")] +
                     [ind.get(k) for k in ("type", "value", "where")])

    def multiset(alerts):
        m = {}
        for a in alerts:
            m.setdefault(canon(strip(a)), []).append(a)
        return m

    ma, mp = multiset(actual), multiset(plain)
    only_a, only_p = [], []
    for k in sorted(set(ma) | set(mp)):
        na, np_ = len(ma.get(k, [])), len(mp.get(k, []))
        only_a += ma.get(k, [])[np_:]
        only_p += mp.get(k, [])[na:]
    fails = []
    for a in only_a:
        twin = next((p for p in only_p if ident(p) == ident(a)), None)
        if twin is not None:
            only_p.remove(twin)
            fails.append("NOT AS PLAIN: %s\n    differs (with the encapsulation vs plain): %s" % (
                brief(a), "; ".join(event_diff(strip(a), strip(twin)))))
        else:
            fails.append("NOT AS PLAIN: alert only with the encapsulation: %s\n    %s" % (brief(a), json.dumps(a)))
    for p in only_p:
        fails.append("NOT AS PLAIN: alert only in the plain form: %s\n    %s" % (brief(p), json.dumps(p)))
    return fails


def load_case(case_dir, source_dir):
    path = os.path.join(case_dir, "case.json")
    try:
        with open(path) as f:
            case = json.load(f)
    except (OSError, ValueError) as e:
        raise CaseError("%s: %s" % (path, e))
    for k in ("pcap", "indicators"):
        if k not in case:
            raise CaseError("%s: no %r" % (path, k))
    case["pcap_path"] = os.path.join(source_dir, case["pcap"])
    case["indicator_paths"] = [os.path.join(case_dir, p) for p in case["indicators"]]
    paths = [case["pcap_path"]] + case["indicator_paths"]
    if "same_as_plain" in case:
        if not isinstance(case["same_as_plain"], str):
            raise CaseError("%s: \"same_as_plain\" must be a capture path" % path)
        case["plain_path"] = os.path.join(source_dir, case["same_as_plain"])
        paths.append(case["plain_path"])
    for p in paths:
        if not os.path.exists(p):
            raise CaseError("%s: %s does not exist" % (path, p))
    expected = []
    exp_path = os.path.join(case_dir, "expected.jsonl")
    try:
        with open(exp_path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        expected.append(json.loads(line))
                    except ValueError as e:
                        raise CaseError("%s:%d: %s" % (exp_path, n, e))
    except OSError as e:
        raise CaseError(str(e))
    case["expected"] = expected
    if "events" in case:
        ev = case["events"]
        if not (isinstance(ev, dict) and isinstance(ev.get("types"), list) and isinstance(ev.get("projection"), dict)):
            raise CaseError("%s: \"events\" needs \"types\" (a list) and \"projection\" (an object)" % path)
        exp_path = os.path.join(case_dir, "expected_events.jsonl")
        case["expected_events"] = []
        try:
            with open(exp_path) as f:
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            case["expected_events"].append(json.loads(line))
                        except ValueError as e:
                            raise CaseError("%s:%d: %s" % (exp_path, n, e))
        except OSError as e:
            raise CaseError(str(e))
    return case


def check_output(case, out_path, plain_out_path=None):
    """Returns (counts text, failure messages). With plain_out_path, the
    output of the plain form is checked too (see "same_as_plain")."""
    ev = case.get("events")
    alerts, events, problems = read_alerts(out_path, ev["types"] if ev else ())
    fails = ["BAD OUTPUT " + p for p in problems]
    fails += compare(case["expected"], alerts)
    counts = "%d alert(s), %d expected" % (len(alerts), len(case["expected"]))
    if ev:
        fails += compare_events(case["expected_events"], events, ev["projection"])
        counts += "; %d event(s), %d expected" % (len(events), len(case["expected_events"]))
    if plain_out_path is not None:
        plain, _, problems = read_alerts(plain_out_path, ev["types"] if ev else ())
        fails += ["BAD OUTPUT (plain form) " + p for p in problems]
        fails += ["plain form: " + f for f in compare(without_vlan(case["expected"]), plain)]
        fails += compare_plain(alerts, plain)
        counts += "; plain form %d alert(s)" % len(plain)
    return counts, fails


def report(label, counts, fails):
    if fails:
        print("FAIL %s: %s" % (label, counts))
        for f in fails:
            print("  " + f)
    else:
        print("ok   %s: %s" % (label, counts))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="Run one kagami end-to-end case and check its alerts.")
    ap.add_argument("--case", required=True, help="case directory (tests/cases/<name>)")
    ap.add_argument("--kagami", help="path of the kagami binary")
    ap.add_argument("--dry-run-output", metavar="FILE",
                    help="check an existing output file against the case instead of running kagami")
    ap.add_argument("--dry-run-plain-output", metavar="FILE",
                    help="with --dry-run-output, the output for the case's plain form (\"same_as_plain\")")
    ap.add_argument("--source-dir", default=os.path.dirname(os.path.dirname(here)),
                    help="repository root (pcap paths are relative to it)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds allowed per kagami run")
    ap.add_argument("--keep", action="store_true", help="keep the output file even when the run passes")
    args = ap.parse_args()
    if not args.kagami and not args.dry_run_output:
        ap.error("give --kagami or --dry-run-output")
    name = os.path.basename(os.path.normpath(args.case))
    try:
        case = load_case(args.case, args.source_dir)
    except CaseError as e:
        print("ERROR %s: %s" % (name, e))
        return 2
    if args.dry_run_output:
        for f in (args.dry_run_output, args.dry_run_plain_output):
            if f is not None and not os.path.isfile(f):
                print("ERROR %s: no output file %s" % (name, f))
                return 2
        if "plain_path" in case and not args.dry_run_plain_output:
            print("ERROR %s: the case has a plain form: give --dry-run-plain-output too" % name)
            return 2
        counts, fails = check_output(case, args.dry_run_output, args.dry_run_plain_output)
        report("%s (output %s)" % (name, args.dry_run_output), counts, fails)
        return 1 if fails else 0

    failed = False
    for workers in case.get("workers", [1]):
        label = "%s --workers %d" % (name, workers)
        tmp = tempfile.mkdtemp(prefix="kagami-case-%s-" % name)
        fails, notes = [], []
        runs = [("", case["pcap_path"], os.path.join(tmp, "alerts.json"))]
        if "plain_path" in case:
            runs.append(("plain form: ", case["plain_path"], os.path.join(tmp, "alerts.plain.json")))
        timed_out = False
        for what, pcap, out in runs:
            cmd = [args.kagami, "-r", pcap]
            for p in case["indicator_paths"]:
                cmd += ["--indicators", p]
            cmd += ["-o", "file:" + out, "--workers", str(workers)] + list(case.get("args", []))
            try:
                proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=args.timeout)
            except subprocess.TimeoutExpired as e:
                print("FAIL %s: %skagami did not finish in %.0f s\n  command: %s" % (label, what, args.timeout,
                                                                                     " ".join(cmd)))
                sys.stdout.write((e.stderr or b"").decode("utf-8", "replace")[-4000:])
                timed_out = True
                break
            except OSError as e:
                print("ERROR %s: cannot run %s: %s" % (label, args.kagami, e))
                return 2
            if proc.returncode != 0:
                how = ("killed by signal %d" % -proc.returncode) if proc.returncode < 0 else \
                    "exit status %d" % proc.returncode
                fails.append("%skagami failed (%s)" % (what, how))
            notes.append((what, cmd, proc))
        if timed_out:
            failed = True
            continue
        counts, more = check_output(case, runs[0][2], runs[1][2] if len(runs) > 1 else None)
        fails += more
        report(label, counts, fails)
        if fails:
            failed = True
            for what, cmd, proc in notes:
                print("  %scommand: %s" % (what, " ".join(cmd)))
                err = proc.stderr.decode("utf-8", "replace")
                if err:
                    print("  %skagami stderr (last 4000 bytes):" % what)
                    for line in err[-4000:].splitlines():
                        print("    " + line)
                if proc.stdout:
                    print("  %skagami stdout: %d bytes" % (what, len(proc.stdout)))
        # A failed run keeps its output for inspection.
        if args.keep or fails:
            print("  output kept in " + ", ".join(out for _, _, out in runs))
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
