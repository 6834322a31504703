"""Running work: demo tasks, pipelines, scheduling, cancelling, the queue
limit, exec tasks and graceful shutdown, against the real valetd."""

import contextlib
import hashlib
import os
import signal
import time
import unittest

from valetd import (ASAN, FINAL, Daemon, DaemonTestCase, below, fmt_ts, marker_pattern,
                    parse_ts, pgrep, proc_table, spawner_of)

# Scheduling latency allowed after run_at (ms). ASan builds are slower.
START_SLACK = 0.150 if ASAN else 0.050
# How late after its deadline a job may be killed and reaped (ms) while the
# daemon's loop stands still: the goal is 10 ms (issue 13) and it takes 1 to
# 5; the rest is room for a loaded test machine, which can keep any process
# off a CPU for tens of ms.
KILL_LATE_MS = 200 if ASAN else 100


def wait_until(pred, timeout, interval=0.01):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(interval)


class ExecTest(DaemonTestCase):
    config = {"queue": {"workers": "4"}}

    # --- demo tasks ---------------------------------------------------------
    def test_dummytask_returns_params(self):
        params = {"s": "text", "n": 42, "f": 1.5, "b": True, "nil": None, "a": [1, {"x": []}],
                  "u": "\u00e9\u4e2d\U0001f600"}
        job = self.d.submit("dummytask", params)
        done = self.d.wait_for(job["id"])
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertJob(done)
        self.assertNotIn("failure_reason", done)
        self.assertEqual(self.d.result(job["id"]), {"job_id": job["id"], "metadata": params})
        out = done["outcome"]
        self.assertEqual(out["exit_code"], 0, out)
        self.assertIsNone(out["signal"], out)
        self.assertIs(out["timed_out"], False, out)
        self.assertIs(out["oom_killed"], False, out)
        self.assertIsNone(out["seccomp_syscall"], out)
        self.assertGreater(out["pid"], 0, out)
        created, started = parse_ts(done["created_at"]), parse_ts(done["started_at"])
        completed = parse_ts(done["completed_at"])
        self.assertLessEqual(created, started)
        self.assertLessEqual(started, completed)

    def test_large_inputs(self):
        # Around each size at which the input changes path: inline in the
        # spawner request (4 KiB), a pre-forked child's pipe (64 KiB), a
        # grown pipe (up to 1 MiB), a memfd for a pipeline job's input.
        for size in (3000, 5000, 60000, 70000, 300000, 900000):
            with self.subTest(size=size):
                params = {"blob": "x" * size}
                job = self.d.submit("dummytask", params)
                done = self.d.wait_for(job["id"])
                self.assertEqual(done["status"], "COMPLETED", done)
                self.assertEqual(self.d.result(job["id"])["metadata"], params)
        big = {"blob": "y" * 600000}
        pl = self.d.submit_pipeline([
            {"name": "a", "task_name": "dummytask", "task_params": big},
            {"name": "b", "task_name": "echoprev", "use_previous_results": True}])
        done = self.d.wait_pipeline(pl["id"])
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertEqual(self.d.result(pl["jobs"][1]["id"])["metadata"], big)

    def test_dummytask_without_params(self):
        job = self.d.submit("dummytask")
        done = self.d.wait_for(job["id"])
        self.assertEqual(done["status"], "COMPLETED", done)
        res = self.d.result(job["id"])
        self.assertEqual(res["job_id"], job["id"])
        self.assertIn(res.get("metadata"), (None, {}), res)
        self.assertNotIn("error", res)

    def test_sha256(self):
        data = "hello world \u00e9 " * 100
        job = self.d.submit("sha256", {"data": data})
        done = self.d.wait_for(job["id"])
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertEqual(self.d.result(job["id"])["metadata"],
                         {"sha256": hashlib.sha256(data.encode()).hexdigest()})

    def test_failtask(self):
        job = self.d.submit("failtask", {"message": "boom: something broke"})
        done = self.d.wait_for(job["id"])
        self.assertEqual(done["status"], "FAILED", done)
        self.assertEqual(done["failure_reason"], "boom: something broke")
        self.assertJob(done)
        self.assertEqual(self.d.result(job["id"]),
                         {"job_id": job["id"], "error": "boom: something broke"})

    def test_sleep_fractional(self):
        job = self.d.submit("sleep", {"seconds": 0.3})
        done = self.d.wait_for(job["id"], timeout=5)
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertGreaterEqual(done["duration"], 295, done)
        self.assertLess(done["duration"], 2000, done)

    def test_many_jobs(self):
        ids = [self.d.submit("dummytask", {"i": i})["id"] for i in range(60)]
        done = self.d.wait_all(ids, timeout=30)
        for i, jid in enumerate(ids):
            self.assertEqual(done[jid]["status"], "COMPLETED", done[jid])
            self.assertEqual(self.d.result(jid)["metadata"], {"i": i})

    # --- pipelines ----------------------------------------------------------
    def test_pipeline_previous_results(self):
        params = {"x": 1, "s": "str", "l": [1, 2]}
        pl = self.d.submit_pipeline([
            {"name": "first", "task_name": "dummytask", "task_params": params},
            {"name": "second", "task_name": "echoprev", "use_previous_results": True},
            {"name": "third", "task_name": "echoprev", "use_previous_results": True},
        ])
        done = self.d.wait_pipeline(pl["id"])
        self.assertEqual(done["status"], "COMPLETED", done)
        jobs = self.d.get_json("/api/pipelines/%s/jobs" % pl["id"])["jobs"]
        for j in jobs:
            self.assertEqual(j["status"], "COMPLETED", j)
            self.assertJob(j)
            self.assertEqual(self.d.result(j["id"])["metadata"], params, j)
        # One after another, never overlapping.
        for a, b in zip(jobs, jobs[1:]):
            self.assertLessEqual(parse_ts(a["completed_at"]), parse_ts(b["started_at"]))
        self.assertAlmostEqual(parse_ts(done["started_at"]), parse_ts(jobs[0]["started_at"]),
                               delta=0.05)
        self.assertAlmostEqual(parse_ts(done["completed_at"]),
                               parse_ts(jobs[-1]["completed_at"]), delta=0.05)
        self.assertIs(type(done["duration"]), int)

    def test_pipeline_without_previous_results(self):
        pl = self.d.submit_pipeline([
            {"name": "first", "task_name": "dummytask", "task_params": {"a": 1}},
            {"name": "second", "task_name": "echoprev"},
        ])
        done = self.d.wait_pipeline(pl["id"])
        self.assertEqual(done["status"], "COMPLETED", done)
        second = self.d.job(pl["jobs"][1]["id"])
        self.assertEqual(second["status"], "COMPLETED", second)
        self.assertNotIn("use_previous_results", second)
        # echoprev without a previous result returns none: no metadata.
        self.assertEqual(self.d.result(second["id"]), {"job_id": second["id"]})

    def test_pipeline_failure_cancels_the_rest(self):
        pl = self.d.submit_pipeline([
            {"name": "ok", "task_name": "dummytask", "task_params": {"n": 0}},
            {"name": "bad", "task_name": "failtask", "task_params": {"message": "stage 2 broke"}},
            {"name": "never1", "task_name": "dummytask"},
            {"name": "never2", "task_name": "dummytask"},
        ])
        done = self.d.wait_pipeline(pl["id"])
        self.assertEqual(done["status"], "FAILED", done)
        jobs = self.d.get_json("/api/pipelines/%s/jobs" % pl["id"])["jobs"]
        self.assertEqual([j["status"] for j in jobs],
                         ["COMPLETED", "FAILED", "CANCELLED", "CANCELLED"], jobs)
        self.assertEqual(jobs[1]["failure_reason"], "stage 2 broke")
        for j in jobs[2:]:
            self.assertEqual(j["failure_reason"], "cancelled: job %s failed" % jobs[1]["id"])
            self.assertNotIn("started_at", j)
        self.assertAlmostEqual(parse_ts(done["completed_at"]), parse_ts(jobs[1]["completed_at"]),
                               delta=0.05)
        self.assertEqual(self.d.result(jobs[1]["id"]),
                         {"job_id": jobs[1]["id"], "error": "stage 2 broke"})
        r = self.d.get("/api/pipelines?status=failed")
        self.assertIn(pl["id"], [p["id"] for p in r.json["pipelines"]])

    # --- scheduling -----------------------------------------------------------
    def test_scheduled_job_starts_on_time(self):
        run_at = time.time() + 0.3
        job = self.d.submit("dummytask", {"when": "later"}, run_at=fmt_ts(run_at))
        self.assertIn(job["status"], ("PENDING", "SCHEDULED"))
        self.assertAlmostEqual(parse_ts(job["run_at"]), run_at, delta=1e-5)
        while True:
            cur = self.d.job(job["id"])
            if cur["status"] not in ("PENDING", "SCHEDULED"):
                break
            self.assertLess(time.time(), run_at + 2, cur)
            time.sleep(0.01)
        done = self.d.wait_for(job["id"])
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertIn("scheduled_at", done)
        started = parse_ts(done["started_at"])
        lateness = started - parse_ts(done["run_at"])
        # 1 ms of slack for timestamp rounding; never earlier than that.
        self.assertGreaterEqual(lateness, -0.001, done)
        self.assertLessEqual(lateness, START_SLACK, done)
        self.assertLessEqual(parse_ts(done["scheduled_at"]), started + 0.001, done)

    def test_run_at_in_the_past_runs_at_once(self):
        job = self.d.submit("dummytask", {"p": 1}, run_at=fmt_ts(time.time() - 3600))
        done = self.d.wait_for(job["id"], timeout=3)
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertLess(parse_ts(done["started_at"]) - parse_ts(done["created_at"]), 0.5, done)

    def test_scheduled_pipeline(self):
        run_at = time.time() + 0.3
        pl = self.d.submit_pipeline([
            {"name": "a", "task_name": "dummytask", "task_params": {"v": 7}},
            {"name": "b", "task_name": "echoprev", "use_previous_results": True},
        ], run_at=fmt_ts(run_at))
        self.assertAlmostEqual(parse_ts(pl["run_at"]), run_at, delta=1e-5)
        self.assertEqual(pl["jobs"][0]["run_at"], pl["run_at"])
        self.assertNotIn("run_at", pl["jobs"][1])
        self.assertEqual(self.d.pipeline(pl["id"])["status"], "PENDING")
        done = self.d.wait_pipeline(pl["id"], timeout=5)
        self.assertEqual(done["status"], "COMPLETED", done)
        first = self.d.job(pl["jobs"][0]["id"])
        lateness = parse_ts(first["started_at"]) - run_at
        self.assertGreaterEqual(lateness, -0.001, first)
        self.assertLessEqual(lateness, START_SLACK, first)
        self.assertEqual(self.d.result(pl["jobs"][1]["id"])["metadata"], {"v": 7})

    def test_many_scheduled_jobs_in_order(self):
        base = time.time() + 0.3
        offsets = [0.25, 0.05, 0.2, 0.0, 0.15, 0.1]
        ids = [self.d.submit("dummytask", run_at=fmt_ts(base + o))["id"] for o in offsets]
        done = self.d.wait_all(ids, timeout=5)
        for jid, o in zip(ids, offsets):
            late = parse_ts(done[jid]["started_at"]) - (base + o)
            self.assertGreaterEqual(late, -0.001, done[jid])
            self.assertLessEqual(late, START_SLACK, done[jid])

    # --- exec tasks ---------------------------------------------------------
    def test_exec_ok(self):
        job = self.d.submit("exec_ok", {"data": "abc"})
        done = self.d.wait_for(job["id"])
        self.assertEqual(done["status"], "COMPLETED", done)
        meta = self.d.result(job["id"])["metadata"]
        self.assertEqual(set(meta), {"ok", "input_bytes"}, meta)
        self.assertIs(meta["ok"], True)
        self.assertIs(type(meta["input_bytes"]), int)
        self.assertEqual(done["outcome"]["exit_code"], 0, done)

    def test_exec_environment(self):
        """A fixed environment. UTF-8 is LC_CTYPE's alone (not LANG's): the
        other categories of C.UTF-8 are C's, and LANG made every program
        that calls setlocale(LC_ALL, "") load a locale file for each."""
        job = self.d.submit("exec_env")
        done = self.d.wait_for(job["id"])
        self.assertEqual(done["status"], "COMPLETED", done)
        meta = self.d.result(job["id"])["metadata"]
        # PWD: the shell's own.
        self.assertEqual(set(meta["env"].split()), {"PATH", "HOME", "LC_CTYPE", "TMPDIR", "PWD"},
                         meta)
        self.assertEqual(meta["lc_ctype"], "C.UTF-8", meta)

    def test_exec_error(self):
        job = self.d.submit("exec_error")
        done = self.d.wait_for(job["id"])
        self.assertEqual(done["status"], "FAILED", done)
        self.assertEqual(done["failure_reason"], "exec task failed on purpose")
        self.assertEqual(self.d.result(job["id"])["error"], "exec task failed on purpose")

    def test_exec_exit_status(self):
        job = self.d.submit("exec_exit3")
        done = self.d.wait_for(job["id"])
        self.assertEqual(done["status"], "FAILED", done)
        self.assertEqual(done["failure_reason"], "exited with status 3: bad thing happened")
        self.assertEqual(done["outcome"]["exit_code"], 3, done)
        self.assertEqual(self.d.result(job["id"])["error"],
                         "exited with status 3: bad thing happened")

    def test_exec_malformed_result(self):
        job = self.d.submit("exec_garbage")
        done = self.d.wait_for(job["id"])
        self.assertEqual(done["status"], "FAILED", done)
        self.assertRegex(done["failure_reason"], r"^malformed result: .+")
        # A NUL byte after a number, which jansson's parser skips.
        job = self.d.submit("exec_nul")
        done = self.d.wait_for(job["id"])
        self.assertEqual(done["status"], "FAILED", done)
        self.assertEqual(done["failure_reason"],
                         "malformed result: the program's output is not valid JSON")


