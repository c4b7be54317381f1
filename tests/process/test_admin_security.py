"""Who may reconfigure the relay through the admin protocol, and what a hostile local or remote
client cannot do: the kernel names the peer (SO_PEERCRED, sock_diag), changes need an allowed user
or a token, state files are private, loops and floods are refused. Real users (useradd), real nc."""
import os
import resource
import socket
import stat
import subprocess
import time
import unittest

from harness import TIME_FACTOR, RelayTestCase, cpu_seconds, open_file_limit, recv_all, wait_until

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
# A system user of this run's own: runs in several checkouts at once must not delete each other's user.
# A run that was killed leaves its user behind; the next run deletes users of runs no longer alive.
TEST_USER_PREFIX = "polymur-sec-"
TEST_USER = TEST_USER_PREFIX + str(os.getpid())


def delete_users_of_dead_runs():
    with open("/etc/passwd") as f:
        names = [line.split(":", 1)[0] for line in f]
    for name in names:
        pid = name[len(TEST_USER_PREFIX):]
        if name.startswith(TEST_USER_PREFIX) and pid.isdigit() and not os.path.exists("/proc/" + pid):
            subprocess.run(["userdel", name], capture_output=True)


def nc(port, command, prefix=(), host="127.0.0.1", unix=None, timeout=15):
    # -N: shut down the sending side after the command, and exit when polymur closes the connection after
    # its reply (not a fixed -q delay later).
    args = list(prefix) + (["nc", "-N", "-U", unix] if unix else ["nc", "-N", host, str(port)])
    return subprocess.run(args, input=command.encode() + b"\n", capture_output=True, timeout=timeout).stdout.decode()


def raise_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


class AdminPermissions(RelayTestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root to act as other users")
        delete_users_of_dead_runs()
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER], check=True)
        cls.test_uid = int(subprocess.run(["id", "-u", TEST_USER], capture_output=True, check=True).stdout)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["userdel", TEST_USER], capture_output=True)

    def as_test_user(self):
        return ["runuser", "-u", TEST_USER, "--"]

    def test_other_local_users_may_read_but_not_change_over_tcp(self):
        relay = self.relay()
        self.assertIn('"registered"', nc(relay.api_port, "getdest", NOBODY))
        self.assertIn('"received"', nc(relay.api_port, "stats", NOBODY))
        reply = nc(relay.api_port, "putdest 10.0.5.25:2003", NOBODY)
        self.assertTrue(reply.startswith("error: putdest refused: uid 65534"), reply)
        reply = nc(relay.api_port, "putdest 10.0.5.26:2003", self.as_test_user())
        self.assertTrue(reply.startswith("error: putdest refused: uid %d" % self.test_uid), reply)
        self.assertNotIn("10.0.5.2", relay.admin("getdest"))
        wait_until(lambda: "admin client 127.0.0.1:" in relay.log() and "(uid 65534): putdest 10.0.5.25:2003 refused" in relay.log(),
                   5, message="the refusal in the log")
        # Root, the user polymur runs as here, still may: Polymur's usage keeps working.
        self.assertEqual(nc(relay.api_port, "putdest 10.0.5.25:2003"), "Registered destination: 10.0.5.25:2003\n")
        reply = nc(relay.api_port, "deldest 10.0.5.25:2003", NOBODY)
        self.assertTrue(reply.startswith("error: deldest refused"), reply)
        self.assertIn("10.0.5.25:2003", relay.admin("getdest"))
        runtime = os.path.join(relay.state_dir, "runtime-destinations")
        with open(runtime) as f:
            self.assertEqual(f.read(), "putdest 10.0.5.25:2003\n")

    def test_the_service_user_and_root_may_change_when_polymur_runs_as_the_service_user(self):
        relay = self.relay(start=False)
        os.makedirs(relay.state_dir)
        os.chown(relay.state_dir, self.test_uid, -1)
        os.chmod(relay.tmp, 0o755)
        relay.args = self.as_test_user() + relay.args
        relay.start()
        self.assertEqual(nc(relay.api_port, "putdest 10.0.5.31:2003", self.as_test_user()),
                         "Registered destination: 10.0.5.31:2003\n")
        self.assertEqual(nc(relay.api_port, "putdest 10.0.5.32:2003"), "Registered destination: 10.0.5.32:2003\n")
        self.assertTrue(nc(relay.api_port, "deldest 10.0.5.31:2003", NOBODY).startswith("error: deldest refused: uid 65534"))
        self.assertEqual(os.stat(os.path.join(relay.state_dir, "runtime-destinations")).st_uid, self.test_uid)

    def test_admin_users_option_allows_a_named_user(self):
        relay = self.relay("--admin-users=" + TEST_USER)
        self.assertEqual(nc(relay.api_port, "putdest 10.0.5.27:2003", self.as_test_user()),
                         "Registered destination: 10.0.5.27:2003\n")
        self.assertTrue(nc(relay.api_port, "deldest 10.0.5.27:2003", NOBODY).startswith("error: deldest refused"))

    def test_unix_socket_checks_the_peer_credentials(self):
        relay = self.relay()
        sock = os.path.join(relay.state_dir, "polymur.sock")
        # Even a user who can reach the socket (here, made reachable on purpose) cannot change anything.
        os.chmod(relay.tmp, 0o755)
        os.chmod(relay.state_dir, 0o755)
        os.chmod(sock, 0o666)
        self.assertIn('"registered"', nc(0, "getdest", NOBODY, unix=sock))
        reply = nc(0, "putdest 10.0.5.28:2003", NOBODY, unix=sock)
        self.assertTrue(reply.startswith("error: putdest refused: uid 65534"), reply)
        self.assertEqual(nc(0, "putdest 10.0.5.28:2003", unix=sock), "Registered destination: 10.0.5.28:2003\n")

    def test_state_files_are_private(self):
        relay = self.relay()
        self.assertEqual(nc(relay.api_port, "putdest 10.0.5.29:2003"), "Registered destination: 10.0.5.29:2003\n")
        for name in os.listdir(relay.state_dir):
            mode = stat.S_IMODE(os.stat(os.path.join(relay.state_dir, name)).st_mode)
            if name.endswith(".sock"):
                self.assertEqual(mode, 0o660, name)
            else:
                self.assertEqual(mode & 0o037, 0, "%s is mode %o" % (name, mode))
        mode = stat.S_IMODE(os.stat(os.path.join(relay.state_dir, "runtime-destinations")).st_mode)
        self.assertEqual(mode, 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(relay.state_dir).st_mode) & 0o007, 0)


