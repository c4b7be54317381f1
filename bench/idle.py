#!/usr/bin/env python3
"""What a relay costs at moderate rates and with many idle connections (docs/PERFORMANCE.md, "Idling").

Production relays spend most of their life far below their top speed. For each case this starts two
polymur-sink sinks (latency mode), the relay (broadcast to both sinks), opens --idle connections that never
send (polymur-loadgen --idle), then sends at a fixed rate over a few connections (polymur-loadgen --rate
--latency) and measures, over a fixed window in the middle of the paced load:

  wake-ups/s  times the relay's threads were scheduled in (third field of schedstat), per second
  CPU s/M     CPU time of every process of the relay (polymur: the supervisor, listener workers and
              outputs; every thread) per million input metrics. Read from /proc/PID/task/TID/schedstat
              (nanoseconds; the same clock /proc/PID/stat rounds to 10 ms ticks as utime+stime, which is
              also read and printed as a check, with the supervisor's cutime+cstime for children reaped
              during the window)
  % core      the same CPU time as a share of one core over the window
  p50/p99/max end to end, send -> arrival at a sink (the send time in ns is the value field; the first
              --latency-skip seconds of each sink are left out)
  delivered   every metric sent must arrive at both sinks (a run that loses one is reported as failed)

Cases (--cases): rate100k (100,000/s, no idle connections), rate1k-idle10k (1,000/s beside 10,000 idle
connections) and idle10k (10,000 idle connections, no load: what idling alone costs). polymur and
carbon-c-relay run alternately, --repeat times; the tables show the median. Standard library only; the
binaries come from --bench-dir (bench/run.sh builds them). Everything listens on 127.0.0.1.

--warmup N sends N metrics at full speed before each paced case and leaves them out, so the relay has gone
round its queue files once, as one that has run a while (the first lap over a fresh 256 MiB queue pays the
kernel for every new page). Beside the targets, the floor: as many processes as polymur's listeners and
outputs, waking once per --linger-ms period and doing nothing else (polymur-wake-floor), measured here
and now; no relay of that shape can cost less at a moderate rate.

  python3 bench/idle.py --bench-dir build --repeat 3
  python3 bench/idle.py --bench-dir build --cases rate100k --warmup 6000000
  python3 bench/idle.py --smoke      # tiny: 5,000/s and 200 idle connections, fails unless all delivered
"""
import argparse
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (the relays, sinks and /proc readers of the main benchmark)

TARGETS = {"cpu_s_per_m_100k": 0.4, "p99_ms": 10.0, "core_share_1k_idle": 0.01}


def log(*args):
    print(*args, flush=True)


def task_ns(pids):
    """pid -> (CPU nanoseconds, times scheduled in) of all its threads so far: the first and third
    fields of /proc/PID/task/*/schedstat. Each time scheduled in is a wake-up (or a preemption)."""
    out = {}
    for pid in pids:
        ns = runs = 0
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                try:
                    with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                        fields = f.read().split()
                    ns += int(fields[0])
                    runs += int(fields[2])
                except (OSError, ValueError, IndexError):
                    pass  # a thread that ended meanwhile
        except OSError:
            continue
        out[pid] = (ns, runs)
    return out


def reaped_ticks(pid):
    """cutime+cstime of `pid`: the CPU of its children that it has already waited for."""
    try:
        fields = compare._stat_fields(pid)
        return int(fields[13]) + int(fields[14])
    except (OSError, ValueError, IndexError):
        return 0


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < need:
        sys.exit("idle.py: the open-file limit is %d, %d connections need more (raise the hard limit: ulimit -Hn)"
                 % (soft, need))
    return soft


