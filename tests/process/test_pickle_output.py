"""pickle:// destinations: polymur writes carbon's pickle framing (as carbon-relay does) to a real
carbon-cache's pickle port, with the same delivery confirmation and durability as line output."""
import os
import pickle
import shutil
import struct
import sys
import time
import unittest

from harness import CarbonSandbox, OutputKiller, RelayTestCase, daemon_port, send_lines, send_paced, wait_until

CONF = """LINE_RECEIVER_PORT = {cache_line}
PICKLE_RECEIVER_PORT = {cache_pickle}
CACHE_QUERY_PORT = {cache_query}
"""


def frames(data):
    """Every (name, (timestamp, value)) in a byte stream of carbon pickle frames, and the frame count;
    fails on a frame Python's pickle cannot read or a stream cut inside a frame."""
    out, at, count = [], 0, 0
    while at < len(data):
        (length,) = struct.unpack("!L", data[at:at + 4])
        assert at + 4 + length <= len(data), "a frame cut short"
        assert length <= 1 << 20, "a frame over carbon's PICKLE_RECEIVER_MAX_LENGTH"
        out += pickle.loads(data[at + 4:at + 4 + length])
        at += 4 + length
        count += 1
    return out, count


class PickleOutputToSinkTest(RelayTestCase):
    def test_frames_hold_every_line_as_python_reads_them(self):
        sink = self.sink()
        relay = self.relay("--max-line-length=300000", destinations=["pickle://" + sink.address])
        lines = ["p.m%05d %s %d" % (i, ("%d.25" % i) if i % 3 else "-%de3" % i, 1700000000 + i) for i in range(20000)]
        lines.append("caf\u00e9.unicode 1 1700000000")
        # A name longer than a frame holds (256 KiB) passes the listener here and cannot be pickled.
        lines.append("long." + "n" * 270000 + " 1 1700000000")
        send_lines(relay.port, lines, connections=4)
        dest = "pickle://" + sink.address
        wait_until(lambda: relay.stats()["destinations"][dest]["queued"] == 0 and
                   relay.stats()["destinations"][dest]["sent"] == len(lines), 30, message="every line confirmed")
        stats = relay.stats()["destinations"][dest]
        self.assertEqual(stats["unsendable"], 1)
        self.assertIn("cannot be pickled and were left out", relay.log())
        self.assertIn("a name longer than a pickle frame holds", relay.log())
        wait_until(lambda: len(frames(sink.data())[0]) == len(lines) - 1, 10, message="every frame received")
        metrics, count = frames(sink.data())
        self.assertGreater(count, 1)
        got = {name: point for name, point in metrics}
        self.assertEqual(len(got), len(lines) - 1)
        for i in range(20000):
            value = float("%d.25" % i) if i % 3 else float("-%de3" % i)
            self.assertEqual(got["p.m%05d" % i], (float(1700000000 + i), value))
        self.assertEqual(got["caf\u00e9.unicode"], (1700000000.0, 1.0))


@unittest.skipUnless(shutil.which("carbon-cache"), "needs graphite-carbon (./dev.sh test installs it)")
class PickleOutputToCarbonTest(RelayTestCase):
    def setUp(self):
        self.ports = {k: daemon_port() for k in ("cache_line", "cache_pickle", "cache_query")}
        self.carbon = CarbonSandbox("polymur-pickle-out-", CONF, **self.ports)
        self.addCleanup(self.carbon.cleanup)
        self.carbon.daemon("carbon-cache", listens=[self.ports["cache_pickle"]])

    def whisper_values(self, name, start, end):
        sys.path.insert(0, "/usr/lib/python3/dist-packages")
        import whisper
        path = os.path.join(self.carbon.whisper_root(), *name.split(".")) + ".wsp"
        if not os.path.exists(path):
            return None
        (first, _, step), values = whisper.fetch(path, start - 1, end + 1)
        return {first + i * step: v for i, v in enumerate(values) if v is not None}

    def test_every_metric_in_whisper_though_the_output_is_killed_mid_stream(self):
        dest = "pickle://127.0.0.1:%d" % self.ports["cache_pickle"]
        relay = self.relay(destinations=[dest])
        title = "polymur: output " + dest
        now = int(time.time()) // 60 * 60
        names = ["pickle.out.h%02d.m%d" % (h, m) for h in range(10) for m in range(5)]
        points = 1000
        expected = {name: {now - 60 * k: float(n * 1000 + k) + 0.5 for k in range(points)} for n, name in enumerate(names)}
        lines = ["%s %r %d" % (name, value, ts) for name in names for ts, value in expected[name].items()]
        killer = OutputKiller(relay, title).start()
        send_paced(relay.port, lines, 500, 0.02)
        kills = killer.stop()
        self.assertGreaterEqual(len(kills), 3, "the stream ended before the output was killed 3 times")
        wait_until(lambda: relay.stats()["destinations"][dest]["queued"] == 0, 60, message="queue drained")
        stats = relay.stats()["destinations"][dest]
        self.assertEqual(stats["unsendable"], 0)
        self.assertIn("killed by signal 9", relay.log())
        for name in names:
            wait_until(lambda: self.whisper_values(name, now - 60 * points, now) == expected[name], 120,
                       message="%s: all %d points in whisper" % (name, points))


if __name__ == "__main__":
    unittest.main()
