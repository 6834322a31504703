"""valetd under a service manager: readiness (sd_notify), the watchdog and
STATUS= lines, SIGHUP reload, and logging to the journal with fields.

Theory of operation: the test plays systemd. It binds an AF_UNIX datagram
socket, passes it as NOTIFY_SOCKET and reads what valetd reports; it
rewrites the config file and sends SIGHUP as `systemctl reload` would. For
the journal it plays journald: valetd runs in a mount namespace of its own
(unshare) where /run/systemd/journal is a directory of the test's, so that
libsystemd's sd_journal_sendv() reaches the test's socket there; the test
sets JOURNAL_STREAM to the device and inode of valetd's stderr (its log
file) as systemd does for a service whose stderr is the journal, and reads
the entries (journald's native protocol). Where a real systemd-journald
runs, JournaldTest asks journalctl for a job's entries.
"""
import array
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from valetd import Daemon, spawner_of

# Linux's SO_TIMESTAMP (= SCM_TIMESTAMP, a struct timeval), which Python's
# socket module does not name.
SO_TIMESTAMP = getattr(socket, "SO_TIMESTAMP", 29)

# Datagrams that come on their own, at any time: not the state under test.
PERIODIC = ("STATUS=", "WATCHDOG=")


def recv_state(sock):
    """The next datagram that is not only periodic STATUS=/WATCHDOG=."""
    while True:
        msg = sock.recv(4096).decode()
        if any(not line.startswith(PERIODIC) for line in msg.splitlines() if line):
            return msg


def notify_socket(test):
    """A NOTIFY_SOCKET that stamps each datagram with the time it was sent
    (SO_TIMESTAMP: the kernel's clock when valetd's sendmsg() queued it),
    so that a test thread the host schedules late does not move it."""
    tmp = tempfile.mkdtemp(prefix="valet-notify-")
    path = os.path.join(tmp, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
    sock.bind(path)
    test.addCleanup(shutil.rmtree, tmp, True)
    test.addCleanup(sock.close)
    return sock, path


def recv_stamped(sock):
    """(the time the datagram was sent, its text)."""
    msg, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(16))
    sent = time.time()
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP:
            sec, usec = struct.unpack("@ll", data[:16])
            sent = sec + usec / 1e6
    return sent, msg.decode()


def drain(sock):
    """Throw away what is queued (sent before now)."""
    sock.setblocking(False)
    try:
        while True:
            sock.recv(4096)
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)


class Recorder:
    """Reads sock in a thread of its own: [(time sent, datagram)]."""

    def __init__(self, sock):
        drain(sock)
        self.sock = sock
        self.got = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.05)
        while not self.stop:
            try:
                self.got.append(recv_stamped(self.sock))
            except socket.timeout:
                continue
            except OSError:
                return

    def finish(self):
        self.stop = True
        self.thread.join()
        return self.got


def collect(sock, seconds):
    """[(time sent, datagram)] for seconds."""
    out = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        sock.settimeout(left)
        try:
            out.append(recv_stamped(sock))
        except socket.timeout:
            return out


class NotifyTest(unittest.TestCase):
    def test_ready_reloading_stopping(self):
        sock, path = notify_socket(self)
        sock.settimeout(5)
        d = Daemon({"queue": {"shutdown_grace": "90s"}}, env={"NOTIFY_SOCKET": path}).start()
        try:
            # READY=1 comes once the API answers (start() already saw 200).
            self.assertIn("READY=1", recv_state(sock))
            d.proc.send_signal(signal.SIGHUP)
            self.assertIn("RELOADING=1", recv_state(sock))
            self.assertIn("READY=1", recv_state(sock))
            d.proc.send_signal(signal.SIGTERM)
            state = recv_state(sock)
            self.assertIn("STOPPING=1", state)
            # The grace period (longer than the unit's TimeoutStopSec=30s)
            # and 15 s for the kills and the last writes: systemd waits.
            self.assertIn("EXTEND_TIMEOUT_USEC=105000000", state)
            rc = d.proc.wait(timeout=10)
            self.assertEqual(rc, 0)
        finally:
            d.kill()
            d.cleanup()


