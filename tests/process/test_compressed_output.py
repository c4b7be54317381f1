"""gzip://, lz4://, gzip+tls:// and lz4+tls:// destinations (carbon-c-relay's `transport gzip|lz4 [ssl]`):
polymur to polymur with kill -9 of the output mid-stream, the stream checked with decoders that are not
polymur's (Python's gzip and zlib, the lz4 command), and a rules file's `transport lz4 ssl` member."""
import gzip
import os
import shutil
import subprocess
import tempfile
import unittest
import zlib

from harness import OutputKiller, Pki, RelayTestCase, ResetSink, complete_lines, send_lines, send_paced, wait_until


def gunzip_all(data):
    """Every gzip member in `data` decoded with zlib (a last member may be cut short)."""
    out = bytearray()
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out += d.decompress(data)
        data = d.unused_data
    return bytes(out)


def unlz4(data, whole=False):
    """`data` decoded by the lz4 command; with `whole`, it must be complete LZ4 frames."""
    proc = subprocess.run(["lz4", "-d", "-c", "-q"], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if whole and proc.returncode != 0:
        raise AssertionError("lz4 -d refused the stream: %s" % proc.stderr.decode())
    return proc.stdout


def decode(wire, data):
    """The lines one connection carried, whatever the wire (cut anywhere: whole lines only)."""
    if "gzip" in wire:
        data = gunzip_all(data)
    elif "lz4" in wire:
        data = unlz4(data)
    return complete_lines(data)


class WithServerCertificate(RelayTestCase):
    """A private CA (`pki`) and a certificate for localhost and 127.0.0.1 (`cert`, `key`), for the class."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="polymur-%s-" % cls.__name__)
        cls.pki = Pki(cls.tmp, "ca")
        cls.cert, cls.key = cls.pki.issue("server", "localhost", kind="server_ext")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)


@unittest.skipUnless(shutil.which("openssl") and shutil.which("lz4"), "needs openssl and lz4")
class CompressedOutputTest(WithServerCertificate):
    def receiver(self, tls):
        """polymur B: a plaintext listener (which reads compressed streams) or a TLS one, into a sink."""
        sink = self.sink()
        args = ["--tls-listen-addr=127.0.0.1:0", "--tls-cert=" + self.cert, "--tls-key=" + self.key]
        b = self.relay(*(args if tls else []), destinations=[sink.address])
        return b, b.bound_port("TLS") if tls else b.port, sink

    def test_polymur_to_polymur_with_the_output_killed_mid_stream(self):
        for wire in ("gzip", "lz4", "gzip+tls", "lz4+tls"):
            with self.subTest(wire=wire):
                b, port, sink = self.receiver("tls" in wire)
                dest = "%s://127.0.0.1:%d" % (wire, port)
                a = self.relay("--destination-ca=" + self.pki.cert, destinations=[dest])
                lines = ["%s.m%07d 1 1700000000" % (wire.replace("+", "_"), i) for i in range(300000)]
                killer = OutputKiller(a, "polymur: output " + dest, pause=0.3).start()
                send_paced(a.port, lines, 3000, 0.03)  # the kills (every 0.3 s) land while batches are in flight
                kills = killer.stop()
                self.assertGreaterEqual(len(kills), 3, "the stream ended before the output was killed 3 times")
                wait_until(lambda: a.stats()["destinations"][dest]["queued"] == 0, 60, message="A's queue drained")
                wait_until(lambda: set(lines) <= set(sink.lines()), 30, message="every line through B")
                got = sink.lines()
                self.assertLessEqual(set(got), set(lines))
                stats = b.stats()
                self.assertGreaterEqual(stats["compressed_streams"], 1)
                self.assertIn("connected (%s)" % wire.split("+")[0], a.log())
                print("%s: output killed %d times: %d lines received for %d sent (%d duplicates)" %
                      (wire, len(kills), len(got), len(lines), len(got) - len(lines)))

    def test_the_stream_decodes_with_independent_tools(self):
        for wire in ("gzip", "lz4", "gzip+tls", "lz4+tls"):
            with self.subTest(wire=wire):
                sink = ResetSink(tls=(self.cert, self.key) if "tls" in wire else None)
                self.addCleanup(sink.stop)
                dest = "%s://%s" % (wire, sink.address)
                a = self.relay("--destination-ca=" + self.pki.cert, destinations=[dest])
                lines = ["tools.%s.m%06d %d 1700000000" % (wire.replace("+", "_"), i, i) for i in range(30000)]
                send_lines(a.port, lines, connections=2)
                wait_until(lambda: a.stats()["destinations"][dest]["sent"] == len(lines), 30, message="all confirmed")
                a.stop()  # a clean stop ends the stream: the gzip trailer, the LZ4 end mark
                # The sink may not have read the last bytes yet: decode once it read the stream to its end.
                wait_until(sink.all_ended, 30, message="the sink read the stream to its end")
                streams = sink.streams()
                self.assertEqual(len(streams), 1)
                data = streams[0]
                if "gzip" in wire:
                    self.assertEqual(data[:2], b"\x1f\x8b")
                    plain = gzip.decompress(data)  # whole members, CRC and length checked
                    self.assertEqual(plain, gunzip_all(data))
                else:
                    self.assertEqual(data[:4], b"\x04\x22\x4d\x18")
                    plain = unlz4(data, whole=True)  # whole frames, content checksums checked
                self.assertLess(len(data), len(plain) / 3, "compressed")
                self.assertEqual(sorted(plain.decode().splitlines()), sorted(lines))

    def test_rules_member_transport_lz4_ssl(self):
        b, port, sink = self.receiver(True)
        rules = os.path.join(self.tmp, "relay.conf")
        with open(rules, "w") as f:
            f.write("cluster tier forward 127.0.0.1:%d transport lz4 ssl;\nmatch * send to tier stop;\n" % port)
        a = self.relay("--rules=" + rules, "--destination-ca=" + self.pki.cert)
        dest = "lz4+tls://127.0.0.1:%d" % port
        lines = ["rules.m%05d 1 1700000000" % i for i in range(20000)]
        send_lines(a.port, lines)
        wait_until(lambda: a.stats()["destinations"][dest]["sent"] == len(lines), 30, message="all confirmed")
        wait_until(lambda: sink.line_count() >= len(lines), 30, message="every line through B")
        self.assertEqual(sorted(sink.lines()), sorted(lines))
        self.assertEqual(b.stats()["compressed_streams"], 1)


if __name__ == "__main__":
    unittest.main()
