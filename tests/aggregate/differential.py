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
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

RELAY = "/usr/bin/carbon-c-relay"
INTERVAL, EXPIRE = 5, 6  # 4 buckets per series: ceil(6/5) + 2

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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc, deadline):
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("carbon-c-relay exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("carbon-c-relay did not listen")


def at_start_of_second():
    """Waits until early in a second, so the relay reads the points within the second the replay is told."""
    while True:
        now = time.time()
        if now % 1 < 0.3:
            return int(now)
        time.sleep(1 - now % 1 + 0.01)


def send_batch(ports, lines):
    """Four connections at once to each relay, each a quarter of the lines."""
    parts = [lines[i::4] for i in range(4)]

    def one(port, part):
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall("".join(part).encode())

    threads = [threading.Thread(target=one, args=(port, p)) for p in parts for port in ports]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


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
    port, api = free_port(), free_port()
    proc = subprocess.Popen([binary, "--rules=" + conf, f"--listen-addr=127.0.0.1:{port}",
                             f"--api-addr=127.0.0.1:{api}", "--state-dir=" + os.path.join(work, "polymur-state"),
                             "--workers=2"], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, "polymur.log"), "w"))
    wait_listening(port, proc, time.time() + 10)
    return proc, port, sink


def main():
    replay = sys.argv[1]
    polymur = sys.argv[2] if len(sys.argv) > 2 else None
    if not os.path.exists(RELAY):
        print("carbon-c-relay is not installed: skipped")
        return 77
    rng = random.Random(15)
    work = tempfile.mkdtemp(prefix="aggregate-differential-")
    sink = Sink()
    conf = os.path.join(work, "rules.conf")
    with open(conf, "w") as f:
        f.write(RULES.replace("SINK", str(sink.port)))
    port = free_port()
    relay = subprocess.Popen([RELAY, "-f", conf, "-p", str(port), "-s", "-w", "2"], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(work, "relay.log"), "w"))
    ports = [port]
    live = None
    try:
        wait_listening(port, relay, time.time() + 10)
        if polymur:
            live, live_port, live_sink = start_polymur(polymur, work, RULES)
            ports.append(live_port)
        s1 = at_start_of_second()
        first = batch_one(s1, rng)
        send_batch(ports, first)
        while time.time() < s1 + 14:
            time.sleep(0.1)
        s2 = at_start_of_second()
        # Buckets whose start + expire + interval + 2 s has passed are emitted in carbon-c-relay for sure.
        emitted_before = floor_to(s2 - EXPIRE - INTERVAL - 2, INTERVAL)
        second = batch_two(s2, emitted_before, rng)
        send_batch(ports, second)
        # The last bucket (the one s2 falls in) is out by its start + expire + interval (+1 s tick).
        done_by = floor_to(s2, INTERVAL) + EXPIRE + INTERVAL + 3
        while time.time() < done_by:
            time.sleep(0.2)
    finally:
        relay.terminate()
        relay.wait(timeout=10)
        if live:
            live.terminate()
            live.wait(timeout=30)
    with sink.lock:
        relay_lines = list(sink.lines)
    events = [f"@{s1 * 1000 + 100}\n", *first, f"@{s2 * 1000 + 100}\n", *second, "@END\n"]
    got = subprocess.run([replay, conf], input="".join(events).encode(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=60, check=True)
    want, have = parse(relay_lines), parse(got.stdout.decode().splitlines())
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
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
