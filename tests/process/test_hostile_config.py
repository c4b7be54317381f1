"""Hostile admin lines, addresses and option values (issue 10): each gets a clear error, and a
running relay keeps running, answering and delivering. Inputs live in tests/data/regress/."""
import glob
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import POLYMUR, TIME_FACTOR, RelayTestCase, recv_all, send_lines, wait_until

REGRESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "regress")


def regress_files(folder):
    files = sorted(glob.glob(os.path.join(REGRESS, folder, "*")))
    assert files, "no regression inputs in " + folder
    return files


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_checked(args, env=None, timeout=10):
    """Runs the binary; returns (returncode, stderr, CPU seconds it used). CPU time, not wall-clock time: what
    these tests bound is the work a hostile value causes, which a loaded machine does not change. A hang fails
    the test (after `timeout` wall-clock seconds, times TEST_TIME_FACTOR), not the suite."""
    cpu = children_cpu()  # this test's other children are reaped already: the difference is this run's
    try:
        r = subprocess.run(args, capture_output=True, env=env, timeout=timeout * TIME_FACTOR, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError("%s did not finish within %d s" % (args, timeout * TIME_FACTOR))
    return r.returncode, r.stderr.decode("utf-8", "replace"), children_cpu() - cpu


class HostileConfigTest(RelayTestCase):
    def admin_raw(self, relay, line):
        with socket.create_connection(("127.0.0.1", relay.api_port), timeout=5) as s:
            s.settimeout(10)
            s.sendall(line)
            return recv_all(s).decode("utf-8", "replace")

    def assert_still_running(self, relay, sink, children, tag):
        self.assertIsNone(relay.proc.poll(), "the supervisor exited:\n" + relay.log())
        self.assertEqual(set(relay.children()), set(children), "children died:\n" + relay.log())
        self.assertIn("registered", relay.admin("getdest"))
        line = "still.running.%s 1 1700000000" % tag
        send_lines(relay.port, [line])
        wait_until(lambda: line in sink.lines(), 10, message="a metric delivered after the hostile input")

    def test_hostile_admin_lines_get_an_error_and_the_relay_keeps_running(self):
        sink = self.sink()
        relay = self.relay(destinations=[sink.address], workers=1)
        wait_until(lambda: len(relay.children()) == 2, 10, message="listener and output")
        children = relay.children()
        for path in regress_files("admin"):
            request = read_bytes(path)
            reply = self.admin_raw(relay, request)
            self.assertTrue(reply.startswith("error: "), "%s: %r" % (os.path.basename(path), reply))
            self.assertEqual(reply.count("\n"), 1, reply)
            self.assertNotIn("\x1b", reply)
            self.assertNotIn("\x07", reply)
            self.assert_still_running(relay, sink, children, os.path.basename(path).replace(".", "_"))
        # Nothing of it reached the log, the runtime-destinations file or a process title.
        log = relay.log()
        self.assertNotIn("\x1b", log)
        self.assertNotIn("terminate called", log)
        runtime = os.path.join(relay.state_dir, "runtime-destinations")
        if os.path.exists(runtime):
            self.assertEqual(read_bytes(runtime).count(b"\x1b"), 0)
            self.assertNotIn(b"99999999999999999999", read_bytes(runtime))
        for title in relay.children().values():
            self.assertNotIn("\x1b", title)

    def test_check_config_refuses_every_address_start_would_refuse(self):
        for path in regress_files("config"):
            name = os.path.basename(path)
            for check in (["--check-config"], []):
                tmp = self.tmp_dir()
                code, err, seconds = run_checked([POLYMUR, "--config=" + path, "--state-dir=" + tmp] + check +
                                                 (["--api-addr=127.0.0.1:0", "--listen-addr=127.0.0.1:0"]
                                                  if "addr" not in name else []))
                self.assertEqual(code, 2, "%s %s: exit %s\n%s" % (name, check, code, err))
                self.assertLess(seconds, 5, name)  # CPU seconds
                self.assertIn(path + ":" if "percent" in name else "99999999999999999999", err)
                self.assertNotIn("terminate called", err)
        # The same values from the command line and the environment.
        for option, value in [("listen-addr", "127.0.0.1:99999999999999999999"), ("api-addr", "[::1]:65536"),
                              ("listen-addr", "[::1]x:2003"), ("api-addr", "::1:2030"),
                              ("destinations", "https://gw:99999999999999999999")]:
            code, err, _ = run_checked([POLYMUR, "--check-config", "--%s=%s" % (option, value)])
            self.assertEqual(code, 2, err)
            self.assertIn("address", err)
            env = dict(os.environ, **{"POLYMUR_" + option.upper().replace("-", "_"): value})
            code, err, _ = run_checked([POLYMUR, "--check-config"], env=env)
            self.assertEqual(code, 2, err)

    def tmp_dir(self):
        d = tempfile.mkdtemp(prefix="polymur-hostile-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_percent_placeholders_give_an_error_within_milliseconds(self):
        # Bounded in CPU seconds (run_checked): a placeholder expanded over and over would burn CPU.
        values = ["%value%", "%prefix%", "%canonical_option%", "%original_token%", "%option%", "%%value%%x"]
        for value in values:
            for option in ("workers", "queue-cap", "console-out", "distribution"):
                code, err, seconds = run_checked([POLYMUR, "--check-config", "--%s=%s" % (option, value)], timeout=5)
                if option == "distribution":  # a string option: the value itself is refused by validation
                    self.assertEqual(code, 2, err)
                    continue
                self.assertEqual(code, 2, err)
                self.assertIn(option, err)
                self.assertLess(seconds, 2)
                env = dict(os.environ, **{"POLYMUR_" + option.upper().replace("-", "_"): value})
                code, err, seconds = run_checked([POLYMUR, "--check-config"], env=env, timeout=5)
                self.assertEqual(code, 2, err)
                self.assertLess(seconds, 2)
        code, err, _ = run_checked([POLYMUR, "--check-config", "--%canonical_option%=1"], timeout=5)
        self.assertEqual(code, 2, err)
        code, err, _ = run_checked([POLYMUR, "lookup", "--replication-factor", "%value%"], timeout=5)
        self.assertNotEqual(code, 0, err)

    def test_sighup_with_a_hostile_file_is_refused_and_the_supervisor_keeps_working(self):
        sink = self.sink()
        conf = os.path.join(self.tmp_dir(), "polymur.conf")
        with open(conf, "w") as f:
            f.write("destinations = %s\n" % sink.address)
        relay = self.relay("--config=" + conf, workers=1)
        wait_until(lambda: len(relay.children()) == 2, 10, message="listener and output")
        for path in regress_files("config"):
            children = relay.children()
            with open(path, "rb") as src, open(conf, "wb") as dst:
                dst.write(b"destinations = " + sink.address.encode() + b"\n" + src.read())
            # listen-addr and api-addr also come from the command line here, which beats the file.
            outcome = "reload done" if "addr" in os.path.basename(path) else "reload refused"
            before = relay.log().count(outcome)
            relay.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: relay.log().count(outcome) > before, 5,
                       message="%s: %s" % (os.path.basename(path), outcome))
            started = time.monotonic()
            self.assertIn("registered", relay.admin("getdest"))
            self.assertLess(time.monotonic() - started, 2 * TIME_FACTOR)
            self.assert_still_running(relay, sink, children, os.path.basename(path).replace(".", "_"))
        # A child killed after those reloads is restarted: the supervisor's loop is alive.
        victim = next(pid for pid, title in relay.children().items() if "listener" in title)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: any("listener" in t and pid != victim for pid, t in relay.children().items()), 10,
                   message="listener restarted")


if __name__ == "__main__":
    unittest.main()