class ExecSlotTest(DaemonTestCase):
    """One worker: consecutive exec jobs run in the same slot (its uid, its
    cgroup, its network namespace). What the first one leaves - a file in
    /tmp, SysV IPC objects, a background process in a session of its own -
    the second one must not see, and each job has PID, mount, IPC and UTS
    namespaces other than the spawner's."""

    config = {"queue": {"workers": "1"}}

    def run_task(self, name):
        job = self.d.submit(name)
        done = self.d.wait_for(job["id"], timeout=10)
        self.assertEqual(done["status"], "COMPLETED", done)
        return self.d.result(job["id"])["metadata"]

    def test_nothing_reaches_the_next_job(self):
        marker = marker_pattern(self.d.markers["exec_leave_traces"])
        seen = []
        for _ in range(2):
            left = self.run_task("exec_leave_traces")
            self.assertIs(left["wrote"], True, left)
            # The background process died with its job, on the host too.
            self.assertEqual(wait_until(lambda: not pgrep(marker), 5), True, pgrep(marker))
            look = self.run_task("exec_look_traces")
            self.assertEqual(look["tmp"], "", look)
            self.assertEqual(look["ipc"], 0, look)
            self.assertNotIn("sleep", look["comms"].split(), look)
            seen += [left["ns"].split(), look["ns"].split()]
        # Not the spawner's namespaces (whose view every job starts from).
        # (A namespace's number is free again once it is gone: jobs one
        # after the other may well show the same.)
        spawner = spawner_of(self.d)
        for i, kind in enumerate(("pid", "mnt", "ipc", "uts")):
            own = os.readlink("/proc/%d/ns/%s" % (spawner, kind))
            ids = [s[i] for s in seen]
            self.assertTrue(all(x.startswith(kind + ":[") for x in ids), ids)
            self.assertNotIn(own, ids, "a job in the spawner's %s namespace" % kind)


