"""tls:// destinations: plaintext lines over TLS, verified against --destination-ca (or the system's
store), with an optional client certificate, to a TLS sink and to carbon-c-relay 3.7.3's
`listen type linemode transport plain ssl`. Certificates are made at test time with the openssl CLI."""
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

from harness import OutputKiller, Pki, RelayTestCase, daemon_port, listening_ports, send_lines, send_paced, wait_until


class TlsSink:
    """A TLS destination: accepts connections (a client certificate required when `client_ca` is
    given) and records every byte it receives."""

    def __init__(self, cert, key, client_ca=None, client_order=False):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        if client_order:  # pick the suite the client prefers (Python's servers prefer their own order)
            self.context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        if client_ca:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(client_ca)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.received = bytearray()
        self.handshakes_failed = 0
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self.serve, daemon=True)]
        self.threads[0].start()

    def serve(self):
        while not self.stop_event.is_set():
            try:
                conn, _ = self.server.accept()
            except socket.timeout:
                continue
            t = threading.Thread(target=self.read, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def read(self, conn):
        conn.settimeout(5)
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            with self.lock:
                self.handshakes_failed += 1
            conn.close()
            return
        tls.settimeout(0.2)
        with tls:
            while not self.stop_event.is_set():
                try:
                    chunk = tls.recv(1 << 16)
                except socket.timeout:
                    continue
                except (ssl.SSLError, OSError):
                    return
                if not chunk:
                    return
                with self.lock:
                    self.received += chunk

    def lines(self):
        with self.lock:
            return bytes(self.received).decode().splitlines()

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(5)
        self.server.close()


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class TlsOutputTest(RelayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="polymur-tls-out-")
        cls.pki = Pki(cls.tmp, "dest-ca")
        cls.other = Pki(cls.tmp, "other-ca")
        cls.server_cert, cls.server_key = cls.pki.issue("server", "localhost", kind="server_ext")
        cls.client_cert, cls.client_key = cls.pki.issue("client", "site-a")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tls_sink(self, **kw):
        sink = TlsSink(self.server_cert, self.server_key, **kw)
        self.addCleanup(sink.stop)
        return sink

    def test_every_line_arrives_over_tls_with_a_client_certificate(self):
        sink = self.tls_sink(client_ca=self.pki.cert)
        dest = "tls://" + sink.address
        relay = self.relay("--destination-ca=" + self.pki.cert, "--destination-cert=" + self.client_cert,
                           "--destination-key=" + self.client_key, destinations=[dest])
        lines = ["tls.m%06d %d 1700000000" % (i, i) for i in range(100000)]
        send_lines(relay.port, lines, connections=4)
        wait_until(lambda: relay.stats()["destinations"][dest]["sent"] == len(lines), 30, message="every line confirmed")
        wait_until(lambda: len(sink.lines()) >= len(lines), 10, message="every line received")
        self.assertEqual(sorted(sink.lines()), sorted(lines))
        self.assertEqual(relay.stats()["destinations"][dest]["queued"], 0)
        self.assertIn("destination %s: connected (TLSv1.3" % dest, relay.log())

    def test_tls13_prefers_aes128_gcm_where_the_cpu_has_aes(self):
        # polymur's TLS 1.3 suites in its order of preference: AES-128-GCM first with AES instructions,
        # ChaCha20 first without; a server that follows the client's order shows which came first.
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith(("flags", "Features"))), [])
        sink = self.tls_sink(client_order=True)
        dest = "tls://" + sink.address
        relay = self.relay("--destination-ca=" + self.pki.cert, destinations=[dest])
        send_lines(relay.port, ["suite.m 1 1700000000"])
        wait_until(lambda: sink.lines() == ["suite.m 1 1700000000"], 20, message="the line received")
        expected = "TLS_AES_128_GCM_SHA256" if "aes" in flags else "TLS_CHACHA20_POLY1305_SHA256"
        self.assertIn("destination %s: connected (TLSv1.3, %s)" % (dest, expected), relay.log())

    def test_host_name_is_checked_as_well(self):
        # The certificate names localhost and 127.0.0.1: "localhost" passes (and is sent as SNI).
        sink = self.tls_sink()
        dest = "tls://localhost:%d" % sink.port
        relay = self.relay("--destination-ca=" + self.pki.cert, destinations=[dest])
        send_lines(relay.port, ["sni.m 1 1700000000"])
        wait_until(lambda: sink.lines() == ["sni.m 1 1700000000"], 20, message="line received via localhost")

    def test_a_wrong_ca_is_refused_and_everything_stays_queued(self):
        sink = self.tls_sink()
        dest = "tls://" + sink.address
        state = os.path.join(tempfile.mkdtemp(prefix="polymur-tls-state-", dir=self.tmp), "state")
        relay = self.relay("--destination-ca=" + self.other.cert, destinations=[dest], state_dir=state)
        lines = ["wrongca.m%05d 1 1700000000" % i for i in range(5000)]
        send_lines(relay.port, lines)
        wait_until(lambda: relay.stats()["destinations"][dest]["reconnects"] >= 2, 20, message="refused connects counted")
        stats = relay.stats()["destinations"][dest]
        self.assertEqual(stats["queued"], len(lines))
        self.assertEqual(stats["sent"], 0)
        self.assertEqual(stats["state"], "down")
        self.assertRegex(relay.log(), r"destination %s: connect failed \(\d+ in a row\): TLS handshake failed: certificate "
                         r"verification failed: unable to get local issuer certificate" % dest)
        self.assertEqual(sink.lines(), [])
        relay.stop()
        # The right CA: what was queued is delivered, nothing lost.
        fixed = self.relay("--destination-ca=" + self.pki.cert, destinations=[dest], state_dir=state)
        wait_until(lambda: len(sink.lines()) >= len(lines), 30, message="the queue delivered after the fix")
        self.assertEqual(sorted(sink.lines()), sorted(lines))
        wait_until(lambda: fixed.stats()["destinations"][dest]["queued"] == 0, 10, message="queue empty")

    def test_output_killed_mid_stream_over_tls_loses_nothing(self):
        sink = self.tls_sink()
        dest = "tls://" + sink.address
        relay = self.relay("--destination-ca=" + self.pki.cert, destinations=[dest])
        title = "polymur: output " + dest
        lines = ["tlskill.m%07d 1 1700000000" % i for i in range(300000)]
        killer = OutputKiller(relay, title, pause=0.3).start()
        send_paced(relay.port, lines, 5000, 0.03)
        kills = killer.stop()
        self.assertGreaterEqual(len(kills), 3, "the stream ended before the output was killed 3 times")
        wait_until(lambda: relay.stats()["destinations"][dest]["queued"] == 0, 60, message="queue drained")
        wait_until(lambda: set(lines) <= set(sink.lines()), 20, message="every line received")
        got = sink.lines()
        print("output killed %d times: %d lines received for %d sent (%d duplicates)" %
              (len(kills), len(got), len(lines), len(got) - len(lines)))


