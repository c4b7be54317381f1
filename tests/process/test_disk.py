"""The disk under the queues: a full disk, the runtime-destinations journal, freed space, damaged
or foreign state directories. Runs in a private mount namespace (in_mountns.sh) so a test can
mount a small tmpfs, a full disk nobody else sees."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import POLYMUR, RelayTestCase, gone, numbered, send_lines, wait_until

IN_MOUNTNS = os.environ.get("TEST_IN_MOUNTNS") == "1"


class SmallDisk:
    """A tmpfs of `size` mounted on a fresh directory; unmounted by cleanup()."""

    def __init__(self, size):
        self.path = tempfile.mkdtemp(prefix="polymur-disk-")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size, "tmpfs", self.path], check=True)

    def free(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def cleanup(self):
        subprocess.run(["umount", "-l", self.path], check=False)
        shutil.rmtree(self.path, ignore_errors=True)


def assert_counts_add_up(test, stats, destination):
    """received = delivered + queued + dropped, exactly, for one destination (invalid lines are counted
    apart, in `invalid`, and never reach a destination)."""
    d = stats["destinations"][destination]
    test.assertEqual(stats["received"], d["sent"] + d["queued"] + d["dropped"],
                     "%s: received %d != sent %d + queued %d + dropped %d" %
                     (destination, stats["received"], d["sent"], d["queued"], d["dropped"]))


@unittest.skipUnless(IN_MOUNTNS, "needs a private mount namespace (run through in_mountns.sh)")
class FullDiskTest(RelayTestCase):
    def small_disk(self, size):
        disk = SmallDisk(size)
        self.addCleanup(disk.cleanup)
        return disk

    def test_full_disk_shrinks_queues_counts_every_line_and_recovers(self):
        disk = self.small_disk("64m")
        alive = self.sink()
        down = self.sink(start=False)  # started later: the destination comes back
        relay = self.relay(workers=2, destinations=[alive.address, down.address],
                           state_dir=os.path.join(disk.path, "state"))
        log = relay.log()
        self.assertIn("running with a queue of", log)
        self.assertRegex(log, r"destination %s: queue .* needs \d+ bytes \(256.0 MiB\) but" % down.address)
        stats = relay.stats()
        for dest in (alive.address, down.address):
            capacity = stats["destinations"][dest]["capacity_bytes"]
            self.assertLess(capacity, 64 << 20)
            self.assertGreaterEqual(capacity, 8 << 20)
            self.assertTrue(stats["destinations"][dest]["space_reserved"])

        # Far more than the down destination's queue holds.
        total = 900000
        bad = ["disk.bad.%d not-a-number 1700000000" % i for i in range(1000)]
        send_lines(relay.port, numbered("disk.a", 0, total) + bad, connections=4)
        wait_until(lambda: relay.stats()["received"] == total, 60, message="every line received")
        wait_until(lambda: relay.stats()["invalid"] == len(bad), 10, message="invalid lines counted")
        # The live destination may drop some too (its smaller queue fills during the burst): counted.
        wait_until(lambda: relay.stats()["destinations"][alive.address]["queued"] == 0, 60, message="live queue drained")
        wait_until(lambda: alive.line_count() == relay.stats()["destinations"][alive.address]["sent"], 20)
        stats = relay.stats()
        self.assertGreater(stats["destinations"][down.address]["dropped"], 0)
        self.assertGreater(stats["destinations"][down.address]["queued"], 0)
        for dest in (alive.address, down.address):
            assert_counts_add_up(self, stats, dest)
        self.assertNotIn("killed by signal", relay.log())

        # The destination returns: its queue drains, and the ring takes new lines again.
        down.start()
        wait_until(lambda: relay.stats()["destinations"][down.address]["queued"] == 0, 60, message="queue drained")
        more = 200000
        send_lines(relay.port, numbered("disk.b", 0, more), connections=2)
        wait_until(lambda: relay.stats()["received"] == total + more, 60)
        wait_until(lambda: relay.stats()["destinations"][down.address]["queued"] == 0, 60, message="second drain")
        stats = relay.stats()
        dropped_before = stats["destinations"][down.address]["dropped"]
        for dest in (alive.address, down.address):
            assert_counts_add_up(self, stats, dest)
        wait_until(lambda: down.line_count() == stats["destinations"][down.address]["sent"], 20)
        got = set(down.lines())
        self.assertTrue(all(line in got for line in numbered("disk.b", 0, more)), "lines lost after recovery")
        self.assertEqual(relay.stats()["destinations"][down.address]["dropped"], dropped_before)
        self.assertNotIn("killed by signal", relay.log())

    def fill(self, disk):
        """Writes a ballast file until the file system is full; returns its path."""
        path = os.path.join(disk.path, "ballast")
        with open(path, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        try:
            with open(path, "ab") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass
        return path

    def test_runtime_destinations_survive_a_full_disk(self):
        disk = self.small_disk("64m")
        a, b = self.sink(), self.sink()
        state = os.path.join(disk.path, "state")
        journal = os.path.join(state, "runtime-destinations")
        relay = self.relay("--queue-bytes=8388608", workers=1, destinations=[a.address], state_dir=state)
        d = "127.0.0.1:%d" % self.refused_port()
        self.assertTrue(relay.admin("putdest " + b.address).startswith("Registered destination"))
        self.assertTrue(relay.admin("putdest " + d).startswith("Registered destination"))
        journaled = "putdest %s\nputdest %s\n" % (b.address, d)
        with open(journal) as f:
            self.assertEqual(f.read(), journaled)
        ballast = self.fill(disk)

        c = "127.0.0.1:%d" % self.refused_port()
        reply = relay.admin("putdest " + c)
        self.assertTrue(reply.startswith("error:"), reply)
        self.assertIn("No space left on device", reply)
        self.assertNotIn(c, relay.admin("getdest"))
        reply = relay.admin("deldest " + d)
        self.assertTrue(reply.startswith("error:"), reply)
        self.assertIn(d, relay.admin("getdest"))
        with open(journal) as f:
            self.assertEqual(f.read(), journaled, "the journal changed on a full disk")

        # A start on the full disk rewrites the journal: the old one must survive the failure.
        relay.stop()
        again = self.relay("--queue-bytes=8388608", workers=1, destinations=[a.address], state_dir=state)
        self.assertIn(b.address, again.admin("getdest"))
        self.assertIn(d, again.admin("getdest"))
        again.stop()
        with open(journal) as f:
            self.assertEqual(f.read(), journaled)
        os.unlink(ballast)
        third = self.relay("--queue-bytes=8388608", workers=1, destinations=[a.address], state_dir=state)
        self.assertIn(b.address, third.admin("getdest"))
        self.assertTrue(third.admin("putdest " + c).startswith("Registered destination"))

    def test_check_config_names_destination_needed_and_free_bytes(self):
        disk = self.small_disk("16m")
        state = os.path.join(disk.path, "state")
        r = subprocess.run([POLYMUR, "--check-config", "--state-dir=" + state, "--workers=2",
                            "--destinations=127.0.0.1:2103,127.0.0.1:2104"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)
        self.assertIn("destination 127.0.0.1:2103: its queue needs 268427264 more bytes", r.stderr)
        self.assertIn("destination 127.0.0.1:2104", r.stderr)
        self.assertRegex(r.stderr, r"only 1[0-9]{7} bytes are free")

    def test_deldest_frees_the_disk_space_of_its_queue(self):
        disk = self.small_disk("256m")
        a = self.sink()
        b = "127.0.0.1:%d" % self.refused_port()  # down: its queue holds lines when it is removed
        relay = self.relay("--queue-bytes=67108864", workers=2, destinations=[a.address, b],
                           state_dir=os.path.join(disk.path, "state"))
        capacity = relay.stats()["destinations"][b]["capacity_bytes"]
        self.assertGreaterEqual(capacity, 32 << 20)
        send_lines(relay.port, numbered("free", 0, 20000), connections=2)
        wait_until(lambda: relay.stats()["destinations"][b]["queued"] == 20000, 10)
        before = disk.free()
        self.assertTrue(relay.admin("deldest " + b).startswith("Unregistered destination"))
        wait_until(lambda: b not in relay.stats()["destinations"], 10, message="b removed")
        # Every process that mapped b's queue file has let go of it: the space is back.
        wait_until(lambda: disk.free() >= before + capacity, 10,
                   message="the space of the removed queue (%d bytes) freed; free now %d, before %d" %
                   (capacity, disk.free(), before))
        self.assertEqual(len(relay.children()), 3)  # 2 listeners, 1 output: nobody was restarted for it

    def test_read_only_state_dir_is_reported_as_such(self):
        disk = self.small_disk("4m")
        os.mkdir(os.path.join(disk.path, "state"))
        subprocess.run(["mount", "-o", "remount,ro", disk.path], check=True)
        relay = self.relay(state_dir=os.path.join(disk.path, "state"), start=False).start(wait=False)
        self.assertEqual(relay.proc.wait(10), 78)
        self.assertIn("Read-only file system", relay.log())
        self.assertIn("is on a read-only file system; give polymur a --state-dir on a writable one", relay.log())
        self.assertNotIn("in use by another polymur", relay.log())


class LeftoverTest(RelayTestCase):
    def test_stopped_listener_of_a_killed_supervisor_does_not_block_the_next_start(self):
        a = self.sink()
        relay = self.relay(workers=2, destinations=[a.address])
        send_lines(relay.port, numbered("left", 0, 1000))
        wait_until(lambda: a.line_count() == 1000, 10)
        listener = relay.child_pid("listener 0")
        self.addCleanup(lambda: os.path.exists("/proc/%d" % listener) and os.kill(listener, signal.SIGKILL))
        os.kill(listener, signal.SIGSTOP)
        relay.proc.kill()
        relay.proc.wait()
        time.sleep(0.5)
        self.assertTrue(os.path.exists("/proc/%d" % listener), "the stopped listener is still there")

        again = self.relay(workers=2, destinations=[a.address], state_dir=relay.state_dir, start=False)
        again.args, again.port, again.api_port = relay.args, relay.port, relay.api_port  # the same sockets
        again.start()
        self.assertIn("pid %d (polymur: listener 0) of a previous polymur still holds" % listener, again.log())
        wait_until(lambda: gone(listener), 5)
        send_lines(again.port, numbered("left", 1000, 1000))
        wait_until(lambda: a.line_count() == 2000, 10, message="the new generation delivers")
        self.assertEqual(sorted(a.lines()), sorted(numbered("left", 0, 2000)))


class GeometryTest(RelayTestCase):
    def test_queue_file_takes_what_queue_bytes_says(self):
        for workers in (2, 4):
            relay = self.relay("--queue-bytes=67108864", workers=workers,
                               destinations=["127.0.0.1:%d" % self.refused_port()])
            queue = next(os.path.join(relay.state_dir, f) for f in os.listdir(relay.state_dir) if f.endswith(".queue"))
            size = os.stat(queue).st_size
            self.assertLessEqual(size, 67108864)
            self.assertGreater(size, 67108864 - (workers + 2) * 4096, "workers=%d: %d bytes" % (workers, size))
            self.assertGreaterEqual(os.stat(queue).st_blocks * 512, size, "allocated in full")
            relay.cleanup()

    def test_queued_lines_move_into_a_new_geometry_at_start(self):
        sink = self.sink(start=False)  # down while lines queue
        relay = self.relay("--drain-timeout=1", workers=2, destinations=[sink.address])
        send_lines(relay.port, numbered("geo", 0, 5000), connections=2)
        wait_until(lambda: relay.stats()["destinations"][sink.address]["queued"] == 5000, 10)
        relay.stop()

        # A resized machine: another --workers.
        bigger = self.relay("--drain-timeout=1", workers=3, destinations=[sink.address], state_dir=relay.state_dir)
        self.assertEqual(bigger.log().count("moved 5000 queued lines from its old geometry (3 rings of"), 1, bigger.log())
        self.assertEqual(bigger.stats()["destinations"][sink.address]["queued"], 5000)
        send_lines(bigger.port, numbered("geo", 5000, 3000))
        wait_until(lambda: bigger.stats()["destinations"][sink.address]["queued"] == 8000, 10)
        bigger.stop()

        # And another --queue-bytes.
        smaller = self.relay("--queue-bytes=8388608", workers=1, destinations=[sink.address], state_dir=relay.state_dir)
        self.assertIn("moved 8000 queued lines from its old geometry (4 rings of", smaller.log())
        sink.start()
        wait_until(lambda: sink.line_count() >= 8000, 20, message="every carried line delivered")
        wait_until(lambda: smaller.stats()["destinations"][sink.address]["queued"] == 0, 10)
        self.assertEqual(sorted(sink.lines()), sorted(numbered("geo", 0, 8000)), "lost or duplicated lines")


class ReloadJournalTest(RelayTestCase):
    def test_destination_removed_then_readded_by_sighup_survives_a_restart(self):
        a, b = self.sink(), self.sink()
        conf_dir = tempfile.mkdtemp(prefix="polymur-conf-")
        self.addCleanup(shutil.rmtree, conf_dir, True)
        conf = os.path.join(conf_dir, "polymur.conf")

        def configure(*destinations):
            with open(conf, "w") as f:
                f.write("destinations = %s\n" % ",".join(destinations))

        configure(a.address, b.address)
        relay = self.relay("--config=" + conf, workers=1)
        state = relay.state_dir
        configure(a.address)
        relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: b.address not in relay.stats()["destinations"], 10, message="b removed by the reload")
        configure(a.address, b.address)
        relay.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: b.address in relay.admin("getdest"), 10, message="b added again by the reload")
        relay.stop()

        again = self.relay("--config=" + conf, workers=1, state_dir=state)
        self.assertIn(b.address, again.admin("getdest"), again.log())
        send_lines(again.port, numbered("hup", 0, 100))
        wait_until(lambda: b.line_count() >= 100, 10, message="b receives after the restart")


if __name__ == "__main__":
    unittest.main()
