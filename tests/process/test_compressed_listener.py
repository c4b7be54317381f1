"""gzip and LZ4 streams on the line listeners (--listen-addr and --tls-listen-addr), as carbon-c-relay's
`transport gzip|lz4` sends them: recognised by their first bytes, decoded, and every line takes the
plaintext path. Streams are made by independent tools (Python's gzip and zlib, the lz4 command) and by
polymur's own encoder (stream_codec_tool) for LZ4 blocks flushed on an open connection.
"""
import gzip
import os
import shutil
import socket
import subprocess
import unittest
import zlib

from harness import TIME_FACTOR, RelayTestCase, numbered, wait_until
from test_stream_codec import TOOL
from test_tls_listener import PkiTestCase, closed_by_peer, payload, tls_client


def lz4_cli(data, *args):
    return subprocess.run(["lz4", "-c"] + list(args), input=data, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          check=True, timeout=60 * TIME_FACTOR).stdout


def polymur_lz4_open(data):
    """An LZ4 frame whose block is flushed but not ended, as a relay leaves it between batches."""
    return subprocess.run([TOOL, "encode", "lz4", str(len(data)), "open"], input=data, stdout=subprocess.PIPE, check=True,
                          timeout=60 * TIME_FACTOR).stdout


class CompressedListenerTest(PkiTestCase):
    def send(self, port, data, tls=False):
        s = tls_client(port, self.ca.cert) if tls else socket.create_connection(("127.0.0.1", port))
        with s:
            s.sendall(data)

    def check_all_arrive(self, make_stream, tls):
        sink = self.sink()
        relay = self.tls_relay(destinations=[sink.address])
        port = self.tls_port if tls else relay.port
        lines = numbered("compressed", 0, 30000)
        self.send(port, make_stream(payload(lines)), tls)
        wait_until(lambda: sink.line_count() >= len(lines), 30, message="every decoded line at the sink")
        self.assertEqual(sorted(sink.lines()), sorted(lines))
        stats = relay.stats()
        self.assertEqual((stats["received"], stats["invalid"], stats["compressed_streams"], stats["compressed_invalid"]),
                         (len(lines), 0, 1, 0))

    def test_gzip_over_tcp(self):
        self.check_all_arrive(gzip.compress, tls=False)

    def test_gzip_over_tls(self):
        self.check_all_arrive(gzip.compress, tls=True)

    @unittest.skipUnless(shutil.which("lz4"), "needs the lz4 command")
    def test_lz4_over_tcp(self):
        self.check_all_arrive(lz4_cli, tls=False)

    @unittest.skipUnless(shutil.which("lz4"), "needs the lz4 command")
    def test_lz4_over_tls(self):
        self.check_all_arrive(lambda data: lz4_cli(data, "-B4", "-BD"), tls=True)

    def test_each_flushed_batch_arrives_while_the_stream_stays_open(self):
        sink = self.sink()
        relay = self.tls_relay(destinations=[sink.address])
        first, second = numbered("flushed.a", 0, 500), numbered("flushed.b", 0, 500)
        compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        with socket.create_connection(("127.0.0.1", relay.port)) as g, tls_client(self.tls_port, self.ca.cert) as z:
            g.sendall(compressor.compress(payload(first)) + compressor.flush(zlib.Z_SYNC_FLUSH))
            z.sendall(polymur_lz4_open(payload(second)))
            # Neither stream has ended: each batch must come through on its flush alone.
            wait_until(lambda: sink.line_count() >= 1000, 20, message="both flushed batches before the streams end")
        self.assertEqual(sorted(sink.lines()), sorted(first + second))

    def test_a_broken_stream_closes_its_connection_only(self):
        sink = self.sink()
        relay = self.tls_relay(destinations=[sink.address], workers=1)
        good = socket.create_connection(("127.0.0.1", relay.port))
        good.sendall(b"before 1 1700000000\n")
        corrupt = bytearray(gzip.compress(payload(numbered("corrupt", 0, 5000))))
        corrupt[len(corrupt) // 2] ^= 0x5a
        lz4_garbage = b"\x04\x22\x4d\x18" + os.urandom(3000)
        for blob in (bytes(corrupt), lz4_garbage):
            with socket.create_connection(("127.0.0.1", relay.port)) as s:
                s.sendall(blob)
                self.assertTrue(closed_by_peer(s, 10), "a broken stream's connection was kept")
        # Cut short: the client leaves in the middle of a gzip member.
        self.send(relay.port, gzip.compress(payload(numbered("cut", 0, 5000)))[:-20])
        good.sendall(b"after 1 1700000000\n")
        good.close()
        wait_until(lambda: relay.stats()["compressed_invalid"] == 3, 10, message="three refused streams counted")
        wait_until(lambda: "after 1 1700000000" in sink.lines(), 10, message="the plain connection's lines")
        self.assertIn("before 1 1700000000", sink.lines())
        self.assertIn("stream", relay.log())
        self.assertEqual(len(relay.children()), 2, "a listener died")

    def test_a_decompression_bomb_is_read_in_bounded_pieces(self):
        sink = self.sink()
        relay = self.tls_relay(destinations=[sink.address], workers=1)
        bomb = gzip.compress(b"x" * (256 << 20), 9)  # 256 MiB of one endless line in about 250 KiB
        self.send(relay.port, bomb)
        with socket.create_connection(("127.0.0.1", relay.port)) as s:
            s.sendall(gzip.compress(b"x" * (64 << 20) + b" 1 1700000000\n" + payload(["after.bomb 1 1700000000"])))
        wait_until(lambda: "after.bomb 1 1700000000" in sink.lines(), 60, message="the line after the bomb")
        stats = relay.stats()
        self.assertGreaterEqual(stats["too_long"], 2)
        self.assertEqual(stats["compressed_invalid"], 0)
        listener = [pid for pid, title in relay.children().items() if "listener" in title][0]
        with open("/proc/%d/status" % listener) as f:
            peak = [int(l.split()[1]) for l in f if l.startswith("VmHWM:")][0] * 1024
        if not os.environ.get("TEST_SANITIZER_REPORTS"):
            self.assertLess(peak, 64 << 20, "the listener's peak memory grew with the bomb")


if __name__ == "__main__":
    unittest.main()
