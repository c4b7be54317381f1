"""--rules through the running relay: carbon-c-relay's rule language on real sockets.

Every test writes a rules file naming sinks on 127.0.0.1, sends lines and checks that each sink receives
exactly the lines the rules give it (rewrites, stop, several copies, blackhole, validate), and that a host in
several clusters is one destination.
"""
import glob
import os
import re
import signal
import unittest

from harness import TIME_FACTOR, RelayTestCase, send_lines, wait_until


def write_rules(test, text):
    path = os.path.join(test.rules_dir, "rules.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


class RulesCase(RelayTestCase):
    def setUp(self):
        import tempfile
        self._tmp = tempfile.TemporaryDirectory(prefix="polymur-rules-")
        self.addCleanup(self._tmp.cleanup)
        self.rules_dir = self._tmp.name

    def names(self, sink):
        return sorted(line.split(" ")[0] for line in sink.lines())


class RulesRelay(RulesCase):
    def test_rewrite_stop_copies_blackhole_and_validate(self):
        a, b, c = self.sink(), self.sink(), self.sink()
        rules = write_rules(self, f"""
cluster ca forward {a.address};
cluster cb forward {b.address};
cluster cab forward {a.address} {b.address};
cluster cc forward {c.address};
rewrite ^old\\.(.*) into new.\\1;
match ^new\\. send to ca stop;
match ^drop\\. send to blackhole;
match ^checked\\. validate ^[0-9]+.[0-9]+$ else drop send to cc stop;
match ^both\\. send to cab;
match ^both\\. send to cc stop;
match * send to cb;
""")
        relay = self.relay("--rules", rules)
        lines = ["old.x 1 1700000000", "new.y 2 1700000000", "drop.z 3 1700000000", "both.w 4 1700000000",
                 "other.v 5 1700000000", "checked.ok 6 1700000000", "checked.bad 6.5 1700000000"]
        send_lines(relay.port, lines)
        wait_until(lambda: a.line_count() >= 3 and b.line_count() >= 2 and c.line_count() >= 2, 20,
                   message="lines at the sinks")
        wait_until(lambda: relay.stats()["blackholed"] == 2, 10, message="blackholed counted")
        # The rewritten name is what is forwarded; stop ends the lookup; a blackhole stops everything.
        self.assertEqual(self.names(a), ["both.w", "new.x", "new.y"])
        self.assertEqual(self.names(b), ["both.w", "other.v"])
        self.assertEqual(self.names(c), ["both.w", "checked.ok"])
        self.assertIn("new.x 1 1700000000", a.lines())
        self.assertEqual(relay.stats()["distribution"], "rules")

    def test_a_host_in_two_clusters_is_one_destination(self):
        a, b = self.sink(), self.sink()
        rules = write_rules(self, f"""
cluster one forward {a.address};
cluster two carbon_ch {a.address} {b.address};
match ^x send to one;
match * send to two;
""")
        relay = self.relay("--rules", rules)
        queues = glob.glob(os.path.join(relay.state_dir, "*.queue"))
        self.assertEqual(len(queues), 2, queues)
        wait_until(lambda: len([t for t in relay.children().values() if "output" in t]) == 2, 10, message="2 outputs")
        send_lines(relay.port, ["x.%d 1 1700000000" % i for i in range(200)])
        # Every x line goes to `one` (a) and to the member of `two` the ring names.
        wait_until(lambda: a.line_count() + b.line_count() >= 400, 20, message="400 copies")
        self.assertEqual(a.line_count() + b.line_count(), 400)
        self.assertGreaterEqual(a.line_count(), 200)

    def test_unmatched_lines_are_counted_unroutable(self):
        a = self.sink()
        rules = write_rules(self, f"cluster ca forward {a.address};\nmatch ^keep send to ca;\n")
        relay = self.relay("--rules", rules)
        send_lines(relay.port, ["keep.1 1 1700000000", "lose.1 1 1700000000", "lose.2 1 1700000000"])
        wait_until(lambda: relay.stats()["unroutable"] == 2 and a.line_count() == 1, 20, message="unroutable")
        self.assertEqual(a.lines(), ["keep.1 1 1700000000"])

    def test_a_reload_names_a_changed_rules_file_and_keeps_routing_by_the_running_rules(self):
        a, b = self.sink(), self.sink()
        rules = write_rules(self, f"cluster ca forward {a.address};\nmatch * send to ca;\n")
        relay = self.relay("--rules", rules)

        def reload(lines_before, outcome="supervisor: reload done"):
            relay.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: relay.log().count(outcome) > lines_before, 10 * TIME_FACTOR, message=outcome)
            return relay.log()

        log = reload(0)  # the file as read at start: nothing to say
        self.assertNotIn("changed on disk", log)
        self.assertIn("0 other options applied, 0 need a restart", log)
        # Edited: named as needing a restart, and the running table still routes (to a, not b).
        write_rules(self, f"cluster cb forward {b.address};\nmatch * send to cb;\n")
        log = reload(1)
        self.assertIn("supervisor: reload: --rules %s changed on disk; needs a restart to take effect" % rules, log)
        self.assertIn("0 other options applied, 1 need a restart", log)
        send_lines(relay.port, ["after.edit 1 1700000000"])
        wait_until(lambda: a.line_count() == 1, 10 * TIME_FACTOR, message="the line at the running rules' sink")
        # Broken: the reload is refused with the file and line, the relay keeps running on the rules it has.
        write_rules(self, "cluster ca forward;\n")
        log = reload(0, "supervisor: reload refused")
        self.assertRegex(log, r"--rules: %s:1: " % re.escape(rules))
        send_lines(relay.port, ["after.break 1 1700000000"])
        wait_until(lambda: a.line_count() == 2, 10 * TIME_FACTOR, message="still routing after a broken edit")
        self.assertEqual(b.line_count(), 0)
        self.assertIsNone(relay.proc.poll())

    def test_rules_refuse_destinations_and_putdest(self):
        a = self.sink()
        rules = write_rules(self, f"cluster ca forward {a.address};\nmatch * send to ca;\n")
        relay = self.relay("--rules", rules, start=False)
        relay.args.append("--destinations=" + a.address)
        relay.start(wait=False)
        self.assertEqual(relay.proc.wait(20), 2)
        self.assertIn("--rules and --destinations", relay.log())


