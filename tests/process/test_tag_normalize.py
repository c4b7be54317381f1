"""--tag-normalize through the real binary: tagged names reach the destinations (and are hashed)
the way carbon-relay forwards them with TAG_RELAY_NORMALIZED = True."""
import pickle
import socket
import struct
import subprocess
import unittest

from harness import POLYMUR, Polymur, Sink, send_lines, wait_settled, wait_until

# name as sent -> what carbon's TaggedSeries.parse(name).path makes of it (asked below)
NAMES = [b"cpu;host=a;dc=x", b"cpu;dc=x;host=a", b"cpu;host=b;host=a;dc=x", b"~cpu;name=y;dc=x;host=a",
         b'cpu{host="a",dc="x"}', b"disk.used;a.b=1;a=2", b"untagged.metric", b"bad;a=~x;b=1", b"bad;=1;b=2",
         b"temp;city=z\xc3\xbcrich;a=1"]


def carbon_normalized(names):
    script = ("import sys\nfrom carbon.util import TaggedSeries\n"
              "for n in sys.stdin.buffer.read().decode('utf-8').split('\\n')[:-1]:\n"
              "    try:\n        n = TaggedSeries.parse(n).path\n    except Exception:\n        pass\n"
              "    sys.stdout.buffer.write(n.encode('utf-8') + b'\\n')\n")
    out = subprocess.run(["/usr/bin/python3", "-c", script], input=b"".join(n + b"\n" for n in names),
                         capture_output=True, check=True).stdout
    return dict(zip(names, out.split(b"\n")[:-1]))


class TagNormalizeTest(unittest.TestCase):
    def setUp(self):
        self.expected = carbon_normalized(NAMES)
        # the cases must mean something: most change, two are refused by carbon and stay as sent
        self.assertEqual(self.expected[b"cpu;host=a;dc=x"], b"cpu;dc=x;host=a")
        self.assertEqual(self.expected[b"bad;a=~x;b=1"], b"bad;a=~x;b=1")

    def relay(self, *args, sinks):
        relay = Polymur(*args, destinations=[s.address for s in sinks])
        self.addCleanup(relay.cleanup)
        return relay.start()

    def test_forwarded_names_are_carbons_normalized_names(self):
        sink = Sink().start()
        self.addCleanup(sink.stop)
        relay = self.relay("--tag-normalize", sinks=[sink])
        send_lines(relay.port, [n + b" 1.5 1700000000" for n in NAMES])
        wait_until(lambda: sink.line_count() >= len(NAMES), 10, message="every line at the sink")
        wait_settled(relay, sink)
        got = sorted(sink.data().split(b"\n")[:-1])
        self.assertEqual(got, sorted(self.expected[n] + b" 1.5 1700000000" for n in NAMES))
        self.assertEqual(relay.stats()["invalid"], 0)

    def test_pickle_input_is_normalized_too(self):
        sink = Sink().start()
        self.addCleanup(sink.stop)
        relay = self.relay("--tag-normalize", "--pickle-listen-addr=127.0.0.1:0", sinks=[sink])
        pickle_port = relay.bound_port("pickle")
        metrics = [(n.decode("utf-8"), (1700000000, 1.5)) for n in NAMES]
        payload = pickle.dumps(metrics, protocol=2)
        with socket.create_connection(("127.0.0.1", pickle_port)) as conn:
            conn.sendall(struct.pack("!L", len(payload)) + payload)
        wait_until(lambda: sink.line_count() >= len(NAMES), 10, message="every metric at the sink")
        wait_settled(relay, sink)
        names = sorted(line.rsplit(b" ", 2)[0] for line in sink.data().split(b"\n")[:-1])
        self.assertEqual(names, sorted(self.expected[n] for n in NAMES))

    def test_without_the_option_names_are_forwarded_as_sent(self):
        sink = Sink().start()
        self.addCleanup(sink.stop)
        relay = self.relay(sinks=[sink])
        send_lines(relay.port, [n + b" 1.5 1700000000" for n in NAMES])
        wait_until(lambda: sink.line_count() >= len(NAMES), 10, message="every line at the sink")
        wait_settled(relay, sink)
        self.assertEqual(sorted(sink.data().split(b"\n")[:-1]), sorted(n + b" 1.5 1700000000" for n in NAMES))

    def test_hash_route_places_every_tag_order_where_the_normalized_name_goes(self):
        sinks = [Sink().start() for _ in range(4)]
        for s in sinks:
            self.addCleanup(s.stop)
        destinations = ["%s:%s" % (s.address, "abcd"[k]) for k, s in enumerate(sinks)]
        relay = Polymur("--distribution=hash-route", "--tag-normalize", destinations=destinations)
        self.addCleanup(relay.cleanup)
        relay.start()
        orders = [b"svc.req;dc=x;host=h%d;env=prod" % k for k in range(200)]
        orders += [b"svc.req;host=h%d;env=prod;dc=x" % k for k in range(200)]
        orders += [b"svc.req;env=prod;dc=x;host=h%d" % k for k in range(200)]
        normalized = [b"svc.req;dc=x;env=prod;host=h%d" % k for k in range(200)]
        where = subprocess.run([POLYMUR, "lookup", "--destinations=" + ",".join(destinations)],
                               input=b"".join(n + b"\n" for n in normalized), capture_output=True, check=True).stdout
        place = dict(line.split(b"\t") for line in where.split(b"\n") if line)
        self.assertGreater(len(set(place.values())), 2)  # the names spread over the ring
        send_lines(relay.port, [n + b" 1 1700000000" for n in orders])
        wait_until(lambda: sum(s.line_count() for s in sinks) >= len(orders), 10, message="every line")
        wait_settled(relay, *sinks)
        for k, s in enumerate(sinks):
            lines = s.data().split(b"\n")[:-1]
            want = sorted(n + b" 1 1700000000" for n in normalized if place[n] == destinations[k].encode())
            self.assertEqual(sorted(lines), sorted(want * 3), destinations[k])


if __name__ == "__main__":
    unittest.main()
