#!/usr/bin/env python3
"""
meta_oracle.py - run kagami with every metadata event on over the real
third-party captures and compare its dns/tls/http/quic/flow events with what
tshark saw (ORACLE.tsv).

Registered as ctest `test_meta_oracle` (label `real`) by tests/meta_oracle.cmake.
Standard library only; runs with any Python 3.8+.

What it does
  1. Runs kagami on every capture of the directory (two at a time, each with
     --workers 2, a file sink and events.dns/tls/http/quic/flow set to true;
     no indicator feed, so the output holds metadata events only). Every run
     must exit 0, leave no sanitizer report on its standard error and write
     only JSON objects, one per line, of a known event_type.
  2. Checks the events themselves: event_id present and unique across all
     runs (EVENTS.md: unique per event, also across runs); every flow-bound
     event carries an unsigned integer flow_id and a well-formed community_id
     ("1:" + 28 base64 characters); all events of one flow_id (within a run)
     share one community_id.
  3. For every ORACLE row of kind sni, dns_query, http_host, http_url, ja3 and
     cert_sha1, looks for an event of that capture on the row's 5-tuple, in
     either direction (addresses normalised with ipaddress, so that IPv6 text
     forms compare equal; for tunnelled rows the oracle gives the innermost
     5-tuple, which is also what kagami reports), holding the same value:

       sni        tls.sni or quic.sni
       dns_query  dns.rrname of a dns event whose dns.type matches the row's
                  msg=: "query" for msg=query, "answer" for msg=response
       http_host  http.hostname, plus ":" + http.http_port when the event has
                  one (tshark's http.host is the Host header as sent, port
                  included; kagami splits the port off)
       http_url   the path+query part of http.url (see below)
       ja3        tls.ja3.hash or quic.ja3.hash
       cert_sha1  tls.fingerprint without its colons; rows with sender=server
                  only (all 100 rows of this set are)

     Names compare exactly, case included: tshark and kagami both print the
     bytes as sent. A miss that would match ignoring case is flagged so.

  4. Community ID: for every community_id row (one per flow and distinct
     value) the expected value is the row's value; cid_own= instead when the
     row is noted cid_selfcheck=MISMATCH (tshark mixed tunnel layers there);
     for cid_by=own rows the value as given (tshark 4.0 has none, the oracle
     script hashed it). A row is found ("exact") when kagami wrote an event of
     any type whose community_id equals the expected value on
       - TCP/UDP/SCTP rows with ports: the same 5-tuple, either direction;
       - rows of any other protocol: the same address pair and protocol.

Fair-comparison rules (each one counted and listed apart, never silent)
  ICMP type pairings ("merged"). The oracle has one ICMP/ICMPv6 row per
    type/code pairing seen on an address pair (with no type/code column);
    kagami keys an ICMP flow by address pair and protocol and hashes it with
    the first packet's type/code, as Suricata does. A later pairing on the
    same pair (e.g. a neighbour solicitation in the other direction) is thus
    part of the earlier flow and never gets its own value. Such a row counts
    as found ("merged") only when kagami has events on the pair and *every*
    community_id kagami wrote there is the value of an oracle row of the same
    pair with an earlier first_frame: a wrong type/code mapping, direction or
    hash still misses.
  Fragment-only rows. tshark hashes an IP fragment it does not (or cannot)
    reassemble on its own, without the transport words (README: non-final
    IPv4 fragments; IPv6 fragments appear with protocol 44). A reassembling
    sensor (kagami, Suricata) reports the fragment within the reassembled
    datagram's flow, or in no flow when the datagram never completes, so no
    event can carry that value. A row is fragment-only when its first frame
    (read from the capture) is an IPv4 fragment (MF set or offset > 0) or has
    an IPv6 Fragment header, and its hash omits the transport words (TCP/UDP
    /SCTP without ports; ICMP whose value is the address-pair-only hash; any
    other protocol). Reported with "flow present" (kagami has a flow on the
    pair) or "no flow"; not counted. This and the next rule read the frame
    only for community_id rows kagami did not match; a matched row always
    counts.
  Malformed-packet rows. A row whose first frame has an IPv4 header length
    below 20 bytes, a truncated TCP/UDP header, or an IP version other than
    the one its link layer announces (an IPv4 EtherType carrying a version-6
    header, which tshark decodes as IPv6): kagami rejects the packet
    (counted as bad l3 / truncated), tshark hashes what it can read. Listed,
    not counted.
  Decrypt-only rows. cert_sha1 rows with proto=quic: QUIC carries the
    certificate in Handshake packets, encrypted with keys a passive observer
    cannot derive; tshark read it with the TLS secrets embedded in the pcapng
    (README). Listed, not counted.
  Escaped values. Rows whose value tshark did not print verbatim: its escaped
    form (U+FFFD for bytes that are not UTF-8, \\ooo / \\r for control bytes)
    or a placeholder ("<Unknown extended label>"). They cannot match by
    construction (kagami writes the bytes as sent), so, as in real_oracle.py,
    they are left out of the thresholds (108 dns_query rows of the iodine and
    fuzz captures); the rate including them is printed, and so is how many
    match once tshark's escaping is undone (a run of n U+FFFD as n to 3n
    bytes >= 0x80, \\ooo as the byte; kagami's DNS names write "\\" as
    "\\\\").
  encap rows. Rows with "encap=" in their note (VLAN, GRE, ERSPAN, VXLAN,
    GTP, MPLS, Teredo) are reported apart, for information, as in
    real_oracle.py.

http_url: the oracle value is tshark's http.request.uri (the request target
as sent); kagami's http.url is host + target normalised as URL indicators
are, so the part from the first "/" is compared; an oracle target starting
with "?" gets a leading "/", an absolute-form target ("http://host/path") is
reduced to its path, and a kagami url without "/" (CONNECT "host:443", "*")
is compared whole.

DNS: the strict pairing (query row <-> dns event of type query, response row
<-> type answer) was chosen over "any dns event with that rrname on the
flow", because the lenient form would let a parsed query hide an unparsed
response (or the reverse); the oracle has a row per message kind, so both
directions of the parser are held to it. Misses the lenient rule would have
found are flagged "(lenient: found)".

Pass/fail, over the counted rows (non-encap, verbatim, not fragment-only,
malformed or decrypt-only): sni, dns_query, http_host and http_url >= 99 %,
ja3 and cert_sha1 >= 98 %, community_id 100 % (exact + merged); plus every
run and event check of steps 1-2. Exit codes: 0 pass, 1 fail, 77 skip (the
capture set is absent).
"""

