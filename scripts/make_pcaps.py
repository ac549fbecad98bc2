#!/usr/bin/python3
"""
scripts/make_pcaps.py — builds the project's captures, the end-to-end test
cases that use them, and the demo data.

Run from anywhere with Debian's Python (it needs scapy):

    /usr/bin/python3 scripts/make_pcaps.py            # write everything
    /usr/bin/python3 scripts/make_pcaps.py --check    # verify the committed files are current

It writes, relative to the repository root:
    pcaps/<case>.pcap, pcaps/demo.pcap
    tests/cases/<case>/{case.json, indicators.intel, expected.jsonl}
    tests/cases/<case>/expected_events.jsonl (cases that turn metadata events on)
    config/indicators/demo.intel

Everything is deterministic: fixed timestamps, fixed seeds, no clock, no
host lookups (scapy is given every MAC and address), a hand-written pcap
writer. Rerunning the script reproduces byte-identical files.

The expected alerts are the oracle: they are not copied from the sensor's
output but computed here, from what this script put in the packets, by a
small reference implementation of the matching rules (see Oracle below:
conn.src_ip/dest_ip, dns.query, dns.answer, conn.resolved, tls.sni/ja3/ja4/
cert_sha1, http.host/url). Each case also states how many alerts it must
produce, which guards the oracle itself. The same holds for the metadata
events of the cases that turn them on (expected_events.jsonl: dns, http,
tls, quic, flow, reduced to a projection), including the JA4 fingerprints
(FoxIO specification) and Community IDs (v1 specification), which are
computed here from the fields the script chose, not parsed back.

Scapy builds the IP/TCP/UDP/ICMP layers (and their checksums); Ethernet,
VLAN tags, DNS, HTTP and TLS payloads are built by hand so that every byte
is under control (odd label bytes, split messages, GREASE values...).
"""

import argparse
import base64
import codecs
import hashlib
import ipaddress
import json
import os
import random
import struct
import sys

import logging

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.layers.inet import ICMP, IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrHopByHop,
    RouterAlert,
)
from scapy.packet import Raw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 2023-11-14T22:13:20Z: every capture starts at this instant plus a per-case offset.
T0_US = 1700000000 * 1000000

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
TPID_8021Q = 0x8100
TPID_8021AD = 0x88A8

# ---------------------------------------------------------------------------
# pcap writer (classic libpcap format, microsecond timestamps, DLT_EN10MB)
# ---------------------------------------------------------------------------


