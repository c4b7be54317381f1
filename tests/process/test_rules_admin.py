"""The admin protocol and --rules clusters: putdest DEST to CLUSTER, deldest DEST from CLUSTER, getdest's
clusters, on the running relay with real sockets.

Placement after a change is checked against carbon-c-relay 3.7.3 (`carbon-c-relay -t`, Debian's package, run as
an oracle) on the rules file with the change written into it; the change outlives a restart; a rules file
changed under a runtime change is said and the file wins; a member taken out of every cluster delivers its
queue before it goes; bad commands get an error and change nothing.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import RelayTestCase, numbered, send_lines, wait_until

CARBON_C_RELAY = "/usr/bin/carbon-c-relay"


def oracle_placement(rules_text, names):
    """name -> set of host:port, as carbon-c-relay -t routes each name by `rules_text`."""
    with tempfile.TemporaryDirectory(prefix="polymur-oracle-") as d:
        path = os.path.join(d, "rules.conf")
        with open(path, "w") as f:
            f.write(rules_text)
        out = subprocess.run([CARBON_C_RELAY, "-t", "-f", path], input="\n".join(names) + "\n",
                             capture_output=True, text=True, timeout=60).stdout
    placement, name = {}, None
    for line in out.splitlines():
        m = re.match(r"^    \* -> (\S+)$", line)
        if m:
            name = m.group(1)
            placement.setdefault(name, set())
        elif name is not None and re.match(r"^        \S+:\d+$", line):
            placement[name].add(line.strip())
    return placement


class RulesAdmin(RelayTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="polymur-rules-admin-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write_rules(self, text):
        path = os.path.join(self.dir, "rules.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def getdest(self, relay):
        return json.loads(relay.admin("getdest"))

    def assert_placement(self, sinks, rules_text, names):
        """Every name arrives exactly at the sinks carbon-c-relay -t names for it, once."""
        want = oracle_placement(rules_text, names)
        self.assertEqual(sorted(want), sorted(names), "carbon-c-relay -t answered for every name")
        total = sum(len(v) for v in want.values())
        wait_until(lambda: sum(s.line_count() for s in sinks.values()) >= total, 30,
                   message="%d lines at the sinks" % total)
        got = {}
        for address, sink in sinks.items():
            for line in sink.lines():
                got.setdefault(line.split(" ")[0], []).append(address)
        for name in names:
            self.assertEqual(sorted(got.get(name, [])), sorted(want[name]), name)

    def clear(self, sinks):
        for s in sinks.values():
            wait_until(s.quiescent, 10, message="sink quiet")
        for s in sinks.values():
            with s._lock:
                s._data.clear()

    @unittest.skipUnless(os.path.exists(CARBON_C_RELAY), "carbon-c-relay is not installed")
    def test_putdest_to_cluster_rehashes_like_the_file_and_outlives_a_restart(self):
        a, b, x = self.sink(), self.sink(), self.sink()
        sinks = {s.address: s for s in (a, b, x)}
        # carbon_ch places by host and instance (the port takes no part): each member has its instance.
        base = "cluster c carbon_ch %s=a %s=b;\nmatch * send to c;\n"
        rules = self.write_rules(base % (a.address, b.address))
        relay = self.relay("--rules", rules)

        self.assertEqual(relay.admin("putdest %s:x to c" % x.address),
                         "Registered destination: %s:x in cluster c\n" % x.address)
        members = [a.address + ":a", b.address + ":b", x.address + ":x"]
        dest = self.getdest(relay)
        self.assertEqual(dest["clusters"]["c"], {"type": "carbon_ch", "members": members})
        self.assertIn(x.address + ":x", dest["registered"])
        with_x = "cluster c carbon_ch %s=a %s=b %s=x;\nmatch * send to c;\n" % (a.address, b.address, x.address)
        names = ["m.%d" % i for i in range(400)]
        send_lines(relay.port, ["%s 1 1700000000" % n for n in names])
        self.assert_placement(sinks, with_x, names)
        self.assertGreater(x.line_count(), 0, "the new member takes its share")

        # The change is in the state directory and survives a restart.
        with open(os.path.join(relay.state_dir, "runtime-clusters")) as f:
            self.assertIn("cluster c now " + " ".join(members), f.read())
        relay.stop()
        self.clear(sinks)
        relay.start()
        self.assertEqual(self.getdest(relay)["clusters"]["c"]["members"], members)
        names = ["after.restart.%d" % i for i in range(300)]
        send_lines(relay.port, ["%s 1 1700000000" % n for n in names])
        self.assert_placement(sinks, with_x, names)

        # deldest ... from: placement is the file's again, x goes once its queue is delivered, and that persists.
        self.clear(sinks)
        reply = relay.admin("deldest %s from c" % x.address)
        self.assertTrue(reply.startswith("Unregistered destination: %s from cluster c\n" % x.address), reply)
        wait_until(lambda: x.address + ":x" not in self.getdest(relay)["registered"], 20, message="x unregistered")
        names = ["after.deldest.%d" % i for i in range(300)]
        send_lines(relay.port, ["%s 1 1700000000" % n for n in names])
        self.assert_placement(sinks, base % (a.address, b.address), names)
        relay.stop()
        relay.start()
        self.assertEqual(self.getdest(relay)["clusters"]["c"]["members"], [a.address + ":a", b.address + ":b"])
        self.assertNotIn(x.address + ":x", self.getdest(relay)["registered"])

    def test_a_rules_file_changed_under_a_runtime_change_wins_and_says_so(self):
        a, b, x, d = self.sink(), self.sink(), self.sink(), self.sink()
        rules = self.write_rules("cluster c forward %s;\ncluster e forward %s;\nmatch * send to c e;\n"
                                 % (a.address, b.address))
        relay = self.relay("--rules", rules)
        self.assertTrue(relay.admin("putdest %s to c" % x.address).startswith("Registered destination"))
        self.assertTrue(relay.admin("putdest %s to e" % x.address).startswith("Registered destination"))
        relay.stop()
        # c changed in the file since; e did not.
        self.write_rules("cluster c forward %s %s;\ncluster e forward %s;\nmatch * send to c e;\n"
                         % (a.address, d.address, b.address))
        relay.start()
        clusters = self.getdest(relay)["clusters"]
        self.assertEqual(clusters["c"]["members"], [a.address, d.address])
        self.assertEqual(clusters["e"]["members"], [b.address, x.address])
        self.assertRegex(relay.log(), r"cluster c: the rules file changed its members since the runtime changes")
        send_lines(relay.port, ["one 1 1700000000"])
        wait_until(lambda: all(s.line_count() == 1 for s in (a, b, x, d)), 20, message="one copy at each")

    def test_a_member_leaving_every_cluster_delivers_its_queue_first(self):
        a, x = self.sink(), self.sink()
        x.stop()  # x is down: its lines queue
        rules = self.write_rules("cluster f forward %s %s;\nmatch * send to f;\n" % (a.address, x.address))
        relay = self.relay("--rules", rules)
        send_lines(relay.port, numbered("queued", 0, 200))
        wait_until(lambda: a.line_count() == 200, 20, message="a has its copies")
        wait_until(lambda: relay.stats()["destinations"][x.address]["queued"] == 200, 20, message="200 queued for x")
        reply = relay.admin("deldest %s from f" % x.address)
        self.assertIn("in no cluster now; it is unregistered once its 200 queued lines are delivered", reply)
        self.assertEqual(self.getdest(relay)["draining"], [x.address])
        self.assertEqual(self.getdest(relay)["clusters"]["f"]["members"], [a.address])
        send_lines(relay.port, numbered("later", 0, 50))  # only a gets these
        wait_until(lambda: a.line_count() == 250, 20, message="a has the later lines")
        x.start()
        wait_until(lambda: x.address not in self.getdest(relay)["registered"], 30, message="x drained and removed")
        self.assertEqual(sorted(x.lines()), sorted(numbered("queued", 0, 200)))
        self.assertEqual(self.getdest(relay)["draining"], [])

    def test_bad_cluster_commands_get_a_clear_error_and_change_nothing(self):
        a, b, x, s = self.sink(), self.sink(), self.sink(), self.sink()
        rules = self.write_rules("cluster c carbon_ch %s=a %s=b;\ncluster solo any_of %s;\nmatch * send to c;\n"
                                 % (a.address, b.address, s.address))
        relay = self.relay("--rules", rules)
        # Taken once every output has connected, so an output connecting during the commands below cannot change it.
        wait_until(lambda: len(self.getdest(relay)["active"]) == 3, 30, message="every output connected")
        before = relay.admin("getdest")
        cases = {
            "putdest %s to nosuch" % x.address: "error: no cluster nosuch in the rules file (clusters: c, solo)\n",
            "putdest %s from c" % x.address: "error: putdest takes 'to CLUSTER', not 'from'\n",
            "putdest %s to" % x.address: "error: putdest to needs a cluster name\n",
            "putdest %s to c extra" % x.address: "error: putdest takes one destination\n",
            "putdest %s" % x.address: "error: with --rules, putdest names the cluster: putdest %s to CLUSTER "
                                      "(clusters: c, solo)\n" % x.address,
            "putdest %s to c" % a.address: "error: %s is already a member of cluster c\n" % a.address,
            "deldest %s from c" % x.address: "error: %s is not a member of cluster c\n" % x.address,
            "deldest %s" % x.address: "error: %s is not a member of any cluster\n" % x.address,
            "deldest %s from solo" % s.address: "error: %s is the only member of cluster solo; a cluster needs at "
                                                "least one (putdest another first)\n" % s.address,
            "deldest %s" % s.address: "error: %s is the only member of cluster solo; a cluster needs at least one "
                                      "(putdest another first)\n" % s.address,
            "putdest %s to solo" % a.address: "error: %s is a member of cluster c; carbon-c-relay refuses a member of "
                                              "an any_of or failover cluster that an earlier cluster names\n" % a.address,
            "putdest pickle://%s to c" % x.address: "error: pickle://%s: cluster members are host:port[:instance] (a "
                                                    "rules file's members; pickle://, tls:// and https:// are "
                                                    "--destinations forms)\n" % x.address,
        }
        for command, reply in cases.items():
            self.assertEqual(relay.admin(command), reply, command)
        self.assertTrue(relay.admin("putdest nonsense:port to c").startswith("error: "))
        self.assertTrue(relay.admin("putdest 127.0.0.1:%d to c" % relay.port).startswith("error: destination "))
        self.assertEqual(relay.admin("getdest"), before)
        self.assertFalse(os.path.exists(os.path.join(relay.state_dir, "runtime-clusters")))
        counted = wait_until(lambda: re.findall(r"requests answered with an error \((\d+) since the start\)",
                                                relay.log()), 30, message="the errors counted in the admin report")
        # Every command above, and the harness's readiness probe (a connection closed without a command).
        self.assertEqual(counted[-1], str(len(cases) + 3))

    def test_without_rules_the_plain_forms_are_unchanged_and_clusters_are_refused(self):
        a, b = self.sink(), self.sink()
        relay = self.relay(destinations=[a.address])
        self.assertEqual(relay.admin("putdest %s to c" % b.address),
                         "error: putdest ... to c: clusters come from a rules file (--rules); this relay has one "
                         "implicit cluster: putdest <destination>\n")
        self.assertNotIn("clusters", self.getdest(relay))
        self.assertEqual(relay.admin("putdest %s" % b.address), "Registered destination: %s\n" % b.address)
        self.assertEqual(relay.admin("deldest %s" % b.address), "Unregistered destination: %s\n" % b.address)


if __name__ == "__main__":
    unittest.main()