import argparse
import base64
import collections
import concurrent.futures
import hashlib
import ipaddress
import json
import os
import re
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_common import (ORACLE_COLUMNS, PROTO_NUMBERS, SANITIZER_MARKERS, Run,  # noqa: E402
                           add_common_args, is_escaped, norm_ip, rate)

VALUE_KINDS = ("sni", "dns_query", "http_host", "http_url", "ja3", "cert_sha1")
NAME_KINDS = ("sni", "dns_query", "http_host", "http_url")
ALL_KINDS = VALUE_KINDS + ("community_id",)
THRESHOLDS = {"sni": 99.0, "dns_query": 99.0, "http_host": 99.0, "http_url": 99.0,
              "ja3": 98.0, "cert_sha1": 98.0, "community_id": 100.0}
PORT_PROTOS = (6, 17, 132)
ICMP_PROTOS = (1, 58)
EVENT_TYPES = ("dns", "tls", "http", "quic", "flow", "alert", "stats")
EVENT_SETTINGS = ("events.dns=true", "events.tls=true", "events.http=true",
                  "events.quic=true", "events.flow=true")
CID_RE = re.compile(r"^1:[A-Za-z0-9+/]{27}=$")

# Row states. FOUND and MERGED count as found; the excluded ones are not counted.
FOUND, MERGED, MISS = "found", "merged", "miss"
EXCLUDED = ("encap", "escaped", "fragment-only", "malformed", "decrypt-only")




def norm_port(p):
    if isinstance(p, bool):
        return None
    try:
        return int(p)
    except (TypeError, ValueError):
        return None


def norm_proto(p):
    if isinstance(p, int) and not isinstance(p, bool):
        return p
    if isinstance(p, str):
        if p.isdigit():
            return int(p)
        return PROTO_NUMBERS.get(p.upper())
    return None



def unescaped_pattern(value):
    """A regex for what kagami writes where tshark printed `value` escaped,
    or None for a placeholder (nothing to match)."""
    if value.startswith("<") and value.endswith(">"):
        return None
    out, i = [], 0
    simple = {"r": "\r", "n": "\n", "t": "\t", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}
    while i < len(value):
        c = value[i]
        if c == "\ufffd":
            # One group per run, so that a failing match cannot backtrack
            # through every split of the run (iodine names have dozens).
            n = len(value[i:]) - len(value[i:].lstrip("\ufffd"))
            out.append("[\u0080-\u00ff]{%d,%d}" % (n, 3 * n))
            i += n
            continue
        elif c == "\\":
            m = re.match(r"\\([0-7]{3})", value[i:])
            if m:
                out.append(re.escape(chr(int(m.group(1), 8))))
                i += 4
                continue
            if i + 1 < len(value) and value[i + 1] in simple and not value[i + 1].isdigit():
                out.append(re.escape(simple[value[i + 1]]))
                i += 2
                continue
            out.append(r"\\\\?")   # a literal backslash; kagami's DNS form doubles it
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.DOTALL)


