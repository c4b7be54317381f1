"""The operator's path through the real binary: --check-config refuses what start refuses, SIGHUP
applies an option or names it as needing a restart, and the messages and counters an operator reads."""
import os
import re
import signal
import socket
import subprocess
import time

from harness import POLYMUR, TIME_FACTOR, RelayTestCase, daemon_port, send_lines, temp_dir, wait_until

TIMESTAMPED = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{3} \[")


def run(args, env=None, timeout=15):
    return subprocess.run([POLYMUR] + args, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})), stdin=subprocess.DEVNULL)


class CheckAgreesWithStartTest(RelayTestCase):
    def setUp(self):
        self.tmp = temp_dir(self, "polymur-check-")
        # Port 0: a case that is not refused could start without disturbing anyone.
        self.base = ["--state-dir=" + os.path.join(self.tmp, "state"), "--api-addr=127.0.0.1:0",
                     "--listen-addr=127.0.0.1:0", "--workers=1"]

    def refused_alike(self, args, expected):
        check = run(self.base + args + ["--check-config"])
        start = subprocess.Popen([POLYMUR] + self.base + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, stdin=subprocess.DEVNULL)
        try:
            _, start_err = start.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            start.send_signal(signal.SIGTERM)
            start.communicate(timeout=20)
            self.fail("%s: start ran instead of refusing it" % args)
        self.assertNotEqual(check.returncode, 0, "%s: --check-config said %s" % (args, check.stdout))
        self.assertNotEqual(start.returncode, 0, args)
        self.assertIn(expected, check.stderr, args)
        self.assertIn(expected, start_err, args)
        self.assertEqual(check.stderr, start_err, "%s: the check and the start say different things" % args)
        self.assertNotIn("configuration OK", check.stdout)

    def test_each_case_of_the_issue_is_refused_by_check_and_start_with_one_message(self):
        conf = os.path.join(self.tmp, "quoted.conf")
        with open(conf, "w") as f:
            f.write('listen-addr = "127.0.0.1:0"\n')
        port = daemon_port()  # only a number here: every case is refused before anything binds it
        cases = [
            (["--listen-addr=0.0.0.0"], "address '0.0.0.0': expected host:port"),
            (["--listen-addr=1.2.3"], "address '1.2.3': expected host:port"),
            (["--listen-addr=1.2.3:%d" % port], "'1.2.3' is not an IPv4 address"),
            (["--config=" + conf], "values are written without quotes"),
            (["--listen-addr=127.0.0.1:%d" % port, "--api-addr=127.0.0.1:%d" % port], "are the same address"),
            (["--destinations=127.0.0.1:1:x,127.0.0.1:1:x"], "destination 127.0.0.1:1:x is listed twice"),
            (["--listen-addr=127.0.0.1:65536"], "bad port '65536'"),
            (["--config=/tmp"], "config file /tmp: is a directory"),
            (["--listen-addr", "--check-config"], "--listen-addr needs a value; the next word, --check-config, is an option"),
        ]
        for args, expected in cases:
            with self.subTest(args=args):
                self.refused_alike(args, expected)

    def test_check_refuses_a_state_dir_start_cannot_use(self):
        # Start refuses these when it creates or locks the directory (a log line, exit 78); so does the check.
        not_a_dir = os.path.join(self.tmp, "file")
        open(not_a_dir, "w").close()
        for state_dir, expected in ((not_a_dir, "not a directory"), (os.path.join(not_a_dir, "sub"), "cannot be created")):
            r = run(self.base + ["--state-dir=" + state_dir, "--check-config"])
            self.assertEqual(r.returncode, 2, r.stdout)
            self.assertIn("--state-dir %s: %s" % (state_dir, expected), r.stderr)
            start = run(self.base + ["--state-dir=" + state_dir])
            self.assertEqual(start.returncode, 78, start.stderr)

    def test_check_binds_and_releases_and_tolerates_the_running_relay(self):
        # An address no local interface has: bind fails at start, so the check must fail too.
        r = run(self.base + ["--listen-addr=192.0.2.1:2003", "--check-config"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot listen", r.stderr)
        # The same configuration as a running relay (systemctl reload runs the check beside it): a warning.
        relay = self.relay("--destinations=127.0.0.1:1")
        r = run(relay.args[1:] + ["--check-config"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("in use now", r.stderr)
        self.assertIn("configuration OK", r.stdout)

    def test_the_last_of_a_repeated_option_wins(self):
        first, last = os.path.join(self.tmp, "first"), os.path.join(self.tmp, "last")
        relay = self.relay("--state-dir=" + first, "--state-dir=" + last, start=False)
        relay.state_dir = last
        relay.start()
        self.assertTrue(os.path.exists(os.path.join(last, "polymur.lock")))
        self.assertFalse(os.path.exists(first))

    def test_environment_and_file_typos_are_both_errors_naming_the_name(self):
        r = run(self.base + ["--check-config"], env={"POLYMUR_WORKRES": "2"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("environment variable POLYMUR_WORKRES names no option", r.stderr)
        r = run(self.base + ["--check-config"], env={"POLYMUR_WORKERS": "abc"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("environment variable POLYMUR_WORKERS: ", r.stderr)
        conf = os.path.join(self.tmp, "typo.conf")
        with open(conf, "w") as f:
            f.write("workres = 2\n")
        r = run(self.base + ["--config=" + conf, "--check-config"])
        self.assertEqual(r.returncode, 2)
        self.assertIn(conf + ":1: unknown option 'workres'", r.stderr)

    def test_check_warns_about_what_would_lose_or_misplace_metrics(self):
        r = run(self.base + ["--destinations=no-such-host.invalid:2003", "--check-config"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("destination no-such-host.invalid:2003: host 'no-such-host.invalid' does not resolve", r.stderr)
        r = run(self.base + ["--distribution=hash-route", "--hash-type=fnv1a_ch",
                             "--destinations=127.0.0.1:2103,127.0.0.2:2103", "--check-config"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--hash-type fnv1a_ch: 127.0.0.1:2103 and 127.0.0.2:2103 have no instance", r.stderr)
        r = run(self.base + ["--check-config"])
        self.assertIn("broadcast with no destinations", r.stderr)
        self.assertRegex(r.stderr, TIMESTAMPED)


class ReloadTest(RelayTestCase):
    def config_relay(self, text, *args):
        self.conf = os.path.join(temp_dir(self, "polymur-reload-"), "polymur.conf")
        with open(self.conf, "w") as f:
            f.write(text)
        return self.relay("--config=" + self.conf, *args)

    def reload(self, relay, text):
        with open(self.conf, "w") as f:
            f.write(text)
        done = relay.log().count("reload done")
        relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: relay.log().count("reload done") > done, 10, message="reload done")

    def test_sighup_applies_cheap_options_and_names_the_rest(self):
        sink = self.sink()
        relay = self.config_relay("stats-interval = 30\nself-metrics-interval = 0\nidle-timeout = 600\n",
                                  "--destinations=" + sink.address)
        idle = socket.create_connection(("127.0.0.1", relay.port))
        self.addCleanup(idle.close)
        self.reload(relay, "stats-interval = 1\nself-metrics-interval = 1\nself-metrics-prefix = reloaded.relay\n"
                           "idle-timeout = 1\nconnect-timeout-ms = 100\nstall-timeout = 40\n"
                           "queue-cap = 1000\nmax-line-length = 2048\ndrain-timeout = 2\n")
        log = relay.log()
        for option in ("stats-interval", "self-metrics-interval", "self-metrics-prefix", "stall-timeout", "idle-timeout",
                       "connect-timeout-ms", "drain-timeout"):
            self.assertIn("supervisor: reload: --%s changed; applied" % option, log)
        for option in ("queue-cap", "max-line-length"):
            self.assertIn("supervisor: reload: --%s changed; needs a restart to take effect" % option, log)
        self.assertIn("7 other options applied, 2 need a restart", log)
        # idle-timeout reached the listeners: the connection opened before the reload is closed now.
        idle.settimeout(10)
        self.assertEqual(idle.recv(1), b"")
        wait_until(lambda: "closed after 1 s idle" in relay.log(), 5, message="idle close logged")
        # Applied: rate lines every second, self-metrics every second under the new prefix.
        marker = len(relay.log())
        wait_until(lambda: relay.log()[marker:].count("Last 1.") >= 3, 10, message="rate lines every second")
        wait_until(lambda: any(l.startswith("reloaded.relay.metricsReceived ") for l in sink.lines()), 10,
                   message="self-metrics under the reloaded prefix")
        # drain-timeout applies to the next shutdown.
        self.assertEqual(relay.stop(), 0)
        self.assertIn("letting outputs deliver for up to 2 s", relay.log())

    def test_reload_with_nothing_changed_names_nothing(self):
        relay = self.config_relay("stats-interval = 5\n")
        self.reload(relay, "stats-interval = 5\n")
        self.assertIn("0 other options applied, 0 need a restart", relay.log())
        self.assertNotIn("changed;", relay.log())


class MessagesAndCountersTest(RelayTestCase):
    def test_putdest_of_a_registered_destination_says_so(self):
        relay = self.relay("--distribution=hash-route", destinations=["127.0.0.1:1:a"])
        self.assertEqual(relay.admin("putdest 127.0.0.1:1:a"), "error: destination 127.0.0.1:1:a is already registered\n")

    def test_putdest_of_an_unresolvable_host_warns(self):
        relay = self.relay()
        reply = relay.admin("putdest no-such-host.invalid:2003")
        self.assertTrue(reply.startswith("Registered destination: no-such-host.invalid:2003\n"), reply)
        self.assertIn("destination no-such-host.invalid:2003: host 'no-such-host.invalid' does not resolve", reply)
        self.assertIn("host 'no-such-host.invalid' does not resolve", relay.log())

    def test_a_resolver_that_does_not_answer_holds_the_supervisor_two_seconds_at_most(self):
        # The warning about a destination that does not resolve is looked up by the supervisor, whose loop serves
        # the admin, /health, the children and systemd's watchdog. Here the name server takes every query and
        # never answers (a private one, in a network and mount namespace of the test's own whose
        # /etc/resolv.conf names it): getaddrinfo alone waits 10 s per name (timeout 5 s, 2 attempts).
        if os.geteuid() != 0:
            self.skipTest("needs root for the namespaces")
        tmp = temp_dir(self, "polymur-dns-")
        resolv = os.path.join(tmp, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver 127.0.0.1\noptions timeout:5 attempts:2\n")
        silent = os.path.join(tmp, "silent_dns.py")
        with open(silent, "w") as f:
            f.write("import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                    "s.bind(('127.0.0.1', 53))\nend = time.time() + 60\n"
                    "while time.time() < end:\n    s.settimeout(1)\n    try:\n        s.recv(512)\n"
                    "    except OSError:\n        pass\n")
        relay = self.relay(destinations=["carbon-a.invalid:2003"], start=False)
        relay.args = ["unshare", "--net", "--mount", "sh", "-c",
                      "ip link set lo up && mount --bind \"$0\" /etc/resolv.conf || exit 1; python3 \"$1\" & "
                      "sleep 0.5; shift; exec \"$@\"", resolv, silent] + relay.args

        def end_silent_server():
            for pid in subprocess.run(["pgrep", "-f", silent], capture_output=True, text=True).stdout.split():
                os.kill(int(pid), signal.SIGKILL)
        self.addCleanup(end_silent_server)
        started = time.monotonic()
        relay.start(wait=False)
        sock = os.path.join(relay.state_dir, "polymur.sock")

        def admin_answers():
            try:
                return '"registered"' in relay.admin("getdest", unix=True)
            except OSError:
                return False
        wait_until(admin_answers, 15, message="the admin socket")
        self.assertTrue(os.path.exists(sock))
        wait_until(lambda: "host 'carbon-a.invalid' does not resolve now (no answer from the resolver within 2.0 s)"
                   in relay.log(), 15, message="the start's warning")
        self.assertLess(time.monotonic() - started, 8 * TIME_FACTOR, "start-up waited out the resolver")
        began = time.monotonic()
        reply = relay.admin("putdest carbon-b.invalid:2003", unix=True)
        took = time.monotonic() - began
        self.assertTrue(reply.startswith("Registered destination: carbon-b.invalid:2003\n"), reply)
        self.assertIn("host 'carbon-b.invalid' does not resolve now (no answer from the resolver within 2.0 s)", reply)
        self.assertLess(took, 2 + 2 * TIME_FACTOR, "putdest waited out the resolver (10 s)")
        self.assertGreater(took, 1.5)  # it did wait for the resolver, up to the bound
        # No lookup child is left behind: the supervisor's children are its listeners and outputs (and the silent
        # name server, started by the shell that became polymur).
        titles = relay.children().values()
        self.assertTrue(all("listener" in t or "output" in t or "python3" in t for t in titles), titles)

    def test_fnv1a_without_instances_is_warned_about_at_start(self):
        relay = self.relay("--distribution=hash-route", "--hash-type=fnv1a_ch", destinations=["127.0.0.1:1", "127.0.0.2:1"])
        self.assertIn("--hash-type fnv1a_ch: 127.0.0.1:1 and 127.0.0.2:1 have no instance", relay.log())

    def test_broadcast_to_nobody_warns_and_counts_unroutable(self):
        relay = self.relay()
        self.assertIn("broadcast with no destinations", relay.log())
        send_lines(relay.port, ["nowhere.%d 1 1700000000" % i for i in range(5)])
        wait_until(lambda: relay.stats()["unroutable"] == 5, 10, message="5 unroutable")
        self.assertEqual(relay.stats()["received"], 5)

    def test_deldest_of_the_last_broadcast_destination_warns(self):
        sink = self.sink()
        relay = self.relay(destinations=[sink.address])
        relay.admin("deldest " + sink.address)
        wait_until(lambda: "no destinations left" in relay.log(), 10, message="warning")

    def test_in_ring_only_for_hash_route(self):
        sink = self.sink()
        relay = self.relay(destinations=[sink.address])
        self.assertNotIn("in_ring", relay.stats()["destinations"][sink.address])
        hashed = self.relay("--distribution=hash-route", destinations=[sink.address])
        self.assertIn("in_ring", hashed.stats()["destinations"][sink.address])

    def test_failed_connects_count_as_reconnects(self):
        dead = "127.0.0.1:%d" % self.refused_port()
        relay = self.relay(destinations=[dead])  # the harness sets --reconnect-interval=1
        wait_until(lambda: relay.stats()["destinations"][dead]["reconnects"] >= 2, 15, message="failed connects counted")

    def test_start_line_does_not_count_the_console(self):
        sink = self.sink()
        relay = self.relay("--console-out", destinations=[sink.address])
        self.assertIn("broadcast to 1 destinations and the console", relay.log())

    def test_rate_line_every_interval_even_when_idle(self):
        relay = self.relay("--stats-interval=1")
        wait_until(lambda: relay.log().count("Received 0 data points") >= 2, 10, message="idle rate lines")

    def test_every_log_line_has_the_timestamp_prefix(self):
        relay = self.relay("-stat-addr=:8125", "--stats-interval=1")
        relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload done" in relay.log(), 10, message="reload")
        relay.stop()
        lines = [l for l in relay.log().splitlines() if l]
        self.assertTrue(any("-stat-addr is accepted" in l for l in lines))
        for line in lines:
            self.assertRegex(line, TIMESTAMPED)

    def test_putdest_https_without_client_certificates_is_refused(self):
        relay = self.relay()
        reply = relay.admin("putdest https://127.0.0.1:8443")
        self.assertTrue(reply.startswith("error: destination https://127.0.0.1:8443: HTTPS destinations need --client-cert"), reply)
        self.assertNotIn("https://", relay.admin("getdest"))
        self.assertEqual(relay.stats()["destinations"], {})


if __name__ == "__main__":
    import unittest
    unittest.main()
