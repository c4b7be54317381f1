#!/usr/bin/env python3
"""Outage capacity: how long an outage of one destination polymur rides out, and what it costs.

    bench/outage.py                                  # the default queue at 100,000 metrics/s
    bench/outage.py --queue-bytes 8G --queue-cap 100000000 --outage 600   # a 10-minute outage
    bench/outage.py --sync-cost                      # what --sync-interval costs

Two destinations (polymur-sink, 127.0.0.1): A is up all along, B is down for --outage seconds while
polymur-loadgen sends --rate metrics/s. Every --sample seconds the runner records what A received,
what B has queued and dropped, and the relay's memory: PSS summed over all its processes, with and
without the file-backed queue pages (Pss_File, the page cache the kernel can write back and drop).
Then B comes up and the runner waits until B's queue is empty, and checks that B received every line
polymur had queued for it (received - dropped) and A every line it was sent.

Prints one summary (ride-out seconds = when B first dropped, or "whole outage"; drain time and rate;
A's lowest rate over a sample window; peak PSS without page cache) and, with --json, all samples.
Not a test: nothing is asserted, the figures go to docs/PERFORMANCE.md. Standard library only.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from compare import descendants  # the supervisor and every process below it

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def size(text):
    m = re.fullmatch(r"(\d+)([KMGT]?)", text.strip().upper())
    if not m:
        raise argparse.ArgumentTypeError("a size like 268435456, 256M or 8G")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2)]


def admin(port, command):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks).decode()
            chunks.append(chunk)


def memory(root):
    """(PSS, PSS without file-backed pages) in bytes, summed over the relay's processes."""
    pss = pss_file = 0
    for pid in descendants(root):
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    key, _, rest = line.partition(":")
                    if key == "Pss":
                        pss += int(rest.split()[0]) * 1024
                    elif key == "Pss_File":
                        pss_file += int(rest.split()[0]) * 1024
        except OSError:
            continue
    return pss, pss - pss_file


def cpu_seconds(root):
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in descendants(root):
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def sink_count(status_file):
    try:
        with open(status_file) as f:
            m = re.search(r"count=(\d+)", f.read())
            return int(m.group(1)) if m else 0
    except OSError:
        return 0


class Run:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="polymur-outage-", dir=args.tmp_dir)
        self.procs = []

    def start(self, argv, name):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def sink(self, name, port):
        status = os.path.join(self.tmp, name + ".status")
        self.start([self.args.sink, "--port", str(port), "--idle-timeout", "100000", "--max-seconds", "100000",
                    "--status-file", status], name)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return status
            except OSError:
                time.sleep(0.05)
        raise SystemExit("sink %s did not listen" % name)

    def polymur(self, destinations, extra):
        self.listen, self.api = free_port(), free_port()
        argv = [self.args.polymur, "--listen-addr=127.0.0.1:%d" % self.listen, "--api-addr=127.0.0.1:%d" % self.api,
                "--state-dir=" + os.path.join(self.tmp, "state"), "--destinations=" + ",".join(destinations),
                "--queue-bytes=%d" % self.args.queue_bytes, "--queue-cap=%d" % self.args.queue_cap,
                "--reconnect-interval=1", "--self-metrics-interval=0"] + extra
        if self.args.workers:
            argv.append("--workers=%d" % self.args.workers)
        self.relay = self.start(argv, "polymur")
        deadline = time.monotonic() + 60  # allocating a large queue takes a moment
        while time.monotonic() < deadline:
            if self.relay.poll() is not None:
                raise SystemExit("polymur exited:\n" + open(os.path.join(self.tmp, "polymur.log")).read())
            try:
                return json.loads(admin(self.api, "stats"))
            except (OSError, ValueError):
                time.sleep(0.1)
        raise SystemExit("polymur did not start")

    def stats(self):
        return json.loads(admin(self.api, "stats"))

    def cleanup(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def outage(args):
    run = Run(args)
    try:
        port_a, port_b = free_port(), free_port()
        status_a = run.sink("sink-a", port_a)
        a, b = "127.0.0.1:%d" % port_a, "127.0.0.1:%d" % port_b
        t0 = time.monotonic()
        stats = run.polymur([a, b], args.polymur_arg)
        start_seconds = time.monotonic() - t0
        capacity = stats["destinations"][b]["capacity_bytes"]
        print("outage: queue %d bytes per destination (capacity %d), cap %d lines, start took %.1f s" %
              (args.queue_bytes, capacity, args.queue_cap, start_seconds), flush=True)
        load = run.start([args.loadgen, "--port", str(run.listen), "--connections", str(args.connections),
                          "--rate", str(args.rate), "--duration", str(args.outage),
                          "--max-seconds", str(args.outage + 60)], "loadgen")
        samples, first_drop, last = [], None, (time.monotonic(), 0)
        begin = time.monotonic()
        while load.poll() is None:
            time.sleep(args.sample)
            now = time.monotonic()
            s = run.stats()
            got_a = sink_count(status_a)
            pss, pss_anon = memory(run.relay.pid)
            d = s["destinations"][b]
            rate_a = (got_a - last[1]) / (now - last[0])
            last = (now, got_a)
            sample = {"t": round(now - begin, 1), "received": s["received"], "a_delivered": got_a,
                      "a_rate": round(rate_a), "b_queued": d["queued"], "b_queued_bytes": d["queued_bytes"],
                      "b_dropped": d["dropped"], "pss": pss, "pss_without_page_cache": pss_anon}
            samples.append(sample)
            if first_drop is None and d["dropped"]:
                first_drop = sample["t"]
            if args.verbose:
                print(json.dumps(sample), flush=True)
        outage_seconds = time.monotonic() - begin
        s = run.stats()
        received, queued_b, dropped_b = s["received"], s["destinations"][b]["queued"], s["destinations"][b]["dropped"]
        # B comes back.
        status_b = run.sink("sink-b", port_b)
        back = time.monotonic()
        while run.stats()["destinations"][b]["queued"] > 0 and time.monotonic() - back < args.drain_timeout:
            time.sleep(0.5)
        drain_seconds = time.monotonic() - back
        deadline = time.monotonic() + 30
        while sink_count(status_b) < received - dropped_b and time.monotonic() < deadline:
            time.sleep(0.2)
        deadline = time.monotonic() + 30
        while sink_count(status_a) < received and time.monotonic() < deadline:
            time.sleep(0.2)
        got_a, got_b = sink_count(status_a), sink_count(status_b)
        window = [x for x in samples[1:-1]] or samples
        summary = {
            "rate": args.rate, "outage_seconds": round(outage_seconds, 1), "queue_bytes": args.queue_bytes,
            "queue_cap": args.queue_cap, "capacity_bytes": capacity, "workers": s["workers"],
            "received": received, "b_queued_at_end": queued_b, "b_dropped": dropped_b,
            "ride_out_seconds": first_drop if first_drop is not None else "whole outage",
            "b_delivered": got_b, "b_lost": received - dropped_b - got_b, "a_delivered": got_a, "a_lost": received - got_a,
            "a_lowest_window_rate": min((x["a_rate"] for x in window), default=0),
            "drain_seconds": round(drain_seconds, 1), "drain_rate": round(queued_b / drain_seconds) if drain_seconds else 0,
            "peak_pss": max((x["pss"] for x in samples), default=0),
            "peak_pss_without_page_cache": max((x["pss_without_page_cache"] for x in samples), default=0),
        }
        print("outage: " + json.dumps(summary), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"summary": summary, "samples": samples}, f, indent=1)
        return 0 if summary["b_lost"] == 0 and summary["a_lost"] == 0 else 1
    finally:
        run.cleanup()


