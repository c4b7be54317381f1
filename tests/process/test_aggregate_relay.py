"""Aggregate rules in the running relay: listener workers queue the points, the aggregator process computes the
buckets and writes them back through routing (docs/AGGREGATION.md). Each test sends the same points over four
connections (two listener workers) and wants exactly the expected results at the sink, each bucket once: without
disruption, with a kill -9 of the aggregator while buckets are open (one already emitted, one still open), and
with a full restart of the relay (SIGTERM, start again on the same state directory) at the same moment.
"""
import http.client
import os
import shutil
import signal
import tempfile
import time
import unittest

from harness import TIME_FACTOR, RelayTestCase, send_lines, wait_until
from test_https import gzip_lines

HOSTS = 24
VALUES = 5
EXPIRE = max(4, int(4 * TIME_FACTOR))  # seconds a bucket stays open after it ends; interval 1 s

RULES = """cluster sink forward 127.0.0.1:{port};
aggregate ^in\\.([^.]+)\\.x$
    every 1 seconds expire after {expire} seconds
    compute sum write to agg.\\1.sum
    compute count write to agg.\\1.count
    compute max write to agg.\\1.max
    send to sink stop;
match * send to sink;
"""


# TWO_RULES, then CHANGED_RULES at a restart: "b" changed (min for max), a new rule in front, "agg" the same
# rule written another way.
TWO_RULES = RULES.replace("\naggregate", """
aggregate ^in\\.([^.]+)\\.x$ every 1 seconds expire after {expire} seconds
    compute max write to b.\\1.max send to sink;
aggregate""", 1)
CHANGED_RULES = """# changed
cluster sink forward 127.0.0.1:{port};
aggregate ^in\\.([^.]+)\\.x$ every 1 seconds expire after {expire} seconds compute cnt write to new.\\1 send to sink;
aggregate ^in\\.([^.]+)\\.x$ every 1 seconds expire after {expire} seconds
    compute min write to b.\\1.max send to sink;
aggregate ^in\\.([^.]+)\\.x$ every 1 seconds expire after {expire} seconds compute sum write to agg.\\1.sum
    compute cnt write to agg.\\1.count compute maximum write to agg.\\1.max send to sink stop;
match * send to sink;
"""


def points(early, late):
    """Points of two buckets per host: `early` (emitted soon), `late` (open EXPIRE seconds more)."""
    lines, expected = [], {}
    for h in range(HOSTS):
        for ts in (early, late):
            values = [h * 10 + j + (ts % 7) for j in range(VALUES)]
            lines += ["in.h%d.x %d %d" % (h, v, ts) for v in values]
            end = ts + 1  # timestamp at end of bucket (the default)
            expected["agg.h%d.sum %f %d" % (h, sum(values), end)] = ts
            expected["agg.h%d.count %d %d" % (h, len(values), end)] = ts
            expected["agg.h%d.max %f %d" % (h, max(values), end)] = ts
    return lines, expected


