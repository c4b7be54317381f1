"""Each child's lifecycle as the supervisor keeps it: deaths and restarts counted per child (`stats`,
/metrics), a pid it did not fork reaped and logged, and READY=1 only once every child has reported."""
import fcntl
import os
import signal
import urllib.request

from harness import RelayTestCase, wait_until
from test_metrics import http_get
from test_service import NotifySocket




class LifecycleTest(RelayTestCase):
    def test_kill_9_of_an_output_and_a_listener_is_counted_as_a_death_and_a_restart(self):
        sink = self.sink()
        relay = self.relay("--metrics-addr=127.0.0.1:0", workers=1, destinations=[sink.address])
        metrics_port = relay.bound_port("metrics")
        output = "output " + sink.address
        wait_until(lambda: relay.child_pid(output) and relay.child_pid("listener 0"), message="both children")
        stats = relay.stats()
        self.assertEqual((stats["destinations"][sink.address]["deaths"], stats["destinations"][sink.address]["restarts"]), (0, 0))
        self.assertEqual(stats["listeners"], [{"deaths": 0, "restarts": 0}])

        first = relay.child_pid(output)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: relay.child_pid(output) not in (None, first), message="a new output process")
        stats = relay.stats()
        self.assertEqual(stats["destinations"][sink.address]["deaths"], 1)
        self.assertEqual(stats["destinations"][sink.address]["restarts"], 1)
        self.assertEqual(stats["listeners"], [{"deaths": 0, "restarts": 0}], "the listener did not die")

        listener = relay.child_pid("listener 0")
        os.kill(listener, signal.SIGKILL)
        wait_until(lambda: relay.child_pid("listener 0") not in (None, listener), message="a new listener process")
        self.assertEqual(relay.stats()["listeners"], [{"deaths": 1, "restarts": 1}])

        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % metrics_port, timeout=10) as response:
            text = response.read().decode()
        self.assertIn('polymur_destination_output_deaths_total{destination="%s"} 1\n' % sink.address, text)
        self.assertIn('polymur_destination_output_restarts_total{destination="%s"} 1\n' % sink.address, text)
        self.assertIn('polymur_listener_deaths_total{listener="0"} 1\n', text)
        self.assertIn('polymur_listener_restarts_total{listener="0"} 1\n', text)

        # A stop asked for by the operator (deldest) is no death.
        relay.admin("deldest " + sink.address)
        wait_until(lambda: sink.address not in relay.stats()["destinations"], message="the destination removed")

    def test_a_pid_it_did_not_fork_is_reaped_and_logged(self):
        # A shell forks a child that waits on a fifo, then becomes polymur: that child is polymur's
        # without being in its process table.
        relay = self.relay(start=False, workers=1)
        fifo = os.path.join(relay.tmp, "release")
        os.mkfifo(fifo)
        relay.args = ["/bin/sh", "-c", 'cat "$RELEASE" > /dev/null & exec "$0" "$@"'] + relay.args
        relay.env["RELEASE"] = fifo
        relay.start()
        wait_until(lambda: len(relay.children()) == 2, message="the stranger and the listener")  # no destinations
        stranger = [pid for pid, cmd in relay.children().items() if not cmd.startswith("polymur")]
        self.assertEqual(len(stranger), 1, relay.children())
        with open(fifo, "w") as f:
            f.write("go\n")
        wait_until(lambda: "reaped pid %d, which is none of its children (exited with code 0)" % stranger[0] in relay.log(),
                   message="the log line about the stranger")
        self.assertFalse(os.path.exists("/proc/%d" % stranger[0]), "reaped, not left a zombie")
        self.assertEqual(relay.stats()["listeners"], [{"deaths": 0, "restarts": 0}])

    def _relay_with_listener_held(self, *args):
        """A relay whose listener 0 cannot report: the test holds the lock a listener takes before its
        first heartbeat (as a listener of a previous polymur still exiting would)."""
        notify = NotifySocket()
        self.addCleanup(notify.close)
        sink = self.sink()
        relay = self.relay(*args, start=False, workers=1, destinations=[sink.address],
                           extra_env={"NOTIFY_SOCKET": notify.path})
        os.makedirs(relay.state_dir, mode=0o750)
        lock = open(os.path.join(relay.state_dir, "listener-0.lock"), "w")
        self.addCleanup(lock.close)
        fcntl.flock(lock, fcntl.LOCK_EX)
        relay.start(wait=False)
        wait_until(lambda: "listener 0: waiting for the previous holder" in relay.log(), 20, message="the listener waiting")
        return relay, notify, sink, lock

    def test_ready_only_after_every_child_reported(self):
        relay, notify, sink, lock = self._relay_with_listener_held("--stats-interval=1")
        # The output reports (it connects to the sink and says so in stats) while the listener cannot;
        # the supervisor's loop turns for a while meanwhile (its rate line comes after a second of it,
        # its readiness check every 100 ms).
        wait_until(lambda: relay.stats()["destinations"][sink.address]["state"] == "connected", 20, message="output connected")
        wait_until(lambda: "Received" in relay.log(), 20, message="a rate line of the supervisor")
        self.assertNotIn("READY=1", notify.states(), "READY=1 before listener 0 reported")
        fcntl.flock(lock, fcntl.LOCK_UN)
        wait_until(lambda: "READY=1" in notify.states(), 20, message="READY=1 once the listener reported")
        self.assertIn("MAINPID=%d" % relay.proc.pid, notify.states())
        self.assertNotIn("not reporting", relay.log())

    def test_ready_after_the_startup_timeout_when_a_child_never_reports(self):
        relay, notify, sink, lock = self._relay_with_listener_held("--stall-timeout=2")
        wait_until(lambda: "READY=1" in notify.states(), 30, message="READY=1 at the deadline")
        self.assertIn("supervisor: listener 0 not reporting 2 s after the start; telling systemd it is ready anyway", relay.log())

    def test_ready_and_health_wait_for_the_aggregator(self):
        # With aggregate rules the aggregator is a child like the others: READY=1 and /health wait for its first
        # heartbeat. The test holds the lock the aggregator takes on its queue before that (as the aggregator of a
        # previous polymur still exiting would); the queue file exists from a first run.
        sink = self.sink()
        notify = NotifySocket()
        self.addCleanup(notify.close)
        relay = self.relay("--stats-interval=1", "--metrics-addr=127.0.0.1:0", start=False, workers=1,
                           extra_env={"NOTIFY_SOCKET": notify.path})
        rules = os.path.join(relay.tmp, "rules.conf")
        with open(rules, "w") as f:
            f.write("cluster sink forward %s;\naggregate ^a\\.x$ every 1 seconds expire after 3 seconds\n"
                    "    compute sum write to agg.x send to sink stop;\nmatch * send to sink;\n" % sink.address)
        relay.args.append("--rules=" + rules)
        relay.start()
        metrics_port = relay.bound_port("metrics")  # the second start listens there too
        wait_until(lambda: "READY=1" in notify.states(), 20, message="READY=1 of the first run")
        self.assertEqual(relay.stop(), 0)
        notify.messages.clear()
        lock = open(os.path.join(relay.state_dir, "aggregator.queue"), "r")
        self.addCleanup(lock.close)
        fcntl.flock(lock, fcntl.LOCK_EX)
        first_run = len(relay.log())
        relay.start(wait=False)
        wait_until(lambda: "aggregator: waiting for the previous holder" in relay.log()[first_run:], 20,
                   message="the aggregator waiting")
        wait_until(lambda: relay.stats()["destinations"][sink.address]["state"] == "connected", 20,
                   message="output connected")
        wait_until(lambda: "Received" in relay.log()[first_run:], 20, message="a rate line of the second run")
        pid = relay.child_pid("aggregator")
        self.assertNotIn("READY=1", notify.states(), "READY=1 before the aggregator reported")
        status, body = http_get(metrics_port, "/health")
        self.assertEqual((status, body), (503, "not ready: aggregator (pid %d): starting\n" % pid))
        fcntl.flock(lock, fcntl.LOCK_UN)
        wait_until(lambda: "READY=1" in notify.states(), 20, message="READY=1 once the aggregator reported")
        wait_until(lambda: http_get(metrics_port, "/health") == (200, "ok\n"), 10, message="/health 200")
        self.assertNotIn("not reporting", relay.log())
