"""Lines judged by carbon's own receiver, for differential tests of what polymur forwards.

`corpus()` makes a few thousand lines, the same on every run: valid ones and adversarial ones (mixed
whitespace, Unicode, invalid UTF-8, numbers of every form, long names). `carbon_reads()` feeds one
line to carbon's MetricLineReceiver from the installed graphite-carbon (only its metricReceived is
replaced, to capture what it would store). `Differential` runs a corpus through polymur with a marker
line after each test line, so every forwarded line is tied to the line it came from, and checks the
decisions table of the README ("Input") line by line.
"""
import random
import sys
import time
import unicodedata

CARBON_PATH = "/usr/lib/python3/dist-packages"

# The whitespace Python's str.split() splits on (str.isspace()), which carbon splits fields on.
UNICODE_SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace()]
INVALID_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
                b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xc3", b"\xe6\xb8",
                b"\xf0\x9f\x98", b"\xc3\x28"]
MAX_LINE = 16384  # polymur's --max-line-length default, and carbon's LineOnlyReceiver.MAX_LENGTH
MARKER = "polymur.differential.marker"


def carbon_receiver():
    if CARBON_PATH not in sys.path:
        sys.path.append(CARBON_PATH)
    from carbon.protocols import MetricLineReceiver

    class Capture(MetricLineReceiver):
        def metricReceived(self, metric, datapoint):
            self.received.append((metric, datapoint))

    receiver = Capture()
    receiver.peerName = "differential-test"
    return receiver


def carbon_reads(receiver, line):
    """What carbon-cache does with `line` (bytes, without '\\n'):
    ("stored", name, value, timestamp or None for now), ("invalid",), ("dropped", why) or
    ("connection lost", why): an exception escapes the protocol and the connection drops with
    everything behind the line."""
    if len(line) > receiver.MAX_LENGTH:
        return ("connection lost", "line longer than MAX_LENGTH")  # LineOnlyReceiver.lineLengthExceeded
    receiver.received = []
    try:
        receiver.lineReceived(line)
    except Exception as e:  # the UTF-8 decode runs outside lineReceived's try
        return ("connection lost", type(e).__name__)
    if not receiver.received:
        return ("invalid",)
    (name, (timestamp, value)), = receiver.received
    # What MetricReceiver.metricReceived (carbon/protocols.py) does next with the datapoint: a NaN value
    # is dropped; int(timestamp) == -1 means now; int() of an infinite timestamp raises, uncaught.
    if value != value:
        return ("dropped", "NaN value")
    try:
        now = int(timestamp) == -1
    except (OverflowError, ValueError) as e:
        return ("connection lost", type(e).__name__)
    return ("stored", name, value, None if now else timestamp)


def corpus(count=4000, seed=20261121):
    """`count` lines (bytes, no '\\n'), the same on every run."""
    rng = random.Random(seed)
    ascii_name = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-:;=,!~#%&*()[]{}<>?@^|'\"`$\\+"
    unicode_chars = ["\u00e9", "\u00a1", "\u07ff", "\u0800", "\u6e29", "\ud7ff", "\ue000", "\uffff", "\U00010000",
                     "\U0010ffff", "\U0001f600", "\u200b", "\u180e", "\ufeff", "\u00ad", "\u202e"]
    controls = [chr(c) for c in list(range(0x20)) + list(range(0x7f, 0xa0)) if not chr(c).isspace() and c != 10]
    values = ["1", "0", "-0", "42", "-17", "1.5", ".5", "5.", "-.5", "1e3", "1E-3", "2.5e+10", "1.e5", "+1", "+1.5",
              "007", "1e309", "-1e309", "1e-400", "9" * 400, "inf", "-inf", "+inf", "Infinity", "-INFINITY", "iNf",
              "nan", "NaN", "-nan", "+nan", "1_000", "1__0", "_1", "1_", "\uff11\uff12", "\u0661", "1\uff10",
              "0x10", "0x1p3", "1e", "e3", "--1", "+-1", "1..2", "-", ".", "+", "", "1,5", "12abc", "nan(1)",
              "infinit", "1e5_0", "\u00bd", "\u2167"]
    stamps = ["1700000000", "1700000000.25", "0", "017", "-1", "-1.0", "-1e0", "-1.5", "-1.999", "-2", "-0.5",
              "-0", "-1700000000", "+1700000000", "1.7e9", "1e300", "1e309", "-1e309", "inf", "nan", "1e-400",
              "12345678901234567890", "1_700_000_000", "\uff11\uff17\uff10\uff10", "", "abc", "0x10", "-1e-400"]

    def name():
        kind = rng.random()
        parts = []
        for _ in range(rng.randint(1, 6)):
            n = rng.randint(1, 12)
            if kind < 0.55:
                parts.append("".join(rng.choice(ascii_name) for _ in range(n)))
            elif kind < 0.8:
                parts.append("".join(rng.choice(ascii_name + "".join(unicode_chars)) for _ in range(n)))
            else:
                parts.append("".join(rng.choice(ascii_name + "".join(unicode_chars + controls)) for _ in range(n)))
        return ".".join(parts).encode("utf-8")

    def separator():
        r = rng.random()
        if r < 0.6:
            return b" "
        if r < 0.7:
            return b"\t"
        return "".join(rng.choice(UNICODE_SPACES + [" ", "\t", "\r"]) for _ in range(rng.randint(1, 3))).encode()

    def field(choices):
        return rng.choice(choices).encode("utf-8") if rng.random() < 0.5 else choices[0].encode()

    lines = []
    while len(lines) < count:
        r = rng.random()
        parts = [name(), separator(), field(values), separator(), field(stamps)]
        if r < 0.3:  # plain, the common case
            parts = [name().decode("utf-8", "replace").encode(), b" ", rng.choice(values[:16]).encode(), b" ",
                     rng.choice([b"1700000000", b"-1", b"1700000000.5"])]
        elif r < 0.4:  # leading, trailing whitespace and a final '\r'
            parts = [separator()] + parts + [separator(), rng.choice([b"", b"\r"])]
        elif r < 0.5:  # invalid UTF-8 somewhere
            parts[rng.randrange(0, 5)] += rng.choice(INVALID_UTF8)
        elif r < 0.55:  # two or four fields
            parts = parts[:3] if rng.random() < 0.5 else parts + [separator(), field(stamps)]
        elif r < 0.6:  # a long name, around the line length limit
            n = rng.choice([1000, MAX_LINE - 20, MAX_LINE - 12, MAX_LINE - 13, MAX_LINE - 5, MAX_LINE + 10])
            parts[0] = (b"long." + b"x" * n)[:n]
        line = b"".join(parts)
        if b"\n" not in line:
            lines.append(line)
    return lines


