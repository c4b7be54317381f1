#!/usr/bin/env python3
"""polymur vs carbon-c-relay benchmark (docs/PERFORMANCE.md). Standard library only.

Normally started through bench/run.sh, which installs carbon-c-relay, builds polymur and the bench
tools (polymur-loadgen, polymur-sink) and raises the open-file limit. For every workload this runs
polymur, then carbon-c-relay, on the same sinks and the same load, everything on 127.0.0.1, and
prints per relay:

  accepted/s    metrics/s the relay took from the senders (sent / sender wall time)
  delivered/s   input metrics/s that reached every destination they route to
                (metrics delivered per copy / (last arrival at a sink - first send))
  CPU s/M       utime+stime of every process of the relay (polymur: the supervisor and all its
                descendants) per million input metrics, /proc/PID/stat sampled before and after
  peak PSS      summed over the relay's processes from /proc/PID/smaps_rollup, sampled every 100 ms
  p50/p99/max   end-to-end latency (send time in the value field, CLOCK_MONOTONIC) at a fixed rate

With --relays forwarder,polymur the reference is polymur-forwarder (bench/forwarder.cpp): a relay that does
no work at all, splicing each connection's bytes through a kernel pipe to the destinations (mirrored for
broadcast, connection by connection for hash routing). Its rate is the machine's limit for this load, and
polymur's rate is printed as a share of it. forwarder-copy is the same relay moving the bytes through user space
(read(2) into a 64 KiB buffer, write(2) to each destination, still no parsing and no queue): the least any relay
that looks at its bytes pays. With a forwarder in the run, the targets' lines also give the CPU budget the
target leaves a relay: at the target's rate, two fully busy CPUs minus what the load generator and the sinks
spent per million metrics beside the forwarder.

--smoke runs tiny counts and exits non-zero unless every metric sent was delivered (CI). No timing
is asserted anywhere; the targets are printed as met / not met.
"""
import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

TARGETS = {"throughput_ratio": 3.0, "cpu_ratio": 1 / 3, "idle_pss_mib": 64.0, "p99_ms": 10.0,
           # polymur's delivered rate as a share of the do-nothing forwarder's (docs/PERFORMANCE.md)
           "forwarder_share": {"broadcast": 0.90, "hash": 0.80}}


def log(*args):
    print(*args, flush=True)


# ---------------------------------------------------------------------------------------------
# /proc helpers


def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def descendants(root):
    """root and every process below it, from the ppid fields in /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_ticks(pids):
    """pid -> utime+stime in clock ticks (processes that are gone are left out)."""
    out = {}
    for pid in pids:
        try:
            fields = _stat_fields(pid)
            out[pid] = int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat
        except (OSError, ValueError, IndexError):
            pass
    return out


def pss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except (OSError, ValueError):
            pass
    return total


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return "?"


def socket_inodes(pids):
    """The inodes of the sockets open in `pids` (from their /proc/<pid>/fd links)."""
    inodes = set()
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def accepted_state(pids, port):
    """(established sockets with local port `port` that `pids` hold, connections waiting in their accept
    queues on `port`): only the relay's own sockets, so that a socket of other work on the machine that happens to
    use the same local port (a client's ephemeral port, say) is not counted."""
    inodes = socket_inodes(pids)
    established = backlog = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[9] not in inodes or int(parts[1].rsplit(":", 1)[1], 16) != port:
                        continue
                    if parts[3] == "01":
                        established += 1
                    elif parts[3] == "0A":
                        backlog += int(parts[4].split(":")[1], 16)
        except OSError:
            pass
    return established, backlog


def unread_bytes(port):
    """Bytes sent to `port` that its owner has not read yet: the send queues of the client sockets
    (remote port `port`) plus the receive queues of the accepted sockets (local port `port`)."""
    total = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A":
                        continue
                    tx, rx = parts[4].split(":")
                    if int(parts[1].rsplit(":", 1)[1], 16) == port:
                        total += int(rx, 16)
                    elif int(parts[2].rsplit(":", 1)[1], 16) == port:
                        total += int(tx, 16)
        except OSError:
            pass
    return total


def is_listening(port):
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


def cpu_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle, sum(v[:8])


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def wait_for_delivery(sinks, expected, run_timeout, stall_timeout):
    """Waits until the sinks counted `expected` lines, or no progress for `stall_timeout` seconds."""
    last_total, last_change = -1, time.monotonic()
    deadline = time.monotonic() + run_timeout
    while time.monotonic() < deadline:
        total = sum(s.count() for s in sinks)
        if total >= expected:
            return
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > stall_timeout:
            return
        time.sleep(0.05)


def keyvalues(text):
    out = {}
    for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', text):
        v = v.strip('"')
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


class PssSampler(threading.Thread):
    """Peak of the summed PSS of a relay's processes, sampled every `interval` seconds."""

    def __init__(self, pids_fn, interval=0.1):
        super().__init__(daemon=True)
        self.pids_fn, self.interval = pids_fn, interval
        self.peak_kib = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def sample(self):
        value = pss_kib(self.pids_fn())
        self.peak_kib = max(self.peak_kib, value)
        self.samples += 1
        return value

    def run(self):
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self):
        self._stop_event.set()
        self.join(5)
        self.sample()
        return self.peak_kib


# ---------------------------------------------------------------------------------------------
# processes


