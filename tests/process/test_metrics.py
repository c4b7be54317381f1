"""--metrics-addr: /metrics scraped by a real Prometheus (Debian's `prometheus`), checked with
`promtool check metrics`, and /health as a load balancer or Kubernetes probe sees it."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from harness import (POLYMUR, TIME_FACTOR, RelayTestCase, cpu_seconds, daemon_port, numbered, open_file_limit, recv_all,
                     send_lines, wait_until)

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def http_get(port, path, timeout=5):
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class PrivatePrometheus:
    """A Prometheus of our own: temp config and data dir, a free loopback port, scraping every second."""

    def __init__(self, target):
        self.dir = tempfile.mkdtemp(prefix="polymur-prometheus-")
        self.port = daemon_port()  # an external daemon: it cannot bind port 0 and say which it got
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: polymur\n    static_configs:\n"
                    "      - targets: ['%s']\n" % target)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen([PROMETHEUS, "--config.file=" + config, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                                      "--web.listen-address=127.0.0.1:%d" % self.port],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(lambda: self._ready(), 30, message="prometheus ready")

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("prometheus exited: " + open(self.log.name).read()[-2000:])
        try:
            return http_get(self.port, "/-/ready", timeout=1)[0] == 200
        except OSError:
            return False

    def api(self, path, **params):
        status, body = http_get(self.port, "/api/v1/" + path + ("?" + urllib.parse.urlencode(params) if params else ""))
        return json.loads(body)

    def targets(self):
        return self.api("targets")["data"]["activeTargets"]

    def query(self, expression):
        """{frozenset(labels without __name__): value} of an instant query."""
        out = {}
        for sample in self.api("query", query=expression)["data"]["result"]:
            labels = {k: v for k, v in sample["metric"].items() if k not in ("__name__", "job", "instance")}
            out[frozenset(labels.items())] = float(sample["value"][1])
        return out

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class MetricsTest(RelayTestCase):
    def metrics_relay(self, *args, **kw):
        relay = self.relay("--metrics-addr=127.0.0.1:0", *args, **kw)
        relay.metrics_port = relay.bound_port("metrics")
        return relay

    @unittest.skipUnless(PROMETHEUS, "Debian's prometheus package is not installed (./dev.sh test installs it)")
    def test_prometheus_scrapes_the_relays_counters(self):
        a, b = self.sink(), self.sink()
        relay = self.metrics_relay(destinations=[a.address, b.address + ":b"])
        send_lines(relay.port, numbered("prom", 0, 250) + ["not a metric", "also bad x y"])
        wait_until(lambda: a.line_count() == 250 and b.line_count() == 250, message="delivery to both sinks")

        prometheus = PrivatePrometheus("127.0.0.1:%d" % relay.metrics_port)
        self.addCleanup(prometheus.close)
        up = wait_until(lambda: [t for t in prometheus.targets() if t["health"] == "up"], 40, message="target up")
        self.assertEqual(up[0]["scrapeUrl"], "http://127.0.0.1:%d/metrics" % relay.metrics_port)
        self.assertEqual(up[0]["lastError"], "")

        def value(expression, labels=()):
            return prometheus.query(expression).get(frozenset(labels))

        wait_until(lambda: value("polymur_received_total") is not None, 20, message="samples in prometheus")
        self.assertEqual(value("polymur_received_total"), 250)
        self.assertEqual(value("polymur_invalid_total"), 2)
        self.assertEqual(value("polymur_ready"), 1)
        self.assertEqual(value("polymur_workers"), 2)
        for destination in (a.address, b.address + ":b"):
            labels = [("destination", destination)]
            self.assertEqual(value("polymur_destination_sent_total", labels), 250, destination)
            self.assertEqual(value("polymur_destination_queued", labels), 0, destination)
            self.assertEqual(value("polymur_destination_dropped_total", labels), 0, destination)
            self.assertEqual(value("polymur_destination_state", labels + [("state", "connected")]), 1, destination)
            self.assertEqual(value("polymur_destination_state", labels + [("state", "down")]), 0, destination)

        # More lines later: the next scrapes carry them, and rate() works on the counters.
        send_lines(relay.port, numbered("prom", 250, 100))
        wait_until(lambda: value("polymur_received_total") == 350, 20, message="the next scrape")
        wait_until(lambda: value("polymur_destination_sent_total", [("destination", a.address)]) == 350, 20,
                   message="sent counter in prometheus")
        self.assertGreater(value("rate(polymur_received_total[1m])"), 0)

    @unittest.skipUnless(PROMTOOL, "promtool (Debian's prometheus package) is not installed")
    def test_promtool_accepts_the_exposition(self):
        a = self.sink()
        down = self.refused_port()
        relay = self.metrics_relay("--distribution=hash-route", "--console-out",
                                   destinations=[a.address + ":x", "127.0.0.1:%d:y" % down])
        send_lines(relay.port, numbered("lint", 0, 100) + ["bad"])
        wait_until(lambda: relay.stats()["destinations"][a.address + ":x"]["sent"] > 0, message="some delivery")
        status, text = http_get(relay.metrics_port, "/metrics")
        self.assertEqual(status, 200)
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        self.assertEqual((check.returncode, check.stdout, check.stderr), (0, "", ""), text)
        # Every counter `stats` has is there, per destination.
        stats = relay.stats()
        for name in ("received", "invalid", "too_long", "unroutable", "connections_total"):
            self.assertRegex(text, r"(?m)^polymur_%s_total \d+$" % name if name != "connections_total"
                             else r"(?m)^polymur_connections_total \d+$")
        for destination, counters in stats["destinations"].items():
            for field in ("sent", "sent_bytes", "dropped", "reconnects", "rerouted"):
                self.assertRegex(text, r'(?m)^polymur_destination_%s_total\{destination="%s"\} \d+$' % (field, destination))
            for field in ("queued", "queued_bytes", "in_ring"):
                self.assertRegex(text, r'(?m)^polymur_destination_%s\{destination="%s"\} \d+$' % (field, destination))
        self.assertIn('polymur_destination_state{destination="127.0.0.1:%d:y",state="connected"} 0' % down, text)

    def test_health_is_503_while_a_child_is_stopped_and_200_again_after_its_restart(self):
        a = self.sink()
        relay = self.metrics_relay("--stall-timeout=8", destinations=[a.address])
        wait_until(lambda: http_get(relay.metrics_port, "/health") == (200, "ok\n"), 10, message="healthy")
        listener = next(pid for pid, title in relay.children().items() if "listener 1" in title)
        os.kill(listener, signal.SIGSTOP)
        self.addCleanup(lambda: os.path.exists("/proc/%d" % listener) and os.kill(listener, signal.SIGCONT))
        stopped = time.monotonic()
        status, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(http_get(relay.metrics_port, "/health")),
                                  10, message="/health 503")
        self.assertLess(time.monotonic() - stopped, 7, "noticed before the stall timeout")
        self.assertRegex(body, r"^not ready: listener 1 \(pid %d\): no heartbeat for \d+\.\d s\n$" % listener)
        self.assertIn("polymur_ready 0\n", http_get(relay.metrics_port, "/metrics")[1])
        # Past the stall timeout the supervisor kills and restarts it; then all is well again.
        wait_until(lambda: http_get(relay.metrics_port, "/health")[0] == 200, 20, message="/health 200 after the restart")
        self.assertFalse(os.path.exists("/proc/%d/status" % listener) and "T (stopped)" in open("/proc/%d/status" % listener).read())
        self.assertIn("polymur_ready 1\n", http_get(relay.metrics_port, "/metrics")[1])

    def test_health_is_503_while_a_killed_child_waits_for_its_restart(self):
        relay = self.metrics_relay(workers=1)
        wait_until(lambda: http_get(relay.metrics_port, "/health")[0] == 200, 10, message="healthy")

        def listener_pid():
            return next((pid for pid, title in relay.children().items() if "listener 0" in title), None)

        # Each quick death doubles the restart backoff (100 ms, 200 ms, ...): after a few, the
        # listener stays dead long enough for /health to be asked.
        for _ in range(5):
            pid = wait_until(listener_pid, 10, message="listener 0 running")
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: listener_pid() != pid, 10, message="listener 0 reaped")
        status, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(http_get(relay.metrics_port, "/health")),
                                  5, message="/health 503")
        self.assertEqual(body, "not ready: listener 0: not running\n")
        wait_until(lambda: http_get(relay.metrics_port, "/health") == (200, "ok\n"), 20, message="200 after the restart")

    def test_health_is_503_for_an_output_that_stopped_and_while_shutting_down(self):
        a = self.sink()
        relay = self.metrics_relay("--drain-timeout=1", destinations=[a.address])
        wait_until(lambda: http_get(relay.metrics_port, "/health")[0] == 200, 10, message="healthy")
        output = next(pid for pid, title in relay.children().items() if "output " + a.address in title)
        os.kill(output, signal.SIGSTOP)
        wait_until(lambda: http_get(relay.metrics_port, "/health")[0] == 503, 10, message="503 for a stopped output")
        self.assertRegex(http_get(relay.metrics_port, "/health")[1],
                         r"^not ready: output %s \(pid %d\): no heartbeat for " % (a.address, output))
        os.kill(output, signal.SIGCONT)
        wait_until(lambda: http_get(relay.metrics_port, "/health")[0] == 200, 10, message="200 once it runs again")

        # Shutting down: the stopped output holds the shutdown open until the supervisor kills it
        # (--drain-timeout + 5 s); all that time /health says why a balancer should look elsewhere.
        os.kill(output, signal.SIGSTOP)
        relay.proc.send_signal(signal.SIGTERM)
        status, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(http_get(relay.metrics_port, "/health")),
                                  5, message="503 while stopping")
        self.assertRegex(body, r"^not ready: stopping")
        relay.proc.wait(30)

    def test_off_unless_set_and_unknown_paths(self):
        relay = self.relay()
        self.assertNotIn("metrics:", relay.log())
        relay = self.metrics_relay()
        self.assertIn("metrics: serving /metrics (Prometheus) and /health on 127.0.0.1:%d" % relay.metrics_port, relay.log())
        self.assertEqual(http_get(relay.metrics_port, "/")[0], 404)
        self.assertEqual(http_get(relay.metrics_port, "/metrics?x=1")[0], 200)
        request = urllib.request.Request("http://127.0.0.1:%d/metrics" % relay.metrics_port, data=b"", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        self.assertEqual(refused.exception.code, 501)  # evhttp: a method it does not serve

    def test_out_of_descriptors_the_endpoint_pauses_and_serves_again(self):
        """With an open-file limit below what the supervisor holds, accept() on /metrics fails while a scrape
        waits in the backlog, and libevent's listener would retry at once (a core at 100 %): it pauses 100 ms at
        a time instead, logs at most a line a second, and serves the waiting scrape once descriptors are back."""
        relay = self.metrics_relay()
        supervisor = relay.proc.pid
        started = time.monotonic()
        with open_file_limit(supervisor, 3):
            waiting = socket.create_connection(("127.0.0.1", relay.metrics_port), timeout=5)
            self.addCleanup(waiting.close)
            waiting.sendall(b"GET /health HTTP/1.0\r\n\r\n")
            wait_until(lambda: "metrics: accept failed: Too many open files; pausing accepts for 100 ms" in relay.log(),
                       10, message="the pause in the log")
            before = cpu_seconds(supervisor)
            time.sleep(2 * TIME_FACTOR)
            spent = cpu_seconds(supervisor) - before
        self.assertLess(spent, 0.5 * TIME_FACTOR, "the supervisor spent %.2f s of CPU in 2 s" % spent)
        # At most a line a second (with a count of the attempts held back), not one per 100 ms attempt.
        self.assertLessEqual(relay.log().count("metrics: accept failed"), time.monotonic() - started + 2)
        waiting.settimeout(10)
        self.assertTrue(recv_all(waiting).startswith(b"HTTP/1.0 200"))
        self.assertEqual(http_get(relay.metrics_port, "/health"), (200, "ok\n"))
        self.assertIsNone(relay.proc.poll())

    def test_check_config_refuses_what_start_refuses(self):
        api = daemon_port()  # --check-config binds it
        for address, reason in (("127.0.0.1:99999", "bad port"), ("nonsense", "expected host:port"),
                                ("127.0.0.1:%d" % api, "the same address")):
            check = subprocess.run([POLYMUR, "--check-config", "--api-addr=127.0.0.1:%d" % api, "--metrics-addr=" + address],
                                   capture_output=True, text=True, timeout=30)
            self.assertEqual(check.returncode, 2, address)
            self.assertIn("--metrics-addr", check.stderr)
            self.assertIn(reason, check.stderr)

    def test_connections_are_bounded_and_never_block_the_relay(self):
        import socket
        a = self.sink()
        relay = self.metrics_relay(destinations=[a.address])
        held = []
        for _ in range(60):  # more than the limit, each after one request on a kept-alive connection
            s = socket.create_connection(("127.0.0.1", relay.metrics_port), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            held.append(s)
        answered = set()

        def read_answers():
            for s in held:
                if s in answered:
                    continue
                s.settimeout(0.01)
                try:
                    if s.recv(4096).startswith(b"HTTP/1.1 "):  # 200, or 503 while the children start
                        answered.add(s)
                except socket.timeout:
                    pass
            return len(answered) >= 32

        wait_until(read_answers, 15, message="32 connections served")
        time.sleep(1)
        read_answers()
        self.assertEqual(len(answered), 32, "the limit of connections served at once")
        # The relay and its admin protocol go on meanwhile.
        send_lines(relay.port, numbered("busy", 0, 10))
        wait_until(lambda: a.line_count() == 10, message="delivery while /metrics is saturated")
        for s in held:
            s.close()
        wait_until(lambda: http_get(relay.metrics_port, "/health", timeout=2)[0] == 200, 10, message="served again")


if __name__ == "__main__":
    unittest.main()