def printable(value, limit=None):
    """ASCII with \\x / \\u escapes (control characters included), so that a
    miss list never breaks the terminal or the ctest log."""
    s = "".join(("\\x%02x" % ord(c)) if (ord(c) < 0x20 or ord(c) == 0x7f) else c for c in str(value))
    s = s.encode("ascii", "backslashreplace").decode("ascii")
    if limit and len(s) > limit:
        s = s[:limit] + "..."
    return s


def note_field(note, name):
    for part in note.split(";"):
        if part.startswith(name + "="):
            return part[len(name) + 1:]
    return None


def pair_key(a_ip, b_ip, proto):
    return (tuple(sorted((a_ip, b_ip))), proto)


def tuple_key(a_ip, a_port, b_ip, b_port, proto):
    ends = sorted([(a_ip, -1 if a_port is None else a_port), (b_ip, -1 if b_port is None else b_port)])
    return (tuple(ends), proto)


def portless_cid(a_ip, b_ip, proto, seed=0):
    """Community ID v1 of an address pair and protocol without the port
    words (what the specification's implementations give a fragment)."""
    a = ipaddress.ip_address(a_ip).packed
    b = ipaddress.ip_address(b_ip).packed
    if b < a:
        a, b = b, a
    h = hashlib.sha1(struct.pack("!H", seed) + a + b + bytes([proto, 0])).digest()
    return "1:" + base64.b64encode(h).decode("ascii")


def url_path(url):
    """The request-target part of kagami's http.url (host + target)."""
    i = url.find("/")
    return url[i:] if i >= 0 else url


def oracle_uri_path(uri):
    """tshark's http.request.uri brought to the form kagami's url has after
    its host: absolute form reduced to its path, "?q" to "/?q"."""
    low = uri.lower()
    for scheme in ("http://", "https://"):
        if low.startswith(scheme):
            rest = uri[len(scheme):]
            i = rest.find("/")
            j = rest.find("?")
            if i < 0 or (0 <= j < i):
                return "/" + rest[j:] if j >= 0 else "/"
            return rest[i:]
    if uri.startswith("?"):
        return "/" + uri
    return uri or "/"


# ---- Reading one frame of a capture (to classify fragments/malformed) ------

