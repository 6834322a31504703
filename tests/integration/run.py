#!/usr/bin/env python3
"""Run integration test modules against the real valetd.

usage: run.py [MODULE...]
       (default: test_api test_isolation test_valetd_cli test_exec test_hostile)

Modules are found in tests/integration and tests/hostile.

Prints unittest's verbose report and summary, a line
`SKIP(kind): TEST: reason` per skipped test (kind: host or asan when the
reason starts with "host: " or "asan: ", else needs; see tests/run_tests.sh),
then one machine-readable line `RESULT <passed> <failed> <skipped>` that
tests/run_tests.sh adds up.
"failed" counts failures, errors (also in setUpClass/tearDownClass) and
unexpected successes. On a failure the daemon's log tail is printed. A
watchdog (VALET_TEST_TIMEOUT seconds, default 900) kills the daemons and
exits 3 if the suite hangs.
"""
import faulthandler
import os
import sys
import threading
import unittest

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "hostile"))
sys.path.insert(0, _HERE)
import valetd  # noqa: E402


class CountingResult(unittest.TextTestResult):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.passed = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1

    def _show_log(self, test):
        d = getattr(test, "d", None)
        if isinstance(d, valetd.Daemon):
            self.stream.writeln("")
            self.stream.writeln(d.log_tail(40))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._show_log(test)

    def addError(self, test, err):
        super().addError(test, err)
        self._show_log(test)


def watchdog(seconds):
    def fire():
        sys.stderr.write("\nrun.py: watchdog: no result after %ds, giving up\n" % seconds)
        faulthandler.dump_traceback(all_threads=True)
        valetd.kill_all()
        os._exit(3)
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()


def main(argv):
    modules = argv[1:] or ["test_api", "test_isolation", "test_valetd_cli", "test_exec",
                          "test_hostile"]
    watchdog(int(os.environ.get("VALET_TEST_TIMEOUT", "900")))
    passed = failed = skipped = 0
    for mod in modules:
        suite = unittest.defaultTestLoader.loadTestsFromName(mod)
        runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                         resultclass=CountingResult)
        res = runner.run(suite)
        passed += res.passed
        failed += len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
        skipped += len(res.skipped)
        for test, reason in res.skipped:
            kind = "needs"
            if reason.startswith(("host: ", "asan: ")):
                kind, reason = reason.split(": ", 1)
            print("SKIP(%s): %s: %s" % (kind, test.id(), reason))
    sys.stdout.flush()
    print("RESULT %d %d %d" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
