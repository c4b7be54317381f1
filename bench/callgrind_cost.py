#!/usr/bin/env python3
"""Instructions per line of polymur's listener and output processes, counted by valgrind's callgrind.

Wall-clock rates swing with whatever else runs on the machine; an instruction count does not. This runs
the real relay (supervisor, one listener, one output process per destination) under
`valgrind --tool=callgrind` (which follows the forked children, each into its own output file), sends it
a fixed number of polymur-loadgen lines, waits until the sinks have every copy, stops it and reads each
process's total instructions (Ir). Each workload runs twice, with --base and with --count lines: the
difference divided by the difference in lines is the cost of a line, with start-up and shutdown taken
out. Lines are read in full 64 KiB reads (under callgrind the listener is far slower than the load
generator), so the per-read costs are spread as in a busy relay.

    bench/callgrind_cost.py                         # all workloads, build/ binaries
    bench/callgrind_cost.py --only broadcast1 --count 400000 --base 100000 --keep /tmp/cg

Workloads: broadcast1 (broadcast to one destination), broadcast2 (to two), carbon_ch (hash-route over
two). Under valgrind the CPU is seen without AVX-512, so carbon_ch's vector MD5 runs on its AVX2 path.
What is not per line (the 100 ms tick, the output's wake-ups) adds a little that grows with wall time,
so a run on a busy machine may read a few instructions per line higher.
"""
import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import Sink, descendants, free_port, is_listening, keyvalues, loadavg, wait_until  # noqa: E402

WORKLOADS = {
    "broadcast1": ("broadcast", 1),
    "broadcast2": ("broadcast", 2),
    "carbon_ch": ("hash", 2),
}


def total_ir(path):
    """Total instructions in one callgrind output file (its `totals:` or `summary:` line)."""
    with open(path, "rb") as f:
        for raw in f:
            if raw.startswith(b"totals:") or raw.startswith(b"summary:"):
                return int(raw.split()[1])
    raise RuntimeError("no totals in %s" % path)


def role_of(comm):
    if "listen" in comm:
        return "listener"
    if "output" in comm or "out " in comm:
        return "output"
    return "other"


def run_once(args, workload, count, outdir):
    distribution, destinations = WORKLOADS[workload]
    os.makedirs(outdir, exist_ok=True)
    sinks = [Sink(os.path.join(args.bench_dir, "polymur-sink"), outdir, "sink%d" % i, max_seconds=args.timeout)
             for i in range(destinations)]
    port, api = free_port(), free_port()
    if distribution == "hash":
        dests = ["127.0.0.1:%d:%s" % (s.port, chr(ord("a") + i)) for i, s in enumerate(sinks)]
        dist = ["--distribution=hash-route", "--hash-type=carbon_ch"]
    else:
        dests = ["127.0.0.1:%d" % s.port for s in sinks]
        dist = ["--distribution=broadcast"]
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + os.path.join(outdir, "callgrind.%p"),
           args.polymur_bin, "--workers=1", "--listen-addr=127.0.0.1:%d" % port, "--api-addr=127.0.0.1:%d" % api,
           "--state-dir=" + os.path.join(outdir, "state"), "--destinations=" + ",".join(dests)] + dist
    log = open(os.path.join(outdir, "polymur.log"), "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    roles = {}
    try:
        if not wait_until(lambda: proc.poll() is not None or is_listening(port), 120) or proc.poll() is not None:
            raise RuntimeError("polymur under callgrind did not start; see %s" % log.name)
        # Children are named by their process titles (PR_SET_NAME), which callgrind leaves alone.
        time.sleep(1.0)
        for pid in descendants(proc.pid) + [proc.pid]:
            try:
                with open("/proc/%d/comm" % pid) as f:
                    roles[pid] = role_of(f.read().strip())
            except OSError:
                pass
        lg = subprocess.run([os.path.join(args.bench_dir, "polymur-loadgen"), "--port", str(port), "--connections",
                             str(args.connections), "--series", str(args.series), "--count", str(count),
                             "--max-seconds", str(args.timeout)], capture_output=True, timeout=args.timeout + 60)
        sent = keyvalues(lg.stdout.decode())
        if lg.returncode != 0 or sent.get("sent") != count:
            raise RuntimeError("loadgen: %s %s" % (lg.stdout.decode(), lg.stderr.decode()))
        want = count * (destinations if distribution == "broadcast" else 1)
        if not wait_until(lambda: sum(s.count() for s in sinks) >= want, args.timeout, 0.2):
            raise RuntimeError("%s: the sinks have %d of %d lines" % (workload, sum(s.count() for s in sinks), want))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(args.timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        for s in sinks:
            s.finish()
    # Children end after the supervisor; their files are complete once written and closed.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(os.path.exists("/proc/%d" % p) for p in roles):
        time.sleep(0.2)
    costs = {"listener": 0, "output": 0, "other": 0}
    for path in glob.glob(os.path.join(outdir, "callgrind.*")):
        m = re.search(r"callgrind\.(\d+)$", path)
        if not m:
            continue
        pid = int(m.group(1))
        costs[roles.get(pid, "other")] += total_ir(path)
    if not costs["listener"]:
        raise RuntimeError("no listener profile among %s (roles %s)" % (os.listdir(outdir), roles))
    return costs


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--polymur-bin", default=os.path.join(here, "..", "build", "polymur"))
    ap.add_argument("--bench-dir", default=None, help="holds polymur-loadgen and polymur-sink (default: next to"
                    " --polymur-bin)")
    ap.add_argument("--only", default=",".join(WORKLOADS), help="comma-separated: " + ", ".join(WORKLOADS))
    ap.add_argument("--count", type=int, default=500_000, help="lines of the measured run")
    ap.add_argument("--base", type=int, default=100_000, help="lines of the run subtracted from it")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--timeout", type=int, default=900, help="seconds per run at most")
    ap.add_argument("--keep", metavar="DIR", help="keep the callgrind files here (callgrind_annotate them)")
    args = ap.parse_args()
    args.polymur_bin = os.path.abspath(args.polymur_bin)
    args.bench_dir = os.path.abspath(args.bench_dir or os.path.dirname(args.polymur_bin))
    if args.count <= args.base:
        ap.error("--count must be larger than --base")
    if not shutil.which("valgrind"):
        ap.error("valgrind is not installed")
    root = os.path.abspath(args.keep) if args.keep else tempfile.mkdtemp(prefix="polymur-callgrind-")
    print("callgrind: %s, lines %d - %d, %d connections, load %s" % (args.polymur_bin, args.count, args.base,
                                                                     args.connections, loadavg()), flush=True)
    print("%-11s %16s %16s" % ("workload", "listener Ir/line", "output Ir/copy"), flush=True)
    try:
        for workload in args.only.split(","):
            if workload not in WORKLOADS:
                ap.error("unknown workload %r" % workload)
            small = run_once(args, workload, args.base, os.path.join(root, workload, "base"))
            large = run_once(args, workload, args.count, os.path.join(root, workload, "count"))
            lines = args.count - args.base
            distribution, destinations = WORKLOADS[workload]
            copies = destinations if distribution == "broadcast" else 1
            print("%-11s %16.1f %16.1f" % (workload, (large["listener"] - small["listener"]) / lines,
                                           (large["output"] - small["output"]) / (lines * copies)), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print("(listener: instructions per line received; output: all output processes' instructions per copy"
          " delivered; load %s at the end)" % loadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