def read_frames(path):
    """Yields (linktype, bytes) for every packet record of a pcap or pcapng
    file, in order (tshark's frame numbers are 1-based indexes of these)."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        link = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
        off = 24
        while off + 16 <= len(data):
            incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
            yield link, data[off + 16:off + 16 + incl]
            off += 16 + incl
        return
    if magic != b"\x0a\x0d\x0d\x0a":
        return
    off, e, links = 0, "<", []
    while off + 12 <= len(data):
        btype = struct.unpack(e + "I", data[off:off + 4])[0]
        if data[off:off + 4] == b"\x0a\x0d\x0d\x0a":
            e = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            btype, links = 0x0A0D0D0A, []
        blen = struct.unpack(e + "I", data[off + 4:off + 8])[0]
        if blen < 12 or off + blen > len(data):
            return
        body = data[off + 8:off + blen - 4]
        if btype == 1:
            links.append(struct.unpack(e + "H", body[:2])[0])
        elif btype == 6:
            iface, _, _, cap = struct.unpack(e + "IIII", body[:16])
            yield (links[iface] if iface < len(links) else 1), body[20:20 + cap]
        elif btype == 3:
            orig = struct.unpack(e + "I", body[:4])[0]
            yield (links[0] if links else 1), body[4:4 + min(orig, len(body) - 4)]
        elif btype == 2:
            iface = struct.unpack(e + "H", body[:2])[0]
            cap = struct.unpack(e + "I", body[12:16])[0]
            yield (links[iface] if iface < len(links) else 1), body[20:20 + cap]
        off += blen


def link_payload(link, b):
    """(network-layer bytes, IP version the link layer announces or None),
    or (None, None) for a frame that does not carry IP."""
    if link == 1:   # Ethernet, with any number of VLAN tags
        off, et = 12, None
        while off + 2 <= len(b):
            et = struct.unpack("!H", b[off:off + 2])[0]
            if et in (0x8100, 0x88A8, 0x9100):
                off += 4
                continue
            break
        if et == 0x8847:   # MPLS: skip to the bottom of the stack
            off += 2
            while off + 4 <= len(b) and not (b[off + 2] & 1):
                off += 4
            return b[off + 4:], None
        if et in (0x0800, 0x86DD):
            return b[off + 2:], 4 if et == 0x0800 else 6
        return None, None
    if link in (101, 12, 14):
        return b, None
    if link in (228, 229):
        return b, 4 if link == 228 else 6
    if link in (113, 276):   # Linux SLL, SLL2: protocol type at 14 / 0
        off, et = (16, b[14:16]) if link == 113 else (20, b[0:2])
        v = {b"\x08\x00": 4, b"\x86\xdd": 6}.get(bytes(et))
        return b[off:], v
    if link in (0, 108, 104):   # BSD loopback, Cisco HDLC
        return b[4:], None
    return None, None


def classify_ip(b, depth=0):
    """("fragment"|"malformed"|None, detail) for the IP packet b, following
    IP-in-IP (4, 41) so that the innermost header counts too."""
    if not b or depth > 4:
        return None, ""
    ver = b[0] >> 4
    if ver == 4:
        if len(b) < 20:
            return "malformed", "IPv4 header truncated"
        ihl = (b[0] & 15) * 4
        if ihl < 20:
            return "malformed", "IPv4 header length %d < 20" % ihl
        tot = struct.unpack("!H", b[2:4])[0]
        fo = struct.unpack("!H", b[6:8])[0]
        if fo & 0x2000 or fo & 0x1FFF:
            return "fragment", "IPv4 fragment (MF %d, offset %d)" % (bool(fo & 0x2000), (fo & 0x1FFF) * 8)
        proto, pl = b[9], b[ihl:min(tot, len(b)) if tot >= ihl else len(b)]
    elif ver == 6:
        if len(b) < 40:
            return "malformed", "IPv6 header truncated"
        proto, off = b[6], 40
        while proto in (0, 43, 60, 44) and off + 8 <= len(b):
            if proto == 44:
                fo = struct.unpack("!H", b[off + 2:off + 4])[0]
                if fo & 1 or fo >> 3:
                    return "fragment", "IPv6 fragment (M %d, offset %d)" % (fo & 1, (fo >> 3) * 8)
                proto, off = b[off], off + 8
                continue
            proto, off = b[off], off + (b[off + 1] + 1) * 8
        pl = b[off:]
    else:
        return "malformed", "IP version %d" % ver
    if proto in (4, 41):
        return classify_ip(pl, depth + 1)
    if proto == 6 and (len(pl) < 20 or (pl[12] >> 4) < 5):
        return "malformed", "TCP header truncated (%d bytes)" % len(pl)
    if proto == 17 and len(pl) < 8:
        return "malformed", "UDP header truncated (%d bytes)" % len(pl)
    return None, ""


class FrameCache:
    def __init__(self, real_dir):
        self.real_dir = real_dir
        self.frames = {}

    def classify(self, pcap, frame_no):
        if pcap not in self.frames:
            try:
                self.frames[pcap] = list(read_frames(os.path.join(self.real_dir, pcap)))
            except OSError:
                self.frames[pcap] = []
        fr = self.frames[pcap]
        if not 1 <= frame_no <= len(fr):
            return None, ""
        link, b = fr[frame_no - 1]
        ip, version = link_payload(link, b)
        if ip and version and ip[0] >> 4 != version:
            return "malformed", "IP version %d in a frame whose link layer says IPv%d" % (ip[0] >> 4, version)
        return classify_ip(ip)


# ---- Oracle rows ------------------------------------------------------------

class Row:
    __slots__ = ("pcap", "kind", "value", "src_ip", "src_port", "dst_ip", "dst_port", "proto",
                 "first_frame", "note", "encap", "escaped", "expected", "state", "excluded",
                 "flags", "diag")

    def __init__(self, f):
        self.pcap = f["pcap"]
        self.kind = f["kind"]
        self.value = f["value"]
        self.src_ip = norm_ip(f["src_ip"])
        self.src_port = norm_port(f["src_port"])
        self.dst_ip = norm_ip(f["dst_ip"])
        self.dst_port = norm_port(f["dst_port"])
        self.proto = norm_proto(f["ip_proto"])
        self.first_frame = norm_port(f["first_frame"]) or 0
        self.note = f["note"]
        self.encap = "encap=" in self.note
        self.escaped = self.kind in NAME_KINDS and is_escaped(self.value)
        self.expected = self.value
        if self.kind == "community_id" and "cid_selfcheck=MISMATCH" in self.note:
            self.expected = note_field(self.note, "cid_own") or self.value
        self.state = MISS
        self.excluded = None     # one of EXCLUDED, or None when the row counts
        self.flags = []
        self.diag = ""

    def found(self):
        return self.state in (FOUND, MERGED)

    def tuple_str(self):
        if self.src_port is None and self.dst_port is None:
            return "%s -> %s proto %s" % (self.src_ip, self.dst_ip, self.proto)
        return "%s:%s -> %s:%s proto %s" % (self.src_ip, self.src_port, self.dst_ip,
                                             self.dst_port, self.proto)


def load_oracle(path):
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
            if f["kind"] not in ALL_KINDS:
                continue
            if f["kind"] == "cert_sha1" and note_field(f["note"], "sender") != "server":
                continue
            rows.append(Row(f))
    return rows


# ---- Running kagami -----------------------------------------------------------

class RunResult:
    def __init__(self, pcap):
        self.pcap = pcap
        self.errors = []     # reasons this run fails the test
        self.events = []     # parsed, well-formed flow-bound events
        self.ids = []        # every event_id written
        self.types = collections.Counter()
        self.seconds = 0.0


def check_event(obj, lineno, errors):
    """Shape checks of one event; appends to errors, returns True when the
    event is a usable flow-bound event."""
    et = obj.get("event_type")
    if et not in EVENT_TYPES:
        errors.append("line %d: unknown event_type %r" % (lineno, et))
        return False
    eid = obj.get("event_id")
    if not isinstance(eid, str) or not eid:
        errors.append("line %d: %s event without an event_id" % (lineno, et))
    if et == "stats":
        return False
    ok = True
    fid = obj.get("flow_id")
    if not isinstance(fid, int) or isinstance(fid, bool) or fid < 0:
        errors.append("line %d: %s event without an unsigned integer flow_id (%r)" % (lineno, et, fid))
        ok = False
    cid = obj.get("community_id")
    if not isinstance(cid, str) or not CID_RE.match(cid):
        errors.append("line %d: %s event with a missing or malformed community_id (%r)" % (lineno, et, cid))
    for k in ("src_ip", "dest_ip", "proto"):
        if not isinstance(obj.get(k), str):
            errors.append("line %d: %s event without %s" % (lineno, et, k))
            ok = False
    if et != "alert" and not isinstance(obj.get(et), dict):
        errors.append("line %d: %s event without its %r object" % (lineno, et, et))
        ok = False
    return ok


def run_capture(kagami, pcap_path, outdir, workers, timeout):
    name = os.path.basename(pcap_path)
    res = RunResult(name)
    out = os.path.join(outdir, name + ".events.json")
    cmd = [kagami, "-r", pcap_path, "-o", "file:" + out, "--workers", str(workers)]
    for s in EVENT_SETTINGS:
        cmd += ["--set", s]
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
        res.errors.append(("killed by signal %d" % -rc) if rc < 0 else ("exit code %d" % rc))
    for marker in SANITIZER_MARKERS:
        if marker in err_text:
            res.errors.append("sanitizer report on stderr (%r)" % marker)
            break
    if res.errors:
        res.errors.append("command: " + " ".join(cmd))
        res.errors.extend("stderr: " + l for l in err_text.strip().splitlines()[-15:])
        if rc is None:
            return res
    try:
        with open(out, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        data = b""
    if data and not data.endswith(b"\n"):
        res.errors.append("output does not end with a newline (truncated last line?)")
    shape_errors = []
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
        res.types[obj.get("event_type")] += 1
        if isinstance(obj.get("event_id"), str):
            res.ids.append(obj["event_id"])
        if check_event(obj, lineno, shape_errors):
            res.events.append(obj)
    if shape_errors:
        res.errors.append("%d event shape error(s), first ones:" % len(shape_errors))
        res.errors.extend("  " + e for e in shape_errors[:10])
    by_flow = collections.defaultdict(set)
    for ev in res.events:
        by_flow[ev["flow_id"]].add(ev.get("community_id"))
    split = [(f, c) for f, c in by_flow.items() if len(c) > 1]
    if split:
        res.errors.append("%d flow_id(s) with more than one community_id, e.g. %r: %r"
                          % (len(split), split[0][0], sorted(map(str, split[0][1]))))
    return res


# ---- Matching -------------------------------------------------------------------

class Index:
    """What kagami reported for one capture, by 5-tuple and by address pair."""

    def __init__(self, events):
        self.by_tuple = collections.defaultdict(list)
        self.by_pair = collections.defaultdict(list)
        self.by_addrs = collections.defaultdict(list)   # address pair, any protocol
        for ev in events:
            a_ip, b_ip = norm_ip(ev["src_ip"]), norm_ip(ev["dest_ip"])
            proto = norm_proto(ev["proto"])
            a_port, b_port = norm_port(ev.get("src_port")), norm_port(ev.get("dest_port"))
            self.by_tuple[tuple_key(a_ip, a_port, b_ip, b_port, proto)].append(ev)
            self.by_pair[pair_key(a_ip, b_ip, proto)].append(ev)
            self.by_addrs[tuple(sorted((a_ip, b_ip)))].append(ev)

    def flow_events(self, row):
        return self.by_tuple.get(tuple_key(row.src_ip, row.src_port, row.dst_ip, row.dst_port,
                                           row.proto), [])

    def pair_events(self, row):
        return self.by_pair.get(pair_key(row.src_ip, row.dst_ip, row.proto), [])


def sub(obj, *path):
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


def values_of(kind, ev):
    """The values of one kind an event holds, as (value, qualifier) pairs;
    the qualifier is the dns.type for dns_query and None otherwise."""
    et = ev.get("event_type")
    v, q = None, None
    if kind == "sni" and et in ("tls", "quic"):
        v = sub(ev, et, "sni")
    elif kind == "ja3" and et in ("tls", "quic"):
        v = sub(ev, et, "ja3", "hash")
    elif kind == "cert_sha1" and et == "tls":
        fp = sub(ev, "tls", "fingerprint")
        v = fp.replace(":", "").lower() if isinstance(fp, str) else None
    elif kind == "dns_query" and et == "dns":
        v, q = sub(ev, "dns", "rrname"), sub(ev, "dns", "type")
    elif kind == "http_host" and et == "http":
        v = sub(ev, "http", "hostname")
        port = sub(ev, "http", "http_port")
        if isinstance(v, str) and isinstance(port, int) and not isinstance(port, bool):
            v = "%s:%d" % (v, port)
    elif kind == "http_url" and et == "http":
        url = sub(ev, "http", "url")
        v = url_path(url) if isinstance(url, str) else None
    return [(v, q)] if isinstance(v, str) else []


def list_values(vals, n=4, width=70):
    vals = sorted(vals)
    s = ", ".join(printable(v, width) for v in vals[:n])
    return s + (" (+%d more)" % (len(vals) - n) if len(vals) > n else "")


def match_value_row(row, idx, same_flow_rows):
    evs = idx.flow_events(row)
    if not evs:
        row.diag = "no kagami event on this 5-tuple"
        return
    types = collections.Counter(ev.get("event_type") for ev in evs)
    tdesc = "[kagami events: %s]" % ", ".join("%s x%d" % (t, n) for t, n in sorted(types.items()))
    pattern = unescaped_pattern(row.value) if row.escaped else None
    if row.kind == "dns_query":
        want_type = "answer" if note_field(row.note, "msg") == "response" else "query"
        vals = [(v, q) for ev in evs for v, q in values_of(row.kind, ev)]
        if any(v == row.value and q == want_type for v, q in vals):
            row.state = FOUND
            return
        if any(v == row.value for v, _ in vals):
            row.flags.append("(lenient: found)")
        if pattern and any(pattern.match(v) and q == want_type for v, q in vals):
            row.flags.append("(matches unescaped)")
        seen = {"%s:%s" % (q, v) for v, q in vals}
        row.diag = "wanted dns type %s; kagami: %s %s" % (
            want_type, list_values(seen) if seen else "no dns event", tdesc)
        return
    want = row.value
    if row.kind == "http_url":
        want = oracle_uri_path(row.value)
    elif row.kind in ("ja3", "cert_sha1"):
        want = row.value.lower()
    vals = {v for ev in evs for v, _ in values_of(row.kind, ev)}
    if want in vals:
        row.state = FOUND
        return
    if pattern and any(pattern.match(v) for v in vals):
        row.flags.append("(matches unescaped)")
    if not vals:
        row.diag = "no %s value on this flow %s" % (row.kind, tdesc)
        return
    if any(v.lower() == want.lower() for v in vals):
        row.flags.append("(differs only in case)")
    other = sorted({r.first_frame for r in same_flow_rows if r is not row and r.value.lower() in vals})
    row.diag = "kagami: %s %s" % (list_values(vals), tdesc)
    if other:
        row.diag += "; kagami's value is the oracle's for frame %s of this flow (this row: frame %d)" % (
            ",".join(map(str, other)), row.first_frame)
    if row.kind == "ja3":
        row.diag += "; oracle ja3_full=%s" % printable(note_field(row.note, "ja3_full") or "", 160)


def cid_is_portless(row):
    """True when the row's hash omits the transport words."""
    if row.proto in PORT_PROTOS:
        return row.src_port is None
    if row.proto in ICMP_PROTOS:
        try:
            return portless_cid(row.src_ip, row.dst_ip, row.proto) == row.expected
        except ValueError:
            return False
    return True