class Pcap:
    """Frames with explicit timestamps. Time only moves forward, by `gap`
    microseconds per frame (drawn from a seeded generator when not given)."""

    def __init__(self, start_us, seed):
        self.t = start_us
        self.rng = random.Random(seed)
        self.records = []

    def add(self, frame, gap_us=None, orig_len=None):
        if gap_us is None:
            gap_us = self.rng.randint(200, 3000)
        self.t += gap_us
        self.records.append((self.t, bytes(frame), len(frame) if orig_len is None else orig_len))

    def to_bytes(self):
        out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
        for ts, data, orig in self.records:
            out.append(struct.pack("<IIII", ts // 1000000, ts % 1000000, len(data), orig))
            out.append(data)
        return b"".join(out)


def mac_for(ip):
    """A stable, locally administered MAC for an address."""
    return b"\x02" + hashlib.md5(ip.encode()).digest()[:5]


def ether(src_mac, dst_mac, ethertype, payload, vlans=()):
    """Ethernet II frame. vlans: (tpid, tci) pairs, outermost first."""
    types = [tpid for tpid, _ in vlans] + [ethertype]
    hdr = dst_mac + src_mac + struct.pack("!H", types[0])
    for i, (_, tci) in enumerate(vlans):
        hdr += struct.pack("!HH", tci, types[i + 1])
    return hdr + payload


def family(ip):
    return 6 if ":" in ip else 4


def addr_str(ip):
    """Canonical text form, as inet_ntop writes it (RFC 5952 for IPv6)."""
    return str(ipaddress.ip_address(ip))


# ---------------------------------------------------------------------------
# Community ID v1 (https://github.com/corelight/community-id-spec), written
# from the specification: "1:" + base64(SHA1(seed . saddr . daddr . proto .
# 0 . sport . dport)), endpoints ordered so that the smaller (address, port)
# comes first; ICMP/ICMPv6 use the type as sport and the code, or for
# request/reply types the counterpart's type, as dport.
# ---------------------------------------------------------------------------

PROTO_NUM = {"ICMP": 1, "TCP": 6, "UDP": 17, "IPv6-ICMP": 58}
ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
ICMP6_PAIRS = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130, 139: 140,
               140: 139, 144: 145, 145: 144}


def community_id(proto, saddr, daddr, sport=0, dport=0, seed=0):
    """proto: a PROTO_NUM key; for ICMP sport/dport are the type and code."""
    num = PROTO_NUM[proto]
    sa, da = ipaddress.ip_address(saddr).packed, ipaddress.ip_address(daddr).packed
    one_way = False
    if num in (1, 58):
        pairs = ICMP4_PAIRS if num == 1 else ICMP6_PAIRS
        if sport in pairs:
            dport = pairs[sport]
        else:
            one_way = True
    if not one_way and (sa > da or (sa == da and sport > dport)):
        sa, da, sport, dport = da, sa, dport, sport
    data = struct.pack("!H", seed) + sa + da + struct.pack("!BB", num, 0) + struct.pack("!HH", sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()


assert community_id("TCP", "128.232.110.120", "66.35.250.204", 34855, 80) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
assert community_id("TCP", "66.35.250.204", "128.232.110.120", 80, 34855) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
assert community_id("UDP", "192.168.1.52", "8.8.8.8", 54585, 53) == "1:d/FP5EW3wiY1vCndhwleRRKHowQ="
assert community_id("ICMP", "192.168.0.89", "192.168.0.1", 8, 0) == "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="


# ---------------------------------------------------------------------------
# JSON view of raw bytes: the sensor copies bytes raw and escapes invalid
# UTF-8 as \u00XX (the byte value), which a JSON decoder reads as U+00XX.
# ---------------------------------------------------------------------------


def _u00xx(err):
    return ("".join(chr(b) for b in err.object[err.start:err.end]), err.end)


codecs.register_error("kg_u00xx", _u00xx)


def jstr(b):
    if isinstance(b, str):
        return b
    return b.decode("utf-8", errors="kg_u00xx")


# ---------------------------------------------------------------------------
# DNS (RFC 1035 section 4)
# ---------------------------------------------------------------------------


def labels_of(name):
    """'www.example.com' -> [b'www', b'example', b'com']; bytes label lists pass through."""
    if isinstance(name, (list, tuple)):
        return [bytes(l) for l in name]
    return [l.encode() for l in name.split(".") if l]


def dns_wire_name(labels):
    out = b""
    for l in labels:
        assert 0 < len(l) < 64
        out += bytes([len(l)]) + l
    return out + b"\x00"


def presentation(labels):
    """Presentation form without the trailing dot; bytes copied raw, '.' and
    '\\' inside a label escaped with a backslash (RFC 1035 section 5.1)."""
    return b".".join(l.replace(b"\\", b"\\\\").replace(b".", b"\\.") for l in labels)


QTYPE = {"A": 1, "NS": 2, "CNAME": 5, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "ANY": 255}
RCODE = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}


class DnsMsg:
    """One DNS message, with what the oracle needs: the question names (label
    lists), the message id, QR, the first question's type, the RCODE and the
    answer records as (owner labels, type, ttl, value)."""

    def __init__(self, wire, names, qtype="A", response=False, rcode=0, answers=()):
        self.wire = wire
        self.names = names
        self.txid = struct.unpack("!H", wire[:2])[0]
        self.qtype = qtype
        self.response = response
        self.rcode = rcode
        self.answers = list(answers)


def dns_query(txid, names, qtype="A", qclass=1, rd=True):
    names = [labels_of(n) for n in names]
    flags = 0x0100 if rd else 0x0000
    wire = struct.pack("!HHHHHH", txid, flags, len(names), 0, 0, 0)
    for labels in names:
        wire += dns_wire_name(labels) + struct.pack("!HH", QTYPE[qtype], qclass)
    return DnsMsg(wire, names, qtype)


def dns_response(txid, name, qtype="A", answers=(), rcode=0, chain=False, ttl=300):
    """Answers: ('A', '192.0.2.1') / ('AAAA', '2001:db8::1') / ('CNAME', 'x.example') /
    ('PTR'|'NS', name) / ('MX', (preference, name)) / ('TXT', bytes), optionally
    with a third item, the TTL. Owner names are compression pointers: to the
    question (0xc00c) or, with chain=True, to the target of the latest CNAME
    (its rdata), as a resolver writes a CNAME chain."""
    labels = labels_of(name)
    wire = struct.pack("!HHHHHH", txid, 0x8180 | rcode, 1, len(answers), 0, 0)
    wire += dns_wire_name(labels) + struct.pack("!HH", QTYPE[qtype], 1)
    owner_ptr, owner = 0xC00C, labels
    recs = []
    for ans in answers:
        rtype, value = ans[0], ans[1]
        rttl = ans[2] if len(ans) > 2 else ttl
        if rtype == "A":
            rdata = ipaddress.IPv4Address(value).packed
        elif rtype == "AAAA":
            rdata = ipaddress.IPv6Address(value).packed
        elif rtype == "MX":
            rdata = u16(value[0]) + dns_wire_name(labels_of(value[1]))
        elif rtype == "TXT":
            rdata = vec8(b_(value))
        else:
            rdata = dns_wire_name(labels_of(value))
        recs.append((owner, rtype, rttl, value))
        wire += struct.pack("!HHHIH", owner_ptr, QTYPE[rtype], 1, rttl, len(rdata))
        if chain and rtype == "CNAME":
            owner_ptr, owner = 0xC000 | len(wire), labels_of(value)
        wire += rdata
    assert len(wire) < 0x3FFF
    return DnsMsg(wire, [labels], qtype, True, rcode, recs)


# ---------------------------------------------------------------------------
# HTTP/1.1 (RFC 9112)
# ---------------------------------------------------------------------------


def b_(s):
    return s if isinstance(s, bytes) else s.encode()


class HttpReq:
    def __init__(self, method, uri, host, headers=(), body=b"", version=b"HTTP/1.1"):
        method, uri = b_(method), b_(uri)
        lines = [method + b" " + uri + b" " + version]
        if host is not None:
            lines.append(b"Host: " + b_(host))
        lines += [b_(h) for h in headers]
        if body:
            lines.append(b"Content-Length: " + str(len(body)).encode())
        self.wire = b"\r\n".join(lines) + b"\r\n\r\n" + b_(body)
        self.host = None if host is None else b_(host)
        self.uri = uri
        self.method = method
        self.version = version
        self.ua = None
        for h in headers:
            name, _, value = b_(h).partition(b":")
            if name.lower() == b"user-agent":
                self.ua = value.strip()


def http_resp(status=200, body=b"", ctype=b"text/html"):
    reason = {200: b"OK", 204: b"No Content", 302: b"Found", 404: b"Not Found"}[status]
    return (b"HTTP/1.1 %d %s\r\nServer: nginx\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
            % (status, reason, ctype, len(body))) + body


UA_BROWSER = b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"
UA_CURL = b"User-Agent: curl/7.88.1"

# ---------------------------------------------------------------------------
# TLS (RFC 5246 for 1.2, RFC 8446 for 1.3 ClientHello), JA3
# ---------------------------------------------------------------------------

# RFC 8701 section 2: GREASE values are 0x0A0A, 0x1A1A, ..., 0xFAFA.
GREASE = {(i << 12) | 0x0A0A | (i << 4) for i in range(16)}
assert 0x0A0A in GREASE and 0xFAFA in GREASE and len(GREASE) == 16


def u8(v):
    return struct.pack("!B", v)


def u16(v):
    return struct.pack("!H", v)


def u24(v):
    return v.to_bytes(3, "big")


def vec8(b):
    return u8(len(b)) + b


def vec16(b):
    return u16(len(b)) + b


def vec24(b):
    return u24(len(b)) + b


def tls_record(ctype, body, version=0x0303):
    """TLSPlaintext (RFC 5246 section 6.2.1): type, version, length, fragment."""
    return u8(ctype) + u16(version) + vec16(body)


def tls_handshake(htype, body):
    """Handshake (RFC 5246 section 7.4): msg_type, uint24 length, body."""
    return u8(htype) + vec24(body)


def ext(etype, data=b""):
    return u16(etype) + vec16(data)


class ClientHello:
    """A ClientHello built from explicit lists, so that the JA3 string can be
    computed from the same lists, independently of any parser.

    extensions: ordered (type, data) pairs — the data is the raw extension body.
    """

    def __init__(self, rng, ciphers, extensions, version=0x0303, record_version=0x0301, session_id_len=32):
        self.version = version
        self.ciphers = ciphers
        self.extensions = extensions
        random_ = bytes(rng.getrandbits(8) for _ in range(32))
        session_id = bytes(rng.getrandbits(8) for _ in range(session_id_len))
        body = u16(version) + random_ + vec8(session_id)
        body += vec16(b"".join(u16(c) for c in ciphers))
        body += vec8(b"\x00")  # compression_methods: null only
        body += vec16(b"".join(u16(t) + vec16(d) for t, d in extensions))
        self.handshake = tls_handshake(1, body)
        self.record = tls_record(22, self.handshake, record_version)
        self.sni = None
        groups, fmts = [], []
        for t, d in extensions:
            if t == 0:
                self.sni = d[5:5 + struct.unpack("!H", d[3:5])[0]]
            elif t == 10:
                n = struct.unpack("!H", d[:2])[0]
                groups = [struct.unpack("!H", d[2 + i:4 + i])[0] for i in range(0, n, 2)]
            elif t == 11:
                fmts = list(d[1:1 + d[0]])
        # JA3 (https://github.com/salesforce/ja3): SSLVersion,Ciphers,Extensions,
        # EllipticCurves,EllipticCurvePointFormats; decimal values joined by '-',
        # GREASE values dropped from every list.
        def j(vals):
            return "-".join(str(v) for v in vals if v not in GREASE)

        self.ja3_string = "%d,%s,%s,%s,%s" % (version, j(ciphers), j([t for t, _ in extensions]), j(groups), j(fmts))
        self.ja3 = hashlib.md5(self.ja3_string.encode()).hexdigest()
        self.ja4 = ja4_of(version, ciphers, extensions)
        # What a tls event reports besides the fingerprints: the highest
        # version offered (supported_versions, else legacy_version) and the
        # first ALPN protocol.
        self.max_version = ja4_version(version, extensions)
        alpns = alpn_list(extensions)
        self.alpn = alpns[0] if alpns else None


def alpn_list(extensions):
    """The protocol names of the first ALPN extension (RFC 7301), raw bytes."""
    for t, d in extensions:
        if t == 16:
            out, body, i = [], d[2:2 + struct.unpack("!H", d[:2])[0]], 0
            while i < len(body):
                out.append(body[i + 1:i + 1 + body[i]])
                i += 1 + body[i]
            return out
    return []


def ja4_version(legacy, extensions):
    """The highest non-GREASE supported_versions entry, else legacy_version."""
    for t, d in extensions:
        if t == 43:
            vs = [struct.unpack("!H", d[1 + i:3 + i])[0] for i in range(0, d[0], 2)]
            vs = [v for v in vs if v not in GREASE]
            if vs:
                return max(vs)  # TLS versions only here (no DTLS)
    return legacy


def ja4_of(legacy, ciphers, extensions, transport="t"):
    """JA4 (FoxIO, technical_details/JA4.md), written from the specification:
    a = transport, version, SNI d/i, cipher count, extension count, ALPN
    first+last character; b = sha256 of the sorted ciphers (hex, ',')[:12];
    c = sha256 of the sorted extensions without SNI and ALPN, then '_' and the
    signature algorithms in wire order [:12]. GREASE is ignored everywhere."""
    names = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2"}
    ver = names.get(ja4_version(legacy, extensions), "00")
    types = [t for t, _ in extensions if t not in GREASE]
    cs = [c for c in ciphers if c not in GREASE]
    sni = "d" if 0 in types else "i"
    alpns = alpn_list(extensions)
    first = alpns[0] if alpns else b""
    if not first:
        alpn = "00"
    elif all(chr(x).isascii() and chr(x).isalnum() for x in (first[0], first[-1])):
        alpn = chr(first[0]) + chr(first[-1])
    else:
        h = first.hex()
        alpn = h[0] + h[-1]
    a = "%s%s%s%02d%02d%s" % (transport, ver, sni, min(len(cs), 99), min(len(types), 99), alpn)

    def h12(text):
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    b = h12(",".join("%04x" % c for c in sorted(cs))) if cs else "000000000000"
    rest = sorted("%04x" % t for t in types if t not in (0, 16))
    sigalgs = []
    for t, d in extensions:
        if t == 13:
            sigalgs = [struct.unpack("!H", d[2 + i:4 + i])[0] for i in range(0, struct.unpack("!H", d[:2])[0], 2)]
            sigalgs = [x for x in sigalgs if x not in GREASE]
            break
    ctext = ",".join(rest) + ("_" + ",".join("%04x" % x for x in sigalgs) if sigalgs else "")
    c = h12(ctext) if rest else "000000000000"
    return "%s_%s_%s" % (a, b, c)


def sni_ext(name):
    return (0, vec16(u8(0) + vec16(b_(name))))


def groups_ext(groups):
    return (10, vec16(b"".join(u16(g) for g in groups)))


def point_formats_ext(fmts):
    return (11, vec8(bytes(fmts)))


def sigalgs_ext(algs):
    return (13, vec16(b"".join(u16(a) for a in algs)))


def alpn_ext(protos):
    return (16, vec16(b"".join(vec8(b_(p)) for p in protos)))


SIGALGS = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def hello_tls12_grease(rng, sni):
    """A Chrome-like TLS 1.2 ClientHello with GREASE in ciphers, extensions and groups."""
    ciphers = [0x5A5A, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
    exts = [
        (0x0A0A, b""),                       # GREASE (RFC 8701), empty
        sni_ext(sni),                        # server_name (RFC 6066)
        (23, b""),                           # extended_master_secret (RFC 7627)
        (0xFF01, b"\x00"),                   # renegotiation_info (RFC 5746)
        groups_ext([0x2A2A, 29, 23, 24]),    # supported_groups with a GREASE group first
        point_formats_ext([0]),              # ec_point_formats: uncompressed
        (35, b""),                           # session_ticket (RFC 5077)
        sigalgs_ext(SIGALGS),                # signature_algorithms
        (5, b"\x01\x00\x00\x00\x00"),        # status_request (OCSP)
        (18, b""),                           # signed_certificate_timestamp (RFC 6962)
        (0x3A3A, b"\x00"),                   # GREASE again, one byte of data
    ]
    return ClientHello(rng, ciphers, exts)


def hello_tls12_plain(rng, sni, ciphers=None):
    """A minimal, script-like TLS 1.2 ClientHello (no GREASE)."""
    ciphers = ciphers or [0xC02F, 0xC030, 0xC013, 0xC014, 0x009C, 0x002F, 0x0035, 0x000A]
    exts = [sni_ext(sni), groups_ext([23, 24, 25]), point_formats_ext([0, 1, 2]), sigalgs_ext([0x0401, 0x0501, 0x0201])]
    return ClientHello(rng, ciphers, exts)


def hello_tls13(rng, sni):
    """A TLS 1.3 ClientHello (legacy_version 1.2, supported_versions, key_share, padding)."""
    ciphers = [0x9A9A, 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8]
    key = bytes(rng.getrandbits(8) for _ in range(32))
    exts = [
        (0xDADA, b""),
        sni_ext(sni),
        (23, b""),
        (0xFF01, b"\x00"),
        groups_ext([0x4A4A, 29, 23, 24]),
        point_formats_ext([0]),
        (35, b""),
        alpn_ext(["h2", "http/1.1"]),                               # ALPN (RFC 7301)
        (5, b"\x01\x00\x00\x00\x00"),
        sigalgs_ext(SIGALGS),
        (18, b""),
        (51, vec16(u16(0x4A4A) + vec16(b"\x00") + u16(29) + vec16(key))),  # key_share
        (45, vec8(b"\x01")),                                        # psk_key_exchange_modes: psk_dhe_ke
        (43, vec8(u16(0x6A6A) + u16(0x0304) + u16(0x0303))),        # supported_versions
        (27, vec8(u16(2))),                                         # compress_certificate: brotli
        (0xBABA, b"\x00"),
        (21, b"\x00" * 60),                                         # padding (RFC 7685)
    ]
    return ClientHello(rng, ciphers, exts)


def server_flight_tls12(rng, cipher, certs, separate_records=True):
    """ServerHello, Certificate (the chain, leaf first), ServerKeyExchange
    (ECDHE, secp256r1) and ServerHelloDone, each in its own record."""
    sh = u16(0x0303) + bytes(rng.getrandbits(8) for _ in range(32)) + vec8(bytes(rng.getrandbits(8) for _ in range(32)))
    sh += u16(cipher) + u8(0) + vec16(ext(0xFF01, b"\x00") + ext(11, vec8(b"\x00")) + ext(23))
    cert_list = b"".join(vec24(c) for c in certs)
    point = b"\x04" + bytes(rng.getrandbits(8) for _ in range(64))
    ske = u8(3) + u16(23) + vec8(point) + u16(0x0403) + vec16(bytes(rng.getrandbits(8) for _ in range(71)))
    msgs = [tls_handshake(2, sh), tls_handshake(11, vec24(cert_list)), tls_handshake(12, ske), tls_handshake(14, b"")]
    if separate_records:
        return b"".join(tls_record(22, m) for m in msgs)
    return tls_record(22, b"".join(msgs))


def rand_bytes(rng, n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def read_der(name):
    with open(os.path.join(ROOT, "pcaps", "src", name), "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------
# Flows
# ---------------------------------------------------------------------------


TCP_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}
DNS_PORTS = (53, 5353, 5355)


class Flow:
    """A conversation; the client sends its first packet (so it is the
    sensor's `src`). Records what the oracle needs as it goes: packets and
    bytes per direction, TCP flags, first and last packet times, the DNS
    messages, HTTP transactions and TLS handshake it carried."""

    def __init__(self, case, proto, cli, cport, srv, sport, vlans=(), cli_mac=None, srv_mac=None, reuse=False):
        self.case = case
        self.proto = proto  # "TCP", "UDP", "ICMP", "IPv6-ICMP"
        self.cli, self.srv = cli, srv
        self.cport, self.sport = cport, sport
        self.vlans = tuple(vlans)
        self.cmac = cli_mac or mac_for(cli)
        self.smac = srv_mac or mac_for(srv)
        self.started = False
        self.ipid = {True: case.rng.randint(1, 60000), False: case.rng.randint(1, 60000)}
        self.sni = None
        self.ja3 = None
        self.ja4 = None
        self.cert_fp = None
        self.index = len(case.flows)
        self.first_ts = self.last_ts = None
        self.last_from = {True: None, False: None}
        self.pkts = {True: 0, False: 0}
        self.bytes = {True: 0, False: 0}
        self.flags = {True: 0, False: 0}
        self.dns_msgs = []    # (ts, DnsMsg)
        self.http_txns = []   # [HttpReq, status or None]
        self.hello = None     # ClientHello
        self.cert = None      # server certificate (DER) seen in clear
        self.alerted = False
        self.ended_by_reuse = False
        # Two Flow objects on one 5-tuple would be one flow to the sensor but
        # two to the oracle: refuse them, except a new TCP connection (SYN)
        # on the 5-tuple of one that was torn down (reuse=True), which ends
        # the old flow.
        key = (proto, frozenset([(cli, cport), (srv, sport)]), tuple(vlans))
        prev = case.tuples.get(key)
        if prev is not None:
            if not (reuse and proto == "TCP" and prev.tcp_closed()):
                raise ValueError("%s: 5-tuple used twice: %r" % (case.name, key))
            prev.ended_by_reuse = True
        case.tuples[key] = self
        case.flows.append(self)

    def _l3(self, to_server, l4, hop_by_hop=False):
        src, dst = (self.cli, self.srv) if to_server else (self.srv, self.cli)
        if family(src) == 4:
            self.ipid[to_server] = (self.ipid[to_server] + 1) & 0xFFFF
            pkt = IP(src=src, dst=dst, id=self.ipid[to_server], flags="DF" if self.proto == "TCP" else 0,
                     ttl=64 if to_server else 57) / l4
            et = ETH_IPV4
        else:
            ip6 = IPv6(src=src, dst=dst, hlim=64 if to_server else 57)
            if hop_by_hop:
                ip6 = ip6 / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
            pkt = ip6 / l4
            et = ETH_IPV6
        smac, dmac = (self.cmac, self.smac) if to_server else (self.smac, self.cmac)
        return ether(smac, dmac, et, bytes(pkt), self.vlans)

    def emit(self, frame, gap_us=None, to_server=True, tcp_flags=""):
        if not self.started and not to_server:
            raise ValueError("%s: the client must send a flow's first packet" % self.case.name)
        self.case.pcap.add(frame, gap_us)
        ts = self.case.pcap.t
        if not self.started:
            self.started = True
            self.first_ts = ts
            if self.proto == "TCP" and tcp_flags != "S" and any(f is not self and f.ended_by_reuse and
                                                                 f.key() == self.key() for f in self.case.flows):
                raise ValueError("%s: a reused 5-tuple must start with a SYN" % self.case.name)
            self.case.events.append(("flow", self, ts))
        self.last_ts = ts
        self.last_from[to_server] = ts
        self.pkts[to_server] += 1
        self.bytes[to_server] += len(frame)
        for c in tcp_flags:
            self.flags[to_server] |= TCP_FLAG_BITS[c]

    def key(self):
        return (self.proto, frozenset([(self.cli, self.cport), (self.srv, self.sport)]), self.vlans)

    def tcp_closed(self):
        """FIN from both sides, or a RST from either (RFC 9293)."""
        f = self.flags[True] | self.flags[False]
        return bool(f & 0x04) or bool(self.flags[True] & 0x01 and self.flags[False] & 0x01)

    def community_id(self):
        if self.proto in ("ICMP", "IPv6-ICMP"):
            return community_id(self.proto, self.cli, self.srv, self.icmp_type, 0)
        return community_id(self.proto, self.cli, self.srv, self.cport, self.sport)

    # Observations (what the sensor should see), in packet order.
    def note(self, where, value, **ctx):
        self.case.events.append(("obs", self, where, value, ctx))

    def note_dns(self, msg, to_server=None):
        """A DNS message the sensor reads whole: its questions (dns.query), and
        the message itself (dns events, answers) at the time of the packet
        that completed it (the latest from its sender)."""
        if self.proto not in ("UDP", "TCP") or not (self.cport in DNS_PORTS or self.sport in DNS_PORTS):
            raise ValueError("%s: DNS noted on a flow that is not on a DNS port" % self.case.name)
        if to_server is None:
            to_server = not msg.response
        ts = self.last_from[to_server]
        for labels in msg.names:
            self.note("dns.query", presentation(labels))
        self.dns_msgs.append((ts, msg))
        self.case.events.append(("dns", self, msg, ts))

    def note_http(self, req):
        self.note("http", req.host, uri=req.uri, ua=req.ua)
        self.http_txns.append([req, None])

    def note_http_response(self, resp):
        """A response pairs with the latest request if that one has none yet."""
        status = int(resp.split(b" ", 2)[1])
        if self.http_txns and self.http_txns[-1][1] is None:
            self.http_txns[-1][1] = status


class UdpFlow(Flow):
    def __init__(self, case, cli, cport, srv, sport, vlans=(), hop_by_hop=False, **kw):
        super().__init__(case, "UDP", cli, cport, srv, sport, vlans, **kw)
        self.hbh = hop_by_hop

    def send(self, payload, to_server=True, gap_us=None):
        sp, dp = (self.cport, self.sport) if to_server else (self.sport, self.cport)
        self.emit(self._l3(to_server, UDP(sport=sp, dport=dp) / Raw(payload), self.hbh), gap_us, to_server)

    def dns(self, msg, to_server=True, gap_us=None):
        self.send(msg.wire, to_server, gap_us)
        self.note_dns(msg, to_server)


class IcmpFlow(Flow):
    def __init__(self, case, cli, srv, ident, vlans=()):
        super().__init__(case, "ICMP" if family(cli) == 4 else "IPv6-ICMP", cli, 0, srv, 0, vlans)
        self.ident = ident
        self.icmp_type = 8 if family(cli) == 4 else 128  # echo request opens the flow

    def ping(self, seq, payload=b"kagami-ping-0123456789abcdefghijklmnopqrstuvwxyz", gap_us=None):
        if family(self.cli) == 4:
            req = ICMP(type=8, code=0, id=self.ident, seq=seq) / Raw(payload)
            rep = ICMP(type=0, code=0, id=self.ident, seq=seq) / Raw(payload)
        else:
            req = ICMPv6EchoRequest(id=self.ident, seq=seq, data=payload)
            rep = ICMPv6EchoReply(id=self.ident, seq=seq, data=payload)
        self.emit(self._l3(True, req), gap_us)
        self.emit(self._l3(False, rep), to_server=False)


class TcpFlow(Flow):
    MSS = 1448

    def __init__(self, case, cli, cport, srv, sport, vlans=(), **kw):
        super().__init__(case, "TCP", cli, cport, srv, sport, vlans, **kw)
        self.seq = {True: case.rng.getrandbits(32), False: case.rng.getrandbits(32)}
        self.ack = {True: 0, False: 0}

    def _seg(self, to_server, flags, data=b"", gap_us=None, options=None):
        sp, dp = (self.cport, self.sport) if to_server else (self.sport, self.cport)
        tcp = TCP(sport=sp, dport=dp, seq=self.seq[to_server], ack=self.ack[to_server] if "A" in flags else 0,
                  flags=flags, window=64240 if to_server else 65160, options=options or [])
        self.emit(self._l3(to_server, tcp / Raw(data) if data else tcp), gap_us, to_server, flags)
        adv = len(data) + (1 if ("S" in flags or "F" in flags) else 0)
        self.seq[to_server] = (self.seq[to_server] + adv) & 0xFFFFFFFF
        self.ack[not to_server] = self.seq[to_server]

    def open(self, gap_us=None):
        opts = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("NOP", None), ("NOP", None), ("SAckOK", b"")]
        self._seg(True, "S", options=opts, gap_us=gap_us)
        self._seg(False, "SA", options=opts, gap_us=self.case.rng.randint(5000, 40000))
        self._seg(True, "A")
        return self

    def send(self, data, to_server=True, ack=True, gap_us=None):
        """One segment carrying exactly `data`, then an empty ACK from the peer."""
        self._seg(to_server, "PA", data, gap_us)
        if ack:
            self._seg(not to_server, "A")

    def stream(self, data, to_server=True):
        """Sends data cut at the MSS, as a TCP stack would."""
        for i in range(0, len(data), self.MSS):
            self.send(data[i:i + self.MSS], to_server, ack=(i + self.MSS >= len(data)))

    def close(self):
        self._seg(True, "FA")
        self._seg(False, "FA")
        self._seg(True, "A")

    def http(self, req, resp=None):
        self.send(req.wire)
        self.note_http(req)
        if resp is not None:
            self.send(resp, to_server=False)
            self.note_http_response(resp)

    def _hello(self, hello):
        self.hello = hello
        self.sni, self.ja3, self.ja4 = hello.sni, hello.ja3, hello.ja4
        if hello.sni is not None:
            self.note("tls.sni", hello.sni)
        self.note("tls.ja3", hello.ja3)
        self.note("tls.ja4", hello.ja4)

    def tls12(self, hello, certs, app_rounds=2, split_hello=None, split_flight=()):
        """A TLS 1.2 session: ClientHello, server flight with the certificate
        chain, key exchange, Finished, some application data, close_notify."""
        rng = self.case.rng
        rec = hello.record
        if split_hello:
            self.send(rec[:split_hello], ack=False)
            self.send(rec[split_hello:])
        else:
            self.send(rec)
        self._hello(hello)
        flight = server_flight_tls12(rng, hello.ciphers[1] if hello.ciphers[0] in GREASE else hello.ciphers[0], certs)
        cuts = [0] + list(split_flight) + [len(flight)]
        for a, b in zip(cuts, cuts[1:]):
            for i in range(a, b, self.MSS):
                self.send(flight[i:min(b, i + self.MSS)], to_server=False, ack=False)
        self._seg(True, "A")
        self.cert = certs[0]
        self.cert_fp = hashlib.sha1(certs[0]).hexdigest()
        self.note("tls.cert_sha1", self.cert_fp)
        cke = tls_handshake(16, vec8(b"\x04" + rand_bytes(rng, 64)))
        self.send(tls_record(22, cke) + tls_record(20, b"\x01") + tls_record(22, rand_bytes(rng, 40)))
        self.send(tls_record(20, b"\x01") + tls_record(22, rand_bytes(rng, 40)), to_server=False)
        self.app_data(app_rounds)
        self.send(tls_record(21, rand_bytes(rng, 26)), ack=False)
        self.close()

    def tls13(self, hello, app_rounds=2):
        """A TLS 1.3 session: the certificate is encrypted, so only the
        ClientHello is visible."""
        rng = self.case.rng
        self.send(hello.record)
        self._hello(hello)
        sh = u16(0x0303) + rand_bytes(rng, 32) + vec8(hello.record[44:76]) + u16(0x1301) + u8(0)
        sh += vec16(ext(43, u16(0x0304)) + ext(51, u16(29) + vec16(rand_bytes(rng, 32))))
        flight = tls_record(22, tls_handshake(2, sh)) + tls_record(20, b"\x01")
        flight += tls_record(23, rand_bytes(rng, 1200))  # EncryptedExtensions, Certificate, ... (encrypted)
        self.send(flight, to_server=False)
        self.send(tls_record(20, b"\x01") + tls_record(23, rand_bytes(rng, 53)))
        self.app_data(app_rounds)
        self.close()

    def app_data(self, rounds):
        rng = self.case.rng
        for _ in range(rounds):
            self.send(tls_record(23, rand_bytes(rng, rng.randint(80, 600))))
            self.stream(tls_record(23, rand_bytes(rng, rng.randint(300, 2500))), to_server=False)


def dns_tcp_frame(msg):
    """RFC 1035 section 4.2.2 / RFC 7766: two-byte length prefix."""
    return u16(len(msg.wire)) + msg.wire


# ---------------------------------------------------------------------------
# Oracle: a reference implementation of the matching rules
# ---------------------------------------------------------------------------


def split_presentation(name):
    """Labels of a presentation-form name: '\\x' is the literal byte x, an
    unescaped '.' separates labels; a trailing dot is ignored."""
    labels, cur, i = [], b"", 0
    while i < len(name):
        c = name[i:i + 1]
        if c == b"\\" and i + 1 < len(name):
            cur += name[i + 1:i + 2]
            i += 2
            continue
        if c == b".":
            labels.append(cur)
            cur = b""
        else:
            cur += c
        i += 1
    if cur:
        labels.append(cur)
    return labels


def split_plain(name):
    """Labels of a host name as sent in HTTP Host / TLS SNI (no escapes)."""
    name = b_(name)
    if name.endswith(b"."):
        name = name[:-1]
    return name.split(b".") if name else []


def lower_ascii(b):
    return bytes(c + 32 if 65 <= c <= 90 else c for c in b)


class Indicator:
    def __init__(self, itype, value, source, desc):
        self.type, self.value, self.source, self.desc = itype, value, source, desc


class Oracle:
    def __init__(self, indicators):
        self.domains, self.nets, self.urls, self.hashes = {}, [], {}, {}
        for ind in indicators:
            if ind.type == "DOMAIN":
                key = tuple(lower_ascii(l) for l in split_plain(ind.value))
                self.domains.setdefault(key, ind)
            elif ind.type in ("ADDR", "SUBNET"):
                self.nets.append((ipaddress.ip_network(ind.value, strict=False), ind))
            elif ind.type == "URL":
                v = ind.value
                if v.lower().startswith("http://"):
                    v = v[7:]
                host, _, path = v.partition("/")
                self.urls.setdefault(host.lower() + "/" + path, ind)
            else:
                self.hashes.setdefault((ind.type, ind.value.lower()), ind)

    def domain(self, labels):
        labels = [lower_ascii(l) for l in labels]
        for i in range(len(labels)):  # longest (most specific) suffix first
            hit = self.domains.get(tuple(labels[i:]))
            if hit:
                return hit
        return None

    def addr(self, ip):
        a = ipaddress.ip_address(ip)
        best = None
        for net, ind in self.nets:
            if a.version == net.version and a in net and (best is None or net.prefixlen > best[0].prefixlen):
                best = (net, ind)
        return best[1] if best else None

    def url(self, host, uri):
        h = host.decode("latin-1").lower()
        if h.endswith(":80"):
            h = h[:-3]
        return self.urls.get(h + uri.decode("latin-1"))


def expected_alerts(case):
    """One alert per flow, indicator and place (where). Also marks each flow
    that alerted (flow.alerted, for the flow events)."""
    orc = Oracle(case.indicators)
    out, done = [], set()
    for f in case.flows:
        f.alerted = False

    def emit(flow, ind, where, seen, ctx):
        key = (flow.index, ind.type, ind.value, where)
        if key in done:
            return
        done.add(key)
        flow.alerted = True
        a = {"src_ip": addr_str(flow.cli), "dest_ip": addr_str(flow.srv), "proto": flow.proto}
        if flow.proto in ("TCP", "UDP"):
            a["src_port"], a["dest_port"] = flow.cport, flow.sport
        if flow.vlans:
            a["vlan"] = [tci & 0x0FFF for _, tci in flow.vlans]
        elif case.assert_no_vlan:
            a["vlan"] = None
        a["indicator"] = {"type": ind.type, "value": ind.value, "where": where, "seen": jstr(seen)}
        a.update(ctx)
        out.append(a)

    # Answers to flagged names: (time, address, question name, TTL).
    resolved = []
    for ev in case.events:
        if ev[0] == "flow":
            flow = ev[1]
            for ip, where in ((flow.cli, "conn.src_ip"), (flow.srv, "conn.dest_ip")):
                ind = orc.addr(ip)
                if ind:
                    emit(flow, ind, where, addr_str(ip), {})
            continue
        if ev[0] == "dns":
            # dns.answer: every A/AAAA address of a response's answer section
            # against ADDR/SUBNET; the alert names the (first) question.
            _, flow, msg, ts = ev
            if not msg.response:
                continue
            qname = presentation(msg.names[0]) if msg.names else None
            ctx = {"dns": {"rrname": jstr(qname)}} if qname is not None else {}
            flagged = qname is not None and orc.domain(split_presentation(qname)) is not None
            for _owner, rtype, ttl, value in msg.answers:
                if rtype not in ("A", "AAAA"):
                    continue
                ind = orc.addr(value)
                if ind:
                    emit(flow, ind, "dns.answer", addr_str(value), ctx)
                if flagged:
                    resolved.append((ts, ipaddress.ip_address(value), qname, ttl))
            continue
        _, flow, where, value, extra = ev
        tls_ctx = {}
        if flow.sni is not None or flow.ja3 is not None:
            tls_ctx = {"tls": {}}
            if flow.sni is not None:
                tls_ctx["tls"]["sni"] = jstr(flow.sni)
            if flow.ja3 is not None:
                tls_ctx["tls"]["ja3"] = {"hash": flow.ja3}
            if flow.ja4 is not None:
                tls_ctx["tls"]["ja4"] = flow.ja4
        if where == "dns.query":
            ind = orc.domain(split_presentation(value))
            if ind:
                emit(flow, ind, where, value, {"dns": {"rrname": jstr(value)}})
        elif where == "tls.sni":
            ind = orc.domain(split_plain(value))
            if ind:
                emit(flow, ind, where, value, tls_ctx)
        elif where in ("tls.ja3", "tls.ja4", "tls.cert_sha1"):
            itype = {"tls.ja3": "JA3", "tls.ja4": "JA4", "tls.cert_sha1": "CERT_HASH"}[where]
            ind = orc.hashes.get((itype, value))
            if ind:
                if where == "tls.cert_sha1":
                    tls_ctx["tls"]["fingerprint"] = ":".join(value[i:i + 2] for i in range(0, len(value), 2))
                emit(flow, ind, where, value, tls_ctx)
        elif where == "http":
            host, uri = value, extra["uri"]
            ctx = {"http": {"url": jstr(uri)}}
            if host is not None:
                ctx["http"]["hostname"] = jstr(host)
                ind = orc.domain(split_plain(host))
                if ind:
                    emit(flow, ind, "http.host", host, ctx)
                ind = orc.url(host, uri)
                if ind:
                    emit(flow, ind, "http.url", host + uri, ctx)
        else:
            raise ValueError(where)

    # conn.resolved: a flow whose destination is an address that a flagged
    # name resolved to, in an answer whose packet is at or before the flow's
    # first packet and whose TTL has not run out then. One alert per DOMAIN
    # indicator (the most specific one of the name); when several flagged
    # names of one indicator resolved to the address, the latest answer names it.
    for flow in case.flows:
        if flow.first_ts is None:
            continue
        dst = ipaddress.ip_address(flow.srv)
        by_ind = {}
        for ts, addr, qname, ttl in resolved:
            if addr != dst or ts > flow.first_ts:
                continue
            if flow.first_ts > ts + ttl * 1000000:
                # The sensor keeps a resolution for at least 10 minutes and at
                # most a day, whatever the TTL: a case must not depend on that.
                if flow.first_ts <= ts + 86400 * 1000000:
                    raise ValueError("%s: a connection to %s falls after the TTL of an answer for %r but within "
                                     "a day: the outcome is the sensor's choice" % (case.name, dst, qname))
                continue
            ind = orc.domain(split_presentation(qname))
            if ind.value not in by_ind or by_ind[ind.value][0] <= ts:
                by_ind[ind.value] = (ts, ind, qname)
        for _ts, ind, qname in sorted(by_ind.values(), key=lambda x: x[0]):
            emit(flow, ind, "conn.resolved", qname, {"dns": {"rrname": jstr(qname)}})
    return out


# ---------------------------------------------------------------------------
# Metadata events: what the sensor writes with events.* turned on, reduced to
# a projection that run_case.py applies to the actual events before comparing
# the two multisets. Computed from the Flow records, per docs/EVENTS.md.
# ---------------------------------------------------------------------------

EVENT_PROJECTION = {
    "*": ["event_type", "src_ip", "src_port", "dest_ip", "dest_port", "proto", "vlan", "community_id"],
    "dns": ["dns.type", "dns.id", "dns.rrname", "dns.rrtype", "dns.rcode", "dns.answers.rrname",
            "dns.answers.rrtype", "dns.answers.ttl", "dns.answers.rdata"],
    "http": ["http.hostname", "http.http_port", "http.url", "http.http_method", "http.status",
             "http.http_user_agent"],
    # tls.ja3.string (docs/EVENTS.md: "each member only when known") is not
    # compared: the sensor does not write it (reported to the lead).
    "tls": ["tls.sni", "tls.version", "tls.alpn", "tls.ja3.hash", "tls.ja4", "tls.fingerprint"],
    "quic": ["quic.version", "quic.sni", "quic.alpn", "quic.ja3.hash", "quic.ja4"],
    "flow": ["flow.pkts_toserver", "flow.pkts_toclient", "flow.bytes_toserver", "flow.bytes_toclient",
             "flow.state", "flow.reason", "flow.alerted", "flow.tcp_flags", "flow.tcp_flags_ts",
             "flow.tcp_flags_tc"],
}

# Idle timeouts (docs/CONFIG.md defaults: flow.tcp_timeout, flow.udp_timeout,
# flow.other_timeout) and the linger of a torn-down TCP flow (FIN both ways or
# RST) before the sensor ends it with reason "closed".
FLOW_TIMEOUT_S = {"TCP": 600, "UDP": 120, "other": 60, "closed": 5}
# A flow ends by timeout only when its worker sees a later packet: the cases
# that expect timeouts follow the idle period with at least this many flows,
# so that every worker (1 or 2) gets one.
WAKE_FLOWS = 12
TLS_VERSION_NAME = {0x0304: "TLS 1.3", 0x0303: "TLS 1.2", 0x0302: "TLS 1.1", 0x0301: "TLS 1.0", 0x0300: "SSLv3"}


def header_of(flow, etype):
    e = {"event_type": etype, "src_ip": addr_str(flow.cli), "dest_ip": addr_str(flow.srv), "proto": flow.proto}
    if flow.proto in ("TCP", "UDP"):
        e["src_port"], e["dest_port"] = flow.cport, flow.sport
    if flow.vlans:
        e["vlan"] = [tci & 0x0FFF for _, tci in flow.vlans]
    e["community_id"] = flow.community_id()
    return e


def dns_event(flow, msg):
    e = header_of(flow, "dns")
    d = {"type": "answer" if msg.response else "query", "id": msg.txid}
    if msg.names:
        d["rrname"] = jstr(presentation(msg.names[0]))
        d["rrtype"] = msg.qtype
    if msg.response:
        d["rcode"] = RCODE[msg.rcode]
        if msg.answers:
            d["answers"] = []
            for owner, rtype, ttl, value in msg.answers:
                a = {"rrname": jstr(presentation(owner)), "rrtype": rtype, "ttl": ttl}
                if rtype in ("A", "AAAA"):
                    a["rdata"] = addr_str(value)
                elif rtype in ("CNAME", "PTR", "NS"):
                    a["rdata"] = jstr(presentation(labels_of(value)))
                d["answers"].append(a)
    e["dns"] = d
    return e


def http_url(host, uri):
    """docs/EVENTS.md `url`: host lower-cased, a :80 port dropped, '/' added to
    an empty target or one starting with '?'; without Host, the target."""
    if host is None:
        return uri
    h = lower_ascii(host)
    if h.endswith(b":80"):
        h = h[:-3]
    if not uri or uri.startswith(b"?"):
        uri = b"/" + uri
    return h + uri


def http_event(flow, req, status):
    e = header_of(flow, "http")
    h = {}
    if req.host is not None:
        host, port = req.host, None
        if host.startswith(b"["):
            end = host.index(b"]") + 1
            host, rest = host[:end], host[end:]
            port = rest[1:] if rest.startswith(b":") else None
        elif b":" in host:
            host, _, port = host.partition(b":")
        h["hostname"] = jstr(host)
        if port:
            h["http_port"] = int(port)
    h["url"] = jstr(http_url(req.host, req.uri))
    h["http_method"] = jstr(req.method)
    if req.ua is not None:
        h["http_user_agent"] = jstr(req.ua)
    if status is not None:
        h["status"] = status
    e["http"] = h
    return e


def tls_event(flow):
    hello = flow.hello
    e = header_of(flow, "tls")
    t = {}
    if hello.sni is not None:
        t["sni"] = jstr(hello.sni)
    t["version"] = TLS_VERSION_NAME[hello.max_version]
    if hello.alpn:
        t["alpn"] = jstr(hello.alpn)
    t["ja3"] = {"hash": hello.ja3}
    t["ja4"] = hello.ja4
    if flow.cert is not None:
        t["fingerprint"] = ":".join("%02x" % b for b in hashlib.sha1(flow.cert).digest())
    e["tls"] = t
    return e


def flow_end_reason(case, flow):
    """How the flow leaves the sensor's table: a new SYN on the 5-tuple of a
    torn-down connection ends it at once ("closed"); a flow idle past its
    timeout ends when its worker sees a later packet ("closed" after a
    teardown, else "timeout"); whatever is left at the end of the input is
    "shutdown"."""
    if flow.ended_by_reuse:
        return "closed"
    closed = flow.proto == "TCP" and flow.tcp_closed()
    cls = "closed" if closed else flow.proto if flow.proto in ("TCP", "UDP") else "other"
    limit = flow.last_ts + FLOW_TIMEOUT_S[cls] * 1000000
    # No packet may fall near the limit (the sensor's comparison there is its
    # own business), and a timeout needs later packets on every worker.
    if any(abs(ts - limit) <= 1000000 for ts, _, _ in case.pcap.records):
        raise ValueError("%s: a packet falls within 1 s of a flow's timeout" % case.name)
    wake = {f.index for f in case.flows if f.last_ts is not None and f.last_ts > limit}
    if not wake:
        return "shutdown"
    if len(wake) < WAKE_FLOWS:
        raise ValueError("%s: a flow times out but only %d flows follow (need %d)" % (case.name, len(wake),
                                                                                     WAKE_FLOWS))
    return "closed" if closed else "timeout"


def flow_event(case, flow):
    e = header_of(flow, "flow")
    fl = {"pkts_toserver": flow.pkts[True], "pkts_toclient": flow.pkts[False],
          "bytes_toserver": flow.bytes[True], "bytes_toclient": flow.bytes[False]}
    if flow.proto == "TCP":
        ts, tc = flow.flags[True], flow.flags[False]
        if (ts | tc) & 0x01 and not (ts | tc) & 0x04 and not (ts & 0x01 and tc & 0x01):
            raise ValueError("%s: a half-closed TCP flow has no well-defined state" % case.name)
        if flow.tcp_closed():
            fl["state"] = "closed"
        elif ts & 0x02 and (tc & 0x12) == 0x12 and ts & 0x10:
            fl["state"] = "established"   # three-way handshake seen
        else:
            fl["state"] = "new"
    else:
        fl["state"] = "established" if flow.pkts[False] else "new"
    fl["reason"] = flow_end_reason(case, flow)
    fl["alerted"] = flow.alerted
    if flow.proto == "TCP":
        fl["tcp_flags"] = "%02x" % (flow.flags[True] | flow.flags[False])
        fl["tcp_flags_ts"] = "%02x" % flow.flags[True]
        fl["tcp_flags_tc"] = "%02x" % flow.flags[False]
    e["flow"] = fl
    return e


def project(value, tree):
    """The projection run_case.py applies (see there)."""
    if not tree:
        return value
    if isinstance(value, list):
        return [project(v, tree) for v in value]
    if isinstance(value, dict):
        return {k: project(value[k], sub) for k, sub in tree.items() if k in value}
    return value


def path_tree(paths):
    tree = {}
    for p in paths:
        node = tree
        for part in p.split("."):
            node = node.setdefault(part, {})
    return tree


def expected_events(case):
    """The metadata events of case.event_types, projected; expected_alerts()
    must have run (it marks the flows that alerted)."""
    out = []
    for flow in case.flows:
        if flow.first_ts is None:
            continue
        evs = [dns_event(flow, msg) for _ts, msg in flow.dns_msgs]
        evs += [http_event(flow, req, status) for req, status in flow.http_txns]
        if flow.hello is not None:
            evs.append(tls_event(flow))
        evs.append(flow_event(case, flow))
        for e in evs:
            if e["event_type"] in case.event_types:
                tree = path_tree(EVENT_PROJECTION["*"] + EVENT_PROJECTION[e["event_type"]])
                p = project(e, tree)
                assert p == e, "the model writes a field its projection drops: %r" % e
                out.append(p)
    return out


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


class Case:
    def __init__(self, name, description, seed, pcap_name=None, assert_no_vlan=False):
        self.name = name
        self.description = description
        self.rng = random.Random(seed)
        self.pcap = Pcap(T0_US + seed * 1000000, seed)
        self.pcap_name = pcap_name or name + ".pcap"
        self.indicators = []
        self.flows = []
        self.tuples = {}
        self.events = []
        self.assert_no_vlan = assert_no_vlan
        self.expected_count = None
        self.expected_event_count = None
        self.write_case = True
        self.args = []          # extra kagami arguments (case.json "args")
        self.workers = [1, 2]   # worker counts run_case.py tries
        self.event_types = ()   # metadata event types checked (case.json "events")

    def ind(self, itype, value, source="kagami-tests", desc="test indicator"):
        self.indicators.append(Indicator(itype, value, source, desc))

    def intel_text(self):
        lines = ["#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc"]
        for i in self.indicators:
            lines.append("%s\tIntel::%s\t%s\t%s" % (i.value, i.type, i.source, i.desc))
        return "\n".join(lines) + "\n"

    # Convenience flow constructors.
    def udp(self, cli, cport, srv, sport=53, **kw):
        return UdpFlow(self, cli, cport, srv, sport, **kw)

    def tcp(self, cli, cport, srv, sport, **kw):
        return TcpFlow(self, cli, cport, srv, sport, **kw)

    def lookup(self, cli, cport, srv, name, qtype="A", answers=None, vlans=(), rcode=0, chain=False, between=None,
               **kw):
        """A DNS query and its response in one UDP flow; `between()`, when
        given, runs after the query and before the response."""
        f = self.udp(cli, cport, srv, 53, vlans=vlans, **kw)
        txid = self.rng.randint(1, 65535)
        f.dns(dns_query(txid, [name], qtype))
        if answers is None:
            answers = [("AAAA", "2001:db8:ffff::1")] if qtype == "AAAA" else [("A", "192.0.2.200")]
        if between is not None:
            between()
        f.dns(dns_response(txid, name, qtype, answers, rcode=rcode, chain=chain), to_server=False,
              gap_us=self.rng.randint(2000, 30000))
        return f


def case_dns_udp():
    c = Case("dns_udp", "DNS over UDP (and mDNS, LLMNR): a listed domain and subdomains, benign names, several "
             "queries with different names in one flow, a two-question message with compression", 1)
    for d in ["bad.example", "multi-a.example", "multi-b.example", "multi-c.example", "alpha.twoq.example",
              "beta.twoq.example", "mdns-bad.local", "llmnr-bad.lan"]:
        c.ind("DOMAIN", d)
    cli, res = "192.168.50.10", "192.168.50.1"
    # Exact name and a subdomain, each query with its response (one alert per flow).
    c.lookup(cli, 41001, res, "bad.example")
    c.lookup(cli, 41002, res, "www.bad.example", "AAAA",
             [("CNAME", "edge.cdn.example.net"), ("AAAA", "2001:db8:5::7")])
    c.lookup(cli, 41003, res, "www.example.org")
    c.lookup(cli, 41004, res, "mail.example.com", "MX", [])
    # One flow (same 5-tuple), five queries: three distinct indicators; the
    # second multi-a name is deduplicated (same flow, indicator and place).
    f = c.udp(cli, 41005, res)
    for i, name in enumerate(["one.multi-a.example", "benign.example.org", "two.multi-b.example",
                              "three.multi-a.example", "multi-c.example"]):
        f.dns(dns_query(0x1000 + i, [name]))
        f.dns(dns_response(0x1000 + i, name, "A", [("A", "192.0.2.%d" % (10 + i))]), to_server=False)
    # QDCOUNT=2, the second name compressed: "beta" + pointer to "twoq.example" in the first.
    q1 = labels_of("alpha.twoq.example")
    wire = struct.pack("!HHHHHH", 0x2222, 0x0100, 2, 0, 0, 0)
    wire += dns_wire_name(q1) + struct.pack("!HH", 1, 1)
    wire += b"\x04beta" + struct.pack("!H", 0xC000 | (12 + 1 + len(q1[0]))) + struct.pack("!HH", 1, 1)
    f = c.udp(cli, 41006, res)
    f.dns(DnsMsg(wire, [q1, labels_of("beta.twoq.example")]))
    # mDNS (RFC 6762): port 5353 both sides, multicast, QU bit set in qclass.
    f = c.udp("192.168.50.20", 5353, "224.0.0.251", 5353, srv_mac=b"\x01\x00\x5e\x00\x00\xfb")
    f.dns(dns_query(0, ["printer.mdns-bad.local"], "ANY", qclass=0x8001, rd=False))
    # LLMNR (RFC 4795): port 5355, multicast.
    f = c.udp("192.168.50.21", 54321, "224.0.0.252", 5355, srv_mac=b"\x01\x00\x5e\x00\x00\xfc")
    f.dns(dns_query(0x4321, ["host.llmnr-bad.lan"], rd=False))
    # DNS-looking payload on a port that is not DNS: not parsed as DNS.
    f = c.udp(cli, 41007, "192.0.2.99", 9999)
    f.send(dns_query(0x5555, ["not-dns-port.bad.example"]).wire)
    c.expected_count = 9
    return c


def case_dns_tcp():
    c = Case("dns_tcp", "DNS over TCP: two messages in one segment, one message split across two segments, the "
             "length prefix split, and a stream with messages straddling segments", 2)
    for d in ["tcp-one.example", "tcp-two.example", "tcp-three.example", "tcp-four.example", "tcp-five.example",
              "tcp-six.example"]:
        c.ind("DOMAIN", d)
    cli, res = "192.168.60.10", "192.168.60.1"

    def resp_for(q, i):
        return dns_response(q.wire[0] << 8 | q.wire[1], q.names[0], "A", [("A", "192.0.2.%d" % (50 + i))])

    # 1. Two messages in one segment, both directions.
    f = c.tcp(cli, 42001, res, 53).open()
    q1, q2 = dns_query(0x0101, ["a.tcp-one.example"]), dns_query(0x0102, ["b.tcp-two.example"])
    f.send(dns_tcp_frame(q1) + dns_tcp_frame(q2))
    f.note_dns(q1)
    f.note_dns(q2)
    r1, r2 = resp_for(q1, 1), resp_for(q2, 2)
    f.send(dns_tcp_frame(r1) + dns_tcp_frame(r2), to_server=False)
    f.note_dns(r1)
    f.note_dns(r2)
    f.close()
    # 2. One message split across two segments (inside the name); the response too,
    # so that neither direction can be read without reassembly.
    f = c.tcp(cli, 42002, res, 53).open()
    q = dns_query(0x0201, ["c.tcp-three.example"])
    w = dns_tcp_frame(q)
    f.send(w[:20], ack=False)
    f.send(w[20:])
    f.note_dns(q)
    r = resp_for(q, 3)
    w = dns_tcp_frame(r)
    f.send(w[:25], to_server=False, ack=False)
    f.send(w[25:], to_server=False)
    f.note_dns(r)
    f.close()
    # 3. The two-byte length prefix split: one byte, then the rest.
    f = c.tcp(cli, 42003, res, 53).open()
    q = dns_query(0x0301, ["d.tcp-four.example"])
    w = dns_tcp_frame(q)
    f.send(w[:1], ack=False)
    f.send(w[1:])
    f.note_dns(q)
    r = resp_for(q, 4)
    w = dns_tcp_frame(r)
    f.send(w[:1], to_server=False, ack=False)
    f.send(w[1:], to_server=False)
    f.note_dns(r)
    f.close()
    # 4. A stream cut anywhere: [msg1 + first prefix byte of msg2] [second prefix byte + half of msg2] [rest].
    f = c.tcp(cli, 42004, res, 53).open()
    qa, qb = dns_query(0x0401, ["e.tcp-five.example"]), dns_query(0x0402, ["f.tcp-six.example"])
    w = dns_tcp_frame(qa) + dns_tcp_frame(qb)
    n1 = len(qa.wire) + 2
    cuts = [0, n1 + 1, n1 + 12, len(w)]
    for a, b in zip(cuts, cuts[1:]):
        f.send(w[a:b], ack=(b == len(w)))
    f.note_dns(qa)
    f.note_dns(qb)
    ra, rb = resp_for(qa, 5), resp_for(qb, 6)
    w = dns_tcp_frame(ra) + dns_tcp_frame(rb)
    f.send(w[:n1 + 7], to_server=False, ack=False)
    f.send(w[n1 + 7:], to_server=False)
    f.note_dns(ra)
    f.note_dns(rb)
    f.close()
    c.expected_count = 6
    return c


def case_dns_case_and_dot():
    c = Case("dns_case_and_dot", "Domain matching: case, trailing dots (in the feed and in an HTTP Host), label "
             "boundaries (notevil.example is not evil.example), most specific listed domain wins", 3)
    c.ind("DOMAIN", "evil.example")
    c.ind("DOMAIN", "a.evil.example")
    c.ind("DOMAIN", "Dot-Listed.Example.")  # listed with capitals and a trailing dot
    cli, res = "192.168.70.10", "192.168.70.1"
    names = [
        "WWW.EVIL.EXAMPLE",        # -> evil.example (case-insensitive)
        "notevil.example",         # no: label boundary
        "evil.example.net",        # no: not a suffix
        "x.a.evil.example",        # -> a.evil.example only (most specific)
        "evil.example",            # -> evil.example
        "A.Evil.Example",          # -> a.evil.example
        "aa.evil.example",         # -> evil.example (aa is not a)
        "www.dot-listed.example",  # -> Dot-Listed.Example.
        "example",                 # no
        "evil",                    # no
        "vil.example",             # no
    ]
    for i, n in enumerate(names):
        c.lookup(cli, 43001 + i, res, n)
    for i, host in enumerate(["Sub.EVIL.example.", "DOT-LISTED.EXAMPLE.", "evil.example.org"]):
        f = c.tcp(cli, 43101 + i, "192.0.2.80", 80).open()
        f.http(HttpReq("GET", "/", host, [UA_CURL, "Accept: */*"]), http_resp(200, b"<html>ok</html>"))
        f.close()
    c.expected_count = 8
    return c


def case_tls_sni():
    c = Case("tls_sni", "A TLS 1.2 handshake built byte by byte (GREASE in ciphers, extensions and groups): SNI "
             "domain, JA3 and server certificate SHA1 are listed; three alerts", 4)
    der = read_der("server.der")
    hello = hello_tls12_grease(c.rng, "login.tls-bad.example")
    c.ind("DOMAIN", "tls-bad.example")
    c.ind("JA3", hello.ja3, desc="JA3 " + hello.ja3_string)
    c.ind("CERT_HASH", hashlib.sha1(der).hexdigest())
    f = c.tcp("192.168.80.10", 44001, "198.51.100.44", 443).open()
    f.tls12(hello, [der])
    c.expected_count = 3
    return c


def case_tls_split():
    c = Case("tls_split", "TLS records across TCP segments: a ClientHello cut in two, a server flight with a "
             "two-certificate chain cut in three (only the leaf is the server certificate); and a TLS 1.3 "
             "ClientHello (supported_versions, key_share, ALPN, padding) whose certificate is encrypted", 5)
    leaf, inter = read_der("server.der"), read_der("benign.der")
    h12 = hello_tls12_grease(c.rng, "www.split-bad.example")
    h13 = hello_tls13(c.rng, "api.tls13-bad.example")
    c.ind("DOMAIN", "split-bad.example")
    c.ind("DOMAIN", "tls13-bad.example")
    c.ind("JA3", h12.ja3, desc="JA3 " + h12.ja3_string)
    c.ind("JA3", h13.ja3, desc="JA3 " + h13.ja3_string)
    c.ind("CERT_HASH", hashlib.sha1(leaf).hexdigest())
    f = c.tcp("192.168.81.10", 45001, "198.51.100.45", 443).open()
    f.tls12(h12, [leaf, inter], split_hello=60, split_flight=(120, 400))
    f = c.tcp("192.168.81.10", 45002, "198.51.100.46", 443).open()
    f.tls13(h13)
    c.expected_count = 5
    return c


def case_http():
    c = Case("http", "HTTP/1.1 requests: Host on a listed domain, a listed URL (with and without http:// in the "
             "feed), two pipelined GETs in one segment, a POST with a body followed by a GET, benign hosts", 6)
    c.ind("DOMAIN", "bad-http.example")
    c.ind("URL", "files.example.net/download/payload.bin")
    c.ind("URL", "http://scheme.example.net/x/y.php")
    c.ind("URL", "bad-http.example/panel/gate.php")
    cli = "192.168.90.10"
    # 1. Host on a listed domain.
    f = c.tcp(cli, 46001, "203.0.113.10", 80).open()
    f.http(HttpReq("GET", "/", "www.bad-http.example", [UA_BROWSER, "Accept: text/html"]),
           http_resp(200, b"<html>hello</html>"))
    f.close()
    # 2. Two pipelined GETs in one segment: a benign one, then a listed URL.
    f = c.tcp(cli, 46002, "203.0.113.20", 80).open()
    r1 = HttpReq("GET", "/index.html", "files.example.net", [UA_CURL, "Accept: */*"])
    r2 = HttpReq("GET", "/download/payload.bin", "files.example.net", [UA_CURL, "Accept: */*"])
    f.send(r1.wire + r2.wire)
    f.note_http(r1)
    f.note_http(r2)
    f.send(http_resp(200, b"<html>index</html>") + http_resp(200, b"MZ\x90\x00payload", b"application/octet-stream"),
           to_server=False)
    f.close()
    # 3. A POST with a body and a GET in the same segment (the body must be skipped
    # by Content-Length; it even contains a request-like line), then another GET.
    f = c.tcp(cli, 46003, "203.0.113.30", 80).open()
    post = HttpReq("POST", "/submit", "www.example.org",
                   [UA_CURL, "Content-Type: application/x-www-form-urlencoded"],
                   body=b"a=1&b=2&c=GET /evil HTTP/1.1")
    get = HttpReq("GET", "/x/y.php", "scheme.example.net", [UA_CURL])
    f.send(post.wire + get.wire)
    f.note_http(post)
    f.note_http(get)
    f.send(http_resp(204) + http_resp(200, b"ok"), to_server=False)
    gate = HttpReq("POST", "/panel/gate.php", "bad-http.example", [UA_CURL], body=b"id=42&os=linux")
    f.http(gate, http_resp(200, b"{}", b"application/json"))
    f.close()
    # 4. Benign: an unlisted host with a listed path, and a plain page.
    f = c.tcp(cli, 46004, "203.0.113.40", 80).open()
    f.http(HttpReq("GET", "/download/payload.bin", "files.example.org", [UA_CURL]), http_resp(404))
    f.http(HttpReq("GET", "/", "www.example.com", [UA_BROWSER]), http_resp(200, b"<html>example</html>"))
    f.close()
    # 5. Keep-alive: two requests to subdomains of one listed domain, one alert (dedup).
    f = c.tcp(cli, 46005, "203.0.113.50", 80).open()
    f.http(HttpReq("GET", "/a", "a.bad-http.example", [UA_BROWSER]), http_resp(200, b"a"))
    f.http(HttpReq("GET", "/b", "b.bad-http.example", [UA_BROWSER]), http_resp(200, b"b"))
    f.close()
    c.expected_count = 6
    return c


def case_ip_match():
    c = Case("ip_match", "ADDR and nested SUBNETs, IPv4 and IPv6, on either side of TCP, UDP and ICMP flows; the "
             "most specific entry wins; unlisted neighbours do not match", 7)
    for v in ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"]:
        c.ind("SUBNET", v)
    c.ind("ADDR", "10.1.2.3")
    for v in ["2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::/64"]:
        c.ind("SUBNET", v)
    c.ind("ADDR", "2001:db8:1:2::3")

    def tcp_conn(cli, cport, srv, sport):
        f = c.tcp(cli, cport, srv, sport).open()
        f.send(b"hello\r\n")
        f.send(b"220 ok\r\n", to_server=False)
        f.close()

    def udp_conn(cli, cport, srv, sport):
        f = c.udp(cli, cport, srv, sport)
        f.send(b"ping-" + cli.encode())
        f.send(b"pong-" + srv.encode(), to_server=False)

    tcp_conn("10.1.2.3", 47001, "192.0.2.10", 443)     # src: ADDR
    tcp_conn("192.0.2.20", 47002, "10.1.2.77", 8080)   # dest: /24
    udp_conn("10.1.9.9", 47003, "192.0.2.30", 5000)    # src: /16
    udp_conn("10.200.0.1", 47004, "10.1.2.3", 6000)    # src: /8, dest: ADDR
    IcmpFlow(c, "192.0.2.40", "10.9.8.7", 0x0101).ping(1)  # dest: /8
    tcp_conn("10.5.0.1", 47006, "10.6.0.1", 22)        # both sides, same /8: two alerts
    tcp_conn("192.0.2.50", 47007, "11.0.0.1", 80)      # no
    udp_conn("9.255.255.255", 47008, "192.0.2.60", 7)  # no
    tcp_conn("2001:db8:1:2::3", 47101, "2001:db9::10", 443)     # src: ADDR
    udp_conn("2001:db9::20", 47102, "2001:db8:1:2::99", 5000)   # dest: /64
    udp_conn("2001:db8:1:ffff::1", 47103, "2001:db9::30", 5000)  # src: /48
    IcmpFlow(c, "2001:db8:ff::1", "2001:db8:1:2::3", 0x0202).ping(1)  # src: /32, dest: ADDR
    tcp_conn("2001:db9::1", 47105, "2001:db7::1", 80)          # no
    c.expected_count = 13
    return c


def case_vlan():
    c = Case("vlan", "802.1Q (with priority bits), QinQ (802.1ad outer + 802.1Q inner, and double 802.1Q) tagged "
             "DNS and HTTP flows over IPv4 and IPv6; alerts carry the VLAN ids outer first; an untagged flow has "
             "no vlan field", 8, assert_no_vlan=True)
    c.ind("DOMAIN", "vlan-bad.example")
    # PCP 5 in the TCI must not leak into the id.
    c.lookup("192.168.100.10", 48001, "192.168.100.1", "a.vlan-bad.example", vlans=[(TPID_8021Q, (5 << 13) | 100)])
    f = c.tcp("192.168.100.11", 48002, "203.0.113.60", 80,
              vlans=[(TPID_8021AD, 200), (TPID_8021Q, 300)]).open()
    f.http(HttpReq("GET", "/", "www.vlan-bad.example", [UA_CURL]), http_resp(200, b"vlan"))
    f.close()
    c.lookup("192.168.100.12", 48003, "192.168.100.1", "b.vlan-bad.example",
             vlans=[(TPID_8021Q, 10), (TPID_8021Q, 20)])
    c.lookup("192.168.100.13", 48004, "192.168.100.1", "c.vlan-bad.example")
    c.lookup("2001:db8:400::10", 48005, "2001:db8:400::1", "d.vlan-bad.example", "AAAA",
             vlans=[(TPID_8021Q, 400)])
    c.lookup("192.168.100.14", 48006, "192.168.100.1", "www.example.org", vlans=[(TPID_8021Q, 100)])
    c.expected_count = 5
    return c


def case_ipv6():
    c = Case("ipv6", "DNS (unicast, with a hop-by-hop extension header, and mDNS on a link-local address) and "
             "HTTP over IPv6", 9)
    c.ind("DOMAIN", "ipv6-bad.example")
    c.ind("URL", "v6files.example/get/file.txt")
    cli = "2001:db8:100::10"
    c.lookup(cli, 49001, "2001:db8:100::53", "v6.ipv6-bad.example", "AAAA")
    c.lookup(cli, 49002, "2001:db8:100::53", "hbh.ipv6-bad.example", "AAAA", hop_by_hop=True)
    c.lookup(cli, 49003, "2001:db8:100::53", "www.example.com", "AAAA")
    f = c.udp("fe80::1c2:3ff:fe04:506", 5353, "ff02::fb", 5353, srv_mac=b"\x33\x33\x00\x00\x00\xfb")
    f.dns(dns_query(0, ["printer.ipv6-bad.example"], "ANY", qclass=0x8001, rd=False))
    f = c.tcp(cli, 49004, "2001:db8:200::80", 80).open()
    f.http(HttpReq("GET", "/get/file.txt", "v6files.example", [UA_CURL]), http_resp(200, b"file"))
    f.close()
    f = c.tcp(cli, 49005, "2001:db8:200::81", 80).open()
    f.http(HttpReq("GET", "/", "www.ipv6-bad.example", [UA_BROWSER]), http_resp(200, b"<html>v6</html>"))
    f.close()
    c.expected_count = 5
    return c


def case_malformed():
    c = Case("malformed", "Truncated and invalid frames (Ethernet, VLAN, IPv4, IPv6, TCP, UDP, DNS), snaplen-cut "
             "records and random garbage, interleaved with one valid DNS lookup that must alert exactly once; the "
             "sensor must exit 0", 10)
    c.ind("DOMAIN", "malformed-bad.example")
    rng = c.rng
    pc = c.pcap
    cm, sm = mac_for("192.168.110.10"), mac_for("192.168.110.1")

    def eth(et, payload, vlans=()):
        return ether(cm, sm, et, payload, vlans)

    def ip4(l4, **kw):
        return bytes(IP(src="192.168.110.10", dst="192.168.110.1", **kw) / l4)

    def ip6(l4, **kw):
        return bytes(IPv6(src="2001:db8:110::10", dst="2001:db8:110::1", **kw) / l4)

    dnsq = dns_query(0x7777, ["www.malformed-bad.example"]).wire
    benign_q = dns_query(0x7778, ["len.example.org"]).wire

    def udp4(sport, q):
        return ip4(UDP(sport=sport, dport=53) / Raw(q))

    bad = []
    bad.append(b"")                                            # empty record
    bad.append(b"\x02\x00\x00")                                # 3 bytes: no Ethernet header
    bad.append(eth(ETH_IPV4, b""))                             # Ethernet only
    # Headers no decoder may accept: they carry the listed name on their own
    # 5-tuples, so that reading past the error would show as an extra alert.
    g = udp4(50010, dnsq)
    bad.append(eth(ETH_IPV4, g[:10]))                          # IPv4 header cut
    g = udp4(50011, dnsq)
    bad.append(eth(ETH_IPV4, b"\x43" + g[1:]))                  # IHL 3 (< 5)
    g = udp4(50012, dnsq)
    bad.append(eth(ETH_IPV4, b"\x4f" + g[1:20]))                # IHL 15, only 20 bytes
    g = udp4(50013, dnsq)
    bad.append(eth(ETH_IPV4, g[:2] + u16(12) + g[4:]))         # total length < header length
    g = udp4(50014, dnsq)
    bad.append(eth(ETH_IPV4, b"\x65" + g[1:]))                  # version 6 in an IPv4 frame
    # Lengths that disagree with the frame: a decoder may reject them or use
    # what is there (as for a snaplen-cut packet), so they carry a benign name.
    g = udp4(50020, benign_q)
    bad.append(eth(ETH_IPV4, g[:2] + u16(1500) + g[4:]))       # total length > frame
    u = bytes(UDP(sport=50021, dport=53) / Raw(benign_q))
    bad.append(eth(ETH_IPV4, ip4(Raw(u[:4] + u16(4) + u[6:]), proto=17)))     # UDP length 4 (< 8)
    u = bytes(UDP(sport=50022, dport=53) / Raw(benign_q))
    bad.append(eth(ETH_IPV4, ip4(Raw(u[:4] + u16(2000) + u[6:]), proto=17)))  # UDP length > IP payload
    g6 = ip6(UDP(sport=50023, dport=53) / Raw(benign_q))
    bad.append(eth(ETH_IPV6, g6[:4] + u16(3000) + g6[6:]))     # IPv6 payload length > frame
    bad.append(eth(ETH_IPV6, g6[:20]))                         # IPv6 header cut
    bad.append(eth(ETH_IPV4, ip4(Raw(b"\x00\x35\x01"), proto=6)))   # TCP header cut (3 bytes)
    t = bytes(TCP(sport=50001, dport=80, flags="PA", dataofs=2) / Raw(b"GET / HTTP/1.1\r\n\r\n"))
    bad.append(eth(ETH_IPV4, ip4(Raw(t), proto=6)))            # TCP data offset 2 (< 5)
    t = bytes(TCP(sport=50002, dport=80, flags="S", dataofs=15))
    bad.append(eth(ETH_IPV4, ip4(Raw(t), proto=6)))            # TCP data offset 15 past the end
    bad.append(eth(ETH_IPV4, ip4(Raw(b"\xc3\x50\x00"), proto=17)))  # UDP header cut
    h = bytes(IPv6(src="2001:db8:110::10", dst="2001:db8:110::1", nh=0)) + b"\x11\x08"  # hop-by-hop cut
    bad.append(eth(ETH_IPV6, h[:4] + u16(2) + h[6:]))
    bad.append(eth(ETH_IPV6, ip6(Raw(b"\x11\xff" + b"\x00" * 6), nh=60)))   # dest-opts length past the end
    bad.append(eth(TPID_8021Q, b"\x00\x64"))                   # VLAN tag cut
    many = [(TPID_8021Q, 1), (TPID_8021Q, 2), (TPID_8021Q, 3), (TPID_8021Q, 4), (TPID_8021Q, 5)]
    bad.append(eth(ETH_IPV4, ip4(UDP(sport=50005, dport=53) / Raw(dns_query(1, ["deep.example.org"]).wire)), many))
    bad.append(eth(ETH_ARP, bytes(rng.getrandbits(8) for _ in range(28))))
    # DNS: header only, a label running past the end, a compression loop, a
    # reserved label type, a huge QDCOUNT, a name over 255 bytes.
    dns_bad = [
        dnsq[:8],
        struct.pack("!HHHHHH", 1, 0x100, 1, 0, 0, 0) + b"\x3fmalformed",
        struct.pack("!HHHHHH", 2, 0x100, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01",
        struct.pack("!HHHHHH", 3, 0x100, 1, 0, 0, 0) + b"\x03www\xc0\x0c" + b"\x00\x01\x00\x01",
        struct.pack("!HHHHHH", 4, 0x100, 1, 0, 0, 0) + b"\x45abcde\x00\x00\x01\x00\x01",
        struct.pack("!HHHHHH", 5, 0x100, 0xFFFF, 0, 0, 0) + dns_wire_name(labels_of("x.example.org")) + b"\x00\x01\x00\x01",
        struct.pack("!HHHHHH", 6, 0x100, 1, 0, 0, 0) + dns_wire_name([b"a" * 63] * 4 + [b"example", b"org"])
        + b"\x00\x01\x00\x01",
        struct.pack("!HHHHHH", 7, 0x8180, 1, 5, 0, 0) + dns_wire_name(labels_of("y.example.org"))
        + b"\x00\x01\x00\x01" + b"\xc0\x0c\x00\x01\x00\x01\x00\x00",   # answer section cut
    ]
    for i, d in enumerate(dns_bad):
        bad.append(eth(ETH_IPV4, ip4(UDP(sport=50100 + i, dport=53) / Raw(d))))
    # DNS over TCP: a length prefix claiming more than ever arrives, then FIN.
    seq = 1000
    for flags, data in (("S", b""), ("PA", b"\xff\xff" + dnsq), ("FA", b"")):
        bad.append(eth(ETH_IPV4, ip4(TCP(sport=50200, dport=53, flags=flags, seq=seq) / Raw(data), flags="DF")))
        seq += len(data) + 1
    # IPv4 fragment (MF set, offset 0) holding a complete UDP header and DNS message.
    bad.append(eth(ETH_IPV4, ip4(UDP(sport=50300, dport=53) / Raw(dns_query(9, ["frag.example.org"]).wire),
                                 flags="MF", id=0x4242)))
    # TCP with every flag, and a request line cut mid-way.
    bad.append(eth(ETH_IPV4, ip4(TCP(sport=50400, dport=80, flags="FSRPAUEC") / Raw(b"GET /a"))))
    # Garbage: random frames, and random payloads to port 53 over valid headers.
    for _ in range(24):
        bad.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))))
    for i in range(12):
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 120)))
        bad.append(eth(ETH_IPV4, ip4(UDP(sport=50500 + i, dport=53) / Raw(junk))))
        bad.append(eth(ETH_IPV4, ip4(TCP(sport=50600 + i, dport=53, flags="PA", seq=i) / Raw(junk))))
    rng.shuffle(bad)
    half = len(bad) // 2
    for frame in bad[:half]:
        pc.add(frame)
    # The valid lookup: query, garbage, response (with 4 trailing bytes after the
    # IP datagram, as an FCS would leave), more garbage.
    f = c.udp("192.168.110.10", 50000, "192.168.110.1", 53)
    q = dns_query(0x7777, ["www.malformed-bad.example"])
    f.dns(q)
    for frame in bad[half:half + 5]:
        pc.add(frame)
    r = dns_response(0x7777, "www.malformed-bad.example", "A", [("A", "192.0.2.7")])
    frame = f._l3(False, UDP(sport=53, dport=50000) / Raw(r.wire)) + b"\xde\xad\xbe\xef"
    f.emit(frame, to_server=False)
    f.note_dns(r)
    for frame in bad[half + 5:]:
        pc.add(frame)
    # A record cut by the snaplen (caplen < len) inside the DNS header.
    full = eth(ETH_IPV4, ip4(UDP(sport=50700, dport=53) / Raw(dns_query(3, ["cut.malformed-bad.example"]).wire)))
    pc.add(full[:14 + 20 + 8 + 6], orig_len=len(full))
    c.expected_count = 1
    return c


