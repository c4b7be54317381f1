"""Fault isolation and zero-loss restarts: kill -9, SIGSTOP, stalled destinations, full restarts."""
import collections
import os
import re
import signal
import socket
import struct
import threading
import time
import unittest

from harness import Polymur, RelayTestCase, gone, numbered, send_lines, send_paced, wait_until

# What one kill of an output can duplicate: the lines it wrote but had not committed, which are the
# bytes the kernel had not acknowledged when it last committed (at most the socket send buffer,
# net.ipv4.tcp_wmem's maximum) plus the chunk it was committing in (worker/stream_transport.hpp kChunkMax).
with open("/proc/sys/net/ipv4/tcp_wmem") as f:
    SEND_BUFFER_MAX = int(f.read().split()[2])
CHUNK = 256 * 1024
# A child that lived this long restarts without delay history (--backoff-reset, shortened for the test).
STABLE_AFTER_S = 5


class DurabilityTest(RelayTestCase):
    def test_output_killed_repeatedly_loses_nothing(self):
        a = self.sink()
        relay = self.relay(destinations=[a.address])
        title = "output " + a.address
        total, kills = 1000000, []
        lines = ["k.%07d 1 1700000000" % i for i in range(total)]
        done = threading.Event()

        surplus = []  # at each kill: lines the sink holds beyond the lines committed (sent) so far

        def killer():
            while not done.is_set() and len(kills) < 5:
                time.sleep(0.4)
                pid = relay.child_pid(title)
                if not pid or done.is_set():
                    continue
                # Freeze the output: it commits nothing more, while the kernel still delivers what it
                # wrote. Once the connection is quiet, the sink holds every committed line, the earlier
                # kills' duplicates, and what this output wrote and did not commit: its in-flight lines.
                os.kill(pid, signal.SIGSTOP)
                committed = relay.stats()["destinations"][a.address]["sent"]
                wait_until(lambda: a.quiescent(), 10, message="the stopped output's bytes delivered")
                surplus.append(a.line_count() - committed)
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
                wait_until(lambda: relay.child_pid(title) not in (None, pid), 10, message="output restarted")

        def sender(part):
            send_paced(relay.port, lines[part::4], 5000, 0.02)

        k = threading.Thread(target=killer)
        k.start()
        senders = [threading.Thread(target=sender, args=(p,)) for p in range(4)]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        k.join()
        done.set()
        self.assertGreaterEqual(len(kills), 3, "the stream ended before the output was killed 3 times")
        wait_until(lambda: a.line_count() >= total and relay.stats()["destinations"][a.address]["queued"] == 0, 60,
                   message="every line delivered")
        counts = collections.Counter(a.lines())
        missing = [line for line in lines if line not in counts]
        self.assertEqual(missing, [])
        duplicates = sum(c - 1 for c in counts.values())
        in_flight = [now - before for before, now in zip([0] + surplus, surplus)]
        bound = (SEND_BUFFER_MAX + CHUNK) // (len(lines[0]) + 1)
        print("output killed %d times during %d lines: %d duplicates, in flight at each kill %s (bound %d each)"
              % (len(kills), total, duplicates, in_flight, bound))
        # Each line is committed once, and the only duplicates are the lines in flight at the kills: none
        # arose after the last one, and each kill's share stays within what the kernel can hold unacknowledged.
        self.assertEqual(relay.stats()["destinations"][a.address]["sent"], total)
        self.assertEqual(duplicates, surplus[-1])
        for lines_in_flight in in_flight:
            self.assertLessEqual(lines_in_flight, bound)
        log = relay.log()
        self.assertIn("killed by signal 9 (Killed)", log)
        self.assertRegex(log, r"output %s \(pid %d\): killed by signal 9 \(Killed\) after \d+ ms; restarting in \d+ ms"
                         % (a.address, kills[0]))

    def test_restarts_back_off_and_reset(self):
        a = self.sink()
        relay = self.relay("--backoff-reset=%d" % STABLE_AFTER_S, destinations=[a.address])
        title = "output " + a.address
        pattern = r"output %s \(pid \d+\): killed.*after (\d+) ms; restarting in (\d+) ms" % a.address

        def kill_output():
            pid = wait_until(lambda: relay.child_pid(title), 10)
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: relay.child_pid(title) not in (None, pid), 10, message="output restarted")
            return time.monotonic()

        for _ in range(4):
            restarted = kill_output()
        self.assertEqual([int(d) for _, d in re.findall(pattern, relay.log())], [100, 200, 400, 800])
        # An output that lived STABLE_AFTER_S restarts with the first delay again, not 1600 ms.
        wait_until(lambda: time.monotonic() - restarted > STABLE_AFTER_S, STABLE_AFTER_S + 5, interval=0.5,
                   message="the restarted output lived %d s" % STABLE_AFTER_S)
        kill_output()
        lived, delay = [(int(l), int(d)) for l, d in re.findall(pattern, relay.log())][-1]
        self.assertGreaterEqual(lived, STABLE_AFTER_S * 1000)
        self.assertEqual(delay, 100)

    def test_sigstopped_output_is_restarted_and_others_keep_going(self):
        a, b = self.sink(), self.sink()
        relay = self.relay("--stall-timeout=2", destinations=[a.address, b.address])
        title = "output " + b.address
        stopped = wait_until(lambda: relay.child_pid(title), 10)
        os.kill(stopped, signal.SIGSTOP)
        lines = numbered("stop", 0, 50000)
        send_lines(relay.port, lines)
        wait_until(lambda: a.line_count() >= 50000, 5, message="a keeps receiving while b's output is stopped")
        wait_until(lambda: "output %s (pid %d): no heartbeat for 2 s (stalled); killing it" % (b.address, stopped)
                   in relay.log(), 10, message="stall noticed")
        wait_until(lambda: b.line_count() >= 50000, 20, message="b delivered after the restart")
        self.assertEqual(sorted(set(b.lines())), sorted(lines))

    def test_destination_that_never_reads_is_a_stall_but_a_slow_reader_is_not(self):
        # A destination that accepts but never reads: tiny receive buffer, no recv().
        quiet = socket.socket()
        quiet.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        quiet.bind(("127.0.0.1", 0))
        quiet.listen(8)
        self.addCleanup(quiet.close)
        never = "127.0.0.1:%d" % quiet.getsockname()[1]
        slow = self.sink(read_delay=0.05, recv_size=4096)  # about 80 KB/s
        relay = self.relay("--stall-timeout=2", destinations=[never, slow.address])
        send_lines(relay.port, ["s.%06d.%s 1 1700000000" % (i, "x" * 40) for i in range(100000)])
        wait_until(lambda: "output %s" % never in relay.log() and "accepted nothing for 2 s (stalled)" in relay.log(),
                   15, message="never-reading destination restarted")
        sent_before = relay.stats()["destinations"][slow.address]["sent"]
        time.sleep(5)  # more than twice the stall timeout, while the slow sink is still reading
        self.assertEqual([l for l in relay.log().splitlines() if "stalled" in l and slow.address in l], [])
        slow_stats = relay.stats()["destinations"][slow.address]
        self.assertGreater(slow_stats["sent"], sent_before)
        self.assertGreater(slow_stats["queued"], 0, "the slow sink should still be behind, or the test proves nothing")

    def test_killed_listener_loses_nothing_queued_and_the_port_never_refuses(self):
        a = self.sink()
        relay = self.relay(destinations=[a.address])
        refused, connected = [], []
        stop = threading.Event()

        def connector():
            while not stop.is_set():
                try:
                    with socket.create_connection(("127.0.0.1", relay.port), timeout=2) as s:
                        s.sendall(b"probe 1 1700000000\n")
                    connected.append(1)
                except OSError as e:
                    refused.append(str(e))
                time.sleep(0.005)

        lines = numbered("lk", 0, 20000)
        send_lines(relay.port, lines)
        wait_until(lambda: relay.stats()["received"] >= 20000, 10)
        t = threading.Thread(target=connector)
        t.start()
        for _ in range(3):
            victim = wait_until(lambda: relay.child_pid("listener 0"), 10)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: relay.child_pid("listener 0") not in (None, victim), 10, message="replacement")
        time.sleep(0.3)
        stop.set()
        t.join()
        self.assertEqual(refused, [])
        self.assertGreater(len(connected), 20)
        got = set(a.lines())
        self.assertTrue(set(lines) <= got or wait_until(lambda: set(lines) <= set(a.lines()), 10))

    def test_sigterm_then_start_delivers_what_was_queued(self):
        down = self.sink(start=False)  # the destination, down until the end
        dest = down.address
        relay = self.relay("--drain-timeout=2", destinations=[dest])
        lines = numbered("restart", 0, 30000)
        send_lines(relay.port, lines)
        wait_until(lambda: relay.stats()["destinations"][dest]["queued"] == 30000, 10)
        self.assertEqual(relay.stop(), 0)
        again = self.relay("--drain-timeout=2", destinations=[dest], state_dir=relay.state_dir)
        self.assertIn("resuming 30000 queued lines", again.log())
        sink = down.start()
        wait_until(lambda: sink.line_count() >= 30000, 20, message="queued lines after restart")
        self.assertEqual(sorted(sink.lines()), sorted(lines))

    def test_sigterm_lets_outputs_deliver_their_queue_before_exit(self):
        slow = self.sink(read_delay=0.02, recv_size=65536)  # about 3 MB/s: the queue builds up
        relay = self.relay("--drain-timeout=20", destinations=[slow.address])
        lines = numbered("drain", 0, 200000)
        send_lines(relay.port, lines)
        wait_until(lambda: relay.stats()["received"] == 200000, 10)
        queued = relay.stats()["destinations"][slow.address]["queued"]
        self.assertGreater(queued, 10000, "the destination should be behind when SIGTERM arrives")
        self.assertEqual(relay.stop(timeout=40), 0)
        # Acknowledged means in the sink's socket buffer; its reader may still be catching up.
        wait_until(lambda: slow.line_count() >= 200000, 20, message="the drained lines at the sink")
        self.assertEqual(sorted(slow.lines()), sorted(lines))
        self.assertIn("letting outputs deliver for up to 20 s", relay.log())
        again = self.relay(destinations=[slow.address], state_dir=relay.state_dir)
        self.assertNotIn("resuming", again.log(), "nothing was left queued for the next start")

    def test_kill9_of_every_process_then_start_loses_nothing_queued(self):
        down = self.sink(start=False)  # the destination, down until the end
        dest = down.address
        relay = self.relay(destinations=[dest])
        lines = numbered("crash", 0, 30000)
        send_lines(relay.port, lines)
        wait_until(lambda: relay.stats()["destinations"][dest]["queued"] == 30000, 10)
        pids = list(relay.children()) + [relay.proc.pid]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        relay.proc.wait()
        # A killed child holds the state directory's lock until the kernel has torn it down (slow under a sanitizer);
        # a start before that is rightly refused as a second polymur on the same state directory.
        wait_until(lambda: all(gone(pid) for pid in pids), 10, message="every killed process gone")
        again = self.relay(destinations=[dest], state_dir=relay.state_dir)
        sink = down.start()
        wait_until(lambda: sink.line_count() >= 30000, 20, message="queued lines after kill -9 and restart")
        time.sleep(0.3)
        self.assertEqual(sorted(sink.lines()), sorted(lines))
        self.assertEqual(again.stats()["destinations"][dest]["queued"], 0)

    def test_killed_supervisor_children_exit_and_next_start_recovers(self):
        down = self.sink(start=False)  # the destination, down until the end
        dest = down.address
        relay = self.relay("--drain-timeout=1", destinations=[dest])
        lines = numbered("orphan", 0, 10000)
        send_lines(relay.port, lines)
        wait_until(lambda: relay.stats()["destinations"][dest]["queued"] == 10000, 10)
        children = list(relay.children())
        os.kill(relay.proc.pid, signal.SIGKILL)
        relay.proc.wait()
        wait_until(lambda: all(gone(p) for p in children), 10,
                   message="children exit after the supervisor died")
        again = self.relay(destinations=[dest], state_dir=relay.state_dir)
        sink = down.start()
        wait_until(lambda: sink.line_count() >= 10000, 20)
        self.assertEqual(sorted(sink.lines()), sorted(lines))

    def test_second_polymur_on_the_same_state_dir_is_refused(self):
        relay = self.relay()
        other = self.relay(state_dir=relay.state_dir, start=False)
        other.start(wait=False)
        self.assertEqual(other.proc.wait(10), 78)
        self.assertIn("is in use by another polymur (pid %d)" % relay.proc.pid, other.log())

    def test_runtime_destination_changes_survive_a_restart(self):
        a, b, c = self.sink(), self.sink(), self.sink()
        relay = self.relay(destinations=[a.address, b.address])
        self.assertEqual(relay.admin("putdest " + c.address), "Registered destination: %s\n" % c.address)
        self.assertEqual(relay.admin("deldest " + a.address), "Unregistered destination: %s\n" % a.address)
        relay.stop()
        again = self.relay(destinations=[a.address, b.address], state_dir=relay.state_dir)
        self.assertEqual(sorted(again.stats()["destinations"]), sorted([b.address, c.address]))
        self.assertIn("replayed 2 runtime destination changes", again.log())
        send_lines(again.port, ["persist 1 1700000000"])
        wait_until(lambda: c.lines() == ["persist 1 1700000000"], 10)
        self.assertEqual(a.lines(), [])

    def test_bad_queue_files_are_refused_with_the_file_named_and_kept(self):
        down = self.sink(start=False)  # the destination, down until the end
        dest = down.address
        small = "--queue-bytes=4194304"  # the file is read and written whole three times
        relay = self.relay(small, destinations=[dest])
        send_lines(relay.port, numbered("bad", 0, 100))
        wait_until(lambda: relay.stats()["destinations"][dest]["queued"] == 100, 10)
        relay.stop()
        queue = next(os.path.join(relay.state_dir, f) for f in os.listdir(relay.state_dir) if f.endswith(".queue"))
        with open(queue, "rb") as f:
            original = f.read()
        cases = {
            "version": original[:8] + struct.pack("<I", 99) + original[12:],
            "magic": b"NOTAQUEU" + original[8:],
            "truncated": original[:len(original) // 2],
        }
        expected = {"version": "has layout version 99", "magic": "bad magic", "truncated": "is truncated"}
        for case, content in cases.items():
            with self.subTest(case=case):
                with open(queue, "wb") as f:
                    f.write(content)
                again = Polymur(small, destinations=[dest], state_dir=relay.state_dir)
                self.addCleanup(again.cleanup)
                again.start(wait=False)
                self.assertEqual(again.proc.wait(10), 78)
                self.assertIn(queue, again.log())
                self.assertIn(expected[case], again.log())
                with open(queue, "rb") as f:
                    self.assertEqual(f.read(), content, "the queue file was changed")

    def test_child_with_a_problem_restarting_cannot_fix_is_not_restarted(self):
        a = self.sink()
        relay = self.relay("--metrics-addr=127.0.0.1:0", destinations=[a.address])
        # Every child has attached its queues once /health says ready; a listener still starting would meet the
        # truncated mapping in its own start-up (SIGBUS, a sanitizer report), which is not what this test is about.
        metrics = relay.bound_port("metrics")

        def healthy():
            try:
                with socket.create_connection(("127.0.0.1", metrics), timeout=5) as s:
                    s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
                    return s.recv(64).split(b"\r\n", 1)[0].endswith(b" 200 OK")
            except OSError:
                return False

        wait_until(healthy, 30, message="/health 200: every child started")
        queue = next(os.path.join(relay.state_dir, f) for f in os.listdir(relay.state_dir) if f.endswith(".queue"))
        # The queue is damaged while its output is stopped (running, it would meet the truncation itself and exit:
        # the test after this one), then the output is killed: what its restart finds is the problem.
        pid = relay.child_pid("output " + a.address)
        os.kill(pid, signal.SIGSTOP)
        os.truncate(queue, 4096)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: "exited with code 78: a configuration or state problem it reported above; not restarting it"
                   in relay.log(), 10)
        time.sleep(0.5)
        self.assertIsNone(relay.child_pid("output " + a.address))
        self.assertIn("is truncated", relay.log())

    def test_a_queue_file_truncated_under_the_running_relay_costs_only_its_destination(self):
        """A queue file truncated while polymur runs: each load or store past the new end raises SIGBUS. It killed
        the process that touched it without a word, and the supervisor (which reads every queue for stats) took
        the whole relay down with it. Now the supervisor and the listeners carry on, naming the file; the output
        that reads it exits as it would at its next start (refused, not restarted), naming the file; every other
        destination keeps getting its lines, and nothing is killed by a signal."""
        a, b = self.sink(), self.sink()
        relay = self.relay("--metrics-addr=127.0.0.1:0", destinations=[a.address, b.address])
        metrics = relay.bound_port("metrics")
        send_lines(relay.port, numbered("before", 0, 100))
        wait_until(lambda: a.line_count() == 100 and b.line_count() == 100, 20, message="the first lines delivered")
        queue = next(os.path.join(relay.state_dir, f) for f in os.listdir(relay.state_dir)
                     if f.endswith(".queue") and f.startswith("127.0.0.1_%d-" % a.port))
        os.truncate(queue, 4096)  # the header page stays; the ring positions and the data are gone
        # stats reads every queue's positions: the supervisor meets the truncation here, and answers.
        self.assertEqual(relay.stats()["destinations"][b.address]["sent"], 100)
        wait_until(lambda: "[supervisor %d] queue file %s shrank under the running relay (truncated)"
                   % (relay.proc.pid, queue) in relay.log(), 10, message="the supervisor naming the file")
        # a's output touches its ring positions within its next tick, and exits rather than being killed.
        wait_until(lambda: "queue file %s shrank under this process" % queue in relay.log(), 10,
                   message="a's output naming the file")
        wait_until(lambda: relay.stats()["destinations"][a.address]["state"] == "given_up", 10,
                   message="a's output given up in stats")
        # The listeners write for a into the lost pages and go on: b gets every line sent after the truncation.
        send_lines(relay.port, numbered("after", 0, 1000))
        wait_until(lambda: b.line_count() == 1100, 20, message="b's lines after the truncation")
        self.assertEqual(sorted(b.lines()), sorted(numbered("before", 0, 100) + numbered("after", 0, 1000)))
        wait_until(lambda: re.search(r"\[listener \d+ \d+\] queue file %s shrank under the running relay.*this "
                                     r"listener carries on" % re.escape(queue), relay.log()), 10,
                   message="the listener naming the file")
        self.assertEqual(a.line_count(), 100)
        with socket.create_connection(("127.0.0.1", metrics), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
            health = s.makefile("rb").read().decode()
        self.assertTrue(health.startswith("HTTP/1.0 503"), health)
        self.assertIn("output %s" % a.address, health)
        self.assertIsNone(relay.proc.poll(), "polymur is still serving")
        log = relay.log()
        self.assertNotIn("killed by signal", log)
        self.assertNotIn("Bus error", log)
        self.assertEqual(relay.stop(), 0)

    def test_queue_byte_bound_is_exact(self):
        dead = "127.0.0.1:%d" % self.refused_port()
        relay = self.relay("--queue-bytes=4194304", workers=1, destinations=[dead])
        line = "b.%07d " + "9" * 80 + " 1700000000"
        send_lines(relay.port, [line % i for i in range(40000)])
        wait_until(lambda: relay.stats()["received"] == 40000, 10)
        stats = relay.stats()["destinations"][dead]
        size = len(line % 0) + 1
        # 4 MiB, less the header and ring-control pages, split into 2 rings (one worker + redistribution)
        ring = (4194304 - 2 * 4096) // 2 // 4096 * 4096
        self.assertEqual(stats["capacity_bytes"], 2 * ring)
        self.assertEqual(stats["queued_bytes"], (ring // size) * size)
        self.assertEqual(stats["queued"] + stats["dropped"], 40000)


if __name__ == "__main__":
    unittest.main()