def with_markers(lines):
    """The payload: each line followed by a marker line that names it."""
    out = bytearray()
    for i, line in enumerate(lines):
        out += line + b"\n" + ("%s %d 1700000000\n" % (MARKER, i)).encode()
    return bytes(out)


def forwarded_per_line(data, count, prefix=""):
    """The lines a destination received, grouped by the test line they came after."""
    marker = ((prefix + ".") if prefix else "") + MARKER
    groups = [[] for _ in range(count)]
    current = []
    for raw in data.split(b"\n")[:-1]:
        fields = raw.split(b" ")
        if fields[0] == marker.encode():
            groups[int(fields[1])] = current
            current = []
        else:
            current.append(raw)
    return groups


def python_only_number(text):
    """Forms Python's float() reads that are not plain ASCII numbers: '_' grouping, non-ASCII digits."""
    return "_" in text or any(ord(c) > 0x7f for c in text)


def documented_refusal(line, prefix=""):
    """Why polymur refuses a line carbon stores, per the README's table, or None."""
    name, value, timestamp = line.decode("utf-8").split()
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "control character in the name"
    if python_only_number(value) or python_only_number(timestamp):
        return "number form only Python reads"
    if float(timestamp) < 0 and int(float(timestamp)) != -1:
        return "negative timestamp other than -2 < ts <= -1"
    now = int(float(timestamp)) == -1
    forwarded = (len(prefix) + 1 if prefix else 0) + len(name.encode()) + 1 + len(value) + 1 + \
        (len(str(int(time.time()))) if now else len(timestamp))
    if forwarded > MAX_LINE:
        return "longer than --max-line-length once forwarded (namespace prefix, the time for -1)"
    return None


def shown(line, limit=160):
    return line if len(line) <= limit else line[:limit] + b"... (%d bytes)" % len(line)


class Differential:
    """Checks, line by line, what polymur forwarded against what carbon does with the same line."""

    def __init__(self, test, lines, groups, prefix=""):
        self.test, self.lines, self.groups, self.prefix = test, lines, groups, prefix
        self.receiver = carbon_receiver()
        self.counts = {}

    def check(self):
        for i, line in enumerate(self.lines):
            carbon = carbon_reads(self.receiver, line)
            got = self.groups[i]
            brief = tuple(shown(f.encode()) if isinstance(f, str) else f for f in carbon)
            with self.test.subTest(line=shown(line), carbon=brief, polymur=[shown(g) for g in got]):
                self._check_line(line, carbon, got)

    def _count(self, key):
        self.counts[key] = self.counts.get(key, 0) + 1

    def _check_line(self, line, carbon, got):
        t = self.test
        t.assertLessEqual(len(got), 1, "one line in, at most one line out")
        if carbon[0] != "stored":
            # Never forward what carbon refuses, and above all what makes it drop the connection.
            t.assertEqual(got, [], "polymur forwarded a line carbon %s" % carbon[0])
            self._count("both refuse (carbon: %s)" % carbon[0])
            return
        if not got:
            why = documented_refusal(line, self.prefix)
            t.assertIsNotNone(why, "carbon stores this line and polymur refused it for no documented reason")
            self._count("carbon stores, polymur refuses: " + why)
            return
        out = got[0]
        # What polymur forwards is plain: name SP value SP timestamp, UTF-8, and carbon reads it back as
        # the same datapoint it reads from the original line.
        fields = out.split(b" ")
        t.assertEqual(len(fields), 3, out)
        again = carbon_reads(self.receiver, out)
        t.assertEqual(again[0], "stored", "carbon refuses what polymur forwarded: %r" % (again,))
        _, name, value, timestamp = carbon
        expected_name = (self.prefix + "." + name) if self.prefix else name
        t.assertEqual(again[1], expected_name)
        t.assertEqual(again[2], value)
        if timestamp is None:
            t.assertLess(abs(again[3] - time.time()), 120, "a -1 timestamp is stamped with the time received")
            t.assertTrue(fields[2].isdigit())
        else:
            t.assertEqual(again[3], timestamp)
        self._count("both store")
