"""Running as a service: the systemd notify protocol, watchdog, reload, --check-config,
self-metrics and journal log lines, all through the real binary."""
import os
import signal
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from harness import POLYMUR, RelayTestCase, numbered, send_lines, temp_dir, wait_until


class NotifySocket:
    """What systemd listens on: a unix datagram socket named by NOTIFY_SOCKET."""

    def __init__(self):
        self.path = os.path.join(tempfile.mkdtemp(prefix="polymur-notify-"), "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while not self._stop.is_set():
            try:
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))
            except socket.timeout:
                pass

    def states(self):
        return [line for _, m in self.messages for line in m.split("\n")]

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()
        shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)


class ServiceTest(RelayTestCase):
    def test_notify_ready_status_watchdog_reload_and_stopping(self):
        notify = NotifySocket()
        self.addCleanup(notify.close)
        a = self.sink()
        relay = self.relay("--stats-interval=1", destinations=[a.address], start=False,
                           extra_env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"})
        relay.start(wait=False)
        wait_until(lambda: "READY=1" in notify.states(), 10, message="READY=1")
        # READY=1 only once everything is bound and forked: the listener accepts at that moment.
        with socket.create_connection(("127.0.0.1", relay.port), timeout=2):
            pass
        self.assertIn("MAINPID=%d" % relay.proc.pid, notify.states())
        # WATCHDOG=1 at least every WATCHDOG_USEC/2 (0.2 s): four pings within 1.5 s.
        wait_until(lambda: sum("WATCHDOG=1" in m for t, m in notify.messages) >= 4, 1.5, interval=0.02,
                   message="four WATCHDOG=1 pings")
        send_lines(relay.port, numbered("st", 0, 100))
        wait_until(lambda: any(s.startswith("STATUS=") and "metrics/s" in s for s in notify.states()), 5)
        relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "RELOADING=1" in notify.states(), 5, message="RELOADING=1")
        wait_until(lambda: notify.states().count("READY=1") >= 2, 5, message="READY=1 after the reload")
        relay.stop()
        wait_until(lambda: "STOPPING=1" in notify.states(), 5, message="STOPPING=1")

    def test_no_watchdog_pings_for_another_pid(self):
        notify = NotifySocket()
        self.addCleanup(notify.close)
        relay = self.relay(start=False, extra_env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000",
                                                    "WATCHDOG_PID": "1"})
        relay.start(wait=False)
        wait_until(lambda: "READY=1" in notify.states(), 10)
        time.sleep(0.6)
        self.assertNotIn("WATCHDOG=1", notify.states())

    def test_check_config_names_file_line_and_reason(self):
        tmp = temp_dir(self, "polymur-check-")
        good = os.path.join(tmp, "good.conf")
        with open(good, "w") as f:
            f.write("# polymur\nlisten-addr = 127.0.0.1:2003\ndestinations = 10.0.0.1:2003, 10.0.0.2:2003\n"
                    "distribution = hash-route\n")
        r = subprocess.run([POLYMUR, "--check-config", "--config", good], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK: " + good, r.stdout)
        cases = {
            "listen-addr = 1.2.3.4:5\n\nlisten-adress = x\n": ":3: unknown option 'listen-adress'",
            "workers = many\n": ":1: ",
            "queue-cap = 10\nqueue-cap = 20\n": ":2: 'queue-cap' is set twice (first on line 1)",
            "just words\n": ":1: expected name = value",
            "destinations = 10.0.0.1\n": "10.0.0.1",
            "distribution = hash-route\ndestinations = h:1:a, h:2:a\n": "same ring node",
        }
        for text, expected in cases.items():
            with self.subTest(text=text):
                bad = os.path.join(tmp, "bad.conf")
                with open(bad, "w") as f:
                    f.write(text)
                r = subprocess.run([POLYMUR, "--check-config", "--config", bad], capture_output=True, text=True)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(expected, r.stderr)
                if expected.startswith(":"):
                    self.assertIn(bad + expected, r.stderr)

    def test_sighup_applies_destination_changes_without_loss_and_refuses_a_bad_file(self):
        a, b = self.sink(), self.sink()
        conf = os.path.join(temp_dir(self, "polymur-reload-"), "polymur.conf")
        with open(conf, "w") as f:
            f.write("destinations = %s\n" % a.address)
        relay = self.relay("--config=" + conf)
        sent, stop = [], threading.Event()

        def stream():
            with socket.create_connection(("127.0.0.1", relay.port)) as s:
                i = 0
                while not stop.is_set():
                    batch = numbered("hup", i, 100)
                    s.sendall(("\n".join(batch) + "\n").encode())
                    sent.extend(batch)
                    i += 100
                    time.sleep(0.005)

        t = threading.Thread(target=stream)
        t.start()
        try:
            time.sleep(0.3)
            with open(conf, "w") as f:
                f.write("destinations = %s, %s\n" % (a.address, b.address))
            relay.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: b.address in relay.admin("getdest"), 5, message="b added by the reload")
            wait_until(lambda: b.line_count() > 0, 5, message="b receives")
            with open(conf, "w") as f:
                f.write("destinations = %s\nworkers = lots\n" % a.address)
            relay.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: "reload refused" in relay.log(), 5)
            time.sleep(0.3)
        finally:
            stop.set()
            t.join()
        self.assertIn(b.address, relay.admin("getdest"), "the running configuration was kept")
        wait_until(lambda: a.line_count() >= len(sent), 10)
        self.assertEqual(sorted(a.lines()), sorted(sent))
        self.assertIn("reload done: 1 destinations added, 0 removed", relay.log())
        # and removal through the file
        with open(conf, "w") as f:
            f.write("destinations = %s\n" % a.address)
        relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: b.address not in relay.stats()["destinations"], 10, message="b removed by the reload")

    def test_self_metrics_go_through_the_relays_own_routing(self):
        a = self.sink()
        relay = self.relay("--self-metrics-interval=1", "--self-metrics-prefix=test.relay", destinations=[a.address])
        send_lines(relay.port, numbered("sm", 0, 500))
        wait_until(lambda: any(l.startswith("test.relay.metricsReceived 5") for l in a.lines()), 10,
                   message="metricsReceived reported")
        names = {l.split()[0] for l in a.lines() if l.startswith("test.relay.")}
        dest = a.address.replace(".", "_").replace(":", "_")
        for expected in ["metricsReceived", "metricsSent", "metricsQueued", "metricsDropped", "metricsInvalid",
                         "connections", "destinations.%s.sent" % dest, "destinations.%s.queued" % dest,
                         "destinations.%s.dropped" % dest]:
            self.assertIn("test.relay." + expected, names)

    def test_self_metrics_default_prefix_and_off_switch(self):
        a = self.sink()
        relay = self.relay("--self-metrics-interval=1", destinations=[a.address])
        short = socket.gethostname().split(".")[0].replace(".", "_")
        wait_until(lambda: any(l.startswith("carbon.relays.%s.metricsReceived " % short) for l in a.lines()), 10)
        b = self.sink()
        self.relay("--self-metrics-interval=0", destinations=[b.address])
        time.sleep(1.5)
        self.assertEqual(b.lines(), [])

    def test_metrics_flush_is_polymurs_name_for_the_interval(self):
        a = self.sink()
        self.relay("-metrics-flush=1", "--self-metrics-prefix=flush", destinations=[a.address])
        wait_until(lambda: any(l.startswith("flush.metricsReceived ") for l in a.lines()), 10)

    def test_journal_lines_carry_syslog_priorities(self):
        relay = self.relay(start=False)
        st = os.stat(relay.log_path) if os.path.exists(relay.log_path) else None
        open(relay.log_path, "ab").close()
        st = os.stat(relay.log_path)
        relay.env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        relay.start()
        relay.admin("putdest nonsense")
        relay.stop()
        lines = relay.log().splitlines()
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"^<[0-7]>")
        self.assertTrue(any(l.startswith("<5>supervisor: ") for l in lines))


if __name__ == "__main__":
    unittest.main()