class IdleConnections:
    """polymur-loadgen --idle N: N connections that never send, held until stop()."""

    def __init__(self, loadgen, port, count, hold):
        self.count = count
        self.proc = subprocess.Popen([loadgen, "--port", str(port), "--idle", str(count), "--hold", str(hold),
                                      "--max-seconds", str(hold)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        ready, _, _ = select.select([self.proc.stdout], [], [], hold)
        self.opened = compare.keyvalues(self.proc.stdout.readline().decode()).get("opened", 0) if ready else 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_case(args, bench, relay_name, case):
    """One run: sinks, relay, idle connections, paced load; CPU over the window, latency, delivery."""
    rate, idle, seconds = case["rate"], case["idle"], case["seconds"]
    # Warm-up lines are latency lines too (sent at full speed, so their latencies mean nothing): each sink
    # leaves them out with the first --latency-skip seconds of the paced load.
    warm = args.warm if rate else 0
    skip = int(rate * args.latency_skip) + warm
    sinks = [compare.Sink(bench.sink, bench.workdir, "sink%d-%d" % (bench.serial + 1, i), True, skip,
                          args.run_timeout + 60) for i in range(2)]
    relay = bench.make_relay(relay_name, [s.port for s in sinks], "broadcast")
    result = {"relay": relay_name, "case": case["name"], "rate": rate, "idle": idle}
    idlers, lg = None, None
    try:
        relay.wait_ready()
        if warm:
            # The queue files' first lap pays the kernel's zeroing of every fresh page; a relay that has run a
            # while has gone round its queue and no longer does (compare.py's --warmup, for the same reason).
            lg = subprocess.run([bench.loadgen, "--port", str(relay.port), "--connections", str(case["connections"]),
                                 "--series", str(args.series), "--count", str(warm), "--latency",
                                 "--max-seconds", str(args.run_timeout)], capture_output=True, timeout=args.run_timeout + 60)
            if lg.returncode != 0:
                raise RuntimeError("warm-up loadgen failed (%d): %s" % (lg.returncode, lg.stderr.decode()))
            lg = None
            if not compare.wait_until(lambda: sum(s.count() for s in sinks) >= 2 * warm, args.run_timeout, 0.1):
                raise RuntimeError("warm-up: %d of %d copies delivered" % (sum(s.count() for s in sinks), 2 * warm))
            time.sleep(args.settle)
        if idle:
            idlers = IdleConnections(bench.loadgen, relay.port, idle, args.run_timeout)
            # Only the relay's own sockets count; at least N, as carbon-c-relay may hold more (compare.run_idle).
            compare.wait_until(lambda: (lambda st: st[0] >= idle and st[1] == 0)(
                compare.accepted_state(relay.pids(), relay.port)), 60, 0.2)
            result["idle_opened"] = idlers.opened
            result["idle_accepted"] = compare.accepted_state(relay.pids(), relay.port)[0]
        time.sleep(args.settle)  # accepting is not part of the window
        if rate:
            lg = subprocess.Popen([bench.loadgen, "--port", str(relay.port), "--connections", str(case["connections"]),
                                   "--series", str(args.series), "--rate", str(rate), "--duration", str(seconds),
                                   "--latency", "--max-seconds", str(seconds + 30)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        # The window: after the load has started and settled, ending before it stops.
        time.sleep(case["lead"])
        root = relay.proc.pid
        pids0 = relay.pids()
        perf = bench.start_perf(relay) if args.profile and relay_name == "polymur" else None
        ns0, ticks0, reaped0 = task_ns(pids0), compare.cpu_ticks(pids0), reaped_ticks(root)
        busy0, load0, t0 = compare.cpu_busy(), compare.loadavg(), time.monotonic()
        time.sleep(case["window"])
        t1 = time.monotonic()
        pids1 = relay.pids()
        ns1, ticks1, reaped1 = task_ns(pids1), compare.cpu_ticks(pids1), reaped_ticks(root)
        busy1, load1 = compare.cpu_busy(), compare.loadavg()
        if perf:
            bench.stop_perf(perf, relay)
        window = t1 - t0
        titles = {p: compare.cmdline(p) for p in pids1}
        both = [p for p in pids1 if p in ns0]
        cpu_ns = sum(ns1[p][0] - ns0[p][0] for p in both)
        wakeups = sum(ns1[p][1] - ns0[p][1] for p in both)
        cpu_ticks = sum(ticks1.get(p, 0) - ticks0.get(p, 0) for p in both) + (reaped1 - reaped0)
        sent = {}
        if lg:
            out, err = lg.communicate(timeout=seconds + 60)
            sent = compare.keyvalues(out.decode())
            if lg.returncode != 0 or "sent" not in sent:
                raise RuntimeError("loadgen failed (%d): %s %s" % (lg.returncode, out.decode(), err.decode()))
            want = 2 * (sent["sent"] + warm)
            compare.wait_until(lambda: sum(s.count() for s in sinks) >= want, args.stall_timeout, 0.05)
        result.update(relay.extra_stats())
        result["processes"] = len(pids1)
        result["cpu_by_process"] = {"%s (%d)" % (titles.get(p, "?"), p): (ns1[p][0] - ns0[p][0]) / 1e9 for p in both}
        result["wakeups_by_process"] = {"%s (%d)" % (titles.get(p, "?"), p): (ns1[p][1] - ns0[p][1]) / window
                                        for p in both}
    finally:
        if lg and lg.poll() is None:
            lg.kill()
            lg.wait()
        if idlers:
            idlers.stop()
        relay.stop()
        sink_stats = [s.finish() for s in sinks]
    metrics = rate * window
    cpu_s = cpu_ns / 1e9
    result.update({
        "window_s": window, "cpu_s": cpu_s, "wakeups_per_s": wakeups / window, "cpu_s_ticks": cpu_ticks / compare.CLK_TCK,
        "core_share": cpu_s / window, "cpu_s_per_m": cpu_s / (metrics / 1e6) if metrics else None,
        "machine_busy": (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]), "loadavg": [load0, load1],
        "sent": sent.get("sent", 0), "achieved_rate": sent.get("rate", 0),
        "per_sink": [s.get("count", 0) - warm for s in sink_stats], "warmup": warm,
    })
    result["delivered"] = sum(result["per_sink"])
    result["lost"] = 2 * result["sent"] - result["delivered"]
    if rate:
        hist = {}
        for s in sink_stats:
            for k, v in s["hist"].items():
                hist[k] = hist.get(k, 0) + v
        result.update(compare.percentiles(hist))
        result["latency_max_us"] = max((s.get("max_us", 0) for s in sink_stats), default=0)
    if result["lost"]:
        bench.failures.append("%s on %s: sent %d x 2 copies, delivered %d (per sink %s)" % (
            relay_name, case["name"], result["sent"], result["delivered"], result["per_sink"]))
    if idle and (result.get("idle_opened") != idle or result.get("idle_accepted", 0) < idle):
        bench.failures.append("%s on %s: opened %s and accepted %s of %d idle connections" % (
            relay_name, case["name"], result.get("idle_opened"), result.get("idle_accepted"), idle))
    return result


def fmt(v, spec):
    return spec % v if isinstance(v, (int, float)) else "-"


def short(r):
    s = "CPU %s s/M, %.2f %% of a core (ticks: %.2f s in %.1f s), %.0f wake-ups/s" % (
        fmt(r["cpu_s_per_m"], "%.3f"), 100 * r["core_share"], r["cpu_s_ticks"], r["window_s"], r["wakeups_per_s"])
    if r["rate"]:
        s += ", p50 %.2f ms p99 %.2f ms, lost %d" % (r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["lost"])
    return s + ", machine busy %.0f %%, load %s" % (100 * r["machine_busy"], r["loadavg"][0])


def print_case(case, by_relay):
    log("  %-15s %9s %8s %9s %9s %9s %9s %6s  %s" % ("relay", "CPU s/M", "% core", "p50 ms", "p99 ms", "max ms", "lost",
                                                   "busy", "load avg"))
    for name, r in by_relay.items():
        lat = r.get("p50_us") is not None and case["rate"]
        log("  %-15s %9s %7.2f%% %9s %9s %9s %9d %5.0f%%  %s" % (
            name, fmt(r["cpu_s_per_m"], "%.3f"), 100 * r["core_share"],
            fmt(r["p50_us"] / 1e3, "%.2f") if lat else "-", fmt(r["p99_us"] / 1e3, "%.2f") if lat else "-",
            fmt(r["latency_max_us"] / 1e3, "%.1f") if lat else "-", r["lost"], 100 * r["machine_busy"], r["loadavg"][0]))
    for name, r in by_relay.items():
        if len(r.get("cpu_by_process", {})) > 1:
            log("  %s CPU s in the window by process: %s" % (name, ", ".join(
                "%s %.3f" % (k.split(" (")[0].replace("polymur: ", ""), v) for k, v in sorted(r["cpu_by_process"].items()))))
            log("  %s wake-ups/s by process: %s" % (name, ", ".join(
                "%s %.0f" % (k.split(" (")[0].replace("polymur: ", ""), v)
                for k, v in sorted(r.get("wakeups_by_process", {}).items()))))


def linger_ms(args):
    """The --linger-ms polymur ran with: the last one given with --polymur-arg, else polymur's default."""
    value = 5.0
    for i, arg in enumerate(args.polymur_arg):
        if arg.startswith("--linger-ms="):
            value = float(arg.split("=", 1)[1])
        elif arg == "--linger-ms" and i + 1 < len(args.polymur_arg):
            value = float(args.polymur_arg[i + 1])
    return value


def wake_floor(args, cases, table):
    """The same number of processes as polymur's listeners and outputs, waking once per linger period and
    doing nothing else (polymur-wake-floor): the least any relay of that shape can cost at a moderate rate."""
    tool = os.path.join(args.bench_dir, "polymur-wake-floor")
    period = linger_ms(args)
    runs = [table.get(c["name"], {}).get("polymur") for c in cases if c["rate"]]
    runs = [r for r in runs if r and r.get("cpu_by_process")]
    if not os.path.exists(tool) or not runs or period <= 0:
        return None
    processes = sum(1 for name in runs[-1]["cpu_by_process"] if "supervisor" not in name)
    out = subprocess.run([tool, "--processes", str(processes), "--period-ms", "%g" % period,
                          "--seconds", "%g" % min(args.window, 10.0)], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        return None
    floor = compare.keyvalues(out.stdout.splitlines()[-1])
    floor["period_ms"] = period
    return floor


def print_targets(cases, table, floor=None):
    log("\n== targets (polymur) ==")
    for case in cases:
        p = table.get(case["name"], {}).get("polymur")
        if not p:
            continue
        if case["name"].startswith("rate100k"):
            v = p["cpu_s_per_m"]
            log("  %-16s CPU <= %.1f s per million at 100k/s: %.3f  %s" % (
                case["name"], TARGETS["cpu_s_per_m_100k"], v, "MET" if v <= TARGETS["cpu_s_per_m_100k"] else "not met"))
        if case["rate"]:
            v = p["p99_us"] / 1e3
            log("  %-16s p99 <= %.0f ms:                       %.2f ms  %s" % (
                case["name"], TARGETS["p99_ms"], v, "MET" if v <= TARGETS["p99_ms"] else "not met"))
        if case["idle"] and case["rate"] and case["rate"] <= 1000:
            v = p["core_share"]
            log("  %-16s < %.0f %% of a core:                   %.2f %%  %s" % (
                case["name"], 100 * TARGETS["core_share_1k_idle"], 100 * v,
                "MET" if v < TARGETS["core_share_1k_idle"] else "not met"))
    if floor:
        log("  floor: %d processes that only wake every %g ms cost %.2f %% of a core here (%.1f us a wake-up, "
            "polymur-wake-floor)" % (floor["processes"], floor["period_ms"], floor["core_percent"],
                                     floor["us_per_wakeup"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--polymur-bin", default=os.environ.get("POLYMUR_BIN", os.path.join(compare.ROOT, "build", "polymur")))
    ap.add_argument("--bench-dir", default=os.environ.get("POLYMUR_BENCH_DIR"),
                    help="directory holding polymur-loadgen and polymur-sink (default: next to --polymur-bin)")
    ap.add_argument("--carbon-bin", default=shutil.which("carbon-c-relay") or "/usr/bin/carbon-c-relay")
    ap.add_argument("--polymur-arg", action="append", default=[], metavar="ARG", help="one more polymur option (repeatable)")
    ap.add_argument("--relays", default="polymur,carbon-c-relay", help="comma-separated subset, in running order")
    ap.add_argument("--cases", default="rate100k,rate1k-idle10k,idle10k", help="comma-separated subset")
    ap.add_argument("--repeat", type=int, default=1, help="alternating runs per relay and case (median reported)")
    ap.add_argument("--connections", type=int, default=4, help="sending connections")
    ap.add_argument("--idle", type=int, default=10_000, help="idle connections in the idle cases")
    ap.add_argument("--window", type=float, default=20.0, help="seconds of CPU measurement")
    ap.add_argument("--lead", type=float, default=3.0, help="seconds of load before the window opens")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds after the idle connections are accepted")
    ap.add_argument("--latency-skip", type=float, default=1.0, help="seconds of samples skipped per sink")
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--warmup", dest="warm", type=int, default=0, metavar="N",
                    help="before each case with a rate, send N metrics at full speed and leave them out: the queue "
                         "files' pages are then touched once, as in a relay that has gone round its queue "
                         "(6,000,000 covers the default 256 MiB queue)")
    ap.add_argument("--run-timeout", type=float, default=180.0)
    ap.add_argument("--stall-timeout", type=float, default=30.0, help="longest wait for the last metrics to arrive")
    ap.add_argument("--smoke", action="store_true", help="tiny and short; exit 1 unless every metric was delivered")
    ap.add_argument("--profile", metavar="DIR", help="perf record -g polymur's processes during the window (one case)")
    ap.add_argument("--json", metavar="FILE", help="write every result here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    rates = {"rate100k": 100_000, "rate1k-idle10k": 1000, "idle10k": 0}
    idles = {"rate100k": 0, "rate1k-idle10k": args.idle, "idle10k": args.idle}
    if args.smoke:
        args.window, args.lead, args.settle, args.latency_skip, args.series = 1.0, 0.5, 0.2, 0.1, 1000
        rates, idles = {"rate100k": 5000, "rate1k-idle10k": 1000, "idle10k": 0}, {"rate100k": 0, "rate1k-idle10k": 200,
                                                                                   "idle10k": 200}
    args.bench_dir = args.bench_dir or os.path.dirname(os.path.abspath(args.polymur_bin))
    relays = [r for r in args.relays.split(",") if r]
    for r in relays:
        if r not in ("polymur", "carbon-c-relay"):
            ap.error("unknown relay " + r)
    cases = []
    for name in args.cases.split(","):
        if name not in rates:
            ap.error("unknown case %s (known: %s)" % (name, ", ".join(rates)))
        cases.append({"name": name, "rate": rates[name], "idle": idles[name], "connections": args.connections,
                      "window": args.window, "lead": args.lead,
                      "seconds": args.lead + args.window + 1.0})
    nofile = raise_nofile(max(idles[c["name"]] for c in cases) + 1000)
    # compare.py's options that its Bench reads
    args.warmup, args.profile_workload, args.ccr_workers = 0, args.cases, os.cpu_count() or 2
    args.ccr_batch, args.ccr_queue = 10000, 5_000_000

    info = compare.machine_info()
    log("== idling: polymur%s ==" % (" vs carbon-c-relay" if "carbon-c-relay" in relays else ""))
    log("machine: %d CPUs, %s, kernel %s, load average at start %s, open files limit %d" % (
        info["nproc"], info["cpu"], info["kernel"], info["loadavg"], nofile))
    log("polymur: %s %s" % (args.polymur_bin, " ".join(args.polymur_arg)))
    if "carbon-c-relay" in relays:
        log("carbon-c-relay: %s %s" % (args.carbon_bin, " ".join(compare.carbon_settings(args))))
    log("window: %.1f s of CPU after %.1f s of load; %d sending connections; broadcast to 2 sinks%s" % (
        args.window, args.lead, args.connections,
        "; %d warm-up metrics before each paced case" % args.warm if args.warm else ""))
    bench = compare.Bench(args)
    table, all_results = {}, []
    try:
        for case in cases:
            log("\n== %s: %d metrics/s, %d idle connections ==" % (case["name"], case["rate"], case["idle"]))
            table[case["name"]] = bench.alternate(relays, case["name"], lambda relay, case=case: run_case(args, bench, relay, case),
                                                  short, all_results)
            print_case(case, table[case["name"]])
        if not args.smoke:  # the smoke's rates are not the targets' rates
            print_targets(cases, table, wake_floor(args, cases, table))
        log("\nload average at end: %s" % compare.loadavg())
    finally:
        bench.close({"machine": info, "cases": cases, "results": all_results})
    if bench.failures:
        log("\nfailures:")
        for f in bench.failures:
            log("  " + f)
        return 1
    if args.smoke:
        log("\nevery metric sent was delivered: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
