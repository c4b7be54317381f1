"""Every shell command of README.md and docs/*.md runs here, so the documentation cannot drift.

What runs, by the fence of a block:
- ```sh: the block is a bash script (`set -euo pipefail`), run in document order; it must exit 0 and
  print no admin-protocol `error:` line. The working directory carries over between the blocks of a file.
- ```console: every `$ ` command (with `\\` continuation lines) runs; the lines under it must be exactly
  its output (stdout and stderr). A command shown without output must exit 0.
- ```conf: a configuration file; `polymur --config=<it> --check-config` must accept it.

Markers, on the line right before the opening fence:
- `<!-- doc-test: server -->`: the block starts a polymur in the foreground. It must come up (its admin
  address answers `stats`) and exit 0 on SIGTERM. Server blocks run after the other blocks of their file,
  which make what they need (certificates).
- `<!-- doc-test: file PATH -->`: the block is the content of PATH (written, not run).
- `<!-- doc-test: not run: REASON -->`: skipped (systemd, package installation, minutes-long benchmarks);
  there may be at most MAX_NOT_RUN of them in all the docs.

Where: in a private network namespace (in_netns.sh), so the documented addresses (10.0.0.0/8) are local
and the documented fixed ports (2003, 2030, 2040, 443) are free. Blocks that talk to a relay talk to a
"doc relay" started as the README's quick start (`./dev.sh run`) starts it (`polymur --console-out
--state-dir=state --metrics-addr=127.0.0.1:2040` on the default ports), fresh for each file and stopped
while a server block runs. The absolute paths of a
packaged host are mapped under a scratch directory (PATHS below); `polymur`, `polymur-proxy` and
`polymur-gateway` are the built binary.
"""
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from harness import POLYMUR, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MAX_NOT_RUN = 5
MARKER = re.compile(r"^<!-- doc-test: (server|not run: .+|file \S+) -->$")


class Block:
    def __init__(self, path, line, lang, text, marker):
        self.path, self.line, self.lang, self.text, self.marker = path, line, lang, text, marker

    def where(self):
        return "%s:%d" % (os.path.relpath(self.path, ROOT), self.line)


def read(path):
    with open(path) as f:
        return f.read()


def blocks_of(path):
    lines = read(path).split("\n")
    out, i = [], 0
    while i < len(lines):
        m = re.match(r"^```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        end = i + 1
        while not lines[end].startswith("```"):
            end += 1
        before = lines[i - 1] if i > 0 else ""
        marker = MARKER.match(before)
        if before.startswith("<!-- doc-test") and not marker:
            raise AssertionError("%s:%d: unknown doc-test marker %r" % (path, i, before))
        out.append(Block(path, i + 1, m.group(1), "\n".join(lines[i + 1:end]), marker.group(1) if marker else ""))
        i = end + 1
    return out


def doc_files():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def console_commands(text):
    """(command, expected output lines) of each `$ ` line of a console transcript."""
    commands, current = [], None
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = line[2:]
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1] + " " + lines[i].strip()
            current = (command, [])
            commands.append(current)
        elif not line or line.startswith("#"):
            current = None
        elif current is not None:
            current[1].append(line)
        i += 1
    return commands


def admin_answers(port=2030):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"stats\n")
            s.settimeout(5)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"{")
    except OSError:
        return False