CCR_CONF = """listen type linemode transport plain ssl {pem} 127.0.0.1:{port} proto tcp ;
cluster sink forward 127.0.0.1:{sink_port} ;
match * send to sink stop ;
"""


@unittest.skipUnless(shutil.which("carbon-c-relay") and shutil.which("openssl"), "needs carbon-c-relay and openssl")
class CarbonCRelayTlsTest(RelayTestCase):
    """polymur -> carbon-c-relay 3.7.3 over TLS (its `transport plain ssl` listener) -> a plaintext sink."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="polymur-ccr-tls-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.pki = Pki(self.tmp, "ccr-ca")
        cert, key = self.pki.issue("ccr", "localhost", kind="server_ext")
        self.pem = os.path.join(self.tmp, "ccr.pem")
        with open(self.pem, "w") as out:
            out.write(open(cert).read() + open(key).read())
        self.sink_ = self.sink()
        self.port = daemon_port()  # carbon-c-relay cannot bind port 0 and say which it got
        conf = os.path.join(self.tmp, "relay.conf")
        with open(conf, "w") as f:
            f.write(CCR_CONF.format(pem=self.pem, port=self.port, sink_port=self.sink_.port))
        self.ccr_log = open(os.path.join(self.tmp, "ccr.log"), "wb")
        self.ccr = subprocess.Popen(["carbon-c-relay", "-f", conf], stdout=self.ccr_log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.addCleanup(self.stop_ccr)
        wait_until(lambda: self.port in listening_ports(self.ccr.pid), 20, message="carbon-c-relay's TLS listener")

    def stop_ccr(self):
        self.ccr.terminate()
        try:
            self.ccr.wait(10)
        except subprocess.TimeoutExpired:
            self.ccr.kill()
            self.ccr.wait()
        self.ccr_log.close()

    def test_every_line_arrives_through_carbon_c_relay_over_tls(self):
        dest = "tls://127.0.0.1:%d" % self.port
        relay = self.relay("--destination-ca=" + self.pki.cert, destinations=[dest])
        lines = ["ccr.tls.m%06d %d 1700000000" % (i, i) for i in range(50000)]
        send_lines(relay.port, lines, connections=4)
        wait_until(lambda: relay.stats()["destinations"][dest]["sent"] == len(lines), 30, message="every line confirmed")
        wait_until(lambda: self.sink_.line_count() >= len(lines), 30, message="every line through carbon-c-relay")
        self.assertEqual(sorted(self.sink_.lines()), sorted(lines))

    def test_carbon_c_relay_with_a_certificate_from_another_ca_is_refused(self):
        other = Pki(self.tmp, "other-ca")
        dest = "tls://127.0.0.1:%d" % self.port
        relay = self.relay("--destination-ca=" + other.cert, destinations=[dest])
        send_lines(relay.port, ["ccr.refused.m%d 1 1700000000" % i for i in range(100)])
        wait_until(lambda: "certificate verification failed" in relay.log(), 20, message="refusal in the log")
        wait_until(lambda: relay.stats()["destinations"][dest]["reconnects"] >= 2, 20, message="refused connects counted")
        stats = relay.stats()["destinations"][dest]
        self.assertEqual((stats["queued"], stats["sent"]), (100, 0))
        self.assertEqual(self.sink_.line_count(), 0)


if __name__ == "__main__":
    unittest.main()
