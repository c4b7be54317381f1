"""The gateway against hostile clients: tenants cannot write into each other's namespaces, slow
clients meet absolute deadlines (handshake and request), and concurrent large uploads cannot take a
listener's memory past --max-bodies-in-flight. Real certificates (openssl CLI), real sockets."""
import gzip
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
import unittest

from harness import SANITIZED, Pki, RelayTestCase, numbered, recv_all, send_lines, wait_until
from test_https import Node, gzip_lines, proc_status


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
class GatewaySecurityTest(RelayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="polymur-gwsec-")
        cls.ca = Pki(cls.root, "tenant-ca")
        cls.server_cert, cls.server_key = cls.ca.issue("gateway", "gateway.test", kind="server_ext")
        cls.certs = {cn: cls.ca.issue("c%d" % i, cn)
                     for i, cn in enumerate(["product-A", "product-A.web01", "*", "caf\u00e9", "a b", "a~b"])}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def gateway(self, sink, *extra, **kw):
        node = Node("--mode=gateway", "--https-listen-addr=127.0.0.1:0", "--cert=" + self.server_cert,
                    "--key=" + self.server_key, "--ca-cert=" + self.ca.cert, *extra, destinations=[sink.address], **kw)
        self.addCleanup(node.cleanup)
        node.start()
        node.https_port = node.bound_port("HTTPS")
        return node

    def post(self, port, cn, lines):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca.cert)
        ctx.load_cert_chain(*self.certs[cn])
        import http.client
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        try:
            conn.request("POST", "/ingest", body=gzip_lines(lines))
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            conn.close()

    def test_a_namespace_is_one_safe_name_component(self):
        sink = self.sink()
        node = self.gateway(sink, "--key-prefix")
        self.assertEqual(self.post(node.https_port, "product-A", ["web01.cpu 1 1700000000"])[0], 200)
        # "product-A.web01" + "cpu" would be exactly what product-A sends as "web01.cpu".
        for cn in ("product-A.web01", "*", "caf\u00e9", "a b"):
            status, body = self.post(node.https_port, cn, ["cpu 1 1700000000"])
            self.assertEqual(status, 403, "%r: %s" % (cn, body))
            self.assertIn("not usable as a namespace (one name component", body)
        wait_until(lambda: sink.line_count() >= 1, 20, message="the good line")
        time.sleep(0.5)
        self.assertEqual(sink.lines(), ["product-A.web01.cpu 1 1700000000"])
        self.assertIn("subject CN 'product-A.web01' is not usable as a namespace", node.log())

    def test_extra_namespace_characters_are_an_option(self):
        sink = self.sink()
        node = self.gateway(sink, "--key-prefix", "--namespace-extra-chars=~")
        self.assertEqual(self.post(node.https_port, "a b", ["cpu 1 1700000000"])[0], 403)
        self.assertEqual(self.post(node.https_port, "a~b", ["cpu 1 1700000000"])[0], 200)
        wait_until(lambda: sink.lines() == ["a~b.cpu 1 1700000000"], 20, message="the line at the sink")
        broken = Node("--mode=gateway", "--https-listen-addr=127.0.0.1:0", "--cert=" + self.server_cert,
                      "--key=" + self.server_key, "--ca-cert=" + self.ca.cert, "--namespace-extra-chars=.")
        self.addCleanup(broken.cleanup)
        broken.start(wait=False)
        self.assertEqual(broken.proc.wait(10), 2)
        self.assertIn("--namespace-extra-chars: '.' cannot be part of a namespace", broken.log())

    def test_tls_handshakes_have_an_absolute_deadline(self):
        sink = self.sink()
        node = self.gateway(sink, "--handshake-timeout=3")
        # A real ClientHello, sent one byte a second: every byte is progress to an idle timer.
        hello = ssl.MemoryBIO(), ssl.MemoryBIO()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        obj = ctx.wrap_bio(hello[0], hello[1])
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        client_hello = hello[1].read()
        self.assert_trickling_clients_cut(node.https_port, 60, 16, client_hello, "handshakes")
        wait_until(lambda: "TLS handshakes cut at the --handshake-timeout deadline" in node.log(), 15,
                   message="the periodic count")

    def test_proxies_retry_batches_refused_by_the_in_flight_bound_and_lose_nothing(self):
        sink = self.sink()
        # One byte: whenever two batches overlap, the second is answered 503 before its body is read.
        node = self.gateway(sink, "--max-bodies-in-flight=1", workers=1)
        proxies = []
        for i in range(3):
            proxy = Node("--mode=proxy", "--gateway=https://127.0.0.1:%d" % node.https_port, "--client-cert=" +
                         self.certs["product-A"][0], "--client-key=" + self.certs["product-A"][1], "--ca-cert=" + self.ca.cert,
                         "--batch-bytes=65536")
            self.addCleanup(proxy.cleanup)
            proxies.append(proxy.start())
        expected = []
        threads = []
        for i, proxy in enumerate(proxies):
            lines = numbered("p%d" % i, 0, 20000)
            expected += lines
            threads.append(threading.Thread(target=send_lines, args=(proxy.port, lines, 4)))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        want = set(expected)
        wait_until(lambda: want.issubset(set(sink.lines())), 120, message="every line at the sink")
        self.assertEqual(set(sink.lines()) - want, set())
        wait_until(lambda: "--max-bodies-in-flight reached" in node.log(), 15, message="some batches refused busy")

    def test_a_request_body_larger_than_the_bound_alone_still_gets_through(self):
        sink = self.sink()
        node = self.gateway(sink, "--max-bodies-in-flight=1024")
        lines = ["big.%d 1 1700000000" % i for i in range(5000)]
        self.assertEqual(self.post(node.https_port, "product-A", lines)[0], 200)


