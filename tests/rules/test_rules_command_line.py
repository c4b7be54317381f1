#!/usr/bin/env python3
"""--rules on the command line: --check-config accepts a good file, refuses a bad one naming file:line, the relay
refuses --rules beside --destinations, `polymur test` reports the same errors and `polymur lookup --rules` answers
with the destinations of every copy.

usage: test_rules_command_line.py POLYMUR DATA_DIR
"""
import os
import subprocess
import sys
import tempfile
import unittest

POLYMUR = DATA = None


def run(*args, stdin=b""):
    done = subprocess.run([POLYMUR, *args], input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


class RulesCommandLine(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.common = ["--state-dir", os.path.join(self.dir.name, "state"), "--listen-addr", "127.0.0.1:0",
                       "--api-addr", "127.0.0.1:0"]

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_check_config_accepts_a_good_file_and_shows_its_warnings(self):
        path = self.write("good.conf", "cluster x forward useall 127.0.0.1:2003;\nmatch * send to x;\n"
                                       "aggregate ^a every 10 seconds expire after 20 seconds compute sum write to b;\n")
        rc, out, err = run("--check-config", "--rules", path, *self.common)
        self.assertEqual(rc, 0, err)
        self.assertIn("configuration OK", out)
        self.assertIn("good.conf:1: cluster x: useall is accepted", err)
        self.assertNotIn("good.conf:3", err)  # aggregate rules are carried out: nothing to warn about

    def test_check_config_refuses_a_bad_file_naming_file_and_line(self):
        path = self.write("bad.conf", "cluster x forward 127.0.0.1:2003;\n\nmatch ^a send to y;\n")
        rc, out, err = run("--check-config", "--rules", path, *self.common)
        self.assertEqual(rc, 2)
        self.assertIn("--rules: " + path + ":3: unknown cluster 'y'", err)
        path = self.write("regex.conf", "cluster x forward 127.0.0.1:2003;\nmatch (a send to x;\n")
        rc, out, err = run("--check-config", "--rules", path, *self.common)
        self.assertEqual(rc, 2)
        self.assertIn(path + ":2: bad regular expression '(a'", err)
        rc, out, err = run("test", "-f", path)
        self.assertEqual(rc, 1)
        self.assertIn(path + ":2: bad regular expression '(a'", err)

    def test_rules_in_the_config_file(self):
        rules = self.write("r.conf", "cluster x forward 127.0.0.1:2003;\nmatch * send to y;\n")
        config = self.write("polymur.conf", "rules = " + rules + "\n")
        rc, out, err = run("--check-config", "--config", config, *self.common)
        self.assertEqual(rc, 2)
        self.assertIn(rules + ":2: unknown cluster 'y'", err)

    def test_rules_replace_destinations_and_hash_route(self):
        rules = os.path.join(DATA, "basic.conf")
        rc, out, err = run("--check-config", "--rules", rules, "--destinations", "127.0.0.1:2003", *self.common)
        self.assertEqual(rc, 2)
        self.assertIn("--rules and --destinations", err)
        rc, out, err = run("--check-config", "--rules", rules, "--distribution", "hash-route", *self.common)
        self.assertEqual(rc, 2)
        self.assertIn("--rules and --distribution hash-route", err)

    def test_listen_and_statistics_are_named_as_not_applied(self):
        path = self.write("ls.conf", "cluster x forward 127.0.0.1:2003;\n"
                                     "listen type linemode 2003 proto tcp /tmp/s proto unix;\n"
                                     "statistics submit every 10 seconds reset counters after interval send to x stop;\n"
                                     "match * send to x;\n")
        rc, out, err = run("--check-config", "--rules", path, *self.common)
        self.assertEqual(rc, 0, err)
        self.assertIn(path + ":2: listen is not applied: polymur listens where --listen-addr", err)
        self.assertIn("unix sockets are not implemented", err)
        self.assertIn(path + ":3: statistics is not applied: polymur's statistics are its self-metrics", err)
        self.assertIn("its counters are never reset", err)
        self.assertNotIn("broadcast with no destinations", err)

    def test_lookup_with_rules(self):
        path = self.write("l.conf", "cluster x forward 127.0.0.1:2003 127.0.0.1:2004=i;\n"
                                    "cluster y failover 127.0.0.1:2005 127.0.0.1:2006;\n"
                                    "rewrite ^a\\.(.*) into b.\\1;\nmatch ^b send to x;\nmatch * send to y;\n")
        rc, out, err = run("lookup", "--rules", path, stdin=b"a.x 1 2\nzzz\n")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "a.x\t127.0.0.1:2003|127.0.0.1:2004:i|127.0.0.1:2005\nzzz\t127.0.0.1:2005\n")

    def test_polymur_test_routes_names(self):
        path = self.write("t.conf", "cluster x forward 127.0.0.1:2003;\nrewrite ^a\\.(.*) into b.\\^1;\n"
                                    "match ^b send to x stop;\n")
        rc, out, err = run("test", "-f", path, stdin=b"a.x 1 2\nzzz\n")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "rewrite\n    ^a\\.(.*) -> a.x\n    into(b.\\^1) -> b.X\nmatch\n    ^b -> b.X\n"
                              "    forward(x)\n        127.0.0.1:2003\n    stop\nnothing matched zzz\n")
        rc, out, err = run("test")
        self.assertEqual(rc, 2)
        self.assertIn("usage: polymur test -f RULES-FILE", err)


if __name__ == "__main__":
    POLYMUR, DATA = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    unittest.main(argv=sys.argv[:1], verbosity=2)
