"""The TLS line listener (--tls-listen-addr): plaintext lines over TLS, with and without client certificates.

Certificates are made at test time with the openssl command line (harness.Pki). Clients: Python's ssl
module, `openssl s_client`, and Debian's carbon-c-relay 3.7.3 with a cluster member `transport plain ssl`.
"""
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import TIME_FACTOR, Pki, RelayTestCase, daemon_port, listening_ports, numbered, temp_dir, wait_until


def tls_client(port, ca, cert=None, key=None):
    context = ssl.create_default_context(cafile=ca)
    context.check_hostname = False
    if cert:
        context.load_cert_chain(cert, key)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10 * TIME_FACTOR)
    return context.wrap_socket(raw)


def payload(lines):
    return "".join(line + "\n" for line in lines).encode()


def closed_by_peer(sock, timeout):
    """Whether the peer closes `sock` (EOF or reset) within `timeout` seconds."""
    sock.settimeout(timeout * TIME_FACTOR)
    try:
        while sock.recv(4096):
            pass
        return True
    except (ConnectionResetError, ssl.SSLError):
        return True
    except socket.timeout:
        return False


class PkiTestCase(RelayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="polymur-tls-")
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.ca = Pki(cls.root, "ca")
        cls.server_cert, cls.server_key = cls.ca.issue("server", "localhost", "server_ext")
        cls.client_cert, cls.client_key = cls.ca.issue("site-a", "site-a")
        cls.other = Pki(cls.root, "other")
        cls.rogue_cert, cls.rogue_key = cls.other.issue("rogue", "rogue")

    def tls_relay(self, *args, client_ca=False, **kw):
        options = ["--tls-listen-addr=127.0.0.1:0", "--tls-cert=" + self.server_cert,
                   "--tls-key=" + self.server_key]
        if client_ca:
            options.append("--tls-client-ca=" + self.ca.cert)
        relay = RelayTestCase.relay(self, *(options + list(args)), **kw)
        if kw.get("start", True):
            self.tls_port = relay.bound_port("TLS")
        return relay