class CancelTest(DaemonTestCase):
    """One worker, so that a job can be held in the queue behind another."""

    config = {"queue": {"workers": "1"}}

    def blocker(self, task="sleep", params=None):
        job = self.d.submit(task, {"seconds": 30} if params is None else params, timeout=60)
        return self.d.wait_for(job["id"], "IN_PROGRESS", timeout=5)

    def cancel(self, kind, obj_id):
        r = self.d.post("/api/%s/%s/cancel" % (kind, obj_id))
        self.assertIn(r.status, (200, 202, 204), r)
        return r

    def test_cancel_queued_then_running(self):
        blocker = self.blocker()
        queued = self.d.submit("dummytask", {"q": 1})
        time.sleep(0.1)
        self.assertEqual(self.d.job(queued["id"])["status"], "PENDING")
        self.cancel("jobs", queued["id"])
        got = self.d.job(queued["id"])
        self.assertEqual(got["status"], "CANCELLED", got)
        self.assertEqual(got["failure_reason"], "cancelled by request")
        self.assertNotIn("started_at", got)

        t0 = time.monotonic()
        self.cancel("jobs", blocker["id"])
        got = self.d.wait_for(blocker["id"], FINAL, timeout=2)
        self.assertLess(time.monotonic() - t0, 1.0)
        self.assertEqual(got["status"], "CANCELLED", got)
        self.assertEqual(got["failure_reason"], "cancelled by request")
        self.assertEqual(got["outcome"]["signal"], "SIGKILL", got)
        self.assertIsNone(got["outcome"]["exit_code"], got)
        self.assertIs(got["outcome"]["timed_out"], False, got)
        # The cancelled queued job never ran, and the worker is free again.
        self.assertNotIn("started_at", self.d.job(queued["id"]))
        nxt = self.d.submit("dummytask")
        self.assertEqual(self.d.wait_for(nxt["id"], timeout=3)["status"], "COMPLETED")

    def test_cancel_pipeline(self):
        pl = self.d.submit_pipeline([
            {"name": "long", "task_name": "sleep", "task_params": {"seconds": 30}, "timeout": 60},
            {"name": "after", "task_name": "dummytask"},
        ])
        self.d.wait_for(pl["jobs"][0]["id"], "IN_PROGRESS", timeout=5)
        self.cancel("pipelines", pl["id"])
        done = self.d.wait_pipeline(pl["id"], timeout=2)
        self.assertEqual(done["status"], "CANCELLED", done)
        first = self.d.wait_for(pl["jobs"][0]["id"], timeout=2)
        self.assertEqual(first["status"], "CANCELLED", first)
        self.assertEqual(first["failure_reason"], "cancelled by request")
        second = self.d.job(pl["jobs"][1]["id"])
        self.assertEqual(second["status"], "CANCELLED", second)
        self.assertNotIn("started_at", second)

    def test_delete_running_job_kills_it(self):
        marker = self.d.markers["exec_sleep"]
        job = self.blocker("exec_sleep", {})
        self.assertTrue(wait_until(lambda: pgrep(marker_pattern(marker)), 3),
                        "the exec task's sleep never showed up")
        t0 = time.monotonic()
        self.assertNoBody(self.d.delete("/api/jobs/" + job["id"]))
        self.assertError(self.d.get("/api/jobs/" + job["id"]), 404,
                         "job with ID: %s not found" % job["id"])
        self.assertEqual(wait_until(lambda: not pgrep(marker_pattern(marker)), 2), True,
                         "the deleted job's process is still alive")
        self.assertLess(time.monotonic() - t0, 2.0)
        nxt = self.d.submit("dummytask")
        self.assertEqual(self.d.wait_for(nxt["id"], timeout=3)["status"], "COMPLETED")

    def test_delete_running_pipeline(self):
        pl = self.d.submit_pipeline([
            {"name": "long", "task_name": "sleep", "task_params": {"seconds": 30}, "timeout": 60},
            {"name": "after", "task_name": "dummytask"},
        ])
        self.d.wait_for(pl["jobs"][0]["id"], "IN_PROGRESS", timeout=5)
        self.assertNoBody(self.d.delete("/api/pipelines/" + pl["id"]))
        self.assertError(self.d.get("/api/pipelines/" + pl["id"]), 404)
        for j in pl["jobs"]:
            self.assertError(self.d.get("/api/jobs/" + j["id"]), 404)
        nxt = self.d.submit("dummytask")
        self.assertEqual(self.d.wait_for(nxt["id"], timeout=3)["status"], "COMPLETED")