class AdminToken(RelayTestCase):
    """Beyond loopback: the relay runs in a private network namespace with a non-loopback address."""

    ADDRESS = "192.0.2.77"

    def netns_relay(self, *args):
        token_file = os.path.join(self.tmp, "token")
        with open(token_file, "w") as f:
            f.write("s3cret-token-0123456789\n")
        os.chmod(token_file, 0o600)
        relay = self.relay("--admin-token-file=" + token_file, *args, start=False)
        port = relay.api_port  # 0: the kernel picks one inside the namespace
        relay.args = ["unshare", "--net", "sh", "-c",
                      "ip link set lo up && ip addr add %s/32 dev lo && exec \"$@\"" % self.ADDRESS, "sh"] + \
                     [a if not a.startswith("--api-addr=") else "--api-addr=0.0.0.0:%d" % port for a in relay.args]
        relay.start(wait=False)
        self.inside = ["nsenter", "--net=/proc/%d/ns/net" % relay.proc.pid]
        wait_until(lambda: '"registered"' in nc(relay.api_port, "getdest", self.inside, host="127.0.0.1", timeout=5), 20,
                   message="admin inside the namespace")
        return relay

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root for a network namespace")
        self.tmp = __import__("tempfile").mkdtemp(prefix="polymur-token-")
        self.addCleanup(__import__("shutil").rmtree, self.tmp, True)

    def test_changes_from_beyond_loopback_need_the_token(self):
        relay = self.netns_relay()
        port = relay.api_port
        remote = dict(prefix=self.inside, host=self.ADDRESS)
        self.assertIn('"registered"', nc(port, "getdest", **remote))
        self.assertIn('"received"', nc(port, "stats", **remote))
        reply = nc(port, "putdest 10.0.5.30:2003", **remote)
        self.assertTrue(reply.startswith("error: putdest refused: changes from beyond loopback need token="), reply)
        self.assertTrue(nc(port, "putdest 10.0.5.30:2003 token=wrong-token-000000", **remote).startswith(
            "error: putdest refused: wrong token"))
        self.assertEqual(nc(port, "putdest 10.0.5.30:2003 token=s3cret-token-0123456789", **remote),
                         "Registered destination: 10.0.5.30:2003\n")
        # On loopback the kernel's word is enough for root, as before.
        self.assertEqual(nc(port, "deldest 10.0.5.30:2003", self.inside), "Unregistered destination: 10.0.5.30:2003\n")
        self.assertIn("wrong token", relay.log())

    def test_a_token_file_others_can_read_is_refused(self):
        token_file = os.path.join(self.tmp, "open-token")
        with open(token_file, "w") as f:
            f.write("s3cret-token-0123456789\n")
        os.chmod(token_file, 0o644)
        relay = self.relay("--admin-token-file=" + token_file, start=False)
        relay.start(wait=False)
        self.assertEqual(relay.proc.wait(10), 78)
        self.assertIn("readable by group or others (mode 0644)", relay.log())


