"""PostgreSQL-specific integration tests (issues 3 and 14): what is
accepted is durable and what is answered is committed. Durability, crash
recovery (a daemon SIGKILLed mid-run: its jobs are rescued and run again),
no 202, PATCH or cancel answer before the commit (CommitBefore202Test,
which holds commits back with an advisory lock a deferred trigger takes),
a database restart, a database that is down at startup or hangs (submit
deadlines: a 503 in time, and the job never exists), a slow database, a
database that refuses writes for now (read-only) or is frozen
(DatabaseRefusesTest).
test_pg_cluster.py has several nodes on one database, test_pg_schema.py
the schema, its migrations and the operator views; README's "What the
PostgreSQL claims rest on" maps each claim to its test. The harness is
pgcase.py's. Run with tests/run_tests.sh (suite test_pg@postgres), which
starts the throwaway server these tests need.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

import valetd
from valetd import FINAL, fmt_ts, pg_restart
# tearDownModule: unittest calls it, to remove the daemons' logs.
from pgcase import (  # noqa: F401
    tearDownModule, OPEN, STORAGE_DOWN, FAR, tmp_dirs, PgTestCase,
    RUNNING_ON, sleep_body, CommitHold, LateDaemon, pipeline_body,
    finished_ids, url_with_host)


def _json(v):
    return json.dumps(v)


class DurabilityTest(PgTestCase):
    def test_submit_is_in_the_database_at_202(self):
        d = self.start({"queue": {"workers": "2"}})
        run_at = fmt_ts(time.time() + FAR)
        bodies = [
            {"name": "durable-1", "description": "first", "task_name": "dummytask",
             "task_params": {"url": "x.example", "n": 3, "nested": {"a": [1, 2]}},
             "timeout": 7},
            {"name": "durable-2", "task_name": "sleep", "task_params": {"seconds": 0.2}},
            {"name": "durable-3", "task_name": "dummytask", "run_at": run_at, "timeout": 1.5},
        ]
        for body in bodies:
            with self.subTest(job=body["name"]):
                r = d.post("/api/jobs", body)
                self.assertEqual(r.status, 202, r)
                job = r.json
                # Right after the 202: the row must already be committed.
                rows = d.sql(
                    "SELECT id, name, description, task_name, status, timeout_ms, "
                    "task_params = :'params'::jsonb, created_at = :'created'::timestamptz, "
                    "run_at = :'run_at'::timestamptz, run_at IS NULL "
                    "FROM jobs WHERE id = :'id'",
                    id=job["id"], params=_json(job.get("task_params")),
                    created=job["created_at"], run_at=job.get("run_at") or run_at)
                self.assertEqual(len(rows), 1, "job %s answered 202 but is not in the "
                                 "jobs table: %s" % (job["id"], rows))
                jid, name, desc, task, status, timeout_ms, params_eq, created_eq, \
                    run_at_eq, run_at_null = rows[0]
                self.assertEqual(jid, job["id"])
                self.assertEqual(name, body["name"])
                self.assertEqual(desc, body.get("description"))
                self.assertEqual(task, body["task_name"])
                if "run_at" in body:
                    self.assertIn(status, ("PENDING", "SCHEDULED"), rows)
                    self.assertEqual(run_at_eq, "t", "run_at %s vs row %s" % (run_at, rows))
                else:
                    self.assertIn(status, ("PENDING", "IN_PROGRESS", "COMPLETED"), rows)
                    self.assertEqual(run_at_null, "t", rows)
                # Default timeout of the test config: 10s.
                self.assertEqual(int(timeout_ms), int(body.get("timeout", 10) * 1000), rows)
                if "task_params" in body:
                    self.assertEqual(params_eq, "t", "task_params %s vs row %s"
                                     % (body["task_params"], rows))
                self.assertEqual(created_eq, "t", "created_at %s vs row %s"
                                 % (job["created_at"], d.sql("SELECT created_at FROM jobs "
                                                             "WHERE id = :'id'", id=jid)))
        # And what ran is there with its result, same as the API says.
        done = d.wait_for(d.sql("SELECT id FROM jobs WHERE name = 'durable-1'")[0][0],
                          "COMPLETED", timeout=5)
        rows = d.sql("SELECT r.metadata = :'m'::jsonb, j.status, j.started_at = "
                     ":'s'::timestamptz, j.completed_at = :'c'::timestamptz FROM jobs j "
                     "JOIN results r ON r.job_id = j.id WHERE j.id = :'id'", id=done["id"],
                     m=_json(bodies[0]["task_params"]), s=done["started_at"],
                     c=done["completed_at"])
        self.assertEqual(rows, [["t", "COMPLETED", "t", "t"]], (done, rows))


class CommitBefore202Test(PgTestCase):
    """Issue 14: "the 202 is sent after the INSERT committed", made
    deterministic. Timing hid an answer sent before the commit; here the
    commit itself is held back (CommitHold) for as long as the test needs,
    with submit_timeout far above it."""

    CONFIG = {"queue": {"workers": "2", "capacity": "100000"},
              "storage": {"submit_timeout": "30s"}}

    def start_held(self):
        d = self.start(self.CONFIG)
        warm = d.submit("dummytask", name="warm-up")
        d.wait_for(warm["id"], "COMPLETED", timeout=5)
        hold = CommitHold(d)
        self.addCleanup(hold.release)
        return d, hold

    def test_no_202_before_the_commit(self):
        d, hold = self.start_held()
        hold.hold()
        out = {"job": [], "pipeline": []}

        def post(kind, path, body):
            try:
                r = d.post(path, body)
                # The row must be there when the answer is.
                n = int(d.sql("SELECT count(*) FROM %ss WHERE name = :'n'" % kind,
                              n=body["name"])[0][0])
                out[kind].append((r, n, time.monotonic()))
            except Exception as e:  # noqa: BLE001 - reported below
                out[kind].append((e, None, time.monotonic()))
            finally:
                d.client.close()

        threads = [
            threading.Thread(target=post, args=("job", "/api/jobs", {
                "name": "held-job", "task_name": "dummytask"})),
            threading.Thread(target=post, args=("pipeline", "/api/pipelines", {
                "name": "held-pipeline", "jobs": [
                    {"name": "held-pj0", "task_name": "dummytask"},
                    {"name": "held-pj1", "task_name": "dummytask"}]}))]
        threads[0].start()
        # The INSERT ran and the commit waits for the lock.
        hold.wait_waiters(1)
        threads[1].start()
        time.sleep(1.0)
        self.assertEqual(out, {"job": [], "pipeline": []},
                         "answered while the commit was held back")
        self.assertEqual(self.count(d, "name LIKE 'held-%'"), 0)
        t_release = time.monotonic()
        hold.release()
        for t in threads:
            t.join(20)
        for kind in out:
            self.assertEqual(len(out[kind]), 1, out)
            r, n, t = out[kind][0]
            self.assertNotIsInstance(r, Exception, r)
            self.assertEqual(r.status, 202, r)
            self.assertGreaterEqual(t, t_release)
            self.assertEqual(n, 1, "%s answered %r, its row was not there" % (kind, r))
        self.assertEqual(self.count(d, "name LIKE 'held-%'"), 3)
        self.assertEqual(d.sql("SELECT count(*) FROM pipelines WHERE name = 'held-pipeline'"),
                         [["1"]])

    def test_patch_and_cancel_answered_after_the_commit(self):
        # README, "Durable submit": a PATCH or cancel is answered once its
        # change is committed, so a read that follows sees it.
        d, hold = self.start_held()
        parked = [d.submit("dummytask", name="parked-%d" % i,
                           run_at=fmt_ts(time.time() + FAR)) for i in range(2)]
        for what, method, path, body in (
                ("PATCH", d.patch, "/api/jobs/" + parked[0]["id"], {"name": "renamed"}),
                ("cancel", d.post, "/api/jobs/%s/cancel" % parked[1]["id"], None)):
            with self.subTest(what):
                hold.hold()
                out = []

                def call():
                    try:
                        out.append(method(path, body))
                    finally:
                        d.client.close()

                t = threading.Thread(target=call)
                t.start()
                hold.wait_waiters(1)
                time.sleep(0.5)
                self.assertEqual(out, [], "%s answered before its commit" % what)
                hold.release()
                t.join(20)
                self.assertEqual(len(out), 1, out)
                self.assertIn(out[0].status, (200, 204), out)
        # Read at once, through the API: both changes are there.
        self.assertEqual(d.job(parked[0]["id"])["name"], "renamed")
        self.assertEqual(d.job(parked[1]["id"])["status"], "CANCELLED")

    def test_sigkill_with_submits_in_flight(self):
        # Submissions flow from four threads; the test holds the commits
        # back, kills valetd with SIGKILL while transactions wait at their
        # commit, and makes those never commit (the worst case for an
        # answer sent before the commit). Every job answered 202 must be in
        # the table.
        d, hold = self.start_held()
        answers = []  # (name, status, id)
        lock = threading.Lock()
        stop = threading.Event()

        def submit(k):
            i = 0
            try:
                while not stop.is_set():
                    name = "k9-%d-%d" % (k, i)
                    i += 1
                    with lock:
                        answers.append([name, None, None])
                        me = answers[-1]
                    r = d.post("/api/jobs", {"name": name, "task_name": "dummytask"})
                    me[1:] = [r.status, (r.json or {}).get("id")]
            except OSError:
                pass  # the daemon is gone
            finally:
                d.client.close()

        threads = [threading.Thread(target=submit, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while sum(1 for a in answers if a[1] == 202) < 50:
            self.assertLess(time.monotonic(), deadline, "no submissions answered")
            time.sleep(0.01)
        hold.hold()
        hold.wait_waiters(1)
        time.sleep(0.3)
        self.assertEqual(d.kill(signal.SIGKILL), -signal.SIGKILL)
        stop.set()
        for t in threads:
            t.join(20)
        dropped = hold.drop_waiters()
        hold.release()
        accepted = [a for a in answers if a[1] == 202]
        unanswered = [a for a in answers if a[1] is None]
        other = [a for a in answers if a[1] not in (202, None)]
        self.assertEqual(other, [])
        self.assertTrue(unanswered, "no submission was in flight at the kill")
        stored = {r[0]: r[1] for r in d.sql("SELECT name, id FROM jobs")}
        self.assertNoneBad([a for a in accepted if stored.get(a[0]) != a[2]],
                           "jobs answered 202 are not in the table (name, status, id)")
        sys.stderr.write("[%d answered 202, %d in flight at the kill, %s transaction(s) "
                         "waiting at their commit dropped] "
                         % (len(accepted), len(unanswered), dropped))


class CrashRecoveryTest(PgTestCase):
    def test_sigkill_and_restart_loses_nothing(self):
        n = 1000
        d = self.start({"queue": {"workers": "2", "capacity": "100000"}})
        # Short jobs, and every 100th a longer one, to be sure to kill the
        # node while a job runs.
        ids = self.submit_many(
            [d], n, lambda i: sleep_body(0.6 if i % 100 == 99 else 0.005 + (i % 6) * 0.001,
                                         "crash-%d" % i), threads=4)
        self.assertEqual(len(set(ids)), n)
        self.wait_sql(d, "SELECT count(*) FROM jobs WHERE " + RUNNING_ON,
                      lambda rows: int(rows[0][0]) > 0, 10, "a job running", interval=0.01,
                      node=d.node_id, explain=lambda: self.queue_state(d))
        self.assertEqual(d.kill(signal.SIGKILL), -signal.SIGKILL)
        unfinished = self.count(d, OPEN)
        # Frozen now: nobody else works on this schema.
        running = {r[0] for r in d.sql("SELECT id FROM jobs WHERE status = 'IN_PROGRESS'")}
        self.assertTrue(running, "no job IN_PROGRESS right after the kill")
        self.assertLessEqual(len(running), 2, "more jobs IN_PROGRESS than workers: %s"
                             % running)
        self.assertGreater(unfinished, len(running), "every job finished before the kill")

        d2 = self.start(daemon=d.clone())
        m = self.wait_log(d2, r"node registered .*released_from_earlier_run=(\d+)", 5)
        self.assertGreater(int(m.group(1)), 0, "restart released nothing although %d jobs "
                           "were unfinished at the kill:\n%s" % (unfinished, d2.log_tail()))
        self.wait_final(d2, 60, "jobs after the restart")

        rows = d2.sql("SELECT j.id, j.status, j.failure_reason, j.claimed_by, "
                      "r.job_id IS NOT NULL, (SELECT count(*) FROM attempts a "
                      "WHERE a.job_id = j.id) FROM jobs j "
                      "LEFT JOIN results r ON r.job_id = j.id")
        by_id = {}
        for row in rows:
            self.assertNotIn(row[0], by_id, "job %s twice in the table" % row[0])
            by_id[row[0]] = row
        missing = [i for i in ids if i not in by_id]
        self.assertNoneBad(missing, "accepted jobs are not in the database")
        bad = []
        failed = set()
        for jid, status, reason, claimed, has_result, natt in rows:
            if status == "FAILED":
                failed.add(jid)
                if "restarted while the job was running" not in (reason or ""):
                    bad.append((jid, status, reason, "wrong reason"))
            elif status != "COMPLETED":
                bad.append((jid, status, reason, "not COMPLETED/FAILED"))
            if has_result != "t":
                bad.append((jid, status, reason, "no results row"))
            # max_attempts = 1: at most one attempt, and a failed run is one.
            if int(natt) > 1 or (status == "FAILED" and int(natt) != 1):
                bad.append((jid, status, reason, "%s attempts rows" % natt))
            if claimed is not None:
                bad.append((jid, status, reason, "still claimed by %s" % claimed))
        self.assertNoneBad(bad, "bad jobs (id, status, reason, what)", logs=True)
        # Exactly the jobs that were running at the kill failed.
        self.assertEqual(failed, running, "FAILED jobs vs jobs IN_PROGRESS at the kill")
        # The API agrees with the table.
        for jid in list(failed)[:2] + ids[:3] + ids[-3:]:
            self.assertEqual(d2.job(jid)["status"], by_id[jid][1], jid)
        sys.stderr.write("[%d of %d unfinished at the kill, %s released, %d failed] "
                         % (unfinished, n, m.group(1), len(failed)))

    def test_node_dead_within_the_lazy_start_runs_the_job_again(self):
        # README, "Durable submit": a job's start is written within 0.1 s;
        # the price is that a job whose node dies in that first 0.1 s runs
        # again. SIGKILL right after the 202 of a job the node starts at
        # once: the table still says PENDING (claimed by the dead node);
        # the node restarted runs it again, as its first attempt.
        d = self.start({"queue": {"workers": "2"}})
        warm = d.submit("dummytask")
        d.wait_for(warm["id"], "COMPLETED", timeout=5)
        job = d.submit("sleep", {"seconds": 1}, timeout=30, name="lazy-start")
        self.assertEqual(d.kill(signal.SIGKILL), -signal.SIGKILL)
        rows = d.sql("SELECT status, claimed_by, attempt FROM jobs WHERE id = :'id'",
                     id=job["id"])
        if rows[0][0] != "PENDING":
            self.skipTest("host: the start was written before the kill (a slow VM): %s" % rows)
        self.assertEqual(rows, [["PENDING", d.node_id, "0"]])
        d2 = self.start(daemon=d.clone())
        done = d2.wait_for(job["id"], FINAL, timeout=10)
        self.assertEqual((done["status"], done.get("failure_reason")), ("COMPLETED", None),
                         done)
        self.assertEqual(d2.sql("SELECT attempt, node_id, (SELECT count(*) FROM attempts "
                                "WHERE job_id = :'id') FROM jobs WHERE id = :'id'",
                                id=job["id"]), [["1", d.node_id, "0"]])
        self.assertIn(job["id"], finished_ids(d2), "the restarted node did not run it")

    def wait_log(self, d, pattern, timeout):
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, d.log_text())
            if m:
                return m
            if time.monotonic() > deadline:
                self.fail("no log line matching %r within %.0fs\n%s"
                          % (pattern, timeout, d.log_tail()))
            time.sleep(0.05)


class DatabaseRestartTest(PgTestCase):
    def test_database_down_mid_run(self):
        # Issue 14: the two paths of "Database down", each seen for sure. A
        # job runs; the database stops for 3 s (far less than 5/6 of the
        # 30 s lease). While it is down (/api/status says so), a submit is
        # refused with 503 "storage unavailable" - not held, not accepted.
        # The running job goes on, ends during the outage, and its final
        # state and result are written once the database is back.
        d = self.start({"queue": {"workers": "2"}})
        job = d.submit("sleep", {"seconds": 2.5}, timeout=30, name="through-the-outage")
        self.wait_sql(d, "SELECT 1 FROM jobs WHERE id = :'id' AND status = 'IN_PROGRESS'",
                      lambda rows: bool(rows), 5, "the job IN_PROGRESS", interval=0.02,
                      id=job["id"])
        restarter = threading.Thread(target=pg_restart, kwargs={"down": 3})
        restarter.start()
        try:
            deadline = time.monotonic() + 5
            while True:
                r = d.get("/api/status")
                if r.status == 503:
                    break
                self.assertEqual(r.status, 200, r)
                self.assertLess(time.monotonic(), deadline, "never unhealthy\n%s" % self.logs())
                time.sleep(0.01)
            t_down = time.time()
            self.assertIs(r.json["storage_healthy"], False, r)
            r_job = d.post("/api/jobs", {"name": "while-down", "task_name": "dummytask"})
            r_pl = d.post("/api/pipelines", {"name": "while-down-pl", "jobs": [
                {"name": "while-down-pj%d" % i, "task_name": "dummytask"} for i in (0, 1)]})
            t_answered = time.time()
            still_down = (d.get("/api/status"), restarter.is_alive())
        finally:
            restarter.join(120)
        t_up = time.time()
        for r in (r_job, r_pl):
            self.assertEqual((r.status, (r.json or {}).get("message")), (503, STORAGE_DOWN), r)
        self.assertLess(t_answered - t_down, 0.5, "the refusals took %.1fs"
                        % (t_answered - t_down))
        self.assertEqual((still_down[0].status, still_down[1]), (503, True),
                         "the database was back too soon: %r" % (still_down,))

        # The job was not stopped: it ended while the database was down,
        # and is recorded as it ended.
        rows = self.wait_sql(
            d, "SELECT j.status, j.attempt, j.node_id, j.claimed_by, r.metadata::text, "
            "extract(epoch FROM j.completed_at), j.timed_out, j.exit_code, "
            "(SELECT count(*) FROM attempts a WHERE a.job_id = j.id) "
            "FROM jobs j LEFT JOIN results r ON r.job_id = j.id WHERE j.id = :'id' AND "
            "j.status <> 'IN_PROGRESS'", lambda rows: bool(rows), 10,
            "the job's end written after the outage", id=job["id"])
        status, attempt, node, claimed, result, completed, timed_out, exit_code, natt = rows[0]
        self.assertEqual([status, attempt, node, claimed, json.loads(result or "null"),
                          timed_out, exit_code, natt],
                         ["COMPLETED", "1", d.node_id, None, {"slept": 2.5}, "f", "0", "0"],
                         rows)
        self.assertTrue(t_down < float(completed) < t_up, "the job ended at %.2f, the "
                        "database was down from before %.2f to %.2f"
                        % (float(completed), t_down, t_up))
        self.assertEqual(d.sql("SELECT count(*) FROM jobs WHERE name LIKE 'while-down%' "
                               "UNION ALL SELECT count(*) FROM pipelines WHERE name = "
                               "'while-down-pl'"), [["0"], ["0"]])
        self.assertIn("job finished job_id=" + job["id"], d.log_text())

    def test_database_restart_mid_run(self):
        d = self.start({"queue": {"workers": "2", "capacity": "100000"}})
        ids = self.submit_many([d], 300, lambda i: sleep_body(0.01, "dbr-%d" % i))
        self.assertGreater(self.count(d, OPEN), 0, "all jobs done before the restart")

        stop = threading.Event()
        seen = {"status": {}, "submit": {}, "errors": []}
        during = []

        def poll_status():
            try:
                while not stop.is_set():
                    r = d.get("/api/status")
                    seen["status"][r.status] = seen["status"].get(r.status, 0) + 1
                    if r.status not in (200, 503):
                        seen["errors"].append("GET /api/status: %r" % r)
                    time.sleep(0.01)
            except Exception as e:  # noqa: BLE001
                seen["errors"].append("status poll: %r" % e)
            finally:
                d.client.close()

        def submit_loop():
            try:
                i = 0
                while not stop.is_set():
                    r = d.post("/api/jobs", {"name": "during-%d" % i, "task_name": "dummytask",
                                             "task_params": {"i": i}})
                    i += 1
                    seen["submit"][r.status] = seen["submit"].get(r.status, 0) + 1
                    if r.status == 202:
                        during.append(r.json["id"])
                    elif r.status == 503:
                        # A submit in flight while the server restarts may
                        # also be refused at its deadline (not accepted).
                        if ((r.json or {}).get("message") != STORAGE_DOWN and
                                not (r.json or {}).get("message", "").startswith(
                                    "storage did not confirm the job within")):
                            seen["errors"].append("503 with another message: %r" % r)
                    else:
                        seen["errors"].append("POST /api/jobs during the restart: %r" % r)
                    time.sleep(0.005)
            except Exception as e:  # noqa: BLE001
                seen["errors"].append("submit loop: %r" % e)
            finally:
                d.client.close()

        threads = [threading.Thread(target=poll_status), threading.Thread(target=submit_loop)]
        for t in threads:
            t.start()
        try:
            pg_restart()
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(seen["errors"], [], "%s\n%s" % (seen, self.logs()))

        deadline = time.monotonic() + 15
        while True:
            r = d.get("/api/status")
            if r.status == 200:
                break
            self.assertEqual(r.status, 503, r)
            if time.monotonic() > deadline:
                self.fail("/api/status still %r 15s after the restart\n%s" % (r, self.logs()))
            time.sleep(0.05)
        self.wait_final(d, 60, "jobs after the database restart")

        accepted = ids + during
        rows = d.sql("SELECT j.id, j.status, j.failure_reason, j.claimed_by, "
                     "r.job_id IS NOT NULL FROM jobs j LEFT JOIN results r ON r.job_id = j.id")
        by_id = {r[0]: r for r in rows}
        missing = [i for i in accepted if i not in by_id]
        self.assertNoneBad(missing, "accepted jobs lost")
        bad = [r for r in rows if r[1] != "COMPLETED" or r[3] is not None or r[4] != "t"]
        # FAILED is acceptable only with a reason that names the cause.
        bad = [r for r in bad if not (r[1] == "FAILED" and r[4] == "t" and r[3] is None and
                                      re.search(r"database|storage|PostgreSQL|restart",
                                                r[2] or "", re.I))]
        self.assertNoneBad(bad, "bad jobs (id, status, reason, claimed_by, has result); "
                           "answers during the restart: %s" % seen, logs=True)
        # The daemon still works.
        j = d.submit("dummytask", {"after": True})
        d.wait_for(j["id"], "COMPLETED", timeout=5)
        sys.stderr.write("[database restart: /api/status answers %s, POST /api/jobs answers "
                         "%s] " % (seen["status"], seen["submit"]))


class SubmitDeadlineTest(PgTestCase):
    """Issue 13: a submit in flight when the database hangs or stops was
    held for the whole outage (no bound) and then answered 202, so that a
    client that had given up never learnt that its job existed. Now it is
    answered within [storage] submit_timeout: 202 once committed, or 503
    "not accepted" - and then the job or pipeline never appears, not even
    once the database is back."""

    TIMEOUT = 1.0  # [storage] submit_timeout of these daemons
    NOT_ACCEPTED = ("storage did not confirm the %s within 1s - it was not accepted and "
                    "will not run; try again later")

    def start_node(self):
        d = self.start({"queue": {"workers": "2"}, "storage": {"submit_timeout": "1s"}})
        job = d.submit("dummytask", {"before": True})
        d.wait_for(job["id"], "COMPLETED", timeout=5)
        return d

    def assert_refused(self, out, what):
        self.assertEqual(len(out), 1, out)
        took, r = out[0]
        self.assertNotIsInstance(r, Exception, "%s: %r\n%s" % (what, r, self.logs()))
        self.assertEqual((r.status, (r.json or {}).get("message")),
                         (503, self.NOT_ACCEPTED % what), "%r after %.1fs\n%s"
                         % (r, took, self.logs()))
        self.assertLess(took, self.TIMEOUT + 1.0, "answered %.1fs after the submit" % took)

    def assert_never_stored(self, d, names, wait=2.0):
        """None of the jobs or pipelines named appears, now or a while later
        (the database answers again by now)."""
        deadline = time.monotonic() + wait
        while True:
            rows = d.sql("SELECT 'job', name FROM jobs WHERE name = ANY(string_to_array("
                         ":'n', ',')) UNION ALL SELECT 'pipeline', name FROM pipelines "
                         "WHERE name = ANY(string_to_array(:'n', ','))", n=",".join(names))
            self.assertEqual(rows, [], "refused with 503, stored all the same\n%s"
                             % self.logs())
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)

    def still_works(self, d):
        deadline = time.monotonic() + 15
        while d.get("/api/status").status != 200:
            if time.monotonic() > deadline:
                self.fail("not healthy again\n%s" % self.logs())
            time.sleep(0.1)
        job = d.submit("dummytask", {"after": True})
        d.wait_for(job["id"], "COMPLETED", timeout=10)

    def test_hung_database(self):
        d = self.start_node()
        locker = self.hold_lock(d, 4.0)
        job_out, queued_out, pl_out = [], [], []
        # The first one goes out and waits for the lock; the others wait
        # behind it, unsent.
        threads = [self.post_async(d, "/api/jobs", {"name": "hung-job", "task_name":
                                                    "dummytask"}, job_out)]
        self.wait_inserts_blocked(d, 1)
        threads.append(self.post_async(d, "/api/jobs", {"name": "hung-queued", "task_name":
                                                        "dummytask"}, queued_out))
        threads.append(self.post_async(d, "/api/pipelines", {"name": "hung-pipeline", "jobs": [
            {"name": "hung-pj0", "task_name": "dummytask"},
            {"name": "hung-pj1", "task_name": "dummytask"}]}, pl_out))
        for t in threads:
            t.join(20)
        self.assert_refused(job_out, "job")
        self.assert_refused(queued_out, "job")
        self.assert_refused(pl_out, "pipeline")
        locker.join(30)
        self.assert_never_stored(d, ["hung-job", "hung-queued", "hung-pipeline", "hung-pj0",
                                     "hung-pj1"])
        self.still_works(d)
        self.assertIn("answered 503", d.log_text())

    def test_database_stops_during_a_submit(self):
        d = self.start_node()
        locker = self.hold_lock(d, 30.0)
        out = []
        t = self.post_async(d, "/api/jobs", {"name": "stopped-job", "task_name": "dummytask"},
                            out)
        self.wait_inserts_blocked(d, 1)
        # The database stops (its connections are cut: the INSERT never
        # committed, but valetd cannot know) and stays down 3s.
        restarter = threading.Thread(target=pg_restart, kwargs={"down": 3})
        restarter.start()
        t.join(20)
        if len(out) == 1 and not isinstance(out[0][1], Exception) and out[0][1].status == 202:
            # The shutdown ended the locker's session first, and the INSERT
            # it held up committed before its own backend was told to go:
            # then the 202 is the truth, and the job must be stored and run.
            restarter.join(60)
            locker.join(30)
            # Healthy again first: until its connections are back, a read
            # is answered 503 (storage unavailable), as documented.
            self.still_works(d)
            d.wait_for(out[0][1].json["id"], "COMPLETED", timeout=30)
            return
        self.assert_refused(out, "job")
        restarter.join(60)
        locker.join(30)
        self.assert_never_stored(d, ["stopped-job"])
        self.still_works(d)


class SlowDatabaseTest(PgTestCase):
    def test_the_loop_does_not_wait_for_the_database(self):
        # README, "Database down": the event loop never waits for the
        # database. The jobs table is locked (a query that hangs) while a
        # job runs into its timeout and a submit's INSERT waits for the
        # lock: /api/status answers at once all along, and the job is
        # killed at its timeout, not when the database answers again.
        d = self.start({"queue": {"workers": "2"}, "storage": {"submit_timeout": "30s"}})
        warm = d.submit("dummytask", name="warm-up")
        d.wait_for(warm["id"], "COMPLETED", timeout=5)
        job = d.submit("sleep", {"seconds": 10}, timeout=1.5, name="killed-on-time")
        self.wait_sql(d, "SELECT 1 FROM jobs WHERE id = :'id' AND status = 'IN_PROGRESS'",
                      lambda rows: bool(rows), 5, "the job IN_PROGRESS", interval=0.02,
                      id=job["id"])
        locker = self.hold_lock(d, 4.0)
        t_locked = time.monotonic()
        out = []
        poster = self.post_async(d, "/api/jobs", {"name": "waits-for-the-lock",
                                                  "task_name": "dummytask"}, out)
        self.wait_inserts_blocked(d, 1)
        client = valetd.Client("127.0.0.1", d.port, timeout=10)
        slow = []
        for _ in range(20):
            t0 = time.monotonic()
            r = client.get("/api/status")
            took = time.monotonic() - t0
            self.assertEqual(r.status, 200, r)
            if took > 0.2:
                slow.append(round(took, 3))
            time.sleep(0.02)
        mark = "job finished job_id=" + job["id"]
        while mark not in d.log_text():
            self.assertLess(time.monotonic() - t_locked, 10, "no kill\n%s" % self.logs())
            time.sleep(0.02)
        t_killed = time.monotonic()
        lock_held = locker.is_alive()
        client.close()
        locker.join(30)
        poster.join(30)
        self.assertEqual(slow, [], "GET /api/status took that long (s) while the database "
                         "hung")
        self.assertTrue(lock_held and t_killed - t_locked < 3.0,
                        "the job was killed %.1fs after the lock was taken (held 4s)"
                        % (t_killed - t_locked))
        line = [l for l in d.log_text().splitlines() if mark in l][0]
        self.assertIn("timed out after", line)
        self.assertEqual(len(out), 1, out)
        self.assertEqual(out[0][1].status, 202, out)
        rows = d.sql("SELECT status, timed_out, extract(epoch FROM completed_at - started_at) "
                     "FROM jobs WHERE id = :'id'", id=job["id"])
        self.assertEqual(rows[0][:2], ["FAILED", "t"], rows)
        self.assertLess(float(rows[0][2]), 2.0, rows)


def metric(d, name):
    """The value of an unlabelled sample of d's /metrics."""
    r = d.get("/metrics")
    m = re.search(r"^%s (\S+)$" % re.escape(name), r.body.decode(), re.M)
    return float(m.group(1)) if m else None


