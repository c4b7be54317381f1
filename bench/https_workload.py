#!/usr/bin/env python3
"""HTTPS transport workload: polymur-loadgen -> polymur proxy -> (TLS, gzip) -> polymur gateway -> polymur-sink.

Standalone, standard library only (plus the `openssl` command for the throwaway certificates):

    python3 bench/https_workload.py --build-dir build --count 2000000

Prints the delivered metrics/s (first to last arrival at the sink) and the bytes the proxy's HTTPS
output wrote to its TLS socket per metric (from /proc/<pid>/io of that process: TLS records, HTTP
headers and gzip bodies; TCP/IP headers not included), next to the uncompressed bytes per metric.
Every process runs on 127.0.0.1 with private state directories; nothing outside a temp dir is touched.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

CA_CONFIG = """
[ ca ]
default_ca = bench_ca
[ bench_ca ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_days = 2
policy = policy_any
unique_subject = no
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = req_dn
[ req_dn ]
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
[ client_ext ]
basicConstraints = CA:FALSE
extendedKeyUsage = clientAuth
[ server_ext ]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
"""


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(root):
    cnf = os.path.join(root, "ca.cnf")
    with open(cnf, "w") as f:
        f.write(CA_CONFIG.format(dir=root))
    open(os.path.join(root, "index.txt"), "w").close()
    with open(os.path.join(root, "serial"), "w") as f:
        f.write("1000\n")
    p = lambda name: os.path.join(root, name)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", "-new", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2",
            "-subj", "/CN=bench-ca", "-config", cnf, "-extensions", "ca_ext")
    for name, ext in (("gateway", "server_ext"), ("bench-site", "client_ext")):
        openssl("req", "-new", *ec, "-keyout", p(name + ".key"), "-out", p(name + ".csr"), "-subj", "/CN=" + name,
                "-config", cnf)
        openssl("ca", "-batch", "-config", cnf, "-in", p(name + ".csr"), "-out", p(name + ".pem"), "-extensions", ext,
                "-notext")
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def admin(port, command):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(command.encode() + b"\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data.decode()
            data += chunk


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("https_workload: timed out waiting for " + what)


def children(pid):
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) != pid:
                    continue
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                out[int(entry)] = f.read().split(b"\0")[0].decode()
        except (OSError, ValueError, IndexError):
            continue
    return out


def proc_io(pid):
    values = {}
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            values[key] = int(value)
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default=os.environ.get("BUILD_DIR", "build"))
    parser.add_argument("--count", type=int, default=2000000, help="metrics to send")
    parser.add_argument("--connections", type=int, default=4, help="loadgen connections to the proxy")
    parser.add_argument("--rate", type=float, default=0, help="aggregate send rate (metrics/s); 0: as fast as possible")
    parser.add_argument("--workers", type=int, default=2, help="listener workers of the proxy and of the gateway")
    parser.add_argument("--batch-bytes", type=int, default=1 << 20, help="the proxy's --batch-bytes")
    parser.add_argument("--key-prefix", action="store_true", help="the gateway prefixes names with the client CN")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, queues)")
    args = parser.parse_args()

    polymur = os.path.join(args.build_dir, "polymur")
    loadgen = os.path.join(args.build_dir, "polymur-loadgen")
    sink_bin = os.path.join(args.build_dir, "polymur-sink")
    for tool in (polymur, loadgen, sink_bin):
        if not os.access(tool, os.X_OK):
            raise SystemExit("https_workload: %s is missing; build first (cmake --build %s)" % (tool, args.build_dir))
    if not shutil.which("openssl"):
        raise SystemExit("https_workload: needs the openssl command (apt-get install openssl)")

    tmp = tempfile.mkdtemp(prefix="polymur-https-bench-")
    procs = []
    try:
        pki = make_pki(tmp)
        sink = subprocess.Popen([sink_bin, "--port", "0", "--expect", str(args.count), "--idle-timeout", "60",
                                 "--max-seconds", str(int(args.timeout))], stdout=subprocess.PIPE, text=True)
        procs.append(sink)
        sink_port = int(sink.stdout.readline().strip().split("port=")[1])

        https_port, gw_api, proxy_port, proxy_api = free_port(), free_port(), free_port(), free_port()
        common = ["--workers=%d" % args.workers, "--reconnect-interval=1", "--stats-interval=60"]
        gateway_cmd = [polymur, "--mode=gateway", "--listen-addr=127.0.0.1", "--listen-port=%d" % https_port,
                       "--api-addr=127.0.0.1:%d" % gw_api, "--state-dir=" + os.path.join(tmp, "gateway"),
                       "--destinations=127.0.0.1:%d" % sink_port, "--cert=" + pki("gateway.pem"),
                       "--key=" + pki("gateway.key"), "--ca-cert=" + pki("ca.pem")] + common
        if args.key_prefix:
            gateway_cmd.append("--key-prefix")
        proxy_cmd = [polymur, "--mode=proxy", "--listen-addr=127.0.0.1:%d" % proxy_port,
                     "--api-addr=127.0.0.1:%d" % proxy_api, "--state-dir=" + os.path.join(tmp, "proxy"),
                     "--gateway=https://127.0.0.1:%d" % https_port, "--client-cert=" + pki("bench-site.pem"),
                     "--client-key=" + pki("bench-site.key"), "--ca-cert=" + pki("ca.pem"),
                     "--batch-bytes=%d" % args.batch_bytes,
                     # The load generator outruns the WAN link on purpose: the proxy's queue holds it all.
                     "--queue-bytes=%d" % max(256 << 20, args.count * 64 * (args.workers + 1) * 2), "--queue-cap=%d" % max(args.count, 4000000)] + common
        for name, cmd, api in (("gateway", gateway_cmd, gw_api), ("proxy", proxy_cmd, proxy_api)):
            log = open(os.path.join(tmp, name + ".log"), "wb")
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL))
            wait_for(lambda api=api: admin(api, "stats"), 10, name + " admin")
        proxy_pid = procs[-1].pid
        output_pid = next(pid for pid, title in children(proxy_pid).items() if "output https://" in title)
        io_before = proc_io(output_pid)

        gen = [loadgen, "--port", str(proxy_port), "--count", str(args.count), "--connections", str(args.connections),
               "--max-seconds", str(int(args.timeout))]
        if args.rate:
            gen += ["--rate", str(args.rate)]
        started = time.monotonic()
        sent = subprocess.run(gen, stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
        dest_name = "https://127.0.0.1:%d" % https_port
        deadline = time.monotonic() + args.timeout
        while sink.poll() is None and time.monotonic() < deadline:
            d = json.loads(admin(proxy_api, "stats"))["destinations"][dest_name]
            if d["dropped"] and d["queued"] == 0:
                print("https_workload: the proxy dropped %d metrics (queue full); raise --queue-bytes" % d["dropped"])
                break
            time.sleep(0.2)
        if sink.poll() is None:
            sink.send_signal(signal.SIGTERM)
        out, _ = sink.communicate()
        elapsed = time.monotonic() - started
        result_line = [line for line in out.splitlines() if "count=" in line][-1]
        fields = dict(item.split("=", 1) for item in result_line.split() if "=" in item)
        io_after = proc_io(output_pid)
        stats = json.loads(admin(proxy_api, "stats"))
        dest = stats["destinations"][dest_name]
        delivered = int(fields["count"])
        wire = io_after["wchar"] - io_before["wchar"]
        raw = dest["sent_bytes"]
        results = {
            "metrics_sent": args.count,
            "metrics_delivered": delivered,
            "metrics_per_s": float(fields["rate"]),
            "wall_seconds": round(elapsed, 3),
            "wire_bytes_per_metric": round(wire / max(dest["sent"], 1), 2),
            "raw_bytes_per_metric": round(raw / max(dest["sent"], 1), 2),
            "compression_ratio": round(raw / max(wire, 1), 2),
            "proxy_sent": dest["sent"],
            "batch_bytes": args.batch_bytes,
        }
        print(sent)
        print(result_line)
        print("https_workload: delivered %d/%d metrics, %.0f metrics/s (first to last arrival); %.2f bytes/metric on the "
              "wire (TLS+HTTP+gzip) vs %.2f uncompressed (%.1fx)" % (delivered, args.count, results["metrics_per_s"],
                                                                     results["wire_bytes_per_metric"],
                                                                     results["raw_bytes_per_metric"],
                                                                     results["compression_ratio"]))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        return 0 if delivered >= args.count else 1
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if args.keep:
            print("https_workload: kept " + tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
