"""Carbon's pickle protocol and UDP lines into the real binary: Python's pickle in every protocol,
hostile and broken frames (refused, counted, the connection closed, nothing else affected), the hint
on the plaintext port, and UDP datagrams with the kernel's drop count in `stats`."""
import os
import pickle
import socket
import struct
import time
import unittest

from harness import RelayTestCase, wait_until

SEEDS = os.path.join(os.path.dirname(__file__), "..", "data", "fuzz", "fuzz_pickle")


def frame(obj, protocol):
    payload = pickle.dumps(obj, protocol=protocol)
    return struct.pack("!L", len(payload)) + payload


def seed(name):
    with open(os.path.join(SEEDS, name), "rb") as f:
        return f.read()


def closed_by_peer(sock, timeout=10):
    """True once the peer has closed `sock` (reads EOF or a reset)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


class PickleInputTest(RelayTestCase):
    def start(self, *args, workers=2):
        self.out = self.sink()
        relay = self.relay("--pickle-listen-addr=127.0.0.1:0", *args, workers=workers, destinations=[self.out.address])
        self.pickle_port = relay.bound_port("pickle")
        return relay

    def send(self, data):
        with socket.create_connection(("127.0.0.1", self.pickle_port)) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            while s.recv(4096):
                pass

    def test_every_pickle_protocol_arrives_exactly(self):
        r = self.start()
        expected = []
        for proto in range(6):
            batch = [("proto%d.m%d" % (proto, i), (1700000000 + i, i * 0.25)) for i in range(200)]
            if proto >= 3:  # bytes names and values, as Python 3 clients may send
                batch.append((b"proto%d.bytes" % proto, (1700000000, b"42")))
            lists = [["proto%d.list%d" % (proto, i), [1700000000, i]] for i in range(50)]
            self.send(frame(batch, proto) + frame(lists, proto))
            expected += ["%s %r %d" % (n if isinstance(n, str) else n.decode(), v if not isinstance(v, bytes) else 42.0, t)
                         for n, (t, v) in batch]
            expected += ["proto%d.list%d %d 1700000000" % (proto, i, i) for i in range(50)]
        wait_until(lambda: self.out.line_count() >= len(expected), message="every metric")
        got = self.out.lines()
        canonical = lambda line: (line.split()[0], float(line.split()[1]), float(line.split()[2]))
        self.assertEqual(sorted(map(canonical, got)), sorted(map(canonical, expected)))
        self.assertEqual(r.stats()["pickle_invalid"], 0)
        self.assertEqual(r.stats()["received"], len(expected))

    def test_refused_frames_close_only_their_connection(self):
        r = self.start()
        good = socket.create_connection(("127.0.0.1", self.pickle_port))
        self.addCleanup(good.close)
        good.sendall(frame([("before.bad", (1700000000, 1))], 2))
        wait_until(lambda: self.out.line_count() >= 1, message="the first good metric")
        hostile = ["evil_global_reduce", "evil_stack_global", "evil_inside_list", "unknown_dict", "truncated",
                   "trailing_bytes", "not_a_list"]
        for name in hostile:
            with socket.create_connection(("127.0.0.1", self.pickle_port)) as s:
                # A valid frame before the bad one is delivered; nothing after it is read.
                s.sendall(frame([("ok." + name, (1700000000, 1))], 2) + seed(name) + frame([("after." + name, (1700000000, 1))], 2))
                self.assertTrue(closed_by_peer(s), name)
        # Over the limit: refused from its length alone, before its bytes arrive.
        with socket.create_connection(("127.0.0.1", self.pickle_port)) as s:
            s.sendall(struct.pack("!L", (1 << 20) + 1) + b"\x80\x02]")
            self.assertTrue(closed_by_peer(s), "over-long frame")
        # A frame cut by the client's close.
        with socket.create_connection(("127.0.0.1", self.pickle_port)) as s:
            s.sendall(frame([("cut", (1700000000, 1))], 2)[:-3])
        wait_until(lambda: r.stats()["pickle_invalid"] == len(hostile) + 2, message="every refusal counted")
        # The connection that behaved is still open and still delivered.
        good.sendall(frame([("after.bad", (1700000000, 2))], 4))
        wait_until(lambda: self.out.line_count() >= 2 + len(hostile), message="the good connection's second metric")
        names = {line.split()[0] for line in self.out.lines()}
        self.assertEqual(names, {"before.bad", "after.bad"} | {"ok." + n for n in hostile})
        self.assertIn("pickle frame refused, closing the connection", r.log())
        self.assertIsNone(r.proc.poll())
        self.assertEqual(len(r.children()), 3)  # two listeners and the output, none crashed

    def test_elements_go_through_line_validation(self):
        r = self.start()
        bad = [("bad name", (1700000000, 1)), ("nan.value", (1700000000, float("nan"))),
               ("ctl\x01name", (1700000000, 1)), ("neg.ts", (-5, 1)), ("not.a.pair", (1,)), ("now", (-1, 3))]
        self.send(frame(bad + [("good", (1700000000, 7))], 2))
        wait_until(lambda: r.stats()["invalid"] == 5, message="five invalid")
        wait_until(lambda: self.out.line_count() == 2, message="two forwarded")
        lines = sorted(self.out.lines())
        self.assertEqual(lines[0], "good 7 1700000000")
        name, value, ts = lines[1].split()
        self.assertEqual((name, value), ("now", "3"))
        self.assertLess(abs(int(ts) - time.time()), 60)  # -1 is stamped with the time received, as for lines

    def test_pickle_on_the_plaintext_port_is_explained_once(self):
        r = self.start(workers=1)  # each worker says it once per source host
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", r.port)) as s:
                s.sendall(frame([("a", (1700000000, 1))], 2))
        wait_until(lambda: "this looks like pickle" in r.log(), message="the hint")
        time.sleep(1.5)
        self.assertEqual(r.log().count("this looks like pickle"), 1)
        self.assertIn("send it to 127.0.0.1:%d or set DESTINATION_PROTOCOL = line" % self.pickle_port, r.log())


class UdpInputTest(RelayTestCase):
    def test_lines_in_datagrams_arrive_and_invalid_ones_are_counted(self):
        out = self.sink()
        r = self.relay("--udp-listen-addr=127.0.0.1:0", destinations=[out.address])
        port = r.bound_port("UDP")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for d in range(100):
                lines = ["udp.d%d.m%d %d 1700000000" % (d, i, i) for i in range(10)]
                # Every other datagram ends without its '\n', as carbon's UDP receiver allows.
                s.sendto(("\n".join(lines) + ("\n" if d % 2 else "")).encode(), ("127.0.0.1", port))
                time.sleep(0.001)
            s.sendto(b"bad line\nudp.last 1 1700000000\n", ("127.0.0.1", port))
        wait_until(lambda: out.line_count() >= 1001, message="every UDP line")
        self.assertEqual(sorted(out.lines()), sorted(["udp.d%d.m%d %d 1700000000" % (d, i, i) for d in range(100)
                                                      for i in range(10)] + ["udp.last 1 1700000000"]))
        stats = r.stats()
        self.assertEqual(stats["udp_datagrams"], 101)
        self.assertEqual(stats["invalid"], 1)
        self.assertEqual(stats["udp_dropped"], 0)

    def test_kernel_drops_appear_in_stats(self):
        out = self.sink()
        # The smallest buffer the kernel allows and one worker stopped: the burst must overflow it.
        r = self.relay("--udp-listen-addr=127.0.0.1:0", "--udp-rcvbuf=4096", workers=1, destinations=[out.address])
        port = r.bound_port("UDP")
        listener = [pid for pid, title in r.children().items() if "listener" in title][0]
        os.kill(listener, 19)  # SIGSTOP
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for i in range(2000):
                    s.sendto(b"burst.m%d 1 1700000000\n" % i, ("127.0.0.1", port))
        finally:
            os.kill(listener, 18)  # SIGCONT
        # The kernel's drop count rides on the datagrams queued after the drops: send one now and then
        # (the first ones may meet a buffer still full) until stats shows it.
        probes = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            def dropped_in_stats():
                nonlocal probes
                s.sendto(b"after.burst.%d 1 1700000000\n" % probes, ("127.0.0.1", port))
                probes += 1
                return r.stats()["udp_dropped"] > 0
            wait_until(dropped_in_stats, 30, interval=0.2, message="drops in stats")
        # Every datagram was either read or counted as dropped.
        wait_until(lambda: r.stats()["udp_datagrams"] + r.stats()["udp_dropped"] == 2000 + probes, 10,
                   message="read + dropped = sent")
        wait_until(lambda: out.line_count() == r.stats()["received"], message="delivery of what was read")
        self.assertGreater(r.stats()["received"], 0)

if __name__ == "__main__":
    unittest.main()