class TlsListenerTest(PkiTestCase):
    def test_lines_over_tls_take_the_plaintext_path(self):
        sink = self.sink()
        relay = self.tls_relay(destinations=[sink.address])
        lines = numbered("tls.plain", 0, 20000)
        with tls_client(self.tls_port, self.ca.cert) as s:
            # Invalid and over-long lines are counted exactly as on the plaintext port.
            s.sendall(payload(lines[:10000]) + b"bad line\n" + b"x" * 20000 + b" 1 1700000000\n" + payload(lines[10000:]))
        wait_until(lambda: sink.line_count() >= len(lines), 20, message="every line at the sink")
        self.assertEqual(sorted(sink.lines()), sorted(lines))
        stats = relay.stats()
        self.assertEqual(stats["received"], len(lines))
        self.assertEqual(stats["invalid"], 1)
        self.assertEqual(stats["too_long"], 1)
        self.assertEqual(stats["tls_handshakes"], 1)
        self.assertEqual(stats["tls_refused"], 0)

    def test_openssl_s_client_and_many_connections(self):
        sink = self.sink()
        relay = self.tls_relay(destinations=[sink.address])
        lines = numbered("tls.sclient", 0, 2000)
        result = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.tls_port, "-CAfile", self.ca.cert,
                                 "-quiet", "-no_ign_eof", "-verify_return_error"], input=payload(lines), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, timeout=30 * TIME_FACTOR)
        self.assertEqual(result.returncode, 0, result.stdout.decode(errors="replace"))
        wait_until(lambda: sink.line_count() >= len(lines), 20, message="s_client's lines at the sink")
        # 50 connections at once, each with its own lines, spread over the workers.
        more = numbered("tls.many", 0, 5000)
        clients = [tls_client(self.tls_port, self.ca.cert) for _ in range(50)]
        for i, c in enumerate(clients):
            c.sendall(payload(more[i::50]))
        for c in clients:
            c.close()
        wait_until(lambda: sink.line_count() >= len(lines) + len(more), 20, message="every connection's lines")
        self.assertEqual(sorted(sink.lines()), sorted(lines + more))
        self.assertEqual(relay.stats()["tls_handshakes"], 51)

    def test_mutual_tls_refuses_a_missing_or_foreign_certificate(self):
        sink = self.sink()
        relay = self.tls_relay(destinations=[sink.address], client_ca=True)
        for cert, key in ((None, None), (self.rogue_cert, self.rogue_key)):
            with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                with tls_client(self.tls_port, self.ca.cert, cert, key) as s:
                    # TLS 1.3: the server's verdict on the client certificate arrives after the client's Finished.
                    s.sendall(b"rogue.metric 1 1700000000\n")
                    s.recv(1)
        wait_until(lambda: relay.stats()["tls_refused"] == 2, 10, message="two refused handshakes counted")
        with tls_client(self.tls_port, self.ca.cert, self.client_cert, self.client_key) as s:
            s.sendall(payload(numbered("site.a", 0, 100)))
        wait_until(lambda: sink.line_count() >= 100, 10, message="the good client's lines")
        self.assertFalse([l for l in sink.lines() if l.startswith("rogue")])
        self.assertIn("certificate", relay.log())
        stats = relay.stats()
        self.assertEqual((stats["tls_handshakes"], stats["tls_refused"], stats["received"]), (1, 2, 100))

    def test_garbage_instead_of_a_client_hello_closes_that_connection_only(self):
        sink = self.sink()
        relay = self.tls_relay(destinations=[sink.address], workers=1)
        good = tls_client(self.tls_port, self.ca.cert)
        good.sendall(b"before.garbage 1 1700000000\n")
        garbage = [os.urandom(3000), b"plain.line 1 1700000000\n" * 50, b"\x16\x03\x01\xff\xff" + os.urandom(200),
                   b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]
        for blob in garbage:
            with socket.create_connection(("127.0.0.1", self.tls_port)) as s:
                s.sendall(blob)
                self.assertTrue(closed_by_peer(s, 10), "a connection sending %r... was not closed" % blob[:10])
        good.sendall(b"after.garbage 1 1700000000\n")
        good.close()
        wait_until(lambda: sink.line_count() >= 2, 10, message="the good connection's lines")
        self.assertEqual(sorted(sink.lines()), ["after.garbage 1 1700000000", "before.garbage 1 1700000000"])
        stats = relay.stats()
        self.assertEqual(stats["tls_refused"], len(garbage))
        self.assertEqual(stats["received"], 2)
        self.assertEqual(len(relay.children()), 2, "a listener died")  # one listener, one output

    def test_a_silent_or_slow_handshake_is_cut_at_the_deadline(self):
        relay = self.tls_relay("--handshake-timeout=1", "--idle-timeout=600", workers=1)
        silent = socket.create_connection(("127.0.0.1", self.tls_port))
        slow = socket.create_connection(("127.0.0.1", self.tls_port))
        start = time.monotonic()
        slow.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
        self.assertTrue(closed_by_peer(silent, 5), "a silent client kept its connection past --handshake-timeout")
        self.assertTrue(closed_by_peer(slow, 5), "a slow handshake kept its connection past --handshake-timeout")
        self.assertGreaterEqual(time.monotonic() - start, 0.9)
        wait_until(lambda: relay.stats()["tls_cut"] == 2, 5, message="two handshakes cut")
        self.assertIn("--handshake-timeout", relay.log())
        self.assertEqual(relay.stats()["tls_refused"], 0)

    def test_a_flood_of_unfinished_handshakes_closes_the_oldest(self):
        sink = self.sink()
        relay = self.tls_relay("--handshake-timeout=600", destinations=[sink.address], workers=1)
        idle = [socket.create_connection(("127.0.0.1", self.tls_port)) for _ in range(300)]
        wait_until(lambda: relay.stats()["tls_cut"] >= 300 - 256, 20, message="the oldest handshakes cut over the cap")
        with tls_client(self.tls_port, self.ca.cert) as s:
            s.sendall(b"after.flood 1 1700000000\n")
        wait_until(lambda: sink.line_count() >= 1, 10, message="a real client still served")
        self.assertTrue(closed_by_peer(idle[0], 5), "the oldest unfinished handshake was kept")
        for s in idle:
            s.close()

    def test_bad_certificate_options_are_refused_at_start(self):
        wrong_key = self.ca.path("ca.key")
        relay = self.tls_relay(start=False)
        relay.args += ["--tls-key=" + wrong_key, "--check-config"]
        result = subprocess.run(relay.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--tls-key", result.stdout.decode())
        result = subprocess.run(relay.args[:1] + ["--check-config", "--tls-listen-addr=127.0.0.1:0"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("needs --tls-cert and --tls-key", result.stdout.decode())


@unittest.skipUnless(shutil.which("carbon-c-relay"), "needs Debian's carbon-c-relay")
class CarbonCRelayTlsTest(PkiTestCase):
    """carbon-c-relay 3.7.3, cluster member `transport plain ssl`, sending to polymur's TLS listener."""

    def carbon_c_relay(self, ca):
        port = daemon_port()  # carbon-c-relay cannot bind port 0 and say which it got
        work = temp_dir(self, "polymur-ccr-")
        conf = os.path.join(work, "relay.conf")
        with open(conf, "w") as f:
            f.write("listen type linemode 127.0.0.1:%d proto tcp;\n"
                    "cluster polymur forward 127.0.0.1:%d transport plain ssl;\n"
                    "match * send to polymur;\n" % (port, self.tls_port))
        log = open(os.path.join(work, "relay.log"), "wb")
        proc = subprocess.Popen(["carbon-c-relay", "-f", conf, "-C", ca], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        self.addCleanup(log.close)
        self.addCleanup(self._stop, proc)
        wait_until(lambda: self._listening(port, proc), 10, message="carbon-c-relay listening")
        return port

    @staticmethod
    def _stop(proc):
        proc.terminate()  # it may keep trying to deliver what it holds: then it is killed
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @staticmethod
    def _listening(port, proc):
        if proc.poll() is not None:
            raise AssertionError("carbon-c-relay exited with %s" % proc.returncode)
        return port in listening_ports(proc.pid)  # its own socket, not whatever answers on the port

    def test_every_line_from_carbon_c_relay_arrives(self):
        sink = self.sink()
        relay = self.tls_relay(destinations=[sink.address])
        port = self.carbon_c_relay(self.ca.cert)
        lines = numbered("ccr.tls", 0, 20000)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(payload(lines))
        wait_until(lambda: len([l for l in sink.lines() if l.startswith("ccr.tls.")]) >= len(lines), 30,
                   message="carbon-c-relay's lines at the sink")
        self.assertEqual(sorted(l for l in sink.lines() if l.startswith("ccr.tls.")), sorted(lines))
        stats = relay.stats()
        self.assertGreaterEqual(stats["tls_handshakes"], 1)
        self.assertEqual(stats["invalid"], 0)

    def test_carbon_c_relay_refuses_a_server_its_ca_did_not_sign(self):
        sink = self.sink()
        relay = self.tls_relay(destinations=[sink.address])
        port = self.carbon_c_relay(self.other.cert)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(payload(numbered("ccr.wrongca", 0, 100)))
        # carbon-c-relay gives up the handshake: polymur counts a failed handshake, and no line passes.
        wait_until(lambda: relay.stats()["tls_refused"] >= 1, 20, message="carbon-c-relay's refusal seen")
        self.assertEqual(relay.stats()["tls_handshakes"], 0)
        self.assertEqual(sink.line_count(), 0)


if __name__ == "__main__":
    unittest.main()
