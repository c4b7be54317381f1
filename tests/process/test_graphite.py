"""A real Graphite end to end: two carbon-cache instances (a, b), polymur hash-routing to them,
metrics sent with nc, and whisper files checked against Graphite's own ring."""
import os
import shutil
import subprocess
import sys
import time
import unittest

from harness import CarbonSandbox, Polymur, daemon_port, wait_until

INSTANCE = """
[cache:{name}]
LINE_RECEIVER_PORT = {line}
PICKLE_RECEIVER_PORT = {pickle}
CACHE_QUERY_PORT = {query}
LOCAL_DATA_DIR = {root}/{name}/whisper/
"""


@unittest.skipUnless(shutil.which("carbon-cache") and shutil.which("whisper-fetch"),
                     "needs graphite-carbon and python3-whisper (./dev.sh test installs them)")
class GraphiteEndToEndTest(unittest.TestCase):
    def setUp(self):
        ports = {name: (daemon_port(), daemon_port(), daemon_port()) for name in "ab"}
        self.ports = {name: ports[name][0] for name in "ab"}
        instances = "".join(INSTANCE.format(name=name, line=line, pickle=pickle, query=query, root="{root}")
                            for name, (line, pickle, query) in ports.items())
        self.carbon = CarbonSandbox("polymur-graphite-", instances)
        self.addCleanup(self.carbon.cleanup)
        self.root = self.carbon.root
        for name in "ab":
            self.carbon.daemon("carbon-cache", "--instance=" + name, listens=ports[name])

    def test_every_metric_lands_on_the_cache_graphites_ring_names(self):
        destinations = ["127.0.0.1:%d:a" % self.ports["a"], "127.0.0.1:%d:b" % self.ports["b"]]
        relay = Polymur("--distribution=hash-route", "--hash-type=carbon_ch", destinations=destinations)
        self.addCleanup(relay.cleanup)
        relay.start()
        wait_until(lambda: all(d["state"] == "connected" for d in relay.stats()["destinations"].values()), 10)

        now = int(time.time()) // 60 * 60 - 120
        metrics = {"e2e.host%02d.cpu-%d.%s" % (h, c, kind): float(h * 100 + c) + (0.5 if kind == "user" else 0.25)
                   for h in range(50) for c in range(20) for kind in ("user", "system")}
        payload = "".join("%s %s %d\n" % (name, value, now) for name, value in metrics.items()).encode()
        subprocess.run(["nc", "-q", "1", "127.0.0.1", str(relay.port)], input=payload, check=True, timeout=30)
        wait_until(lambda: relay.stats()["received"] == len(metrics), 10, message="polymur received everything")

        # Graphite's own ring, from the graphite-carbon package, is the oracle.
        sys.path.insert(0, "/usr/lib/python3/dist-packages")
        from carbon.hashing import ConsistentHashRing
        ring = ConsistentHashRing([("127.0.0.1", "a"), ("127.0.0.1", "b")], hash_type="carbon_ch")

        def path(cache, name):
            return os.path.join(self.root, cache, "whisper", *name.split(".")) + ".wsp"

        wait_until(lambda: all(os.path.exists(path(ring.get_node(n)[1], n)) for n in metrics), 120,
                   message="every whisper file written")
        import whisper
        wrong = []
        for name, value in metrics.items():
            right = ring.get_node(name)[1]
            other = "b" if right == "a" else "a"
            if os.path.exists(path(other, name)):
                wrong.append(name)
            (start, _end, _step), values = whisper.fetch(path(right, name), now - 60, now + 60)
            self.assertIn(value, values, name)
        self.assertEqual(wrong, [], "whisper files on the cache Graphite's ring does not name")
        counts = {c: sum(1 for n in metrics if ring.get_node(n)[1] == c) for c in "ab"}
        self.assertGreater(min(counts.values()), 300, "both caches should hold a real share: %r" % counts)
        # And the command-line tool operators use, on a sample.
        for name in list(metrics)[:: len(metrics) // 20]:
            out = subprocess.run(["whisper-fetch", "--from=%d" % (now - 60), "--until=%d" % (now + 60),
                                  path(ring.get_node(name)[1], name)], capture_output=True, text=True, check=True).stdout
            self.assertIn("%d\t%f" % (now, metrics[name]), out)

    def test_a_line_carbon_cannot_decode_never_reaches_it(self):
        # carbon-cache decodes every line as UTF-8; one it cannot decode drops the connection and what
        # was behind it in its buffer. polymur must refuse such a line and deliver the rest.
        relay = Polymur(destinations=["127.0.0.1:%d" % self.ports["a"]])
        self.addCleanup(relay.cleanup)
        relay.start()
        wait_until(lambda: all(d["state"] == "connected" for d in relay.stats()["destinations"].values()), 10)

        now = int(time.time()) // 60 * 60
        points = {("poison.next.m%02d" % m, now - 60 * k): m * 1000 + k for m in range(30) for k in range(50)}
        payload = b"poison.a\xffb 1 %d\n" % now
        payload += "".join("%s %d %d\n" % (name, value, ts) for (name, ts), value in points.items()).encode()
        subprocess.run(["nc", "-q", "1", "127.0.0.1", str(relay.port)], input=payload, check=True, timeout=30)
        wait_until(lambda: relay.stats()["received"] + relay.stats()["invalid"] == len(points) + 1, 10,
                   message="polymur read every line")

        sys.path.insert(0, "/usr/lib/python3/dist-packages")
        import whisper

        def missing():
            absent = []
            for m in range(30):
                name = "poison.next.m%02d" % m
                path = os.path.join(self.root, "a", "whisper", "poison", "next", "m%02d.wsp" % m)
                have = {}
                if os.path.exists(path):
                    (start, _end, step), values = whisper.fetch(path, now - 60 * 50, now + 60)
                    have = {start + i * step: v for i, v in enumerate(values)}
                absent += [(n, ts) for (n, ts), value in points.items() if n == name and have.get(ts) != value]
            return absent

        try:
            wait_until(lambda: not missing(), 120, interval=0.5)
        except AssertionError:
            # What was left out, what polymur says it did, and what carbon logged: a failure to act on.
            absent = missing()
            self.fail("%d of %d lines after the invalid one not in whisper after 120 s (first: %r); polymur: %r;\n"
                      "polymur's log:\n%s\n%s" % (len(absent), len(points), absent[:5], relay.stats(),
                                                   relay.log()[-6000:], self.carbon.logs()))
        self.assertEqual(relay.stats()["invalid"], 1)
        self.assertFalse(os.path.exists(os.path.join(self.root, "a", "whisper", "poison", "a\ufffdb.wsp")))


if __name__ == "__main__":
    unittest.main()
