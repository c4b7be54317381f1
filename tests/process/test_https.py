"""The HTTPS transport between sites: polymur-proxy -> polymur-gateway -> destination.

Certificates are made at test time with the openssl command line (harness.Pki): a private CA, the gateway's server
certificate (127.0.0.1 and localhost), a client certificate per site (CN = namespace), one from another
CA, an expired one and a revoked one (with a CRL). Standard library only, plus the `openssl` and
`curl` commands.
"""
import collections
import gzip
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import zlib

from harness import (POLYMUR, Pki, Polymur, RelayTestCase, daemon_port, gone, listening, numbered, send_lines,
                     tcp_sockets, wait_until)


def gzip_lines(lines):
    return gzip.compress(("".join(line + "\n" for line in lines)).encode())


def raw_post(conn, headers, body):
    """POST /ingest on `conn` with `headers` as (name, value) pairs sent exactly as given, duplicates
    included; returns (status, body)."""
    try:
        conn.putrequest("POST", "/ingest", skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


class Node(Polymur):
    """A polymur started under another program name (a symlink), or with --mode."""

    def __init__(self, *args, program=None, **kw):
        super().__init__(*args, **kw)
        if program:
            self.args[0] = program

    def listeners(self):
        return [pid for pid, title in self.children().items() if "listener" in title]

    def kill9(self):
        """kill -9 of the supervisor and every child, by pid."""
        pids = list(self.children()) + [self.proc.pid]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        for pid in pids:
            wait_until(lambda pid=pid: gone(pid), 10, message="pid %d gone" % pid)


@unittest.skipUnless(shutil.which("openssl") and shutil.which("curl"), "needs the openssl and curl commands")
class HttpsTransportTest(RelayTestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="polymur-https-")
        cls.ca = Pki(cls.root, "site-ca")
        cls.server_cert, cls.server_key = cls.ca.issue("gateway", "gateway.test", kind="server_ext")
        cls.client_cert, cls.client_key = cls.ca.issue("product-A", "product-A")
        cls.expired_cert, cls.expired_key = cls.ca.issue("expired", "product-expired", start="20200101000000Z",
                                                         end="20200201000000Z")
        cls.revoked_cert, cls.revoked_key = cls.ca.issue("revoked", "product-revoked")
        cls.ca.revoke(cls.revoked_cert)
        cls.crl = cls.ca.crl()
        cls.other_ca = Pki(cls.root, "other-ca")
        cls.other_cert, cls.other_key = cls.other_ca.issue("other", "product-A")
        cls.bin = os.path.join(cls.root, "bin")
        os.makedirs(cls.bin)
        for name in ("polymur-proxy", "polymur-gateway"):
            os.symlink(os.path.abspath(POLYMUR), os.path.join(cls.bin, name))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    # --- building blocks -------------------------------------------------------------------------

    def gateway(self, destinations, *extra, symlink=True, https_port=None, start=True, state_dir=None, crl=True,
                host="127.0.0.1", **kw):
        # A port known before the gateway binds it (a proxy may be started first): below the ephemeral range.
        https_port = https_port or daemon_port()
        listen = "--listen-port=%d" % https_port if host == "127.0.0.1" else "--https-listen-addr=%s:%d" % (host, https_port)
        args = [listen, "--cert=" + self.server_cert, "--key=" + self.server_key,
                "--ca-cert=" + self.ca.cert]
        if crl:
            args.append("--crl=" + self.crl)
        if symlink:
            node = Node(*(args + list(extra)), program=os.path.join(self.bin, "polymur-gateway"),
                        destinations=destinations, state_dir=state_dir, **kw)
        else:
            node = Node(*(["--mode=gateway"] + args + list(extra)), destinations=destinations, state_dir=state_dir, **kw)
        node.https_port = https_port
        self.addCleanup(node.cleanup)
        if start:
            node.start()
            wait_until(lambda: listening(https_port, host), 10, message="gateway HTTPS listener")
        return node

    def proxy(self, https_port, *extra, symlink=True, host="127.0.0.1", **kw):
        args = ["--gateway=https://%s:%d" % (host, https_port), "--client-cert=" + self.client_cert,
                "--client-key=" + self.client_key, "--ca-cert=" + self.ca.cert]
        if symlink:
            node = Node(*(args + list(extra)), program=os.path.join(self.bin, "polymur-proxy"), **kw)
        else:
            node = Node(*(["--mode=proxy"] + args + list(extra)), **kw)
        self.addCleanup(node.cleanup)
        return node.start()

    def client_context(self, cert=None, key=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.ca.cert)
        if cert:
            ctx.load_cert_chain(cert, key)
        return ctx

    def request(self, port, method, path, body=None, headers=None, cert="good", timeout=10):
        """One HTTPS request with python's ssl; returns (status, body)."""
        certs = {"good": (self.client_cert, self.client_key), None: (None, None)}
        ctx = self.client_context(*certs[cert])
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            conn.close()

    def curl(self, port, *args, cert=None, key=None, path="/ingest"):
        cmd = ["curl", "-sS", "--max-time", "20", "--cacert", self.ca.cert, "-o", "-", "-w", "\n%{http_code}"]
        if cert:
            cmd += ["--cert", cert, "--key", key]
        cmd += list(args) + ["https://127.0.0.1:%d%s" % (port, path)]
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = result.stdout.decode(errors="replace")
        body, _, code = out.rpartition("\n")
        return result.returncode, int(code or 0), body, result.stderr.decode(errors="replace")

    def assert_delivered_once(self, sink, expected, timeout=60):
        wait_until(lambda: sink.line_count() >= len(expected), timeout, message="%d lines at the sink" % len(expected))
        time.sleep(0.3)
        got = collections.Counter(sink.lines())
        self.assertEqual(sorted(got.elements()), sorted(expected))

    def assert_all_delivered(self, sink, expected, timeout=90):
        """At least once: every line arrives; duplicates are counted and reported."""
        want = set(expected)
        wait_until(lambda: want.issubset(set(sink.lines())), timeout, message="every line at the sink")
        got = collections.Counter(sink.lines())
        unexpected = [line for line in got if line not in want]
        self.assertEqual(unexpected, [])
        duplicates = sum(count - 1 for count in got.values() if count > 1)
        print("\n  %s: %d lines, %d duplicates (at-least-once)" % (self.id().rsplit(".", 1)[1], len(want), duplicates))
        return duplicates

    # --- tests -----------------------------------------------------------------------------------

    def test_proxy_to_gateway_by_program_name_with_key_prefix(self):
        sink = self.sink()
        gateway = self.gateway([sink.address], "--key-prefix")
        proxy = self.proxy(gateway.https_port)
        lines = numbered("site.metric", 0, 20000)
        send_lines(proxy.port, lines, connections=4)
        self.assert_delivered_once(sink, ["product-A." + line for line in lines])
        dest = proxy.stats()["destinations"]["https://127.0.0.1:%d" % gateway.https_port]
        self.assertEqual(dest["sent"], len(lines))
        self.assertEqual(dest["queued"], 0)
        self.assertEqual(gateway.stats()["received"], len(lines))
        # The proxy is not a gateway: it has no HTTPS listener; the gateway no plaintext one.
        self.assertFalse(listening(gateway.port))

    def test_proxy_to_gateway_by_mode_option_without_prefix(self):
        sink = self.sink()
        gateway = self.gateway([sink.address], symlink=False)
        proxy = self.proxy(gateway.https_port, symlink=False, host="localhost")
        lines = numbered("plain.metric", 0, 5000)
        send_lines(proxy.port, lines, connections=2)
        self.assert_delivered_once(sink, lines)

    def test_proxy_refuses_a_gateway_whose_certificate_names_another_host(self):
        sink = self.sink()
        gateway = self.gateway([sink.address], host="127.0.0.2")
        # The server certificate names 127.0.0.1 and localhost, not 127.0.0.2.
        proxy = self.proxy(gateway.https_port, host="127.0.0.2")
        send_lines(proxy.port, numbered("m", 0, 10))
        wait_until(lambda: "certificate verification failed" in proxy.log(), 10, message="host name refusal in the log")
        self.assertEqual(sink.line_count(), 0)
        self.assertEqual(gateway.stats()["received"], 0)

    def test_bad_client_certificates_fail_the_handshake(self):
        sink = self.sink()
        gateway = self.gateway([sink.address], "--key-prefix")
        port = gateway.https_port
        batch = os.path.join(self.root, "handshake-batch.gz")
        with open(batch, "wb") as f:
            f.write(gzip_lines(numbered("nope", 0, 10)))
        cases = {"no certificate": (None, None), "another CA": (self.other_cert, self.other_key),
                 "expired": (self.expired_cert, self.expired_key), "revoked": (self.revoked_cert, self.revoked_key)}
        for name, (cert, key) in cases.items():
            with self.subTest(client=name, tool="curl"):
                rc, code, body, err = self.curl(port, "--data-binary", "@" + batch, cert=cert, key=key)
                self.assertNotEqual(rc, 0, "curl with %s got HTTP %d: %s" % (name, code, body))
                self.assertNotEqual(code, 200)
            with self.subTest(client=name, tool="python ssl"):
                ctx = self.client_context(cert, key)
                with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                            # TLS 1.3: the server's verdict on the certificate arrives after the
                            # client's handshake finished; a request makes it surface.
                            tls.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                            if not tls.recv(100):
                                raise ConnectionError("closed without an answer")
        time.sleep(0.5)
        self.assertEqual(sink.line_count(), 0)
        self.assertEqual(gateway.stats()["received"], 0)
        wait_until(lambda: "handshake refused" in gateway.log(), 5, message="handshake refusals logged")
        log = gateway.log()
        self.assertIn("certificate revoked", log)
        self.assertIn("certificate has expired", log)
        # TLS 1.2 only clients are served too; TLS 1.1 is refused.
        ctx = self.client_context(self.client_cert, self.client_key)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        status, body = self.request_with_context(port, ctx)
        self.assertEqual((status, body.strip()), (200, "pong product-A"))

    def request_with_context(self, port, ctx):
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
        try:
            conn.request("GET", "/ping")
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def test_curl_posts_a_batch_by_hand_and_endpoints_answer(self):
        sink = self.sink()
        gateway = self.gateway([sink.address], "--key-prefix")
        port = gateway.https_port
        lines = numbered("by.hand", 0, 300)
        batch = os.path.join(self.root, "batch.gz")
        with open(batch, "wb") as f:
            f.write(gzip_lines(lines))
        rc, code, body, err = self.curl(port, "--data-binary", "@" + batch, cert=self.client_cert, key=self.client_key)
        self.assertEqual((rc, code), (0, 200), err)
        self.assertEqual(body.strip(), "accepted 300, invalid 0")
        # Content-Encoding: gzip is accepted as well as a bare gzip body (Polymur's proxy sends none).
        more = numbered("by.hand.encoded", 0, 50)
        status, body = self.request(port, "POST", "/ingest", gzip_lines(more), {"Content-Encoding": "gzip"})
        self.assertEqual((status, body.strip()), (200, "accepted 50, invalid 0"))
        rc, code, body, err = self.curl(port, cert=self.client_cert, key=self.client_key, path="/ping")
        self.assertEqual((rc, code, body.strip()), (0, 200, "pong product-A"), err)
        # Polymur's proxy POSTs /ping.
        self.assertEqual(self.request(port, "POST", "/ping", b"")[0], 200)
        self.assertEqual(self.request(port, "GET", "/nothing")[0], 404)
        self.assertEqual(self.request(port, "GET", "/ingest")[0], 405)
        self.assertEqual(self.request(port, "DELETE", "/ping")[0], 405)
        self.assert_delivered_once(sink, ["product-A." + line for line in lines + more])

    def test_not_gzip_or_truncated_gzip_is_400(self):
        sink = self.sink()
        gateway = self.gateway([sink.address])
        port = gateway.https_port
        plain = "".join(line + "\n" for line in numbered("raw", 0, 10)).encode()
        self.assertEqual(self.request(port, "POST", "/ingest", plain)[0], 400)
        self.assertEqual(self.request(port, "POST", "/ingest", plain, {"Content-Encoding": "gzip"})[0], 400)
        self.assertEqual(self.request(port, "POST", "/ingest", gzip_lines(["a 1 1"]), {"Content-Encoding": "br"})[0], 400)
        whole = gzip_lines(numbered("cut", 0, 1000))
        self.assertEqual(self.request(port, "POST", "/ingest", whole[:len(whole) // 2])[0], 400)
        self.assertEqual(self.request(port, "POST", "/ingest", b"")[0], 400)
        # Two gzip members in one body (gzip(1) appends them so) are one batch.
        two = gzip_lines(numbered("two", 0, 5)) + gzip_lines(numbered("two", 5, 5))
        self.assertEqual(self.request(port, "POST", "/ingest", two), (200, "accepted 10, invalid 0\n"))
        self.assert_delivered_once(sink, numbered("two", 0, 10))

    def test_two_different_content_lengths_are_400_over_https(self):
        sink = self.sink()
        gateway = self.gateway([sink.address])
        body = gzip_lines(["tls.dup 1 1700000000"])
        conn = http.client.HTTPSConnection("127.0.0.1", gateway.https_port, timeout=10,
                                           context=self.client_context(self.client_cert, self.client_key))
        status, text = raw_post(conn, [("Content-Length", str(len(body))), ("Content-Length", str(len(body) + 5))],
                                body + b"xxxxx")
        self.assertEqual(status, 400, text)
        self.assertIn("two Content-Length headers that differ", text)
        conn = http.client.HTTPSConnection("127.0.0.1", gateway.https_port, timeout=10,
                                           context=self.client_context(self.client_cert, self.client_key))
        self.assertEqual(raw_post(conn, [("Content-Length", str(len(body)))] * 2, body)[0], 200)
        self.assert_delivered_once(sink, ["tls.dup 1 1700000000"])

    def test_gzip_bomb_is_413_and_memory_stays_bounded(self):
        sink = self.sink()
        limit = 8 << 20
        gateway = self.gateway([sink.address], "--max-body-bytes=%d" % limit, workers=1)
        port = gateway.https_port
        bomb_size = 1 << 30
        bomb = os.path.join(self.root, "bomb.gz")
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        zeros = bytes(1 << 20)
        with open(bomb, "wb") as f:
            for _ in range(bomb_size // len(zeros)):
                f.write(compressor.compress(zeros))
            f.write(compressor.flush())
        self.assertLess(os.path.getsize(bomb), limit)  # small on the wire, 1 GiB inflated
        listeners = gateway.listeners()
        before = {pid: proc_status(pid, "VmHWM") for pid in listeners}
        rc, code, body, err = self.curl(port, "--data-binary", "@" + bomb, cert=self.client_cert, key=self.client_key)
        self.assertEqual(code, 413, err + body)
        # A compressed body over the limit is refused from its Content-Length.
        big = os.path.join(self.root, "big.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(limit + limit // 100 + 8192))
        rc, code, body, err = self.curl(port, "--data-binary", "@" + big, cert=self.client_cert, key=self.client_key)
        self.assertEqual(code, 413, err + body)
        after = {pid: proc_status(pid, "VmHWM") for pid in listeners}
        for pid in listeners:
            print("\n  listener pid %d: VmHWM %.1f MiB before, %.1f MiB after the 1 GiB bomb" %
                  (pid, before[pid] / 2**20, after[pid] / 2**20))
            self.assertLess(after[pid], 64 << 20, "a listener's peak memory grew past 64 MiB")
        # The gateway still works.
        self.assertEqual(self.request(port, "POST", "/ingest", gzip_lines(["after.bomb 1 1700000000"]))[0], 200)
        self.assert_delivered_once(sink, ["after.bomb 1 1700000000"])

    def test_invalid_lines_in_a_batch_are_counted_and_dropped(self):
        sink = self.sink()
        gateway = self.gateway([sink.address])
        good = numbered("ok", 0, 100)
        bad = ["no_value", "bad.value x 1700000000", "bad.ts 1 y", "", "a b c d"]
        mixed = good[:50] + bad + good[50:]
        status, body = self.request(gateway.https_port, "POST", "/ingest", gzip_lines(mixed))
        self.assertEqual((status, body.strip()), (200, "accepted 100, invalid 5"))
        self.assert_delivered_once(sink, good)
        stats = gateway.stats()
        self.assertEqual((stats["received"], stats["invalid"]), (100, 5))
        wait_until(lambda: "5 invalid lines dropped" in gateway.log(), 5, message="invalid lines logged")

    def test_gateway_down_for_a_while_then_up_loses_nothing(self):
        sink = self.sink()
        https_port = daemon_port()  # the gateway comes later, on this port
        proxy = self.proxy(https_port)
        lines = numbered("late", 0, 20000)
        send_lines(proxy.port, lines[:10000])
        dest = "https://127.0.0.1:%d" % https_port
        wait_until(lambda: proxy.stats()["destinations"][dest]["queued"] == 10000, 10, message="lines queued at the proxy")
        # Every failed attempt counts as a reconnect (the gateway is not there yet).
        wait_until(lambda: proxy.stats()["destinations"][dest]["reconnects"] >= 2, 15, message="failed connects counted")
        self.gateway([sink.address], https_port=https_port)
        send_lines(proxy.port, lines[10000:])
        self.assert_delivered_once(sink, lines, timeout=60)
        log = proxy.log()
        self.assertIn("delivering again after", log)
        # One log line for the failure streak, not one per retry.
        self.assertEqual(log.count("retrying (backoff"), 1, log)

    def test_gateway_killed_mid_stream_and_restarted_loses_nothing(self):
        sink = self.sink()
        state = os.path.join(self.root, "gw-kill-state")
        https_port = daemon_port()
        gateway = self.gateway([sink.address], https_port=https_port, state_dir=state)
        proxy = self.proxy(https_port, "--batch-bytes=65536")
        lines = ["kill.%06d 1 1700000000" % i for i in range(200000)]
        stop = threading.Event()

        def feed():
            with socket.create_connection(("127.0.0.1", proxy.port)) as s:
                for i in range(0, len(lines), 2000):
                    s.sendall(("\n".join(lines[i:i + 2000]) + "\n").encode())
                    time.sleep(0.01)
            stop.set()

        feeder = threading.Thread(target=feed)
        feeder.start()
        wait_until(lambda: sink.line_count() > 20000, 30, message="stream under way")
        gateway.kill9()
        arrived_at_kill = sink.line_count()
        time.sleep(1)
        restarted = self.gateway([sink.address], https_port=https_port, state_dir=state)
        feeder.join()
        self.assertLess(arrived_at_kill, len(lines), "the stream ended before the kill")
        self.assert_all_delivered(sink, lines)
        self.assertIn("delivering again after", proxy.log())
        del restarted

    def test_full_gateway_queues_answer_503_and_the_proxy_keeps_the_lines(self):
        downstream = self.sink(start=False)  # nothing listens there yet
        downstream_port = downstream.port
        gateway = self.gateway(["127.0.0.1:%d" % downstream_port], "--queue-cap=2000")
        proxy = self.proxy(gateway.https_port, "--batch-bytes=16384")
        lines = numbered("full", 0, 10000)
        send_lines(proxy.port, lines)
        dest = "https://127.0.0.1:%d" % gateway.https_port
        # The log line, not any "503" (a port number may hold one).
        wait_until(lambda: "gateway answered 503" in proxy.log(), 15, message="the proxy sees 503")
        stats = proxy.stats()["destinations"][dest]
        self.assertGreater(stats["queued"], 0)
        self.assertEqual(stats["state"], "connected")
        # Direct: a batch that does not fit now is refused whole with 503 (retry later) ...
        status, body = self.request(gateway.https_port, "POST", "/ingest", gzip_lines(numbered("direct", 0, 1500)))
        self.assertEqual(status, 503)
        # ... and one larger than the queue could ever hold with 413 (send smaller batches).
        status, body = self.request(gateway.https_port, "POST", "/ingest", gzip_lines(numbered("direct", 0, 3000)))
        self.assertEqual(status, 413)
        self.assertIn("larger than the destination queues", body)
        sink = downstream.start()
        self.assert_delivered_once(sink, lines, timeout=90)
        self.assertEqual(gateway.stats()["destinations"]["127.0.0.1:%d" % downstream_port]["dropped"], 0)

    def test_proxy_stopped_while_the_gateway_is_down_keeps_its_queue(self):
        sink = self.sink()
        https_port = daemon_port()  # the gateway comes later, on this port
        state = os.path.join(self.root, "proxy-stop-state")
        proxy = self.proxy(https_port, state_dir=state)
        lines = numbered("kept", 0, 3000)
        send_lines(proxy.port, lines)
        dest = "https://127.0.0.1:%d" % https_port
        wait_until(lambda: proxy.stats()["destinations"][dest]["queued"] == 3000, 10, message="queued")
        started = time.monotonic()
        self.assertEqual(proxy.stop(), 0)
        self.assertLess(time.monotonic() - started, 8)
        self.gateway([sink.address], https_port=https_port)
        self.proxy(https_port, state_dir=state)
        self.assert_delivered_once(sink, lines)

    def test_deldest_stops_the_https_output_at_once(self):
        https_port = self.refused_port()  # no gateway: the output is in its backoff
        proxy = self.proxy(https_port)
        dest = "https://127.0.0.1:%d" % https_port
        send_lines(proxy.port, numbered("gone", 0, 100))
        wait_until(lambda: proxy.stats()["destinations"][dest]["queued"] == 100, 10, message="queued")
        title = "polymur: output " + dest
        self.assertIn(title, proxy.children().values())
        started = time.monotonic()
        self.assertIn("Unregistered destination", proxy.admin("deldest " + dest))
        wait_until(lambda: title not in proxy.children().values(), 5, message="the output gone")
        self.assertLess(time.monotonic() - started, 3)
        wait_until(lambda: dest not in proxy.stats()["destinations"], 10, message="destination removed")

    def test_idle_and_slow_clients_are_cut_by_the_request_timeout(self):
        sink = self.sink()
        gateway = self.gateway([sink.address], "--request-timeout=1")
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", gateway.https_port), timeout=10) as s:
            self.assertEqual(s.recv(100), b"")  # closed without a handshake
        self.assertLess(time.monotonic() - started, 5)
        # A proxy whose kept-alive connection the gateway closed reconnects without losing a batch.
        proxy = self.proxy(gateway.https_port)
        send_lines(proxy.port, numbered("first", 0, 100))
        wait_until(lambda: sink.line_count() >= 100, 20, message="first batch")
        # The gateway closes the proxy's kept-alive connection after --request-timeout=1.
        wait_until(lambda: not [s for s in tcp_sockets(gateway.https_port) if s[0] == "01"], 10,
                   message="the gateway closed the idle kept-alive connection")
        send_lines(proxy.port, numbered("second", 0, 100))
        self.assert_delivered_once(sink, numbered("first", 0, 100) + numbered("second", 0, 100))
        self.assertNotIn("retrying (backoff", proxy.log())


class PlainHttpTest(RelayTestCase):
    """The plain-HTTP listener behind a TLS-terminating balancer: the namespace comes from a header,
    trusted only from --trusted-proxies."""

    def start(self, trusted, host="127.0.0.1"):
        sink = self.sink()
        node = Node("--mode=gateway", "--http-listen-addr=%s:0" % (("[%s]" % host) if ":" in host else host),
                    "--trusted-proxies=" + trusted, "--key-prefix", destinations=[sink.address])
        self.addCleanup(node.cleanup)
        node.start()
        return sink, node, node.bound_port("HTTP")

    def post(self, port, lines, headers=None, host="127.0.0.1"):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request("POST", "/ingest", body=gzip_lines(lines), headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()

    def test_namespace_header_from_a_trusted_proxy(self):
        sink, node, port = self.start("10.0.0.0/8, 127.0.0.0/8")
        status, body = self.post(port, numbered("lb", 0, 20), {"X-Polymur-Namespace": "site-b",
                                                               "X-Forwarded-For": "203.0.113.7"})
        self.assertEqual((status, body.strip()), (200, "accepted 20, invalid 0"))
        # With --key-prefix, a request without the header would land unprefixed: refused.
        self.assertEqual(self.post(port, numbered("bare", 0, 5))[0], 403)
        # A namespace that would break metric names, or reach into another tenant's, is refused.
        for bad in ("a b", "../etc", "site-b.web01", "*", "", "caf\u00e9"):
            self.assertEqual(self.post(port, ["x 1 1"], {"X-Polymur-Namespace": bad.encode("utf-8").decode("latin-1")})[0],
                             403, bad)
        # So is anything outside the namespace characters: invalid UTF-8, Unicode spaces, C1 controls, and
        # valid UTF-8 too (one namespace must not look like another).
        for bad in (b"a\xffb", b"a\xc0\xafb", b"a\xc2\xa0b", b"a\xe2\x80\x83b", b"a\xc2\x85b", b"a\xc2\x9bb",
                    "sit\xc3\xa9".encode("latin-1")):
            self.assertEqual(self.post(port, ["x 1 1"], {"X-Polymur-Namespace": bad})[0], 403, bad)
        want = ["site-b." + line for line in numbered("lb", 0, 20)]
        wait_until(lambda: sink.line_count() >= len(want), 20, message="lines at the sink")
        self.assertEqual(sorted(sink.lines()), sorted(want))
        wait_until(lambda: "forwarded for 203.0.113.7" in node.log(), 5, message="X-Forwarded-For logged")

    def test_namespace_header_from_an_untrusted_address_is_403_and_so_is_no_header(self):
        sink, node, port = self.start("10.0.0.0/8,192.168.0.0/16,::1/128")
        status, body = self.post(port, numbered("spoof", 0, 5), {"X-Polymur-Namespace": "someone-else"})
        self.assertEqual(status, 403, body)
        status, body = self.post(port, numbered("anon", 0, 5))
        self.assertEqual(status, 403, body)
        self.assertIn("with --key-prefix every request needs a namespace", body)
        time.sleep(1)
        self.assertEqual(sink.lines(), [])
        wait_until(lambda: "every request needs a namespace" in node.log(), 5, message="the refusal logged")

    def test_duplicate_namespace_or_content_length_headers_are_400(self):
        sink, node, port = self.start("127.0.0.0/8")
        body = gzip_lines(["dup 1 1700000000"])
        length = ("Content-Length", str(len(body)))
        conn = lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        # A balancer that appends its header after the client's must not let the client choose.
        status, text = raw_post(conn(), [("X-Polymur-Namespace", "site-b"), ("X-Polymur-Namespace", "victim"), length], body)
        self.assertEqual(status, 400, text)
        self.assertIn("namespace header appears more than once", text)
        # Two Content-Length headers that differ: request smuggling behind a proxy that reads the other.
        status, text = raw_post(conn(), [length, ("Content-Length", str(len(body) + 5))], body + b"xxxxx")
        self.assertEqual(status, 400, text)
        self.assertIn("two Content-Length headers that differ", text)
        # The same length twice is one length.
        self.assertEqual(raw_post(conn(), [("X-Polymur-Namespace", "site-b"), length, length], body)[0], 200)
        wait_until(lambda: sink.line_count() >= 1, 20, message="line at the sink")
        time.sleep(0.3)
        self.assertEqual(sink.lines(), ["site-b.dup 1 1700000000"])
        self.assertIn("request refused with 400", node.log())

    def test_ipv6_trusted_range(self):
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
        except OSError:
            self.skipTest("no ::1")
        sink, node, port = self.start("fd00::/8,::1/128", host="::1")
        self.assertEqual(self.post(port, ["v6 1 1700000000"], {"X-Polymur-Namespace": "six"}, host="::1")[0], 200)
        sink2, node2, port2 = self.start("127.0.0.0/8,fd00::/8", host="::1")
        self.assertEqual(self.post(port2, ["v6 1 1700000000"], {"X-Polymur-Namespace": "six"}, host="::1")[0], 403)
        wait_until(lambda: sink.line_count() >= 1, 20, message="line at the sink")
        self.assertEqual(sink.lines(), ["six.v6 1 1700000000"])

    def test_many_forwarded_requests_log_at_most_once_a_second(self):
        sink, node, port = self.start("127.0.0.0/8")
        started = time.monotonic()
        for i in range(40):
            self.assertEqual(self.post(port, ["xff.%d 1 1700000000" % i], {"X-Forwarded-For": "198.51.100.%d" % i,
                                                                          "X-Polymur-Namespace": "lb"})[0], 200)
        elapsed = time.monotonic() - started
        time.sleep(0.2)
        # Each listener worker logs at once, then at most once a second.
        self.assertLessEqual(node.log().count("forwarded for"), 2 * (int(elapsed) + 1))
        self.assertIn("more forwarded requests since the last report", node.log())


if __name__ == "__main__":
    unittest.main()
