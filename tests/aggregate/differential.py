#!/usr/bin/env python3
"""Differential test: polymur's aggregation engine, and polymur itself running, against carbon-c-relay 3.7.3 run live.

usage: differential.py AGGREGATE_REPLAY [POLYMUR]

With POLYMUR, the relay runs too (two listener workers, its aggregator process, a sink of its own) and gets the
same batches over four connections at the same moments as carbon-c-relay; what its sink receives must agree with
carbon-c-relay's in the same way, and hold no bucket twice.

carbon-c-relay (the oracle) runs on 127.0.0.1 with RULES below and a sink; the same timestamped points go to it
over four connections at once (several listeners' worth), in two batches 14 s apart, and to polymur's engine
(aggregate_replay, which routes each name through the same rules file) with the same arrival times. Both outputs
must hold the same aggregate metrics with the same timestamps and values (relative tolerance 1e-9: the points of
a bucket reach carbon-c-relay in an order that depends on its threads, and floating-point sums depend on order).

carbon-c-relay emits a bucket at a random moment within one interval after start + expire, so the points are
chosen where that cannot change the answer: the first batch creates every series (its window is the same in
both), the second batch's late points belong to buckets emitted at least 3 s earlier, and its other points to
the bucket of the moment it is sent. Exit 77 (skipped) when carbon-c-relay is not installed.
"""
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "process"))
from harness import daemon_port, listening_ports  # noqa: E402  (tests/process/harness.py)

RELAY = "/usr/bin/carbon-c-relay"
INTERVAL, EXPIRE = 5, 6  # 4 buckets per series: ceil(6/5) + 2
TIME_FACTOR = float(os.environ.get("TEST_TIME_FACTOR", "1"))  # README, Tests
ATTEMPTS = 3


class Disturbed(Exception):
    """The machine was too slow for the comparison to mean anything (a batch took past its second)."""

RULES = f"""cluster sink forward 127.0.0.1:SINK;
rewrite ^raw\\.(.*)$ into in.\\1;
aggregate ^in\\.([^.]+)\\.([^.]+)\\.latency$
    every {INTERVAL} seconds expire after {EXPIRE} seconds
    compute sum write to agg.\\1.sum
    compute count write to agg.\\1.count
    compute percentile95 write to agg.\\1.p95
    compute percentile50 write to agg.\\1.p50
    compute median write to agg.all.median
    compute min write to agg.\\2.min
    compute max write to agg.\\2.max
    compute average write to agg.\\1.avg
    compute variance write to agg.\\1.var
    compute stddev write to agg.\\1.sd
    send to sink;
aggregate ^in\\.([^.]+)\\.([^.]+)\\.requests$
    every {INTERVAL} seconds expire after {EXPIRE} seconds timestamp at start of bucket
    compute sum write to agg.requests.\\1
    compute count write to agg.requests.all.count
    send to sink stop;
aggregate ^in\\.([^.]+)\\.([^.]+)\\.latency$
    every {INTERVAL} seconds expire after {EXPIRE} seconds timestamp at middle of bucket
    compute percentile99 write to agg.\\^2.p99
    send to sink stop;
match * send to sink;
"""


def floor_to(t, step):
    return t - t % step


class Sink:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lines = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.read, args=(conn,), daemon=True).start()

    def read(self, conn):
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            *done, buf = buf.split(b"\n")
            with self.lock:
                self.lines.extend(line.decode() for line in done)


def wait_listening(port, proc, deadline):
    """Waits until `proc` itself listens on `port` (its own sockets, not whatever answers there)."""
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Disturbed(f"{proc.args[0]} exited early with {proc.returncode}")
        if port in listening_ports(proc.pid):
            return
        time.sleep(0.05)
    raise SystemExit(f"{proc.args[0]} did not listen on {port}")


def at_start_of_second():
    """Waits until early in a second, so the relay reads the points within the second the replay is told."""
    while True:
        now = time.time()
        if now % 1 < 0.3:
            return int(now)
        time.sleep(1 - now % 1 + 0.01)


