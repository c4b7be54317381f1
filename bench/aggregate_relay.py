#!/usr/bin/env python3
"""Aggregation end to end: polymur (listeners + aggregator process) against carbon-c-relay 3.7.3 on the same rules
and input, same machine, alternating runs (docs/PERFORMANCE.md, "Aggregation").

usage: aggregate_relay.py POLYMUR POLYMUR_AGGREGATE_BENCH [RUNS]

polymur-aggregate-bench writes the rules (20 aggregate rules, 100,000 distinct input series) and 500,000 lines;
each run sends them COPIES times over four connections to a fresh relay with two workers (polymur --workers=2,
carbon-c-relay -w 2), both with a sink on 127.0.0.1. Measured per run, from the first byte sent until every point
is in its buckets: the relay's CPU time (user + system, every process of it) and the wall time; then the run waits
for the buckets to be emitted and counts the aggregate results at the sink (both relays must emit the same number).
polymur is done when its aggregator has taken every point (stats: aggregator.points); carbon-c-relay, which
has no such counter, when its CPU time stops growing (the idle wait is not counted in its wall time). The load
average is printed beside each run: other work on the machine slows both.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "aggregate"))
from differential import Sink, free_port, wait_listening  # noqa: E402

RELAY = "/usr/bin/carbon-c-relay"
COPIES = 2
COMPUTES = 4  # per rule in polymur-aggregate-bench's rules


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def tree(pid):
    """pid and its children's pids."""
    out = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError):
                pass
    return out


def sink_and_conf(conf_text, path):
    """A sink (tests/aggregate/differential.py's) and the rules pointed at it."""
    sink = Sink()
    with open(path, "w") as f:
        f.write(conf_text.replace("127.0.0.1:9;", f"127.0.0.1:{sink.port};"))
    return sink


def aggregates(sink):
    with sink.lock:
        return sum(1 for line in sink.lines if line.startswith("agg."))


def prepare(payload):
    """Four connections' shares. The generator writes "-1" timestamps; carbon-c-relay 3.7.3 drops those as late
    instead of aggregating them (polymur reads -1 as the time received), so both get the current time written out."""
    stamp = b" %d\n" % int(time.time())
    return [b"".join(payload[i::4]).replace(b" -1\n", stamp) for i in range(4)]


def send(port, parts):
    def one(data):
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(data)

    threads = [threading.Thread(target=one, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def admin_stats(api):
    with socket.create_connection(("127.0.0.1", api), timeout=5) as s:
        s.sendall(b"stats\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data)


def run_polymur(binary, conf_text, lines, work):
    conf = os.path.join(work, "polymur.conf")
    sink = sink_and_conf(conf_text, conf)
    state = os.path.join(work, "polymur-state")
    shutil.rmtree(state, ignore_errors=True)
    port, api = free_port(), free_port()
    proc = subprocess.Popen([binary, "--rules=" + conf, f"--listen-addr=127.0.0.1:{port}",
                             f"--api-addr=127.0.0.1:{api}", "--state-dir=" + state, "--workers=2",
                             "--queue-bytes=1073741824", "--queue-cap=100000000"],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "polymur.log"), "w"))
    try:
        wait_listening(port, proc, time.time() + 20)
        time.sleep(1)
        pids = tree(proc.pid)
        parts = prepare(lines)
        cpu0, wall0 = sum(map(cpu_seconds, pids)), time.time()
        send(port, parts)
        want = len(lines) * COMPUTES
        while admin_stats(api)["aggregator"]["points"] < want:
            time.sleep(0.02)
        wall = time.time() - wall0
        cpu = sum(map(cpu_seconds, pids)) - cpu0
        stats = admin_stats(api)["aggregator"]
        deadline = time.time() + 60
        while time.time() < deadline and admin_stats(api)["aggregator"]["queued"] > 0:
            time.sleep(0.5)
        time.sleep(2)
        results = aggregates(sink)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return cpu, wall, results, stats


def run_carbon(conf_text, lines, work):
    conf = os.path.join(work, "carbon.conf")
    sink = sink_and_conf(conf_text, conf)
    port = free_port()
    proc = subprocess.Popen([RELAY, "-f", conf, "-p", str(port), "-w", "2", "-s"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc, time.time() + 20)
        time.sleep(1)
        parts = prepare(lines)
        cpu0, wall0 = cpu_seconds(proc.pid), time.time()
        send(port, parts)
        last, last_at = cpu_seconds(proc.pid), time.time()
        while True:  # busy until its CPU time stops growing
            time.sleep(0.25)
            now = cpu_seconds(proc.pid)
            if now - last < 0.01:
                break
            last, last_at = now, time.time()
        cpu, wall = last - cpu0, last_at - wall0
        # Its buckets are out by start + expire + interval (+ 1 s); the window is 10 s buckets, expire 30 s.
        time.sleep(45)
        results = aggregates(sink)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return cpu, wall, results


def main():
    polymur, bench = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    if not os.path.exists(RELAY):
        print("carbon-c-relay is not installed: skipped")
        return 77
    work = tempfile.mkdtemp(prefix="aggregate-relay-bench-")
    subprocess.run([bench, work], stdout=subprocess.DEVNULL, check=True)
    with open(os.path.join(work, "aggregate.conf")) as f:
        conf_text = f.read()
    with open(os.path.join(work, "aggregate-lines.txt"), "rb") as f:
        lines = f.read().splitlines(keepends=True) * COPIES
    print(f"20 aggregate rules, 100,000 input series, {len(lines)} points per run, 4 connections, 2 workers")
    mine, theirs = [], []
    for run in range(runs):
        load = os.getloadavg()[0]
        cpu, wall, results, stats = run_polymur(polymur, conf_text, lines, work)
        mine.append(len(lines) / cpu)
        print(f"run {run + 1} polymur:        {len(lines) / cpu:9.0f} points/CPU-s  {len(lines) / wall:9.0f} points/s "
              f"wall  ({cpu:.2f} s CPU, {wall:.2f} s)  {results} results  load {load:.1f}")
        load = os.getloadavg()[0]
        cpu, wall, results = run_carbon(conf_text, lines, work)
        theirs.append(len(lines) / cpu)
        print(f"run {run + 1} carbon-c-relay: {len(lines) / cpu:9.0f} points/CPU-s  {len(lines) / wall:9.0f} points/s "
              f"wall  ({cpu:.2f} s CPU, {wall:.2f} s)  {results} results  load {load:.1f}")
    print(f"median points per CPU-second: polymur {sorted(mine)[len(mine) // 2]:.0f}, carbon-c-relay "
          f"{sorted(theirs)[len(theirs) // 2]:.0f}, ratio {sorted(mine)[len(mine) // 2] / sorted(theirs)[len(theirs) // 2]:.2f}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