class DatabaseRefusesTest(PgTestCase):
    """attack-ops #2 and #4: a database that refuses writes for now
    (read-only after a failover, disk full, a statement timeout) or hangs
    (frozen, a network black hole). Nothing accepted is lost, the store
    says it is unhealthy, and nobody waits without a bound."""

    def wait_status(self, d, status, timeout, what):
        t0 = time.monotonic()
        while True:
            r = d.get("/api/status")
            if r.status == status:
                return r, time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                self.fail("%s: /api/status still %r after %.0fs\n%s"
                          % (what, r, timeout, self.logs()))
            time.sleep(0.05)

    def test_read_only_database(self):
        # A job ends while the database is read-only: its final state and
        # result are written once it takes writes again (they were dropped:
        # the job ended up FAILED "lost its database lease"); a submit gets
        # 503 "storage unavailable" (was 500 "storage error"), and the
        # status says the storage is unhealthy (it said healthy).
        d = self.start({"queue": {"workers": "2"}})
        job = d.submit("sleep", {"seconds": 1.5}, timeout=30, name="ends-while-read-only")
        self.wait_sql(d, "SELECT 1 FROM jobs WHERE id = :'id' AND status = 'IN_PROGRESS'",
                      lambda rows: bool(rows), 5, "the job IN_PROGRESS", interval=0.02,
                      id=job["id"])
        valetd.sql("ALTER SYSTEM SET default_transaction_read_only = on")
        try:
            valetd.sql("SELECT pg_reload_conf()")
            time.sleep(0.5)  # the backends take the reload at their next command
            r = d.post("/api/jobs", {"name": "while-read-only", "task_name": "dummytask"})
            self.assertEqual((r.status, (r.json or {}).get("message")), (503, STORAGE_DOWN),
                             "%r\n%s" % (r, self.logs()))
            mark = "job finished job_id=" + job["id"]
            deadline = time.monotonic() + 10
            while mark not in d.log_text():
                self.assertLess(time.monotonic(), deadline, "the job did not end\n%s"
                                % self.logs())
                time.sleep(0.05)
            r, _ = self.wait_status(d, 503, 10, "read-only")
            self.assertIs(r.json["storage_healthy"], False, r)
            self.assertEqual((metric(d, "valet_database_up"),
                              metric(d, "valet_storage_healthy")), (0, 0))
            r = d.post("/api/pipelines", {"name": "while-read-only", "jobs": pipeline_body({})})
            self.assertEqual((r.status, (r.json or {}).get("message")), (503, STORAGE_DOWN), r)
        finally:
            valetd.sql("ALTER SYSTEM RESET default_transaction_read_only")
            valetd.sql("SELECT pg_reload_conf()")
        self.wait_status(d, 200, 15, "writable again")
        rows = self.wait_sql(
            d, "SELECT j.status, j.failure_reason, r.job_id IS NOT NULL FROM jobs j "
            "LEFT JOIN results r ON r.job_id = j.id WHERE j.id = :'id'",
            lambda rows: rows and rows[0][0] in FINAL, 15, "the job final", id=job["id"])
        self.assertEqual(rows, [["COMPLETED", None, "t"]], self.logs())
        self.assertEqual(self.count(d, "name = 'while-read-only'"), 0)
        self.assertIn("sqlstate=25006", d.log_text())
        after = d.submit("dummytask", {"after": "read-only"})
        d.wait_for(after["id"], "COMPLETED", timeout=10)

    def test_frozen_database(self):
        # The database hangs (every postgres process stopped): within a
        # bound the status is 503 and valet_database_up 0 (they stayed 200
        # and 1), and a read answers 503 "storage did not answer" after
        # [storage] submit_timeout (it hung as long as the database did).
        d = self.start({"queue": {"workers": "2"},
                        "storage": {"lease": "6s", "submit_timeout": "2s"}})
        job = d.submit("dummytask", {"before": "frozen"})
        d.wait_for(job["id"], "COMPLETED", timeout=10)
        client = valetd.Client("127.0.0.1", d.port, timeout=20)
        valetd.pg_freeze(True)
        try:
            t0 = time.monotonic()
            r = client.get("/api/jobs/" + job["id"])
            took = time.monotonic() - t0
            self.assertEqual((r.status, (r.json or {}).get("message")),
                             (503, "storage did not answer within 2s - try again later"), r)
            self.assertLess(took, 4.0, "the read was answered after %.1fs" % took)
            r, took = self.wait_status(d, 503, 10, "frozen")
            self.assertIs(r.json["storage_healthy"], False, r)
            self.assertEqual(metric(d, "valet_database_up"), 0)
        finally:
            valetd.pg_freeze(False)
            client.close()
        sys.stderr.write("[frozen: unhealthy %.1fs after the read's 503] " % took)
        self.wait_status(d, 200, 20, "thawed")
        self.assertEqual(d.get("/api/jobs/" + job["id"]).status, 200)
        after = d.submit("dummytask", {"after": "frozen"})
        d.wait_for(after["id"], "COMPLETED", timeout=10)