class RulesFailover(RulesCase):
    """Each cluster type's failover, carbon-c-relay's semantics on polymur's queues: stop a sink, send, and check
    that every line arrives exactly once, where the cluster places it."""

    def start(self, cluster_line, sinks):
        rules = write_rules(self, cluster_line + "\nmatch * send to c;\n")
        return self.relay("--rules", rules, "--failover-after=2")

    def down(self, relay, sink, name=None):
        name = name or sink.address
        wait_until(lambda: relay.stats()["destinations"][name]["in_ring"] is False, 30, message=name + " down")

    def up(self, relay, sink, name=None):
        name = name or sink.address
        wait_until(lambda: relay.stats()["destinations"][name]["in_ring"] is True, 30, message=name + " up")

    def exactly_once(self, sinks, lines):
        want = sorted(lines)
        wait_until(lambda: sum(s.line_count() for s in sinks) >= len(want), 30, message="every line")
        got = sorted(line for s in sinks for line in s.lines())
        self.assertEqual(got, want)

    def restart(self, sink):
        sink.stop()
        again = self.sink(port=sink.port)
        return again

    def test_failover_moves_the_queue_to_the_next_member(self):
        a, b = self.sink(), self.sink()
        relay = self.start(f"cluster c failover {a.address} {b.address};", [a, b])
        first = ["f.%d 1 1700000000" % i for i in range(500)]
        send_lines(relay.port, first)
        wait_until(lambda: a.line_count() == 500, 20, message="500 at the first member")
        a.stop()
        # Queued for a while it is still up, then moved to b once it is down.
        queued = ["g.%d 1 1700000000" % i for i in range(500)]
        send_lines(relay.port, queued)
        self.down(relay, a)
        later = ["h.%d 1 1700000000" % i for i in range(500)]
        send_lines(relay.port, later)
        wait_until(lambda: b.line_count() == 1000, 30, message="1000 at the second member")
        self.assertEqual(sorted(b.lines()), sorted(queued + later))
        self.assertEqual(sorted(a.lines()), sorted(first))
        self.assertEqual(relay.stats()["destinations"][a.address]["rerouted"], 500)
        a2 = self.restart(a)
        self.up(relay, a2)
        back = ["i.%d 1 1700000000" % i for i in range(100)]
        send_lines(relay.port, back)
        wait_until(lambda: a2.line_count() == 100, 20, message="the first member takes over again")
        self.assertEqual(sorted(a2.lines()), sorted(back))
        self.assertEqual(b.line_count(), 1000)

    def test_any_of_spreads_a_down_members_share_over_the_others(self):
        a, b, c = self.sink(), self.sink(), self.sink()
        relay = self.start(f"cluster c any_of {a.address} {b.address} {c.address};", [a, b, c])
        a.stop()
        lines = ["m.%d 1 1700000000" % i for i in range(3000)]
        send_lines(relay.port, lines)
        self.down(relay, a)
        self.exactly_once([b, c], lines)
        moved = relay.stats()["destinations"][a.address]["rerouted"]
        self.assertGreater(moved, 500)  # about a third was queued for a
        # a's share went to both others, not all to one.
        self.assertGreater(b.line_count(), 1000 + moved // 4)
        self.assertGreater(c.line_count(), 1000 + moved // 4)

    def test_dynamic_hash_moves_the_queue_along_the_ring(self):
        a, b = self.sink(), self.sink()
        relay = self.start(f"cluster c carbon_ch dynamic {a.address}=a {b.address}=b;", [a, b])
        a.stop()
        lines = ["d.%d 1 1700000000" % i for i in range(1000)]
        send_lines(relay.port, lines)
        self.down(relay, a, a.address + ":a")
        self.exactly_once([b], lines)
        self.assertGreater(relay.stats()["destinations"][a.address + ":a"]["rerouted"], 100)

    def test_plain_hash_and_forward_hold_the_queue_until_the_member_returns(self):
        a, b = self.sink(), self.sink()
        rules = write_rules(self, f"cluster h carbon_ch {a.address}=a {b.address}=b;\ncluster f forward {a.address}=a;\n"
                                  "match ^h send to h stop;\nmatch * send to f;\n")
        relay = self.relay("--rules", rules, "--failover-after=2")
        a.stop()
        hashed = ["h.%d 1 1700000000" % i for i in range(1000)]
        forwarded = ["x.%d 1 1700000000" % i for i in range(100)]
        send_lines(relay.port, hashed + forwarded)
        self.down(relay, a, a.address + ":a")
        more = ["h.more.%d 1 1700000000" % i for i in range(1000)]
        send_lines(relay.port, more)
        wait_until(lambda: relay.stats()["received"] == 2100, 20, message="all received")
        held = relay.stats()["destinations"][a.address + ":a"]["queued"]
        self.assertGreater(held, 500)
        self.assertEqual(relay.stats()["destinations"][a.address + ":a"]["rerouted"], 0)
        a2 = self.restart(a)
        self.exactly_once([a2, b], hashed + forwarded + more)
        self.assertTrue(set(forwarded) <= set(a2.lines()))


if __name__ == "__main__":
    unittest.main()
