#!/usr/bin/env python3
"""Output throughput of polymur per destination scheme: plaintext TCP, tls:// and pickle://
(docs/PERFORMANCE.md). Not a test: it prints figures, with the load average, and asserts nothing.

For each scheme a polymur relay queues --count lines for a destination that is not listening yet (so
the queue fills first and the input side is not what is measured); then a receiver starts and the rate
is the lines polymur confirmed (its `stats` sent, checked to be all of them) divided by the time from
the first byte the receiver read to the last. The receiver is one Python process reading 1 MiB at
a time (through Python's ssl, i.e. OpenSSL, for tls://) and discarding what it reads.

usage: bench/output_transports.py [--count N] [--repeat N] [--polymur-bin PATH]
(build first: cmake --build build; needs the openssl command)
"""
import argparse
import json
import multiprocessing
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (free_port, wait_until, loadavg)
from outage import admin  # noqa: E402


def receive(port, cert, key, first, last, received):
    """Accepts connections on 127.0.0.1:port (TLS when `cert`) and reads until each closes, noting the
    time of the first and the last byte and how many bytes came."""
    server = socket.create_server(("127.0.0.1", port))
    context = None
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    buf = bytearray(1 << 20)
    while True:
        conn, _ = server.accept()
        if context:
            try:
                conn = context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                continue
        with conn:
            try:
                while True:
                    n = conn.recv_into(buf)
                    if not n:
                        break
                    now = time.monotonic()
                    if not first.value:
                        first.value = now
                    last.value = now
                    received.value += n
            except (ssl.SSLError, OSError):
                pass


def make_certificate(directory):
    key, cert = os.path.join(directory, "key.pem"), os.path.join(directory, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def must(predicate, timeout, what, interval=0.05):
    if not compare.wait_until(predicate, timeout, interval):
        raise SystemExit("output_transports.py: timed out waiting for " + what)


def run(polymur_bin, scheme, count, cert, key, tmp):
    listen, api, dest_port = compare.free_port(), compare.free_port(), compare.free_port()
    dest = "%s127.0.0.1:%d" % (scheme, dest_port)
    state = tempfile.mkdtemp(prefix="state-", dir=tmp)
    args = [polymur_bin, "--listen-addr=127.0.0.1:%d" % listen, "--api-addr=127.0.0.1:%d" % api, "--state-dir=" + state,
            "--workers=2", "--reconnect-interval=1", "--destinations=" + dest, "--queue-bytes=%d" % (count * 80),
            "--queue-cap=%d" % (count * 2), "--self-metrics-interval=0"]
    if scheme == "tls://":
        args.append("--destination-ca=" + cert)
    log = open(os.path.join(tmp, "polymur-%s.log" % scheme.strip(":/") or "plain"), "wb")
    relay = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
    receiver = None
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
        first, last, received = (multiprocessing.Value("d", 0.0), multiprocessing.Value("d", 0.0),
                                 multiprocessing.Value("q", 0))
        receiver = multiprocessing.Process(target=receive, args=(dest_port, cert if scheme == "tls://" else None, key,
                                                                  first, last, received), daemon=True)
        receiver.start()
        must(lambda: stats()["sent"] >= count, 600, "every line confirmed", interval=0.05)
        # Confirmed means acknowledged by the receiver's kernel: let the receiver read the rest.
        def quiet():
            before = received.value
            time.sleep(0.2)
            return received.value == before
        must(quiet, 30, "the receiver to read everything")
        elapsed = last.value - first.value
        busy = (sum(compare.cpu_ticks(output).values()) - ticks_before) / os.sysconf("SC_CLK_TCK") / elapsed
        return count / elapsed, len(lines), busy
    finally:
        relay.terminate()
        relay.wait(30)
        log.close()
        if receiver:
            receiver.terminate()
            receiver.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--polymur-bin", default=os.path.join(HERE, "..", "build", "polymur"))
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="polymur-bench-output-")
    try:
        cert, key = make_certificate(tmp)
        print("output throughput, %d lines per run, median of %d; load average before: %s" %
              (args.count, args.repeat, compare.loadavg()))
        plain = None
        for scheme, name in (("", "plaintext TCP"), ("tls://", "tls://"), ("pickle://", "pickle://")):
            runs = sorted(run(args.polymur_bin, scheme, args.count, cert, key, tmp) for _ in range(args.repeat))
            rate, size, busy = runs[len(runs) // 2]
            plain = plain or rate
            print("%-14s %10.0f lines/s  %7.1f MB/s of lines  output process %3.0f%% of a core  (%.2f of plaintext; "
                  "runs: %s)" % (name, rate, rate * size / args.count / 1e6, busy * 100, rate / plain,
                                 ", ".join("%.0f" % r[0] for r in runs)))
        print("load average after: %s" % compare.loadavg())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
