"""Runs one process-test module (`run_tests.py test_relay`) the way `python3 -m unittest -v` would.

In a sanitizer build (TEST_SANITIZER_REPORTS names a directory, set by tests/process/CMakeLists.txt)
every test gets its own report directory: ASAN_OPTIONS and UBSAN_OPTIONS point log_path into it before
the test starts, so every process the test starts (supervisor, listener, output, gateway, proxy, `polymur
lookup`) writes any report there instead of to a stderr nobody reads. After the test and its cleanups
(every process stopped), a report in that directory fails the test and is printed. Processes started
outside a test (setUpClass) report into the module's own directory, checked once at the end.
"""
import os
import re
import shutil
import sys
import time
import unittest

REPORTS = os.environ.get("TEST_SANITIZER_REPORTS")
SHOWN_BYTES = 20000  # of each report, in the test output


def point_reports_at(directory):
    os.makedirs(directory, exist_ok=True)
    common = "log_path=%s/report:print_stacktrace=1:halt_on_error=1" % directory
    # abort_on_error stays off: the process exits with an error code and leaves no core file.
    os.environ["ASAN_OPTIONS"] = common + ":detect_leaks=1:detect_stack_use_after_return=1"
    os.environ["UBSAN_OPTIONS"] = common
    os.environ["LSAN_OPTIONS"] = common


def collect(directory):
    """The text of every report in `directory` (empty when there is none)."""
    texts = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
        path = os.path.join(directory, name)
        with open(path, "rb") as f:
            text = f.read(SHOWN_BYTES + 1).decode("utf-8", "replace")
        if len(text) > SHOWN_BYTES:
            text = text[:SHOWN_BYTES] + "\n[... %s is longer; it is kept]" % path
        texts.append("==== %s\n%s" % (path, text))
    return "\n".join(texts)


class TimedResult(unittest.TextTestResult):
    """Records how long each test took (setUp and cleanups included), for the table main() prints."""

    durations = []

    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        self.durations.append((time.monotonic() - self._started, test.id()))
        super().stopTest(test)


class CheckedResult(TimedResult):
    """Fails a test during which any process wrote a sanitizer report."""

    def startTest(self, test):
        self._reports = os.path.join(REPORTS, re.sub(r"[^A-Za-z0-9_.-]", "_", test.id()))
        shutil.rmtree(self._reports, ignore_errors=True)
        point_reports_at(self._reports)
        super().startTest(test)

    def stopTest(self, test):
        found = collect(self._reports)
        if found:
            try:
                raise AssertionError("sanitizer report(s) from a process this test started:\n" + found)
            except AssertionError:
                self.addFailure(test, sys.exc_info())
        else:
            shutil.rmtree(self._reports, ignore_errors=True)
        point_reports_at(os.path.join(REPORTS, "outside-tests"))
        super().stopTest(test)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: run_tests.py <test module>")
    module = sys.argv[1]
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    suite = unittest.defaultTestLoader.loadTestsFromName(module)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=TimedResult)
    if REPORTS:
        shutil.rmtree(os.path.join(REPORTS, "outside-tests"), ignore_errors=True)
        point_reports_at(os.path.join(REPORTS, "outside-tests"))
        runner.resultclass = CheckedResult
    result = runner.run(suite)
    # The slowest tests first: what to look at when the suite gets slow (ctest prints only the module's time).
    for seconds, name in sorted(TimedResult.durations, reverse=True):
        print("%7.2f s  %s" % (seconds, name))
    ok = result.wasSuccessful()
    if REPORTS:
        found = collect(os.path.join(REPORTS, "outside-tests"))
        if found:
            print("FAIL: sanitizer report(s) from a process started outside a test:\n" + found, file=sys.stderr)
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