class StorageDownTest(PgTestCase):
    def test_database_down_at_startup(self):
        # The database URL names a socket directory where no server
        # listens (the shared test server keeps running for the others).
        empty = tempfile.mkdtemp(prefix="valet-nopg-", dir="/tmp")
        tmp_dirs.append(empty)
        real = valetd.database_url()
        url, port = url_with_host(real, empty)
        d = LateDaemon({"queue": {"workers": "2"}}, store="postgres")
        d.database_url = url
        self.start(daemon=d)
        t0 = time.monotonic()
        first = d.first_status
        self.assertEqual(first.status, 503, first)
        for _ in range(2):
            r = d.get("/api/status")
            self.assertEqual(r.status, 503, r)
            self.assertIs(r.json["storage_healthy"], False, r)
            self.assertIs(r.json["job_queue_healthy"], True, r)
            r = d.post("/api/jobs", {"name": "down", "task_name": "dummytask"})
            self.assertEqual((r.status, (r.json or {}).get("message")), (503, STORAGE_DOWN), r)
            r = d.post("/api/pipelines", {"name": "down", "jobs": pipeline_body({})})
            self.assertEqual((r.status, (r.json or {}).get("message")), (503, STORAGE_DOWN), r)
            # Still there a while later, still retrying.
            time.sleep(max(0, 1.0 - (time.monotonic() - t0)))
            self.assertTrue(d.alive(), "valetd exited while the database was down\n%s"
                            % d.log_tail())
        self.assertIn("database connection failed", d.log_text(), "the log does not say why "
                      "the storage is unavailable\n%s" % d.log_tail())
        self.assertEqual(valetd.sql("SELECT count(*) FROM pg_namespace WHERE nspname = :'s'",
                                    s=d.schema), [["0"]], "schema created without a database")
        # The server appears in that directory (a symlink to the real
        # socket): the daemon connects on its own and works.
        real_host = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(real).query)).get("host")
        sock = os.path.join(real_host or "", ".s.PGSQL." + port)
        if not real_host or not real_host.startswith("/") or not os.path.exists(sock):
            self.skipTest("the test server has no unix socket (%s): the refusals were "
                          "checked, the recovery was not" % real)
        os.symlink(sock, os.path.join(empty, ".s.PGSQL." + port))
        t1 = time.monotonic()
        deadline = t1 + 10
        while True:
            r = d.get("/api/status")
            if r.status == 200:
                break
            self.assertEqual(r.status, 503, r)
            if time.monotonic() > deadline:
                self.fail("/api/status still %r 10s after the database appeared\n%s"
                          % (r, d.log_tail()))
            time.sleep(0.05)
        up = time.monotonic() - t1
        job = d.submit("dummytask", {"after": "down"})
        d.wait_for(job["id"], "COMPLETED", timeout=5)
        self.assertEqual(d.sql("SELECT status, node_id FROM jobs WHERE id = :'id'",
                               id=job["id"]), [["COMPLETED", d.node_id]])
        sys.stderr.write("[healthy %.1fs after the database appeared] " % up)


