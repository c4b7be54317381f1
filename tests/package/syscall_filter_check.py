#!/usr/bin/env python3
"""Runs the relay under strace through what the unit allows it to do (start, admin over TCP and the
unix socket, putdest/deldest, a metric, self-metrics, SIGHUP, SIGTERM) and checks that every system
call it made is allowed by the unit's SystemCallFilter= lines, as systemd-analyze expands them.
    syscall_filter_check.py POLYMUR_BINARY UNIT_FILE"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time


def expand(group, seen):
    out = set()
    text = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True, text=True, check=True).stdout
    for line in text.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        if word.startswith("@"):
            if word not in seen:
                seen.add(word)
                out |= expand(word, seen)
        else:
            out.add(word)
    return out


def allowed_by(unit):
    allowed = set()
    for line in open(unit):
        m = re.match(r"SystemCallFilter=(~?)(.*)", line.strip())
        if not m:
            continue
        names = set()
        for word in m.group(2).split():
            names |= expand(word, set()) if word.startswith("@") else {word}
        allowed = allowed - names if m.group(1) else allowed | names
    return allowed


def talk(address, text):
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family) as s:
        s.settimeout(5)
        s.connect(address)
        s.sendall(text.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        return s.recv(65536).decode()


def main():
    binary, unit = sys.argv[1], sys.argv[2]
    allowed = allowed_by(unit)
    if not allowed:
        print("%s has no SystemCallFilter=" % unit)
        return 1
    tmp = tempfile.mkdtemp(prefix="polymur-syscalls-")
    trace = os.path.join(tmp, "trace")
    log_path = os.path.join(tmp, "polymur.log")
    # Port 0: the kernel picks the ports when polymur binds them, and its start line names them.
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["strace", "-f", "-qq", "-o", trace, binary, "--listen-addr=127.0.0.1:0",
                                 "--api-addr=127.0.0.1:0", "--state-dir=" + tmp + "/state", "--workers=2",
                                 "--self-metrics-interval=1"], stderr=log)
    # A destination that refuses connections: a port held bound and not listening.
    down = socket.socket()
    down.bind(("127.0.0.1", 0))
    try:
        deadline = time.monotonic() + 60
        while True:
            with open(log_path, errors="replace") as f:
                bound = re.search(r"listening on plaintext \S+:(\d+) .*; admin on \S+:(\d+) and", f.read())
            if bound:
                port, api = int(bound.group(1)), int(bound.group(2))
                try:
                    talk(("127.0.0.1", api), "getdest")
                    break
                except OSError:
                    pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("polymur did not start (exit %s)" % proc.poll())
            time.sleep(0.1)
        sink = down.getsockname()[1]
        assert talk(("127.0.0.1", api), "putdest 127.0.0.1:%d" % sink).startswith("Registered"), "putdest"
        talk(tmp + "/state/polymur.sock", "stats")
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"a.b 1 %d\n" % int(time.time()))
        time.sleep(1.5)
        assert talk(("127.0.0.1", api), "deldest 127.0.0.1:%d" % sink).startswith("Unregistered"), "deldest"
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        supervisor = int(children[0])
        os.kill(supervisor, signal.SIGHUP)
        time.sleep(1)
        os.kill(supervisor, signal.SIGTERM)
        proc.wait(30)
    finally:
        down.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    calls = set()
    for line in open(trace):
        m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
        if m:
            calls.add(m.group(1))
    calls.discard("execve")  # strace's own exec of the binary, before the filter would apply
    blocked = sorted(calls - allowed)
    subprocess.run(["rm", "-rf", tmp])
    print("%d distinct system calls; not allowed by %s: %s" % (len(calls), os.path.basename(unit), blocked or "none"))
    return 1 if blocked else 0


if __name__ == "__main__":
    sys.exit(main())
