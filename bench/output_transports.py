#!/usr/bin/env python3
"""Output throughput of polymur per destination scheme: plaintext TCP, tls://, lz4://, gzip://,
lz4+tls://, gzip+tls:// and pickle:// (docs/PERFORMANCE.md). Not a test: it prints figures, with the
load average, and asserts nothing.

For each scheme a polymur relay queues --count lines for a destination that is not listening yet (so
the queue fills first and the input side is not what is measured); then the receiver starts and the
rate is the lines polymur confirmed (its `stats` sent, checked to be all of them) divided by the time
from the first byte the receiver read to the last. The receiver is polymur-transport-sink
(bench/transport_sink.cpp, C++: OpenSSL for TLS, polymur's own stream decoder for gzip and LZ4), which
also checks that every line came out of the decoder. The schemes run in turn, --repeat rounds, so a
change of machine load hits all of them alike.

--end-to-end measures the whole relay instead: the receiver listens first, polymur-loadgen sends --count
lines over 4 connections, and the rate is the lines divided by the time from the load generator's start
to the last byte the receiver read (every line counted out of the decoder). Plaintext runs in every
round, so each scheme is compared with plaintext measured under the same load.

--perf DIR records the output process of every run with `perf record -e cpu-clock -g` into
DIR/<scheme>-<round>.data (perf report -i FILE --no-children).

usage: bench/output_transports.py [--count N] [--repeat N] [--schemes a,b] [--end-to-end] [--perf DIR]
                                  [--polymur-bin PATH] (build first: cmake --build build; needs openssl)
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (free_port, wait_until, loadavg)
from outage import admin  # noqa: E402


def start_sink(sink_bin, port, cert, key, tmp):
    args = [sink_bin, "--port", str(port)]
    if cert:
        args += ["--cert", cert, "--key", key]
        if os.environ.get("TLS_READ_AHEAD"):  # an experiment on the receiver
            args += ["--tls-read-ahead", os.environ["TLS_READ_AHEAD"]]
    out = open(os.path.join(tmp, "sink-%d.out" % port), "w+")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return proc, out


def sink_totals(out):
    """The receiver's last report: wire, decoded, lines, first_ns, last_ns (or None)."""
    out.seek(0)
    reports = [line for line in out.read().splitlines() if line.startswith("wire=")]
    if not reports:
        return None
    return {k: int(v) for k, v in (field.split("=") for field in reports[-1].split())}


def sink_busy(sink, elapsed):
    """The receiver's CPU time over `elapsed` (it is idle before and after the run's bytes)."""
    return sum(compare.cpu_ticks([sink.pid]).values()) / os.sysconf("SC_CLK_TCK") / elapsed


def make_certificate(directory):
    key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def must(predicate, timeout, what, interval=0.05):
    if not compare.wait_until(predicate, timeout, interval):
        raise SystemExit("output_transports.py: timed out waiting for " + what)


def start_relay(polymur_bin, scheme, count, cert, tmp):
    return start_relay_to(polymur_bin, scheme, count, cert, tmp, compare.free_port())


def start_relay_to(polymur_bin, scheme, count, cert, tmp, dest_port):
    listen, api = compare.free_port(), compare.free_port()
    dest = "%s127.0.0.1:%d" % (scheme, dest_port)
    state = tempfile.mkdtemp(prefix="state-", dir=tmp)
    args = [polymur_bin, "--listen-addr=127.0.0.1:%d" % listen, "--api-addr=127.0.0.1:%d" % api, "--state-dir=" + state,
            "--workers=2", "--reconnect-interval=1", "--destinations=" + dest, "--queue-bytes=%d" % (count * 200),
            "--queue-cap=%d" % (count * 2), "--self-metrics-interval=0"]
    if "tls" in scheme:
        args.append("--destination-ca=" + cert)
    log = open(os.path.join(tmp, "polymur-%s.log" % label(scheme)), "wb")
    relay = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
    must(lambda: compare.is_listening(api), 10, "the admin port")
    return relay, log, listen, api, dest, dest_port


def label(scheme):
    return scheme.strip(":/").replace("+", "_") or "plain"


def output_pids(relay):
    return [pid for pid in compare.descendants(relay.pid) if compare.cmdline(pid).startswith("polymur: output")]


def start_perf(perf_dir, scheme, round_no, pids):
    if not perf_dir:
        return None
    path = os.path.join(perf_dir, "%s-%d.data" % (label(scheme), round_no))
    return subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-o", path, "-p",
                             ",".join(str(p) for p in pids)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_perf(perf):
    if perf and perf.poll() is None:
        perf.send_signal(2)
        perf.wait(30)


