#!/usr/bin/python3
"""
scripts/make_pcaps.py — builds the project's captures, the end-to-end test
cases that use them, and the demo data.

Run from anywhere with Debian's Python (it needs scapy):

    /usr/bin/python3 scripts/make_pcaps.py            # write everything
    /usr/bin/python3 scripts/make_pcaps.py --check    # verify the committed files are current
    /usr/bin/python3 scripts/make_pcaps.py --known-failing --out /tmp/kf   # plus the known-failing cases

It writes, relative to the repository root:
    pcaps/<case>.pcap, pcaps/demo.pcap
    pcaps/encap_<name>.plain.pcap (the encapsulation cases' plain forms)
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
is under control (odd label bytes, split messages, GREASE values...), and so
are the encapsulations (MPLS, PPPoE, GRE, ERSPAN, VXLAN, GTP-U, Teredo,
CAPWAP/802.11), IPv6 extension headers and IP fragments of the encap_*
cases, whose expected alerts are those of the inner flows (see Encapsulations).
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
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert  # noqa: E402
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6  # noqa: E402
from scapy.packet import Raw  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 2023-11-14T22:13:20Z: every capture starts at this instant plus a per-case offset.
T0_US = 1700000000 * 1000000

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_ARP = 0x0806
TPID_8021Q = 0x8100
TPID_8021AD = 0x88A8
TPID_QINQ_OLD = 0x9100  # pre-802.1ad vendor QinQ
ETH_MPLS = 0x8847
ETH_PPPOE_SESSION = 0x8864
ETH_TEB = 0x6558        # GRE transparent Ethernet bridging: "an Ethernet frame"
ETH_ERSPAN_II = 0x88BE  # GRE protocol of ERSPAN types I and II
ETH_ERSPAN_III = 0x22EB

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

    def add_at(self, ts, frame):
        """A frame at an explicit time (the plain form of an encap case
        shares its capture's timestamps)."""
        self.records.append((ts, bytes(frame), len(frame)))

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
    def __init__(self, method, uri, host, headers=(), body=b"", version=b"HTTP/1.1", host_last=False):
        """host_last: the Host header after the others instead of first."""
        method, uri = b_(method), b_(uri)
        lines = [method + b" " + uri + b" " + version]
        if host is not None and not host_last:
            lines.append(b"Host: " + b_(host))
        lines += [b_(h) for h in headers]
        if host is not None and host_last:
            lines.append(b"Host: " + b_(host))
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

    def __init__(self, case, proto, cli, cport, srv, sport, vlans=(), cli_mac=None, srv_mac=None, reuse=False,
                 encap=None, v4_options=None, v6_ext=None):
        self.case = case
        self.proto = proto  # "TCP", "UDP", "ICMP", "IPv6-ICMP"
        self.cli, self.srv = cli, srv
        self.cport, self.sport = cport, sport
        # encap: an Encap that wraps every datagram of the flow (its tags are
        # the flow's VLANs, as the sensor reports them); v4_options: IPv4
        # header options (scapy IPOption objects); v6_ext: a function of the
        # packet's (source, destination) returning the IPv6 extension headers
        # to put before the transport header, as (type, body) pairs (see
        # splice_v6_ext). The plain form of the flow has none of them.
        self.encap = encap
        if encap is not None:
            if vlans:
                raise ValueError("%s: a flow with an encapsulation takes its VLANs from it" % case.name)
            vlans = encap.reported_vlans()
        self.v4_options = v4_options
        self.v6_ext = v6_ext
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
        if case.plain is not None:
            # Without its wrapping, a flow is known by its 5-tuple alone: two
            # flows that only their VLANs or tunnels told apart would merge.
            pkey = (proto, frozenset([(cli, cport), (srv, sport)]))
            other = case.plain_tuples.get(pkey)
            if other is not None and other is not prev:
                raise ValueError("%s: 5-tuple used twice in the plain form: %r" % (case.name, pkey))
            case.plain_tuples[pkey] = self
        case.flows.append(self)

    def _ip(self, to_server, l4, fragmenting=False):
        """The IP datagram carrying l4, and its plain form (without the
        flow's IPv4 options or IPv6 extension headers): (datagram, plain
        datagram, ethertype). A datagram about to be fragmented has no DF."""
        src, dst = (self.cli, self.srv) if to_server else (self.srv, self.cli)
        if family(src) == 4:
            self.ipid[to_server] = (self.ipid[to_server] + 1) & 0xFFFF
            kw = dict(src=src, dst=dst, id=self.ipid[to_server],
                      flags="DF" if self.proto == "TCP" and not fragmenting else 0, ttl=64 if to_server else 57)
            pkt = IP(**kw) / l4
            if self.v4_options:
                return bytes(IP(options=self.v4_options, **kw) / l4), bytes(pkt), ETH_IPV4
            return bytes(pkt), bytes(pkt), ETH_IPV4
        plain = bytes(IPv6(src=src, dst=dst, hlim=64 if to_server else 57) / l4)
        if self.v6_ext is not None:
            return splice_v6_ext(plain, self.v6_ext(src, dst)), plain, ETH_IPV6
        return plain, plain, ETH_IPV6

    def _l3(self, to_server, l4):
        """The frame carrying l4 (flows without an encapsulation)."""
        ip, _, et = self._ip(to_server, l4)
        smac, dmac = (self.cmac, self.smac) if to_server else (self.smac, self.cmac)
        return ether(smac, dmac, et, ip, self.vlans)

    def _xmit(self, to_server, l4, gap_us=None, tcp_flags="", frag=None):
        """Emits the frame(s) carrying l4: the datagram, cut into fragments
        when `frag` (a Frag) says so, each wrapped in the flow's encapsulation
        if it has one. The plain form (the whole datagram in a bare Ethernet
        frame) goes with the frame that completes the datagram. Returns
        whether the datagram completed (fragments may be dropped, see Frag)."""
        ip, plain_ip, et = self._ip(to_server, l4, fragmenting=frag is not None)
        smac, dmac = (self.cmac, self.smac) if to_server else (self.smac, self.cmac)
        plain = ether(smac, dmac, et, plain_ip)
        pieces = [(ip, True)] if frag is None else frag.cut(ip)
        frames = []
        for dgram, completes in pieces:
            if self.encap is None:
                frames.append((ether(smac, dmac, et, dgram, self.vlans), completes))
            else:
                frames += [(fr, completes and c) for fr, c in self.encap.wrap(self, to_server, dgram, et)]
        for i, (fr, completes) in enumerate(frames):
            self.emit(fr, gap_us if i == 0 else None, to_server, tcp_flags, plain=plain if completes else None)
        return any(completes for _, completes in frames)

    def emit(self, frame, gap_us=None, to_server=True, tcp_flags="", plain=None):
        """plain: the frame's plain form, for a case that writes one (None:
        the frame has no counterpart there, like a fragment that does not
        complete its datagram)."""
        if not self.started and not to_server:
            raise ValueError("%s: the client must send a flow's first packet" % self.case.name)
        self.case.add(frame, gap_us, plain)
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


def splice_v6_ext(dgram, headers):
    """Inserts IPv6 extension headers (RFC 8200 section 4) between the fixed
    header and the transport header of `dgram`: headers are (type, body)
    pairs, the body being what follows the Next Header and Hdr Ext Len
    bytes. Hdr Ext Len counts 8-octet units after the first 8 (4-octet
    units minus 2 for AH, RFC 4302); for a fragment header (44) that byte is
    the reserved field, 0 for its fixed 8 bytes. The transport checksum is
    unchanged: the final destination is the IPv6 destination (a routing
    header here always has Segments Left 0)."""
    chain = b""
    for i, (t, body) in enumerate(headers):
        nxt = headers[i + 1][0] if i + 1 < len(headers) else dgram[6]
        total = 2 + len(body)
        assert total % 8 == 0, (t, total)
        hlen = total // 4 - 2 if t == 51 else total // 8 - 1
        chain += u8(nxt) + u8(hlen) + body
    plen = struct.unpack("!H", dgram[4:6])[0]
    return dgram[:4] + u16(plen + len(chain)) + u8(headers[0][0]) + dgram[7:40] + chain + dgram[40:]


OPT_PADN4 = b"\x01\x04\x00\x00\x00\x00"          # PadN, 4 bytes of padding
OPT_ROUTER_ALERT = b"\x05\x02\x00\x00\x01\x00"   # Router Alert (RFC 2711) value 0, then an empty PadN


def _router_alert_hbh(src, dst):
    return [(0, OPT_ROUTER_ALERT)]


class UdpFlow(Flow):
    def __init__(self, case, cli, cport, srv, sport, vlans=(), hop_by_hop=False, **kw):
        if hop_by_hop:
            kw["v6_ext"] = _router_alert_hbh
        super().__init__(case, "UDP", cli, cport, srv, sport, vlans, **kw)

    def send(self, payload, to_server=True, gap_us=None, frag=None):
        sp, dp = (self.cport, self.sport) if to_server else (self.sport, self.cport)
        return self._xmit(to_server, UDP(sport=sp, dport=dp) / Raw(payload), gap_us, frag=frag)

    def dns(self, msg, to_server=True, gap_us=None, frag=None):
        """A DNS message; the sensor reads it only if its datagram completes."""
        if self.send(msg.wire, to_server, gap_us, frag):
            self.note_dns(msg, to_server)


class IcmpFlow(Flow):
    def __init__(self, case, cli, srv, ident, vlans=()):
        super().__init__(case, "ICMP" if family(cli) == 4 else "IPv6-ICMP", cli, 0, srv, 0, vlans)
        self.ident = ident
        self.icmp_type = 8 if family(cli) == 4 else 128  # echo request opens the flow

    def ping(self, seq, payload=b"kagami-ping-0123456789abcdefghijklmnopqrstuvwxyz", gap_us=None, frag=None):
        if family(self.cli) == 4:
            req = ICMP(type=8, code=0, id=self.ident, seq=seq) / Raw(payload)
            rep = ICMP(type=0, code=0, id=self.ident, seq=seq) / Raw(payload)
        else:
            req = ICMPv6EchoRequest(id=self.ident, seq=seq, data=payload)
            rep = ICMPv6EchoReply(id=self.ident, seq=seq, data=payload)
        self._xmit(True, req, gap_us, frag=frag)
        self._xmit(False, rep, frag=frag)


class TcpFlow(Flow):
    MSS = 1448

    def __init__(self, case, cli, cport, srv, sport, vlans=(), **kw):
        super().__init__(case, "TCP", cli, cport, srv, sport, vlans, **kw)
        self.seq = {True: case.rng.getrandbits(32), False: case.rng.getrandbits(32)}
        self.ack = {True: 0, False: 0}

    def _seg(self, to_server, flags, data=b"", gap_us=None, options=None, frag=None):
        sp, dp = (self.cport, self.sport) if to_server else (self.sport, self.cport)
        tcp = TCP(sport=sp, dport=dp, seq=self.seq[to_server], ack=self.ack[to_server] if "A" in flags else 0,
                  flags=flags, window=64240 if to_server else 65160, options=options or [])
        self._xmit(to_server, tcp / Raw(data) if data else tcp, gap_us, flags, frag)
        adv = len(data) + (1 if ("S" in flags or "F" in flags) else 0)
        self.seq[to_server] = (self.seq[to_server] + adv) & 0xFFFFFFFF
        self.ack[not to_server] = self.seq[to_server]

    def open(self, gap_us=None):
        opts = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("NOP", None), ("NOP", None), ("SAckOK", b"")]
        self._seg(True, "S", options=opts, gap_us=gap_us)
        self._seg(False, "SA", options=opts, gap_us=self.case.rng.randint(5000, 40000))
        self._seg(True, "A")
        return self

    def send(self, data, to_server=True, ack=True, gap_us=None, frag=None):
        """One segment carrying exactly `data` (in IP fragments, with `frag`),
        then an empty ACK from the peer."""
        self._seg(to_server, "PA", data, gap_us, frag=frag)
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
# Encapsulations and fragments (the encap_* cases)
#
# An Encap is a list of layers, innermost first, each taking a payload and
# its type (an EtherType: IPv4, IPv6, MPLS, PPPoE, or ETH_TEB for a whole
# Ethernet frame) and returning the next one out; the last layer is the
# outer Ethernet header. Every header is written here from its
# specification, field by field. The sensor must see through all of it: the
# expected alerts are those of the inner flows, with the 802.1Q/802.1ad tags
# met along the way (outermost first, at most three) as their "vlan".
# ---------------------------------------------------------------------------