def job_pids(daemon_pid):
    """The processes of running jobs: below the daemon's spawner, but not a
    pre-forked child still waiting for its input, nor an init, a slot's
    forker or a network helper (a job's init goes when its task does)."""
    table = proc_table()
    pids = set()
    for spawner in [p for p, v in table.items()
                    if v[0] == daemon_pid and v[3] == "valetd-spawner"]:
        pids |= below(table, spawner)

    def waiting(pid):
        try:
            with open("/proc/%d/wchan" % pid) as f:
                return f.read().strip() in ("pipe_read", "anon_pipe_read")
        except OSError:
            return True  # gone

    return {p for p in pids
            if table[p][3] not in ("valetd-init", "valetd-spawner", "valetd-forker", "slirp4netns")
            and not (table[p][3] == "valetd-job" and waiting(p))}


class StalledLoopTest(DaemonTestCase):
    """Kills do not depend on the daemon's event loop (issue 13): with
    valetd stopped (SIGSTOP, as a loop stuck in a long callback would be),
    the spawner still kills a job at its deadline, on its own clock, and
    valetd, once it goes on, records a timeout. A pipeline's jobs run in one
    child whose job boundaries only valetd sees: the spawner then kills by
    a bound (the jobs' timeouts added up), never earlier."""

    config = {"queue": {"workers": "2"}}

    @contextlib.contextmanager
    def loop_stopped(self):
        pid = self.d.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            self.assertTrue(wait_until(lambda: proc_table().get(pid, (0, ""))[1] == "T", 2),
                            "valetd did not stop")
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def running(self):
        return job_pids(self.d.proc.pid)

    def assertTimedOut(self, job, after, wall_ms=None):
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual(job["failure_reason"], "timed out after %s (killed)" % after, job)
        self.assertIs(job["outcome"]["timed_out"], True, job)
        if wall_ms is not None:
            # The wall time ends when the spawner reaped the job, not when
            # the loop came back.
            late = job["outcome"]["wall_ms"] - wall_ms
            self.assertTrue(0 <= late <= KILL_LATE_MS,
                            "killed %d ms after the deadline: %s" % (late, job))

    def test_exec_job_killed_on_time(self):
        marker = self.d.markers["exec_sleep"]
        job = self.d.submit("exec_sleep", {}, timeout=0.3)
        self.assertTrue(wait_until(lambda: pgrep(marker_pattern(marker)), 5),
                        "the exec task's sleep never showed up")
        time.sleep(0.1)
        with self.loop_stopped():
            gone = wait_until(lambda: not pgrep(marker_pattern(marker)), 1.0)
            self.assertTrue(gone, "the job outlived its deadline while valetd was stopped")
        self.assertTimedOut(self.d.wait_for(job["id"], timeout=5), "300ms", 300)

    def test_c_job_killed_on_time(self):
        # A C task goes to a pre-forked child: its deadline comes with its input.
        job = self.d.submit("sleep", {"seconds": 30}, timeout=0.3)
        self.d.wait_for(job["id"], "IN_PROGRESS", timeout=5)
        self.assertTrue(wait_until(self.running, 2), "the job's process never showed up")
        time.sleep(0.1)
        with self.loop_stopped():
            gone = wait_until(lambda: not self.running(), 1.0)
            self.assertTrue(gone, "the job outlived its deadline while valetd was stopped")
        self.assertTimedOut(self.d.wait_for(job["id"], timeout=5), "300ms", 300)

    def test_pipeline_killed_by_its_bound(self):
        # valetd stops while the first job runs, so it never sees the second
        # start: the spawner kills by the bound, 0.5 + 0.3 s (+ 20 ms) after
        # the first job's start - the second job's own deadline is 0.5 s
        # earlier, the first job's (0.5 s) would kill the second too early.
        pl = self.d.submit_pipeline([
            {"name": "first", "task_name": "sleep", "task_params": {"seconds": 0.2},
             "timeout": 0.5},
            {"name": "second", "task_name": "sleep", "task_params": {"seconds": 30},
             "timeout": 0.3}])
        first, second = pl["jobs"][0]["id"], pl["jobs"][1]["id"]
        self.d.wait_for(first, "IN_PROGRESS", timeout=5)
        with self.loop_stopped():
            t0 = time.monotonic()
            self.assertTrue(wait_until(self.running, 0.15), "the pipeline never ran")
            gone = wait_until(lambda: not self.running(), 2.0)
            elapsed = time.monotonic() - t0
            self.assertTrue(gone, "the pipeline outlived its bound while valetd was stopped")
            self.assertGreater(elapsed, 0.7, "killed before the bound")
            self.assertLess(elapsed, 0.82 + KILL_LATE_MS / 1000.0, "killed after the bound")
        done = self.d.wait_pipeline(pl["id"], timeout=5)
        self.assertEqual(done["status"], "FAILED", done)
        self.assertEqual(self.d.job(first)["status"], "COMPLETED")
        self.assertTimedOut(self.d.job(second), "300ms")

    def test_pipeline_within_its_timeouts_survives_a_stop(self):
        # valetd stands still from 0.1 s to 0.8 s: over the boundary (0.2 s)
        # and the first job's deadline (0.5 s). Neither the spawner nor
        # valetd's late timer may take that for a timeout of the second job.
        pl = self.d.submit_pipeline([
            {"name": "first", "task_name": "sleep", "task_params": {"seconds": 0.2},
             "timeout": 0.5},
            {"name": "second", "task_name": "sleep", "task_params": {"seconds": 0.9},
             "timeout": 1.5}])
        self.d.wait_for(pl["jobs"][0]["id"], "IN_PROGRESS", timeout=5)
        time.sleep(0.1)
        with self.loop_stopped():
            time.sleep(0.7)
            self.assertTrue(self.running(), "the pipeline was killed while valetd was stopped")
        done = self.d.wait_pipeline(pl["id"], timeout=5)
        self.assertEqual(done["status"], "COMPLETED", done)
        for j in pl["jobs"]:
            self.assertEqual(self.d.job(j["id"])["status"], "COMPLETED")


