#!/usr/bin/env python3
"""Ingest rates of polymur's pickle and UDP listeners against carbon-relay (graphite-carbon, Python)
on the same inputs, and carbon-c-relay's plaintext TCP rate as the reference (docs/PERFORMANCE.md).
Not a test: it prints figures, with the load average, and asserts nothing.

Every relay forwards to one polymur-sink as plaintext; a run's rate is the metrics that reached the
sink divided by the time from the first byte sent to the last metric counted there. The senders write
pre-built bytes (pickle frames of 500 metrics in protocol 2, as carbon-relay batches them; datagrams
of about 1400 bytes, as collectd fills them; plaintext lines) from one Python process per connection,
so the sender is not what is measured.

usage: bench/ingest_protocols.py [--count N] [--carbon-count N] [--json FILE]
(build first: cmake --build build; carbon-c-relay and graphite-carbon from Debian)
"""
import argparse
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (the sink, the relays' process handling, /proc helpers)

CARBON_RELAY_CONF = """[relay]
STORAGE_DIR = {root}/storage/
LOG_DIR = {root}/log/
PID_DIR = {root}/run/
USER =
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {line}
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle}
ENABLE_UDP_LISTENER = True
UDP_RECEIVER_INTERFACE = 127.0.0.1
UDP_RECEIVER_PORT = {udp}
RELAY_METHOD = consistent-hashing
DESTINATIONS = 127.0.0.1:{sink}
DESTINATION_PROTOCOL = line
MAX_QUEUE_SIZE = 10000000
MAX_DATAPOINTS_PER_MESSAGE = 500
USE_FLOW_CONTROL = True
ENABLE_TAGS = False
LOG_LISTENER_CONN_SUCCESS = False
"""


def names(count, prefix):
    return ["%s.host%03d.metric%05d" % (prefix, i % 1000, i // 1000) for i in range(count)]


def pickle_stream(count, now):
    out = bytearray()
    all_names = names(count, "pickle")
    for start in range(0, count, 500):
        batch = [(n, (now, float(i))) for i, n in enumerate(all_names[start:start + 500], start)]
        payload = pickle.dumps(batch, protocol=2)
        out += struct.pack("!L", len(payload)) + payload
    return bytes(out)


def line_stream(count, now, prefix="line"):
    return "".join("%s %d %d\n" % (n, i, now) for i, n in enumerate(names(count, prefix))).encode()


def datagrams(count, now):
    out, current = [], bytearray()
    for i, n in enumerate(names(count, "udp")):
        line = b"%s %d %d\n" % (n.encode(), i, now)
        if len(current) + len(line) > 1400:
            out.append(bytes(current))
            current = bytearray()
        current += line
    if current:
        out.append(bytes(current))
    return out


def send_tcp(port, chunks):
    """Each chunk over its own connection, in parallel processes."""
    def one(data):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(data)
    procs = [multiprocessing.Process(target=one, args=(c,)) for c in chunks]
    for p in procs:
        p.start()
    return procs


def send_udp(port, grams, pace_every=0, pause=0.0):
    def run():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i, g in enumerate(grams):
                s.sendto(g, ("127.0.0.1", port))
                if pace_every and i % pace_every == 0:
                    time.sleep(pause)
    p = multiprocessing.Process(target=run)
    p.start()
    return [p]


def split_frames(stream, parts):
    """Splits a pickle stream at frame boundaries into `parts` pieces."""
    offsets = [0]
    pos = 0
    while pos < len(stream):
        pos += 4 + struct.unpack("!L", stream[pos:pos + 4])[0]
        offsets.append(pos)
    step = max(1, (len(offsets) - 1) // parts)
    cuts = offsets[::step][:parts] + [len(stream)]
    return [stream[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


def split_lines(stream, parts):
    out, start = [], 0
    for k in range(1, parts + 1):
        end = len(stream) if k == parts else stream.index(b"\n", len(stream) * k // parts) + 1
        out.append(stream[start:end])
        start = end
    return [c for c in out if c]


def measure(sink, expected, start_senders, timeout):
    """Starts the senders, waits for `expected` metrics at the sink (or no progress for 10 s); returns
    (count, seconds from the first send to the last metric at the sink, both on CLOCK_MONOTONIC)."""
    start = time.monotonic()
    senders = start_senders()
    last, last_change = -1, start
    while True:
        count = sink.count()
        now = time.monotonic()
        if count != last:
            last, last_change = count, now
        if count >= expected or now - last_change > 10 or now - start > timeout:
            break
        time.sleep(0.02)
    for p in senders:
        p.join(5)
    last_ns = sink.status_values().get("last_ns")
    seconds = last_ns / 1e9 - start if last_ns else last_change - start
    return last, max(seconds, 1e-6)


class PolymurWith(compare.Polymur):
    extra = []

    def _spawn(self, args):
        super()._spawn(args + self.extra)


def run_polymur(args, work, kind, sink):
    port = compare.free_port()
    PolymurWith.extra = ["--pickle-listen-addr=127.0.0.1:%d" % port] if kind == "pickle" else \
        ["--udp-listen-addr=127.0.0.1:%d" % port, "--udp-rcvbuf=%d" % (64 << 20)]
    relay = PolymurWith(args.polymur_bin, work, kind, [sink.port], "broadcast")
    try:
        relay.wait_ready()
        return relay, port
    except Exception:
        relay.stop()
        raise


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--polymur-bin", default=os.path.join(compare.ROOT, "build", "polymur"))
    ap.add_argument("--sink-bin", default=os.path.join(compare.ROOT, "build", "polymur-sink"))
    ap.add_argument("--count", type=int, default=2_000_000, help="metrics per polymur and carbon-c-relay run")
    ap.add_argument("--carbon-count", type=int, default=200_000, help="metrics per carbon-relay (Python) run")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="polymur-ingest-bench-")
    now = int(time.time())
    results = []
    print("load average before: %s" % " ".join(open("/proc/loadavg").read().split()[:3]), flush=True)

    def record(relay_name, kind, sent, got, seconds, extra=None):
        r = {"relay": relay_name, "input": kind, "sent": sent, "delivered": got, "seconds": round(seconds, 3),
             "rate": round(got / seconds), "loadavg": open("/proc/loadavg").read().split()[0]}
        r.update(extra or {})
        results.append(r)
        print("%-15s %-16s sent %9d delivered %9d in %7.2f s: %10.0f metrics/s (load %s)%s" % (
            relay_name, kind, sent, got, seconds, got / seconds, r["loadavg"],
            "" if not extra else " " + json.dumps(extra)), flush=True)

    # polymur: pickle over TCP, then lines over UDP.
    stream = pickle_stream(args.count, now)
    sink = compare.Sink(args.sink_bin, work, "sink-polymur-pickle")
    relay, port = run_polymur(args, work, "pickle", sink)
    got, seconds = measure(sink, args.count, lambda: send_tcp(port, split_frames(stream, args.connections)), 300)
    record("polymur", "pickle", args.count, got, seconds, {"pickle_invalid": json.loads(relay.admin("stats"))["pickle_invalid"]})
    relay.stop()
    sink.finish()

    grams = datagrams(args.count, now)
    sink = compare.Sink(args.sink_bin, work, "sink-polymur-udp")
    relay, port = run_polymur(args, work, "udp", sink)
    got, seconds = measure(sink, args.count, lambda: send_udp(port, grams), 300)
    stats = json.loads(relay.admin("stats"))
    record("polymur", "udp", args.count, got, seconds, {"udp_datagrams": stats["udp_datagrams"], "udp_dropped": stats["udp_dropped"],
                                                        "datagrams_sent": len(grams)})
    relay.stop()
    sink.finish()

    # carbon-c-relay, plaintext TCP: the reference rate.
    if os.path.exists("/usr/bin/carbon-c-relay"):
        sink = compare.Sink(args.sink_bin, work, "sink-ccr")
        relay = compare.CarbonCRelay("/usr/bin/carbon-c-relay", work, "plain", [sink.port], "broadcast",
                                     ["-w", str(os.cpu_count() or 2), "-b", "10000", "-q", "5000000", "-B", "4096", "-s"])
        relay.wait_ready()
        lines = line_stream(args.count, now)
        got, seconds = measure(sink, args.count, lambda: send_tcp(relay.port, split_lines(lines, args.connections)), 300)
        record("carbon-c-relay", "plaintext tcp", args.count, got, seconds)
        relay.stop()
        sink.finish()

    # carbon-relay (Python): pickle and UDP, fewer metrics (it is much slower).
    if shutil.which("carbon-relay"):
        for kind in ("pickle", "udp"):
            sink = compare.Sink(args.sink_bin, work, "sink-carbon-relay-" + kind)
            root = os.path.join(work, "carbon-" + kind)
            os.makedirs(os.path.join(root, "conf"))
            ports = {"line": compare.free_port(), "pickle": compare.free_port(), "udp": compare.free_port()}
            conf = os.path.join(root, "conf", "carbon.conf")
            with open(conf, "w") as f:
                f.write(CARBON_RELAY_CONF.format(root=root, sink=sink.port, **ports))
            with open(os.path.join(root, "conf", "storage-schemas.conf"), "w") as f:  # read at start even by the relay
                f.write("[default]\npattern = .*\nretentions = 60s:1d\n")
            log = open(os.path.join(root, "carbon-relay.log"), "wb")
            proc = subprocess.Popen(["carbon-relay", "--config=" + conf, "--nodaemon", "start"], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                if not compare.wait_until(lambda: compare.is_listening(ports["pickle"]), 30):
                    raise RuntimeError("carbon-relay did not start; see " + os.path.join(root, "carbon-relay.log"))
                n = args.carbon_count
                if kind == "pickle":
                    chunks = split_frames(pickle_stream(n, now), args.connections)
                    got, seconds = measure(sink, n, lambda: send_tcp(ports["pickle"], chunks), 600)
                else:
                    grams = datagrams(n, now)
                    got, seconds = measure(sink, n, lambda: send_udp(ports["udp"], grams), 600)
                record("carbon-relay", kind, n, got, seconds)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                log.close()
                sink.finish()

    print("load average after: %s" % " ".join(open("/proc/loadavg").read().split()[:3]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