class UnsentAtShutdownTest(PgTestCase):
    """README, "Database down": what the database has not taken when
    valetd stops is kept in [storage] state_dir and written at the node's
    next start, before the registration fails what the node held."""

    def state_dir(self):
        d = tempfile.mkdtemp(prefix="valet-state-", dir="/tmp")
        tmp_dirs.append(d)
        return d

    def test_job_ended_while_the_database_was_down(self):
        state = self.state_dir()
        d = self.start({"queue": {"workers": "2"}, "storage": {"state_dir": state}})
        # Two jobs end: their final states are one statement (and the
        # file holds that one).
        jobs = [d.submit("sleep", {"seconds": 1.5}, timeout=30, name="ends-while-down-%d" % i)
                for i in range(2)]
        job = jobs[0]
        self.wait_sql(d, "SELECT count(*) FROM jobs WHERE status = 'IN_PROGRESS'",
                      lambda rows: rows == [["2"]], 5, "the jobs IN_PROGRESS", interval=0.02)
        restarter = threading.Thread(target=pg_restart, kwargs={"down": 9})
        restarter.start()
        try:
            deadline = time.monotonic() + 8
            while not all("job finished job_id=" + j["id"] in d.log_text() for j in jobs):
                self.assertLess(time.monotonic(), deadline, "the jobs never ended\n%s"
                                % d.log_tail())
                time.sleep(0.05)
            self.assertTrue(restarter.is_alive(), "the database was back too soon")
            rc, took = d.terminate()
            d.check_exit(rc)
            still_down = restarter.is_alive()
        finally:
            restarter.join(120)
        self.assertTrue(still_down, "the database came back before valetd stopped: "
                        "nothing was left to keep")
        kept = [f for f in os.listdir(state) if f.endswith(".json")]
        self.assertEqual(len(kept), 1, (os.listdir(state), d.log_tail()))
        self.assertTrue(kept[0].startswith("pg-unsent-%s-" % d.schema), kept)
        self.assertEqual(os.stat(os.path.join(state, kept[0])).st_mode & 0o777, 0o600)
        self.assertRegex(d.log_text(), r"kept them, to be written when this node starts "
                         r"again .*changes=2")
        with open(os.path.join(state, kept[0])) as f:
            calls = json.load(f)["calls"]
        self.assertEqual([c["statement"] for c in calls], ["valet_job_finish_many"], calls)
        # Nothing of it reached the table: the jobs are still running there.
        self.assertEqual(d.sql("SELECT status, count(*) FROM jobs GROUP BY status"),
                         [["IN_PROGRESS", "2"]])

        d2 = self.start(daemon=d.clone())
        for j in jobs:
            done = d2.wait_for(j["id"], FINAL, timeout=10)
            self.assertEqual((done["status"], done.get("failure_reason")), ("COMPLETED", None),
                             "%s\n%s" % (done, d2.log_tail()))
            r = d2.get("/api/jobs/%s/results" % j["id"])
            self.assertEqual((r.status, (r.json or {}).get("metadata")), (200, {"slept": 1.5}),
                             r)
            self.assertEqual(d2.sql("SELECT attempt, claimed_by, (SELECT count(*) FROM "
                                    "attempts WHERE job_id = :'id') FROM jobs WHERE id = :'id'",
                                    id=j["id"]), [["1", None, "0"]])
        self.assertEqual(os.listdir(state), [], "the kept file was not removed")
        self.assertIn("wrote the PostgreSQL changes the last run kept", d2.log_text())
        self.assertRegex(d2.log_text(), r"node registered .*released_from_earlier_run=0")

    def outage_with_a_job_ending(self, d, down):
        """A 1 s job runs; the database stops for down seconds (a thread,
        returned) and the job ends meanwhile; returns once valetd says it
        keeps the job's end in the state directory."""
        job = d.submit("sleep", {"seconds": 1}, timeout=30, name="ends-while-down")
        self.wait_sql(d, "SELECT 1 FROM jobs WHERE id = :'id' AND status = 'IN_PROGRESS'",
                      lambda rows: bool(rows), 5, "the job IN_PROGRESS", interval=0.02,
                      id=job["id"])
        restarter = threading.Thread(target=pg_restart, kwargs={"down": down})
        restarter.start()
        deadline = time.monotonic() + down - 2
        while "keeping the changes it has not taken" not in d.log_text():
            if time.monotonic() > deadline:
                restarter.join(120)
                self.fail("no change kept during the outage\n%s" % d.log_tail())
            time.sleep(0.05)
        self.assertIn("job finished job_id=" + job["id"], d.log_text())
        self.assertTrue(restarter.is_alive(), "the database was back too soon")
        return job, restarter

    def test_killed_while_the_database_is_down(self):
        # Kept as it waits, not only at a shutdown: a valetd SIGKILLed
        # during the outage loses nothing either.
        state = self.state_dir()
        d = self.start({"queue": {"workers": "2"}, "storage": {"state_dir": state}})
        job, restarter = self.outage_with_a_job_ending(d, 8)
        try:
            self.assertEqual(d.kill(signal.SIGKILL), -signal.SIGKILL)
        finally:
            restarter.join(120)
        kept = [f for f in os.listdir(state) if f.endswith(".json")]
        self.assertEqual(len(kept), 1, os.listdir(state))
        self.assertEqual(d.sql("SELECT status FROM jobs WHERE id = :'id'", id=job["id"]),
                         [["IN_PROGRESS"]])
        d2 = self.start(daemon=d.clone())
        done = d2.wait_for(job["id"], FINAL, timeout=10)
        self.assertEqual((done["status"], done.get("failure_reason")), ("COMPLETED", None),
                         "%s\n%s" % (done, d2.log_tail()))
        self.assertEqual(d2.get("/api/jobs/%s/results" % job["id"]).json.get("metadata"),
                         {"slept": 1})
        self.assertEqual(os.listdir(state), [])

    def test_kept_file_goes_once_the_database_is_back(self):
        state = self.state_dir()
        d = self.start({"queue": {"workers": "2"}, "storage": {"state_dir": state}})
        job, restarter = self.outage_with_a_job_ending(d, 4)
        self.assertEqual(len([f for f in os.listdir(state) if f.endswith(".json")]), 1,
                         os.listdir(state))
        restarter.join(120)
        # valetd reconnects with backoff: healthy again first.
        deadline = time.monotonic() + 20
        while d.get("/api/status").status != 200:
            self.assertLess(time.monotonic(), deadline, "not healthy again\n%s" % d.log_tail())
            time.sleep(0.1)
        done = d.wait_for(job["id"], FINAL, timeout=10)
        self.assertEqual(done["status"], "COMPLETED", done)
        deadline = time.monotonic() + 10
        while os.listdir(state):
            self.assertLess(time.monotonic(), deadline, "the kept file stayed after the "
                            "database took its changes: %s\n%s" % (os.listdir(state),
                                                                  d.log_tail()))
            time.sleep(0.05)
        self.assertIn("removed their file", d.log_text())
        rc, _ = d.terminate()
        d.check_exit(rc)
        self.assertEqual(os.listdir(state), [])

    def test_the_batch_in_flight_is_kept(self):
        # The database hangs (every process stopped) after the job ended:
        # its final state went out and no answer came. It may yet commit
        # (the server has it), or not: kept too, and written again.
        state = self.state_dir()
        d = self.start({"queue": {"workers": "2"}, "storage": {"state_dir": state}})
        job = d.submit("sleep", {"seconds": 1}, timeout=30, name="in-flight")
        self.wait_sql(d, "SELECT 1 FROM jobs WHERE id = :'id' AND status = 'IN_PROGRESS'",
                      lambda rows: bool(rows), 5, "the job IN_PROGRESS", interval=0.02,
                      id=job["id"])
        valetd.pg_freeze(True)
        try:
            deadline = time.monotonic() + 8
            while "job finished job_id=" + job["id"] not in d.log_text():
                self.assertLess(time.monotonic(), deadline, "the job never ended\n%s"
                                % d.log_tail())
                time.sleep(0.05)
            time.sleep(0.2)  # the write goes out (20 ms of gathering)
            rc, took = d.terminate()
            d.check_exit(rc)
        finally:
            valetd.pg_freeze(False)
        self.assertRegex(d.log_text(), r"kept them, to be written when this node starts "
                         r"again .*changes=1")
        self.assertEqual(len([f for f in os.listdir(state) if f.endswith(".json")]), 1,
                         os.listdir(state))
        d2 = self.start(daemon=d.clone())
        done = d2.wait_for(job["id"], FINAL, timeout=10)
        self.assertEqual((done["status"], done.get("failure_reason")), ("COMPLETED", None),
                         "%s\n%s" % (done, d2.log_tail()))
        self.assertEqual(os.listdir(state), [], "the kept file was not removed")

    def test_a_file_of_another_statement_is_set_aside(self):
        # A file whose call is not a write statement of this valetd (or not
        # its text) is never sent: renamed *.refused, logged, and the node
        # registers as without it.
        state = self.state_dir()
        d = valetd.Daemon({"queue": {"workers": "2"}, "storage": {"state_dir": state}},
                          store="postgres")
        for n, call in enumerate([
                {"statement": "valet_node_stop", "sql": "DROP TABLE jobs", "params": ["x"]},
                {"statement": "valet_get_job", "sql": "x", "params": []}]):
            with open(os.path.join(state, "pg-unsent-%s-%s-%020d.json"
                                   % (d.schema, d.node_id, n)), "w") as f:
                json.dump({"format": "valet-pg-unsent/1", "schema": d.schema,
                           "node": d.node_id, "calls": [call]}, f)
        # A good call, in a file others may write: not sent either.
        loose = os.path.join(state, "pg-unsent-%s-%s-%020d.json" % (d.schema, d.node_id, 2))
        with open(loose, "w") as f:
            json.dump({"format": "valet-pg-unsent/1", "schema": d.schema, "node": d.node_id,
                       "calls": [{"statement": "valet_node_stop", "sql": "x", "params": []}]},
                      f)
        os.chmod(loose, 0o666)
        other = os.path.join(state, "pg-unsent-%s-other-%020d.json" % (d.schema, 9))
        with open(other, "w") as f:
            f.write("{}")
        self.start(daemon=d)
        job = d.submit("dummytask")
        d.wait_for(job["id"], "COMPLETED", timeout=10)
        self.assertEqual(sorted(os.listdir(state)), sorted(
            ["pg-unsent-%s-%s-%020d.json.refused" % (d.schema, d.node_id, n) for n in (0, 1, 2)]
            + [os.path.basename(other)]))
        self.assertEqual(d.log_text().count("set aside, not written"), 3, d.log_tail())
        self.assertIn("writable by no one else", d.log_text())
        self.assertEqual(valetd.sql("SELECT count(*) FROM pg_tables WHERE schemaname = :'s' "
                                    "AND tablename = 'jobs'", s=d.schema), [["1"]])

    def test_state_dir_must_be_a_writable_directory(self):
        state = self.state_dir()
        path = os.path.join(state, "file")
        open(path, "w").close()
        d = LateDaemon({"storage": {"state_dir": path}}, store="postgres")
        d.write_config()
        r = subprocess.run([d.binary, "-t", "-c", d.conf_path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("[storage] state_dir %s: Not a directory" % path, r.stdout)


if __name__ == "__main__":
    unittest.main()