def send_batch(ports, lines):
    """Four connections at once to each relay, each a quarter of the lines; returns the errors, "port: error"."""
    parts = [lines[i::4] for i in range(4)]
    errors = []

    def one(port, part):
        try:
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall("".join(part).encode())
        except OSError as e:
            errors.append(f"{port}: {e}")

    threads = [threading.Thread(target=one, args=(port, p)) for p in parts for port in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def batch_one(now, rng):
    oldest = floor_to(now - EXPIRE, INTERVAL)
    lines = []
    for host in ("web1", "web2", "db1"):
        for dc in ("ams", "nyc"):
            for ts in range(oldest - 7, oldest + 4 * INTERVAL + 6):  # late, every bucket, future
                for _ in range(rng.randint(0, 3)):
                    value = rng.choice([rng.randint(-50, 500), round(rng.uniform(-1000, 1000), 3)])
                    name = f"{'raw' if rng.random() < 0.3 else 'in'}.{host}.{dc}.latency"
                    lines.append(f"{name} {value} {ts}\n")
                if rng.random() < 0.5:
                    lines.append(f"in.{host}.{dc}.requests {rng.randint(0, 100)} {ts}\n")
    rng.shuffle(lines)  # out of order
    return lines


def batch_two(now, emitted_before, rng):
    lines = []
    current = floor_to(now, INTERVAL)
    for host in ("web1", "web2", "db1", "new1"):
        for dc in ("ams", "nyc"):
            for ts in list(range(current, current + INTERVAL)) + list(range(emitted_before - 3, emitted_before)):
                lines.append(f"in.{host}.{dc}.latency {rng.randint(1, 99)} {ts}\n")
                lines.append(f"in.{host}.{dc}.requests {rng.randint(1, 99)} {ts}\n")
    rng.shuffle(lines)
    return lines


def parse(lines):
    out = {}
    for line in lines:
        fields = line.split()
        if len(fields) == 3 and fields[0].startswith("agg."):
            key = (fields[0], int(fields[2]))
            if key in out:
                raise SystemExit(f"bucket emitted twice: {line}")
            out[key] = float(fields[1])
    return out


def compare(want, have, who):
    failures = 0
    for key in sorted(set(want) | set(have)):
        w, h = want.get(key), have.get(key)
        if w is None or h is None or abs(w - h) > 1e-9 * max(1.0, abs(w)) + 1e-6:
            failures += 1
            if failures <= 20:
                print(f"DIFF {key[0]} {key[1]}: carbon-c-relay {w}, {who} {h}")
    return failures


def start_polymur(binary, work, rules_text):
    sink = Sink()
    conf = os.path.join(work, "polymur-rules.conf")
    with open(conf, "w") as f:
        f.write(rules_text.replace("SINK", str(sink.port)))
    log = os.path.join(work, "polymur.log")
    # Port 0: the kernel picks the ports when polymur binds them, and its start line names them.
    proc = subprocess.Popen([binary, "--rules=" + conf, "--listen-addr=127.0.0.1:0", "--api-addr=127.0.0.1:0",
                             "--state-dir=" + os.path.join(work, "polymur-state"), "--workers=2"],
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    deadline = time.time() + 10 * TIME_FACTOR
    while True:
        with open(log) as f:
            bound = re.search(r"listening on plaintext \S+:(\d+) .*; admin on \S+:(\d+) and", f.read())
        if bound or proc.poll() is not None or time.time() > deadline:
            break
        time.sleep(0.05)
    if not bound:
        raise SystemExit(f"polymur did not start (exit {proc.poll()}): see {log}")
    port, api = int(bound.group(1)), int(bound.group(2))
    wait_listening(port, proc, deadline)
    return proc, port, sink, api


def aggregator_taken(api):
    """Points polymur's aggregator has handled so far (taken into buckets, late or future), from `stats`."""
    with socket.create_connection(("127.0.0.1", api), timeout=5) as c:
        c.sendall(b"stats\n")
        a = json.loads(c.makefile("rb").read()).get("aggregator", {})
    return a.get("points", 0) + a.get("late", 0) + a.get("future", 0)


def polymur_took_in_its_second(api, second, before):
    """Waits until polymur's aggregator handled a batch told to the replay as arriving at `second`.100 (its count
    moved on from `before` and then stood still for 0.5 s); raises Disturbed when it was last seen moving in a later
    second: a point handled then may fall into another window than the replay's, which is no error of polymur's."""
    last, changed = before, None
    deadline = time.time() + 30 * TIME_FACTOR
    while time.time() < deadline:
        now = time.time()
        taken = aggregator_taken(api)
        if taken != last:
            last, changed = taken, now
        elif changed is not None and now - changed >= 0.5:
            break
        time.sleep(0.05)
    if changed is None or changed >= second + 1:
        raise Disturbed(f"polymur's aggregator took the batch for second {second} only "
                        f"{(changed or time.time()) - second:.2f} s after its start")
    return last


def send_in_its_second(ports, lines, second, oracle):
    """Sends a batch told to the replay as arriving at `second`.100; it must be sent within that second (a batch
    sent later reaches carbon-c-relay at another moment than the replay is told, and the answers may differ).
    carbon-c-relay (`oracle`) gone is no error of polymur's: that run is disturbed too."""
    errors = send_batch(ports, lines)
    if oracle.poll() is not None:
        raise Disturbed(f"carbon-c-relay exited with {oracle.returncode} ({'; '.join(errors) or 'no send failed'})")
    if errors:
        raise SystemExit("FAIL: sending a batch: " + "; ".join(errors))
    took = time.time() - second
    if took >= 1:
        raise Disturbed(f"a batch for second {second} was sent only {took:.2f} s after its start")


def wait_for(sinks_and_keys, deadline):
    """Waits until every sink holds every (name, timestamp) its relay is expected to emit, or `deadline`;
    then a little longer while a sink still receives lines, so that a bucket emitted twice is seen too."""
    def complete():
        for sink, keys in sinks_and_keys:
            with sink.lock:
                have = {(f[0], int(f[2])) for f in (line.split() for line in sink.lines) if len(f) == 3}
            if not keys <= have:
                return False
        return True
    while time.time() < deadline and not complete():
        time.sleep(0.2)
    counts = None
    while time.time() < deadline:
        now = [len(sink.lines) for sink, _ in sinks_and_keys]
        if now == counts:
            return
        counts = now
        time.sleep(1.0)


def attempt(replay, polymur, rng):
    """One run against fresh relays; returns the number of failures, or raises Disturbed."""
    work = tempfile.mkdtemp(prefix="aggregate-differential-")
    sink = Sink()
    conf = os.path.join(work, "rules.conf")
    with open(conf, "w") as f:
        f.write(RULES.replace("SINK", str(sink.port)))
    port = daemon_port()  # carbon-c-relay cannot bind port 0 and say which it got
    relay = subprocess.Popen([RELAY, "-f", conf, "-p", str(port), "-s", "-w", "2"], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(work, "relay.log"), "w"))
    ports = [port]
    live = None
    try:
        wait_listening(port, relay, time.time() + 10 * TIME_FACTOR)
        if polymur:
            live, live_port, live_sink, live_api = start_polymur(polymur, work, RULES)
            taken = aggregator_taken(live_api)
            ports.append(live_port)
        s1 = at_start_of_second()
        first = batch_one(s1, rng)
        send_in_its_second(ports, first, s1, relay)
        if live:
            taken = polymur_took_in_its_second(live_api, s1, taken)
        while time.time() < s1 + 14:
            time.sleep(0.1)
        s2 = at_start_of_second()
        # Buckets whose start + expire + interval + 2 s has passed are emitted in carbon-c-relay for sure.
        emitted_before = floor_to(s2 - EXPIRE - INTERVAL - 2, INTERVAL)
        second = batch_two(s2, emitted_before, rng)
        send_in_its_second(ports, second, s2, relay)
        if live:
            polymur_took_in_its_second(live_api, s2, taken)
        events = [f"@{s1 * 1000 + 100}\n", *first, f"@{s2 * 1000 + 100}\n", *second, "@END\n"]
        got = subprocess.run([replay, conf], input="".join(events).encode(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=60 * TIME_FACTOR, check=True)
        have = parse(got.stdout.decode().splitlines())
        # The last bucket (the one s2 falls in) is out by its start + expire + interval (+1 s tick): wait for
        # what the engine emitted to arrive at both sinks (a loaded machine delivers later), then compare.
        done_by = floor_to(s2, INTERVAL) + EXPIRE + INTERVAL + 3
        while time.time() < done_by:
            time.sleep(0.2)
        waited = [(sink, set(have))] + ([(live_sink, set(have))] if live else [])
        wait_for(waited, time.time() + 20 * TIME_FACTOR)
    finally:
        relay.terminate()
        relay.wait(timeout=10)
        if live:
            live.terminate()
            live.wait(timeout=30)
    with sink.lock:
        relay_lines = list(sink.lines)
    want = parse(relay_lines)
    print(f"carbon-c-relay: {len(want)} aggregate metrics; polymur's engine: {len(have)} ({got.stderr.decode().strip()})")
    failures = compare(want, have, "polymur's engine")
    if live:
        with live_sink.lock:
            live_lines = list(live_sink.lines)
        running = parse(live_lines)
        print(f"polymur running: {len(running)} aggregate metrics")
        failures += compare(want, running, "polymur running")
    if len(want) < 50:
        print("FAIL: carbon-c-relay produced too few aggregates for the comparison to mean anything")
        failures += 1
    if failures:
        with open(os.path.join(work, "events.txt"), "w") as f:
            f.writelines(events)
        with open(os.path.join(work, "relay-output.txt"), "w") as f:
            f.write("\n".join(relay_lines) + "\n")
        print(f"FAIL: inputs and outputs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
        print("ok: every aggregate agrees")
    return failures


def main():
    replay = sys.argv[1]
    polymur = sys.argv[2] if len(sys.argv) > 2 else None
    if not os.path.exists(RELAY):
        print("carbon-c-relay is not installed: skipped")
        return 77
    # A run whose batches could not be sent (or taken by polymur's aggregator) within their second says nothing
    # either way: it is run again with fresh relays, at most ATTEMPTS times, and skipped (77) when none could; any
    # disagreement in a run that kept to its timing fails at once.
    for n in range(1, ATTEMPTS + 1):
        try:
            return 1 if attempt(replay, polymur, random.Random(15)) else 0
        except Disturbed as e:
            print(f"attempt {n} of {ATTEMPTS}: {e}; this run says nothing either way")
    print(f"skipped: none of {ATTEMPTS} attempts kept to its timing (the machine is too busy)")
    return 77


if __name__ == "__main__":
    sys.exit(main())