class AggregateRelayTest(RelayTestCase):
    def start(self, extra_env=None, rules=RULES):
        self.sink_ = self.sink()
        self.rules_path = os.path.join(self.make_dir(), "rules.conf")
        self.write_rules(rules)
        return self.relay("--rules=" + self.rules_path, workers=2, extra_env=extra_env)

    def write_rules(self, rules):
        with open(self.rules_path, "w") as f:
            f.write(rules.format(port=self.sink_.port, expire=EXPIRE))

    def make_dir(self):
        d = tempfile.mkdtemp(prefix="aggregate-test-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def aggregates(self):
        return [line for line in self.sink_.lines() if line.startswith("agg.")]

    def aggregator_pid(self, relay):
        return relay.child_pid("aggregator")

    def run_scenario(self, disrupt, extra_env=None, crashes=False, rules=RULES, computes=3):
        relay = self.start(extra_env, rules)
        wait_until(lambda: self.aggregator_pid(relay), 10, message="the aggregator process")
        t0 = int(time.time())
        early, late = t0 - EXPIRE + 2, t0 + 1
        lines, expected = points(early, late)
        send_lines(relay.port, lines, connections=4)
        early_results = computes * HOSTS
        # Every point is in a bucket, and the early buckets are out: the late ones are open now.
        if crashes:  # it dies as it records the early buckets, before their results are out
            wait_until(lambda: relay.stats()["aggregator"]["deaths"] == 1, 10 + EXPIRE, message="the crash")
            return self.check_results(relay, expected)
        wait_until(lambda: relay.stats()["aggregator"]["points"] >= computes * len(lines), 10, message="points taken")
        wait_until(lambda: relay.stats()["aggregator"]["buckets_emitted"] >= early_results, 10 + EXPIRE,
                   message="the early buckets emitted")
        stats = relay.stats()["aggregator"]
        self.assertEqual(stats["buckets_emitted"], early_results, "a late bucket came out early: the test's timing")
        self.assertGreater(stats["queued"], 0, "the open buckets' points must still be queued")
        if disrupt:
            disrupt(relay)
        self.early, self.late = early, late
        return self.check_results(relay, expected)

    def check_results(self, relay, expected):
        wait_until(lambda: len(self.aggregates()) >= len(expected), 20 + 2 * EXPIRE, message="every result")
        # Queue committed once the last bucket is out; anything emitted twice would be there by now.
        wait_until(lambda: relay.stats()["aggregator"]["queued"] == 0, 10, message="the queue committed")
        wait_until(self.sink_.quiescent, 10, message="the sink quiet")
        got = self.aggregates()
        duplicates = sorted({line for line in got if got.count(line) > 1})
        self.assertEqual(duplicates, [], "buckets emitted twice")
        self.assertEqual(sorted(got), sorted(expected), "results differ from the expected buckets")
        # The points themselves are not forwarded (the rule ends with stop).
        self.assertFalse([line for line in self.sink_.lines() if line.startswith("in.")])
        return relay

    def test_buckets_computed_across_listeners(self):
        relay = self.run_scenario(None)
        stats = relay.stats()
        self.assertEqual(stats["aggregator"]["late"], 0)
        self.assertEqual(stats["aggregator"]["deaths"], 0)
        self.assertEqual(stats["unroutable"], 0, "points an aggregate took are not unroutable")

    def test_kill_9_of_the_aggregator_mid_bucket_loses_nothing_and_repeats_nothing(self):
        def kill(relay):
            pid = self.aggregator_pid(relay)
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: self.aggregator_pid(relay) not in (None, pid), 10, message="aggregator restarted")

        relay = self.run_scenario(kill)
        stats = relay.stats()["aggregator"]
        self.assertEqual(stats["deaths"], 1)
        self.assertGreater(stats["replayed"], 0, "the restarted aggregator read the emitted buckets' points again")

    def test_restart_of_the_relay_mid_bucket_loses_nothing_and_repeats_nothing(self):
        def restart(relay):
            self.assertEqual(relay.stop(), 0)
            relay.start()

        relay = self.run_scenario(restart)
        self.assertGreater(relay.stats()["aggregator"]["replayed"], 0)

    def test_restart_with_changed_rules_restores_the_unchanged_rule_and_discards_the_changed_ones(self):
        # Restarted with other rules: a new aggregate rule in front (the unchanged rule's index moves from 1 to 2)
        # and the other rule changed (min instead of max). The unchanged rule's open buckets are restored (by its
        # fingerprint, not its place) and emitted once; the changed rule's queued points are discarded and counted,
        # and neither it nor the new rule computes anything from them.
        def restart(relay):
            queued = relay.stats()["aggregator"]["queued"]
            self.assertEqual(relay.stop(), 0)
            self.write_rules(CHANGED_RULES)
            relay.start()
            self.queued_at_stop = queued

        relay = self.run_scenario(restart, rules=TWO_RULES, computes=4)
        stats = relay.stats()["aggregator"]
        # Every queued point of the changed rule: the open bucket's at least, the emitted one's too if still queued.
        self.assertGreaterEqual(stats["discarded"], HOSTS * VALUES)
        self.assertLessEqual(stats["discarded"], 2 * HOSTS * VALUES)
        self.assertLess(stats["discarded"], self.queued_at_stop)
        log = relay.log()
        self.assertEqual(log.count("aggregator: the aggregate rules changed since the last run: 1 of its 2 rules are "
                                   "gone or changed, 2 of the 3 now are new or changed"), 1, log)
        self.assertEqual(log.count("aggregator: discarded %d queued points of aggregate rules that changed"
                                   % stats["discarded"]), 1, log)
        others = sorted(line for line in self.sink_.lines() if line.startswith(("b.", "new.")))
        expected = sorted("b.h%d.max %f %d" % (h, max(h * 10 + j + (self.early % 7) for j in range(VALUES)),
                                               self.early + 1) for h in range(HOSTS))
        self.assertEqual(others, expected, "only the changed rule's bucket emitted before the restart")

    def test_crash_between_recording_and_publishing_results_publishes_them_once(self):
        # The aggregator dies right after it recorded its first results and before it published them (a test hook:
        # it removes the file named and exits); the restarted one must publish exactly those.
        flag = os.path.join(self.make_dir(), "crash-once")
        open(flag, "w").close()
        relay = self.run_scenario(None, extra_env={"TEST_AGGREGATOR_CRASH_ONCE": flag}, crashes=True)
        self.assertFalse(os.path.exists(flag), "the hook did not fire")
        self.assertEqual(relay.stats()["aggregator"]["deaths"], 1)
        self.assertIn("that the last run recorded but had not published", relay.log())

