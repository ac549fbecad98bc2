#!/usr/bin/env python3
"""Compare Kagami's ClientHello parsers with the tshark oracle on real captures.

Runs tests/unit/test_tls_real (the --tool) on every capture of the real set
that has sni/ja3/ja4 rows in ORACLE.tsv, and compares its lines

    pcap  src_ip  src_port  dst_ip  dst_port  ip_proto  kind  sni  ja3  ja4  ja3_full

with the oracle rows of the same capture and 5-tuple. An oracle row is
"seen" when the tool printed a ClientHello for its 5-tuple, and "agrees"
when one of the tool's values for that 5-tuple equals the oracle value.
Rows the tool could not see (gQUIC, fragmented or out-of-order
ClientHellos, truncated packets, tunnels the tool does not decode) are
listed but not counted. Exits 0 when agreement on the seen rows is at
least --min-agreement (default 0.98), 1 otherwise, 77 (skipped) when the
capture set is absent. Standard library only.
"""
import argparse
import collections
import os
import subprocess
import sys

KINDS = ("sni", "ja3", "ja4")


def load_oracle(path):
    rows = collections.defaultdict(list)  # pcap -> [row]
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(header, line.rstrip("\n").split("\t")))
            if r.get("kind") in KINDS:
                rows[r["pcap"]].append(r)
    return rows


def run_tool(tool, pcap_path):
    out = subprocess.run([tool, pcap_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if out.returncode != 0:
        raise RuntimeError("%s %s: exit %d: %s" % (tool, pcap_path, out.returncode,
                                                   out.stderr.decode(errors="replace").strip()))
    seen = collections.defaultdict(lambda: {k: set() for k in KINDS + ("ja3_full",)})
    for line in out.stdout.decode("utf-8", errors="surrogateescape").splitlines():
        f = line.split("\t")
        if len(f) != 11:
            raise RuntimeError("bad tool line: %r" % line)
        key = (f[1], f[2], f[3], f[4], f[5])
        seen[key]["sni"].add(f[7])
        seen[key]["ja3"].add(f[8])
        seen[key]["ja4"].add(f[9])
        seen[key]["ja3_full"].add(f[10])
    return seen


def note_field(note, name):
    for part in note.split(";"):
        if part.startswith(name + "="):
            return part[len(name) + 1:]
    return ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tool", required=True, help="path to the test_tls_real binary")
    ap.add_argument("--real-dir", required=True, help="directory holding the captures and ORACLE.tsv")
    ap.add_argument("--min-agreement", type=float, default=0.98)
    ap.add_argument("-v", "--verbose", action="store_true", help="also list the rows that agree")
    a = ap.parse_args()

    oracle_path = os.path.join(a.real_dir, "ORACLE.tsv")
    if not os.path.isfile(oracle_path):
        print("skipped: no real capture set at %s (ORACLE.tsv missing)" % a.real_dir)
        return 77

    oracle = load_oracle(oracle_path)
    tot = collections.Counter()
    problems = []
    unseen = []
    extra = []
    print("%-48s %6s %6s %6s   %s" % ("capture", "rows", "seen", "agree", "per kind agree/seen (sni ja3 ja4)"))
    for pcap in sorted(oracle):
        path = os.path.join(a.real_dir, pcap)
        if not os.path.isfile(path):
            print("%-48s missing" % pcap)
            continue
        tool = run_tool(a.tool, path)
        c = collections.Counter()
        for r in oracle[pcap]:
            kind = r["kind"]
            key = (r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], r["ip_proto"])
            c["rows"] += 1
            if key not in tool:
                unseen.append((pcap, kind, r))
                continue
            c["seen"] += 1
            c["seen_" + kind] += 1
            if r["value"] in tool[key][kind]:
                c["agree"] += 1
                c["agree_" + kind] += 1
                if a.verbose:
                    print("  agree %s %s %s" % (kind, " ".join(key), r["value"]))
            else:
                problems.append((pcap, kind, key, r, tool[key]))
        oracle_keys = {(r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"], r["ip_proto"]) for r in oracle[pcap]}
        extra.extend((pcap, key, tool[key]) for key in sorted(set(tool) - oracle_keys))
        tot.update(c)
        per_kind = " ".join("%d/%d" % (c["agree_" + k], c["seen_" + k]) for k in KINDS)
        print("%-48s %6d %6d %6d   %s" % (pcap, c["rows"], c["seen"], c["agree"], per_kind))

    print()
    if unseen:
        print("not seen by the tool (%d rows, not counted):" % len(unseen))
        for pcap, kind, r in unseen:
            print("  %s %s %s:%s > %s:%s/%s %s [%s]" % (pcap, kind, r["src_ip"], r["src_port"], r["dst_ip"],
                                                       r["dst_port"], r["ip_proto"], r["value"], r["note"][:80]))
        print()
    if extra:
        print("ClientHellos the oracle does not have (%d, not counted):" % len(extra))
        for pcap, key, t in extra:
            print("  %s %s ja3 %s ja4 %s" % (pcap, " ".join(key), ",".join(sorted(t["ja3"])), ",".join(sorted(t["ja4"]))))
        print()
    if problems:
        print("disagreements (%d rows):" % len(problems))
        for pcap, kind, key, r, t in problems:
            print("  %s %s %s" % (pcap, kind, " ".join(key)))
            print("    oracle: %s" % r["value"])
            print("    tool:   %s" % ", ".join(sorted(t[kind])))
            if kind == "ja3":
                print("    oracle ja3_full: %s" % note_field(r["note"], "ja3_full"))
                print("    tool ja3_full:   %s" % ", ".join(sorted(t["ja3_full"])))
            if kind == "ja4":
                print("    oracle ja4_r: %s" % note_field(r["note"], "ja4_r"))
        print()

    seen, agree = tot["seen"], tot["agree"]
    ratio = agree / seen if seen else 0.0
    per_kind = ", ".join("%s %d/%d" % (k, tot["agree_" + k], tot["seen_" + k]) for k in KINDS)
    print("total: %d oracle rows, %d seen by the tool, %d agree (%.2f%%; %s); %d not seen; %d extra" %
          (tot["rows"], seen, agree, 100.0 * ratio, per_kind, len(unseen), len(extra)))
    if seen == 0:
        print("FAIL: the tool saw none of the oracle's ClientHellos")
        return 1
    if ratio < a.min_agreement:
        print("FAIL: agreement %.2f%% below %.2f%%" % (100.0 * ratio, 100.0 * a.min_agreement))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
