#!/usr/bin/env python3
"""Prints Kagami alert events (JSON lines on stdin) as a table, one alert a line."""
import json
import sys


def main():
    rows = []
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        e = json.loads(line)
        if e.get("event_type") != "alert":
            continue
        ind = e["indicator"]
        src = f"{e['src_ip']}:{e['src_port']}" if "src_port" in e else e["src_ip"]
        dst = f"{e['dest_ip']}:{e['dest_port']}" if "dest_port" in e else e["dest_ip"]
        rows.append((e["timestamp"][:19].replace("T", " "), src, dst, e["proto"], ind["where"],
                     ind["type"], ind["seen"], e["alert"]["signature"]))
    if not rows:
        print("(no alerts)")
        return
    head = ("time (UTC)", "source", "destination", "proto", "where", "type", "seen", "signature")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head) - 1)]
    fmt = "  ".join("{:<%d}" % w for w in widths) + "  {}"
    print(fmt.format(*head))
    for r in rows:
        print(fmt.format(*r))
    print(f"\n{len(rows)} alerts")


if __name__ == "__main__":
    main()