class AggregatorQueueRoomTest(RelayTestCase):
    """An HTTP batch whose points feed aggregate rules is all or nothing for the aggregator's queue too: 503 when
    that queue has no room for them, 413 when it never could."""

    def test_http_batch_refused_when_the_aggregator_queue_is_full(self):
        sink = self.sink()
        relay = self.relay("--http-listen-addr=127.0.0.1:0", "--queue-bytes=4194304", start=False, workers=1)
        rules = os.path.join(relay.tmp, "rules.conf")
        with open(rules, "w") as f:  # the points stay queued for 10 minutes: their buckets are open that long
            f.write("cluster sink forward %s;\naggregate ^a\\.([^.]+)$ every 60 seconds expire after 600 seconds\n"
                    "    compute sum write to agg.\\1 send to sink stop;\nmatch * send to sink;\n" % sink.address)
        relay.args.append("--rules=" + rules)
        relay.start()
        port = relay.bound_port("HTTP")
        wait_until(lambda: relay.child_pid("aggregator"), 10, message="the aggregator")

        def post(lines):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            try:
                conn.request("POST", "/ingest", body=gzip_lines(lines))
                response = conn.getresponse()
                return response.status, response.read().decode()
            finally:
                conn.close()

        now = int(time.time())
        # Every record is about 50 bytes; the listener's ring of the aggregator's queue holds about 2 MiB.
        status, body = post(["a.%07d 1 %d" % (i, now) for i in range(60000)])
        self.assertEqual((status, body), (413, "batch larger than the aggregator's queue; send smaller batches\n"))
        statuses, sent = [], 0
        for b in range(20):
            status, _ = post(["a.%02d%05d 1 %d" % (b, i, now) for i in range(8000)])
            statuses.append(status)
            if status != 200:
                break
            sent += 8000
        self.assertEqual(statuses[-1], 503, statuses)
        self.assertGreaterEqual(len(statuses), 3, statuses)
        stats = relay.stats()
        self.assertEqual(stats["aggregator"]["dropped"], 0, "accepted points dropped at the aggregator's queue")
        wait_until(lambda: relay.stats()["aggregator"]["points"] == sent, 10, message="every accepted point taken")
        # Lines that feed no aggregate are not held back by the aggregator's queue.
        self.assertEqual(post(["other.x 1 %d" % now])[0], 200)


if __name__ == "__main__":
    unittest.main()
