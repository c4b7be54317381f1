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

usage: bench/output_transports.py [--count N] [--repeat N] [--schemes a,b] [--polymur-bin PATH]
(build first: cmake --build build; needs the openssl command)
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (free_port, wait_until, loadavg)
from outage import admin  # noqa: E402


def start_sink(sink_bin, port, cert, key, tmp):
    args = [sink_bin, "--port", str(port)]
    if cert:
        args += ["--cert", cert, "--key", key]
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


def make_certificate(directory):
    key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def must(predicate, timeout, what, interval=0.05):
    if not compare.wait_until(predicate, timeout, interval):
        raise SystemExit("output_transports.py: timed out waiting for " + what)


def run(polymur_bin, sink_bin, scheme, count, cert, key, tmp):
    listen, api, dest_port = compare.free_port(), compare.free_port(), compare.free_port()
    dest = "%s127.0.0.1:%d" % (scheme, dest_port)
    tls = "tls" in scheme
    state = tempfile.mkdtemp(prefix="state-", dir=tmp)
    args = [polymur_bin, "--listen-addr=127.0.0.1:%d" % listen, "--api-addr=127.0.0.1:%d" % api, "--state-dir=" + state,
            "--workers=2", "--reconnect-interval=1", "--destinations=" + dest, "--queue-bytes=%d" % (count * 80),
            "--queue-cap=%d" % (count * 2), "--self-metrics-interval=0"]
    if tls:
        args.append("--destination-ca=" + cert)
    log = open(os.path.join(tmp, "polymur-%s.log" % (scheme.strip(":/").replace("+", "_") or "plain")), "wb")
    relay = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
    sink = out = None
    try:
        must(lambda: compare.is_listening(api), 10, "the admin port")

        def stats():
            return json.loads(admin(api, "stats"))["destinations"][dest]
        # 2 connections, so both listener workers' rings fill.
        lines = b"".join(b"bench.output.host%03d.metric%04d %d 1700000000\n" % (i % 1000, i % 997, i) for i in range(count))
        half = len(lines) // 2
        half = lines.index(b"\n", half) + 1
        for part in (lines[:half], lines[half:]):
            with socket.create_connection(("127.0.0.1", listen)) as s:
                s.sendall(part)
        must(lambda: stats()["queued"] == count, 120, "the queue to fill")
        output = [pid for pid in compare.descendants(relay.pid) if compare.cmdline(pid).startswith("polymur: output")]
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
        return count / elapsed, len(lines), totals["wire"], busy
    finally:
        relay.terminate()
        relay.wait(30)
        log.close()
        if sink:
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
    parser.add_argument("--sink-bin", default=os.path.join(HERE, "..", "build", "polymur-transport-sink"))
    args = parser.parse_args()
    schemes = ["" if s == "plain" else s for s in args.schemes.split(",")]
    tmp = tempfile.mkdtemp(prefix="polymur-bench-output-")
    try:
        cert, key = make_certificate(tmp)
        print("output throughput, %d lines per run, median of %d (the schemes in turn); load average before: %s" %
              (args.count, args.repeat, compare.loadavg()))
        runs = {scheme: [] for scheme in schemes}
        for _ in range(args.repeat):
            for scheme in schemes:
                runs[scheme].append(run(args.polymur_bin, args.sink_bin, scheme, args.count, cert, key, tmp))
        plain = None
        for scheme in schemes:
            ordered = sorted(runs[scheme])
            rate, size, wire, busy = ordered[len(ordered) // 2]
            plain = plain or rate
            print("%-14s %10.0f lines/s  %7.1f MB/s of lines  %6.1f MB/s on the wire  output process %3.0f%% of a core"
                  "  (%.2f of %s; runs: %s)" % (scheme or "plaintext TCP", rate, rate * size / args.count / 1e6,
                                               rate * wire / args.count / 1e6, busy * 100, rate / plain,
                                               schemes[0] or "plaintext", ", ".join("%.0f" % r[0] for r in runs[scheme])))
        print("load average after: %s" % compare.loadavg())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