def sync_cost(args):
    """Unpaced throughput and CPU per million metrics to one up destination, without and with --sync-interval."""
    results = {}
    for label, extra in (("off", []), ("sync-interval=1", ["--sync-interval=1"])):
        for repeat in range(args.repeat):
            run = Run(args)
            try:
                port = free_port()
                status = run.sink("sink", port)
                run.polymur(["127.0.0.1:%d" % port], extra + args.polymur_arg)
                cpu0 = cpu_seconds(run.relay.pid)
                t0 = time.monotonic()
                load = run.start([args.loadgen, "--port", str(run.listen), "--connections", "4", "--count", str(args.count),
                                  "--max-seconds", "300"], "loadgen")
                load.wait()
                while sink_count(status) < args.count and time.monotonic() - t0 < 300:
                    time.sleep(0.05)
                seconds = time.monotonic() - t0
                cpu = cpu_seconds(run.relay.pid) - cpu0
                results.setdefault(label, []).append({"delivered_per_s": round(sink_count(status) / seconds),
                                                      "cpu_s_per_million": round(cpu / (args.count / 1e6), 3)})
            finally:
                run.cleanup()
    for label, rows in results.items():
        rows.sort(key=lambda r: r["delivered_per_s"])
        print("sync-cost: %-16s median of %d: %s" % (label, len(rows), json.dumps(rows[len(rows) // 2])), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    build = os.environ.get("BUILD_DIR", os.path.join(HERE, "..", "build"))
    p.add_argument("--polymur", default=os.path.join(build, "polymur"))
    p.add_argument("--loadgen", default=os.path.join(build, "polymur-loadgen"))
    p.add_argument("--sink", default=os.path.join(build, "polymur-sink"))
    p.add_argument("--rate", type=int, default=100000, help="metrics/s during the outage")
    p.add_argument("--outage", type=int, default=90, help="seconds destination B is down while the load runs")
    p.add_argument("--queue-bytes", type=size, default=size("256M"))
    p.add_argument("--queue-cap", type=int, default=4000000)
    p.add_argument("--workers", type=int, default=0, help="0: polymur's default (one per CPU)")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--sample", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--drain-timeout", type=float, default=1800)
    p.add_argument("--tmp-dir", default=None, help="where the state directory goes (default: $TMPDIR)")
    p.add_argument("--polymur-arg", action="append", default=[], help="one more polymur option (repeatable)")
    p.add_argument("--sync-cost", action="store_true", help="measure --sync-interval's cost instead")
    p.add_argument("--count", type=int, default=5000000, help="--sync-cost: metrics per run")
    p.add_argument("--repeat", type=int, default=3, help="--sync-cost: runs per setting")
    p.add_argument("--json", help="write the summary and samples here")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, state)")
    p.add_argument("--verbose", action="store_true", help="print every sample")
    args = p.parse_args()
    for tool in (args.polymur, args.loadgen, args.sink):
        if not os.access(tool, os.X_OK):
            raise SystemExit("%s: not built (cmake --build build)" % tool)
    return sync_cost(args) if args.sync_cost else outage(args)


if __name__ == "__main__":
    sys.exit(main())