CONNECTIONS = {}  # scheme -> what polymur logged on connecting (protocol, cipher suite)


def stop(relay, log, sink, out):
    relay.terminate()
    relay.wait(30)
    log.close()
    with open(log.name, errors="replace") as f:
        for line in f:
            if ": connected" in line:
                CONNECTIONS[os.path.basename(log.name)] = line.split(": connected", 1)[1].strip()
                break
    if sink:
        sink.terminate()
        sink.wait(10)
        out.close()


def run(polymur_bin, sink_bin, scheme, count, cert, key, tmp, perf_dir=None, round_no=0, **_):
    tls = "tls" in scheme
    relay, log, listen, api, dest, dest_port = start_relay(polymur_bin, scheme, count, cert, tmp)
    sink = out = perf = None
    try:
        def stats():
            return json.loads(admin(api, "stats"))["destinations"][dest]
        # 2 connections, usually one per listener worker; but both can land on the same worker, whose ring
        # (a third of --queue-bytes with 2 workers) must then hold every line: 200 bytes a line, lines of 50.
        lines = b"".join(b"bench.output.host%03d.metric%04d %d 1700000000\n" % (i % 1000, i % 997, i) for i in range(count))
        half = len(lines) // 2
        half = lines.index(b"\n", half) + 1
        for part in (lines[:half], lines[half:]):
            with socket.create_connection(("127.0.0.1", listen)) as s:
                s.sendall(part)
        if not compare.wait_until(lambda: stats()["queued"] == count, 120):
            raise SystemExit("output_transports.py: the queue did not fill (lines dropped, or a foreign listener on "
                             "port %d?): %s" % (dest_port, stats()))
        output = output_pids(relay)
        perf = start_perf(perf_dir, scheme, round_no, output)
        ticks_before = sum(compare.cpu_ticks(output).values())
        sink, out = start_sink(sink_bin, dest_port, cert if tls else None, key, tmp)
        must(lambda: stats()["sent"] >= count, 600, "every line confirmed", interval=0.05)
        # Confirmed means acknowledged by the receiver's kernel: let the receiver read (and decode) the rest.
        want = len(lines) if scheme != "pickle://" else None
        must(lambda: (sink_totals(out) or {}).get("decoded", 0) >= (want or 1) and
             (want is not None or sink_totals(out)["wire"] > 0), 60, "the receiver to read everything", interval=0.1)
        totals = sink_totals(out)
        if want is not None and (totals["decoded"] != len(lines) or totals["lines"] != count):
            raise SystemExit("output_transports.py: %s: the receiver decoded %d lines (%d bytes), expected %d" %
                             (scheme, totals["lines"], totals["decoded"], count))
        elapsed = (totals["last_ns"] - totals["first_ns"]) / 1e9
        busy = (sum(compare.cpu_ticks(output).values()) - ticks_before) / os.sysconf("SC_CLK_TCK") / elapsed
        return count / elapsed, len(lines), totals["wire"], busy, sink_busy(sink, elapsed)
    finally:
        stop_perf(perf)
        stop(relay, log, sink, out)


def run_end_to_end(polymur_bin, sink_bin, scheme, count, cert, key, tmp, perf_dir=None, round_no=0, loadgen_bin=None):
    """loadgen -> polymur -> receiver, the receiver listening from the start."""
    tls = "tls" in scheme
    dest_port = compare.free_port()
    sink, out = start_sink(sink_bin, dest_port, cert if tls else None, key, tmp)
    must(lambda: compare.is_listening(dest_port), 10, "the receiver")
    relay = log = perf = None
    try:
        relay, log, listen, api, dest, _ = start_relay_to(polymur_bin, scheme, count, cert, tmp, dest_port)
        must(lambda: output_pids(relay), 10, "the output process")
        must(lambda: json.loads(admin(api, "stats"))["destinations"][dest]["state"] == "connected", 10, "the connection")
        output = output_pids(relay)
        perf = start_perf(perf_dir, scheme, round_no, output)
        ticks_before = sum(compare.cpu_ticks(output).values())
        start_ns = time.monotonic_ns()
        lg = subprocess.run([loadgen_bin, "--port", str(listen), "--connections", "4", "--threads", "2", "--count",
                             str(count), "--series", "100000", "--max-seconds", "300"], capture_output=True, timeout=330)
        if lg.returncode != 0:
            raise SystemExit("output_transports.py: loadgen failed: %s" % lg.stderr.decode())
        sent_ns = time.monotonic_ns()
        must(lambda: (sink_totals(out) or {}).get("lines", 0) >= count, 600, "the receiver to read every line", 0.05)
        totals = sink_totals(out)
        if totals["lines"] != count:
            raise SystemExit("output_transports.py: %s: the receiver counted %d lines, expected %d" %
                             (scheme, totals["lines"], count))
        elapsed = (totals["last_ns"] - start_ns) / 1e9
        busy = (sum(compare.cpu_ticks(output).values()) - ticks_before) / os.sysconf("SC_CLK_TCK") / elapsed
        print("    %s: the load generator took %.2f s, the last byte arrived %.2f s after it ended" %
              (scheme or "plaintext", (sent_ns - start_ns) / 1e9, max(0, totals["last_ns"] - sent_ns) / 1e9))
        return count / elapsed, totals["decoded"], totals["wire"], busy, sink_busy(sink, elapsed)
    finally:
        stop_perf(perf)
        if relay:
            stop(relay, log, sink, out)
        else:
            sink.terminate()
            sink.wait(10)
            out.close()