class PlainHttpDeadlineTest(RelayTestCase):
    def start(self, *extra, workers=2):
        sink = self.sink()
        node = Node("--mode=gateway", "--http-listen-addr=127.0.0.1:0", *extra,
                    destinations=[sink.address], workers=workers)
        self.addCleanup(node.cleanup)
        node.start()
        return sink, node, node.bound_port("HTTP")

    def test_a_request_has_an_absolute_deadline_from_its_first_byte(self):
        sink, node, port = self.start("--request-timeout=3")
        body = gzip_lines(["slow 1 1700000000"])
        request = (b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        self.assert_trickling_clients_cut(port, 200, 10, request, "requests")
        wait_until(lambda: "requests cut at the --request-timeout deadline" in node.log(), 15, message="the periodic count")
        # A prompt client is served as before.
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/ingest", body=body)
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()

    def test_a_refused_client_still_sending_its_body_reads_the_503(self):
        """A request refused by --max-bodies-in-flight is answered 503 at once, but its client may go on sending
        the body for longer than the 5 s linger: the gateway reads and discards it while it keeps coming, so the
        client's sends never meet a reset and it then reads the 503 (before, the connection was closed 5 s after the
        refusal and the client saw a reset instead)."""
        sink, node, port = self.start("--max-bodies-in-flight=1", workers=1)
        # A request whose body is being received holds the only reservation ...
        holder = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.addCleanup(holder.close)
        holder.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nx")
        time.sleep(0.5)  # let the gateway read that head before the next one (not a correctness wait)
        # ... so this one is refused while it sends 8 MiB over about 7 s, a chunk every 0.1 s.
        chunk = b"y" * ((8 << 20) // 70)
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.addCleanup(client.close)
        client.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (len(chunk) * 70))
        started = time.monotonic()
        for _ in range(70):
            client.sendall(chunk)  # a reset would raise here
            time.sleep(0.1)
        self.assertGreater(time.monotonic() - started, 6)  # longer than the linger
        reply = recv_all(client)  # the 503, then end-of-file (the gateway half-closed after it)
        self.assertTrue(reply.startswith(b"HTTP/1.1 503"), reply[:200])
        self.assertIn(b"Retry-After: 1", reply)
        holder.close()
        wait_until(lambda: "--max-bodies-in-flight reached" in node.log(), 15, message="the periodic count")

    def test_out_of_descriptors_pauses_accepting_instead_of_spinning(self):
        """A listener out of file descriptors cannot accept: libevent's HTTP listener, left alone, tries again at
        once for as long as a connection waits, a core at 100 % with a warning each time. It pauses accepting
        instead, says so in the log, and serves again once descriptors are free."""
        sink, node, port = self.start(workers=1)
        self.assert_pauses_out_of_descriptors(node, node.listeners()[0], port)
        import http.client

        def served():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("POST", "/ingest", body=gzip_lines(["after.emfile 1 1700000000"]))
                return conn.getresponse().status == 200
            except OSError:
                return False
            finally:
                conn.close()

        wait_until(served, 20, message="a request served once descriptors are free")
        wait_until(lambda: "after.emfile 1 1700000000" in sink.lines(), 20, message="its line at the sink")

    def test_concurrent_large_uploads_are_bounded_in_memory(self):
        sink, node, port = self.start("--max-bodies-in-flight=%d" % (24 << 20))
        # Incompressible on the wire: a stored gzip of random bytes, 40 MiB each, 16 at once.
        payload = gzip.compress(os.urandom(40 << 20), compresslevel=0)
        listeners = node.listeners()
        self.assertEqual(len(listeners), 2)
        results = []

        def upload():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                    s.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(payload))
                    s.sendall(payload)
                    reply = b""
                    while b"\r\n\r\n" not in reply:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        reply += chunk
                    results.append(reply)
            except OSError as e:
                results.append(repr(e).encode())

        threads = [threading.Thread(target=upload) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        statuses = [r.split(b"\r\n", 1)[0] for r in results]
        busy = [r for r in results if r.startswith(b"HTTP/1.1 503")]
        self.assertEqual(len(results), 16, statuses)
        self.assertTrue(busy, statuses)
        self.assertTrue(all(b"Retry-After: 1" in r for r in busy))
        self.assertTrue(all(s.startswith(b"HTTP/1.1 200") or s.startswith(b"HTTP/1.1 503") for s in statuses), statuses)
        hwm = {pid: proc_status(pid, "VmHWM") >> 20 for pid in listeners}
        print("\n  listener VmHWM (MiB): %s; answers: %d x 200, %d x 503" % (hwm, len(results) - len(busy), len(busy)))
        # 24 MiB of bodies in flight, one 40 MiB decompression buffer, the evbuffers around them.
        if not SANITIZED:
            for pid, mib in hwm.items():
                self.assertLess(mib, 190, "listener %d peaked at %d MiB" % (pid, mib))
        wait_until(lambda: "--max-bodies-in-flight reached" in node.log(), 15, message="the periodic count")


if __name__ == "__main__":
    unittest.main()
