"""What the real-capture oracle tests share (real_oracle.py, meta_oracle.py):
where the captures and ORACLE.tsv are, how values are normalised for
comparison, and the start of a run (checks, capture list, work directory).
Standard library only."""
import ipaddress
import os
import tempfile

SKIP_RC = 77
ORACLE_COLUMNS = ["pcap", "kind", "value", "src_ip", "src_port", "dst_ip", "dst_port",
                  "ip_proto", "first_frame", "count", "note"]
PROTO_NUMBERS = {"ICMP": 1, "TCP": 6, "UDP": 17, "GRE": 47, "ESP": 50, "ICMPV6": 58,
                 "IPV6-ICMP": 58, "SCTP": 132}
CAPTURE_EXTENSIONS = (".pcap", ".pcapng", ".cap")
SANITIZER_MARKERS = ("runtime error:", "AddressSanitizer", "LeakSanitizer",
                     "ThreadSanitizer", "UndefinedBehaviorSanitizer")


def default_real_dir():
    # <source dir>/tests/scripts/oracle_common.py -> <source dir>/../shared/pcaps/real
    src = os.environ.get("KG_SOURCE_DIR") or os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))))
    return os.path.normpath(os.path.join(src, "..", "shared", "pcaps", "real"))


def norm_ip(s):
    try:
        return str(ipaddress.ip_address(s))
    except ValueError:
        return s


def is_escaped(value):
    """True when tshark did not print the value verbatim: its escaped form
    (U+FFFD for invalid UTF-8, a backslash escape for control bytes) or one
    of its placeholders such as "<Unknown extended label>" (angle brackets
    are not valid in a host name)."""
    if value.startswith("<") and value.endswith(">"):
        return True
    return any(c == "\ufffd" or ord(c) < 0x20 or ord(c) == 0x7f or c == "\\" for c in value)


def rate(found, total):
    return 100.0 * found / total if total else 100.0


def add_common_args(ap):
    """The command-line options both tests take."""
    ap.add_argument("--kagami", required=True, help="path of the kagami binary")
    ap.add_argument("--real-dir", default=None,
                    help="capture directory with ORACLE.tsv (default: <source>/../shared/pcaps/real)")
    ap.add_argument("--jobs", type=int, default=2, help="captures run in parallel (default 2)")
    ap.add_argument("--workers", type=int, default=2, help="kagami --workers (default 2)")
    ap.add_argument("--timeout", type=int, default=120, help="per-capture timeout in seconds")
    ap.add_argument("--keep", metavar="DIR", help="write outputs to DIR and keep them")


class Run:
    """The start of a run: real_dir, oracle_path, captures, workdir (and the
    TemporaryDirectory keeping it, or None with --keep). `rc` is set instead
    when the run cannot start: SKIP_RC when the capture set is absent, 1 on
    an error (printed)."""

    def __init__(self, args, tmp_prefix):
        self.rc = None
        self.tmp = None
        self.real_dir = args.real_dir or default_real_dir()
        if not os.path.isdir(self.real_dir):
            print("SKIP: ../shared/pcaps/real not found (the real-capture set is not shipped "
                  "with the repository)")
            self.rc = SKIP_RC
            return
        self.oracle_path = os.path.join(self.real_dir, "ORACLE.tsv")
        if not os.path.isfile(self.oracle_path):
            print("FAIL: %s has no ORACLE.tsv" % self.real_dir)
            self.rc = 1
            return
        if not (os.path.isfile(args.kagami) and os.access(args.kagami, os.X_OK)):
            print("FAIL: kagami binary not found or not executable: %s" % args.kagami)
            self.rc = 1
            return
        self.captures = sorted(f for f in os.listdir(self.real_dir) if f.lower().endswith(CAPTURE_EXTENSIONS))
        if not self.captures:
            print("FAIL: no capture in %s" % self.real_dir)
            self.rc = 1
            return
        if args.keep:
            os.makedirs(args.keep, exist_ok=True)
            self.workdir = args.keep
        else:
            self.tmp = tempfile.TemporaryDirectory(prefix=tmp_prefix)
            self.workdir = self.tmp.name