def case_escaping():
    c = Case("escaping", "Odd bytes in names: a DNS label holding '\"', '\\\\', 0x01, 0xff, UTF-8 'e-acute', a dot "
             "and a space (presentation form, JSON escapes, invalid UTF-8 as \\u00XX); a label containing a dot "
             "is not a label boundary; an HTTP Host and URI with quotes, backslashes and 0xff", 11)
    c.ind("DOMAIN", "esc-bad.example")
    cli, res = "192.168.120.10", "192.168.120.1"
    weird = [b'we"ird\\ \x01\xff\xc3\xa9.dot', b"esc-bad", b"example"]
    c.lookup(cli, 51001, res, weird)
    c.lookup(cli, 51002, res, [b"x.esc-bad", b"example"])  # "x\.esc-bad.example": one label + example
    f = c.tcp(cli, 51003, "203.0.113.70", 80).open()
    f.http(HttpReq("GET", b'/a"b\\c\xff', b'caf\xc3\xa9"\\\xff.esc-bad.example', [UA_CURL]), http_resp(200, b"x"))
    f.close()
    c.expected_count = 2
    return c


def case_no_match():
    c = Case("no_match", "Traffic near, but not matching, indicators of every type: zero alerts", 12)
    benign = read_der("benign.der")
    server = read_der("server.der")
    other_hello = hello_tls12_plain(random.Random(99), "www.example.org")
    c.ind("DOMAIN", "evil.example")
    c.ind("DOMAIN", "nm-bad.example")
    c.ind("URL", "nm.example/download")
    c.ind("ADDR", "192.0.2.1")
    c.ind("SUBNET", "198.51.100.0/25")
    c.ind("ADDR", "2001:db8::1")
    c.ind("SUBNET", "2001:db8:aaaa::/48")
    c.ind("JA3", other_hello.ja3)
    c.ind("CERT_HASH", hashlib.sha1(server).hexdigest())
    cli, res = "192.0.2.10", "192.0.2.53"
    for i, n in enumerate(["evil.example.com", "notevil.example", "evilexample", "example", "nm-bad.example.org",
                           "www.example.org"]):
        c.lookup(cli, 52001 + i, res, n)
    f = c.tcp(cli, 52101, "198.51.100.200", 80).open()
    f.http(HttpReq("GET", "/download/x.bin", "nm.example", [UA_CURL]), http_resp(404))
    f.http(HttpReq("GET", "/download?x=1", "nm.example", [UA_CURL]), http_resp(404))
    f.http(HttpReq("GET", "/download/", "nm.example", [UA_CURL]), http_resp(404))
    f.http(HttpReq("GET", "/download", None, [UA_CURL], version=b"HTTP/1.0"), http_resp(404))
    f.close()
    f = c.tcp(cli, 52102, "198.51.100.201", 443).open()
    f.tls12(hello_tls12_grease(c.rng, "www.example.org"), [benign])
    IcmpFlow(c, "192.0.2.100", "198.51.100.128", 0x0303).ping(1)
    f = c.udp("2001:db8::2", 52201, "2001:db8:aaab::1", 4500)
    f.send(b"\x00" * 8)
    f.send(b"\x00" * 8, to_server=False)
    c.expected_count = 0
    return c


