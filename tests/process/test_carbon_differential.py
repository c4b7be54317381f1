"""polymur against carbon's own line receiver (graphite-carbon's MetricLineReceiver), line by line,
over a few thousand generated lines sent through the real binary to a sink: where both take a line
they store the same datapoint, where they differ the difference is one the README's table documents,
and polymur never forwards a line carbon refuses or drops its connection on. Both inputs: the
plaintext listener, and the gateway's HTTPS ingest with its namespace prefix.

Run with Debian's /usr/bin/python3 (tests/process/CMakeLists.txt), the interpreter graphite-carbon is
installed for."""
import gzip
import http.client
import os
import shutil
import ssl
import tempfile
import unittest

from carbon_lines import CARBON_PATH, MARKER, Differential, corpus, forwarded_per_line, with_markers
from harness import Pki, RelayTestCase, send_lines, wait_until
from test_https import Node

HAVE_CARBON = os.path.exists(os.path.join(CARBON_PATH, "carbon", "protocols.py"))


@unittest.skipUnless(HAVE_CARBON, "needs graphite-carbon (./dev.sh test installs it)")
class CarbonDifferentialTest(RelayTestCase):
    def test_every_line_as_carbon_decides_or_as_documented(self):
        lines = corpus()
        sink = self.sink()
        relay = self.relay(destinations=[sink.address], workers=1)
        payload = with_markers(lines)
        send_lines(relay.port, [payload[:-1]])
        last = ("polymur.differential.marker %d " % (len(lines) - 1)).encode()
        wait_until(lambda: last in sink.data(), 60, message="the last marker at the sink")
        groups = forwarded_per_line(sink.data(), len(lines))
        check = Differential(self, lines, groups)
        check.check()
        stats = relay.stats()
        forwarded = sum(len(g) for g in groups)
        self.assertEqual(stats["received"], forwarded + len(lines))  # the markers too
        self.assertEqual(stats["invalid"] + stats["too_long"], len(lines) - forwarded)
        # The corpus reaches every row of the table, not only the easy ones.
        print("\n".join("%6d  %s" % (n, k) for k, n in sorted(check.counts.items())))
        for row in ("both store", "both refuse (carbon: invalid)", "both refuse (carbon: connection lost)",
                    "both refuse (carbon: dropped)", "carbon stores, polymur refuses: control character in the name",
                    "carbon stores, polymur refuses: number form only Python reads",
                    "carbon stores, polymur refuses: negative timestamp other than -2 < ts <= -1"):
            self.assertGreater(check.counts.get(row, 0), 20, row)

    def test_a_line_too_long_once_stamped_is_too_long_and_the_next_goes_on(self):
        # "-1" becomes ten digits: a line that fits --max-line-length may not once forwarded, and a
        # carbon-cache drops the connection on a line over its limit.
        sink = self.sink()
        relay = self.relay("--max-line-length=100", destinations=[sink.address], workers=1)
        fits = "f" * 87 + " 1 -1"       # 100 bytes once stamped
        grows = "g" * 88 + " 1 -1"      # 101 bytes once stamped
        send_lines(relay.port, [fits, grows, "after 1 1700000000"])
        wait_until(lambda: sink.line_count() >= 2, 10, message="two lines at the sink")
        got = sink.lines()
        self.assertEqual([line.split()[0] for line in got], ["f" * 87, "after"])
        self.assertEqual(max(len(line) for line in got), 100)
        stats = relay.stats()
        self.assertEqual((stats["received"], stats["too_long"], stats["invalid"]), (2, 1, 0))


@unittest.skipUnless(HAVE_CARBON and shutil.which("openssl"), "needs graphite-carbon and the openssl command")
class GatewayDifferentialTest(RelayTestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="polymur-differential-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.ca = Pki(self.root, "site-ca")
        self.server_cert, self.server_key = self.ca.issue("gateway", "gateway.test", kind="server_ext")
        self.client_cert, self.client_key = self.ca.issue("product-A", "product-A")

    def test_lines_with_a_namespace_are_decided_as_carbon_decides(self):
        sink = self.sink()
        gateway = Node("--mode=gateway", "--listen-port=0", "--cert=" + self.server_cert, "--key=" + self.server_key,
                       "--ca-cert=" + self.ca.cert, "--key-prefix", destinations=[sink.address], workers=1)
        self.addCleanup(gateway.cleanup)
        gateway.start()
        port = gateway.bound_port("HTTPS")
        ctx = ssl.create_default_context(cafile=self.ca.cert)
        ctx.load_cert_chain(self.client_cert, self.client_key)

        def post(body):
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
            try:
                conn.request("POST", "/ingest", body=body)
                response = conn.getresponse()
                return response.status, response.read().decode(errors="replace")
            finally:
                conn.close()

        wait_until(lambda: post(gzip.compress(b""))[0] == 200, 10, message="the gateway answering")
        lines = corpus(count=2000, seed=7)
        status, body = post(gzip.compress(with_markers(lines)))
        self.assertEqual(status, 200, body)
        last = ("product-A.%s %d " % (MARKER, len(lines) - 1)).encode()
        wait_until(lambda: last in sink.data(), 60, message="the last marker at the sink")
        groups = forwarded_per_line(sink.data(), len(lines), prefix="product-A")
        check = Differential(self, lines, groups, prefix="product-A")
        check.check()
        self.assertGreater(check.counts.get("both store", 0), 500)
        self.assertGreater(check.counts.get("both refuse (carbon: connection lost)", 0), 100)
        self.assertGreater(check.counts.get("carbon stores, polymur refuses: longer than --max-line-length once forwarded "
                                            "(namespace prefix, the time for -1)", 0), 5)


if __name__ == "__main__":
    unittest.main()