class WatchdogTest(unittest.TestCase):
    """WATCHDOG=1 from the loop at half of WATCHDOG_USEC; STATUS= lines."""

    def start(self, env, config=None):
        d = Daemon(config or {}, env=env)
        self.addCleanup(d.cleanup)
        return d.start(timeout=30)

    def test_pings_at_half_the_interval_from_the_loop(self):
        sock, path = notify_socket(self)
        d = self.start({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"})
        drain(sock)
        got = [t for t, m in collect(sock, 4.0) if "WATCHDOG=1" in m.splitlines()]
        self.assertGreaterEqual(len(got), 5, "pings in 4 s at 0.5 s: %d" % len(got))
        # Every 0.5 s, half the watchdog's 1 s: the median gap (a loaded
        # host delays single ticks).
        gaps = sorted(b - a for a, b in zip(got, got[1:]))
        self.assertTrue(0.4 < gaps[len(gaps) // 2] < 0.65, gaps)
        # A stopped daemon (its loop stands still) sends none.
        d.proc.send_signal(signal.SIGSTOP)
        try:
            collect(sock, 0.1)  # what was under way
            stopped = collect(sock, 1.5)
        finally:
            d.proc.send_signal(signal.SIGCONT)
        self.assertEqual([m for _, m in stopped if "WATCHDOG=1" in m], [])
        again = [t for t, m in collect(sock, 1.5) if "WATCHDOG=1" in m.splitlines()]
        self.assertGreaterEqual(len(again), 2)

    def test_no_pings_for_another_process(self):
        # WATCHDOG_PID names another process (systemd's rule): no pings,
        # and none without WATCHDOG_USEC either; STATUS= all the same.
        for env in ({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}, {}):
            with self.subTest(env=env):
                sock, path = notify_socket(self)
                self.start(dict(env, NOTIFY_SOCKET=path))
                msgs = [m for _, m in collect(sock, 1.5)]
                self.assertFalse([m for m in msgs if "WATCHDOG=1" in m], msgs)
                self.assertTrue([m for m in msgs if "STATUS=running 0 jobs, 0 queued" in m],
                                msgs)

    def test_status_lines(self):
        sock, path = notify_socket(self)
        # With a watchdog of 0.2 s the timer ticks every 0.1 s: STATUS= still
        # comes at most once a second. Everything is read as it comes (a
        # full queue would hold valetd's sd_notify(), as systemd's would).
        rec = Recorder(sock)
        d = self.start({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"},
                       {"queue": {"workers": "2"}})
        jobs = [d.submit("sleep", {"seconds": 2.5}, timeout=30) for _ in range(3)]
        d.wait_all([j["id"] for j in jobs], timeout=30)
        # Then changes faster than one a second.
        jobs = [d.submit("sleep", {"seconds": 0.2}, timeout=30) for _ in range(16)]
        d.wait_all([j["id"] for j in jobs], timeout=30)
        time.sleep(2.5)
        msgs = [(t, m) for t, m in rec.finish() if "READY=1" not in m]
        status = [(t, line[len("STATUS="):]) for t, m in msgs for line in m.splitlines()
                  if line.startswith("STATUS=")]
        lines = [s for _, s in status]
        self.assertIn("running 2 jobs, 1 queued", lines)
        self.assertGreater(len([m for _, m in msgs if "WATCHDOG=1" in m]), 20)
        self.assertEqual(lines[-1], "running 0 jobs, 0 queued")
        # At most one a second, and only when it changed.
        times = [t for t, _ in status]
        self.assertTrue(all(b - a > 0.95 for a, b in zip(times, times[1:])), status)
        self.assertTrue(all(a != b for a, b in zip(lines, lines[1:])), lines)


class SpawnerLostTest(unittest.TestCase):
    """The spawner killed under running jobs: they fail with that reason,
    queued jobs stay queued, the watchdog pings stop (systemd restarts valetd) and SIGTERM still
    stops it at once."""

    def test_spawner_killed(self):
        sock, path = notify_socket(self)
        rec = Recorder(sock)
        d = Daemon({"queue": {"workers": "2"}},
                   env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        self.addCleanup(d.cleanup)
        d.start(timeout=30)
        jobs = [d.submit("sleep", {"seconds": 30}, timeout=60)["id"] for _ in range(2)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and \
                any(d.job(j)["status"] != "IN_PROGRESS" for j in jobs):
            time.sleep(0.05)
        queued = [d.submit("dummytask")["id"] for _ in range(3)]
        os.kill(spawner_of(d), signal.SIGKILL)
        done = d.wait_all(jobs, timeout=10, check_status=False)
        for j in done.values():
            self.assertEqual(j["status"], "FAILED", j)
            self.assertIn("the spawner process died", j["failure_reason"])
        time.sleep(1.5)
        # Jobs that never started stay queued (a restart, or another node
        # of a cluster, runs them), not failed "could not start".
        for j in queued:
            self.assertEqual(d.job(j)["status"], "PENDING", d.job(j))
        msgs = rec.finish()
        lost = [i for i, (_, m) in enumerate(msgs)
                if "STATUS=the spawner process is gone: no job can run" in m]
        self.assertTrue(lost, msgs)
        after = [m for _, m in msgs[lost[0]:] if "WATCHDOG=1" in m]
        self.assertEqual(after, [], "pings after the spawner was gone")
        self.assertTrue([m for _, m in msgs[:lost[0]] if "WATCHDOG=1" in m], msgs)
        d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(d.proc.wait(timeout=10), 0)


def parse_native(data):
    """journald's native protocol: KEY=value lines, or KEY, a newline, a
    64-bit little-endian length and the value (for values with newlines).
    Returns {KEY: value}."""
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            i = nl + 1
        else:
            key = line
            (size,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            value = data[nl + 9:nl + 9 + size]
            i = nl + 9 + size + 1
        fields[key.decode()] = value.decode(errors="replace")
    return fields


class FakeJournal:
    """An AF_UNIX datagram socket at DIR/socket, which valetd's mount
    namespace shows as /run/systemd/journal/socket, read by a thread of its
    own as journald would (a sender blocks when the queue is full)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="valet-journal-")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(os.path.join(self.dir, "socket"))
        self.sock.settimeout(0.05)
        self.entries = []
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def wrapper(self):
        """unshare: /run/systemd a tmpfs (or /run, where there is no
        /run/systemd), then this directory bound on /run/systemd/journal."""
        script = ('set -e; if [ -d /run/systemd ]; then mount -t tmpfs tmpfs /run/systemd; '
                  'else mount -t tmpfs tmpfs /run; mkdir /run/systemd; fi; '
                  'mkdir /run/systemd/journal; mount --bind "$0" /run/systemd/journal; '
                  'exec "$@"')
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, self.dir]

    def run(self):
        while not self.stop:
            try:
                data, anc, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(4))
            except socket.timeout:
                continue
            except OSError:
                return
            for level, kind, fd_data in anc:  # a large entry comes as a memfd
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fd = array.array("i", fd_data[:4])[0]
                    with os.fdopen(fd, "rb") as f:
                        data = f.read()
            with self.lock:
                self.entries.append(parse_native(data))

    def read(self, seconds):
        """The entries so far, after waiting seconds."""
        time.sleep(seconds)
        with self.lock:
            return list(self.entries)

    def find(self, seconds, **want):
        deadline = time.monotonic() + seconds
        while True:
            for e in self.read(0):
                if all(e.get(k) == v for k, v in want.items()):
                    return e
            if time.monotonic() > deadline:
                raise AssertionError("no journal entry with %s within %ds; got:\n%s"
                                     % (want, seconds, "\n".join(map(repr, self.read(0)))))
            time.sleep(0.05)

    def hang_up(self):
        """Stop reading and close the socket; its file stays (a journald
        that went away: a connect is refused)."""
        self.stop = True
        self.thread.join()
        self.sock.close()

    def close(self):
        self.hang_up()
        shutil.rmtree(self.dir, ignore_errors=True)


def journal_stream(path):
    """JOURNAL_STREAM for a stderr that is the file at path."""
    open(path, "ab").close()
    st = os.stat(path)
    return "%d:%d" % (st.st_dev, st.st_ino)


class JournalFieldsTest(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (the fake journal is a mount namespace of valetd's own)")
        if not shutil.which("unshare"):
            self.skipTest("needs unshare(1) (util-linux)")
        self.journal = FakeJournal()
        self.addCleanup(self.journal.close)

    def start(self, stream=None, config=None):
        d = Daemon(config or {}, wrapper=self.journal.wrapper())
        self.addCleanup(d.cleanup)
        d.extra_env["JOURNAL_STREAM"] = stream or journal_stream(d.log_path)
        return d.start()

    def test_fields_arrive(self):
        d = self.start(config={"server": {"access_log": "true"}})
        ok = d.submit("dummytask", {"x": 1})
        bad = d.submit("failtask", {"message": "it\nbroke"})
        d.wait_all([ok["id"], bad["id"]], check_status=False)
        e = self.journal.find(5, JOB_ID=ok["id"])
        self.assertEqual((e["TASK"], e["STATUS"], e["PRIORITY"], e["SYSLOG_IDENTIFIER"]),
                         ("dummytask", "COMPLETED", "6", "valetd"), e)
        self.assertTrue(e["MESSAGE"].startswith("job finished job_id=%s task=dummytask "
                                                "status=COMPLETED" % ok["id"]), e)
        self.assertNotIn("INFO", e["MESSAGE"])
        e = self.journal.find(5, JOB_ID=bad["id"])
        self.assertEqual((e["TASK"], e["STATUS"], e["PRIORITY"]), ("failtask", "FAILED", "4"), e)
        # The task's newline is a blank by then (a failure_reason is one
        # line: run_io.c's blank_controls()), the field arrives as it is.
        self.assertIn("it broke", e["REASON"])
        # The access log: one entry per request, with its fields.
        e = self.journal.find(5, METHOD="POST", PATH="/api/jobs")
        self.assertEqual(e["PRIORITY"], "6")
        entries = self.journal.read(0)
        ready = [x for x in entries if x["MESSAGE"].startswith("valetd ready")]
        self.assertEqual(len(ready), 1, entries)
        self.assertTrue(ready[0]["VERSION"])
        # Nothing of it went to stderr.
        d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(d.proc.wait(timeout=10), 0)
        self.assertNotIn("job finished", d.log_text())
        self.assertNotIn("valetd ready", d.log_text())

    def test_stderr_that_is_not_the_journal(self):
        # JOURNAL_STREAM names another file: stderr is not the journal, the
        # lines go to stderr as text and none to the journal.
        other = os.path.join(self.journal.dir, "other")
        d = self.start(stream=journal_stream(other))
        job = d.submit("dummytask")
        d.wait_for(job["id"], "COMPLETED")
        deadline = time.monotonic() + 5
        while "job finished job_id=%s" % job["id"] not in d.log_text():
            self.assertLess(time.monotonic(), deadline, d.log_tail())
            time.sleep(0.05)
        self.assertEqual(self.journal.read(0.5), [])


    def test_journal_that_refuses_lines_go_to_stderr(self):
        # The journal's socket is there but nobody reads it: each entry is
        # refused, and the line goes to stderr as text, with time and level.
        self.journal.hang_up()
        d = self.start()
        job = d.submit("dummytask")
        d.wait_for(job["id"], "COMPLETED")
        deadline = time.monotonic() + 5
        want = re.compile(r"^\S+Z INFO job finished job_id=%s task=dummytask status=COMPLETED "
                          % job["id"], re.M)
        while not want.search(d.log_text()):
            self.assertLess(time.monotonic(), deadline, d.log_tail())
            time.sleep(0.05)


class JournaldTest(unittest.TestCase):
    def test_journalctl_finds_a_job(self):
        if not os.path.exists("/run/systemd/journal/socket"):
            self.skipTest("host: no systemd-journald here (no /run/systemd/journal/socket)")
        if not shutil.which("journalctl"):
            self.skipTest("host: no journalctl")
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.extra_env["JOURNAL_STREAM"] = journal_stream(d.log_path)
        d.start()
        job = d.submit("dummytask", {"j": 1})
        d.wait_for(job["id"], "COMPLETED")
        deadline = time.monotonic() + 10
        while True:
            out = subprocess.run(["journalctl", "--no-pager", "-o", "json",
                                  "JOB_ID=" + job["id"]], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, timeout=30)
            entries = [json.loads(line) for line in out.stdout.splitlines() if line]
            if entries or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(len(entries), 1, out.stderr)
        e = entries[0]
        self.assertEqual((e["TASK"], e["STATUS"], e["SYSLOG_IDENTIFIER"], e["_PID"]),
                         ("dummytask", "COMPLETED", "valetd", str(d.proc.pid)))


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.d = Daemon({"jobs": {"default_timeout": "10s"}}).start()

    def tearDown(self):
        self.d.stop()
        self.d.cleanup()

    def hup_and_wait(self, text):
        offset = self.d.log_size()
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while text not in self.d.log_text()[offset:]:
            if time.monotonic() > deadline:
                self.fail("no %r in the log after SIGHUP:\n%s" % (text, self.d.log_tail()))
            time.sleep(0.02)
        return self.d.log_text()[offset:]

    def test_reloadable_key_applies(self):
        self.d.overrides.setdefault("jobs", {})["default_timeout"] = "1s"
        self.d.write_config()
        self.hup_and_wait("configuration reloaded")
        job = self.d.submit("sleep", {"seconds": 30})
        done = self.d.wait_for(job["id"], timeout=5)
        self.assertEqual(done["failure_reason"], "timed out after 1s (killed)", done)

    def test_bad_file_changes_nothing(self):
        # The bad file changes a reloadable value ahead of its error: no
        # part of it may apply (issue 14: a bad file that changed no value
        # could not tell "nothing applied" from "applied up to the error").
        self.d.overrides.setdefault("jobs", {})["default_timeout"] = "1s"
        self.d.write_config()
        with open(self.d.conf_path, "a") as f:
            f.write("\n[queue]\nwrokers = 3\n")
        self.hup_and_wait("reload failed")
        # The reason is in the ERROR line (a value's quotes escaped).
        self.assertIn('unknown key \\"wrokers\\"', self.d.log_text())
        self.assertTrue(self.d.alive())
        job = self.d.submit("sleep", {"seconds": 0.2})
        done = self.d.wait_for(job["id"], timeout=5)
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertEqual(done["timeout"], 10)

    def test_task_command_change_is_reported(self):
        """A [task.NAME] whose command changed is named in the log (so is
        one added and one removed), and its jobs keep running the old
        command: the spawner has its own copy of the task table."""
        new = "/bin/sh -c 'cat >/dev/null; echo \"{\\\"new\\\": true}\"'"
        self.d.overrides["task.exec_ok"] = {"command": new}
        self.d.overrides["task.exec_added"] = {"command": new}
        self.d.write_config()
        # And no [task.exec_env] section at all (write_config() separates
        # sections with an empty line).
        with open(self.d.conf_path) as f:
            text = f.read()
        text = "\n\n".join(sec for sec in text.split("\n\n")
                           if not sec.startswith("[task.exec_env]\n"))
        with open(self.d.conf_path, "w") as f:
            f.write(text)
        self.assertIn("[task.exec_ok]\ncommand = %s\n" % new, text)
        self.assertNotIn("[task.exec_env]", text)
        log = self.hup_and_wait("configuration reloaded")
        self.assertIn('configuration changed but needs a restart to apply '
                      'key="[task.exec_ok] command"\n', log)
        self.assertIn('key=[task.exec_added] change="task added"', log)
        self.assertIn('key=[task.exec_env] change="task removed"', log)
        # Only the tasks that changed are named.
        self.assertNotIn("[task.exec_error]", log)
        job = self.d.submit("exec_ok")
        done = self.d.wait_for(job["id"], timeout=10)
        self.assertEqual(done["status"], "COMPLETED", done)
        meta = self.d.result(job["id"])["metadata"]
        self.assertIs(meta.get("ok"), True, meta)  # ok.sh's, not {"new": true}
        self.assertNotIn("new", meta)

    def test_restart_only_key_is_reported(self):
        self.d.overrides.setdefault("queue", {})["workers"] = "3"
        self.d.write_config()
        log = self.hup_and_wait("configuration reloaded")
        self.assertIn("needs a restart", log)
        self.assertIn("[queue] workers", log)

    def test_every_restart_only_key_is_reported(self):
        # The list of keys a reload applies is the config table's; every
        # other key that changed is named - these were not, and their old
        # values silently stayed in force ([network] deny among them).
        self.d.overrides.setdefault("jobs", {})["max_attempts"] = "3"
        self.d.overrides.setdefault("network", {})["deny"] = "10.0.0.0/8"
        self.d.overrides.setdefault("sandbox", {})["allow_degraded_isolation"] = "true"
        self.d.overrides.setdefault("storage", {})["retention_days"] = "7"
        self.d.write_config()
        log = self.hup_and_wait("configuration reloaded")
        for key in ("[jobs] max_attempts", "[network] deny",
                    "[sandbox] allow_degraded_isolation", "[storage] retention_days"):
            self.assertIn('needs a restart to apply key="%s"' % key, log)
        self.assertNotIn("[queue] capacity", log)

    def test_file_a_start_would_refuse_is_refused(self):
        # A reload keeps the running configuration when the file would not
        # start valetd (else the next restart fails), and its ERROR line
        # says why - not a separate raw stderr line.
        self.d.overrides.setdefault("jobs", {})["default_timeout"] = "1s"
        self.d.overrides.setdefault("sandbox", {})["hide"] = "/etc"
        self.d.write_config()
        log = self.hup_and_wait("reload failed")
        line = [l for l in log.splitlines() if "reload failed" in l][0]
        self.assertIn("cannot be hidden from jobs", line)
        job = self.d.submit("sleep", {"seconds": 0.2})
        self.assertEqual(self.d.wait_for(job["id"], timeout=5)["timeout"], 10)
        self.d.overrides["sandbox"].pop("hide")
        self.d.write_config()
        with open(self.d.conf_path, "a") as f:
            f.write("\n[queue]\nwrokers = 3\n")
        log = self.hup_and_wait("reload failed")
        line = [l for l in log.splitlines() if "reload failed" in l][0]
        self.assertIn('unknown key \\"wrokers\\" in [queue]', line)


if __name__ == "__main__":
    unittest.main()
