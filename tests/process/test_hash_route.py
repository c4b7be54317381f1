"""hash-route through the running relay: every reference vector, failover, removal.

Runs inside tests/process/in_netns.sh, so the vectors' own destinations (10.0.0.1:2004,
cache1:2004, ...) are real sockets in a private network namespace.
"""
import ast
import os
import re
import socket
import subprocess
import time
import unittest

from harness import POLYMUR, Polymur, Sink, send_lines, wait_settled, wait_until

VECTORS = os.path.join(os.path.dirname(__file__), "..", "data", "vectors")
CARBON = os.path.join(VECTORS, "graphite-carbon")
JUMP = os.path.join(VECTORS, "carbon-c-relay")


def metric_names():
    with open(os.path.join(CARBON, "metrics.txt"), "rb") as f:
        return [m for m in f.read().split(b"\n")[:-1] if m]  # the empty name is not a valid line


def carbon_rings():
    """name -> destination strings, from rings.txt."""
    rings = {}
    with open(os.path.join(CARBON, "rings.txt")) as f:
        for line in f:
            if line.startswith("### "):
                name = line.split()[1]
                rings[name] = ast.literal_eval(line.split("destinations=")[1].split(" nodes(")[0])
    return rings


def parse_dest(text):
    """(host, port, instance) as carbon parses it."""
    if text.startswith("["):
        host, rest = text[1:].split("]:", 1)
    else:
        host, rest = text.split(":", 1)
    port, _, instance = rest.partition(":")
    return host, int(port), (instance if ":" in rest else None)


def bind_host(host):
    return host if ":" in host else socket.gethostbyname(host)


class VectorRelay:
    """A relay in hash-route mode whose sinks listen on the destinations' own addresses."""

    def __init__(self, test, destinations, hash_type, extra=()):
        self.sinks = {}
        for d in destinations:
            host, port, _ = parse_dest(d)
            self.sinks[d] = Sink(port=port)
            self.sinks[d].host = bind_host(host)
        for d, s in self.sinks.items():
            start_sink_on(s)
        self.relay = Polymur("--distribution=hash-route", "--hash-type=" + hash_type, *extra, workers=2,
                             destinations=destinations)
        self.relay.start()

    def close(self):
        self.relay.cleanup()
        for s in self.sinks.values():
            s.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_and_collect(self, names, expected_total):
        send_lines(self.relay.port, [n + b" 1 1700000000" for n in names], connections=2)
        wait_until(lambda: sum(s.line_count() for s in self.sinks.values()) >= expected_total, 30,
                   message="%d lines at the sinks" % expected_total)
        wait_settled(self.relay, *self.sinks.values())
        got = {}
        for d, s in self.sinks.items():
            for line in s.data().split(b"\n")[:-1]:
                got.setdefault(line.rsplit(b" ", 2)[0], []).append(d)
        return got


def start_sink_on(sink):
    """Sink.start binds 127.0.0.1; vector destinations need their own address."""
    import threading
    sink._stop.clear()
    sink._server = socket.socket(socket.AF_INET6 if ":" in sink.host else socket.AF_INET)
    sink._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sink._server.bind((sink.host, sink.port))
    sink._server.listen(64)
    sink._server.settimeout(0.1)
    sink._thread = threading.Thread(target=sink._serve, daemon=True)
    sink._thread.start()


