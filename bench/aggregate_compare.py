#!/usr/bin/env python3
"""carbon-c-relay 3.7.3 aggregating the input of polymur-aggregate-bench (20 aggregate rules, 100,000 series).

usage: aggregate_compare.py POLYMUR_AGGREGATE_BENCH

Writes the rules and 500,000 lines (five points per series) with polymur-aggregate-bench, runs carbon-c-relay
(-w 2, submission mode) with those rules and a sink on 127.0.0.1, sends the lines over two connections, and prints
the points per CPU-second of carbon-c-relay (its user + system time while it read and aggregated them), next to
polymur-aggregate-bench's own figure (route + engine, one core). carbon-c-relay's figure includes reading the
socket and parsing the lines, which polymur's engine figure does not: docs/PERFORMANCE.md says how to read them.
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

RELAY = "/usr/bin/carbon-c-relay"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    bench = sys.argv[1]
    if not os.path.exists(RELAY):
        print("carbon-c-relay is not installed: skipped")
        return 77
    work = tempfile.mkdtemp(prefix="aggregate-compare-")
    ours = subprocess.run([bench, work], stdout=subprocess.PIPE, check=True).stdout.decode()
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(4)
    received = [0]

    def serve():
        while True:
            conn, _ = sink.accept()
            threading.Thread(target=lambda c=conn: [received.__setitem__(0, received[0] + len(d))
                                                    for d in iter(lambda: c.recv(65536), b"")], daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    conf = os.path.join(work, "aggregate.conf")
    with open(conf) as f:
        text = f.read().replace("127.0.0.1:9;", f"127.0.0.1:{sink.getsockname()[1]};")
    with open(conf, "w") as f:
        f.write(text)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    relay = subprocess.Popen([RELAY, "-f", conf, "-p", str(port), "-w", "2", "-s"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        with open(os.path.join(work, "aggregate-lines.txt"), "rb") as f:
            # carbon-c-relay 3.7.3 drops "-1" timestamps as late instead of aggregating them: write the time out.
            stamp = b" %d\n" % int(time.time())
            lines = [line.replace(b" -1\n", stamp) for line in f.read().splitlines(keepends=True)]
        halves = [b"".join(lines[0::2]), b"".join(lines[1::2])]
        cpu0, wall0 = cpu_seconds(relay.pid), time.time()

        def send(data):
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(data)
                c.shutdown(socket.SHUT_WR)
                c.recv(1)  # the relay closes once it has read everything

        threads = [threading.Thread(target=send, args=(h,)) for h in halves]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Wait for the relay to go idle (its CPU time stops growing).
        last = cpu_seconds(relay.pid)
        while True:
            time.sleep(0.5)
            now = cpu_seconds(relay.pid)
            if now - last < 0.02:
                break
            last = now
        cpu, wall = last - cpu0, time.time() - wall0
    finally:
        relay.terminate()
        relay.wait(timeout=10)
    print(ours.strip())
    print(f"carbon-c-relay 3.7.3 (-w 2): {len(lines)} points in {cpu:.2f} s CPU ({wall:.2f} s wall): "
          f"{len(lines) / cpu:.0f} points/s per core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
