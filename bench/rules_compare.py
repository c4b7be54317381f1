#!/usr/bin/env python3
"""polymur vs carbon-c-relay end to end with the same carbon-c-relay rules file (docs/PERFORMANCE.md, "Rules: end
to end"). Standard library only; uses bench/compare.py's sinks, process helpers and measures.

The rules files and names are polymur-rules-bench's (bench/rules_bench.cpp): 51 and 501 rules (prefix matches,
regexes with captures, rewrites, blackholes, stops) over four clusters (carbon_ch replication 2, fnv1a_ch, any_of,
forward), 200,000 names. Each cluster member becomes a polymur-sink on 127.0.0.1 (hash clusters' members get an
instance each, so that they stay distinct ring nodes on one address); both relays run the same file. For each rule
set the runs alternate, polymur then carbon-c-relay, --repeat times: the same polymur-loadgen load (every name the
same number of times), and every copy the rules give must reach its sink (`polymur lookup --rules` counts them).
Prints per run and the median: input metrics/s delivered (input metrics / (last arrival - first send)), CPU seconds
of the relay's processes per million input metrics, and the machine's load average.

  python3 bench/rules_compare.py --bench-dir build --repeat 3
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (bench/compare.py)

NAMES = 200_000


def localize(rules_text, sink_for):
    """The rules text with each cluster member host:port replaced by a local sink (an instance per member of
    a hash cluster)."""
    out = []
    for line in rules_text.split("\n"):
        m = re.match(r"^cluster (\S+) (\S+)(.*);$", line)
        if not m:
            out.append(line)
            continue
        hashed = m.group(2) in ("carbon_ch", "fnv1a_ch", "jump_fnv1a_ch")
        words = []
        for word in m.group(3).split():
            if re.match(r"^\d+\.\d+\.\d+\.\d+:\d+$", word):
                port = sink_for(word)
                words.append("127.0.0.1:%d" % port + ("=%s" % word.replace(".", "_").replace(":", "_") if hashed else ""))
            else:
                words.append(word)
        out.append("cluster %s %s %s;" % (m.group(1), m.group(2), " ".join(words)))
    return "\n".join(out)


def copies_per_pass(polymur_bin, rules_path, names_path):
    """How many copies one pass over the names makes (rules may send a name several times or not at all)."""
    with open(names_path, "rb") as names:
        out = subprocess.run([polymur_bin, "lookup", "--rules", rules_path], stdin=names, capture_output=True,
                             check=True, timeout=600).stdout.decode()
    total = 0
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) > 1 and fields[1]:
            total += len(fields[1].split("|"))
    return total


class RulesPolymur(compare.Relay):
    name = "polymur"

    def __init__(self, binary, workdir, tag, rules_path, extra):
        super().__init__(workdir, "polymur-" + tag)
        self.api_port = compare.free_port()
        self._spawn([binary, "--listen-addr=127.0.0.1:%d" % self.port, "--api-addr=127.0.0.1:%d" % self.api_port,
                     "--state-dir=" + os.path.join(workdir, "state-" + tag), "--rules", rules_path] + list(extra))


class RulesCarbonCRelay(compare.Relay):
    name = "carbon-c-relay"

    def __init__(self, binary, workdir, tag, rules_text, settings):
        super().__init__(workdir, "carbon-c-relay-" + tag)
        conf = os.path.join(workdir, "carbon-c-relay-%s.conf" % tag)
        with open(conf, "w") as f:
            f.write("listen type linemode 127.0.0.1:%d proto tcp;\n%s" % (self.port, rules_text))
        self._spawn([binary, "-f", conf] + settings)


def one_run(a, workdir, relay_name, tag, rules_text, names_path, expected_per_pass):
    sinks = {}
    addresses = sorted(set(re.findall(r"\d+\.\d+\.\d+\.\d+:\d+", " ".join(
        line for line in rules_text.split("\n") if line.startswith("cluster ")))))
    for i, address in enumerate(addresses):
        sinks[address] = compare.Sink(os.path.join(a.bench_dir, "polymur-sink"), workdir, "sink%s-%d" % (tag, i),
                                      max_seconds=a.run_timeout + 60)
    local = localize(rules_text, lambda address: sinks[address].port)
    path = os.path.join(workdir, "rules-%s.conf" % tag)
    with open(path, "w") as f:
        f.write(local)
    if relay_name == "polymur":
        relay = RulesPolymur(a.polymur_bin, workdir, tag, path, a.polymur_arg)
    else:
        relay = RulesCarbonCRelay(a.carbon_bin, workdir, tag, local, compare.carbon_settings(a))
    passes = a.count // NAMES
    expected = expected_per_pass * passes
    try:
        relay.wait_ready()
        time.sleep(0.3)
        load0 = compare.loadavg()
        pids0 = relay.pids()
        cpu0 = compare.cpu_ticks(pids0)
        cmd = [os.path.join(a.bench_dir, "polymur-loadgen"), "--port", str(relay.port), "--connections",
               str(a.connections), "--threads", str(a.connections), "--names", names_path, "--count",
               str(passes * NAMES), "--max-seconds", str(a.run_timeout)]
        lg = subprocess.run(cmd, capture_output=True, timeout=a.run_timeout + 60)
        sent = compare.keyvalues(lg.stdout.decode())
        if lg.returncode != 0 or "sent" not in sent:
            raise RuntimeError("loadgen failed (%d): %s %s" % (lg.returncode, lg.stdout.decode(), lg.stderr.decode()))
        compare.wait_for_delivery(list(sinks.values()), expected, a.run_timeout, a.stall_timeout)
        pids1 = relay.pids()
        cpu1 = compare.cpu_ticks(pids1)
        load1 = compare.loadavg()
    finally:
        relay.stop()
        stats = [s.finish() for s in sinks.values()]
    delivered = sum(s.get("count", 0) for s in stats)
    last = max((s.get("last_ns", 0) for s in stats), default=0)
    span = (last - sent["start_ns"]) / 1e9 if last > sent["start_ns"] else 0
    cpu_s = sum(cpu1.get(p, 0) - cpu0.get(p, 0) for p in set(pids0) | set(pids1)) / compare.CLK_TCK
    return {"relay": relay_name, "sent": sent["sent"], "expected": expected, "delivered": delivered,
            "rate": sent["sent"] / span if span else 0, "seconds": span,
            "cpu_s_per_m": cpu_s / (sent["sent"] / 1e6), "load": [load0, load1]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-dir", default=os.path.join(compare.ROOT, "build"))
    ap.add_argument("--polymur-bin", default=None)
    ap.add_argument("--carbon-bin", default=shutil.which("carbon-c-relay") or "/usr/bin/carbon-c-relay")
    ap.add_argument("--polymur-arg", action="append", default=[], metavar="ARG")
    ap.add_argument("--count", type=int, default=1_600_000, help="input metrics per run (whole passes over the names)")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3, help="alternating runs per relay and rule set (median reported)")
    ap.add_argument("--only", default="", help="51 or 501 (default: both)")
    ap.add_argument("--run-timeout", type=float, default=300.0)
    ap.add_argument("--stall-timeout", type=float, default=15.0)
    ap.add_argument("--ccr-workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--ccr-batch", type=int, default=10000)
    ap.add_argument("--ccr-queue", type=int, default=5_000_000)
    a = ap.parse_args()
    a.polymur_bin = a.polymur_bin or os.path.join(a.bench_dir, "polymur")
    unit = NAMES * a.connections  # every thread sends every name the same number of times
    a.count = max(unit, a.count // unit * unit)

    workdir = tempfile.mkdtemp(prefix="polymur-rules-bench-")
    failures = []
    try:
        subprocess.run([os.path.join(a.bench_dir, "polymur-rules-bench"), workdir], check=True,
                       stdout=subprocess.DEVNULL)
        print("machine: %s" % compare.machine_info(), flush=True)
        for rules in ("51", "501"):
            if a.only and rules not in a.only.split(","):
                continue
            rules_path = os.path.join(workdir, "rules%s.conf" % rules)
            names_path = os.path.join(workdir, "names%s.txt" % rules)
            with open(rules_path) as f:
                rules_text = f.read()
            per_pass = copies_per_pass(a.polymur_bin, rules_path, names_path)
            print("%s rules: %d input metrics per run, %d copies to deliver" % (
                rules, a.count, per_pass * (a.count // NAMES)), flush=True)
            results = {"polymur": [], "carbon-c-relay": []}
            for r in range(a.repeat):
                for relay in ("polymur", "carbon-c-relay"):
                    res = one_run(a, workdir, relay, "%s-%s-%d" % (rules, relay, r), rules_text, names_path, per_pass)
                    results[relay].append(res)
                    if res["delivered"] != res["expected"]:
                        failures.append("%s rules, %s run %d: delivered %d of %d copies" % (
                            rules, relay, r, res["delivered"], res["expected"]))
                    print("  %-15s run %d: %10.0f metrics/s  %6.2f CPU s/M  delivered %d/%d  load %s -> %s" % (
                        relay, r, res["rate"], res["cpu_s_per_m"], res["delivered"], res["expected"],
                        res["load"][0], res["load"][1]), flush=True)
            med = {k: statistics.median(x["rate"] for x in v) for k, v in results.items()}
            cpu = {k: statistics.median(x["cpu_s_per_m"] for x in v) for k, v in results.items()}
            ratio = med["polymur"] / med["carbon-c-relay"] if med["carbon-c-relay"] else 0
            print("%s rules, median of %d: polymur %.0f metrics/s (%.2f CPU s/M), carbon-c-relay %.0f metrics/s "
                  "(%.2f CPU s/M): %.2fx (target 3x: %s)" % (
                      rules, a.repeat, med["polymur"], cpu["polymur"], med["carbon-c-relay"], cpu["carbon-c-relay"],
                      ratio, "met" if ratio >= 3 else "not met"), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for f in failures:
        print("FAILED: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