def case_dns_answer():
    c = Case("dns_answer", "DNS answers: A and AAAA answer addresses against ADDR/SUBNET (dns.answer; one alert per "
             "flow and indicator), CNAME chains, answers over TCP, MX/TXT/NXDOMAIN (no address); connections to the "
             "addresses a flagged name resolved to (conn.resolved: TCP, UDP, ICMP, IPv4 and IPv6), but not to "
             "another address, not from such an address, not when the connection starts before the answer, and "
             "not when only a CNAME target (not the question) is flagged", 13)
    c.ind("SUBNET", "203.0.113.128/25")
    c.ind("ADDR", "2001:db8:a5::66")
    c.ind("DOMAIN", "resolved-bad.example")
    c.ind("DOMAIN", "cname-bad.example")
    cli, res = "192.168.130.10", "192.168.130.1"
    cli6, res6 = "2001:db8:130::10", "2001:db8:130::53"

    def tcp_talk(src, sport, dst, dport, data=b"hello\r\n"):
        f = c.tcp(src, sport, dst, dport).open()
        f.send(data)
        f.send(b"ok\r\n", to_server=False)
        f.close()
        return f

    def udp_talk(src, sport, dst, dport):
        f = c.udp(src, sport, dst, dport)
        f.send(b"\x01" + rand_bytes(c.rng, 40))
        f.send(b"\x02" + rand_bytes(c.rng, 24), to_server=False)
        return f

    # dns.answer: one listed address among two; the listed AAAA second; two
    # addresses of one subnet in one answer (one alert, the first one seen).
    c.lookup(cli, 53001, res, "www.example.org", "A", [("A", "192.0.2.20"), ("A", "203.0.113.150")])
    c.lookup(cli6, 53002, res6, "v6.example.net", "AAAA", [("AAAA", "2001:db8:a5::67"), ("AAAA", "2001:db8:a5::66")])
    c.lookup(cli, 53003, res, "pool.example.com", "A", [("A", "203.0.113.200"), ("A", "203.0.113.201")])
    # A CNAME chain: the alert names the question, not the owner of the A record.
    c.lookup(cli, 53004, res, "www.shop.example", "A",
             [("CNAME", "shop.cdn.example.net"), ("CNAME", "edge7.cdn.example.net"), ("A", "203.0.113.140", 60),
              ("A", "192.0.2.141", 60)], chain=True)
    c.lookup(cli, 53005, res, "www.shop.example", "AAAA",
             [("CNAME", "shop.cdn.example.net"), ("AAAA", "2001:db8:a5::1")], chain=True)
    # Over TCP.
    f = c.tcp(cli, 53006, res, 53).open()
    q = dns_query(0x6001, ["files.example.net"])
    f.send(dns_tcp_frame(q))
    f.note_dns(q)
    r = dns_response(0x6001, "files.example.net", "A", [("A", "203.0.113.222")])
    f.send(dns_tcp_frame(r), to_server=False)
    f.note_dns(r)
    f.close()
    # No address in the answer: MX, TXT (holding a listed address as text), NXDOMAIN.
    c.lookup(cli, 53007, res, "example.com", "MX", [("MX", (10, "mx.example.com"))])
    c.lookup(cli, 53008, res, "example.com", "TXT", [("TXT", b"v=spf1 ip4:203.0.113.130 -all")])
    c.lookup(cli, 53009, res, "gone.resolved-bad.example", "A", [], rcode=3)
    # A flagged name (through a CNAME) resolves to two IPv4 and one IPv6 address...
    c.lookup(cli, 53010, res, "login.resolved-bad.example", "A",
             [("CNAME", "lb.hosting.example"), ("A", "198.51.100.10"), ("A", "198.51.100.11")], chain=True)
    c.lookup(cli, 53011, res, "login.resolved-bad.example", "AAAA",
             [("CNAME", "lb.hosting.example"), ("AAAA", "2001:db8:77::10")], chain=True)
    # ... then connections to them: TCP and UDP, IPv4 and IPv6, and ICMP.
    tcp_talk(cli, 53100, "198.51.100.10", 443)
    udp_talk(cli, 53101, "198.51.100.11", 443)
    f = c.tcp(cli6, 53102, "2001:db8:77::10", 80).open()
    f.http(HttpReq("GET", "/", "login.resolved-bad.example", [UA_BROWSER]), http_resp(200, b"<html>login</html>"))
    f.close()
    udp_talk(cli6, 53103, "2001:db8:77::10", 4500)
    IcmpFlow(c, cli, "198.51.100.10", 0x0130).ping(1)
    # Not an answer address; an answer address as the source, not the destination.
    tcp_talk(cli, 53104, "198.51.100.12", 443)
    tcp_talk("198.51.100.10", 40000, cli, 8080)
    # A flagged name whose answer is also in a listed subnet: four places.
    c.lookup(cli, 53110, res, "c2.resolved-bad.example", "A", [("A", "203.0.113.129")])
    tcp_talk(cli, 53111, "203.0.113.129", 8443)
    # The connection starts between the query and the answer: no conn.resolved
    # (neither when it starts nor when it ends); a later one alerts.
    early = []

    def connect_early():
        early.append(c.tcp(cli, 53120, "203.0.113.30", 443).open())

    c.lookup(cli, 53121, res, "api.cname-bad.example", "A", [("A", "203.0.113.30")], between=connect_early)
    early[0].send(b"early data\r\n")
    early[0].send(b"ok\r\n", to_server=False)
    early[0].close()
    tcp_talk(cli, 53122, "203.0.113.30", 443)
    # Only the CNAME target is flagged, not the question: no alert anywhere.
    c.lookup(cli, 53130, res, "innocent.example.org", "A",
             [("CNAME", "x.cname-bad.example"), ("A", "203.0.113.31")], chain=True)
    tcp_talk(cli, 53131, "203.0.113.31", 443)
    # One name answered twice, a connection after each answer: both alert.
    c.lookup(cli, 53140, res, "twice.cname-bad.example", "A", [("A", "203.0.113.32")])
    tcp_talk(cli, 53141, "203.0.113.32", 443)
    c.lookup(cli, 53142, res, "twice.cname-bad.example", "A", [("A", "203.0.113.32")])
    tcp_talk(cli, 53143, "203.0.113.32", 443)
    c.expected_count = 24
    return c


