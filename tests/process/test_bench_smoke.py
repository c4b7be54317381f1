"""The benchmarks' smoke modes (bench/compare.py --smoke and bench/idle.py --smoke, docs/PERFORMANCE.md): tiny
counts through every workload, against polymur alone when carbon-c-relay is not installed, against both when it is, and every
metric sent must be delivered. No timing is asserted.

Binaries: POLYMUR_BIN (polymur) and POLYMUR_BENCH_DIR (polymur-loadgen and polymur-sink; default: the
directory of POLYMUR_BIN, where CMake puts them).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
POLYMUR = os.path.abspath(os.environ.get("POLYMUR_BIN", os.path.join(ROOT, "build", "polymur")))
BENCH_DIR = os.path.abspath(os.environ.get("POLYMUR_BENCH_DIR", os.path.dirname(POLYMUR)))
CARBON = shutil.which("carbon-c-relay")


class BenchSmokeTest(unittest.TestCase):
    def run_smoke(self, script, relays, timeout):
        """bench/<script> --smoke against `relays`; asserts it passed and returns (output, its --json report)."""
        tmp = tempfile.mkdtemp(prefix="polymur-bench-smoke-")
        self.addCleanup(shutil.rmtree, tmp, True)
        report = os.path.join(tmp, "smoke.json")
        cmd = [sys.executable, os.path.join(ROOT, "bench", script), "--smoke", "--polymur-bin", POLYMUR,
               "--bench-dir", BENCH_DIR, "--relays", ",".join(relays), "--json", report]
        if CARBON:
            cmd += ["--carbon-bin", CARBON]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=timeout)
        output = proc.stdout.decode(errors="replace")
        if not CARBON:
            print("carbon-c-relay is not installed: smoke run against polymur only", file=sys.stderr)
        self.assertEqual(proc.returncode, 0, "bench/%s --smoke failed:\n%s" % (script, output))
        self.assertIn("every metric sent was delivered: OK", output, output)
        with open(report) as f:
            data = json.load(f)
        self.assertEqual(data["failures"], [], output)
        return output, data

    def test_smoke_delivers_every_metric(self):
        for tool in ("polymur-loadgen", "polymur-sink"):
            path = os.path.join(BENCH_DIR, tool)
            self.assertTrue(os.access(path, os.X_OK), "%s is not built (POLYMUR_BENCH_DIR=%s)" % (tool, BENCH_DIR))
        relays = ["polymur"] + (["carbon-c-relay"] if CARBON else [])
        output, data = self.run_smoke("compare.py", relays, 400)
        results = data["results"]
        workloads = {w["name"]: w for w in data["workloads"]}
        self.assertIn("broadcast-4", workloads)
        self.assertIn("latency", workloads)
        self.assertTrue(any(w["kind"] == "idle" for w in workloads.values()))
        for name in workloads:
            ran = sorted(r["relay"] for r in results if r["workload"] == name)
            self.assertEqual(ran, sorted(relays), "workload %s ran on %s\n%s" % (name, ran, output))
        for r in results:
            wl = workloads[r["workload"]]
            label = "%s on %s" % (r["relay"], r["workload"])
            if wl["kind"] == "idle":
                self.assertEqual(r["opened"], wl["idle"], label)
                # Only the relay's own established sockets on its listen port are counted (compare.accepted_state);
                # carbon-c-relay may hold more than were opened, polymur exactly as many.
                if r["relay"] == "carbon-c-relay":
                    self.assertGreaterEqual(r["accepted"], wl["idle"], label)
                else:
                    self.assertEqual(r["accepted"], wl["idle"], label)
                continue
            if wl["kind"] == "throughput":
                self.assertEqual(r["sent"], wl["count"], label)
            self.assertGreater(r["sent"], 0, label)
            copies = wl["destinations"] if wl["distribution"] == "broadcast" else 1
            self.assertEqual(r["expected"], r["sent"] * copies, label)
            self.assertEqual(r["delivered"], r["expected"], label)
            if wl["distribution"] == "broadcast":
                self.assertEqual(r["per_sink"], [r["sent"]] * copies, label)
            else:
                self.assertEqual(sum(r["per_sink"]), r["sent"], label)
        # Both relays place every metric on the same destination under carbon_ch.
        if CARBON and "hash-carbon_ch" in workloads:
            splits = {r["relay"]: r["per_sink"] for r in results if r["workload"] == "hash-carbon_ch"}
            self.assertEqual(splits["polymur"], splits["carbon-c-relay"], output)

    def test_idle_smoke_delivers_every_metric(self):
        """bench/idle.py --smoke: paced load beside idle connections; every metric arrives at both sinks."""
        relays = ["polymur"] + (["carbon-c-relay"] if CARBON else [])
        output, data = self.run_smoke("idle.py", relays, 300)
        cases = {c["name"]: c for c in data["cases"]}
        self.assertEqual(sorted(cases), ["idle10k", "rate100k", "rate1k-idle10k"])
        for r in data["results"]:
            case = cases[r["case"]]
            label = "%s on %s" % (r["relay"], r["case"])
            self.assertGreater(r["cpu_s"], 0, label)  # the relay's processes were found and read
            if case["idle"]:
                self.assertEqual(r["idle_opened"], case["idle"], label)
                self.assertGreaterEqual(r["idle_accepted"], case["idle"], label)
            if case["rate"]:
                self.assertGreater(r["sent"], 0, label)
                self.assertEqual(r["per_sink"], [r["sent"], r["sent"]], label)
                self.assertGreater(r["samples"], 0, label)


class RulesBenchSmokeTest(unittest.TestCase):
    @unittest.skipUnless(CARBON, "carbon-c-relay is not installed")
    def test_rules_bench_delivers_every_copy_through_both_relays(self):
        """bench/rules_compare.py on the 51-rule file, one pass over its names: every copy the rules give arrives."""
        cmd = [sys.executable, os.path.join(ROOT, "bench", "rules_compare.py"), "--bench-dir", BENCH_DIR,
               "--polymur-bin", POLYMUR, "--carbon-bin", CARBON, "--count", "200000", "--connections", "1",
               "--repeat", "1", "--only", "51"]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=400)
        output = proc.stdout.decode(errors="replace")
        self.assertEqual(proc.returncode, 0, "bench/rules_compare.py failed:\n" + output)
        runs = [line for line in output.splitlines() if " run 0: " in line]
        self.assertEqual(len(runs), 2, output)
        for line in runs:
            delivered = line.split("delivered ")[1].split()[0].split("/")
            self.assertEqual(delivered[0], delivered[1], line)
            self.assertGreater(int(delivered[0]), 200000, line)  # some names go to several clusters


if __name__ == "__main__":
    unittest.main()
