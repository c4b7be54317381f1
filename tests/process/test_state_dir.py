"""A state directory polymur cannot use is reported for what is wrong with it (owner, mode, a file in
the way), never as "in use by another polymur". Runs outside any user namespace: it needs setpriv to
run polymur as another user."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import POLYMUR, RelayTestCase


class StateDirErrorTest(RelayTestCase):
    def run_as_nobody(self, state_dir):
        return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", POLYMUR,
                               "--state-dir=" + state_dir, "--listen-addr=127.0.0.1:0",
                               "--api-addr=127.0.0.1:0"], capture_output=True, text=True, timeout=20)

    def test_state_dir_owned_by_another_user_is_reported_as_such(self):
        top = tempfile.mkdtemp(prefix="polymur-owner-")
        self.addCleanup(shutil.rmtree, top, True)
        os.chmod(top, 0o755)  # root's, and nobody may not write it
        r = self.run_as_nobody(top)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("Permission denied (%s is owned by uid 0, gid 0, mode 0755; polymur runs as uid 65534" % top, r.stderr)
        self.assertNotIn("in use by another polymur", r.stderr)
        r = self.run_as_nobody(os.path.join(top, "a", "state"))
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn("cannot create it: Permission denied (%s is owned by uid 0" % top, r.stderr)

    def test_state_dir_under_a_file_is_reported_as_such(self):
        top = tempfile.mkdtemp(prefix="polymur-notdir-")
        self.addCleanup(shutil.rmtree, top, True)
        open(os.path.join(top, "file"), "w").close()
        relay = self.relay(state_dir=os.path.join(top, "file", "state"), start=False).start(wait=False)
        self.assertEqual(relay.proc.wait(10), 78)
        self.assertIn("(%s is not a directory)" % os.path.join(top, "file"), relay.log())


if __name__ == "__main__":
    unittest.main()