def case_dns_answer_late():
    c = Case("dns_answer_late", "conn.resolved and answers that arrive after the connection started: a flagged name "
             "resolves to an address, a connection to it starts (conn.resolved for that name), then a second "
             "flagged name (another indicator) resolves to the same address while the connection is open: that "
             "answer came after the connection's first packet, so it must not raise a second conn.resolved; and a "
             "connection after an answer that ends (closed) before the input does raises its conn.resolved. "
             "One worker only: with several, a flow that ends before the input does can miss its "
             "conn.resolved when the worker that handles the answer runs behind (docs/EVENTS.md)", 14)
    c.workers = [1]
    c.ind("DOMAIN", "first-bad.example")
    c.ind("DOMAIN", "second-bad.example")
    cli, res = "192.168.140.10", "192.168.140.1"
    c.lookup(cli, 54001, res, "a.first-bad.example", "A", [("A", "203.0.113.90")])
    f = c.tcp(cli, 54002, "203.0.113.90", 443).open()
    f.send(b"hello\r\n")
    c.lookup(cli, 54003, res, "b.second-bad.example", "A", [("A", "203.0.113.90")])
    f.send(b"ok\r\n", to_server=False)
    f.close()
    # A connection after the answer that ends (closed, then 10 s without
    # packets on its worker) before the input does: its conn.resolved must not
    # depend on which worker handled the answer, or when.
    c.lookup(cli, 54010, res, "c.first-bad.example", "A", [("A", "203.0.113.91")])
    f = c.tcp(cli, 54011, "203.0.113.91", 80).open()
    f.http(HttpReq("GET", "/", "www.example.com", [UA_CURL]), http_resp(200, b"x"))
    f.close()
    for i in range(WAKE_FLOWS + 2):
        host = "192.168.140.%d" % (20 + i)
        f = c.tcp(host, 54100 + i, "192.0.2.%d" % (100 + i), 80).open(gap_us=10 * 1000000 if i == 0 else None)
        f.send(b"wake\r\n")
        f.close()
    c.expected_count = 5
    return c