class PutdestBounds(RelayTestCase):
    def test_putdest_of_the_relays_own_listener_is_refused(self):
        relay = self.relay()
        for target in ("127.0.0.1:%d" % relay.port, "localhost:%d" % relay.port, "127.0.0.1:%d:a" % relay.port):
            reply = relay.admin("putdest " + target)
            self.assertTrue(reply.startswith("error: destination %s is this relay's own listener" % target), reply)
        self.assertIn("putdest refused: it reaches this relay's own listener", relay.log())
        self.assertEqual(relay.stats()["destinations"], {})

    def test_a_wildcard_listener_matches_every_local_address(self):
        relay = self.relay(start=False)
        relay.args = [a if not a.startswith("--listen-addr=") else "--listen-addr=0.0.0.0:%d" % relay.port for a in relay.args]
        relay.start()
        addresses = ["127.0.0.1", "127.0.0.2", "0.0.0.0"]
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout.split()
        addresses += [a for a in out if ":" not in a][:1]
        for host in addresses:
            reply = relay.admin("putdest %s:%d" % (host, relay.port))
            self.assertIn("own listener", reply, host)
        # Another port on the same host is an ordinary destination.
        other = self.refused_port()
        self.assertEqual(relay.admin("putdest 127.0.0.1:%d" % other), "Registered destination: 127.0.0.1:%d\n" % other)

    def test_the_number_of_destinations_is_bounded(self):
        relay = self.relay("--max-destinations=3", destinations=["127.0.0.1:%d" % self.refused_port()])
        for i in range(2):
            self.assertTrue(relay.admin("putdest 10.0.6.%d:2003" % i).startswith("Registered"))
        reply = relay.admin("putdest 10.0.6.9:2003")
        self.assertEqual(reply, "error: 3 destinations are registered, the most --max-destinations allows; deldest one first\n")
        self.assertTrue(relay.admin("deldest 10.0.6.0:2003").startswith("Unregistered"))
        wait_until(lambda: relay.admin("putdest 10.0.6.9:2003").startswith("Registered"), 10, message="room again")


class AdminFloods(RelayTestCase):
    def open_clients(self, port, count):
        """`count` non-blocking connections to `port`, opened without waiting for the server to accept them."""
        raise_fd_limit(count + 256)
        clients = []
        for _ in range(count):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            clients.append(s)
        return clients

    def test_a_new_client_is_answered_while_slow_clients_flood_the_admin(self):
        # The default cap (64), and an open-file limit a flood without a cap would run through.
        relay = self.relay(start=False)
        relay.args = ["prlimit", "--nofile=1024:1024"] + relay.args
        relay.start()
        clients = self.open_clients(relay.api_port, 1200)
        try:
            start = time.monotonic()
            answered = 0
            for round_ in range(3):
                time.sleep(1)
                for s in clients:
                    try:
                        s.send(b"g")
                    except OSError:
                        pass
                t0 = time.monotonic()
                # Connecting may wait behind the flood in the kernel's queue; the bound is on the whole answer.
                with socket.create_connection(("127.0.0.1", relay.api_port), timeout=8) as s:
                    s.settimeout(8)
                    s.sendall(b"getdest\n")
                    reply = recv_all(s).decode()
                self.assertIn('"registered"', reply)
                self.assertLess(time.monotonic() - t0, 8.0)
                answered += 1
                reply = nc(0, "stats", unix=os.path.join(relay.state_dir, "polymur.sock"))
                self.assertIn('"received"', reply)
            self.assertEqual(answered, 3)
            self.assertLess(time.monotonic() - start, 30)
            wait_until(lambda: "oldest connections dropped at the cap of 64" in relay.log(), 15,
                       message="the periodic count of dropped connections")
        finally:
            for s in clients:
                s.close()

    def test_each_admin_connection_has_an_absolute_deadline(self):
        relay = self.relay()
        # Never a newline: only the deadline ends them.
        self.assert_trickling_clients_cut(relay.api_port, 40, 16, b"x" * 100, "admin clients")
        wait_until(lambda: "connections cut at the 10 s deadline" in relay.log(), 15, message="the periodic count")
    def test_out_of_descriptors_with_no_admin_connection_to_drop_pauses_accepting(self):
        """With an open-file limit below what the supervisor holds (nothing can be opened) and no admin
        connection to close for room, accept() fails while the client waits in the backlog: the supervisor pauses the admin listeners for 100 ms at a time instead of
        spinning, says so in its periodic report, and answers again once a descriptor is free."""
        relay = self.relay()
        supervisor = relay.proc.pid
        with open_file_limit(supervisor, 3):
            waiting = socket.create_connection(("127.0.0.1", relay.api_port), timeout=5)
            self.addCleanup(waiting.close)
            time.sleep(0.5)
            before = cpu_seconds(supervisor)
            time.sleep(2 * TIME_FACTOR)
            spent = cpu_seconds(supervisor) - before
        self.assertLess(spent, 0.5 * TIME_FACTOR, "the supervisor spent %.2f s of CPU in 2 s" % spent)
        waiting.settimeout(10)
        waiting.sendall(b"getdest\n")
        self.assertIn('"registered"', recv_all(waiting).decode())
        wait_until(lambda: "out of file descriptors, accepting paused" in relay.log(), 15, message="the periodic report")
        self.assertIsNone(relay.proc.poll())


if __name__ == "__main__":
    unittest.main()