class VectorsThroughRelayTest(unittest.TestCase):
    maxDiff = None

    def check_ring(self, hash_type, ring, destinations):
        expected = {}
        with open(os.path.join(CARBON, "vectors_%s_%s.tsv" % (hash_type, ring)), "rb") as f:
            for row in f.read().split(b"\n")[1:]:
                if not row:
                    continue
                metric, _position, server, instance = row.split(b"\t")
                expected[metric] = (server.decode(), None if instance == b"None" else instance.decode())
        by_node = {(parse_dest(d)[0], parse_dest(d)[2]): d for d in destinations}
        names = metric_names()
        with VectorRelay(self, destinations, hash_type) as relay:
            got = relay.send_and_collect(names, len(names))
        for name in names:
            self.assertEqual(got.get(name), [by_node[expected[name]]], "%s %s: %r" % (hash_type, ring, name))

    def test_every_carbon_ch_and_fnv1a_ch_vector(self):
        rings = carbon_rings()
        for key, destinations in sorted(rings.items()):
            hash_type, ring = key.split("_ch_")
            with self.subTest(ring=key):
                self.check_ring(hash_type + "_ch", ring, destinations)

    def test_replication_factor_two_with_and_without_diverse_replicas(self):
        with open(os.path.join(CARBON, "router_rf2.tsv"), "rb") as f:
            sections = f.read().decode("utf-8", "surrogateescape").split("### ")[1:]
        self.assertEqual(len(sections), 4)
        names = metric_names()
        for section in sections:
            header, *rows = section.split("\n")
            hash_type = header.split("hash=")[1].split()[0]
            diverse = "DIVERSE_REPLICAS=True" in header
            destinations = ast.literal_eval(header.split("dests=")[1])
            with self.subTest(hash=hash_type, diverse=diverse):
                expected = {}
                for row in rows:
                    if row:
                        metric, dests = row.split("\t")
                        expected[metric.encode("utf-8", "surrogateescape")] = sorted(set(dests.split("|")))
                covered = [n for n in names if n in expected]  # the file covers a subset of metrics.txt
                self.assertGreater(len(covered), 100)
                with VectorRelay(self, destinations, hash_type,
                                 ("--replication-factor=2", "--diverse-replicas=%s" % ("true" if diverse else "false"))) as relay:
                    got = relay.send_and_collect(covered, sum(len(expected[n]) for n in covered))
                for name in covered:
                    self.assertEqual(sorted(got.get(name, [])), expected[name], "%r" % name)

    def test_every_jump_fnv1a_ch_vector(self):
        names = metric_names()
        for file in sorted(os.listdir(JUMP)):
            if not (file.startswith("jump_") and file.endswith(".tsv")):
                continue
            with open(os.path.join(JUMP, file), "rb") as f:
                rows = f.read().split(b"\n")
            cluster = rows[0].decode().split()
            replication = int(cluster[cluster.index("replication") + 1]) if "replication" in cluster else 1
            destinations = [d.replace("=", ":") for d in cluster if ":" in d and d[0].isdigit()]
            expected = {}
            for row in rows[2:]:
                if row:
                    metric, dests = row.split(b"\t")
                    expected[metric] = dests.decode().split("|")
            with self.subTest(file=file):
                host_port = {d: ":".join(d.split(":")[:2]) for d in destinations}
                with VectorRelay(self, destinations, "jump_fnv1a_ch", ("--replication-factor=%d" % replication,)) as relay:
                    got = relay.send_and_collect(names, sum(len(expected[n]) for n in names))
                for name in names:
                    self.assertEqual(sorted(host_port[d] for d in got.get(name, [])), sorted(expected[name]), "%r" % name)

    def test_every_carbon_c_relay_compat_vector(self):
        """--hash-compat=carbon-c-relay: every cluster carbon-c-relay 3.7.3 answered for."""
        files = sorted(f for f in os.listdir(JUMP) if f.startswith("compat_") and f.endswith(".tsv"))
        self.assertEqual(len(files), 39)
        for file in files:
            with open(os.path.join(JUMP, file), "rb") as f:
                rows = f.read().split(b"\n")
            cluster = rows[0].decode().split(":", 1)[1].split()
            hash_type = cluster[0]
            replication = int(cluster[cluster.index("replication") + 1]) if "replication" in cluster else 1
            destinations = [d.replace("=", ":") for d in cluster[1:] if ":" in d]
            address = {}
            for d in destinations:
                host, port, _ = parse_dest(d)
                address[d] = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
            expected = {}
            for row in rows[2:]:
                if row:
                    metric, dests = row.rsplit(b"\t", 1)
                    # polymur refuses control characters in names (see README, Input)
                    if not re.search(r"[\x00-\x1f\x7f-\x9f]", metric.decode("utf-8", "surrogateescape")):
                        expected[metric] = sorted(dests.decode().split("|"))
            self.assertGreater(len(expected), 1000)
            with self.subTest(file=file):
                with VectorRelay(self, destinations, hash_type,
                                 ("--hash-compat=carbon-c-relay", "--replication-factor=%d" % replication)) as relay:
                    got = relay.send_and_collect(list(expected), sum(len(v) for v in expected.values()))
                for name, want in expected.items():
                    self.assertEqual(sorted(address[d] for d in got.get(name, [])), want, "%s %r" % (file, name))

    def test_same_ring_node_twice_is_refused(self):
        r = subprocess.run([POLYMUR, "--distribution=hash-route", "--destinations=127.0.0.1:2004:a,127.0.0.1:2104:a",
                            "--workers=1", "--state-dir=/tmp/polymur-dup-node"], capture_output=True, text=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("127.0.0.1:2004:a", r.stderr)
        self.assertIn("127.0.0.1:2104:a", r.stderr)


def lookup(destinations, names, hash_type="carbon_ch"):
    out = subprocess.run([POLYMUR, "lookup", "--distribution=hash-route", "--hash-type=" + hash_type,
                          "--destinations=" + ",".join(destinations)],
                         input=b"\n".join(names) + b"\n", capture_output=True, check=True).stdout
    return {line.split(b"\t")[0]: line.split(b"\t")[1].decode() for line in out.split(b"\n") if line}


class FailoverTest(unittest.TestCase):
    def setUp(self):
        self.sinks = {name: Sink().start() for name in "abc"}
        for s in self.sinks.values():
            self.addCleanup(s.stop)
        self.dest = {name: "127.0.0.1:%d:%s" % (s.port, name) for name, s in self.sinks.items()}

    def relay(self, *args):
        if not any(a.startswith("--failover-after") for a in args):
            args += ("--failover-after=2",)
        r = Polymur("--distribution=hash-route", *args, destinations=[self.dest[k] for k in sorted(self.dest)])
        self.addCleanup(r.cleanup)
        return r.start()

    def lines_at(self, name):
        return set(self.sinks[name].lines())

    def test_failed_destination_leaves_the_ring_and_its_queue_moves_to_the_others(self):
        relay = self.relay()
        c = self.dest["c"]
        wait_until(lambda: relay.stats()["destinations"][c]["state"] == "connected", 10)
        self.sinks["c"].stop()
        wait_until(lambda: relay.stats()["destinations"][c]["state"] == "down", 10, message="c down")

        phase1 = [b"phase1.m%d" % i for i in range(3000)]
        three = lookup(list(self.dest.values()), phase1)
        two = lookup([self.dest["a"], self.dest["b"]], phase1)
        send_lines(relay.port, [n + b" 1 1700000000" for n in phase1])
        for_c = [n for n in phase1 if three[n] == c]
        self.assertGreater(len(for_c), 500)

        wait_until(lambda: not relay.stats()["destinations"][c]["in_ring"], 15, message="c out of the ring")
        wait_until(lambda: relay.stats()["destinations"][c]["queued"] == 0, 15, message="c's queue moved")
        self.assertEqual(relay.stats()["destinations"][c]["rerouted"], len(for_c))
        self.assertIn("left the ring after", relay.log())

        phase2 = [b"phase2.m%d" % i for i in range(2000)]
        two2 = lookup([self.dest["a"], self.dest["b"]], phase2)
        send_lines(relay.port, [n + b" 1 1700000000" for n in phase2])
        expected = {"a": set(), "b": set()}
        for n in phase1:
            target = three[n] if three[n] != c else two[n]
            expected["a" if target == self.dest["a"] else "b"].add(n + b" 1 1700000000")
        for n in phase2:
            expected["a" if two2[n] == self.dest["a"] else "b"].add(n + b" 1 1700000000")
        for name in "ab":
            want = {line.decode() for line in expected[name]}
            wait_until(lambda: self.lines_at(name) >= want, 20, message="every line at " + name)
            self.assertEqual(self.lines_at(name), want)
            self.assertEqual(len(self.sinks[name].lines()), len(want), "duplicates at " + name)
        rerouted_arrivals = sum(1 for n in for_c)
        self.assertEqual(relay.stats()["destinations"][c]["rerouted"], rerouted_arrivals)

        # c comes back: it rejoins the ring and receives its share again.
        self.sinks["c"] = Sink(port=self.sinks["c"].port).start()
        self.addCleanup(self.sinks["c"].stop)
        wait_until(lambda: relay.stats()["destinations"][c]["in_ring"], 15, message="c back in the ring")
        phase3 = [b"phase3.m%d" % i for i in range(1000)]
        three3 = lookup(list(self.dest.values()), phase3)
        send_lines(relay.port, [n + b" 1 1700000000" for n in phase3])
        want_c = {(n + b" 1 1700000000").decode() for n in phase3 if three3[n] == c}
        wait_until(lambda: self.lines_at("c") >= want_c, 15, message="c's share after it returned")
        self.assertEqual(self.lines_at("c"), want_c)
        self.assertIn("rejoined the ring", relay.log())

    def test_hold_keeps_the_queue_until_the_destination_returns(self):
        relay = self.relay("--failover=hold")
        c = self.dest["c"]
        wait_until(lambda: relay.stats()["destinations"][c]["state"] == "connected", 10)
        self.sinks["c"].stop()
        wait_until(lambda: relay.stats()["destinations"][c]["state"] == "down", 10)
        names = [b"hold.m%d" % i for i in range(2000)]
        three = lookup(list(self.dest.values()), names)
        send_lines(relay.port, [n + b" 1 1700000000" for n in names])
        for_c = {(n + b" 1 1700000000").decode() for n in names if three[n] == c}
        # Past --failover-after=2 failed reconnects: the hold policy keeps c in the ring and its queue.
        reconnects = relay.stats()["destinations"][c]["reconnects"]
        wait_until(lambda: relay.stats()["destinations"][c]["reconnects"] >= reconnects + 3, 15,
                   message="three more failed reconnects to c")
        stats = relay.stats()["destinations"][c]
        self.assertTrue(stats["in_ring"])
        self.assertEqual(stats["queued"], len(for_c))
        self.assertEqual(stats["rerouted"], 0)
        self.sinks["c"] = Sink(port=self.sinks["c"].port).start()
        self.addCleanup(self.sinks["c"].stop)
        wait_until(lambda: self.lines_at("c") == for_c, 20, message="c's held lines delivered")

    def test_putdest_rebuilds_the_ring_within_a_second_and_loses_nothing(self):
        c = self.dest.pop("c")  # start with a and b; c joins at runtime
        relay = self.relay()
        self.dest["c"] = c
        first = [b"before.m%d" % i for i in range(2000)]
        two = lookup([self.dest["a"], self.dest["b"]], first)
        send_lines(relay.port, [n + b" 1 1700000000" for n in first])
        wait_until(lambda: relay.stats()["received"] == 2000, 10)
        started = time.monotonic()
        self.assertEqual(relay.admin("putdest " + c), "Registered destination: %s\n" % c)
        # Every worker has switched tables once its seen generation caught up; poll the effect.
        probe = [b"probe.m%d" % i for i in range(200)]
        three_probe = lookup(list(self.dest.values()), probe)
        for_c = {(n + b" 1 1700000000").decode() for n in probe if three_probe[n] == c}
        self.assertTrue(for_c)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))  # "within one second"
        send_lines(relay.port, [n + b" 1 1700000000" for n in probe], connections=2)
        wait_until(lambda: self.lines_at("c") >= for_c, 10, message="c's share one second after putdest")
        self.assertEqual(self.lines_at("c"), for_c)
        for name in "ab":
            want = {(n + b" 1 1700000000").decode() for n in first if two[n] == self.dest[name]}
            want |= {(n + b" 1 1700000000").decode() for n in probe if three_probe[n] == self.dest[name]}
            wait_until(lambda: self.lines_at(name) >= want, 10, message="lines at " + name)
            self.assertEqual(self.lines_at(name), want)
        self.assertEqual(relay.stats()["unroutable"], 0)

    def test_names_placed_before_a_putdest_go_where_the_new_ring_puts_them(self):
        # A listener keeps the destinations of each ring position it has placed until its table changes
        # (route/position_slots.hpp): the same names, before and after putdest, follow each ring in turn.
        c = self.dest.pop("c")
        relay = self.relay()
        self.dest["c"] = c
        names = [b"again.m%d" % i for i in range(3000)]
        two = lookup([self.dest["a"], self.dest["b"]], names)
        three = lookup(list(self.dest.values()), names)
        self.assertGreater(sum(three[n] != two[n] for n in names), 500)
        send_lines(relay.port, [n + b" 1 1700000000" for n in names], connections=2)
        wait_until(lambda: relay.stats()["received"] == len(names), 10)
        started = time.monotonic()
        self.assertEqual(relay.admin("putdest " + c), "Registered destination: %s\n" % c)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))  # "within one second", as above
        send_lines(relay.port, [n + b" 1 1700000001" for n in names], connections=2)
        for name in "abc":
            want = {(n + b" 1 1700000000").decode() for n in names if two[n] == self.dest[name]}
            want |= {(n + b" 1 1700000001").decode() for n in names if three[n] == self.dest[name]}
            wait_until(lambda: self.lines_at(name) >= want, 10, message="lines at " + name)
            self.assertEqual(self.lines_at(name), want)

    def test_deldest_moves_the_removed_destinations_queue(self):
        relay = self.relay("--failover-after=1000")
        b = self.dest["b"]
        wait_until(lambda: relay.stats()["destinations"][b]["state"] == "connected", 10)
        self.sinks["b"].stop()
        wait_until(lambda: relay.stats()["destinations"][b]["state"] == "down", 10)
        names = [b"del.m%d" % i for i in range(2000)]
        three = lookup(list(self.dest.values()), names)
        two = lookup([self.dest["a"], self.dest["c"]], names)
        send_lines(relay.port, [n + b" 1 1700000000" for n in names])
        wait_until(lambda: relay.stats()["destinations"][b]["queued"] == sum(1 for n in names if three[n] == b), 10)
        self.assertEqual(relay.admin("deldest " + b), "Unregistered destination: %s\n" % b)
        wait_until(lambda: b not in relay.stats()["destinations"], 15, message="b removed")
        for name in "ac":
            want = {(n + b" 1 1700000000").decode() for n in names
                    if (three[n] if three[n] != b else two[n]) == self.dest[name]}
            wait_until(lambda: self.lines_at(name) >= want, 15, message="lines at " + name)
            self.assertEqual(self.lines_at(name), want)


if __name__ == "__main__":
    unittest.main()