class KillLatencyTest(DaemonTestCase):
    """A job is killed a few milliseconds after its deadline (README: kill to
    reaped takes about 2 ms; make bench measures p50 and p99): of jobs
    that sleep past a 200 ms timeout - C tasks and exec tasks, two at a
    time - the median is reaped within KILL_MEDIAN_MS of the deadline and
    none later than KILL_LATE_MS. outcome.wall_ms runs from the job's start
    (when its deadline is armed) to the spawner's wait4()."""

    config = {"queue": {"workers": "2"}}
    KILL_MEDIAN_MS = 20 if ASAN else 10

    def test_kill_latency(self):
        ids = []
        for _ in range(6):
            ids.append(self.d.submit("sleep", {"seconds": 30}, timeout=0.2)["id"])
            ids.append(self.d.submit("exec_sleep", {}, timeout=0.2)["id"])
        done = self.d.wait_all(ids, timeout=30)
        late = []
        for jid in ids:
            job = done[jid]
            self.assertEqual(job["failure_reason"], "timed out after 200ms (killed)", job)
            self.assertIs(job["outcome"]["timed_out"], True, job)
            late.append(job["outcome"]["wall_ms"] - 200)
        late.sort()
        self.assertGreaterEqual(late[0], 0, late)
        self.assertLessEqual(late[len(late) // 2], self.KILL_MEDIAN_MS, late)
        self.assertLessEqual(late[-1], KILL_LATE_MS, late)

    def test_killed_task_is_accounted(self):
        """At the deadline the spawner kills the task and its init, and
        reaps the task itself, its parent, so the CPU time it spun is in
        the outcome (the kernel reaps the children of a killed init
        unaccounted: the task must not be one of them)."""
        ids = [self.d.submit(t, {}, timeout=1)["id"] for t in ("hostile_spin", "exec_spin")]
        done = self.d.wait_all(ids, timeout=20)
        for jid in ids:
            job = done[jid]
            self.assertEqual(job["failure_reason"], "timed out after 1s (killed)", job)
            # A spinning task on a busy 2-CPU machine still gets a good share.
            self.assertGreaterEqual(job["outcome"]["cpu_ms"], 100, job)


class QueueFullTest(DaemonTestCase):
    config = {"queue": {"workers": "1", "capacity": "2"}}

    def test_queue_full(self):
        blocker = self.d.submit("sleep", {"seconds": 30}, timeout=60)
        self.d.wait_for(blocker["id"], "IN_PROGRESS", timeout=5)
        queued = [self.d.submit("dummytask", {"i": i})["id"] for i in range(2)]
        r = self.d.post("/api/jobs", {"name": "one too many", "task_name": "dummytask"})
        self.assertError(r, 503, "job queue is full - try again later")
        r = self.d.post("/api/pipelines", {"name": "p", "jobs": [
            {"name": "a", "task_name": "dummytask"}, {"name": "b", "task_name": "dummytask"}]})
        self.assertError(r, 503, "job queue is full - try again later")
        # Nothing was stored for the refused work.
        ids = [j["id"] for j in self.d.get_json("/api/jobs")["jobs"]]
        self.assertEqual(ids, [blocker["id"]] + queued)
        self.assertEqual(self.d.get_json("/api/pipelines")["pipelines"], [])
        # Free the worker: the queue drains and takes new work again.
        self.assertIn(self.d.post("/api/jobs/%s/cancel" % blocker["id"]).status,
                      (200, 202, 204))
        done = self.d.wait_all(queued, timeout=5)
        self.assertEqual({j["status"] for j in done.values()}, {"COMPLETED"})
        job = self.d.submit("dummytask")
        self.assertEqual(self.d.wait_for(job["id"])["status"], "COMPLETED")


class ShutdownTest(unittest.TestCase):
    def test_idle_shutdown(self):
        d = Daemon().start()
        try:
            rc, elapsed = d.terminate()
            d.check_exit(rc)
            self.assertLess(elapsed, 2.0)
        finally:
            d.cleanup()

    def test_shutdown_grace_kills_running_job(self):
        d = Daemon({"queue": {"shutdown_grace": "1s"}}).start()
        try:
            job = d.submit("sleep", {"seconds": 30}, timeout=60)
            d.wait_for(job["id"], "IN_PROGRESS", timeout=5)
            offset = d.log_size()
            rc, elapsed = d.terminate(timeout=10)
            d.check_exit(rc)
            # The grace period is honoured, then the job is killed at once.
            self.assertGreaterEqual(elapsed, 0.9)
            self.assertLess(elapsed, 3.0)
            after = d.log_text()[offset:]
            self.assertIn(job["id"], after, "no log line after SIGTERM names the job:\n"
                          + after)
        finally:
            d.cleanup()

    def test_second_stop_signal_kills_at_once(self):
        # An operator who presses Ctrl-C twice (or kills again) means now:
        # the second signal ends the grace period, and the job's line says
        # why it was killed - not that a grace period ran out.
        d = Daemon({"queue": {"shutdown_grace": "30s"}}).start()
        try:
            job = d.submit("sleep", {"seconds": 30}, timeout=60)
            d.wait_for(job["id"], "IN_PROGRESS", timeout=5)
            offset = d.log_size()
            start = time.monotonic()
            d.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            self.assertIsNone(d.proc.poll(), "exited before the grace period")
            d.proc.send_signal(signal.SIGINT)
            rc = d.proc.wait(timeout=10)
            d.check_exit(rc)
            self.assertLess(time.monotonic() - start, 5.0)
            after = d.log_text()[offset:]
            self.assertIn("second stop signal", after)
            line = [l for l in after.splitlines() if job["id"] in l]
            self.assertTrue(line, after)
            self.assertIn("valetd was told to stop at once", line[-1])
        finally:
            d.cleanup()

    def test_other_signals_do_not_stop_it(self):
        # A log rotation's SIGUSR1, or `systemctl kill -s USR1` to the
        # whole service (valetd and its spawner alike), kills nothing.
        d = Daemon().start()
        try:
            spawner = spawner_of(d)
            for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
                d.proc.send_signal(sig)
            for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
                os.kill(spawner, sig)
            time.sleep(0.5)
            self.assertIsNone(d.proc.poll(), "valetd died of a signal")
            self.assertEqual(spawner_of(d), spawner)
            job = d.submit("dummytask")
            self.assertEqual(d.wait_for(job["id"])["status"], "COMPLETED")
            self.assertIn("signal received: ignored", d.log_text())
            rc, _ = d.terminate()
            d.check_exit(rc)
        finally:
            d.cleanup()

    def test_shutdown_waits_for_short_job(self):
        # A job that ends within the grace period finishes normally; the
        # daemon exits as soon as it is done, not at the end of the grace.
        d = Daemon({"queue": {"shutdown_grace": "5s"}}).start()
        try:
            job = d.submit("sleep", {"seconds": 0.5}, timeout=10)
            d.wait_for(job["id"], "IN_PROGRESS", timeout=5)
            rc, elapsed = d.terminate(timeout=10)
            d.check_exit(rc)
            self.assertLess(elapsed, 2.5)
        finally:
            d.cleanup()


class SharedCodeTest(DaemonTestCase):
    """Each code mapping of the spawner has one anonymous page
    (sbx_share_code()), so that fork() copies the mapping's page-table
    entries into every job child instead of leaving the child to fault its
    code in again. With the default isolation the spawner enters the jobs'
    view, whose /proc is read-only: it must have done it before."""

    def code_anon_kb(self):
        anon, current = {}, None
        with open("/proc/%d/smaps" % spawner_of(self.d)) as f:
            for line in f:
                fields = line.split()
                if "-" in fields[0] and len(fields) >= 6 and fields[1] == "r-xp":
                    current = os.path.basename(fields[5])
                elif "-" in fields[0]:
                    current = None
                elif current and fields[0] == "Anonymous:":
                    anon[current] = int(fields[1])
        return anon

    def test_code_mappings_have_an_anonymous_page(self):
        anon = self.code_anon_kb()
        for lib in ("libc.so", "libjansson.so"):
            kb = [v for name, v in anon.items() if name.startswith(lib)]
            self.assertEqual(len(kb), 1, (lib, anon))
            self.assertGreaterEqual(kb[0], 4, (lib, anon))


class SharedCodeSeccompOnlyTest(SharedCodeTest):
    config = {"sandbox": {"namespaces": "false", "cgroups": "false"}}


if __name__ == "__main__":
    unittest.main()
