"""carbon-relay (graphite-carbon) on its default DESTINATION_PROTOCOL = pickle -> polymur's pickle
listener -> a real carbon-cache: every metric sent to carbon-relay lands in whisper."""
import os
import shutil
import socket
import sys
import time
import unittest

from harness import CarbonSandbox, Polymur, daemon_port, wait_until

CONF = """LINE_RECEIVER_PORT = {cache_line}
PICKLE_RECEIVER_PORT = {cache_pickle}
CACHE_QUERY_PORT = {cache_query}

[relay]
STORAGE_DIR = {root}/storage/
LOG_DIR = {root}/log/
PID_DIR = {root}/run/
USER =
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {relay_line}
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {relay_pickle}
RELAY_METHOD = consistent-hashing
REPLICATION_FACTOR = 1
DESTINATIONS = 127.0.0.1:{polymur_pickle}
MAX_QUEUE_SIZE = 100000
ENABLE_TAGS = False
LOG_LISTENER_CONN_SUCCESS = False
"""


@unittest.skipUnless(shutil.which("carbon-cache") and shutil.which("carbon-relay"),
                     "needs graphite-carbon (./dev.sh test installs it)")
class CarbonRelayPickleTest(unittest.TestCase):
    def setUp(self):
        self.ports = {k: daemon_port() for k in ("cache_line", "cache_pickle", "cache_query", "relay_line", "relay_pickle",
                                                   "polymur_pickle")}
        self.carbon = CarbonSandbox("polymur-carbon-pickle-", CONF, **self.ports)
        self.addCleanup(self.carbon.cleanup)
        self.root = self.carbon.root
        self.daemon = self.carbon.daemon
        self.daemon("carbon-cache", listens=[self.ports[k] for k in ("cache_line", "cache_pickle", "cache_query")])

    def test_carbon_relay_pickle_through_polymur_into_whisper(self):
        relay = Polymur("--pickle-listen-addr=127.0.0.1:%d" % self.ports["polymur_pickle"],
                        destinations=["127.0.0.1:%d" % self.ports["cache_line"]])
        self.addCleanup(relay.cleanup)
        relay.start()
        self.daemon("carbon-relay", listens=[self.ports[k] for k in ("relay_line", "relay_pickle")])

        now = int(time.time()) // 60 * 60 - 120
        metrics = {"pickle.e2e.host%02d.m%d" % (h, m): h * 10 + m + 0.5 for h in range(25) for m in range(20)}
        payload = "".join("%s %s %d\n" % (name, value, now) for name, value in metrics.items()).encode()
        with socket.create_connection(("127.0.0.1", self.ports["relay_line"])) as s:
            s.sendall(payload)
        wait_until(lambda: relay.stats()["received"] == len(metrics), 60, message="polymur received carbon-relay's pickle")
        stats = relay.stats()
        self.assertEqual(stats["pickle_invalid"], 0)
        self.assertEqual(stats["invalid"], 0)

        def path(name):
            return os.path.join(self.root, "storage", "whisper", *name.split(".")) + ".wsp"

        wait_until(lambda: all(os.path.exists(path(n)) for n in metrics), 120, message="every whisper file written")
        sys.path.insert(0, "/usr/lib/python3/dist-packages")
        import whisper
        for name, value in metrics.items():
            values = []

            def stored():
                nonlocal values
                values = whisper.fetch(path(name), now - 60, now + 60)[1]
                return value in values
            wait_until(stored, 60, message="%s = %s in whisper" % (name, value))

    def test_a_line_destination_on_a_pickle_port_is_named(self):
        # The first symptom the other way round: polymur's plaintext into carbon-cache's pickle
        # port. carbon closes each connection after our first lines; the log must say why.
        relay = Polymur(destinations=["127.0.0.1:%d" % self.ports["cache_pickle"]])
        self.addCleanup(relay.cleanup)
        relay.start()
        deadline = time.monotonic() + 60
        i = 0
        while "it may be a pickle port" not in relay.log():
            self.assertLess(time.monotonic(), deadline, "no hint in the log:\n" + relay.log())
            with socket.create_connection(("127.0.0.1", relay.port)) as s:
                s.sendall(b"to.pickle.port.m%d 1 %d\n" % (i, time.time()))
            i += 1
            time.sleep(0.3)
        self.assertEqual(relay.log().count("it may be a pickle port"), 1)


if __name__ == "__main__":
    unittest.main()