KG_MAX_VLAN = 3  # tags the sensor records per packet (dissect/dissect.h)


def inet_checksum(data):
    """RFC 1071 one's complement sum (IPv4 header, GRE checksum)."""
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def stable_int(*parts):
    """A number derived from its arguments only (no RNG state consumed)."""
    return int.from_bytes(hashlib.md5(repr(parts).encode()).digest()[:4], "big")


class Frag:
    """How to cut a datagram into fragments: `size` data bytes per fragment
    (a multiple of 8, RFC 791 / RFC 8200 section 4.5), sent in `order` (a
    function of the fragment count returning the indices, where a repeated
    index is a duplicate and ("alt", i) sends instead the i-th fragment of
    alt(datagram), a copy of the same bytes with other contents: a
    conflicting overlap); only datagrams longer than `mtu` are cut (None:
    always).

    cut() returns (fragment, completes the datagram) pairs, following the
    sensor's documented policy (docs/DEFRAG.md): a duplicate is harmless;
    on a conflicting overlap IPv4 keeps the bytes it has (first wins) and
    IPv6 drops the whole datagram (RFC 5722), later fragments starting a
    new one. A datagram that completes must be the original one (the plain
    form and the oracle use it); one that never completes has no plain form
    and carries nothing the oracle sees."""

    def __init__(self, size, order=None, mtu=None, alt=None):
        assert size % 8 == 0
        self.size, self.order, self.mtu, self.alt = size, order or (lambda n: list(range(n))), mtu, alt

    def cut(self, dgram):
        if self.mtu is not None and len(dgram) <= self.mtu:
            return [(dgram, True)]
        v = dgram[0] >> 4
        if v == 4:
            frags = fragment_ipv4(dgram, self.size)
            alts = fragment_ipv4(self.alt(dgram), self.size) if self.alt else None
        else:
            ident = stable_int(dgram) | 0x80000000
            frags = fragment_ipv6(dgram, self.size, ident)
            alts = fragment_ipv6(self.alt(dgram), self.size, ident) if self.alt else None
        order = self.order(len(frags))
        if sorted(set(i for i in order if not isinstance(i, tuple))) != list(range(len(frags))):
            raise ValueError("fragment order %r does not cover %d fragments" % (order, len(frags)))
        out, held, done = [], {}, False
        for entry in order:
            if done:
                raise ValueError("a fragment sent after its datagram was complete: %r" % order)
            i = entry[1] if isinstance(entry, tuple) else entry
            piece = alts[i] if isinstance(entry, tuple) else frags[i]
            if isinstance(entry, tuple) and piece == frags[i]:
                raise ValueError("the other copy of fragment %d is the same: a duplicate, not a conflict" % i)
            if i in held and held[i] != piece:
                if v == 6:
                    held = {}
                out.append((piece, False))
                continue
            held.setdefault(i, piece)
            done = len(held) == len(frags)
            out.append((piece, done))
        if done and any(held[i] != frags[i] for i in held):
            raise ValueError("the datagram would complete with other contents than the original")
        return out


