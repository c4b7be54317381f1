"""The same traffic through carbon-c-relay and through polymur, with the same rules file, to the same kind of sinks:
each sink receives the same multiset of lines from both (rewrites feeding later matches, stop, blackhole, validate,
replication, overlapping clusters, any_of and failover).

carbon-c-relay (Debian's package) is the oracle: it is run, never read. Skipped when it is not installed.
"""
import os
import shutil
import subprocess
import tempfile
import unittest
from collections import Counter

from harness import RelayTestCase, daemon_port, listening_ports, send_lines, terminate, wait_until

RELAY = "/usr/bin/carbon-c-relay"
SINKS = 6

RULE_FILES = {
    "rewrites_stop_blackhole": """
cluster fw forward {s0};
cluster other forward {s1};
rewrite ^app\\.([a-z]+)\\.(.*)$ into svc.\\1.\\2;
match ^svc\\.web\\. send to fw stop;
rewrite ^svc\\.(db)\\.(.*) into \\^1.\\_2;
match ^DB\\. send to other;
match ^sys\\. send to blackhole;
match * send to fw other;
""",
    "replication_overlap": """
cluster hashed carbon_ch replication 2 {s0}=a {s1}=b {s2}=c;
cluster all forward {s0}=a {s3}=3;
cluster j jump_fnv1a_ch replication 2 {s4}=1 {s5}=2 {s3}=3;
match ^a send to hashed;
match ^a\\.b send to all j stop;
match * send to j;
""",
    "any_of_failover_validate": """
cluster any any_of {s0} {s1} {s2};
cluster fo failover {s3} {s4};
cluster last forward {s5};
match ^x validate ^[0-9]+.[0-9]+$ else drop send to any;
rewrite ^(y)\\.(.*)$ into z.\\.2;
match ^z send to fo last stop;
match * send to fo;
""",
}


def traffic():
    lines = []
    for i in range(400):
        for prefix in ("app.web", "app.db", "app.cache", "sys.cpu", "a.b", "a.c", "x", "y.host", "other"):
            value = "1.5" if prefix == "x" and i % 3 == 0 else str(i)
            lines.append("%s.m%d.Upper_%d %s 1700000000" % (prefix, i, i % 7, value))
        lines.append("y.dotted.name.%d %d 1700000000" % (i, i))
    return lines


class RulesDifferential(RelayTestCase):
    def setUp(self):
        if not os.path.exists(RELAY):
            self.skipTest("carbon-c-relay is not installed")
        self.dir = tempfile.mkdtemp(prefix="polymur-rules-diff-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def carbon_c_relay(self, rules):
        port = daemon_port()  # carbon-c-relay cannot bind port 0 and say which it got
        log = open(os.path.join(self.dir, "carbon-c-relay.log"), "ab")
        self.addCleanup(log.close)
        proc = subprocess.Popen([RELAY, "-f", rules, "-p", str(port), "-w", "1", "-s", "-b", "100"],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.addCleanup(terminate, proc)

        def up():
            with open(os.path.join(self.dir, "carbon-c-relay.log"), "rb") as f:
                text = f.read().decode("utf-8", "replace")
            if proc.poll() is not None:
                raise AssertionError("carbon-c-relay exited: " + text)
            # Its own listening socket: a port something else answers on is not carbon-c-relay.
            return "startup sequence complete" in text and port in listening_ports(proc.pid)
        wait_until(up, 10, message="carbon-c-relay listening")
        return port

    def write(self, name, template, sinks):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(template.format(**{"s%d" % i: s.address for i, s in enumerate(sinks)}))
        return path

    def settle(self, groups):
        """Waits until every sink of both relays stopped receiving and both got as many lines."""
        last = [None]

        def quiet():
            counts = [tuple(s.line_count() for s in g) for g in groups]
            total = [sum(c) for c in counts]
            done = counts == last[0] and total[0] == total[1] and total[0] > 0
            last[0] = counts
            return done
        try:
            wait_until(quiet, 30, interval=1.0, message="both relays delivered the same number of lines")
        except AssertionError as e:
            raise AssertionError("%s: polymur's sinks %s, carbon-c-relay's %s" % (e, last[0][0], last[0][1]))

    def check(self, name):
        ours = [self.sink() for _ in range(SINKS)]
        theirs = [self.sink() for _ in range(SINKS)]
        relay = self.relay("--rules", self.write(name + ".polymur.conf", RULE_FILES[name], ours))
        oracle = self.carbon_c_relay(self.write(name + ".c.conf", RULE_FILES[name], theirs))
        lines = traffic()
        send_lines(relay.port, lines)
        send_lines(oracle, lines)
        self.settle([ours, theirs])
        for i in range(SINKS):
            got, want = Counter(ours[i].lines()), Counter(theirs[i].lines())
            self.assertEqual(got, want, "%s: sink s%d: only polymur: %s; only carbon-c-relay: %s" % (
                name, i, list((got - want).items())[:5], list((want - got).items())[:5]))
        self.assertGreater(sum(s.line_count() for s in ours), len(lines) // 2)
        return relay

    def test_rewrites_feeding_matches_stop_and_blackhole(self):
        relay = self.check("rewrites_stop_blackhole")
        self.assertEqual(relay.stats()["blackholed"], 400)

    def test_replication_and_overlapping_clusters(self):
        self.check("replication_overlap")

    def test_any_of_failover_and_validate(self):
        relay = self.check("any_of_failover_validate")
        # x lines whose value fails validate are not sent to `any`; the rule has clusters and no stop, so they go on
        # to `match *` (carbon-c-relay as run), and nothing is dropped.
        self.assertEqual(relay.stats()["blackholed"], 0)


if __name__ == "__main__":
    unittest.main()
