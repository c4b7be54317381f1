"""The byte format of polymur's gzip and lz4 streams (protocol/stream_codec), held against independent
implementations: Python's gzip and zlib modules, and the lz4 command line tool (Debian's lz4).

Debian's carbon-c-relay 3.7.3 is built without its `transport gzip|lz4`, so these tools are the oracle:
streams polymur encodes decode with them, streams they make decode in polymur, and a stream polymur
flushes at each batch gives a streaming reader each batch before the stream ends.
"""
import gzip
import os
import random
import shutil
import subprocess
import unittest
import zlib

from harness import TIME_FACTOR

TOOL = os.environ.get("STREAM_CODEC_TOOL", os.path.join(os.path.dirname(__file__), "..", "..", "build", "stream_codec_tool"))


def lines(count, seed):
    rnd = random.Random(seed)
    return "".join("servers.web%02d.cpu.%s %d %d\n" % (rnd.randrange(50), rnd.choice(["user", "system", "idle"]) + str(i),
                                                      rnd.randrange(1 << 20), 1700000000 + i) for i in range(count)).encode()


def tool(*args, data):
    result = subprocess.run([TOOL] + [str(a) for a in args], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=60 * TIME_FACTOR)
    return result.returncode, result.stdout, result.stderr.decode(errors="replace")


def lz4_cli(*args, data):
    result = subprocess.run(["lz4"] + list(args), input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=60 * TIME_FACTOR)
    return result.returncode, result.stdout, result.stderr.decode(errors="replace")


class GzipFormatTest(unittest.TestCase):
    def test_polymur_streams_decode_with_python(self):
        text = lines(20000, 1)
        for batch in (1 << 20, 4096, 333):
            code, wire, err = tool("encode", "gzip", batch, data=text)
            self.assertEqual(code, 0, err)
            self.assertEqual(wire[:2], b"\x1f\x8b")
            self.assertEqual(gzip.decompress(wire), text, "batch %d" % batch)

    def test_python_streams_decode_in_polymur(self):
        text = lines(20000, 2)
        members = gzip.compress(text[:100000], 9) + gzip.compress(text[100000:], 1)  # two members, as `cat a.gz b.gz`
        for wire in (gzip.compress(text), members):
            for chunk in (1, 7, 65536):
                data = wire if chunk != 1 else wire[:20000]
                expect = text if chunk != 1 else None
                code, out, err = tool("decode", "gzip", chunk, data=data)
                if expect is None:  # a cut stream: what came through is a prefix, and it is named
                    self.assertEqual(code, 1)
                    self.assertIn("cut short", err)
                    self.assertTrue(text.startswith(out))
                else:
                    self.assertEqual(code, 0, err)
                    self.assertEqual(out, expect)

    def test_each_flushed_batch_reaches_a_streaming_reader_before_the_end(self):
        batches = [lines(100 + i, 10 + i) for i in range(5)]
        code, wire, err = tool("encode", "gzip", len(batches[0]), "open", data=batches[0])
        self.assertEqual(code, 0, err)
        reader = zlib.decompressobj(16 + zlib.MAX_WBITS)  # a streaming peer, as a relay reads a socket
        self.assertEqual(reader.decompress(wire), batches[0])
        self.assertFalse(reader.eof)

    def test_corrupt_streams_are_refused(self):
        wire = bytearray(gzip.compress(lines(2000, 3)))
        wire[len(wire) // 2] ^= 0x55
        code, out, err = tool("decode", "gzip", 4096, data=bytes(wire))
        self.assertEqual(code, 1)
        self.assertIn("gzip", err)
        code, out, err = tool("decode", "gzip", 4096, data=b"a.b 1 1700000000\n")
        self.assertEqual(code, 1)
        self.assertIn("not a gzip member", err)


@unittest.skipUnless(shutil.which("lz4"), "needs the lz4 command (Debian's lz4)")
class Lz4FormatTest(unittest.TestCase):
    def test_polymur_streams_decode_with_the_lz4_tool(self):
        text = lines(20000, 4)
        for batch in (1 << 20, 4096, 333):
            code, wire, err = tool("encode", "lz4", batch, data=text)
            self.assertEqual(code, 0, err)
            self.assertEqual(wire[:4], b"\x04\x22\x4d\x18")
            code, out, err = lz4_cli("-dc", data=wire)
            self.assertEqual(code, 0, err)
            self.assertEqual(out, text, "batch %d" % batch)

    def test_lz4_tool_streams_decode_in_polymur(self):
        text = lines(40000, 5)
        # The tool's default (4 MiB independent blocks, content checksum), small linked blocks, block
        # checksums, no content checksum, high compression, and two frames one after the other.
        variants = [[], ["-B4", "-BD"], ["-B5", "-BX"], ["--no-frame-crc"], ["-9"]]
        frames = []
        for args in variants:
            code, wire, err = lz4_cli("-c", *args, data=text)
            self.assertEqual(code, 0, err)
            frames.append(wire)
            for chunk in (13, 65536):
                code, out, err = tool("decode", "lz4", chunk, data=wire)
                self.assertEqual(code, 0, "lz4 %s, chunk %d: %s" % (args, chunk, err))
                self.assertEqual(out, text, "lz4 %s, chunk %d" % (args, chunk))
        code, out, err = tool("decode", "lz4", 1000, data=frames[0] + frames[1])
        self.assertEqual(code, 0, err)
        self.assertEqual(out, text + text)

    def test_each_flushed_batch_reaches_a_streaming_reader_before_the_end(self):
        batch = lines(300, 6)
        code, wire, err = tool("encode", "lz4", len(batch), "open", data=batch)
        self.assertEqual(code, 0, err)
        # The frame is not ended: the tool names the stream unfinished but has decoded the flushed block.
        code, out, err = lz4_cli("-dc", data=wire)
        self.assertEqual(out, batch)

    def test_corrupt_or_legacy_streams_are_refused(self):
        text = lines(2000, 7)
        code, wire, err = lz4_cli("-c", data=text)
        wire = bytearray(wire)
        wire[len(wire) // 2] ^= 0x55
        code, out, err = tool("decode", "lz4", 4096, data=bytes(wire))
        self.assertEqual(code, 1)
        self.assertIn("lz4", err)
        code, legacy, _ = lz4_cli("-c", "-l", data=text)
        code, out, err = tool("decode", "lz4", 4096, data=legacy)
        self.assertEqual(code, 1)
        self.assertIn("not an lz4 frame", err)


if __name__ == "__main__":
    unittest.main()
