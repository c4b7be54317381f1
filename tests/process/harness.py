"""Process-level test harness: the real polymur binary, real sockets on 127.0.0.1, real signals.

Standard library only, so the tests run from a plain clone with Debian's python3.
"""
import contextlib
import json
import os
import re
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

POLYMUR = os.environ.get("POLYMUR_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "polymur"))

# The one switch that relaxes timing: every wait and every time or throughput bound a test asserts is
# multiplied by it. 1 normally; a sanitizer build sets TEST_TIME_FACTOR (tests/process/CMakeLists.txt,
# README Tests), because sanitized code is several times slower but must still be correct.
TIME_FACTOR = float(os.environ.get("TEST_TIME_FACTOR", "1"))
# In a sanitizer build, peak memory figures measure ASan's shadow memory and quarantine, not polymur:
# memory bounds are asserted in the normal build only (README Tests).
SANITIZED = bool(os.environ.get("TEST_SANITIZER_REPORTS"))

# Where a sanitized process writes its report (set per test by run_tests.py); passed on even when a test
# gives a process its own environment.
SANITIZER_VARIABLES = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")


def daemon_port():
    """A port for a process that cannot bind port 0 and report it (carbon-cache, carbon-c-relay, prometheus), or
    whose port must be known before it binds (a gateway a proxy is started against first): free now, and
    below the kernel's ephemeral range, so no port-0 bind or outgoing connection of a concurrently running
    test can take it before the process binds it. Confirm the process got it with listening_ports().
    Everything else binds port 0 and reports the port it got: Sink, refused_port(), Polymur.port, api_port
    and bound_port()."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral_low = int(f.read().split()[0])
    while True:
        port = random.randrange(max(1024, ephemeral_low - 12000), ephemeral_low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def listening_ports(pid):
    """The TCP ports on which process `pid` itself holds a listening socket (its fds against /proc/net/tcp*)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return set()
    for fd in fds:
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: TCP_LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def temp_dir(test, prefix):
    """A fresh directory under /tmp that is removed when `test` (a unittest.TestCase) ends."""
    path = tempfile.mkdtemp(prefix=prefix)
    test.addCleanup(shutil.rmtree, path, True)
    return path


def wait_until(predicate, timeout=20.0, interval=0.05, message="condition"):
    deadline = time.monotonic() + timeout * TIME_FACTOR
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s" % (timeout * TIME_FACTOR, message))


def cpu_seconds(pid):
    """User and system CPU time process `pid` has used, in seconds (/proc/PID/stat, clock ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def open_file_limit(pid, soft):
    """Process `pid`'s open-file soft limit set to `soft` (prlimit) for the with-block, then restored."""
    was_soft, hard = (int(v) for v in subprocess.run(
        ["prlimit", "--pid", str(pid), "--nofile", "--raw", "--noheadings", "--output=SOFT,HARD"],
        check=True, capture_output=True, text=True).stdout.split())
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:%d" % (soft, hard)], check=True)
    try:
        yield
    finally:
        subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:%d" % (was_soft, hard)], check=True)


def gone(pid):
    """Whether process `pid` has exited: no longer in /proc, or a zombie nobody has reaped yet."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def listening(port, host="127.0.0.1"):
    """Whether something accepts TCP connections on host:port now."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def terminate(proc, timeout=10, sig=signal.SIGTERM):
    """Stops a process this test started: `sig`, then SIGKILL after `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()



# The [cache] settings every test carbon-cache shares: everything under `root`, loopback only, no limits
# that would slow a test. Tests add their ports and any [cache:NAME] or [relay] section after it.
CARBON_CACHE_BASE = """[cache]
STORAGE_DIR = {root}/storage/
LOCAL_DATA_DIR = {root}/storage/whisper/
WHITELISTS_DIR = {root}/storage/lists/
CONF_DIR = {root}/conf/
LOG_DIR = {root}/log/
PID_DIR = {root}/run/
ENABLE_LOGROTATION = False
USER =
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
CACHE_QUERY_INTERFACE = 127.0.0.1
ENABLE_UDP_LISTENER = False
ENABLE_TAGS = False
LOG_UPDATES = False
LOG_CREATES = False
ENABLE_MANHOLE = False
"""


class CarbonSandbox:
    """Real graphite-carbon daemons (carbon-cache, carbon-relay) in a private directory: a carbon.conf of
    CARBON_CACHE_BASE plus `extra` (formatted with {root} and `fields`), a one-minute storage schema, and
    every daemon stopped by cleanup()."""

    def __init__(self, prefix, extra, **fields):
        self.root = tempfile.mkdtemp(prefix=prefix)
        os.makedirs(os.path.join(self.root, "conf"))
        self.conf = os.path.join(self.root, "conf", "carbon.conf")
        with open(self.conf, "w") as f:
            f.write((CARBON_CACHE_BASE + extra).format(root=self.root, **fields))
        with open(os.path.join(self.root, "conf", "storage-schemas.conf"), "w") as f:
            f.write("[default]\npattern = .*\nretentions = 60s:1d\n")
        self.procs = []

    def daemon(self, program, *args, listens=()):
        """Starts `program` (carbon-cache, carbon-relay) in the foreground, its log beside the config, and
        waits until that very process listens on every port in `listens` (ports from daemon_port()): a port
        that something else answers on is not the daemon, and a daemon that could not bind exits."""
        name = "-".join((program,) + tuple(a.split("=", 1)[-1] for a in args))
        log_path = os.path.join(self.root, name + ".log")
        log = open(log_path, "wb")
        proc = subprocess.Popen([program, "--config=" + self.conf] + list(args) + ["--nodaemon", "start"], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append((proc, log))

        def ready():
            if proc.poll() is not None:
                with open(log_path, "rb") as f:
                    tail = f.read()[-3000:].decode(errors="replace")
                raise AssertionError("%s exited with %s before listening on %s:\n%s" % (name, proc.returncode,
                                                                                        list(listens), tail))
            return set(listens) <= listening_ports(proc.pid)

        wait_until(ready, 30, interval=0.1, message="%s listening on %s" % (name, list(listens)))
        return proc

    def logs(self, limit=4000):
        """The last `limit` characters of each daemon's own log and of every carbon log under LOG_DIR, for a
        failure message: what carbon refused, dropped or could not write."""
        parts = []
        for folder, _dirs, files in sorted(os.walk(self.root)):
            for name in sorted(files):
                if name.endswith(".log") and (folder == self.root or os.path.join(self.root, "log") in folder):
                    with open(os.path.join(folder, name), "rb") as f:
                        text = f.read().decode(errors="replace")
                    parts.append("--- %s ---\n%s" % (os.path.relpath(os.path.join(folder, name), self.root),
                                                        text[-limit:]))
        return "\n".join(parts)

    def whisper_root(self, instance=None):
        return os.path.join(self.root, instance, "whisper") if instance else os.path.join(self.root, "storage", "whisper")

    def cleanup(self):
        for proc, log in reversed(self.procs):
            terminate(proc)
            log.close()
        shutil.rmtree(self.root, ignore_errors=True)

def tcp_sockets(port):
    """(state, tx_queue, rx_queue) of every IPv4 TCP socket on this machine with `port` at either end, from
    /proc/net/tcp: state "01" is ESTABLISHED, "0A" LISTEN; tx_queue is sent and not yet acknowledged,
    rx_queue received and not yet read (for a listening socket: the accept backlog)."""
    out = []
    with open("/proc/net/tcp") as f:
        next(f)
        for row in f:
            fields = row.split()
            local, remote = (int(end.split(":")[1], 16) for end in fields[1:3])
            if port in (local, remote):
                tx, rx = fields[4].split(":")
                out.append((fields[3], int(tx, 16), int(rx, 16)))
    return out


def tcp_queued_bytes(port):
    """Bytes in the kernel's queues of every connection to or from `port`."""
    return sum(tx + rx for state, tx, rx in tcp_sockets(port) if state != "0A")


class Sink:
    """A destination: accepts connections and records every byte it receives. It listens on `port`, or on
    a port the kernel picks (then `port` is that port, kept for a restart). bind() without start() holds
    the port without listening: a destination that is down (connections refused) and comes back on start()."""

    def __init__(self, port=None, read_delay=0.0, recv_size=1 << 20):
        self.port = port or 0
        self.read_delay = read_delay
        self.recv_size = recv_size
        self._lock = threading.Lock()
        self._data = bytearray()
        self._stop = threading.Event()
        self._server = None
        self._thread = None
        self.connections = 0
        self._last_count = None

    def bind(self):
        if self._server is None:
            self._server = socket.socket()
            self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._server.bind(("127.0.0.1", self.port))
            self.port = self._server.getsockname()[1]
        return self

    def start(self):
        self._stop.clear()
        self.bind()
        self._server.listen(64)
        self._server.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self):
        conns = []
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
                conn.settimeout(0.05)
                conns.append(conn)
                self.connections += 1
            except socket.timeout:
                pass
            for conn in list(conns):
                try:
                    while True:
                        chunk = conn.recv(self.recv_size)
                        if not chunk:
                            conns.remove(conn)
                            conn.close()
                            break
                        with self._lock:
                            self._data += chunk
                        if self.read_delay:
                            time.sleep(self.read_delay)
                except socket.timeout:
                    pass
                except OSError:
                    conns.remove(conn)
        for conn in conns:
            conn.close()
        self._server.close()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(5)
            if self._thread.is_alive():
                return
            self._thread = None
        elif self._server:
            self._server.close()  # bound, never started
        self._server = None

    def data(self):
        with self._lock:
            return bytes(self._data)

    def lines(self):
        return self.data().decode("utf-8", "replace").splitlines()

    def line_count(self):
        with self._lock:
            return self._data.count(b"\n")

    def quiescent(self):
        """True when nothing is on its way to this sink (the kernel holds no byte for or from its port) and
        its line count did not change since the previous call: for wait_until."""
        count = self.line_count()
        quiet = tcp_queued_bytes(self.port) == 0 and count == self._last_count
        self._last_count = count
        return quiet

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port