SCHEMES = ("", "tls://", "lz4://", "gzip://", "lz4+tls://", "gzip+tls://", "pickle://")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--schemes", default=",".join(s or "plain" for s in SCHEMES),
                        help="comma-separated, 'plain' for plaintext TCP")
    parser.add_argument("--polymur-bin", default=os.path.join(HERE, "..", "build", "polymur"))
    parser.add_argument("--end-to-end", action="store_true",
                        help="load generator -> polymur -> receiver instead of draining a filled queue")
    parser.add_argument("--perf", metavar="DIR", help="perf record the output process of every run into DIR")
    parser.add_argument("--loadgen-bin", default=os.path.join(HERE, "..", "build", "polymur-loadgen"))
    parser.add_argument("--sink-bin", default=os.path.join(HERE, "..", "build", "polymur-transport-sink"))
    args = parser.parse_args()
    schemes = ["" if s == "plain" else s for s in args.schemes.split(",")]
    tmp = tempfile.mkdtemp(prefix="polymur-bench-output-")
    try:
        cert, key = make_certificate(tmp)
        if args.end_to_end and schemes[0] != "":
            schemes.insert(0, "")  # every round measures plaintext too
        if args.perf:
            os.makedirs(args.perf, exist_ok=True)
        print("%s, %d lines per run, median of %d (the schemes in turn); load average before: %s" %
              ("end to end (loadgen -> polymur -> receiver)" if args.end_to_end else "output throughput", args.count,
               args.repeat, compare.loadavg()))
        measure = run_end_to_end if args.end_to_end else run
        runs = {scheme: [] for scheme in schemes}
        for round_no in range(args.repeat):
            for scheme in schemes:
                try:
                    runs[scheme].append(measure(args.polymur_bin, args.sink_bin, scheme, args.count, cert, key, tmp,
                                                perf_dir=args.perf, round_no=round_no, loadgen_bin=args.loadgen_bin))
                except SystemExit as failed:  # reported, and left out of the medians
                    print("  round %d %-12s failed: %s" % (round_no + 1, scheme or "plaintext", failed), flush=True)
                    runs[scheme].append(None)
                    continue
                print("  round %d %-12s %10.0f lines/s  (load average %s)" %
                      (round_no + 1, scheme or "plaintext", runs[scheme][-1][0], compare.loadavg()), flush=True)
        plain = None
        for scheme in schemes:
            ordered = sorted(r for r in runs[scheme] if r)
            if not ordered:
                continue
            rate, size, wire, busy, receiver = ordered[len(ordered) // 2]
            plain = plain or rate
            # Also each round's rate over the first scheme's in the same round, median over the rounds.
            per_round = sorted(r[0] / p[0] for r, p in zip(runs[scheme], runs[schemes[0]]) if r and p) or [0]
            # The output's CPU per line, median of the rounds: steadier than the rates on a loaded machine.
            cpu_ns = sorted(r[3] / r[0] * 1e9 for r in ordered)[len(ordered) // 2]
            print("%-14s %10.0f lines/s  %7.1f MB/s of lines  %6.1f MB/s on the wire  output process %3.0f%% of a core"
                  " (%.0f ns CPU/line)  receiver %3.0f%% (%.0f ns/line)  (%.2f of %s, per round %.2f; runs: %s)" %
                  (scheme or "plaintext TCP", rate, rate * size / args.count / 1e6, rate * wire / args.count / 1e6,
                   busy * 100, cpu_ns, receiver * 100, receiver / rate * 1e9, rate / plain, schemes[0] or "plaintext", per_round[len(per_round) // 2],
                   ", ".join("%.0f" % r[0] if r else "failed" for r in runs[scheme])))
        for name, info in sorted(CONNECTIONS.items()):
            if info:
                print("%s: connected %s" % (name, info))
        print("load average after: %s" % compare.loadavg())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
