#!/usr/bin/env python3
"""Differential test: `polymur test -f FILE` against `carbon-c-relay -t -f FILE`.

usage: differential.py POLYMUR DATA_DIR [--live | --generate] [--skip NAME.conf ...]

For every DATA_DIR/*.conf, routes DATA_DIR/names.txt with polymur and compares line for line with
  - DATA_DIR/NAME.expected (carbon-c-relay 3.7.3's output, normalised by normalise_relay_output.py; committed, so
    the test runs without carbon-c-relay), or
  - with --live, carbon-c-relay run now (skipped, exit 77, when it is not installed).
--generate rewrites the .expected files from carbon-c-relay.
--skip leaves a file out (reported): for files whose hash clusters need a placement polymur does not have yet.
A file whose first line holds "differential: names only" gets the names without what follows them on the line:
carbon-c-relay -t shows an aggregate's written names built from the whole input line (a display quirk of its
test mode: the running relay builds them from the name alone, and so does polymur).
Both runs use DATA_DIR as working directory (includes are relative to it, as for carbon-c-relay).
"""
import glob
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from normalise_relay_output import normalise  # noqa: E402

RELAY = "/usr/bin/carbon-c-relay"


def run(argv, cwd, stdin):
    done = subprocess.run(argv, cwd=cwd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    return done.returncode, done.stdout.decode("utf-8", "surrogateescape"), done.stderr.decode("utf-8", "replace")


def relay_output(conf, cwd, names):
    rc, out, err = run([RELAY, "-t", "-f", os.path.basename(conf)], cwd, names)
    if rc != 0:
        raise SystemExit(f"carbon-c-relay refused {conf}: {err.strip()}")
    return normalise(out)


def main():
    polymur, data = sys.argv[1], os.path.abspath(sys.argv[2])
    rest = sys.argv[3:]
    skip = {rest[i + 1] for i in range(len(rest) - 1) if rest[i] == "--skip"}
    mode = rest[0] if rest and rest[0] in ("--live", "--generate") else ""
    if mode in ("--live", "--generate") and not os.path.exists(RELAY):
        print("carbon-c-relay is not installed: skipped")
        return 77
    with open(os.path.join(data, "names.txt"), "rb") as f:
        names = f.read()
    confs = sorted(glob.glob(os.path.join(data, "*.conf")))
    assert confs, "no rule files in " + data
    failures = 0
    names_only = b"".join(line.split(b" ", 1)[0].rstrip(b"\n") + b"\n" for line in names.splitlines(keepends=True))
    for conf in confs:
        with open(conf, "rb") as f:
            conf_names = names_only if b"differential: names only" in f.readline() else names
        if os.path.basename(conf) in skip:
            print(f"skip {os.path.basename(conf)}")
            continue
        expected_path = conf[: -len(".conf")] + ".expected"
        if mode == "--generate":
            with open(expected_path, "w", encoding="utf-8", errors="surrogateescape") as f:
                f.write(relay_output(conf, data, conf_names))
            print("wrote", expected_path)
            continue
        if mode == "--live":
            expected = relay_output(conf, data, conf_names)
        else:
            with open(expected_path, encoding="utf-8", errors="surrogateescape") as f:
                expected = f.read()
        rc, got, err = run([os.path.abspath(polymur), "test", "-f", os.path.basename(conf)], data, conf_names)
        if rc != 0:
            print(f"FAIL {os.path.basename(conf)}: polymur test exited {rc}: {err.strip()}")
            failures += 1
            continue
        want_lines, got_lines = expected.split("\n"), got.split("\n")
        for i in range(max(len(want_lines), len(got_lines))):
            w = want_lines[i] if i < len(want_lines) else "<end of output>"
            g = got_lines[i] if i < len(got_lines) else "<end of output>"
            if w != g:
                lo = max(0, i - 6)
                print(f"FAIL {os.path.basename(conf)} line {i + 1}: carbon-c-relay {w!r}, polymur {g!r}")
                print("  context (carbon-c-relay):\n    " + "\n    ".join(want_lines[lo:i + 3]))
                print("  context (polymur):\n    " + "\n    ".join(got_lines[lo:i + 3]))
                failures += 1
                break
        else:
            print(f"ok   {os.path.basename(conf)}: {len(got_lines)} lines agree")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(main())