def wait_settled(relay, *sinks, timeout=10):
    """Waits until nothing more is on its way to `sinks`: every destination queue of `relay` is empty and every
    sink is quiescent. Then a count of the lines at the sinks is final (no fixed grace sleep)."""
    def settled():
        quiet = [sink.quiescent() for sink in sinks]  # every sink polled each time
        return all(quiet) and all(d["queued"] == 0 for d in relay.stats()["destinations"].values())
    wait_until(settled, timeout, message="every queue delivered and the sinks quiet")


class Polymur:
    """One polymur supervisor (and its children) started from the built binary."""

    def __init__(self, *args, workers=2, destinations=(), env=None, state_dir=None, extra_env=None):
        # Port 0: the kernel picks free ports at bind time, and the supervisor's start line names them
        # ("listening on plaintext 127.0.0.1:N ...; admin on 127.0.0.1:M"); `port` and `api_port` read them.
        self._port = self._api_port = 0
        self.tmp = tempfile.mkdtemp(prefix="polymur-test-")
        self.state_dir = state_dir or os.path.join(self.tmp, "state")
        self.log_path = os.path.join(self.tmp, "polymur.log")
        self.out_path = os.path.join(self.tmp, "stdout.txt")
        self.args = [POLYMUR, "--listen-addr=127.0.0.1:0", "--api-addr=127.0.0.1:0",
                     "--state-dir=" + self.state_dir, "--workers=%d" % workers, "--reconnect-interval=1"]
        # No self-metrics unless a test asks for them: every --self-metrics-interval (60 s by default) they add
        # 12 lines or more to each destination and its `sent`, and a test that counts lines exactly and runs past
        # a minute on a loaded machine would count them too (test_durability once saw sent 1000012 for 1000000
        # lines: one emission). A later --self-metrics-interval wins; with --config or -metrics-flush the test's
        # own setting applies, as the command line would beat them.
        if not any(arg.lstrip("-").startswith(("config", "metrics-flush")) for arg in args):
            self.args.append("--self-metrics-interval=0")
        if destinations:
            self.args.append("--destinations=" + ",".join(destinations))
        self.args += list(args)
        self.env = dict(env if env is not None else os.environ)
        self.env.update(extra_env or {})
        self.env.update({name: os.environ[name] for name in SANITIZER_VARIABLES if name in os.environ})
        self.proc = None

    def start(self, wait=True):
        self._log = open(self.log_path, "ab")
        self._out = open(self.out_path, "ab")
        self.proc = subprocess.Popen(self.args, stdout=self._out, stderr=self._log, env=self.env, stdin=subprocess.DEVNULL)
        if wait:
            wait_until(self._admin_ready, 10, message="polymur admin socket")
            wait_until(lambda: self.stats()["connections_total"] >= 0, 5, message="stats")
        return self

    def _bound(self, name):
        """A port as configured, or once started the one the kernel chose for port 0 (from the log)."""
        if not getattr(self, name) and self.proc:
            self._learn_ports()
        return getattr(self, name)

    port = property(lambda self: self._bound("_port"), lambda self, value: setattr(self, "_port", value))
    api_port = property(lambda self: self._bound("_api_port"), lambda self, value: setattr(self, "_api_port", value))

    def _learn_ports(self):
        """Reads the bound ports from the supervisor's start line and writes them into the arguments, so that
        a restart of this relay listens where it did."""
        def started():
            if self.proc.poll() is not None:
                raise AssertionError("polymur exited with %s:\n%s" % (self.proc.returncode, self.log()))
            return re.findall(r"listening on (?:plaintext \S+:(\d+))?.*; admin on \S+:(\d+) and", self.log())
        plaintext, admin = wait_until(started, 10, message="polymur's start line (the bound ports)")[-1]
        self._port, self._api_port = int(plaintext or 0), int(admin)
        for i, arg in enumerate(self.args):
            if arg.startswith("--listen-addr=") and arg.endswith(":0") and self._port:
                self.args[i] = arg[:-1] + str(self._port)
            elif arg.startswith("--api-addr=") and arg.endswith(":0"):
                self.args[i] = arg[:-1] + str(self._api_port)

    # The option of each listener the start line names (plaintext, HTTPS, HTTP, pickle, TLS, UDP) and of /metrics.
    LISTENER_OPTIONS = {"plaintext": "--listen-addr=", "HTTPS": "--https-listen-addr=", "HTTP": "--http-listen-addr=",
                        "pickle": "--pickle-listen-addr=", "TLS": "--tls-listen-addr=", "UDP": "--udp-listen-addr=",
                        "metrics": "--metrics-addr="}

    def bound_port(self, kind):
        """The port of listener `kind` (a key of LISTENER_OPTIONS) as bound, from the log: give it port 0 and
        the kernel picks a free one at bind time (no port chosen before and taken by someone else meanwhile).
        The argument is rewritten to that port, so that a restart of this relay listens where it did."""
        def bound():
            if self.proc.poll() is not None:
                raise AssertionError("polymur exited with %s:\n%s" % (self.proc.returncode, self.log()))
            log = self.log()
            if kind == "metrics":
                return re.findall(r"metrics: serving /metrics \(Prometheus\) and /health on \S+:(\d+)", log)
            return [port for listeners in re.findall(r"listening on (.*?) with \d+ workers; admin on", log)
                    for port in re.findall(r"(?:^|, )%s \S+:(\d+)" % re.escape(kind), listeners)]
        port = int(wait_until(bound, 10, message="the %s listener's port in the log" % kind)[-1])
        option = self.LISTENER_OPTIONS[kind]
        for i, arg in enumerate(self.args):
            if arg.startswith(option) and arg.endswith(":0"):
                self.args[i] = arg[:-1] + str(port)
        return port

    def _admin_ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("polymur exited with %s:\n%s" % (self.proc.returncode, self.log()))
        try:
            with socket.create_connection(("127.0.0.1", self.api_port), timeout=0.2):
                return True
        except OSError:
            return False

    def admin(self, command, unix=False):
        if unix:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(os.path.join(self.state_dir, "polymur.sock"))
            except OSError:
                s.close()
                raise
        else:
            s = socket.create_connection(("127.0.0.1", self.api_port), timeout=5)
        with s:
            s.settimeout(10)
            s.sendall(command.encode() + b"\n")
            return recv_all(s).decode()

    def stats(self):
        return json.loads(self.admin("stats"))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def children(self):
        """pid -> command line (the process title) of every child of the supervisor."""
        out = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid != self.proc.pid:
                    continue
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    out[int(entry)] = f.read().split(b"\0")[0].decode()
            except (OSError, ValueError, IndexError):
                continue
        return out

    def child_pid(self, title):
        """The pid of the child whose process title is "polymur: <title>" ("output 127.0.0.1:2003", "listener 0",
        "aggregator"), or None when there is not exactly one."""
        found = [pid for pid, cmd in self.children().items() if cmd == "polymur: " + title]
        return found[0] if len(found) == 1 else None

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in self.children():
                    os.kill(pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        self.stop()
        for f in (getattr(self, "_log", None), getattr(self, "_out", None)):
            if f:
                f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def recv_all(sock):
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def send_lines(port, lines, connections=1):
    """Sends `lines` (str or bytes, without '\\n') spread over `connections` connections."""
    payloads = [bytearray() for _ in range(connections)]
    for i, line in enumerate(lines):
        payloads[i % connections] += (line.encode() if isinstance(line, str) else line) + b"\n"
    threads = []
    for payload in payloads:
        def run(payload=payload):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(payload)
        threads.append(threading.Thread(target=run))
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def send_paced(port, lines, per_slice, pause):
    """Sends `lines` on one connection, `per_slice` lines at a time with `pause` seconds between slices, so
    that something (a kill -9 of the output) can happen while batches are in flight."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        for i in range(0, len(lines), per_slice):
            s.sendall(("\n".join(lines[i:i + per_slice]) + "\n").encode())
            time.sleep(pause)


def trickle(sockets, seconds, payload_for):
    """Sends one byte a second on each socket for up to `seconds`; returns how many are still open at the end."""
    open_ = set(range(len(sockets)))
    sent = [0] * len(sockets)
    start = time.monotonic()
    while time.monotonic() - start < seconds and open_:
        for i in list(open_):
            payload = payload_for(i)
            try:
                if sent[i] < len(payload):
                    sockets[i].send(payload[sent[i]:sent[i] + 1])
                    sent[i] += 1
                if sockets[i].recv(65536) == b"":
                    open_.discard(i)
            except BlockingIOError:
                pass
            except OSError:
                open_.discard(i)
        time.sleep(1)
    return len(open_)


def connect_many(port, count):
    out = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setblocking(False)
        out.append(s)
    return out


class OutputKiller:
    """kill -9 of the output process titled `title` every `pause` seconds (at most `most` times, each
    time waiting for its restart) from start() until stop(), which returns the pids killed."""

    def __init__(self, relay, title, pause=0.25, most=5):
        self.relay, self.title, self.pause, self.most = relay, title, pause, most
        self.kills = []
        self.running = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _pid(self):
        return self.relay.child_pid(self.title[len("polymur: "):])

    def _run(self):
        while self.running.is_set() and len(self.kills) < self.most:
            time.sleep(self.pause)
            pid = self._pid()
            if pid and self.running.is_set():
                os.kill(pid, signal.SIGKILL)
                self.kills.append(pid)
                wait_until(lambda: self._pid() not in (None, pid), 10, message="output restarted")

    def start(self):
        self.running.set()
        self.thread.start()
        return self

    def stop(self):
        self.running.clear()
        self.thread.join()
        return self.kills


class ResetSink:
    """A destination that can lose what was not acknowledged, so a test can catch an output that commits a
    batch before the destination confirmed it. (A killed output cannot show that: the kernel still delivers
    the socket buffer of a killed process.)

    It records each connection's bytes apart (TLS: the decrypted bytes; `tls` = (cert, key)). With
    `resets` > 0 it stops reading a connection once it holds `after` bytes, waits until its receive queue
    stops growing (its window closed: the sender's kernel holds the rest, sent and not acknowledged), calls
    `on_stall()`, records what its kernel received and acknowledged (MSG_PEEK of the whole receive queue, so
    the window stays closed), resets the connection (SO_LINGER 0: RST, everything the sender had queued is
    lost), calls `on_reset()`, and reads the next connections normally once `resets` ran out. A small
    receive buffer keeps the acknowledged part small and the lost part large."""

    def __init__(self, resets=0, after=256 * 1024, tls=None, rcvbuf=64 * 1024, on_stall=None, on_reset=None):
        import ssl
        self.resets_left, self.after, self.on_stall, self.on_reset = resets, after, on_stall, on_reset
        self.context = None
        if tls:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*tls)
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # inherited by accepted sockets
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.address = "127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.connections = []  # bytearray per connection, in accept order
        self.ended = 0  # connections read to their end (end-of-file, an error or a reset of ours)
        self.resets = 0
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._serve, daemon=True)]
        self.threads[0].start()

    def _serve(self):
        while not self.stop_event.is_set():
            try:
                conn, _ = self.server.accept()
            except socket.timeout:
                continue
            record = bytearray()
            with self.lock:
                self.connections.append(record)
                reset = self.resets_left > 0
                self.resets_left -= reset
            t = threading.Thread(target=self._read, args=(conn, record, reset), daemon=True)
            t.start()
            self.threads.append(t)

    def _read(self, conn, record, reset):
        import fcntl
        import ssl
        import struct
        import termios
        tls = incoming = outgoing = None
        if self.context:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = self.context.wrap_bio(incoming, outgoing, server_side=True)

        def take(raw):  # raw bytes from the connection into the record (decrypted first with TLS)
            if not tls:
                with self.lock:
                    record.extend(raw)
                return
            incoming.write(raw)
            while True:
                try:
                    chunk = tls.read(1 << 16)  # the handshake first, as SSL_read does
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLError:
                    return
                if not chunk:
                    break
                with self.lock:
                    record.extend(chunk)
            pending = outgoing.read()
            if pending:
                try:
                    conn.sendall(pending)
                except OSError:
                    pass

        def queued():
            return struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]

        conn.settimeout(0.05)
        raw_total = 0
        try:
            while not self.stop_event.is_set():
                if reset and raw_total >= self.after:
                    # Stop reading until the receive queue stops growing, then lose what the sender holds.
                    last, since = -1, time.monotonic()
                    while time.monotonic() - since < 0.3 * TIME_FACTOR and not self.stop_event.is_set():
                        n = queued()
                        if n != last:
                            last, since = n, time.monotonic()
                        time.sleep(0.02)
                    if self.on_stall:
                        self.on_stall()
                    n = queued()
                    if n:
                        take(conn.recv(n, socket.MSG_PEEK))
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()
                    with self.lock:
                        self.resets += 1
                    if self.on_reset:
                        self.on_reset()
                    return
                try:
                    raw = conn.recv(1 << 16)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not raw:
                    return
                raw_total += len(raw)
                take(raw)
        finally:
            if conn.fileno() >= 0:
                conn.close()
            with self.lock:
                self.ended += 1

    def all_ended(self):
        """Whether it accepted a connection and read every one to its end: for wait_until, before decoding a
        stream that must be whole."""
        with self.lock:
            return bool(self.connections) and self.ended == len(self.connections)

    def streams(self):
        """The bytes of each connection (decrypted with TLS), in accept order."""
        with self.lock:
            return [bytes(r) for r in self.connections]

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(5)
        self.server.close()


def complete_lines(data):
    """The whole lines of a stream cut anywhere: a last line without its LF is left out."""
    return data[:data.rfind(b"\n") + 1].decode().splitlines()


def numbered(prefix, start, count, timestamp=1700000000):
    return ["%s.%d %d %d" % (prefix, i, i, timestamp) for i in range(start, start + count)]


# Certificates for the TLS and HTTPS tests.
CA_CONFIG = """
[ ca ]
default_ca = test_ca

[ test_ca ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = $dir/ca.pem
private_key = $dir/ca.key
default_md = sha256
default_days = 30
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none

[ policy_any ]
commonName = supplied

[ req ]
distinguished_name = req_dn
[ req_dn ]

[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ client_ext ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth

[ server_ext ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
"""


def openssl(*args, cwd=None):
    result = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise AssertionError("openssl %s failed:\n%s" % (" ".join(args), result.stdout.decode(errors="replace")))
    return result.stdout


class Pki:
    """A private CA in a directory `name` under `root`, made with the openssl command line at test time, with
    `openssl ca` so it can issue (client_ext, server_ext for 127.0.0.1 and localhost), revoke and publish a CRL."""

    def __init__(self, root, name):
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "issued"))
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(self.dir, "crlnumber"), "w") as f:
            f.write("1000\n")
        self.config = os.path.join(self.dir, "ca.cnf")
        with open(self.config, "w") as f:
            f.write(CA_CONFIG.format(dir=self.dir))
        self.cert = self.path("ca.pem")
        openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.path("ca.key"), "-out", self.cert, "-days", "30", "-subj", "/CN=%s" % name,
                "-config", self.config, "-extensions", "ca_ext")

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, cn, kind="client_ext", start=None, end=None):
        key, csr, cert = self.path(name + ".key"), self.path(name + ".csr"), self.path(name + ".pem")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                "-out", csr, "-utf8", "-subj", "/CN=%s" % cn, "-config", self.config)
        args = ["ca", "-batch", "-config", self.config, "-in", csr, "-out", cert, "-extensions", kind, "-notext"]
        if start:
            args += ["-startdate", start, "-enddate", end]
        openssl(*args)
        return cert, key

    def revoke(self, cert):
        openssl("ca", "-config", self.config, "-revoke", cert)

    def crl(self):
        out = self.path("crl.pem")
        openssl("ca", "-config", self.config, "-gencrl", "-out", out)
        return out


class RelayTestCase(unittest.TestCase):
    """A test that starts sinks and relays; each is stopped after the test, the last started first."""

    def sink(self, start=True, **kw):
        """A Sink on a port the kernel picks (or `port`); with start=False bound but not listening (connections
        refused) until its start(): a destination that is down and comes back, on a port nobody can take."""
        s = Sink(**kw).bind()
        self.addCleanup(s.stop)
        return s.start() if start else s

    def assert_trickling_clients_cut(self, port, count, seconds, payload, what):
        """Opens `count` connections to `port` that each send `payload` one byte a second (every byte is
        progress to an idle timer, so only an absolute deadline ends them) and asserts that the server closed
        every one within `seconds`."""
        clients = connect_many(port, count)
        started = time.monotonic()
        try:
            still_open = trickle(clients, seconds, lambda i: payload)
            self.assertEqual(still_open, 0, "%d of %d trickling %s still open after %.0f s"
                             % (still_open, count, what, time.monotonic() - started))
        finally:
            for s in clients:
                s.close()

    def assert_pauses_out_of_descriptors(self, relay, listener_pid, port):
        """Leaves listener `listener_pid` 64 file descriptors (prlimit) and holds 120 connections to `port`, so
        accept() fails with EMFILE while connections wait in the backlog, and asserts that the listener neither
        spins (a listening socket with a connection waiting stays readable: retried at once, a core at 100 %)
        nor logs each attempt. The connections are closed on return; the limit stays."""
        subprocess.run(["prlimit", "--pid", str(listener_pid), "--nofile=64:64"], check=True)
        held = []
        started = time.monotonic()
        try:
            for _ in range(120):
                held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            wait_until(lambda: "pausing accepts" in relay.log(), 10, message="the pause in the log")

            before = cpu_seconds(listener_pid)
            time.sleep(2 * TIME_FACTOR)
            spent = cpu_seconds(listener_pid) - before
            self.assertLess(spent, 0.5 * TIME_FACTOR, "the listener spent %.2f s of CPU in 2 s out of descriptors" % spent)
            # At most a line a second (with a count of the attempts held back), not one per 100 ms attempt.
            self.assertLessEqual(relay.log().count("pausing accepts"), time.monotonic() - started + 2)
        finally:
            for s in held:
                s.close()

    def refused_port(self):
        """A port where nothing listens and nothing can start listening during the test: a socket holds it,
        bound and not listening, so a connect to it is refused (a port only found free could be taken by anyone)."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.addCleanup(s.close)
        return s.getsockname()[1]

    def relay(self, *args, start=True, **kw):
        r = Polymur(*args, **kw)
        self.addCleanup(r.cleanup)
        return r.start() if start else r