def match_cid_row(row, idx, pair_rows):
    if row.proto in PORT_PROTOS and row.src_port is not None:
        evs, where = idx.flow_events(row), "5-tuple"
    else:
        evs, where = idx.pair_events(row), "address pair and protocol"
    cids = {ev.get("community_id") for ev in evs}
    if row.expected in cids:
        row.state = FOUND
        return
    if row.proto in ICMP_PROTOS and evs:
        earlier = {r.expected for r in pair_rows if r.first_frame < row.first_frame}
        if cids <= earlier:
            row.state = MERGED
            row.diag = "kagami's flow on this pair carries the earlier pairing's %s" % ", ".join(sorted(cids))
            return
    if evs:
        row.diag = "kagami on this %s: %s" % (where, ", ".join(sorted(map(str, cids))))
    else:
        others = idx.by_addrs.get(tuple(sorted((row.src_ip, row.dst_ip))), [])
        protos = sorted({str(ev.get("proto")) for ev in others})
        row.diag = "no kagami event on this %s%s" % (
            where, (" (kagami has the address pair with proto %s)" % ", ".join(protos)) if protos else "")


def classify_excluded(row, frames):
    """Sets row.excluded for rows that cannot count (see the docstring)."""
    if row.encap:
        row.excluded = "encap"
    elif row.escaped:
        row.excluded = "escaped"
    elif row.kind == "cert_sha1" and note_field(row.note, "proto") == "quic":
        row.excluded = "decrypt-only"
    elif row.kind == "community_id" and not row.found():
        cls, detail = frames.classify(row.pcap, row.first_frame)
        if cls == "fragment" and cid_is_portless(row):
            row.excluded = "fragment-only"
        elif cls == "malformed":
            row.excluded = "malformed"
        if cls:
            row.flags.append("[frame %d: %s]" % (row.first_frame, detail))
    elif not row.found():
        cls, detail = frames.classify(row.pcap, row.first_frame)
        if cls:
            row.flags.append("[frame %d: %s]" % (row.first_frame, detail))



