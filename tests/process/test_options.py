"""Polymur-compatible flags, environment and config file, through the real binary."""
import os
import subprocess
import unittest

from harness import POLYMUR, Polymur, Sink, daemon_port, listening, send_lines, temp_dir, wait_until


class OptionsTest(unittest.TestCase):
    def test_help_lists_every_option_with_its_default(self):
        out = subprocess.run([POLYMUR, "--help"], capture_output=True, text=True, check=True).stdout
        for option, default in [("listen-addr", "0.0.0.0:2003"), ("api-addr", "localhost:2030"), ("destinations", ""),
                                ("distribution", "broadcast"), ("queue-cap", "4000000"),
                                ("workers", "0"), ("state-dir", "/var/lib/polymur"), ("reconnect-interval", "10"),
                                ("max-line-length", "16384"), ("idle-timeout", "600"), ("linger-ms", "5")]:
            self.assertRegex(out, r"--%s arg \(=%s\)" % (option, default) if default else r"--%s arg" % option)
        self.assertIn("--console-out [=arg(=1)] (=0)", out)
        self.assertIn("--config", out)
        self.assertIn("--admin-socket", out)

    def test_unknown_option_and_bad_value_fail_clearly(self):
        r = subprocess.run([POLYMUR, "--no-such-option"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no-such-option", r.stderr)
        r = subprocess.run([POLYMUR, "-queue-cap=lots"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("queue-cap", r.stderr)
        r = subprocess.run([POLYMUR, "-distribution=roundrobin"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("roundrobin", r.stderr)
        r = subprocess.run([POLYMUR, "--linger-ms=101"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--linger-ms must be at most 100", r.stderr)

    def test_polymur_single_dash_flags_work(self):
        sink = Sink().start()
        port, api = daemon_port(), daemon_port()  # a process of its own, without the harness reading its log
        state = temp_dir(self, "polymur-opt-")
        proc = subprocess.Popen([POLYMUR, "-listen-addr=127.0.0.1:%d" % port, "-api-addr=127.0.0.1:%d" % api,
                                 "-destinations=%s" % sink.address, "-distribution=broadcast", "-queue-cap=5000",
                                 "-state-dir=" + state, "-workers=1"],
                                stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            wait_until(lambda: listening(api), 10, message="admin port")
            send_lines(port, ["dash.one 1 1700000000"])
            wait_until(lambda: sink.lines() == ["dash.one 1 1700000000"], 10, message="line at sink")
        finally:
            proc.terminate()
            proc.wait(10)
            sink.stop()

    def test_command_line_beats_environment_beats_file(self):
        # Distinct ports known beforehand, to tell which source won: below the ephemeral range (daemon_port).
        ports = {name: daemon_port() for name in ("file", "env", "cli", "api_file", "api_env")}
        tmp = temp_dir(self, "polymur-opt-")
        config = os.path.join(tmp, "polymur.conf")
        with open(config, "w") as f:
            f.write("# comment\nlisten-addr = 127.0.0.1:%d\napi-addr = 127.0.0.1:%d\nworkers = 1\n"
                    "state-dir = %s\n" % (ports["file"], ports["api_file"], tmp))
        env = dict(os.environ, POLYMUR_CONFIG=config, POLYMUR_LISTEN_ADDR="127.0.0.1:%d" % ports["env"])

        def run(args, env_over):
            proc = subprocess.Popen([POLYMUR] + args, env=dict(env, **env_over), stderr=subprocess.DEVNULL)
            return proc

        # file only for api-addr; env beats file for listen-addr
        proc = run([], {})
        try:
            wait_until(lambda: listening(ports["api_file"]), 10, message="api from file")
            wait_until(lambda: listening(ports["env"]), 5, message="listen from env")
            self.assertFalse(listening(ports["file"]))
        finally:
            proc.terminate()
            proc.wait(10)
        # command line beats both
        proc = run(["--listen-addr=127.0.0.1:%d" % ports["cli"]], {"POLYMUR_API_ADDR": "127.0.0.1:%d" % ports["api_env"]})
        try:
            wait_until(lambda: listening(ports["api_env"]), 10, message="api from env")
            wait_until(lambda: listening(ports["cli"]), 5, message="listen from command line")
            self.assertFalse(listening(ports["env"]))
            self.assertFalse(listening(ports["api_file"]))
        finally:
            proc.terminate()
            proc.wait(10)

    def test_admin_beyond_loopback_is_warned_about(self):
        relay = Polymur(workers=1)
        relay.args = [a if not a.startswith("--api-addr") else "--api-addr=0.0.0.0:%d" % relay.api_port for a in relay.args]
        try:
            relay.start()
            self.assertIn("listening beyond loopback", relay.log())
        finally:
            relay.cleanup()

    def test_default_admin_address_is_loopback(self):
        out = subprocess.run([POLYMUR, "--help"], capture_output=True, text=True, check=True).stdout
        self.assertIn("--api-addr arg (=localhost:2030)", out)


if __name__ == "__main__":
    unittest.main()