def fragment_ipv4(dgram, size):
    """RFC 791 section 3.2: every fragment gets the header (options copied
    into all of them, for simplicity; none of ours has a non-copied one), MF
    on all but the last, the offset in 8-byte units, its own total length
    and checksum."""
    ihl = (dgram[0] & 0x0F) * 4
    hdr, data = bytearray(dgram[:ihl]), dgram[ihl:]
    flags = struct.unpack("!H", hdr[6:8])[0] & 0x4000
    assert not flags, "a datagram with DF set cannot be fragmented"
    out = []
    for off in range(0, len(data), size):
        piece = data[off:off + size]
        h = bytearray(hdr)
        h[2:4] = u16(ihl + len(piece))
        h[6:8] = u16((0x2000 if off + size < len(data) else 0) | off // 8)
        h[10:12] = b"\x00\x00"
        h[10:12] = u16(inet_checksum(bytes(h)))
        out.append(bytes(h) + piece)
    assert len(out) > 1
    return out


def fragment_ipv6(dgram, size, ident):
    """RFC 8200 section 4.5, for a datagram without extension headers: each
    fragment is the IPv6 header (Next Header 44, its own payload length), a
    fragment header (the original Next Header, offset, M, identification)
    and a piece of the payload."""
    nh, payload = dgram[6], dgram[40:]
    out = []
    for off in range(0, len(payload), size):
        piece = payload[off:off + size]
        more = off + size < len(payload)
        fh = struct.pack("!BBHI", nh, 0, off | (1 if more else 0), ident)
        out.append(dgram[:4] + u16(8 + len(piece)) + b"\x2c" + dgram[7:40] + fh + piece)
    assert len(out) > 1
    return out


class Encap:
    """The wrapping of one variant of a case: layers, innermost first."""

    def __init__(self, *layers):
        self.layers = layers
        assert isinstance(layers[-1], Eth), "the outermost layer is an Ethernet header"

    def reported_vlans(self):
        """The tags the sensor reports, outermost first: the decoder meets the
        outer Ethernet's tags first, and records at most KG_MAX_VLAN."""
        tags = []
        for layer in reversed(self.layers):
            if isinstance(layer, Eth):
                tags += layer.vlans
        return tuple(tags[:KG_MAX_VLAN])

    def wrap(self, flow, to_server, dgram, ethertype):
        """Returns (frame, completes) pairs: one frame, or several when a
        layer fragments the datagram it builds (Tunnel with `frag`)."""
        items, ptype = [(dgram, True)], ethertype
        for layer in self.layers:
            out = []
            for data, completes in items:
                res, ptype2 = layer.apply(flow, to_server, data, ptype)
                out += [(d, completes and c) for d, c in res]
            items, ptype = out, ptype2
        return items


class Eth:
    """Ethernet II with optional tags ((tpid, tci) pairs, outermost first).
    Without `tunnel`, the flow's MACs (the innermost Ethernet, which the plain
    form keeps, untagged); with it, the MACs of the tunnel's endpoints."""

    def __init__(self, vlans=(), tunnel=None):
        self.vlans, self.tunnel = list(vlans), tunnel

    def apply(self, flow, to_server, data, ptype):
        if self.tunnel is None:
            smac, dmac = (flow.cmac, flow.smac) if to_server else (flow.smac, flow.cmac)
        else:
            src, dst = self.tunnel.endpoints(to_server)
            smac, dmac = mac_for(src), mac_for(dst)
        return [(ether(smac, dmac, ptype, data, self.vlans), True)], ETH_TEB


class Mpls:
    """RFC 3032 label stack entries (label 20 bits, TC 3, S 1, TTL 8); S on
    the last. The payload type is not written anywhere: the receiver knows
    it from the label (here, as the sensor does, from the IP version)."""

    def __init__(self, labels):
        self.labels = labels

    def apply(self, flow, to_server, data, ptype):
        assert ptype in (ETH_IPV4, ETH_IPV6)
        stack = b"".join(struct.pack("!I", (label << 12) | (0 << 9) | ((i == len(self.labels) - 1) << 8) | 64)
                         for i, label in enumerate(self.labels))
        return [(stack + data, True)], ETH_MPLS


class Pppoe:
    """RFC 2516 section 4 session stage: VER 1, TYPE 1, CODE 0, SESSION_ID,
    LENGTH (of the PPP payload, protocol field included), then the PPP
    protocol (RFC 1661; 0x0021 IPv4, 0x0057 IPv6)."""

    def __init__(self, session):
        self.session = session

    def apply(self, flow, to_server, data, ptype):
        proto = {ETH_IPV4: 0x0021, ETH_IPV6: 0x0057}[ptype]
        return [(struct.pack("!BBHH", 0x11, 0x00, self.session, len(data) + 2) + u16(proto) + data, True)], \
            ETH_PPPOE_SESSION


class Tunnel:
    """A layer that builds an outer IP datagram between two endpoints; `a`
    is on the client's side. Mirror tunnels (ERSPAN) send both directions of
    the inner flow from a to b. `frag` (a Frag) cuts the outer datagram, as
    a tunnel endpoint does when the tunnel's MTU is smaller than the packet."""

    def __init__(self, a, b, mirror=False, frag=None):
        self.a, self.b, self.mirror, self.frag = a, b, mirror, frag
        self.ipid = {}
        self.counter = {}

    def endpoints(self, to_server):
        return (self.a, self.b) if to_server or self.mirror else (self.b, self.a)

    def next(self, what, to_server, start=0):
        """A per-direction counter (GRE sequence numbers, IPv4 ids)."""
        k = (what, self.endpoints(to_server))
        self.counter[k] = self.counter.get(k, start) + 1
        return self.counter[k]

    def outer(self, to_server, proto, payload):
        """The outer datagram (scapy writes its header and checksum)."""
        src, dst = self.endpoints(to_server)
        if family(src) == 4:
            ipid = self.next("ipid", to_server, stable_int(src, dst) % 40000) & 0xFFFF
            dgram, et = bytes(IP(src=src, dst=dst, id=ipid, ttl=62, proto=proto) / Raw(payload)), ETH_IPV4
        else:
            dgram, et = bytes(IPv6(src=src, dst=dst, nh=proto, hlim=62) / Raw(payload)), ETH_IPV6
        pieces = [(dgram, True)] if self.frag is None else self.frag.cut(dgram)
        return pieces, et

    def outer_udp(self, to_server, sport, dport, payload, zero_checksum=False):
        src, _ = self.endpoints(to_server)
        udp = UDP(sport=sport, dport=dport, chksum=0) if zero_checksum else UDP(sport=sport, dport=dport)
        # The checksum covers the outer addresses: build it in place.
        dst = self.endpoints(to_server)[1]
        l3 = IP(src=src, dst=dst) if family(src) == 4 else IPv6(src=src, dst=dst)
        seg = bytes(l3 / udp / Raw(payload))[20 if family(src) == 4 else 40:]
        return self.outer(to_server, 17, seg)


GRE_PROTO = {ETH_IPV4: 0x0800, ETH_IPV6: 0x86DD, ETH_TEB: ETH_TEB, ETH_MPLS: ETH_MPLS}


def gre_header(proto, csum_over=None, key=None, seq=None):
    """RFC 2784 / RFC 2890: C, K and S flags, version 0, protocol type, then
    checksum + reserved (over the header and payload), key, sequence number."""
    flags = (0x8000 if csum_over is not None else 0) | (0x2000 if key is not None else 0) | \
        (0x1000 if seq is not None else 0)
    tail = (u32(key) if key is not None else b"") + (u32(seq) if seq is not None else b"")
    if csum_over is None:
        return u16(flags) + u16(proto) + tail
    hdr = u16(flags) + u16(proto) + b"\x00\x00\x00\x00" + tail
    return u16(flags) + u16(proto) + u16(inet_checksum(hdr + csum_over)) + b"\x00\x00" + tail


def u32(v):
    return struct.pack("!I", v)


class Gre(Tunnel):
    def __init__(self, a, b, key=None, seq=False, checksum=False, **kw):
        super().__init__(a, b, **kw)
        self.key, self.seq, self.checksum = key, seq, checksum

    def apply(self, flow, to_server, data, ptype):
        seq = self.next("seq", to_server) if self.seq else None
        hdr = gre_header(GRE_PROTO[ptype], data if self.checksum else None, self.key, seq)
        return self.outer(to_server, 47, hdr + data)


class Erspan(Tunnel):
    """Cisco ERSPAN (draft-foschiano-erspan-03) over GRE, mirroring Ethernet
    frames from a switch (a) to a collector (b).
    Type I: GRE without sequence number, protocol 0x88BE, no ERSPAN header.
    Type II: GRE with S, 0x88BE; 8 bytes: Ver 1 (4 bits), VLAN (12), COS (3),
    En (2), T (1), Session ID (10), Reserved (12), Index (20).
    Type III: GRE with S, 0x22EB; 12 bytes: Ver 2, VLAN, COS, BSO (2), T,
    Session ID, Timestamp (32), SGT (16), P (1), FT (5), Hw ID (6), D (1),
    Gra (2), O (1); with O, an 8-byte platform-specific subheader follows."""

    def __init__(self, a, b, etype, session, vlan=0, optional=False, **kw):
        super().__init__(a, b, mirror=True, **kw)
        self.etype, self.session, self.vlan, self.optional = etype, session, vlan, optional

    def apply(self, flow, to_server, data, ptype):
        assert ptype == ETH_TEB
        if self.etype == 1:
            return self.outer(to_server, 47, gre_header(ETH_ERSPAN_II) + data)
        seq = self.next("seq", to_server)
        if self.etype == 2:
            hdr = u16((1 << 12) | self.vlan) + u16((0 << 13) | (3 << 11) | (0 << 10) | self.session)
            hdr += u32(seq & 0xFFFFF)  # reserved 0, index
            return self.outer(to_server, 47, gre_header(ETH_ERSPAN_II, seq=seq) + hdr + data)
        ts = (seq * 1000) & 0xFFFFFFFF
        hdr = u16((2 << 12) | self.vlan) + u16((0 << 13) | (0 << 11) | (0 << 10) | self.session) + u32(ts)
        hdr += u16(0) + u16((0 << 15) | (0 << 10) | (7 << 4) | (0 << 3) | (3 << 1) | int(self.optional))
        if self.optional:
            hdr += u32((3 << 26) | 17) + u32(1700000000)  # Platf ID 3, port id 17; upper timestamp
        return self.outer(to_server, 47, gre_header(ETH_ERSPAN_III, seq=seq) + hdr + data)


def entropy_port(flow):
    """RFC 7348 section 5: the outer UDP source port from a hash of the inner
    flow, in the dynamic range; the same both ways."""
    lo, hi = sorted([(flow.cli, flow.cport), (flow.srv, flow.sport)])
    return 49152 + stable_int(flow.proto, lo, hi) % 16384


class Vxlan(Tunnel):
    """RFC 7348: UDP to 4789, 8-byte header (flags with I, 24-bit VNI), then
    an Ethernet frame. Over IPv4 the UDP checksum is zero (section 5)."""

    def __init__(self, a, b, vni, **kw):
        super().__init__(a, b, **kw)
        self.vni = vni

    def apply(self, flow, to_server, data, ptype):
        assert ptype == ETH_TEB
        hdr = b"\x08\x00\x00\x00" + u24(self.vni) + b"\x00"
        return self.outer_udp(to_server, entropy_port(flow), 4789, hdr + data, zero_checksum=family(self.a) == 4)


class Gtpu(Tunnel):
    """3GPP TS 29.281 section 5: GTP-U G-PDU on UDP 2152 between an eNodeB/gNB
    (a) and a gateway (b). Flags: version 1, PT 1, E, S, PN; type 255;
    length (after the first 8 bytes); TEID (the receiver's, one per
    direction). With E, S or PN, 4 more bytes: sequence number, N-PDU
    number, next extension header type; with E, a PDU Session Container
    (type 0x85, TS 38.415: length 1, PDU type UL 1 / DL 0, QFI) ends the chain."""

    def __init__(self, a, b, teids, seq=False, ext=False, **kw):
        super().__init__(a, b, **kw)
        self.teids, self.seq, self.ext = teids, seq, ext

    def apply(self, flow, to_server, data, ptype):
        assert ptype in (ETH_IPV4, ETH_IPV6)
        flags = 0x30 | (0x04 if self.ext else 0) | (0x02 if self.seq else 0)
        opt = b""
        if self.seq or self.ext:
            opt = u16(self.next("seq", to_server) if self.seq else 0) + u8(0) + u8(0x85 if self.ext else 0)
            if self.ext:
                opt += bytes([1, 0x10 if to_server else 0x00, 9, 0])
        body = opt + data
        hdr = u8(flags) + u8(0xFF) + u16(len(body)) + u32(self.teids[0 if to_server else 1])
        return self.outer_udp(to_server, 2152, 2152, hdr + body)


def teredo_address(server, port, client):
    """RFC 4380 section 4: 2001:0::/32, the server's IPv4 address, flags,
    then the client's mapped port and IPv4 address, both inverted."""
    s, c = ipaddress.IPv4Address(server).packed, ipaddress.IPv4Address(client).packed
    raw = bytes.fromhex("20010000") + s + u16(0) + u16(port ^ 0xFFFF) + bytes(b ^ 0xFF for b in c)
    return str(ipaddress.IPv6Address(raw))


class Teredo(Tunnel):
    """RFC 4380: IPv6 in UDP between a Teredo client's mapped address (a,
    port cport) and a relay (b, port 3544). Every `origin_every`-th packet
    from the relay carries an origin indication (section 5.1.1: 0x0000,
    the origin's port and IPv4 address, inverted)."""

    def __init__(self, a, cport, b, origin_every=2, **kw):
        super().__init__(a, b, **kw)
        self.cport, self.origin_every = cport, origin_every

    def apply(self, flow, to_server, data, ptype):
        assert ptype == ETH_IPV6
        if to_server:
            return self.outer_udp(True, self.cport, 3544, data)
        n = self.next("from-relay", False)
        if n % self.origin_every == 0:
            o = ipaddress.IPv4Address(self.b).packed
            data = b"\x00\x00" + u16(3544 ^ 0xFFFF) + bytes(x ^ 0xFF for x in o) + data
        return self.outer_udp(False, 3544, self.cport, data)


class Capwap(Tunnel):
    """RFC 5415 section 4.3, the data channel between an access point (a,
    port aport) and its controller (b, port 5247). Preamble (version 0, type
    0); HLEN (5 bits, header length in 4-byte words), RID (5), WBID (5), T,
    F, L, W, M, K, flags (3); fragment id; fragment offset. T=0: an 802.3
    frame follows. T=1, WBID 1: an IEEE 802.11 frame (RFC 5416): here a QoS
    data frame (ToDS from the station, FromDS towards it) with an LLC/SNAP
    header (RFC 1042). With `radio_mac`, the M flag and the optional radio
    MAC address field (length, address, padding to 4 bytes)."""

    def __init__(self, a, aport, b, native_80211=False, rid=1, radio_mac=None, **kw):
        super().__init__(a, b, **kw)
        self.aport, self.native, self.rid, self.radio_mac = aport, native_80211, rid, radio_mac

    def header(self):
        opt = b""
        if self.radio_mac:
            opt = u8(6) + self.radio_mac
            opt += b"\x00" * (-len(opt) % 4)
        hlen, wbid, t = (8 + len(opt)) // 4, 1, int(self.native)
        bits = (hlen << 19) | (self.rid << 14) | (wbid << 9) | (t << 8) | ((1 if self.radio_mac else 0) << 4)
        return u8(0) + u24(bits) + u16(0) + u16(0) + opt

    def apply(self, flow, to_server, data, ptype):
        if not self.native:
            assert ptype == ETH_TEB
            payload = data
        else:
            assert ptype in (ETH_IPV4, ETH_IPV6)
            bssid = mac_for(self.a)
            sta, peer = flow.cmac, flow.smac  # the client is the wireless station
            # 802.11 fields are little-endian (IEEE 802.11-2020 section 9.2.2).
            seqctl = struct.pack("<H", (self.next("80211-seq", to_server) & 0xFFF) << 4)
            if to_server:   # station -> AP: ToDS; addr1 BSSID, addr2 SA, addr3 DA
                fc, addrs = b"\x88\x01", bssid + sta + peer
            else:           # AP -> station: FromDS; addr1 DA, addr2 BSSID, addr3 SA
                fc, addrs = b"\x88\x02", sta + bssid + peer
            payload = fc + struct.pack("<H", 44) + addrs + seqctl + b"\x00\x00"  # duration 44 us; QoS: TID 0
            payload += b"\xaa\xaa\x03\x00\x00\x00" + u16(ptype) + data
        if to_server:
            return self.outer_udp(True, self.aport, 5247, self.header() + payload)
        return self.outer_udp(False, 5247, self.aport, self.header() + payload)


class IpInIp(Tunnel):
    """IPv4 (protocol 4, RFC 2003) or IPv6 (protocol 41, RFC 4213) directly
    in an IPv4 or IPv6 datagram (RFC 2473 for IPv6 outer)."""

    def apply(self, flow, to_server, data, ptype):
        return self.outer(to_server, 4 if ptype == ETH_IPV4 else 41, data)


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
    # names of one indicator resolved to the address, the earliest answer names it.
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
            if ind.value not in by_ind or by_ind[ind.value][0] > ts:
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
        # Encap cases: the plain form (same inner datagrams, bare Ethernet,
        # same timestamps), written as pcaps/<name>.plain.pcap.
        self.plain = None
        self.plain_tuples = {}
        self.args = []          # extra kagami arguments (case.json "args")
        self.workers = [1, 2]   # worker counts run_case.py tries
        self.event_types = ()   # metadata event types checked (case.json "events")

    def with_plain_form(self):
        self.plain = Pcap(0, 0)
        self.plain_name = self.name + ".plain.pcap"
        return self

    def add(self, frame, gap_us=None, plain=None):
        self.pcap.add(frame, gap_us)
        if self.plain is not None and plain is not None:
            self.plain.add_at(self.pcap.t, plain)

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


# ---- Encapsulations: the same traffic, wrapped ----------------------------

# The inner servers every encap case talks to (their own capture each, so
# sharing them is harmless). "bad" is a listed ADDR.
ENCAP_SERVERS = {
    4: {"res": "192.0.2.53", "tls": "198.51.100.20", "http": "198.51.100.21", "bad": "203.0.113.66"},
    6: {"res": "2001:db8:53::53", "tls": "2001:db8:443::20", "http": "2001:db8:80::21", "bad": "2001:db8:bad::66"},
}
ENCAP_MIX_ALERTS = 7


def encap_case(name, description, seed, dom):
    """An encap case: the indicators every encap_mix() round hits, and a
    plain form (pcaps/<name>.plain.pcap) that run_case.py checks gives the
    same alerts."""
    c = Case(name, description, seed, assert_no_vlan=True).with_plain_form()
    c.dom = dom
    der = read_der("server.der")
    c.der = der
    hello = hello_tls12_grease(random.Random(0), "x." + dom)
    c.ind("DOMAIN", dom)
    c.ind("URL", "dl.%s/get/payload.bin" % dom)
    c.ind("JA3", hello.ja3, desc="JA3 " + hello.ja3_string)
    c.ind("CERT_HASH", hashlib.sha1(der).hexdigest())
    c.ind("ADDR", ENCAP_SERVERS[4]["bad"])
    c.ind("ADDR", ENCAP_SERVERS[6]["bad"])
    return c


def encap_mix(c, label, cli, port, **flow_kw):
    """One round of the traffic the encap cases wrap, every flow with
    flow_kw (encap=..., v6_ext=..., v4_options=...): a lookup of a listed
    name (dns.query) and one of a benign name; a TLS 1.2 session with a
    listed SNI, JA3 and certificate (tls.sni, tls.ja3, tls.cert_sha1); an
    HTTP request to a listed host and URL (http.host, http.url); a UDP
    exchange with a listed address (conn.dest_ip). ENCAP_MIX_ALERTS alerts.
    Ports port..port+4 on the client `cli`; the servers are ENCAP_SERVERS of
    its family. The lookups answer addresses no flow connects to (no
    conn.resolved)."""
    srv = ENCAP_SERVERS[family(cli)]
    qtype = "AAAA" if family(cli) == 6 else "A"
    c.lookup(cli, port, srv["res"], "%s.%s" % (label, c.dom), qtype, **flow_kw)
    c.lookup(cli, port + 1, srv["res"], "www.example.org", qtype, **flow_kw)
    f = c.tcp(cli, port + 2, srv["tls"], 443, **flow_kw).open()
    f.tls12(hello_tls12_grease(c.rng, "%s.tls.%s" % (label, c.dom)), [c.der], app_rounds=0)
    f = c.tcp(cli, port + 3, srv["http"], 80, **flow_kw).open()
    f.http(HttpReq("GET", "/get/payload.bin", "dl." + c.dom, [UA_CURL, "Accept: */*"]),
           http_resp(200, b"MZ" + rand_bytes(c.rng, 62), b"application/octet-stream"))
    f.close()
    f = c.udp(cli, port + 4, srv["bad"], 5000, **flow_kw)
    f.send(b"beacon " + label.encode())
    f.send(b"ack", to_server=False)


def case_encap_qinq():
    c = encap_case("encap_qinq", "Stacked VLAN tags: 802.1ad + 802.1Q (with priority bits), a triple tag "
                   "(802.1ad + 802.1Q + 802.1Q) and the pre-standard 0x9100 + 802.1Q over IPv6; the alerts carry "
                   "every tag, outermost first", 30, "qinq-bad.example")
    encap_mix(c, "ad-q", "10.30.1.10", 40010, encap=Encap(Eth([(TPID_8021AD, (3 << 13) | 100), (TPID_8021Q, 200)])))
    encap_mix(c, "triple", "10.30.2.10", 40020,
              encap=Encap(Eth([(TPID_8021AD, 300), (TPID_8021Q, 301), (TPID_8021Q, (1 << 13) | 302)])))
    encap_mix(c, "q9100", "2001:db8:30:3::10", 40030, encap=Encap(Eth([(TPID_QINQ_OLD, 400), (TPID_8021Q, 401)])))
    c.expected_count = 3 * ENCAP_MIX_ALERTS
    return c


def case_encap_mpls():
    c = encap_case("encap_mpls", "MPLS (RFC 3032): a two-label stack over 802.1Q-tagged Ethernet carrying IPv4, "
                   "MPLS in GRE (RFC 4023) carrying IPv4, and a two-label stack carrying IPv6 (6PE)", 31,
                   "mpls-bad.example")
    encap_mix(c, "two-labels", "10.31.1.10", 40010, encap=Encap(Mpls([1001, 2002]), Eth([(TPID_8021Q, 50)])))
    gre = Gre("172.16.31.1", "172.16.31.2")
    encap_mix(c, "mpls-in-gre", "10.31.2.10", 40020, encap=Encap(Mpls([3003]), gre, Eth(tunnel=gre)))
    encap_mix(c, "6pe", "2001:db8:31:3::10", 40030, encap=Encap(Mpls([16, 2]), Eth()))
    c.expected_count = 3 * ENCAP_MIX_ALERTS
    return c


def case_encap_pppoe():
    c = encap_case("encap_pppoe", "PPPoE session stage (RFC 2516) carrying IPv4 (PPP 0x0021) and, inside an "
                   "802.1Q tag as ISPs deliver it, IPv6 (PPP 0x0057)", 32, "pppoe-bad.example")
    encap_mix(c, "v4", "10.32.1.10", 40010, encap=Encap(Pppoe(0x1A2B), Eth()))
    encap_mix(c, "v6", "2001:db8:32:2::10", 40020, encap=Encap(Pppoe(0x1A2C), Eth([(TPID_8021Q, 7)])))
    c.expected_count = 2 * ENCAP_MIX_ALERTS
    return c


def case_encap_gre():
    c = encap_case("encap_gre", "GRE (RFC 2784/2890): with key and sequence number carrying IPv4; transparent "
                   "Ethernet bridging (0x6558) carrying an 802.1Q-tagged Ethernet frame, itself in a tagged outer "
                   "frame (vlan [outer, inner]); over IPv6 with checksum and key, carrying IPv6", 33,
                   "gre-bad.example")
    g = Gre("172.16.33.1", "172.16.33.2", key=0x1234, seq=True)
    encap_mix(c, "key-seq", "10.33.1.10", 40010, encap=Encap(g, Eth(tunnel=g)))
    g = Gre("172.16.33.5", "172.16.33.6")
    encap_mix(c, "teb", "10.33.2.10", 40020,
              encap=Encap(Eth([(TPID_8021Q, 77)]), g, Eth([(TPID_8021Q, 5)], tunnel=g)))
    g = Gre("2001:db8:33::1", "2001:db8:33::2", key=7, checksum=True)
    encap_mix(c, "v6-csum", "2001:db8:33:3::10", 40030, encap=Encap(g, Eth(tunnel=g)))
    c.expected_count = 3 * ENCAP_MIX_ALERTS
    return c


def case_encap_erspan():
    c = encap_case("encap_erspan", "ERSPAN mirror sessions from a switch to a collector: type I (GRE 0x88BE, no "
                   "sequence number, no ERSPAN header), type II (sequence number, 8-byte header; the mirrored "
                   "frame tagged), type III (0x22EB, 12-byte header; outer frame tagged) and type III with the O "
                   "bit and its 8-byte subheader carrying a tagged IPv6 frame", 34, "erspan-bad.example")
    sw, col = "172.16.34.1", "172.16.34.100"
    e = Erspan(sw, col, 1, 0)
    encap_mix(c, "type1", "10.34.1.10", 40010, encap=Encap(Eth(), e, Eth(tunnel=e)))
    e = Erspan(sw, col, 2, 100, vlan=222)
    encap_mix(c, "type2", "10.34.2.10", 40020, encap=Encap(Eth([(TPID_8021Q, 222)]), e, Eth(tunnel=e)))
    e = Erspan(sw, col, 3, 300)
    encap_mix(c, "type3", "10.34.3.10", 40030, encap=Encap(Eth(), e, Eth([(TPID_8021Q, 34)], tunnel=e)))
    e = Erspan(sw, col, 3, 301, vlan=333, optional=True)
    encap_mix(c, "type3-o", "2001:db8:34:4::10", 40040, encap=Encap(Eth([(TPID_8021Q, 333)]), e, Eth(tunnel=e)))
    c.expected_count = 4 * ENCAP_MIX_ALERTS
    return c


def case_encap_vxlan():
    c = encap_case("encap_vxlan", "VXLAN (RFC 7348, UDP 4789, per-flow source port): over IPv4 carrying IPv4, "
                   "and over IPv6 carrying an 802.1Q-tagged frame with IPv6", 35, "vxlan-bad.example")
    v = Vxlan("172.16.35.1", "172.16.35.2", 5001)
    encap_mix(c, "v4", "10.35.1.10", 40010, encap=Encap(Eth(), v, Eth(tunnel=v)))
    v = Vxlan("2001:db8:35::1", "2001:db8:35::2", 5002)
    encap_mix(c, "v6", "2001:db8:35:2::10", 40020, encap=Encap(Eth([(TPID_8021Q, 600)]), v, Eth(tunnel=v)))
    c.expected_count = 2 * ENCAP_MIX_ALERTS
    return c


def case_encap_ipip():
    c = encap_case("encap_ipip", "IP in IP: IPv4 in IPv4 (protocol 4), IPv6 in IPv4 (41, 6in4), IPv4 in IPv6 and "
                   "IPv6 in IPv6 (RFC 2003, 4213, 2473)", 36, "ipip-bad.example")
    for i, (label, outer, inner) in enumerate([("4in4", ("172.16.36.1", "172.16.36.2"), "10.36.1.10"),
                                               ("6in4", ("172.16.36.5", "172.16.36.6"), "2001:db8:36:2::10"),
                                               ("4in6", ("2001:db8:36::1", "2001:db8:36::2"), "10.36.3.10"),
                                               ("6in6", ("2001:db8:36::5", "2001:db8:36::6"), "2001:db8:36:4::10")]):
        t = IpInIp(*outer)
        encap_mix(c, label, inner, 40010 + 10 * i, encap=Encap(t, Eth(tunnel=t)))
    c.expected_count = 4 * ENCAP_MIX_ALERTS
    return c


def case_encap_gtpu():
    c = encap_case("encap_gtpu", "GTP-U G-PDUs (3GPP TS 29.281) on UDP 2152 between a base station and a gateway, "
                   "one TEID per direction: the 8-byte header only; with sequence numbers (S); with S and an "
                   "extension header chain (E: a PDU Session Container) carrying IPv6", 37, "gtpu-bad.example")
    enb, gw = "172.16.37.10", "172.16.37.1"
    g = Gtpu(enb, gw, (0x0100000A, 0x0200000A))
    encap_mix(c, "bare", "10.37.1.10", 40010, encap=Encap(g, Eth(tunnel=g)))
    g = Gtpu(enb, gw, (0x0100000B, 0x0200000B), seq=True)
    encap_mix(c, "seq", "10.37.2.10", 40020, encap=Encap(g, Eth(tunnel=g)))
    g = Gtpu(enb, gw, (0x0100000C, 0x0200000C), seq=True, ext=True)
    encap_mix(c, "ext", "2001:db8:37:3::10", 40030, encap=Encap(g, Eth(tunnel=g)))
    c.expected_count = 3 * ENCAP_MIX_ALERTS
    return c


def case_encap_teredo():
    c = encap_case("encap_teredo", "Teredo (RFC 4380): IPv6 in UDP between two clients' mapped addresses and a "
                   "relay on port 3544; packets from the relay carry an origin indication header: all of them for "
                   "the first client, every third for the second", 38, "teredo-bad.example")
    for i, (mapped, port, every) in enumerate([("198.51.100.7", 40001, 1), ("198.51.100.8", 50002, 3)]):
        t = Teredo(mapped, port, "192.0.2.99", origin_every=every)
        encap_mix(c, "client%d" % (i + 1), teredo_address("192.0.2.45", port, mapped), 40010 + 10 * i,
                  encap=Encap(t, Eth(tunnel=t)))
    c.expected_count = 2 * ENCAP_MIX_ALERTS
    return c


def case_encap_capwap():
    c = encap_case("encap_capwap", "CAPWAP data channel (RFC 5415, UDP 5247) between an access point and its "
                   "controller: an 802.3 frame (T=0); an IEEE 802.11 QoS data frame with LLC/SNAP (T=1, WBID 1, "
                   "ToDS/FromDS by direction); the same with the optional radio MAC address (M, HLEN 4) over IPv6",
                   39, "capwap-bad.example")
    ap, wlc = "10.39.0.20", "10.39.0.1"
    w = Capwap(ap, 32770, wlc)
    encap_mix(c, "dot3", "10.39.1.10", 40010, encap=Encap(Eth(), w, Eth(tunnel=w)))
    w = Capwap(ap, 32771, wlc, native_80211=True)
    encap_mix(c, "dot11", "10.39.2.10", 40020, encap=Encap(w, Eth(tunnel=w)))
    w = Capwap(ap, 32772, wlc, native_80211=True, radio_mac=b"\x02\x00\x00\x39\x00\x01")
    encap_mix(c, "dot11-radio-mac", "2001:db8:39:3::10", 40030, encap=Encap(w, Eth(tunnel=w)))
    c.expected_count = 3 * ENCAP_MIX_ALERTS
    return c


def v6_ext_full(src, dst):
    """Hop-by-hop and destination options (PadN), a segment routing header
    (RFC 8754; two segments, Segments Left 0: the destination is the final
    one, Segment List[0]), destination options again (RFC 8200 4.1 order)."""
    srh = u8(4) + u8(0) + u8(1) + u8(0) + u16(0) + ipaddress.IPv6Address(dst).packed + \
        ipaddress.IPv6Address("2001:db8:40::fe").packed
    return [(0, OPT_PADN4), (60, OPT_PADN4), (43, srh), (60, OPT_PADN4)]


def v6_ext_atomic(src, dst):
    """Hop-by-hop (Router Alert) and an atomic fragment header (RFC 6946:
    offset 0, M 0: not a fragment)."""
    return [(0, OPT_ROUTER_ALERT), (44, u16(0) + u32(stable_int(src, dst)))]


def v6_ext_ah(src, dst):
    """An atomic fragment header, then an Authentication Header (RFC 4302:
    reserved, SPI, sequence number, a 96-bit ICV)."""
    ah = u16(0) + u32(0x00000100) + u32(1) + hashlib.sha1((src + dst).encode()).digest()[:12]
    return [(44, u16(0) + u32(stable_int(src, dst))), (51, ah)]


def case_encap_ipv6_ext():
    c = encap_case("encap_ipv6_ext", "IPv6 extension headers before TCP and UDP: hop-by-hop + destination "
                   "options + a segment routing header + destination options; hop-by-hop + an atomic fragment "
                   "header; and, for IPv4, a Router Alert option (IHL 6). (With an AH: encap_ipv6_ah, known "
                   "failing)", 40, "ipv6ext-bad.example")
    encap_mix(c, "full", "2001:db8:40:1::10", 40010, v6_ext=v6_ext_full)
    encap_mix(c, "atomic", "2001:db8:40:2::10", 40020, v6_ext=v6_ext_atomic)
    encap_mix(c, "v4opt", "10.40.3.10", 40030, v4_options=[IPOption_Router_Alert()])
    c.expected_count = 3 * ENCAP_MIX_ALERTS
    return c


def big_dns_response(txid, name, qtype, listed, n=None):
    """A response of 540-660 bytes (three 256-byte fragments, the last
    record in the third): 31 A or 22 AAAA records, the listed address last.
    (At most 32 answers: the sensor looks at the first 32 only, see the
    dns_answer_cap known-failing case.)"""
    n = n or (31 if qtype == "A" else 22)
    if qtype == "A":
        ans = [("A", "192.0.2.%d" % (i + 1)) for i in range(n - 1)]
    else:
        ans = [("AAAA", "2001:db8:ffff::%x" % (i + 1)) for i in range(n - 1)]
    return dns_response(txid, name, qtype, ans + [(qtype, listed)])


def other_copy(old, new):
    """For Frag(alt=...): the datagram with the address `old` (which must
    occur once) replaced by `new`."""
    old_b, new_b = ipaddress.ip_address(old).packed, ipaddress.ip_address(new).packed

    def alt(dgram):
        assert dgram.count(old_b) == 1, "%s occurs %d times" % (old, dgram.count(old_b))
        return dgram.replace(old_b, new_b)
    return alt


def frag_lookup(c, cli, port, srv, name, qtype, listed, frag, **kw):
    """A lookup whose (big) response is sent in fragments per `frag`."""
    f = c.udp(cli, port, srv, 53, **kw)
    txid = stable_int(name) & 0xFFFF
    f.dns(dns_query(txid, [name], qtype))
    f.dns(big_dns_response(txid, name, qtype, listed), to_server=False, frag=frag)
    return f


def frag_http(c, cli, port, srv, frag, **kw):
    """An HTTP request whose one TCP segment is sent in IP fragments; the
    Host header is in a later fragment than the request line."""
    f = c.tcp(cli, port, srv, 80, **kw).open()
    req = HttpReq("GET", "/get/payload.bin", "dl." + c.dom,
                  ["Cookie: session=" + base64.b64encode(rand_bytes(c.rng, 300)).decode(), UA_BROWSER,
                   "Accept: */*"], host_last=True)
    f.send(req.wire, frag=frag)
    f.note_http(req)
    resp = http_resp(200, b"MZ" + rand_bytes(c.rng, 62), b"application/octet-stream")
    f.send(resp, to_server=False)
    f.note_http_response(resp)
    f.close()
    return f


def case_encap_fragments():
    c = encap_case("encap_fragments", "IP fragments the sensor reassembles (dissect/defrag.c) before it matches: "
                   "IPv4 and IPv6 DNS responses cut in three 256-byte fragments, out of order, one fragment sent "
                   "twice (identical: a duplicate, not an overlap), the listed answer in the last piece "
                   "(dns.answer); the same inside an 802.1Q tag (the reassembled datagram keeps the tag), and "
                   "inside a GRE tunnel (inner fragments, one per GRE packet); IPv4 and IPv6 echo requests and "
                   "replies to listed addresses in three fragments (the flow exists only once reassembled); "
                   "conflicting overlaps (a second, different copy of the middle fragment): IPv4 keeps the first "
                   "copy (the listed address only in the second: no dns.answer), IPv6 drops the datagram (the "
                   "listed address in the last fragment: no dns.answer)", 41, "frag-bad.example")
    c.ind("SUBNET", "203.0.113.128/25")
    c.ind("SUBNET", "2001:db8:a5::/48")
    v4, v6 = ENCAP_SERVERS[4], ENCAP_SERVERS[6]
    # IPv4: the last fragment first, then the first twice.
    frag_lookup(c, "10.41.1.10", 40010, v4["res"], "big.v4." + c.dom, "A", "203.0.113.200",
                Frag(256, lambda n: [2, 0, 0, 1]))
    # IPv6 (fragment headers): the middle one twice.
    frag_lookup(c, "2001:db8:41:2::10", 40020, v6["res"], "big.v6." + c.dom, "AAAA", "2001:db8:a5::99",
                Frag(256, lambda n: [1, 2, 1, 0]))
    # Tagged fragments, in order.
    frag_lookup(c, "10.41.3.10", 40030, v4["res"], "vlan.v4." + c.dom, "A", "203.0.113.202",
                Frag(256), vlans=[(TPID_8021Q, 41)])
    # Inner fragments in a GRE tunnel: one per GRE packet, reversed.
    g = Gre("172.16.41.5", "172.16.41.6", key=41)
    frag_lookup(c, "10.41.4.10", 40040, v4["res"], "inner-frag." + c.dom, "A", "203.0.113.201",
                Frag(256, lambda n: [2, 1, 0]), encap=Encap(g, Eth(tunnel=g)))
    # Echo request and reply of 1228 bytes in three fragments each.
    IcmpFlow(c, "10.41.5.10", v4["bad"], 0x4105).ping(1, rand_bytes(c.rng, 1200),
                                                     frag=Frag(512, lambda n: list(reversed(range(n)))))
    IcmpFlow(c, "2001:db8:41:6::10", v6["bad"], 0x4106).ping(1, rand_bytes(c.rng, 1200),
                                                            frag=Frag(512, lambda n: [1, 0, 2]))
    # Conflicting overlaps. IPv4, first wins: the second copy of the middle
    # fragment has a listed address where the first has a benign one.
    frag_lookup(c, "10.41.7.10", 40070, v4["res"], "overlap.v4." + c.dom, "A", "192.0.2.31",
                Frag(256, lambda n: [0, 1, ("alt", 1), 2], alt=other_copy("192.0.2.21", "203.0.113.210")))
    # IPv6 drops the datagram: the listed address (last fragment) is never read.
    frag_lookup(c, "2001:db8:41:8::10", 40080, v6["res"], "overlap.v6." + c.dom, "AAAA", "2001:db8:a5::98",
                Frag(256, lambda n: [0, 1, ("alt", 1), 2], alt=other_copy("2001:db8:ffff::b", "2001:db8:ffff::bb")))
    c.expected_count = 12
    return c


# ---- Known-failing cases ---------------------------------------------------
# What the sensor gets wrong as of this writing (pcaps/README.md, "Known
# sensor disagreements"). Not committed, so that `ctest -L pcap` stays green;
# `make_pcaps.py --known-failing --out DIR` writes them (with everything else)
# under DIR, where run_case.py --source-dir DIR runs them.


def case_encap_fragments_tcp():
    c = encap_case("encap_fragments_tcp", "Fragmented TCP and fragmented tunnels: HTTP requests whose one TCP "
                   "segment is cut in IP fragments (IPv4: four, reversed; IPv6: three, mixed), the Host header in a "
                   "later fragment than the request line; a GRE tunnel with a 256-byte MTU whose outer datagrams "
                   "over that size are fragmented (reversed), carrying a TLS session and a DNS lookup. Expected: "
                   "one flow each, as without fragments. With --workers 2 the reader sends a fragment to the "
                   "worker its fragment hash picks (addresses only, or the outer tunnel's addresses), not the "
                   "worker of its flow: the flow is split in two", 43, "frag-bad.example")
    v4, v6 = ENCAP_SERVERS[4], ENCAP_SERVERS[6]
    for i in range(4):
        frag_http(c, "10.43.1.10", 40010 + i, v4["bad"], Frag(192, lambda n: list(reversed(range(n)))))
    for i in range(4):
        frag_http(c, "2001:db8:43:2::10", 40020 + i, v6["bad"], Frag(256, lambda n: [1, 0, 2]))
    g = Gre("172.16.43.1", "172.16.43.2", frag=Frag(128, lambda n: list(reversed(range(n))), mtu=256))
    for i in range(2):
        f = c.tcp("10.43.3.10", 40030 + i, v4["bad"], 443, encap=Encap(g, Eth(tunnel=g))).open()
        f.tls12(hello_tls12_grease(c.rng, "outer-frag.tls." + c.dom), [c.der], app_rounds=0)
    frag_lookup(c, "10.43.3.10", 40040, v4["res"], "outer-frag." + c.dom, "A", "192.0.2.201", None,
                encap=Encap(g, Eth(tunnel=g)))
    c.expected_count = 8 * 3 + 2 * 4 + 1
    return c


def case_encap_capwap_radios():
    c = encap_case("encap_capwap_radios", "CAPWAP data channel carrying IEEE 802.11 frames (T=1, WBID 1) from "
                   "radios 1, 2 and 3 (RID, RFC 5415 section 4.3: 1 to 31). The sensor reads the WBID from the "
                   "RID's bits, so it decodes radio 1 only", 44, "capwap-bad.example")
    for i, rid in enumerate((1, 2, 3)):
        w = Capwap("10.44.0.20", 32780 + i, "10.44.0.1", native_80211=True, rid=rid)
        encap_mix(c, "radio%d" % rid, "10.44.%d.10" % (i + 1), 40010 + 10 * i, encap=Encap(w, Eth(tunnel=w)))
    c.expected_count = 3 * ENCAP_MIX_ALERTS
    return c


def case_encap_ipv6_ah():
    c = encap_case("encap_ipv6_ah", "IPv6 with an Authentication Header (RFC 4302) before TCP and UDP, alone and "
                   "after an atomic fragment header. The sensor's decoder walks the AH and finds the flows, but "
                   "nDPI (given the IP header) does not and classifies the TCP flows as IPsec: their alerts say "
                   "app_proto \"ipsec\", ndpi IPsec/VPN, where the plain form says tls / http", 46,
                   "ah-bad.example")
    encap_mix(c, "ah", "2001:db8:46:1::10", 40010, v6_ext=lambda s, d: v6_ext_ah(s, d)[1:])
    encap_mix(c, "frag-ah", "2001:db8:46:2::10", 40020, v6_ext=v6_ext_ah)
    c.expected_count = 2 * ENCAP_MIX_ALERTS
    return c


def case_dns_answer_cap():
    c = Case("dns_answer_cap", "DNS responses with 32 and 33 A records, a listed address last: docs/EVENTS.md "
             "says every A/AAAA address of the answer section is matched (dns.answer), the sensor keeps the "
             "first 32 (KG_DNS_MSG_MAX_ANSWERS) and misses the 33rd", 45)
    c.ind("SUBNET", "203.0.113.128/25")
    for i, n in enumerate((32, 33)):
        f = c.udp("10.45.1.10", 40010 + i, "192.0.2.53", 53)
        name = "n%d.example.org" % n
        f.dns(dns_query(0x4500 + n, [name]))
        f.dns(big_dns_response(0x4500 + n, name, "A", "203.0.113.%d" % (200 + n), n), to_server=False)
    c.expected_count = 2
    return c


def case_encap_nested():
    c = encap_case("encap_nested", "Nested encapsulations: VXLAN inside GRE inside an 802.1Q tag (VXLAN's inner "
                   "frame tagged too: vlan [10, 20]); and 802.1ad + 802.1Q, MPLS, GRE (TEB) with a tagged frame "
                   "holding IPv6, VXLAN over that IPv6 with a tagged frame again: four tags on the path, the "
                   "sensor reports the first three", 42, "nested-bad.example")
    vx, g = Vxlan("172.16.42.3", "172.16.42.4", 4242), Gre("172.16.42.1", "172.16.42.2")
    encap_mix(c, "vxlan-gre-vlan", "10.42.1.10", 40010,
              encap=Encap(Eth([(TPID_8021Q, 20)]), vx, g, Eth([(TPID_8021Q, 10)], tunnel=g)))
    vx, g = Vxlan("2001:db8:42::3", "2001:db8:42::4", 4243), Gre("172.16.42.5", "172.16.42.6", key=42)
    encap_mix(c, "deep", "10.42.2.10", 40020,
              encap=Encap(Eth([(TPID_8021Q, 14)]), vx, Eth([(TPID_8021Q, 13)], tunnel=vx), g, Mpls([5005]),
                          Eth([(TPID_8021AD, 11), (TPID_8021Q, 12)], tunnel=g)))
    c.expected_count = 2 * ENCAP_MIX_ALERTS
    return c


CASES = [case_dns_udp, case_dns_tcp, case_dns_case_and_dot, case_tls_sni, case_tls_split, case_http, case_ip_match,
         case_vlan, case_ipv6, case_malformed, case_escaping, case_no_match, case_demo, case_dns_answer,
         case_dns_answer_late, case_metadata, case_encap_qinq, case_encap_mpls, case_encap_pppoe, case_encap_gre,
         case_encap_erspan, case_encap_vxlan, case_encap_ipip, case_encap_gtpu, case_encap_teredo, case_encap_capwap,
         case_encap_ipv6_ext, case_encap_fragments, case_encap_nested, case_encap_fragments_tcp,
         case_encap_capwap_radios, case_dns_answer_cap]

# Written only with --known-failing, and never into the repository (see above).
# encap_ipv6_ah: nDPI 4.2 is given the IP datagram and does not walk past AH,
# so flows under AH get app_proto "ipsec"; the alerts themselves are right.
KNOWN_FAILING = [case_encap_ipv6_ah]

# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------


ENCAP_PCAP_MAX = 50 * 1024  # the encap captures stay small


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
    if case.plain is not None:
        files["pcaps/" + case.plain_name] = case.plain.to_bytes()
        meta["same_as_plain"] = "pcaps/" + case.plain_name
        for rel in ("pcaps/" + case.pcap_name, "pcaps/" + case.plain_name):
            if len(files[rel]) > ENCAP_PCAP_MAX:
                raise SystemExit("%s: %s is %d bytes, over %d" % (case.name, rel, len(files[rel]), ENCAP_PCAP_MAX))
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
    ap.add_argument("--known-failing", action="store_true",
                    help="also write the cases the sensor fails as of this writing (needs --out elsewhere than "
                         "the repository: they are not committed)")
    args = ap.parse_args()
    cases = list(CASES)
    if args.known_failing:
        if not args.print_case and (args.check or os.path.realpath(args.out) == os.path.realpath(ROOT)):
            ap.error("--known-failing writes with --out DIR (not the repository) or prints with --print")
        cases += KNOWN_FAILING
    stale = 0
    for fn in cases:
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
