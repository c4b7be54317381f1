"""A queue written under a large --max-line-length and resumed by a polymur started with a small one
(issue 10): hash-route failover moves its lines, including one that wraps around the ring end, to
the other destination intact. The rerouter once copied such a line into a buffer sized by the new
--max-line-length and wrote far past it."""
import glob
import os
import struct
import subprocess
import unittest

from harness import POLYMUR, RelayTestCase, send_lines, wait_until

QUEUE_BYTES = 4 << 20  # --workers 1: two rings (listener, redistribution) of about 2 MiB
LONG_NAME = 250000


def ring_capacity(state_dir, destination):
    """ring_capacity from the header of `destination`'s queue file (QueueHeader in shm/queue.hpp)."""
    for path in glob.glob(os.path.join(state_dir, "*.queue")):
        with open(path, "rb") as f:
            header = f.read(48 + 256)
        if header[48:].split(b"\0")[0].decode() == destination:
            return struct.unpack_from("<Q", header, 24)[0]
    raise AssertionError("no queue file for " + destination)


def routed_to(destinations, names, target):
    """The names that hash-route (carbon_ch) sends to `target`, asked of `polymur lookup`."""
    out = subprocess.run([POLYMUR, "lookup", "--destinations", ",".join(destinations)], input="\n".join(names) + "\n",
                         capture_output=True, text=True, check=True, timeout=60).stdout
    chosen = []
    for line in out.splitlines():
        name, where = line.split("\t")
        if where == target:
            chosen.append(name)
    return chosen


class QueuedLineBoundTest(RelayTestCase):
    def test_queue_from_a_larger_max_line_length_is_rerouted_intact(self):
        a, b = self.sink(), self.sink()
        destinations = [a.address + ":a", b.address + ":b"]
        a_text = destinations[0]
        common = ["--distribution=hash-route", "--queue-bytes=%d" % QUEUE_BYTES, "--self-metrics-interval=0",
                  "--drain-timeout=1"]
        relay = self.relay(*common, "--max-line-length=300000", "--failover=hold", workers=1,
                           destinations=destinations)
        state_dir = relay.state_dir
        ring_bytes = ring_capacity(state_dir, a_text)

        # Fill A's ring to about 125 KB before its end, and let A take all of it.
        filler_names = routed_to(destinations, ["filler.%06d.%s" % (i, "f" * 960) for i in range(6000)], a_text)
        filler, size = [], 0
        for name in filler_names:
            line = "%s 1 1700000000" % name
            if size + len(line) + 1 > ring_bytes - 125000:
                break
            filler.append(line)
            size += len(line) + 1
        self.assertGreater(size, ring_bytes - 130000, "not enough names route to A")
        send_lines(relay.port, filler)
        wait_until(lambda: a.line_count() == len(filler), 30, message="filler at A")
        wait_until(lambda: relay.stats()["destinations"][a_text]["queued"] == 0, 10, message="A committed")

        # A goes away; three long lines queue up for it, the first across the ring end.
        a.stop()
        long_names = routed_to(destinations, ["long.%d.%s" % (i, "x" * LONG_NAME) for i in range(12)], a_text)[:3]
        self.assertEqual(len(long_names), 3)
        long_lines = ["%s %d 1700000000" % (name, i) for i, name in enumerate(long_names)]
        send_lines(relay.port, long_lines)
        wait_until(lambda: relay.stats()["destinations"][a_text]["queued"] == 3, 10, message="long lines queued")
        relay.stop()

        # Restart with a small --max-line-length: A is still down, fails over, its queue moves to B.
        resumed = self.relay(*common, "--max-line-length=100", "--failover=reroute", "--failover-after=1", workers=1,
                             destinations=destinations, state_dir=state_dir)
        wait_until(lambda: b.line_count() >= 3, 60, message="rerouted lines at B")
        self.assertEqual(sorted(b.lines()), sorted(long_lines))
        wait_until(lambda: resumed.stats()["destinations"][a_text]["queued"] == 0, 10, message="A's queue empty")
        self.assertEqual(resumed.stats()["destinations"][a_text]["rerouted"], 3)
        self.assertIsNone(resumed.proc.poll())
        self.assertNotIn("killed by signal", resumed.log())


if __name__ == "__main__":
    unittest.main()