META_ARGS = ["--set", "events.dns=true", "--set", "events.http=true", "--set", "events.tls=true",
             "--set", "events.quic=true", "--set", "events.flow=true"]


def case_metadata():
    c = Case("metadata", "Metadata events (dns, http, tls, quic, flow turned on with --set): DNS queries and answers "
             "(A, AAAA, CNAME chains, MX, PTR, TXT, NXDOMAIN, a query without answer, over TCP, IPv6 with a VLAN "
             "tag, mDNS); HTTP transactions (Host with a port, upper case, no Host, a request without response, "
             "a target starting with '?'); TLS 1.2 and 1.3 handshakes (JA3, JA4 with and without SNI, odd ALPN, "
             "certificate fingerprint); ICMP, UDP and TCP flows that time out, close, reset, reuse a 5-tuple or "
             "stay open; Community ID on every event. Phase 1, 130 s of silence, phase 2.", 15)
    rng = c.rng
    c.args = list(META_ARGS)
    c.event_types = ("dns", "http", "tls", "quic", "flow")
    benign, server = read_der("benign.der"), read_der("server.der")
    # A TLS 1.2 hello without SNI, ALPN http/1.1 (JA4 "t12i...h1").
    nosni = ClientHello(rng, [0xC02F, 0xC030, 0x009C, 0x002F],
                        [groups_ext([29, 23]), point_formats_ext([0]), sigalgs_ext([0x0804, 0x0403, 0x0401]),
                         alpn_ext(["http/1.1"]), (23, b"")])
    # A TLS 1.3 hello whose first ALPN value is not alphanumeric (JA4 uses its hex digits).
    oddalpn = ClientHello(rng, [0x1301, 0x1303, 0xC02B],
                          [sni_ext("odd.meta.example"), groups_ext([29]), sigalgs_ext([0x0403, 0x0804]),
                           (16, vec16(vec8(b"\xfe\x01") + vec8(b"h2"))),
                           (51, vec16(u16(29) + vec16(rand_bytes(rng, 32)))),
                           (43, vec8(u16(0x0304) + u16(0x0303)))])
    c.ind("DOMAIN", "meta-bad.example")
    c.ind("ADDR", "198.51.100.99")
    c.ind("JA4", oddalpn.ja4, desc="JA4 of the odd-ALPN hello")
    cli, cli2, res = "192.168.150.10", "192.168.150.11", "192.168.150.1"
    cli6, res6 = "2001:db8:150::10", "2001:db8:150::53"

    # ---- phase 1 ----
    c.lookup(cli, 55001, res, "www.meta.example", "A",
             [("CNAME", "edge.meta-cdn.example", 3600), ("A", "192.0.2.44", 60)], chain=True)
    c.lookup(cli, 55002, res, "www.meta.example", "AAAA",
             [("CNAME", "edge.meta-cdn.example", 3600), ("AAAA", "2001:db8:44::44", 60)], chain=True)
    c.lookup(cli, 55003, res, "nx.meta.example", "A", [], rcode=3)
    c.lookup(cli, 55004, res, "meta.example", "MX", [("MX", (10, "mail.meta.example"))])
    c.lookup(cli, 55005, res, "44.2.0.192.in-addr.arpa", "PTR", [("PTR", "www.meta.example")])
    c.lookup(cli, 55006, res, "meta.example", "TXT", [("TXT", b"v=spf1 -all")])
    f = c.udp(cli, 55007, res)
    f.dns(dns_query(0x5507, ["lost.meta.example"]))                   # never answered
    c.lookup(cli, 55008, res, "c2.meta-bad.example", "A", [("A", "203.0.113.44")])
    f = c.tcp(cli, 55009, res, 53).open()
    q = dns_query(0x5509, ["big.meta.example"], "TXT")
    f.send(dns_tcp_frame(q))
    f.note_dns(q)
    r = dns_response(0x5509, "big.meta.example", "TXT", [("TXT", b"x" * 200), ("TXT", b"y" * 200)])
    f.send(dns_tcp_frame(r), to_server=False)
    f.note_dns(r)
    f.close()
    c.lookup(cli6, 55010, res6, "v6.meta.example", "AAAA", [("AAAA", "2001:db8:44::45")],
             vlans=[(TPID_8021Q, 150)])
    f = c.udp(cli, 5353, "224.0.0.251", 5353, srv_mac=b"\x01\x00\x5e\x00\x00\xfb")
    f.dns(dns_query(0, ["printer.meta.local"], "ANY", qclass=0x8001, rd=False))
    # HTTP.
    f = c.tcp(cli, 55020, "192.0.2.44", 80).open()
    f.http(HttpReq("GET", "/", "www.meta.example", [UA_BROWSER, "Accept: text/html"]), http_resp(200, b"<html/>"))
    f.http(HttpReq("GET", "/img.png?x=1", "www.meta.example", [UA_BROWSER]), http_resp(404))
    f.close()
    f = c.tcp(cli, 55021, "192.0.2.45", 8080).open()
    f.http(HttpReq("GET", "/api/v1?q=1", "API.Meta.Example:8080", [UA_CURL]),
           http_resp(200, b"{}", b"application/json"))
    f.http(HttpReq("POST", "/api/v1/upload", "API.Meta.Example:8080", [UA_CURL], body=b"k=v"), http_resp(204))
    f.close()
    f = c.tcp(cli, 55022, "192.0.2.46", 80).open()
    f.http(HttpReq("GET", "/legacy", None, [], version=b"HTTP/1.0"), http_resp(200, b"old"))
    f.close()
    f = c.tcp(cli, 55023, "192.0.2.47", 80).open()
    f.http(HttpReq("GET", "/pending", "www.meta.example:80", [UA_CURL]))          # no response
    f.close()
    # (Not to the address c2.meta-bad.example resolved to: this flow ends
    # before the input does, where conn.resolved depends on worker timing;
    # dns_answer_late tests that.)
    f = c.tcp(cli, 55024, "203.0.113.45", 80).open()
    f.http(HttpReq("GET", "/gate.php", "c2.meta-bad.example", [UA_CURL]), http_resp(200, b"ok"))
    f.close()
    f = c.tcp(cli6, 55025, "2001:db8:44::44", 80).open()
    f.http(HttpReq("GET", "?lang=en", "www.meta.example", [UA_BROWSER]), http_resp(302))
    f.close()
    # TLS.
    f = c.tcp(cli, 55030, "192.0.2.50", 443).open()
    f.tls12(hello_tls12_grease(rng, "www.meta.example"), [benign], app_rounds=1)
    f = c.tcp(cli, 55031, "192.0.2.51", 443).open()
    f.tls13(hello_tls13(rng, "api.meta.example"), app_rounds=1)
    f = c.tcp(cli, 55032, "192.0.2.52", 443).open()
    f.tls12(nosni, [server], app_rounds=1)
    f = c.tcp(cli, 55033, "192.0.2.53", 443).open()
    f.tls13(oddalpn, app_rounds=1)
    # ICMP, UDP both ways and one way, a refused TCP connection, an open one,
    # a 5-tuple reused after a close, a listed address.
    p = IcmpFlow(c, cli, "192.0.2.60", 0x0150)
    p.ping(1)
    p.ping(2)
    f = c.udp(cli, 123, "192.0.2.123", 123)
    f.send(b"\x23" + b"\x00" * 47)
    f.send(b"\x24\x02\x03\xe8" + rand_bytes(rng, 44), to_server=False)
    f = c.udp(cli, 55035, "192.0.2.61", 514)
    f.send(b"<34>Nov 14 22:13:20 host app: one-way syslog line")
    f = c.tcp(cli, 55040, "192.0.2.62", 23)
    f._seg(True, "S")
    f._seg(False, "RA")
    ssh = c.tcp(cli, 55041, "192.0.2.63", 22).open()
    ssh.send(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    ssh.send(b"SSH-2.0-OpenSSH_9.3\r\n", to_server=False)
    for reuse in (False, True):
        f = c.tcp(cli, 55042, "192.0.2.64", 80, reuse=reuse).open()
        f.http(HttpReq("GET", "/again", "www.meta.example", [UA_CURL]), http_resp(200, b"again"))
        f.close()
    f = c.udp(cli2, 55043, "198.51.100.99", 5000)
    f.send(b"beacon")
    f.send(b"ack", to_server=False)

    # ---- 130 s of silence: UDP (120 s) and ICMP (60 s) flows time out, closed
    # TCP flows end, TCP flows (600 s) stay. ----
    # ---- phase 2: the open flow goes on; enough flows for every worker. ----
    ssh.send(rand_bytes(rng, 64), gap_us=130 * 1000000)
    ssh.send(rand_bytes(rng, 64), to_server=False)
    for i in range(WAKE_FLOWS + 2):
        host = "192.168.150.%d" % (20 + i)
        if i % 2:
            c.lookup(host, 56000 + i, res, "wake%d.meta.example" % i, "A", [("A", "192.0.2.%d" % (100 + i))])
        else:
            f = c.tcp(host, 56000 + i, "192.0.2.%d" % (100 + i), 80).open()
            f.http(HttpReq("GET", "/w%d" % i, "wake.meta.example", [UA_CURL]), http_resp(200, b"w"))
            f.close()
    c.expected_count = 4
    return c


DEMO_SOURCE = "kagami-demo"


def case_demo():
    c = Case("demo", "The demo capture (pcaps/demo.pcap) with config/indicators/demo.intel: a small office network: "
             "lookups, web browsing, a malware beacon over TLS, a phishing page, a payload download, a connection "
             "to a listed address and an inbound scan from a listed subnet", 20, pcap_name="demo.pcap")
    rng = c.rng
    c2_der, web_der = read_der("demo-c2.der"), read_der("benign.der")
    laptop, desktop, gw = "192.168.1.23", "192.168.1.42", "192.168.1.1"
    malware_hello = hello_tls12_plain(rng, "cdn.malware-c2.example",
                                      ciphers=[0xC02C, 0xC030, 0x009F, 0xCCA9, 0xCCA8, 0xC02B, 0xC02F, 0x009E])
    browser_hello = hello_tls12_grease(rng, "www.example.org")
    for itype, value, desc in [
        ("DOMAIN", "malware-c2.example", "Command-and-control domain"),
        ("DOMAIN", "phish.example", "Credential phishing kit"),
        ("DOMAIN", "ransom-pay.example", "Ransomware payment portal"),
        ("URL", "downloads.example.net/files/invoice.exe", "Malicious payload URL"),
        ("URL", "cdn.example.com/js/skimmer.js", "Web skimmer script"),
        ("ADDR", "203.0.113.66", "Reverse shell listener"),
        ("ADDR", "2001:db8:bad::66", "Known C2 server (IPv6)"),
        ("SUBNET", "198.51.100.0/24", "Scanning network"),
        ("JA3", malware_hello.ja3, "Malware TLS client fingerprint"),
        ("JA3", "e7d705a3286e19ea42f587b344ee6865", "Another TLS client fingerprint"),
        ("CERT_HASH", hashlib.sha1(c2_der).hexdigest(), "Self-signed C2 certificate"),
    ]:
        c.ind(itype, value, DEMO_SOURCE, desc)

    def look(cli, name, ip, qtype="A"):
        return c.lookup(cli, rng.randint(30000, 60999), gw, name, qtype, [(qtype, ip)])

    # Broadcast noise: ARP.
    arp = bytes.fromhex("0001080006040001") + mac_for(laptop) + ipaddress.IPv4Address(laptop).packed
    arp += b"\x00" * 6 + ipaddress.IPv4Address(gw).packed
    c.pcap.add(ether(mac_for(laptop), b"\xff" * 6, ETH_ARP, arp + b"\x00" * 18))
    # Benign browsing: lookup, HTTPS with a browser fingerprint, plain HTTP.
    look(laptop, "www.example.org", "192.0.2.20")
    look(laptop, "www.example.org", "2001:db8:20::20", "AAAA")
    f = c.tcp(laptop, 51514, "192.0.2.20", 443).open()
    f.tls12(browser_hello, [web_der], app_rounds=3)
    look(desktop, "www.example.com", "192.0.2.10")
    f = c.tcp(desktop, 51620, "192.0.2.10", 80).open()
    f.http(HttpReq("GET", "/", "www.example.com", [UA_BROWSER, "Accept: text/html"]),
           http_resp(200, b"<html><body>Example Domain</body></html>"))
    f.http(HttpReq("GET", "/favicon.ico", "www.example.com", [UA_BROWSER]), http_resp(404))
    f.close()
    # NTP.
    f = c.udp(desktop, 123, "192.0.2.123", 123)
    f.send(b"\x23" + b"\x00" * 47)
    f.send(b"\x24\x02\x03\xe8" + bytes(rng.getrandbits(8) for _ in range(44)), to_server=False)
    # Malware beacon: DNS for the C2 domain, then TLS with the listed fingerprint and certificate.
    look(laptop, "update.malware-c2.example", "203.0.113.80")
    look(laptop, "cdn.malware-c2.example", "203.0.113.80")
    f = c.tcp(laptop, 52301, "203.0.113.80", 443).open()
    f.tls12(malware_hello, [c2_der], app_rounds=1)
    # Phishing page over plain HTTP.
    look(desktop, "login.tracker.phish.example", "192.0.2.77")
    f = c.tcp(desktop, 51702, "192.0.2.77", 80).open()
    f.http(HttpReq("GET", "/account/verify?session=8f2a", "login.tracker.phish.example",
                   [UA_BROWSER, "Accept: text/html"]), http_resp(200, b"<html><form>password</form></html>"))
    f.close()
    # Payload download from an otherwise benign host (listed URL).
    look(desktop, "downloads.example.net", "192.0.2.88")
    f = c.tcp(desktop, 51703, "192.0.2.88", 80).open()
    f.http(HttpReq("GET", "/files/readme.txt", "downloads.example.net", [UA_BROWSER]), http_resp(200, b"readme"))
    f.http(HttpReq("GET", "/files/invoice.exe", "downloads.example.net", [UA_BROWSER]),
           http_resp(200, b"MZ" + bytes(rng.getrandbits(8) for _ in range(600)), b"application/octet-stream"))
    f.close()
    # Reverse shell to a listed address.
    f = c.tcp(laptop, 52999, "203.0.113.66", 4444).open()
    f.send(b"id\n", to_server=False)
    f.send(b"uid=1000(alice) gid=1000(alice)\n")
    f.close()
    # Inbound scan from a listed network: SYN, RST.
    for port in (22, 3389):
        f = c.tcp("198.51.100.23", 61000 + port, laptop, port)
        f._seg(True, "S")
        f._seg(False, "RA")
    c.expected_count = 13
    return c


CASES = [case_dns_udp, case_dns_tcp, case_dns_case_and_dot, case_tls_sni, case_tls_split, case_http, case_ip_match,
         case_vlan, case_ipv6, case_malformed, case_escaping, case_no_match, case_demo, case_dns_answer,
         case_dns_answer_late, case_metadata]

# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


def render(case):
    """Returns {relative path: bytes} for everything the case produces."""
    files = {}
    files["pcaps/" + case.pcap_name] = case.pcap.to_bytes()
    exp = expected_alerts(case)
    if case.expected_count is not None and len(exp) != case.expected_count:
        raise SystemExit("%s: the oracle expects %d alerts, the case says %d:\n%s" % (
            case.name, len(exp), case.expected_count, "\n".join(json.dumps(a) for a in exp)))
    d = "tests/cases/%s/" % case.name
    meta = {"description": case.description, "pcap": "pcaps/" + case.pcap_name,
            "indicators": ["indicators.intel"], "workers": list(case.workers)}
    if case.args:
        meta["args"] = case.args
    if case.event_types:
        meta["events"] = {"types": list(case.event_types),
                          "projection": {k: v for k, v in EVENT_PROJECTION.items()
                                         if k == "*" or k in case.event_types}}
        evs = expected_events(case)
        if case.expected_event_count is not None and len(evs) != case.expected_event_count:
            raise SystemExit("%s: the model expects %d events, the case says %d" % (
                case.name, len(evs), case.expected_event_count))
        files[d + "expected_events.jsonl"] = "".join(json.dumps(e) + "\n" for e in evs).encode()
    files[d + "case.json"] = (json.dumps(meta, indent=2) + "\n").encode()
    files[d + "indicators.intel"] = case.intel_text().encode()
    files[d + "expected.jsonl"] = "".join(json.dumps(a) + "\n" for a in exp).encode()
    if case.name == "demo":
        files["config/indicators/demo.intel"] = case.intel_text().encode()
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    ap.add_argument("--out", default=ROOT, help="write under this directory instead of the repository")
    ap.add_argument("--print", dest="print_case", metavar="CASE",
                    help="print a case's expected alerts (and its expected events, if it checks any)")
    args = ap.parse_args()
    stale = 0
    for fn in CASES:
        case = fn()
        if args.print_case:
            if case.name == args.print_case:
                for a in expected_alerts(case):
                    print(json.dumps(a))
                if case.event_types:
                    for e in expected_events(case):
                        print(json.dumps(e))
            continue
        for rel, data in sorted(render(case).items()):
            path = os.path.join(args.out, rel)
            if args.check:
                try:
                    with open(path, "rb") as f:
                        same = f.read() == data
                except FileNotFoundError:
                    same = False
                if not same:
                    print("stale: " + rel)
                    stale += 1
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
    if args.check:
        print("%s" % ("all files current" if not stale else "%d stale file(s)" % stale))
        return 1 if stale else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