class Sink:
    def __init__(self, tool, workdir, name, latency=False, latency_skip=0, max_seconds=600):
        self.status = os.path.join(workdir, name + ".status")
        self.stats = os.path.join(workdir, name + ".stats")
        args = [tool, "--port", "0", "--status-file", self.status, "--stats-file", self.stats,
                "--idle-timeout", str(max_seconds), "--max-seconds", str(max_seconds)]
        if latency:
            args += ["--latency", "--latency-skip", str(latency_skip)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        ready, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode() if ready else ""
        m = re.search(r"port=(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError("polymur-sink did not report its port: %r" % line)
        self.port = int(m.group(1))

    def status_values(self):
        try:
            with open(self.status) as f:
                return keyvalues(f.read())
        except OSError:
            return {}

    def count(self):
        return self.status_values().get("count", 0)

    def finish(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out = self.proc.communicate(timeout=10)[0].decode()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out = self.proc.communicate()[0].decode()
        values, hist = {}, {}
        try:
            with open(self.stats) as f:
                for line in f:
                    if line.startswith("hist="):
                        for pair in line[5:].strip().split(","):
                            if pair:
                                k, v = pair.split(":")
                                hist[int(k)] = hist.get(int(k), 0) + int(v)
                    else:
                        values.update(keyvalues(line))
        except OSError:
            values = keyvalues(out)
        values["hist"] = hist
        return values


class Relay:
    name = "?"

    def __init__(self, workdir, log_name):
        self.workdir = workdir
        self.log_path = os.path.join(workdir, log_name + ".log")
        self.proc = None
        self.port = free_port()

    def _spawn(self, args):
        self.args = args
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    def wait_ready(self, timeout=15):
        ok = wait_until(lambda: self.proc.poll() is not None or is_listening(self.port), timeout)
        if self.proc.poll() is not None or not ok:
            raise RuntimeError("%s did not start listening (exit %s); log:\n%s" % (self.name, self.proc.poll(), self.log_tail()))

    def pids(self):
        if not self.proc or self.proc.poll() is not None:
            return []
        return descendants(self.proc.pid)

    def extra_stats(self):
        return {}

    def log_tail(self, n=3000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()


class Polymur(Relay):
    name = "polymur"

    def __init__(self, binary, workdir, tag, sink_ports, distribution, extra=()):
        super().__init__(workdir, "polymur-" + tag)
        self.api_port = free_port()
        state = os.path.join(workdir, "state-" + tag)
        if distribution == "hash":
            dests = ["127.0.0.1:%d:%s" % (p, chr(ord("a") + i)) for i, p in enumerate(sink_ports)]
            dist = ["--distribution=hash-route", "--hash-type=carbon_ch"]
        else:
            dests = ["127.0.0.1:%d" % p for p in sink_ports]
            dist = ["--distribution=broadcast"]
        self._spawn([binary, "--listen-addr=127.0.0.1:%d" % self.port, "--api-addr=127.0.0.1:%d" % self.api_port,
                     "--state-dir=" + state, "--destinations=" + ",".join(dests)] + dist + list(extra))

    def admin(self, command):
        with socket.create_connection(("127.0.0.1", self.api_port), timeout=5) as s:
            s.sendall(command.encode() + b"\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return data.decode()
                data += chunk

    def wait_ready(self, timeout=15):
        super().wait_ready(timeout)

        def connected():
            try:
                stats = json.loads(self.admin("stats"))
                return all(d.get("state") == "connected" for d in stats["destinations"].values())
            except (OSError, ValueError, KeyError):
                return False

        wait_until(connected, 10, 0.1)

    def extra_stats(self):
        try:
            stats = json.loads(self.admin("stats"))
        except (OSError, ValueError):
            return {}
        dests = stats.get("destinations", {})
        return {"received": stats.get("received"), "invalid": stats.get("invalid"),
                "dropped": sum(d.get("dropped", 0) for d in dests.values()),
                "queued": sum(d.get("queued", 0) for d in dests.values())}


class CarbonCRelay(Relay):
    name = "carbon-c-relay"

    def __init__(self, binary, workdir, tag, sink_ports, distribution, settings):
        super().__init__(workdir, "carbon-c-relay-" + tag)
        conf = os.path.join(workdir, "carbon-c-relay-%s.conf" % tag)
        if distribution == "hash":
            members = " ".join("127.0.0.1:%d=%s" % (p, chr(ord("a") + i)) for i, p in enumerate(sink_ports))
            cluster = "cluster c carbon_ch %s;\nmatch * send to c;\n" % members
        else:
            members = " ".join("127.0.0.1:%d" % p for p in sink_ports)
            cluster = "cluster b forward %s;\nmatch * send to b;\n" % members
        with open(conf, "w") as f:
            f.write("listen type linemode 127.0.0.1:%d proto tcp;\n%s" % (self.port, cluster))
        self.config_text = open(conf).read()
        self._spawn([binary, "-f", conf] + settings)


class Forwarder(Relay):
    """polymur-forwarder: splice(2) through a pipe (or, with copy, read(2) and write(2) through a buffer), no
    parsing, no queue; the machine's reference."""
    name = "forwarder"

    def __init__(self, binary, workdir, tag, sink_ports, distribution, copy=False):
        super().__init__(workdir, ("forwarder-copy-" if copy else "forwarder-") + tag)
        if copy:
            self.name = "forwarder-copy"
        mode = "spread" if distribution == "hash" else "mirror"
        self._spawn([binary] + (["--copy"] if copy else []) + [str(self.port), mode] + [str(p) for p in sink_ports])


def carbon_settings(args):
    return ["-w", str(args.ccr_workers), "-b", str(args.ccr_batch), "-q", str(args.ccr_queue), "-B", "4096", "-s"]


def hash_route_supported(polymur_bin):
    try:
        out = subprocess.run([polymur_bin, "--help"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"hash-route" in out.stdout + out.stderr


# ---------------------------------------------------------------------------------------------
# one run of one workload on one relay


class Bench:
    def __init__(self, args):
        self.args = args
        self.loadgen = os.path.join(args.bench_dir, "polymur-loadgen")
        self.sink = os.path.join(args.bench_dir, "polymur-sink")
        self.workdir = tempfile.mkdtemp(prefix="polymur-bench-")
        self.serial = 0
        self.failures = []

    def alternate(self, relays, name, run_one, describe, all_results, verbose=True):
        """--repeat rounds of run_one(relay) over `relays` in turn; a run that fails is recorded in
        the failures and left out. Returns relay -> the median of its runs (median_result)."""
        runs = {r: [] for r in relays}
        for rep in range(self.args.repeat):
            for relay in relays:
                try:
                    r = run_one(relay)
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    self.failures.append("%s on %s: %s" % (relay, name, e))
                    log("   %s: run failed: %s" % (relay, e))
                    continue
                if r is None:
                    continue
                r["repeat"] = rep
                runs[relay].append(r)
                all_results.append(r)
                if verbose:
                    log("   run %d %-15s %s" % (rep + 1, relay, describe(r)))
        return {relay: median_result(rs) for relay, rs in runs.items() if rs}

    def close(self, report):
        """Writes --json (`report` plus the failures) and removes the work directory unless --keep."""
        if self.args.json:
            with open(self.args.json, "w") as f:
                json.dump(dict(report, args=vars(self.args), failures=self.failures), f, indent=1)
        if self.args.keep:
            log("work directory kept: %s" % self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def make_relay(self, relay, sink_ports, distribution):
        self.serial += 1
        tag = str(self.serial)
        if relay == "polymur":
            return Polymur(self.args.polymur_bin, self.workdir, tag, sink_ports, distribution, self.args.polymur_arg)
        if relay in ("forwarder", "forwarder-copy"):
            return Forwarder(os.path.join(self.args.bench_dir, "polymur-forwarder"), self.workdir, tag, sink_ports,
                             distribution, copy=relay == "forwarder-copy")
        return CarbonCRelay(self.args.carbon_bin, self.workdir, tag, sink_ports, distribution, carbon_settings(self.args))

    def warm_up(self, relay, sinks, wl, copies):
        """Sends --warmup metrics (per destination when hash-routed) through the relay and waits until the sinks have them all: the queue files'
        pages are then touched once, as in a relay that has been running a while (the first pass over a
        new queue file pays a page fault per page). Returns the copies the sinks counted, which the
        measured run leaves out."""
        a = self.args
        # Hash routing deals the lines over the destinations: each queue gets --warmup lines only if N times
        # as many are sent.
        count = a.warmup * (wl["destinations"] if wl["distribution"] == "hash" else 1)
        cmd = [self.loadgen, "--port", str(relay.port), "--connections", str(wl["connections"]), "--series",
               str(a.series), "--max-seconds", str(a.run_timeout), "--count", str(count)]
        lg = subprocess.run(cmd, capture_output=True, timeout=a.run_timeout + 60)
        if lg.returncode != 0:
            raise RuntimeError("warm-up loadgen failed (%d): %s" % (lg.returncode, lg.stderr.decode()))
        want = count * copies
        if not wait_until(lambda: sum(s.count() for s in sinks) >= want, a.run_timeout):
            raise RuntimeError("warm-up: %d of %d copies delivered" % (sum(s.count() for s in sinks), want))
        time.sleep(0.5)
        return want

    def run_flow(self, relay_name, wl):
        """A throughput or latency run: sinks, relay, load, wait for delivery, measure."""
        a = self.args
        latency = wl["kind"] == "latency"
        skip = int(wl["rate"] * a.latency_warmup) if latency else 0
        sinks = [Sink(self.sink, self.workdir, "sink%d-%d" % (self.serial + 1, i), latency, skip, a.run_timeout + 60)
                 for i in range(wl["destinations"])]
        relay = self.make_relay(relay_name, [s.port for s in sinks], wl["distribution"])
        result = {"relay": relay_name, "workload": wl["name"]}
        perf = None
        try:
            relay.wait_ready()
            time.sleep(0.3)
            sampler = PssSampler(relay.pids)
            sampler.start()
            copies = wl["destinations"] if wl["distribution"] == "broadcast" else 1
            warm = self.warm_up(relay, sinks, wl, copies) if a.warmup and not latency else 0
            if a.profile and relay_name == "polymur" and wl["name"] == a.profile_workload:
                perf = self.start_perf(relay)
            load0, busy0, runner0 = loadavg(), cpu_busy(), sum(os.times()[:2])
            pids0 = relay.pids()
            cpu0 = cpu_ticks(pids0)
            sinks0 = sum(cpu_ticks([s.proc.pid]).get(s.proc.pid, 0) for s in sinks)
            cmd = [self.loadgen, "--port", str(relay.port), "--connections", str(wl["connections"]),
                   "--series", str(a.series), "--max-seconds", str(a.run_timeout)]
            if latency:
                cmd += ["--rate", str(wl["rate"]), "--duration", str(wl["seconds"]), "--latency"]
            else:
                cmd += ["--count", str(wl["count"])]
            lg = subprocess.run(cmd, capture_output=True, timeout=a.run_timeout + 60)
            sent = keyvalues(lg.stdout.decode())
            if lg.returncode != 0 or "sent" not in sent:
                raise RuntimeError("loadgen failed (%d): %s %s" % (lg.returncode, lg.stdout.decode(), lg.stderr.decode()))
            # Accepted: the relay has read everything (nothing left in the senders' send queues or in
            # its receive queues), not merely handed to the kernel by the senders.
            # Polled every 10 ms: the drain happened between the last poll that saw unread bytes and
            # the first that did not; the midpoint is taken.
            drained_ns = sent["end_ns"]
            deadline = time.monotonic() + a.run_timeout
            last_busy = None
            while time.monotonic() < deadline:
                before = time.monotonic_ns()
                if not unread_bytes(relay.port):
                    if last_busy is not None:
                        drained_ns = max(sent["end_ns"], (last_busy + before) // 2)
                    break
                last_busy = time.monotonic_ns()
                time.sleep(0.01)
            expected = sent["sent"] * copies + warm
            wait_for_delivery(sinks, expected, a.run_timeout, a.stall_timeout)
            pids1 = relay.pids()
            cpu1 = cpu_ticks(pids1)
            busy1, load1, runner1 = cpu_busy(), loadavg(), sum(os.times()[:2])
            sinks1 = sum(cpu_ticks([s.proc.pid]).get(s.proc.pid, 0) for s in sinks)
            if perf:
                self.stop_perf(perf, relay)
            peak = sampler.stop()
            result.update(relay.extra_stats())
            processes = sorted(set(pids0) | set(pids1))
            result["processes"] = len(pids1)
            result["process_titles"] = [cmdline(p) for p in pids1]
            titles = {p: cmdline(p) for p in pids1}
        finally:
            relay.stop()
            sink_stats = [s.finish() for s in sinks]
        cpu_s = sum(cpu1.get(p, 0) - cpu0.get(p, 0) for p in processes) / CLK_TCK
        result["cpu_by_process"] = {"%s (%d)" % (titles.get(p, "?"), p): (cpu1.get(p, 0) - cpu0.get(p, 0)) / CLK_TCK
                                    for p in processes}
        delivered = sum(s.get("count", 0) for s in sink_stats) - warm
        last_arrival = max((s.get("last_ns", 0) for s in sink_stats), default=0)
        span = (last_arrival - sent["start_ns"]) / 1e9 if last_arrival > sent["start_ns"] else 0
        per_copy = delivered / copies
        busy = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
        busy_s = (busy1[0] - busy0[0]) / CLK_TCK
        sinks_s = (sinks1 - sinks0) / CLK_TCK
        runner_s = runner1 - runner0
        accept_seconds = (drained_ns - sent["start_ns"]) / 1e9
        result.update({
            "sent": sent["sent"], "send_seconds": sent["seconds"], "accept_seconds": accept_seconds,
            "accepted_per_s": sent["sent"] / accept_seconds if accept_seconds > 0 else 0,
            "machine_cpu_s": busy_s, "loadgen_cpu_s": sent.get("cpu_s", 0), "sinks_cpu_s": sinks_s, "runner_cpu_s": runner_s,
            "other_cpu_s": busy_s - cpu_s - sent.get("cpu_s", 0) - sinks_s - runner_s,
            "expected": expected - warm, "delivered": delivered, "warmup_copies": warm, "per_sink": [s.get("count", 0) for s in sink_stats],
            "lost": expected - warm - delivered, "delivered_per_s": per_copy / span if span else 0,
            "deliver_seconds": span, "cpu_s": cpu_s, "cpu_s_per_m": cpu_s / (sent["sent"] / 1e6) if sent["sent"] else 0,
            "peak_pss_mib": peak / 1024.0, "machine_busy": busy, "loadavg": [load0, load1],
        })
        if latency:
            hist = {}
            for s in sink_stats:
                for k, v in s["hist"].items():
                    hist[k] = hist.get(k, 0) + v
            result.update(percentiles(hist))
            result["latency_max_us"] = max((s.get("max_us", 0) for s in sink_stats), default=0)
            result["target_rate"] = wl["rate"]
        if delivered != expected - warm:
            self.failures.append("%s on %s: sent %d metrics x %d copies = %d, delivered %d (per sink %s, warm-up %d)" % (
                relay_name, wl["name"], sent["sent"], copies, expected - warm, delivered, result["per_sink"], warm))
        if wl.get("count") and sent["sent"] != wl["count"]:
            self.failures.append("%s on %s: loadgen sent %d of %d" % (relay_name, wl["name"], sent["sent"], wl["count"]))
        return result

    def run_idle(self, relay_name, wl):
        a = self.args
        sinks = [Sink(self.sink, self.workdir, "sink%d-%d" % (self.serial + 1, i), max_seconds=a.run_timeout + 60)
                 for i in range(wl["destinations"])]
        relay = self.make_relay(relay_name, [s.port for s in sinks], "broadcast")
        result = {"relay": relay_name, "workload": wl["name"], "connections": wl["idle"]}
        lg = None
        try:
            relay.wait_ready()
            time.sleep(1.0)
            baseline = pss_kib(relay.pids())
            sampler = PssSampler(relay.pids)
            sampler.start()
            t0 = time.monotonic()
            lg = subprocess.Popen([self.loadgen, "--port", str(relay.port), "--idle", str(wl["idle"]), "--hold",
                                   str(a.run_timeout), "--max-seconds", str(a.run_timeout)],
                                  stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
            ready, _, _ = select.select([lg.stdout], [], [], a.run_timeout)
            opened = keyvalues(lg.stdout.readline().decode()) if ready else {}
            # Only the relay's own sockets count (accepted_state). carbon-c-relay may hold more than were
            # opened (a connection of its own to its listen port), so at least N there, exactly N for polymur.
            enough = (lambda n: n >= wl["idle"]) if relay_name == "carbon-c-relay" else (lambda n: n == wl["idle"])
            wait_until(lambda: (lambda st: enough(st[0]) and st[1] == 0)(accepted_state(relay.pids(), relay.port)),
                       60, 0.2)
            accepted, backlog = accepted_state(relay.pids(), relay.port)
            open_s = time.monotonic() - t0
            time.sleep(2.0)  # let the relay settle; the sampler keeps sampling
            peak = sampler.stop()
            result.update(relay.extra_stats())
            result.update({"opened": opened.get("opened", 0), "accepted": accepted, "accept_backlog": backlog,
                           "open_seconds": open_s, "baseline_pss_mib": baseline / 1024.0, "peak_pss_mib": peak / 1024.0,
                           "kib_per_connection": (peak - baseline) / max(1, wl["idle"]),
                           "processes": len(relay.pids()), "loadavg": [loadavg()]})
        finally:
            if lg and lg.poll() is None:
                lg.send_signal(signal.SIGTERM)
                try:
                    lg.wait(30)
                except subprocess.TimeoutExpired:
                    lg.kill()
                    lg.wait()
            relay.stop()
            for s in sinks:
                s.finish()
        accepted = result.get("accepted", 0)
        if result.get("opened") != wl["idle"] or not (accepted >= wl["idle"] if relay_name == "carbon-c-relay"
                                                      else accepted == wl["idle"]):
            self.failures.append("%s on %s: opened %s and accepted %s of %d idle connections" % (
                relay_name, wl["name"], result.get("opened"), result.get("accepted"), wl["idle"]))
        return result

    # perf record -g of every polymur process during one run
    def start_perf(self, relay):
        os.makedirs(self.args.profile, exist_ok=True)
        pids = relay.pids()
        self.perf_roles = {p: cmdline(p) for p in pids}
        data = os.path.join(self.args.profile, "perf.data")
        proc = subprocess.Popen(["perf", "record", "-g", "-F", "999", "-o", data, "-p", ",".join(map(str, pids))],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.args.profile, "perf-record.log"), "wb"))
        time.sleep(1.0)
        return proc

    def stop_perf(self, proc, relay):
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        data = os.path.join(self.args.profile, "perf.data")
        report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none", "--sort", "pid,sym",
                                 "--percent-limit", "0"], capture_output=True, text=True, timeout=600).stdout
        by_pid = {}
        for line in report.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(\d+):.*?\s(\[.\])\s+(.*\S)\s*$", line)
            if m:
                by_pid.setdefault(int(m.group(2)), []).append((float(m.group(1)), m.group(3) + " " + m.group(4)))
        path = os.path.join(self.args.profile, "profile.txt")
        with open(path, "w") as f:
            f.write("perf record -g -F 999 of every polymur process during %s; share of each process's own samples\n" %
                    self.args.profile_workload)
            for pid, role in sorted(self.perf_roles.items(), key=lambda kv: kv[1]):
                rows = by_pid.get(pid, [])
                total = sum(pct for pct, _ in rows)
                f.write("\n%s (pid %d): %.1f%% of all samples\n" % (role, pid, total))
                for pct, sym in sorted(rows, reverse=True)[:20]:
                    f.write("  %6.2f%%  %s\n" % (100 * pct / total if total else 0, sym))
        log("   profile: %s (perf data %s)" % (path, data))


def percentiles(hist):
    total = sum(hist.values())
    out = {"samples": total}
    for name, p in (("p50_us", 0.50), ("p99_us", 0.99), ("p999_us", 0.999)):
        rank = min(total - 1, int(p * total)) if total else 0
        seen, value = 0, 0
        for k in sorted(hist):
            seen += hist[k]
            if seen > rank:
                value = k
                break
        out[name] = value / 1000.0
    return out


# ---------------------------------------------------------------------------------------------
# reporting


def fmt_rate(v):
    return "%.0f" % v if v < 1e4 else "%.2fM" % (v / 1e6) if v >= 1e6 else "%.0fk" % (v / 1e3)


def ratio(a, b):
    return a / b if b else float("nan")


def median_result(results):
    """Field-wise median over repeats (numbers only)."""
    if len(results) == 1:
        return results[0]
    out = dict(results[0])
    for k, v in results[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = statistics.median(r[k] for r in results if isinstance(r.get(k), (int, float)))
    out["repeats"] = [dict(r) for r in results]
    return out


def print_workload(wl, by_relay):
    p, c, f = by_relay.get("polymur"), by_relay.get("carbon-c-relay"), by_relay.get("forwarder")
    if wl["kind"] == "idle":
        log("  %-15s %10s %10s %12s %12s %14s" % ("relay", "opened", "accepted", "base PSS MiB", "peak PSS MiB", "KiB/connection"))
        for name, r in by_relay.items():
            log("  %-15s %10d %10d %12.1f %12.1f %14.2f" % (name, r["opened"], r["accepted"], r["baseline_pss_mib"],
                                                          r["peak_pss_mib"], r["kib_per_connection"]))
        if p and c:
            log("  %-15s %10s %10s %12s %11.2fx" % ("polymur/ccr", "", "", "", ratio(p["peak_pss_mib"], c["peak_pss_mib"])))
        return
    head = "  %-15s %11s %12s %9s %9s %8s %6s %9s" % ("relay", "accepted/s", "delivered/s", "lost", "CPU s/M", "PSS MiB", "busy",
                                                     "others s")
    if wl["kind"] == "latency":
        head += " %9s %9s %9s" % ("p50 ms", "p99 ms", "max ms")
    log(head)
    for name, r in by_relay.items():
        line = "  %-15s %11s %12s %9d %9.2f %8.1f %5.0f%% %9.2f" % (
            name, fmt_rate(r["accepted_per_s"]), fmt_rate(r["delivered_per_s"]), r["lost"], r["cpu_s_per_m"],
            r["peak_pss_mib"], 100 * r["machine_busy"], max(0.0, r["other_cpu_s"]))
        if wl["kind"] == "latency":
            line += " %9.3f %9.3f %9.3f" % (r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["latency_max_us"] / 1e3)
        log(line)
    for name, r in by_relay.items():
        if len(r.get("cpu_by_process", {})) > 1:
            log("  %s CPU s by process: %s" % (name, ", ".join(
                "%s %.2f" % (k.split(" (")[0].replace("polymur: ", ""), v) for k, v in sorted(r["cpu_by_process"].items()))))
    if p and c:
        line = "  %-15s %10.2fx %11.2fx %9s %8.2fx %7.2fx %6s %9s" % (
            "polymur/ccr", ratio(p["accepted_per_s"], c["accepted_per_s"]), ratio(p["delivered_per_s"], c["delivered_per_s"]),
            "", ratio(p["cpu_s_per_m"], c["cpu_s_per_m"]), ratio(p["peak_pss_mib"], c["peak_pss_mib"]), "", "")
        if wl["kind"] == "latency":
            line += " %9s %8.2fx" % ("", ratio(p["p99_us"], c["p99_us"]))
        log(line)
    for ref, label in (("forwarder", "polymur/fwd"), ("forwarder-copy", "polymur/fwd-copy")):
        if p and by_relay.get(ref):
            r = by_relay[ref]
            log("  %-15s %10.0f%% %11.0f%%" % (label, 100 * ratio(p["accepted_per_s"], r["accepted_per_s"]),
                                              100 * ratio(p["delivered_per_s"], r["delivered_per_s"])))
    if f and by_relay.get("forwarder-copy"):
        r = by_relay["forwarder-copy"]
        log("  %-15s %10.0f%% %11.0f%%" % ("fwd-copy/fwd", 100 * ratio(r["accepted_per_s"], f["accepted_per_s"]),
                                          100 * ratio(r["delivered_per_s"], f["delivered_per_s"])))


def info_nproc():
    return os.cpu_count() or 1


def others_per_m(r):
    """CPU seconds the load generator and the sinks spent per million metrics sent in run r."""
    return (r["loadgen_cpu_s"] + r["sinks_cpu_s"]) / (r["sent"] / 1e6) if r.get("sent") else float("nan")


def cores_used(r):
    """The CPU the relay, the load generator and the sinks spent in run r over its span (first send to last
    arrival): how many CPUs the run kept busy."""
    return (r["cpu_s"] + r["loadgen_cpu_s"] + r["sinks_cpu_s"]) / r["deliver_seconds"] if r.get("deliver_seconds") else 0


def relay_cpu_budget(f, share, cpus):
    """The CPU seconds per million metrics a relay may spend and still deliver `share` of the forwarder's rate
    in run f, if every CPU is busy and the load generator and sinks cost what they did beside the forwarder
    (an upper bound: a relay also waits)."""
    if not f.get("sent") or not f.get("delivered_per_s"):
        return None
    rate = share * f["delivered_per_s"]  # input metrics per second delivered to every destination
    return cpus / rate * 1e6 - others_per_m(f)


def print_targets(workloads, table):
    log("\n== targets (polymur) ==")
    for wl in workloads:
        res = table.get(wl["name"], {})
        p, c, f = res.get("polymur"), res.get("carbon-c-relay"), res.get("forwarder")
        if not p:
            continue
        if wl["kind"] == "throughput" and f:
            want = TARGETS["forwarder_share"][wl["distribution"]]
            share = ratio(p["delivered_per_s"], f["delivered_per_s"])
            log("  %-16s delivered >= %.0f%% of the forwarder: %5.1f%%  %s" % (
                wl["name"], 100 * want, 100 * share, "MET" if share >= want else "not met"))
            fc = res.get("forwarder-copy")
            if fc:
                log("  %-16s (forwarder-copy, which reads and writes its bytes and parses nothing: %5.1f%% of the "
                    "forwarder; polymur %5.1f%% of it)" % ("", 100 * ratio(fc["delivered_per_s"], f["delivered_per_s"]),
                                                       100 * ratio(p["delivered_per_s"], fc["delivered_per_s"])))
            budget = relay_cpu_budget(f, want, info_nproc())
            if budget is not None:
                log("  %-16s CPU budget at that rate: %.3f s/M for the relay (%d CPUs busy, load generator and "
                    "sinks %.3f s/M beside the forwarder); polymur spent %.3f, the forwarder %.3f%s" % (
                        "", budget, info_nproc(), others_per_m(f), p["cpu_s_per_m"], f["cpu_s_per_m"],
                        "" if not fc else ", forwarder-copy %.3f" % fc["cpu_s_per_m"]))
                log("  %-16s (CPUs busy from the first send to the last arrival: forwarder %.2f, polymur %.2f of %d)" % (
                    "", cores_used(f), cores_used(p), info_nproc()))
        if wl["kind"] == "throughput" and c:
            r = ratio(p["delivered_per_s"], c["delivered_per_s"])
            acc = ratio(p["accepted_per_s"], c["accepted_per_s"])
            log("  %-16s throughput >= %.0fx carbon-c-relay: %5.2fx  %-7s (delivered end to end; accepted: %.2fx)" % (
                wl["name"], TARGETS["throughput_ratio"], r, "MET" if r >= TARGETS["throughput_ratio"] else "not met", acc))
            r = ratio(p["cpu_s_per_m"], c["cpu_s_per_m"])
            log("  %-16s CPU/M <= 1/3 of carbon-c-relay:   %5.2fx  %s" % (wl["name"], r, "MET" if r <= TARGETS["cpu_ratio"] else "not met"))
        elif wl["kind"] == "latency":
            v = p["p99_us"] / 1e3
            log("  %-16s p99 <= %.0f ms at %s/s:         %6.3f ms %s" % (wl["name"], TARGETS["p99_ms"], fmt_rate(wl["rate"]), v,
                                                                  "MET" if v <= TARGETS["p99_ms"] else "not met"))
        elif wl["kind"] == "idle":
            v = p["peak_pss_mib"]
            log("  %-16s %d idle connections <= %.0f MiB PSS: %6.1f MiB %s" % (
                wl["name"], wl["idle"], TARGETS["idle_pss_mib"], v, "MET" if v <= TARGETS["idle_pss_mib"] else "not met"))


def machine_info():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": os.uname().release, "loadavg": loadavg()}


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--polymur-bin", default=os.environ.get("POLYMUR_BIN", os.path.join(ROOT, "build", "polymur")))
    ap.add_argument("--bench-dir", default=os.environ.get("POLYMUR_BENCH_DIR"),
                    help="directory holding polymur-loadgen and polymur-sink (default: next to --polymur-bin)")
    ap.add_argument("--carbon-bin", default=shutil.which("carbon-c-relay") or "/usr/bin/carbon-c-relay")
    ap.add_argument("--polymur-arg", action="append", default=[], metavar="ARG",
                    help="one more polymur option (repeatable), e.g. --polymur-arg=--queue-bytes=16777216")
    ap.add_argument("--relays", default="polymur,carbon-c-relay", help="comma-separated subset, in running order")
    ap.add_argument("--only", default="", help="comma-separated workload names (default: all)")
    ap.add_argument("--smoke", action="store_true", help="tiny counts; exit 1 unless every metric was delivered")
    ap.add_argument("--check", action="store_true", help="exit 1 on any undelivered metric (implied by --smoke)")
    ap.add_argument("--count", type=int, default=5_000_000, help="metrics per throughput run")
    ap.add_argument("--warmup", type=int, default=0, metavar="N",
                    help="metrics sent before each throughput run and left out of its figures (touches the queue "
                         "files' pages once, as in a relay that has been running; about queue-bytes / 45 per listener); "
                         "hash-routed workloads send N per destination, so that each queue gets N")
    ap.add_argument("--many-connections", type=int, default=200)
    ap.add_argument("--rate", type=int, default=100_000, help="latency workload: metrics/s")
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--latency-warmup", type=float, default=1.0, help="seconds of samples skipped per sink")
    ap.add_argument("--idle", type=int, default=10_000, help="idle connections")
    ap.add_argument("--series", type=int, default=100_000, help="distinct metric names")
    ap.add_argument("--repeat", type=int, default=1, help="alternating runs per relay and workload (median reported)")
    ap.add_argument("--run-timeout", type=float, default=180.0, help="bound of any one run, seconds")
    ap.add_argument("--stall-timeout", type=float, default=15.0, help="give up waiting for delivery after this long without progress")
    ap.add_argument("--ccr-workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--ccr-batch", type=int, default=10000)
    ap.add_argument("--ccr-queue", type=int, default=5_000_000)
    ap.add_argument("--profile", metavar="DIR", help="perf record -g polymur's processes during --profile-workload")
    ap.add_argument("--profile-workload", default="broadcast-4")
    ap.add_argument("--json", metavar="FILE", help="write every result here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs, sink stats)")
    args = ap.parse_args()
    if args.smoke:
        args.check = True
        args.count, args.rate, args.latency_seconds, args.latency_warmup = 20_000, 10_000, 2.0, 0.2
        args.idle, args.series = 100, 1000
        args.run_timeout, args.stall_timeout = 60.0, 10.0
    args.bench_dir = args.bench_dir or os.path.dirname(os.path.abspath(args.polymur_bin))
    relays = [r for r in args.relays.split(",") if r]
    for r in relays:
        if r not in ("polymur", "carbon-c-relay", "forwarder", "forwarder-copy"):
            ap.error("unknown relay " + r)
    needed = [os.path.join(args.bench_dir, "polymur-loadgen"), os.path.join(args.bench_dir, "polymur-sink")]
    if "polymur" in relays:
        needed.append(args.polymur_bin)
    if "carbon-c-relay" in relays:
        needed.append(args.carbon_bin)
    if "forwarder" in relays or "forwarder-copy" in relays:
        needed.append(os.path.join(args.bench_dir, "polymur-forwarder"))
    for path in needed:
        if not os.access(path, os.X_OK):
            sys.exit("compare.py: %s is missing (bench/run.sh builds and installs everything)" % path)

    workloads = [
        {"name": "broadcast1-4", "kind": "throughput", "distribution": "broadcast", "destinations": 1, "connections": 4,
         "count": args.count},
        {"name": "broadcast-4", "kind": "throughput", "distribution": "broadcast", "destinations": 2, "connections": 4,
         "count": args.count},
        {"name": "broadcast-%d" % args.many_connections, "kind": "throughput", "distribution": "broadcast", "destinations": 2,
         "connections": args.many_connections, "count": args.count},
        {"name": "hash-carbon_ch", "kind": "throughput", "distribution": "hash", "destinations": 2, "connections": 4,
         "count": args.count},
        {"name": "latency", "kind": "latency", "distribution": "broadcast", "destinations": 2, "connections": 4,
         "rate": args.rate, "seconds": args.latency_seconds},
        {"name": "idle-%d" % args.idle, "kind": "idle", "destinations": 2, "idle": args.idle},
    ]
    if args.only:
        wanted = set(args.only.split(","))
        workloads = [w for w in workloads if w["name"] in wanted or w["name"].split("-")[0] in wanted]
    if "polymur" in relays and not hash_route_supported(args.polymur_bin):
        log("note: %s --help does not mention hash-route; skipping the hash-carbon_ch workload" % args.polymur_bin)
        workloads = [w for w in workloads if w.get("distribution") != "hash"]

    info = machine_info()
    try:
        nofile = subprocess.run(["sh", "-c", "ulimit -n"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nofile = "?"
    log("== polymur vs carbon-c-relay%s ==" % (" (smoke)" if args.smoke else ""))
    log("machine: %d CPUs, %s, kernel %s, load average at start %s, open files limit %s" % (
        info["nproc"], info["cpu"], info["kernel"], info["loadavg"], nofile))
    if "polymur" in relays:
        log("polymur: %s (defaults: --workers=one per CPU, --queue-cap, --queue-bytes)" % args.polymur_bin)
    if "carbon-c-relay" in relays:
        ver = subprocess.run([args.carbon_bin, "-v"], capture_output=True, text=True).stdout.splitlines()
        log("carbon-c-relay: %s %s (%s)" % (args.carbon_bin, " ".join(carbon_settings(args)), ver[0] if ver else "?"))
    log("load: %d metrics per throughput run, %d distinct series; latency at %d/s for %.0f s; %d idle connections" % (
        args.count, args.series, args.rate, args.latency_seconds, args.idle))

    bench = Bench(args)
    table = {}
    all_results = []
    try:
        for wl in workloads:
            log("\n== %s ==" % wl["name"])
            if wl["kind"] == "idle":
                log("   %d idle connections, memory only" % wl["idle"])
            elif wl["kind"] == "latency":
                log("   %s to %d destinations, %d connections, %d metrics/s for %.0f s" % (
                    wl["distribution"], wl["destinations"], wl["connections"], wl["rate"], wl["seconds"]))
            else:
                log("   %s to %d destinations, %d connections, %d metrics" % (
                    "carbon_ch hash-route" if wl["distribution"] == "hash" else "broadcast", wl["destinations"],
                    wl["connections"], wl["count"]))
            def run_one(relay, wl=wl):
                if relay.startswith("forwarder") and wl["kind"] == "idle":
                    return None  # a thread per connection is no reference for idle memory
                return bench.run_idle(relay, wl) if wl["kind"] == "idle" else bench.run_flow(relay, wl)

            table[wl["name"]] = bench.alternate(relays, wl["name"], run_one, short, all_results, args.repeat > 1)
            print_workload(wl, table[wl["name"]])
            if wl.get("distribution") == "hash":
                splits = {relay: res["per_sink"] for relay, res in table[wl["name"]].items()}
                log("   per-destination split: %s" % ", ".join("%s %s" % kv for kv in splits.items()))
        print_targets(workloads, table)
        log("\nload average at end: %s" % loadavg())
    finally:
        bench.close({"machine": info, "workloads": workloads, "results": all_results})
    if bench.failures:
        log("\nundelivered / incomplete:")
        for f in bench.failures:
            log("  " + f)
        if args.check:
            log("FAILED")
            return 1
    elif args.check:
        log("\nevery metric sent was delivered: OK")
    return 0


def short(r):
    if "accepted_per_s" in r:
        return "accepted %s/s delivered %s/s CPU %.2f s/M PSS %.1f MiB lost %d" % (
            fmt_rate(r["accepted_per_s"]), fmt_rate(r["delivered_per_s"]), r["cpu_s_per_m"], r["peak_pss_mib"], r["lost"])
    return "peak PSS %.1f MiB accepted %s" % (r["peak_pss_mib"], r.get("accepted"))


if __name__ == "__main__":
    sys.exit(main())