@unittest.skipUnless(os.environ.get("POLYMUR_IN_NETNS") == "1", "runs in the network namespace of in_netns.sh")
class DocsTest(unittest.TestCase):
    def setUp(self):
        self.scratch = tempfile.mkdtemp(prefix="polymur-docs-")
        self.addCleanup(shutil.rmtree, self.scratch, True)
        self.bin = os.path.join(self.scratch, "bin")
        os.makedirs(self.bin)
        for name in ("polymur", "polymur-proxy", "polymur-gateway"):
            os.symlink(os.path.abspath(POLYMUR), os.path.join(self.bin, name))
        self.work = os.path.join(self.scratch, "work")
        os.makedirs(self.work)
        self.env = dict(os.environ, PATH=self.bin + ":" + os.environ["PATH"])
        self.paths = {
            "/run/polymur/admin.sock": os.path.join(self.work, "state", "polymur.sock"),  # the doc relay's
            "/srv/polymur-ca": os.path.join(self.scratch, "srv", "polymur-ca"),
            "/etc/polymur": os.path.join(self.scratch, "etc", "polymur"),
            "/var/lib/polymur": os.path.join(self.scratch, "var", "lib", "polymur"),
            "/var/lib/graphite/whisper": os.path.join(self.scratch, "whisper"),
        }
        # What the package installs, and a whisper tree for the lookup example.
        os.makedirs(self.paths["/etc/polymur"])
        shutil.copy(os.path.join(ROOT, "systemd", "polymur.conf"), self.paths["/etc/polymur"])
        for name in ("servers/web01/cpu/user.wsp", "servers/web02/load.wsp"):
            path = os.path.join(self.paths["/var/lib/graphite/whisper"], name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "w").close()
        self.relay = None
        self.log = open(os.path.join(self.scratch, "relay.log"), "ab")
        self.addCleanup(self.log.close)
        self.addCleanup(self.stop_relay)

    def mapped(self, text):
        for path in sorted(self.paths, key=len, reverse=True):
            text = text.replace(path, self.paths[path])
        return text

    def start_relay(self):
        shutil.rmtree(os.path.join(self.work, "state"), ignore_errors=True)
        os.makedirs(os.path.join(self.work, "state"))
        self.relay = subprocess.Popen([POLYMUR, "--console-out", "--state-dir=" + os.path.join(self.work, "state"),
                                       "--metrics-addr=127.0.0.1:2040"],
                                      cwd=self.work, stdout=subprocess.DEVNULL, stderr=self.log, stdin=subprocess.DEVNULL)
        wait_until(lambda: self.relay.poll() is None and admin_answers(), 15, message="the doc relay")

    def stop_relay(self):
        if self.relay and self.relay.poll() is None:
            self.relay.send_signal(signal.SIGTERM)
            self.relay.wait(30)
        self.relay = None

    def run_script(self, block, cwd):
        cwd_file = os.path.join(self.scratch, "cwd")
        script = self.mapped(block.text) + "\npwd > " + cwd_file + "\n"
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=self.env, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, "%s failed (%d):\n%s\n--- stdout\n%s--- stderr\n%s" %
                         (block.where(), r.returncode, block.text, r.stdout, r.stderr))
        for line in r.stdout.splitlines():
            self.assertFalse(line.startswith("error:"), "%s: %s" % (block.where(), line))
        return read(cwd_file).strip()

    def run_console(self, block, cwd):
        commands = console_commands(block.text)
        self.assertTrue(commands, "%s: a console block without a `$ ` command" % block.where())
        for command, expected in commands:
            r = subprocess.run(["bash", "-o", "pipefail", "-c", self.mapped(command) + " 2>&1"], cwd=cwd, env=self.env,
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            if expected:
                self.assertEqual(r.stdout.splitlines(), [self.mapped(l) for l in expected], "%s: $ %s" % (block.where(), command))
            else:
                self.assertEqual(r.returncode, 0, "%s: $ %s\n%s" % (block.where(), command, r.stdout))

    def run_conf(self, block):
        path = os.path.join(self.scratch, "doc.conf")
        with open(path, "w") as f:
            f.write(self.mapped(block.text) + "\n")
        r = subprocess.run([POLYMUR, "--config=" + path, "--check-config"], env=self.env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, "%s: --check-config refused it:\n%s" % (block.where(), r.stderr))

    def run_server(self, block):
        self.stop_relay()
        state = tempfile.mkdtemp(prefix="state-", dir=self.scratch)
        env = dict(self.env, POLYMUR_STATE_DIR=state)
        log_path = os.path.join(self.scratch, "server.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", "exec " + self.mapped(block.text)], cwd=self.work,
                                    env=env, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL)
            try:
                wait_until(lambda: proc.poll() is None and admin_answers(), 15,
                           message="%s to come up (log: %s)" % (block.where(), log_path))
                time.sleep(1)  # still up once its children run
                self.assertIsNone(proc.poll(), "%s exited: %s" % (block.where(), read(log_path)))
            except AssertionError as e:
                raise AssertionError("%s\n%s" % (e, read(log_path)))
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                code = proc.wait(30)
        self.assertEqual(code, 0, "%s: exit %d on SIGTERM:\n%s" % (block.where(), code, read(log_path)))

    def run_file(self, path):
        blocks = blocks_of(path)
        cwd = self.work
        self.start_relay()
        ran = 0
        for block in blocks:
            if block.marker.startswith("file "):
                target = self.mapped(block.marker[5:])
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w") as f:
                    f.write(self.mapped(block.text) + "\n")
            elif block.marker == "server" or block.marker.startswith("not run"):
                continue
            elif block.lang == "sh":
                cwd = self.run_script(block, cwd)
            elif block.lang == "console":
                self.run_console(block, cwd)
            elif block.lang == "conf":
                self.run_conf(block)
            else:
                continue
            ran += 1
        for block in blocks:
            if block.marker == "server":
                self.run_server(block)
                ran += 1
        self.stop_relay()
        return ran

    def test_markers_are_explicit_and_rare(self):
        not_run = []
        for path in doc_files():
            for block in blocks_of(path):
                if block.marker.startswith("not run"):
                    self.assertEqual(block.lang, "sh", block.where())
                    self.assertGreater(len(block.marker), len("not run: ") + 10, "%s: say why" % block.where())
                    not_run.append(block.where())
                if block.marker == "server":
                    self.assertEqual(block.lang, "sh", block.where())
        self.assertLessEqual(len(not_run), MAX_NOT_RUN, not_run)

    def test_readme(self):
        self.assertGreaterEqual(self.run_file(os.path.join(ROOT, "README.md")), 4)

    def test_operations(self):
        self.assertGreaterEqual(self.run_file(os.path.join(ROOT, "docs", "OPERATIONS.md")), 5)

    def test_routing(self):
        self.assertGreaterEqual(self.run_file(os.path.join(ROOT, "docs", "ROUTING.md")), 2)

    def test_https_guide_in_order_revokes_the_site_not_the_gateway(self):
        self.assertGreaterEqual(self.run_file(os.path.join(ROOT, "docs", "HTTPS.md")), 8)
        ca = self.paths["/srv/polymur-ca"]

        def serial(name):
            out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", os.path.join(ca, name)],
                                 capture_output=True, text=True, check=True).stdout
            return out.strip().split("=")[1]

        crl = subprocess.run(["openssl", "crl", "-noout", "-text", "-in", os.path.join(ca, "ca.crl")],
                             capture_output=True, text=True, check=True).stdout
        revoked = re.findall(r"Serial Number: (\w+)", crl)
        self.assertEqual(revoked, [serial("site-a.crt")])
        self.assertNotIn(serial("gateway.crt"), revoked)

    def test_no_destination_on_a_pickle_port(self):
        # carbon's pickle receivers are 2004, 2104, ...: plaintext sent there is lost.
        for path in doc_files():
            for block in blocks_of(path):
                for m in re.finditer(r"[\w\]]:(2\d04)\b", block.text):
                    start = max(block.text.rfind(c, 0, m.start()) for c in " ,=\n\"'`") + 1
                    if block.text.startswith("pickle://", start):
                        continue  # a pickle destination is what a pickle port takes
                    self.fail("%s: %s is a carbon pickle port; polymur sends plaintext (use the line port)" %
                              (block.where(), m.group(0)))

    def test_mapped_admin_socket_is_the_units(self):
        # The docs' /run/polymur/admin.sock is mapped to the doc relay's socket: it must be the unit's.
        unit = read(os.path.join(ROOT, "systemd", "polymur.service"))
        self.assertIn("ExecStart=/usr/bin/polymur --config=/etc/polymur/polymur.conf", unit)
        self.assertIn("--admin-socket=/run/polymur/admin.sock", unit)

    def test_every_doc_file_is_run(self):
        tested = {"README.md", "OPERATIONS.md", "ROUTING.md", "HTTPS.md"}
        for path in doc_files():
            runnable = [b for b in blocks_of(path) if b.lang in ("sh", "console", "conf") and not b.marker.startswith("not run")]
            if runnable:
                self.assertIn(os.path.basename(path), tested, "%s has commands no test runs" % path)


if __name__ == "__main__":
    unittest.main()