def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    add_common_args(ap)
    args = ap.parse_args()

    run = Run(args, "kg-meta-")
    if run.rc is not None:
        return run.rc
    # `run` keeps the temporary work directory alive until main() returns.
    real_dir, oracle_path, captures, workdir = run.real_dir, run.oracle_path, run.captures, run.workdir
    rows = load_oracle(oracle_path)
    print("oracle: %d rows (%s) from %s" % (len(rows), ", ".join(ALL_KINDS), oracle_path))
    print("running kagami on %d captures (%d at a time, --workers %d, --set %s)"
          % (len(captures), args.jobs, args.workers, " --set ".join(EVENT_SETTINGS)))

    t0 = time.monotonic()
    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {pool.submit(run_capture, args.kagami, os.path.join(real_dir, c), workdir,
                            args.workers, args.timeout): c for c in captures}
        for fut in concurrent.futures.as_completed(futs):
            results[futs[fut]] = fut.result()
    elapsed = time.monotonic() - t0

    failed = False
    print("\n== runs (%.1f s in all) ==" % elapsed)
    for c in captures:
        r = results[c]
        types = " ".join("%s=%d" % (t, r.types[t]) for t in EVENT_TYPES if r.types[t])
        print("%-52s %-6s %6.2f s  %s" % (c, "ok" if not r.errors else "FAILED", r.seconds, types))
        for e in r.errors:
            print("    " + printable(e, 300))
        failed = failed or bool(r.errors)

    ids = collections.Counter(i for r in results.values() for i in r.ids)
    dup = [i for i, n in ids.items() if n > 1]
    print("\n%d events in all, %d distinct event_id(s)" % (sum(ids.values()), len(ids)))
    if dup:
        print("FAIL: %d event_id(s) used more than once (across all runs), e.g. %r" % (len(dup), dup[0]))
        failed = True

    # Match.
    indexes = {c: Index(r.events) for c, r in results.items()}
    empty = Index([])
    frames = FrameCache(real_dir)
    by_flow = collections.defaultdict(list)
    by_pair = collections.defaultdict(list)
    for r in rows:
        by_flow[(r.pcap, r.kind, tuple_key(r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.proto))].append(r)
        if r.kind == "community_id":
            by_pair[(r.pcap, pair_key(r.src_ip, r.dst_ip, r.proto))].append(r)
    for row in rows:
        idx = indexes.get(row.pcap, empty)
        if row.kind == "community_id":
            # Earlier ICMP pairings of the pair, fragment hashes left out.
            pair_rows = [r for r in by_pair[(row.pcap, pair_key(row.src_ip, row.dst_ip, row.proto))]
                         if not (r.proto in ICMP_PROTOS and cid_is_portless(r))]
            match_cid_row(row, idx, pair_rows)
        else:
            match_value_row(row, idx, by_flow[(row.pcap, row.kind, tuple_key(
                row.src_ip, row.src_port, row.dst_ip, row.dst_port, row.proto))])
        classify_excluded(row, frames)

    counted = [r for r in rows if r.excluded is None]

    print("\n== per capture: found/rows over counted rows (community_id: exact+merged) ==")
    print("%-52s %s" % ("capture", " ".join("%11s" % k[:11] for k in ALL_KINDS)))
    per = collections.defaultdict(lambda: [0, 0])
    for r in counted:
        per[(r.pcap, r.kind)][1] += 1
        per[(r.pcap, r.kind)][0] += int(r.found())
    for c in sorted({r.pcap for r in rows}):
        if not any((c, k) in per for k in ALL_KINDS):
            continue
        cells = ["%11s" % ("%d/%d" % tuple(per[(c, k)]) if (c, k) in per else "-") for k in ALL_KINDS]
        print("%-52s %s" % (c, " ".join(cells)))

    print("\n== per kind ==")
    print("%-13s %10s %8s %6s  %s" % ("kind", "found/rows", "rate", "min", "not counted: found/rows per reason"))
    below = []
    for k in ALL_KINDS:
        ks = [r for r in rows if r.kind == k]
        cs = [r for r in ks if r.excluded is None]
        f = sum(r.found() for r in cs)
        merged = sum(r.state == MERGED for r in cs)
        rt = rate(f, len(cs))
        if rt < THRESHOLDS[k]:
            below.append((k, rt, THRESHOLDS[k]))
        ex = []
        for reason in EXCLUDED:
            xs = [r for r in ks if r.excluded == reason]
            if xs:
                ex.append("%s %d/%d" % (reason, sum(r.found() for r in xs), len(xs)))
        print("%-13s %10s %7.2f%% %5.0f%%  %s%s" % (k, "%d/%d" % (f, len(cs)), rt, THRESHOLDS[k],
                                                 "; ".join(ex) or "-",
                                                 ("  (found includes %d merged)" % merged) if merged else ""))
        esc = [r for r in ks if r.excluded == "escaped"]
        if esc:
            ef = sum(r.found() for r in esc)
            eu = sum(1 for r in esc if not r.found() and "(matches unescaped)" in r.flags)
            print("%-13s   with the escaped rows: %d/%d, %.2f%%; escaped rows matching once tshark's "
                  "escaping is undone: %d/%d" % ("", f + ef, len(cs) + len(esc),
                                                 rate(f + ef, len(cs) + len(esc)), eu + ef, len(esc)))

    def miss_line(tag, r):
        val = r.value if r.expected == r.value else "%s (expected %s)" % (r.value, r.expected)
        return "%s %s %s %s  [%s] %s%s" % (tag, r.pcap, r.kind, printable(val, 100), r.tuple_str(),
                                          " ".join(r.flags) + (" " if r.flags else ""), printable(r.diag, 600))

    misses = [r for r in counted if not r.found()]
    print("\n== misses over counted rows (%d) ==" % len(misses))
    for r in sorted(misses, key=lambda x: (ALL_KINDS.index(x.kind), x.pcap, x.first_frame)):
        print(miss_line("MISS", r))
    merged = [r for r in counted if r.state == MERGED]
    if merged:
        print("\n== community_id rows found as merged ICMP pairings (%d) ==" % len(merged))
        for r in sorted(merged, key=lambda x: (x.pcap, x.first_frame)):
            print(miss_line("MERGED", r))
    for reason in EXCLUDED:
        xs = [r for r in rows if r.excluded == reason and not r.found()]
        if not xs:
            continue
        print("\n== not counted, %s: %d row(s) not found ==" % (reason, len(xs)))
        if reason == "escaped":
            eu = sum(1 for r in xs if "(matches unescaped)" in r.flags)
            bykind = collections.Counter((r.pcap, r.kind) for r in xs)
            print("(%d of them match kagami's value once tshark's escaping is undone, listed first "
                  "without detail; per capture: %s)"
                  % (eu, ", ".join("%s %s %d" % (p, k, n) for (p, k), n in sorted(bykind.items()))))
            for r in sorted(xs, key=lambda x: (x.pcap, x.first_frame)):
                if "(matches unescaped)" in r.flags:
                    print("NOTCOUNTED(escaped) %s %s %s  [%s] (matches unescaped)"
                          % (r.pcap, r.kind, printable(r.value, 80), r.tuple_str()))
            xs = [r for r in xs if "(matches unescaped)" not in r.flags]
        for r in sorted(xs, key=lambda x: (x.pcap, ALL_KINDS.index(x.kind), x.first_frame)):
            tag = "NOTCOUNTED(%s)" % reason
            if reason == "fragment-only":
                has_flow = bool(indexes.get(r.pcap, empty).by_addrs.get(tuple(sorted((r.src_ip, r.dst_ip)))))
                tag += " flow present" if has_flow else " no flow"
            line = miss_line(tag, r)
            if reason == "encap":
                line += "  %s" % (note_field(r.note, "encap") or "")
            print(line)

    unknown = sorted({r.pcap for r in rows} - set(captures))
    if unknown:
        print("\noracle rows for captures not in the directory (counted as misses): %s" % ", ".join(unknown))

    print("\n== summary ==")
    for k in ALL_KINDS:
        cs = [r for r in rows if r.kind == k and r.excluded is None]
        f = sum(r.found() for r in cs)
        print("%-13s %4d/%4d %7.2f%% (minimum %.0f%%)" % (k, f, len(cs), rate(f, len(cs)), THRESHOLDS[k]))
    for k, rt, thr in below:
        print("FAIL: %s agreement %.2f%% is below %.0f%%" % (k, rt, thr))
        failed = True
    if failed:
        print("FAIL")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
