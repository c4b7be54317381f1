"""Delivery confirmation that a test can catch: the destination resets its connection with bytes
unacknowledged, so they are really lost (a kill -9 of the output cannot show this: the kernel still delivers
a killed process's socket buffer). Each wire the outputs speak: lines, pickle, TLS, gzip, LZ4, and the
compressed streams over TLS. An output that commits a batch before the destination acknowledged it loses
lines here; polymur must deliver every line (at least once; duplicates are counted, not lost)."""
import os
import pickle
import random
import shutil
import signal
import struct
import unittest

from harness import ResetSink, send_lines, tcp_sockets, wait_until
from test_compressed_output import WithServerCertificate, decode


def pickled_names(data):
    """The metric names of every whole pickle frame in `data` (carbon's framing: 4-byte length, pickle)."""
    names = []
    while len(data) >= 4:
        (size,) = struct.unpack("!L", data[:4])
        if len(data) < 4 + size:
            break
        names += [name for name, _ in pickle.loads(data[4:4 + size])]
        data = data[4 + size:]
    return names


@unittest.skipUnless(shutil.which("openssl") and shutil.which("lz4"), "needs openssl and lz4")
class OutputResetTest(WithServerCertificate):
    def check_wire(self, wire):
        held = []  # bytes the output's kernel held unacknowledged at each reset (what the reset destroys)
        relay = None
        dest = None

        def output_pid():
            return relay.child_pid("output " + dest)

        def stall():
            # The output stopped: nothing it does can race the reset.
            pid = output_pid()
            if pid:
                os.kill(pid, signal.SIGSTOP)
                stall.pid = pid
            held.append(sum(tx for state, tx, rx in tcp_sockets(sink.port) if state == "01"))

        def resume():
            if getattr(stall, "pid", None):
                os.kill(stall.pid, signal.SIGCONT)
                stall.pid = None

        # Compressed streams are reset sooner: their bytes are fewer.
        compressed = "gzip" in wire or "lz4" in wire
        sink = ResetSink(resets=3, after=(32 if compressed else 256) * 1024,
                         tls=(self.cert, self.key) if "tls" in wire else None, on_stall=stall, on_reset=resume)
        self.addCleanup(sink.stop)
        dest = ("%s://%s" % (wire, sink.address)) if wire else sink.address
        relay = self.relay("--destination-ca=" + self.pki.cert, destinations=[dest])
        names = ["reset.%s.m%07d" % (wire.replace("+", "_") or "line", i) for i in range(150000)]
        rng = random.Random(7)  # values that do not compress away, so each connection carries enough to reset
        send_lines(relay.port, ["%s %.6f 1700000000" % (n, rng.random()) for n in names], connections=2)

        def received():
            out = []
            for data in sink.streams():
                out += pickled_names(data) if wire.startswith("pickle") else [l.split()[0] for l in decode(wire, data)]
            return out

        # An output that commits early has fewer lines left to send after a reset: it may drain before the
        # third, so the first check is what arrived.
        wait_until(lambda: relay.stats()["destinations"][dest]["queued"] == 0, 60, message="queue drained")
        try:
            wait_until(lambda: set(names) <= set(received()), 20, interval=0.5, message="every line received")
        except AssertionError:
            self.fail("%s: %d of %d lines lost after %d resets" %
                      (wire or "line", len(set(names) - set(received())), len(names), sink.resets))
        self.assertEqual(sink.resets, 3)
        got = received()
        self.assertLessEqual(set(got), set(names))
        # The test could catch an early commit: each reset destroyed bytes the output had written.
        self.assertGreater(min(held), 0, "a reset found nothing unacknowledged: %s" % held)
        print("%s: %d resets destroying %s unacknowledged bytes; %d lines received for %d sent (%d duplicates)" %
              (wire or "line", sink.resets, held, len(got), len(names), len(got) - len(names)))

    def test_line(self):
        self.check_wire("")

    def test_pickle(self):
        self.check_wire("pickle")

    def test_tls(self):
        self.check_wire("tls")

    def test_gzip(self):
        self.check_wire("gzip")

    def test_lz4(self):
        self.check_wire("lz4")

    def test_gzip_tls(self):
        self.check_wire("gzip+tls")

    def test_lz4_tls(self):
        self.check_wire("lz4+tls")


if __name__ == "__main__":
    unittest.main()
