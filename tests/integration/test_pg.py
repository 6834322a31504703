"""PostgreSQL-specific integration tests (issue 3): durability, crash
recovery, migrations, several nodes on one database, lease expiry and
rescue, a database restart, scheduling and cancel across nodes, the
operator views and retention; pipelines run by another node and rescued
mid-run, a database that is down at startup, a node id used twice, and
retries with their attempts rows. Issue 14: the writes of a node that lost
its work are fenced (FenceTest); no 202, PATCH or cancel answer before the
commit (CommitBefore202Test, which holds commits back with an advisory lock
a deferred trigger takes); the database-down and hung-database paths, the
lease, the queue's wake-ups, concurrent and failed migrations, the schema as
the README documents it - README's "What the PostgreSQL claims rest on"
maps each claim to its test here.

Every test starts its own daemons on a schema of its own (valetd.Daemon
with store="postgres") and looks at the tables with psql (Daemon.sql), so
the checks are about what is really in the database, not only about what
the API says. Daemons of a test are stopped with SIGTERM at its end (a
non-zero exit fails the test); their logs stay until the module ends, so
that a failure can show them. Run with tests/run_tests.sh (suite
test_pg@postgres), which starts the throwaway server these tests need.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid

import valetd
from valetd import FINAL, Daemon, fmt_ts, parse_ts, pg_restart

# Jobs that are not final yet, in SQL.
OPEN = "status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')"
STORAGE_DOWN = "storage unavailable - try again later"
FAR = 3600.0

_tmp_dirs = []


def tearDownModule():
    for d in _tmp_dirs:
        shutil.rmtree(d, ignore_errors=True)


class PgTestCase(unittest.TestCase):
    """Helpers: start daemons that are cleaned up at the end of the test,
    submit many jobs fast, wait on SQL conditions."""

    d = None  # the first daemon of the test: run.py prints its log on a failure

    def setUp(self):
        self.daemons = []

    def start(self, config=None, schema=None, node_id=None, daemon=None):
        d = daemon or Daemon(config or {}, store="postgres", schema=schema, node_id=node_id)
        self.daemons.append(d)
        _tmp_dirs.append(d.tmp)
        if self.d is None:
            self.d = d
        self.addCleanup(self._stop, d)
        try:
            d.start()
        except BaseException:
            d.kill()
            raise
        return d

    def _stop(self, d):
        if d.proc is None or d.proc.poll() is not None:
            d.kill()  # killed by the test (or died: the test says so itself)
            return
        rc, _ = d.terminate()
        d.check_exit(rc)

    def logs(self, lines=25):
        return "\n".join(d.log_tail(lines) for d in self.daemons)

    def submit_many(self, nodes, n, body_of, threads=4):
        """POST n jobs (body_of(i)) round-robin over nodes from several
        threads (keep-alive); every answer must be 202. Returns the ids in
        submission order."""
        ids = [None] * n
        errors = []

        def work(k):
            try:
                for i in range(k, n, threads):
                    if errors:
                        return
                    d = nodes[i % len(nodes)]
                    r = d.post("/api/jobs", body_of(i))
                    if r.status != 202:
                        errors.append("job %d on %s: %r" % (i, d.node_id, r))
                        return
                    ids[i] = r.json["id"]
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append("job submission thread %d: %r" % (k, e))
            finally:
                for d in nodes:
                    d.client.close()

        ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            self.fail("submissions failed: %s\n%s" % (errors[:5], self.logs()))
        return ids

    def wait_sql(self, d, query, pred, timeout, what, interval=0.1, explain=None, **params):
        """Poll query until pred(rows); returns the rows. explain(): more
        text for the failure message."""
        deadline = time.monotonic() + timeout
        while True:
            rows = d.sql(query, **params)
            if pred(rows):
                return rows
            if time.monotonic() > deadline:
                self.fail("%s: not reached within %.0fs; last rows: %s%s\n%s"
                          % (what, timeout, rows[:20], "\n" + explain() if explain else "",
                             self.logs()))
            time.sleep(interval)

    def queue_state(self, d):
        """The jobs table summed up, for failure messages."""
        rows = d.sql("SELECT status, claimed_by, node_id, count(*), min(due_at) - now() "
                     "FROM jobs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
        return ("jobs by (status, claimed_by, node_id, count, earliest due_at - now()): %s"
                % rows)

    def wait_final(self, d, timeout, what="every job final"):
        """Wait until no job of d's schema is open; returns seconds waited."""
        t0 = time.monotonic()
        self.wait_sql(d, "SELECT status, claimed_by, count(*) FROM jobs WHERE %s "
                      "GROUP BY 1, 2" % OPEN, lambda rows: not rows, timeout, what, 0.2,
                      explain=lambda: self.queue_state(d))
        return time.monotonic() - t0

    def assertNoneBad(self, bad, what, logs=False):
        """bad: a list of offending items; fail with how many and a few."""
        if bad:
            self.fail("%d %s, e.g.:\n  %s%s" % (len(bad), what, "\n  ".join(
                repr(x) for x in bad[:10]), "\n" + self.logs() if logs else ""))

    def hold_lock(self, d, seconds):
        """Lock d's jobs table (ACCESS EXCLUSIVE) for seconds, from a psql of
        its own: every write of d's job rows waits, as on a hung database.
        Returns the thread once the lock is held."""
        errors = []

        def lock():
            try:
                valetd.sql("BEGIN; LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE; "
                           "SELECT pg_sleep(%g); COMMIT" % seconds, schema=d.schema,
                           timeout=seconds + 30)
            except AssertionError as e:  # a restart cuts it: that ends the lock too
                errors.append(e)

        t = threading.Thread(target=lock)
        t.start()
        self.wait_sql(d, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = "
                      "l.relation JOIN pg_namespace n ON n.oid = c.relnamespace "
                      "WHERE n.nspname = :'s' AND c.relname = 'jobs' AND l.granted "
                      "AND l.mode = 'AccessExclusiveLock'", lambda rows: rows[0][0] != "0",
                      10, "the lock on the jobs table", s=d.schema)
        return t

    def post_async(self, d, path, body, out):
        """POST in a thread of its own; out gets (seconds taken, response)."""
        def post():
            t0 = time.monotonic()
            try:
                r = d.post(path, body)
                out.append((time.monotonic() - t0, r))
            except Exception as e:  # noqa: BLE001 - reported by the test
                out.append((time.monotonic() - t0, e))
            finally:
                d.client.close()
        t = threading.Thread(target=post)
        t.start()
        return t

    def wait_inserts_blocked(self, d, n):
        """Until n of d's INSERTs (its writer) wait for the lock."""
        self.wait_sql(d, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                      "'Lock' AND query LIKE 'INSERT INTO %' AND position(:'s' in query) > 0",
                      lambda rows: int(rows[0][0]) >= n, 10, "a submit waiting for the lock",
                      s=d.schema)

    def count(self, d, where="true", **params):
        return int(d.sql("SELECT count(*) FROM jobs WHERE " + where, **params)[0][0])

    def attempts_by_job(self, d):
        """{job id: [(attempt, node_id, status, reason, started, finished)]}."""
        out = {}
        for jid, att, node, st, reason, s, f in d.sql(
                "SELECT job_id, attempt, node_id, status, failure_reason, "
                "extract(epoch FROM started_at), extract(epoch FROM finished_at) "
                "FROM attempts ORDER BY job_id, attempt"):
            out.setdefault(jid, []).append((int(att), node, st, reason,
                                            float(s) if s is not None else None, float(f)))
        return out


# A running job with more than 30 ms left to run: one that is sure to be
# still running when a SIGKILL follows the query.
RUNNING_ON = ("status = 'IN_PROGRESS' AND claimed_by = :'node' AND started_at > now() - "
              "(task_params->>'seconds')::float * interval '1 second' + interval '200 ms'")


def _json(v):
    return json.dumps(v)


def sleep_body(seconds, name="pg-sleep"):
    return {"name": name, "task_name": "sleep", "task_params": {"seconds": seconds},
            "timeout": 30}


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


class CommitHold:
    """Holds back the commit of every transaction that inserts or updates a
    job of d's schema, for as long as a test wants, from outside valetd: a
    deferred constraint trigger on jobs takes a shared advisory lock at
    COMMIT - after the statement ran, before the commit is done - and hold()
    takes that lock exclusively from a psql session of its own, until
    release() ends that session."""

    KEY1 = 14  # the advisory lock (KEY1, key); key is random per instance

    def __init__(self, d):
        self.d = d
        self.key = random.randrange(1, 2 ** 31)
        self.app = "valet-test-hold-%d" % self.key
        self.proc = None
        d.sql("CREATE FUNCTION hold_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
              "PERFORM pg_advisory_xact_lock_shared(%d, %d); RETURN NULL; END $$; "
              "CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT OR UPDATE ON jobs DEFERRABLE "
              "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_commit()"
              % (self.KEY1, self.key))

    def locks(self, granted):
        return int(valetd.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                              "AND classid = %d AND objid = %d AND granted = %s"
                              % (self.KEY1, self.key, granted))[0][0])

    def hold(self):
        env = dict(os.environ, PGAPPNAME=self.app)
        self.proc = subprocess.Popen(
            [valetd._psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", valetd.database_url(),
             "-c", "SELECT pg_advisory_lock(%d, %d); SELECT pg_sleep(600)"
             % (self.KEY1, self.key)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 10
        while self.locks("true") == 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError("could not take the advisory lock (%d, %d)"
                                     % (self.KEY1, self.key))
            time.sleep(0.02)

    def wait_waiters(self, n, timeout=10):
        """Until n transactions wait at their commit."""
        deadline = time.monotonic() + timeout
        while self.locks("false") < n:
            if time.monotonic() > deadline:
                raise AssertionError("no transaction of %s waits for its commit"
                                     % self.d.node_id)
            time.sleep(0.02)

    def drop_waiters(self):
        """The transactions that wait at their commit never commit: their
        backends are ended."""
        return valetd.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE "
                          "locktype = 'advisory' AND classid = %d AND objid = %d AND NOT "
                          "granted" % (self.KEY1, self.key))[0][0]

    def release(self):
        if self.proc is None:
            return
        valetd.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                   "application_name = :'app'", app=self.app)
        self.proc.wait(10)
        self.proc = None


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


class MigrationTest(PgTestCase):
    def test_second_start_is_a_no_op(self):
        d1 = self.start()
        job = d1.submit("dummytask", {"keep": "me"})
        d1.wait_for(job["id"], "COMPLETED", timeout=5)
        before = d1.sql("SELECT version, name, applied_at FROM schema_migrations "
                        "ORDER BY version")
        self.assertGreaterEqual(len(before), 1, before)
        self.assertEqual([int(r[0]) for r in before], list(range(1, len(before) + 1)), before)
        rc, _ = d1.terminate()
        d1.check_exit(rc)

        d2 = self.start(daemon=d1.clone())
        after = d2.sql("SELECT version, name, applied_at FROM schema_migrations "
                       "ORDER BY version")
        self.assertEqual(after, before, "schema_migrations changed at the second start")
        dup = d2.sql("SELECT version, count(*) FROM schema_migrations GROUP BY 1 "
                     "HAVING count(*) > 1")
        self.assertEqual(dup, [])
        got = d2.job(job["id"])
        self.assertEqual(got["status"], "COMPLETED", got)
        self.assertEqual(got["task_params"], {"keep": "me"}, got)
        self.assertEqual(d2.result(job["id"])["metadata"], {"keep": "me"})
        self.assertEqual(self.count(d2), 1)
        # And it still works.
        j2 = d2.submit("dummytask", {"second": 1})
        d2.wait_for(j2["id"], "COMPLETED", timeout=5)


    def test_two_first_starts_at_once(self):
        # Issue 14: "applied under an advisory lock". Two daemons start at
        # once on a schema that does not exist yet. The test holds the
        # migration lock (pg_advisory_xact_lock on "valet-migrate:<schema>")
        # first: both must be seen waiting for it. Once it is free they
        # migrate one after the other: every migration recorded once, both
        # healthy, neither setup failed.
        schema = valetd.new_schema()
        tag = "valet-migrate:" + schema
        app = "valet-test-" + schema
        holder = subprocess.Popen(
            [valetd._psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", valetd.database_url(),
             "-c", "SELECT pg_advisory_lock(hashtextextended('%s', 0)); SELECT pg_sleep(600)"
             % tag], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, PGAPPNAME=app))

        def release():
            valetd.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                       "application_name = :'app'", app=app)
            holder.wait(10)

        self.addCleanup(release)
        self.wait_sql_any("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                          ":'app' AND wait_event = 'PgSleep'", lambda rows: rows == [["1"]],
                          10, "the test's lock", app=app)
        cfg = {"queue": {"workers": "2"}}
        a = self.start(daemon=LateDaemon(cfg, store="postgres", schema=schema))
        b = self.start(daemon=LateDaemon(cfg, store="postgres", schema=schema,
                                         node_id=a.node_id + "-b"))
        self.wait_sql_any("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                          "'Lock' AND wait_event = 'advisory' AND position(:'t' in query) > 0",
                          lambda rows: rows == [["2"]], 10,
                          "both daemons waiting for the migration lock", t=tag)
        self.assertEqual(valetd.sql("SELECT count(*) FROM pg_namespace WHERE nspname = :'s'",
                                    s=schema), [["0"]], "migrated without the lock")
        release()
        for d in (a, b):
            deadline = time.monotonic() + 10
            while d.get("/api/status").status != 200:
                self.assertLess(time.monotonic(), deadline, "%s not healthy\n%s"
                                % (d.node_id, self.logs()))
                time.sleep(0.05)
        n = len([f for f in os.listdir(os.path.join(valetd.REPO, "storage", "migrations"))
                 if f.endswith(".sql")])
        self.assertEqual(a.sql("SELECT version, count(*) FROM schema_migrations GROUP BY 1 "
                               "ORDER BY 1"), [[str(v), "1"] for v in range(1, n + 1)])
        for d in (a, b):
            self.assertNotIn("database connection failed", d.log_text(), d.log_tail())
            job = d.submit("dummytask", {"on": d.node_id})
            d.wait_for(job["id"], "COMPLETED", timeout=5)

    def test_later_starts_need_only_rights_on_the_schema(self):
        # README: the database user needs CREATE on the database the first
        # time (for the schema), then only rights on its schema. A role
        # that may create schemas starts a node (and owns the schema); the
        # right is taken away; the node starts again and works.
        role = "valet_t_%d_%06x" % (os.getpid(), random.randrange(16 ** 6))
        db = valetd.sql("SELECT current_database()")[0][0]
        valetd.sql('CREATE ROLE "%s" LOGIN; GRANT CREATE ON DATABASE "%s" TO "%s"'
                   % (role, db, role))

        def drop_role():
            valetd.sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE '
                       'usename = :\'r\'; REVOKE ALL ON DATABASE "%s" FROM "%s"; '
                       'DROP OWNED BY "%s" CASCADE; DROP ROLE "%s"' % (db, role, role, role),
                       r=role)

        self.addCleanup(drop_role)
        url = url_with_user(valetd.database_url(), role)
        first = Daemon({"queue": {"workers": "2"}}, store="postgres")
        first.database_url = url
        self.start(daemon=first)
        job = first.submit("dummytask", {"first": 1})
        first.wait_for(job["id"], "COMPLETED", timeout=5)
        rc, _ = first.terminate()
        first.check_exit(rc)
        self.assertEqual(valetd.sql("SELECT nspowner::regrole::text FROM pg_namespace WHERE "
                                    "nspname = :'s'", s=first.schema), [[role]])
        valetd.sql('REVOKE CREATE ON DATABASE "%s" FROM "%s"' % (db, role))
        self.assertEqual(valetd.sql("SELECT has_database_privilege(:'r', current_database(), "
                                    "'CREATE')", r=role), [["f"]])
        again = first.clone()
        again.database_url = url
        self.start(daemon=again)
        job = again.submit("dummytask", {"again": 1})
        again.wait_for(job["id"], "COMPLETED", timeout=5)
        self.assertNotIn("database connection failed", again.log_text(), again.log_tail())

    def test_a_failed_migration_leaves_nothing(self):
        # README: the migrations are applied in one transaction. The last
        # one fails here (a table already has the name of the index it
        # makes): nothing of any of them stays, not even the record of the
        # earlier ones; the node retries, and once the obstacle is gone it
        # migrates and works.
        schema = valetd.new_schema()
        valetd.sql("CREATE SCHEMA %s; CREATE TABLE %s.pipelines_claimed (x int)"
                   % (schema, schema))
        d = self.start(daemon=LateDaemon({"queue": {"workers": "2"}}, store="postgres",
                                         schema=schema))
        deadline = time.monotonic() + 10
        while 'relation \\"pipelines_claimed\\" already exists' not in d.log_text():
            self.assertLess(time.monotonic(), deadline, d.log_tail())
            time.sleep(0.05)
        self.assertEqual(valetd.sql(
            "SELECT to_regclass(:'s' || '.schema_migrations') IS NULL, "
            "to_regclass(:'s' || '.nodes') IS NULL, to_regclass(:'s' || '.jobs') IS NULL",
            s=schema), [["t", "t", "t"]], "a failed migration left something behind")
        self.assertEqual(d.get("/api/status").status, 503)
        valetd.sql("DROP TABLE %s.pipelines_claimed" % schema)
        deadline = time.monotonic() + 15
        while d.get("/api/status").status != 200:
            self.assertLess(time.monotonic(), deadline, d.log_tail())
            time.sleep(0.05)
        n = len([f for f in os.listdir(os.path.join(valetd.REPO, "storage", "migrations"))
                 if f.endswith(".sql")])
        self.assertEqual(d.sql("SELECT count(*), max(version) FROM schema_migrations"),
                         [[str(n), str(n)]])
        job = d.submit("dummytask")
        d.wait_for(job["id"], "COMPLETED", timeout=5)

    def test_node_id_defaults_to_the_host_name(self):
        # README: [storage] node_id defaults to the host name.
        d = self.start({"storage": {"node_id": None}})
        host = socket.gethostname()[:63]
        if not re.match(r"^[A-Za-z0-9._:-]+$", host):
            self.skipTest("host: host name %r is no usable node id" % host)
        self.assertNotIn("node_id", open(d.conf_path).read())
        self.assertEqual(d.sql("SELECT node_id, hostname, pid FROM nodes"),
                         [[host, socket.gethostname(), str(d.proc.pid)]])

    # The one table a migration replaced, after moving its rows: 009 put the
    # results into columns of jobs, and a view of the same name in the
    # table's place (test_pg_upgrade shows the rows survive).
    REPLACED = {"009_results_in_jobs.sql": r"DROP TABLE @SCHEMA@\.results;"}

    def test_migrations_only_add(self):
        # README: migrations never drop data. No migration drops, truncates
        # or deletes (but REPLACED); one may replace a function (CREATE OR
        # REPLACE), which holds no data.
        mdir = os.path.join(valetd.REPO, "storage", "migrations")
        names = sorted(f for f in os.listdir(mdir) if f.endswith(".sql"))
        self.assertEqual(names, ["%03d_%s" % (i + 1, n.split("_", 1)[1])
                                 for i, n in enumerate(names)], "numbered 001, 002, ...")
        for name in names:
            with open(os.path.join(mdir, name)) as f:
                code = "\n".join(line.split("--")[0] for line in f.read().splitlines())
            # Foreign keys say what a delete does; they delete nothing.
            code = re.sub(r"\bON\s+DELETE\s+CASCADE\b", "", code, flags=re.I)
            # Neither do the events a trigger fires on.
            code = re.sub(r"\b(BEFORE|AFTER|INSTEAD\s+OF)\s+(INSERT|UPDATE|DELETE)"
                          r"(\s+OR\s+(INSERT|UPDATE|DELETE))*\s+ON\b", "", code, flags=re.I)
            if name in self.REPLACED:
                code, n = re.subn(self.REPLACED[name], "", code)
                self.assertEqual(n, 1, name)
            with self.subTest(migration=name):
                self.assertIsNone(re.search(r"\b(DROP|TRUNCATE|DELETE)\b", code, re.I),
                                  "a migration that removes")
                for m in re.finditer(r"\bCREATE\s+OR\s+REPLACE\s+(\w+)", code, re.I):
                    self.assertEqual(m.group(1).upper(), "FUNCTION", name)

    def wait_sql_any(self, query, pred, timeout, what, **params):
        """wait_sql() on the database as a whole (no daemon's schema)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = valetd.sql(query, **params)
            if pred(rows):
                return rows
            if time.monotonic() > deadline:
                self.fail("%s: not reached within %.0fs; last rows: %s\n%s"
                          % (what, timeout, rows, self.logs()))
            time.sleep(0.05)


class MultiNodeTest(PgTestCase):
    def nodes(self, n, config):
        """n daemons on one schema, node ids X, X-b, X-c..."""
        first = self.start(config)
        out = [first]
        for i in range(1, n):
            out.append(self.start(config, schema=first.schema,
                                  node_id="%s-%c" % (first.node_id, ord("a") + i)))
        return out

    def test_three_nodes_run_each_job_once(self):
        n = 3000
        cfg = {"queue": {"workers": "2", "capacity": "100000"}}
        nodes = self.nodes(3, cfg)
        node_ids = {d.node_id for d in nodes}
        self.assertEqual(len(node_ids), 3)
        ids = self.submit_many(nodes, n, lambda i: sleep_body(0.005, "multi-%d" % i),
                               threads=6)
        self.wait_final(nodes[0], 90, "3000 jobs on three nodes")
        rows = nodes[0].sql(
            "SELECT j.id, j.status, j.node_id, j.claimed_by, "
            "(SELECT count(*) FROM attempts a WHERE a.job_id = j.id), "
            "(SELECT min(a.node_id || ' ' || a.status) FROM attempts a WHERE a.job_id = j.id), "
            "r.job_id IS NOT NULL FROM jobs j LEFT JOIN results r ON r.job_id = j.id")
        self.assertEqual(sorted(r[0] for r in rows), sorted(ids))
        # With max_attempts = 1 the job row is the attempt: an attempts row
        # is optional, but never more than one, and it must agree.
        bad = [r for r in rows if r[1] != "COMPLETED" or r[3] is not None or r[6] != "t"
               or int(r[4]) > 1 or (r[4] == "1" and r[5] != r[2] + " COMPLETED")]
        self.assertNoneBad(bad, "jobs not COMPLETED once (id, status, node_id, claimed_by, "
                           "attempts, attempt node and status, has result)")
        # Ran once: one "job finished" log line per job over the three nodes.
        runs = {}
        for d in nodes:
            for jid in re.findall(r"job finished job_id=(\S+)", d.log_text()):
                runs.setdefault(jid, []).append(d.node_id)
        self.assertNoneBad([(j, runs.get(j)) for j in ids if len(runs.get(j, [])) != 1],
                           "jobs did not run exactly once (id, nodes whose log says it "
                           "finished there)")
        per_node = {}
        for r in rows:
            per_node[r[2]] = per_node.get(r[2], 0) + 1
        self.assertEqual(set(per_node), node_ids, "jobs per node: %s" % per_node)
        self.assertEqual(nodes[0].sql("SELECT count(*) FROM jobs WHERE claimed_by IS NOT NULL"),
                         [["0"]])

    def test_idle_nodes_take_shared_work(self):
        # Node A stores what it cannot start at once unclaimed: nodes B and
        # C, which got no request at all, must take their share.
        a, b, c = self.nodes(3, {"queue": {"workers": "2", "capacity": "100000"}})
        ids = self.submit_many([a], 120, lambda i: sleep_body(0.05, "idle-%d" % i))
        self.wait_final(a, 20, "120 jobs submitted to node A")
        per_node = dict((r[0], int(r[1])) for r in a.sql(
            "SELECT node_id, count(*) FROM jobs WHERE status = 'COMPLETED' GROUP BY 1"))
        self.assertEqual(sum(per_node.values()), len(ids), per_node)
        for d in (b, c):
            self.assertGreater(per_node.get(d.node_id, 0), 0,
                               "node %s (idle, no request of its own) ran none of the "
                               "%d jobs submitted to node A; jobs per node: %s"
                               % (d.node_id, len(ids), per_node))

    def test_killed_node_work_is_rescued(self):
        # Submitted round-robin to all three nodes, so that every node has
        # work even without taking shared work when idle (that is
        # test_idle_nodes_take_shared_work).
        n = 300
        cfg = {"queue": {"workers": "2", "capacity": "100000"},
               "storage": {"lease": "2s", "retry_backoff": "100ms"},
               "jobs": {"max_attempts": "3"}}
        a, b, c = self.nodes(3, cfg)
        ids = self.submit_many(
            [a, b, c], n, lambda i: sleep_body(0.6 if i % 25 == 0 else 0.05, "rescue-%d" % i),
            threads=6)
        self.wait_sql(a, "SELECT count(*) FROM jobs WHERE " + RUNNING_ON,
                      lambda rows: int(rows[0][0]) > 0, 10, "node B running jobs",
                      interval=0.01, node=b.node_id, explain=lambda: self.queue_state(a))
        self.assertEqual(b.kill(signal.SIGKILL), -signal.SIGKILL)
        t_kill = time.time()
        victims = {r[0] for r in a.sql("SELECT id FROM jobs WHERE claimed_by = :'b' AND "
                                       "status = 'IN_PROGRESS'", b=b.node_id)}
        self.assertTrue(victims, "node B had no running job at the kill")
        self.assertLessEqual(len(victims), 2, victims)
        self.wait_final(a, 40, "jobs after node B was killed")

        rows = a.sql("SELECT id, status, failure_reason, claimed_by, attempt, node_id "
                     "FROM jobs")
        self.assertEqual(sorted(r[0] for r in rows), sorted(ids))
        not_done = [r for r in rows if r[1] != "COMPLETED"]
        self.assertNoneBad(not_done, "jobs did not end COMPLETED (id, status, reason, "
                           "claimed_by, attempt, node_id)", logs=True)
        self.assertNoneBad([r for r in rows if r[3] is not None], "jobs left claimed")
        attempts = self.attempts_by_job(a)
        bad = []
        for jid in ids:
            atts = attempts.get(jid, [])
            if sum(1 for x in atts if x[2] == "COMPLETED") != 1:
                bad.append((jid, "not exactly one COMPLETED attempt", atts))
            if len(atts) > 3:
                bad.append((jid, "more attempts than max_attempts", atts))
            spans = sorted((x[4], x[5]) for x in atts if x[4] is not None)
            for (s1, f1), (s2, f2) in zip(spans, spans[1:]):
                if s2 < f1:
                    bad.append((jid, "attempts overlap", atts))
            if jid not in victims and len(atts) != 1:
                bad.append((jid, "retried although not running on B", atts))
        self.assertNoneBad(bad, "jobs ran wrongly (id, what, attempts: (attempt, node, "
                           "status, reason, started, finished))")
        expect = "node %s stopped renewing its lease" % b.node_id
        for jid in victims:
            atts = attempts.get(jid, [])
            self.assertGreaterEqual(len(atts), 2, "rescued job %s: attempts %s\n%s"
                                    % (jid, atts, self.logs()))
            first, last = atts[0], atts[-1]
            self.assertEqual((first[0], first[1], first[2]), (1, b.node_id, "FAILED"), atts)
            self.assertIn(expect, first[3] or "", atts)
            # Rescued once B's lease (2 s, renewed every 2/3 s) expired: not
            # before, and not much later either.
            self.assertTrue(1.0 < first[5] - t_kill < 5.0, "attempt failed %.2fs after the "
                            "kill: %s" % (first[5] - t_kill, atts))
            self.assertEqual(last[2], "COMPLETED", atts)
            self.assertIn(last[1], (a.node_id, c.node_id), atts)
        self.assertEqual(a.sql("SELECT count(*) FROM jobs WHERE claimed_by = :'b' OR "
                               "(node_id = :'b' AND status <> 'COMPLETED')", b=b.node_id),
                         [["0"]])
        rescued_after = max(attempts[j][0][5] for j in victims) - t_kill
        sys.stderr.write("[%d running jobs of node B rescued %.1fs after the kill] "
                         % (len(victims), rescued_after))

    def test_cancel_through_another_node(self):
        a, b = self.nodes(2, {"queue": {"workers": "2"}})
        job = a.submit("sleep", {"seconds": 10}, timeout=30)
        rows = self.wait_sql(a, "SELECT claimed_by, node_id FROM jobs WHERE id = :'id' AND "
                             "status = 'IN_PROGRESS'", lambda rows: bool(rows), 5,
                             "job IN_PROGRESS", interval=0.02, id=job["id"])
        runner = rows[0][0]
        self.assertIn(runner, (a.node_id, b.node_id), rows)
        other = b if runner == a.node_id else a
        t0 = time.monotonic()
        r = other.post("/api/jobs/%s/cancel" % job["id"])
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, "cancel through %s of a job running on %s: %r\n%s"
                         % (other.node_id, runner, r, self.logs()))
        self.assertEqual(r.json["status"], "CANCELLED", r)
        self.assertLess(took, 2.0, r)
        rows = a.sql("SELECT status, failure_reason, claimed_by, completed_at IS NOT NULL "
                     "FROM jobs WHERE id = :'id'", id=job["id"])
        self.assertEqual(rows, [["CANCELLED", "cancelled by request", None, "t"]])

        # Queued and unclaimed (run_at far ahead): through either node.
        for via in (a, b):
            with self.subTest(via=via.node_id):
                parked = a.submit("dummytask", run_at=fmt_ts(time.time() + FAR))
                self.assertEqual(a.sql("SELECT claimed_by FROM jobs WHERE id = :'id'",
                                       id=parked["id"]), [[None]])
                r = via.post("/api/jobs/%s/cancel" % parked["id"])
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json["status"], "CANCELLED", r)
                self.assertEqual(a.sql("SELECT status FROM jobs WHERE id = :'id'",
                                       id=parked["id"]), [["CANCELLED"]])
                self.assertEqual(b.job(parked["id"])["status"], "CANCELLED")


class FenceTest(PgTestCase):
    """Issue 14: a node that lost its claim - its work was rescued (another
    node believed its lease had expired) or is held by another node now -
    writes nothing about that work any more: not the status of a new
    attempt, not a retry, not the final status with its result, not the
    pipeline's state. The rows stay as the rescue or the new holder left
    them. (tests/unit/test_pg_fence.c checks each fenced statement on its
    own, the late outcome of a pipeline job included.)"""

    maxDiff = None
    JOB_COLS = ("id, status, failure_reason, claimed_by, node_id, attempt, started_at, "
                "completed_at, pid, exit_code, timed_out, (SELECT r.metadata::text FROM "
                "results r WHERE r.job_id = j.id), (SELECT string_agg(a.attempt || ' ' || "
                "a.node_id || ' ' || a.status, ', ' ORDER BY a.attempt) FROM attempts a "
                "WHERE a.job_id = j.id)")

    def rows(self, d, ids, pl_id=None):
        """The state of jobs ids (and of pipeline pl_id), for comparing."""
        jobs = d.sql("SELECT %s FROM jobs j WHERE id = ANY(string_to_array(:'ids', ',')"
                     "::uuid[]) ORDER BY id" % self.JOB_COLS, ids=",".join(ids))
        pl = d.sql("SELECT id, status, failure_reason, started_at, completed_at, claimed_by "
                   "FROM pipelines WHERE id = :'id'", id=pl_id) if pl_id else []
        return jobs, pl

    def synced(self, d):
        """Every change d made so far is committed: a PATCH is answered only
        then."""
        if not hasattr(self, "_anchor"):
            self._anchor = d.submit("dummytask", name="sync-anchor")["id"]
        r = d.patch("/api/jobs/" + self._anchor, {"description": str(time.time())})
        self.assertEqual(r.status, 204, r)

    def wait_finished(self, d, ids, timeout=15):
        """Until d's log says each of ids finished there (its core is done
        with them, whatever the database says)."""
        deadline = time.monotonic() + timeout
        while not set(ids) <= finished_ids(d):
            if time.monotonic() > deadline:
                self.fail("jobs %s did not finish on %s\n%s"
                          % (set(ids) - finished_ids(d), d.node_id, self.logs()))
            time.sleep(0.05)

    def test_rescued_work_is_not_overwritten(self):
        # Node A runs a job and a pipeline; the test rescues A's work the
        # way another node does when A's lease has expired (release_node,
        # as rescue_expired() calls it). With one attempt allowed, the job,
        # the pipeline's running job and the pipeline fail there and then.
        # A does not know: its runs go on and end COMPLETED, the pipeline's
        # second job runs - and none of it may reach the tables.
        a = self.start({"queue": {"workers": "2"}, "jobs": {"max_attempts": "1"}})
        job = a.submit("sleep", {"seconds": 1.5}, timeout=30, name="fence-job")
        pl = a.submit_pipeline([
            {"name": "fence-p0", "task_name": "sleep", "task_params": {"seconds": 1.5},
             "timeout": 30},
            {"name": "fence-p1", "task_name": "dummytask", "task_params": {"x": 1}}],
            name="fence-pipeline")
        ids = [job["id"]] + [j["id"] for j in pl["jobs"]]
        self.wait_sql(a, "SELECT count(*) FROM jobs WHERE id IN (:'j', :'p0') AND status = "
                      "'IN_PROGRESS' AND claimed_by = :'a'", lambda rows: rows == [["2"]], 5,
                      "both sleeps IN_PROGRESS on A", interval=0.02, j=ids[0], p0=ids[1],
                      a=a.node_id)
        self.assertEqual(a.sql("SELECT claimed_by FROM pipelines WHERE id = :'id'",
                               id=pl["id"]), [[a.node_id]], "the pipeline row is not held")
        released = a.sql("SELECT release_node(:'a', 'rescued by the test', 100, 1000)",
                         a=a.node_id)
        self.assertEqual(released, [["2"]])
        rescued = self.rows(a, ids, pl["id"])
        jobs = {r[0]: r for r in rescued[0]}
        self.assertEqual([jobs[i][1:4] for i in ids],
                         [["FAILED", "rescued by the test", None],
                          ["FAILED", "rescued by the test", None],
                          ["CANCELLED", "cancelled: job %s failed" % ids[1], None]], rescued)
        self.assertEqual(rescued[1][0][1:3], ["FAILED", "job %s failed" % ids[1]], rescued)
        self.assertIsNone(rescued[1][0][5], "the rescue left the pipeline held")

        self.wait_finished(a, ids)
        self.synced(a)
        self.assertEqual(self.rows(a, ids, pl["id"]), rescued,
                         "node A's late writes changed rescued work\n%s" % self.logs())
        # A's own view is the database's.
        self.assertEqual(a.job(job["id"])["status"], "FAILED")
        self.assertEqual(a.pipeline(pl["id"])["status"], "FAILED")

    def test_job_held_by_another_node_is_not_overwritten(self):
        # A job of A's that may run 3 times, each run timed out after 2 s.
        # During its first run, the test does what a rescue and a claim by
        # another node do: attempt 1 is failed (fail_attempt), and node
        # "other" holds and runs attempt 2. A goes on: its attempt 1 times
        # out (a retry write), attempts 2 and 3 start (status writes) and
        # time out, the last one is final (a finish write).
        a = self.start({"queue": {"workers": "2"}, "storage": {"retry_backoff": "50ms"}})
        job = a.submit("sleep", {"seconds": 10}, timeout=2, max_attempts=3,
                       name="fence-taken")
        self.wait_sql(a, "SELECT 1 FROM jobs WHERE id = :'id' AND status = 'IN_PROGRESS' AND "
                      "attempt = 1 AND claimed_by = :'a' AND started_at > now() - "
                      "interval '1 s'", lambda rows: bool(rows), 5,
                      "attempt 1 IN_PROGRESS on A", interval=0.02, id=job["id"], a=a.node_id)
        a.sql("BEGIN; SELECT fail_attempt(:'id', 'node A stopped renewing its lease', 100, "
              "1000); UPDATE jobs SET status = 'IN_PROGRESS', claimed_by = 'other', "
              "claimed_at = now(), node_id = 'other', attempt = 2, started_at = now(), "
              "due_at = NULL WHERE id = :'id'; COMMIT", id=job["id"])
        taken = self.rows(a, [job["id"]])
        self.assertEqual(taken[0][0][1:6], ["IN_PROGRESS", "attempt 1 failed: node A stopped "
                                            "renewing its lease", "other", "other", "2"], taken)
        self.assertEqual(taken[0][0][12], "1 %s FAILED" % a.node_id, taken)

        deadline = time.monotonic() + 15
        while "status=FAILED" not in "".join(
                l for l in a.log_text().splitlines() if "job finished job_id=" + job["id"] in l):
            if time.monotonic() > deadline:
                self.fail("A's three attempts did not end\n%s" % self.logs())
            time.sleep(0.05)
        self.assertEqual(len(re.findall(r"job attempt failed; retrying job_id=" + job["id"],
                                        a.log_text())), 2, a.log_tail())
        self.synced(a)
        self.assertEqual(self.rows(a, [job["id"]]), taken,
                         "node A's late writes changed a job another node holds\n%s"
                         % self.logs())


class QueueWakeTest(PgTestCase):
    """README, "The queue": an idle node claims when woken by LISTEN/NOTIFY,
    and every 2 s as a fallback. Jobs are put into the table by SQL, as a
    producer other than valetd would: with a NOTIFY on <schema>_jobs they
    run at once; without, within the 2 s poll."""

    def put_job(self, d, name, notify):
        d.sql("BEGIN; INSERT INTO jobs (id, name, task_name, timeout_ms, status, created_at, "
              "due_at) VALUES (gen_random_uuid(), :'n', 'dummytask', 5000, 'PENDING', now(), "
              "now()); %s COMMIT" % ("SELECT pg_notify(:'chan', '');" if notify else ""),
              n=name, chan=d.schema + "_jobs")
        t0 = time.monotonic()
        self.wait_sql(d, "SELECT status FROM jobs WHERE name = :'n'",
                      lambda rows: rows == [["COMPLETED"]], 5, "job %s run" % name,
                      interval=0.01, n=name)
        return time.monotonic() - t0

    def test_notify_wakes_and_the_poll_finds(self):
        d = self.start({"queue": {"workers": "2"}})
        warm = d.submit("dummytask")
        d.wait_for(warm["id"], "COMPLETED", timeout=5)
        # Without the NOTIFY, only the poll (every 2 s, at any phase) would
        # find them: most within 0.5 s, and none later than 1.5 s, is the
        # wake-up (a chance below 1% for the poll alone).
        woken = sorted(round(self.put_job(d, "notified-%d" % i, True), 3) for i in range(6))
        self.assertTrue(woken[3] < 0.5 and woken[-1] < 1.5,
                        "seconds from a NOTIFY to the job's end: %s" % woken)
        polled = self.put_job(d, "not-notified", False)
        self.assertLess(polled, 2.6, "a job put in without NOTIFY ran after %.1fs" % polled)
        sys.stderr.write("[NOTIFY: %s s; poll: %.2f s] " % (woken, polled))


class LeaseTest(PgTestCase):
    def test_lease_renewed_every_third(self):
        # README, "Leases": each node has a row in nodes and renews its
        # lease every lease/3.
        d = self.start({"queue": {"workers": "2"}, "storage": {"lease": "3s"}})
        beats = []
        deadline = time.monotonic() + 3.6
        while time.monotonic() < deadline:
            rows = d.sql("SELECT extract(epoch FROM heartbeat_at), extract(epoch FROM "
                         "lease_until - heartbeat_at), pid, stopped_at FROM nodes "
                         "WHERE node_id = :'n'", n=d.node_id)
            self.assertEqual(len(rows), 1, rows)
            self.assertEqual(rows[0][2:], [str(d.proc.pid), None], rows)
            self.assertAlmostEqual(float(rows[0][1]), 3.0, delta=0.01, msg=rows)
            if not beats or float(rows[0][0]) != beats[-1]:
                beats.append(float(rows[0][0]))
            time.sleep(0.05)
        gaps = [round(b - a, 2) for a, b in zip(beats[1:], beats[2:])]
        self.assertGreaterEqual(len(gaps), 2, beats)
        for g in gaps:
            self.assertAlmostEqual(g, 1.0, delta=0.25, msg="renewals %s s apart" % gaps)

    def test_outage_longer_than_the_lease(self):
        # README, "Database down": running jobs go on - while the outage is
        # shorter than 5/6 of the lease. Then another node may take the
        # node's work over, so the node kills what it runs, starts nothing,
        # and, once the database is back, gives its work back and goes on.
        d = self.start({"queue": {"workers": "1"}, "storage": {"lease": "1500ms"},
                        "jobs": {"max_attempts": "1"}})
        job = d.submit("sleep", {"seconds": 6}, timeout=30, name="outlived-the-lease")
        # Held by the node, waiting for its one worker.
        queued = d.submit("sleep", {"seconds": 0.2}, timeout=30, name="queued-behind")
        self.wait_sql(d, "SELECT 1 FROM jobs WHERE id = :'id' AND status = 'IN_PROGRESS'",
                      lambda rows: bool(rows), 5, "the job IN_PROGRESS", interval=0.02,
                      id=job["id"])
        self.assertEqual(d.sql("SELECT status, claimed_by FROM jobs WHERE id = :'id'",
                               id=queued["id"]), [["PENDING", d.node_id]])
        t0 = time.monotonic()
        pg_restart(down=3)
        t_up = time.time()
        # Killed during the outage (the job would have run 6 s).
        log = d.log_text()
        self.assertLess(time.monotonic() - t0, 5.5, "the outage took too long to tell")
        self.assertIn("lost the database lease", log)
        self.assertIn("job finished job_id=" + job["id"], log)
        rows = self.wait_sql(
            d, "SELECT status, failure_reason, extract(epoch FROM completed_at), claimed_by "
            "FROM jobs WHERE id = :'id' AND status <> 'IN_PROGRESS'", lambda rows: bool(rows),
            15, "the job's end written", id=job["id"])
        self.assertEqual(rows[0][0], "FAILED", rows)
        # Its own end, or its node's giving back of its claims (whichever
        # is written first once the database is back: the other then
        # changes nothing, fenced by the claim).
        self.assertIn(rows[0][1], (
            "killed: this node could not renew its database lease in time (another node "
            "may take its work over)",
            "valetd on node %s lost its database lease while the job was running" % d.node_id),
            rows)
        self.assertIsNone(rows[0][3], rows)
        deadline = time.monotonic() + 10
        while ("database lease renewed" not in d.log_text() or
               d.get("/api/status").status != 200):
            self.assertLess(time.monotonic(), deadline, d.log_tail())
            time.sleep(0.05)
        after = d.submit("dummytask", {"after": True})
        d.wait_for(after["id"], "COMPLETED", timeout=10)
        # What it held but had not started was given back and claimed
        # anew: it ran once the database was back.
        done = d.wait_for(queued["id"], FINAL, timeout=10)
        self.assertEqual((done["status"], done.get("attempt", 1)), ("COMPLETED", 1), done)
        self.assertGreater(parse_ts(done["started_at"]), t_up - 0.5, done)


class SchedulingTest(PgTestCase):
    """Jobs with run_at start at run_at (within 100 ms), also when the node
    that took the request is idle, and whichever node runs them."""

    def check_on_time(self, nodes, delays):
        a = nodes[0]
        t0 = time.time()
        jobs = []
        for i, delay in enumerate(delays):
            node = nodes[i % len(nodes)]
            jobs.append(node.submit("dummytask", {"i": i}, run_at=fmt_ts(t0 + delay)))
        for job in jobs:
            err = None
            try:
                done = a.wait_for(job["id"], FINAL, timeout=max(t0 + 4 - time.time(), 0.1))
            except AssertionError as e:
                err = str(e)
            if err:
                rows = a.sql("SELECT id, status, claimed_by, due_at <= now(), run_at, now() "
                             "FROM jobs ORDER BY run_at")
                stuck = [r[0] for r in rows if r[2] is None and r[3] == "t"
                         and r[1] not in FINAL]
                self.fail("%s\n%d of %d jobs are due and unclaimed: no node claimed them"
                          "\nrows (id, status, claimed_by, due, run_at, now): %s\n%s"
                          % (err, len(stuck), len(rows), rows, self.logs()))
            self.assertEqual(done["status"], "COMPLETED", done)
            late = parse_ts(done["started_at"]) - parse_ts(job["run_at"])
            self.assertGreaterEqual(late, -0.001, "started before run_at: %s" % done)
            self.assertLess(late, 0.1, "started %.3fs after run_at: %s" % (late, done))
        ran_on = {r[0] for r in a.sql("SELECT node_id FROM jobs")}
        self.assertLessEqual(ran_on, {d.node_id for d in nodes}, ran_on)

    def test_scheduled_job_on_an_idle_node(self):
        d = self.start({"queue": {"workers": "2"}})
        self.check_on_time([d], (1.0, 1.3))

    def test_scheduled_jobs_across_nodes(self):
        a = self.start({"queue": {"workers": "2"}})
        b = self.start({"queue": {"workers": "2"}}, schema=a.schema, node_id=a.node_id + "-b")
        self.check_on_time([a, b], (1.0, 1.2, 1.4, 1.6))


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


class OpsViewsTest(PgTestCase):
    def test_views(self):
        d = self.start({"queue": {"workers": "2"}})
        done = [d.submit("dummytask", {"i": i}) for i in range(5)]
        failed = [d.submit("failtask", {"message": "boom %d" % i}) for i in range(2)]
        d.wait_all([j["id"] for j in done + failed], timeout=10, check_status=False)
        runner = d.submit("sleep", {"seconds": 10}, timeout=30)
        d.wait_for(runner["id"], "IN_PROGRESS", timeout=5)

        depth = {(r[0], r[1]): int(r[2]) for r in d.sql(
            "SELECT task_name, status, jobs, oldest_created_at FROM queue_depth")}
        self.assertEqual(depth, {("dummytask", "COMPLETED"): 5, ("failtask", "FAILED"): 2,
                                 ("sleep", "IN_PROGRESS"): 1})

        tp = {}
        for minute, task, c, f, x, rate in d.sql(
                "SELECT minute, task_name, completed, failed, cancelled, failure_rate "
                "FROM task_throughput"):
            self.assertIsNotNone(minute)
            acc = tp.setdefault(task, [0, 0, 0])
            acc[0] += int(c)
            acc[1] += int(f)
            acc[2] += int(x)
            if task == "failtask":
                self.assertEqual(float(rate), 1.0)
            if task == "dummytask":
                self.assertEqual(float(rate), 0.0)
        self.assertEqual(tp, {"dummytask": [5, 0, 0], "failtask": [0, 2, 0]})

        dur = {r[0]: r[1:] for r in d.sql(
            "SELECT task_name, jobs, p50_ms, p95_ms, max_ms FROM task_durations")}
        self.assertEqual(set(dur), {"dummytask", "failtask"}, dur)
        self.assertEqual(int(dur["dummytask"][0]), 5)
        self.assertEqual(int(dur["failtask"][0]), 2)
        for task, (_, p50, p95, mx) in dur.items():
            self.assertTrue(0 <= float(p50) <= float(p95) <= float(mx) < 5000, (task, dur))

        run = d.sql("SELECT id, task_name, node_id, pid IS NOT NULL, attempt, "
                    "extract(epoch FROM running_for), timeout_ms, node_lease_expired "
                    "FROM running_jobs")
        self.assertEqual(len(run), 1, run)
        jid, task, node, has_pid, attempt, running_for, timeout_ms, expired = run[0]
        self.assertEqual((jid, task, node, timeout_ms, expired),
                         (runner["id"], "sleep", d.node_id, "30000", "f"), run)
        self.assertGreaterEqual(int(attempt), 1, run)
        self.assertTrue(0 <= float(running_for) < 10, run)

        r = d.post("/api/jobs/%s/cancel" % runner["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(d.sql("SELECT count(*) FROM running_jobs"), [["0"]])
        depth = {(r[0], r[1]): int(r[2]) for r in d.sql(
            "SELECT task_name, status, jobs FROM queue_depth")}
        self.assertEqual(depth.get(("sleep", "CANCELLED")), 1, depth)


class SchemaTest(PgTestCase):
    def readme_schema(self):
        """The README's "### Schema" subsection."""
        with open(os.path.join(valetd.REPO, "README.md")) as f:
            text = f.read()
        start = text.index("### Schema")
        return text[start:text.index("\n## ", start)]

    def columns(self, d, table):
        return dict(d.sql("SELECT column_name, data_type FROM information_schema.columns "
                          "WHERE table_schema = :'s' AND table_name = :'t'",
                          s=d.schema, t=table))

    def test_schema_as_documented(self):
        # README, "Schema": the tables, columns, types, indexes and views it
        # lists are what the migrations make; its example queries run.
        d = self.start({"queue": {"workers": "2"}})
        doc = self.readme_schema()
        ident = re.compile(r"`([a-z_][a-z0-9_]*)`")
        # valet.jobs: the table's first column, one or more names a row.
        table = doc[doc.index("`valet.jobs`"):]
        table = table[:table.index("\n\n", table.index("| column |"))]
        documented = set()
        for row in table.splitlines()[3:]:
            documented.update(ident.findall(row.split("|")[1]))
        jobs = self.columns(d, "jobs")
        self.assertEqual(set(jobs), documented)
        # The other tables, as the README's text names their columns.
        outcome = {"pid", "exit_code", "signal", "timed_out", "oom_killed", "seccomp_syscall",
                   "cpu_ms", "wall_ms", "max_rss_kb", "memory_peak_kb"}
        expect = {
            "results": {"job_id", "metadata", "error", "created_at"},
            "attempts": {"job_id", "attempt", "node_id", "status", "failure_reason",
                         "started_at", "finished_at"} | outcome,
            "pipelines": {"id", "seq", "name", "description", "status", "failure_reason",
                          "run_at", "created_at", "started_at", "completed_at", "claimed_by",
                          "owner"},
            "nodes": {"node_id", "hostname", "pid", "version", "started_at", "heartbeat_at",
                      "lease_until", "stopped_at"},
            "schema_migrations": {"version", "name", "applied_at"},
            "api_keys": {"name", "scopes", "token_sha256", "created_at", "revoked_at",
                         "policy"},
        }
        cols = {t: self.columns(d, t) for t in expect}
        for t, names in expect.items():
            self.assertEqual(set(cols[t]), names, t)
            for name in names:
                self.assertIn("`%s`" % name, doc, "%s.%s" % (t, name))
        cols["jobs"] = jobs
        # Statuses are text, times timestamptz, JSON jsonb; ids uuid.
        for t, c in cols.items():
            for name, typ in c.items():
                if name == "status" or name.endswith("_by") or name == "node_id":
                    self.assertEqual(typ, "text", "%s.%s" % (t, name))
                if name.endswith("_at") or name in ("lease_until", "run_at"):
                    self.assertEqual(typ, "timestamp with time zone", "%s.%s" % (t, name))
                if name in ("task_params", "limits", "isolation", "metadata"):
                    self.assertEqual(typ, "jsonb", "%s.%s" % (t, name))
                if name in ("id", "job_id", "pipeline_id", "next_job_id") and t != "nodes":
                    self.assertEqual(typ, "uuid", "%s.%s" % (t, name))
        self.assertEqual((jobs["seq"], jobs["timeout_ms"]), ("bigint", "bigint"))
        # Indexes: the queue (due_at, seq where unclaimed), claims, status and
        # seq, pipeline order, completed_at.
        idx = {r[0]: r[1] for r in d.sql("SELECT indexname, indexdef FROM pg_indexes "
                                         "WHERE schemaname = :'s' AND tablename = 'jobs'",
                                         s=d.schema)}
        defs = " | ".join(idx.values())
        for part in ("(due_at, seq) WHERE ((claimed_by IS NULL) AND (due_at IS NOT NULL))",
                     "(claimed_by) WHERE (claimed_by IS NOT NULL)", "(status, seq)",
                     "(pipeline_id, pipeline_index)", "(completed_at)",
                     "(owner, seq) WHERE (owner IS NOT NULL)"):
            self.assertIn(part, defs)
        # jobs leaves half of each page for the updates of its rows (008).
        self.assertEqual(d.sql("SELECT reloptions FROM pg_class c JOIN pg_namespace n ON "
                               "n.oid = c.relnamespace WHERE n.nspname = :'s' AND "
                               "c.relname = 'jobs'", s=d.schema), [["{fillfactor=50}"]])
        # The views and their columns, as the table lists them.
        views = doc[doc.index("| view | columns |"):]
        for row in views[:views.index("\n\n")].splitlines()[2:]:
            cells = row.split("|")
            name = ident.findall(cells[1].replace("valet.", ""))[0]
            with self.subTest(view=name):
                self.assertEqual(set(self.columns(d, name)), set(ident.findall(cells[2])))
        # The example queries, on this schema.
        job = d.submit("dummytask")
        d.wait_for(job["id"], "COMPLETED", timeout=5)
        block = doc[doc.index("```sql", doc.index("Example queries:")) + 6:]
        block = block[:block.index("```")]
        queries = [q.strip() for q in block.split(";") if q.strip()]
        self.assertGreaterEqual(len(queries), 5, queries)
        for q in queries:
            with self.subTest(query=q):
                d.sql(q.replace("valet.", d.schema + ".").replace("'6f1c...'",
                                                                    "'%s'" % job["id"]))

    def test_status_check_refuses_a_bad_status(self):
        # README, "Schema": statuses are text with a CHECK constraint. A
        # direct SQL write of anything else is refused, in each table.
        d = self.start({"queue": {"workers": "2"}})
        job = d.submit("failtask", {"message": "x"}, max_attempts=2)
        pl = d.submit_pipeline(pipeline_body({"v": 1}))
        d.wait_for(job["id"], "FAILED", timeout=10)
        d.wait_pipeline(pl["id"], "COMPLETED", timeout=10)
        for bad in ("DONE", "completed", ""):
            for what, q in (
                    ("jobs", "UPDATE jobs SET status = :'bad' WHERE id = :'id'"),
                    ("pipelines", "UPDATE pipelines SET status = :'bad' WHERE id = :'pl'"),
                    ("attempts", "UPDATE attempts SET status = :'bad' WHERE job_id = :'id'"),
                    ("jobs", "INSERT INTO jobs (id, name, task_name, timeout_ms, status, "
                             "created_at) VALUES (gen_random_uuid(), 'x', 'dummytask', 1000, "
                             ":'bad', now())")):
                with self.subTest(table=what, status=bad, sql=q):
                    with self.assertRaisesRegex(AssertionError,
                                                'violates check constraint "%s_status_check"'
                                                % what):
                        d.sql(q, bad=bad, id=job["id"], pl=pl["id"])
        self.assertEqual(d.sql("SELECT status FROM jobs WHERE id = :'id' UNION ALL "
                               "SELECT status FROM pipelines WHERE id = :'pl' UNION ALL "
                               "SELECT DISTINCT status FROM attempts WHERE job_id = :'id'",
                               id=job["id"], pl=pl["id"]),
                         [["FAILED"], ["COMPLETED"], ["FAILED"]])


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


class RetentionTest(PgTestCase):
    # valetd prunes 10 s after it registered, then every minute.
    PRUNE_AFTER = 10.0

    def test_old_finished_work_is_pruned(self):
        t_start = time.monotonic()
        d = self.start({"queue": {"workers": "2"}, "storage": {"retention_days": "1"}})
        old, recent = d.submit("dummytask", {"old": 1}), d.submit("dummytask", {"old": 0})
        parked = d.submit("dummytask", run_at=fmt_ts(time.time() + FAR))
        pl_old = d.submit_pipeline([{"name": "a", "task_name": "dummytask"},
                                    {"name": "b", "task_name": "dummytask"}])
        pl_new = d.submit_pipeline([{"name": "a", "task_name": "dummytask"},
                                    {"name": "b", "task_name": "dummytask"}])
        for j in (old, recent):
            d.wait_for(j["id"], "COMPLETED", timeout=5)
        for p in (pl_old, pl_new):
            d.wait_pipeline(p["id"], "COMPLETED", timeout=5)
        d.sql("UPDATE jobs SET completed_at = now() - interval '2 days' WHERE id = :'id'",
              id=old["id"])
        d.sql("UPDATE pipelines SET completed_at = now() - interval '2 days' "
              "WHERE id = :'id'; UPDATE jobs SET completed_at = now() - interval '2 days' "
              "WHERE pipeline_id = :'id'", id=pl_old["id"])
        self.assertLess(time.monotonic() - t_start, self.PRUNE_AFTER - 1,
                        "setup took too long to see the first prune")
        self.wait_sql(d, "SELECT count(*) FROM jobs WHERE id = :'id'",
                      lambda rows: rows == [["0"]], self.PRUNE_AFTER + 5,
                      "old job pruned", interval=0.25, id=old["id"])
        self.wait_sql(d, "SELECT count(*) FROM pipelines WHERE id = :'id'",
                      lambda rows: rows == [["0"]], 5, "old pipeline pruned", interval=0.25,
                      id=pl_old["id"])
        left = d.sql("SELECT (SELECT count(*) FROM results WHERE job_id = :'id'), "
                     "(SELECT count(*) FROM attempts WHERE job_id = :'id'), "
                     "(SELECT count(*) FROM jobs WHERE pipeline_id = :'pl')",
                     id=old["id"], pl=pl_old["id"])
        self.assertEqual(left, [["0", "0", "0"]], "rows of pruned work left behind")
        self.assertEqual(d.get("/api/jobs/" + old["id"]).status, 404)
        for j in (recent, parked):
            self.assertEqual(self.count(d, "id = :'id'", id=j["id"]), 1, j)
        self.assertEqual(d.job(recent["id"])["status"], "COMPLETED")
        self.assertEqual(d.pipeline(pl_new["id"])["status"], "COMPLETED")
        self.assertEqual(self.count(d, "pipeline_id = :'pl'", pl=pl_new["id"]), 2)


class LateDaemon(Daemon):
    """A Daemon whose start() does not need /api/status to answer 200: it
    returns as soon as the HTTP server answers at all (first_status), for
    daemons that are meant to be unhealthy (database down, node id in
    use)."""

    first_status = None

    def start(self, timeout=10.0):
        if not os.access(self.binary, os.X_OK):
            raise AssertionError("%s is not built" % self.binary)
        self.write_config()
        env = dict(os.environ)
        env[valetd.SECRET_ENV] = self.secret
        env.update(self.extra_env)
        self.port = valetd.free_port()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-c", self.conf_path, "-l", "127.0.0.1:%d" % self.port],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=self.tmp)
        with valetd._live_lock:
            valetd._live.add(self.proc)
        self.client = valetd.Client("127.0.0.1", self.port)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("valetd exited with status %s at startup\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            try:
                self.first_status = valetd.Client("127.0.0.1", self.port,
                                                  timeout=1).get("/api/status")
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("valetd did not answer HTTP within %.0fs\n%s"
                                     % (timeout, self.log_tail()))
            time.sleep(0.01)


def pipeline_body(params):
    """dummytask(params) -> echoprev -> echoprev: each passes params on."""
    return [{"name": "first", "task_name": "dummytask", "task_params": params},
            {"name": "second", "task_name": "echoprev", "use_previous_results": True},
            {"name": "third", "task_name": "echoprev", "use_previous_results": True}]


def finished_ids(d):
    """Job ids d's log says finished on d."""
    return set(re.findall(r"job finished job_id=(\S+)", d.log_text()))


class PipelineTestCase(PgTestCase):
    def pipeline_rows(self, d, pl_id):
        """The pipeline's jobs in order: [id, status, node_id, claimed_by,
        attempt, failure_reason, result metadata (decoded), completed_at,
        started_at (epoch)]."""
        out = []
        for row in d.sql("SELECT j.id, j.status, j.node_id, j.claimed_by, j.attempt, "
                         "j.failure_reason, r.metadata, j.completed_at, "
                         "extract(epoch FROM j.started_at) FROM jobs j "
                         "LEFT JOIN results r ON r.job_id = j.id WHERE j.pipeline_id = :'pl' "
                         "ORDER BY j.pipeline_index", pl=pl_id):
            row[4] = int(row[4])
            row[6] = json.loads(row[6]) if row[6] is not None else None
            row[8] = float(row[8]) if row[8] is not None else None
            out.append(row)
        return out

    def check_ran_on(self, d, pl, runner, params, others):
        """Pipeline pl (submitted as pipeline_body(params)) COMPLETED, every
        job of it on node runner, each result equal to params; the daemons
        in others ran none of it. d reads."""
        rows = self.pipeline_rows(d, pl["id"])
        self.assertEqual([r[0] for r in rows], [j["id"] for j in pl["jobs"]], rows)
        bad = [r for r in rows if r[1] != "COMPLETED" or r[2] != runner.node_id or
               r[3] is not None or r[6] != params]
        self.assertNoneBad(bad, "pipeline jobs not COMPLETED on %s with the first job's "
                           "params %s passed along (id, status, node_id, claimed_by, attempt, "
                           "reason, result, ...)" % (runner.node_id, params), logs=True)
        self.assertEqual(d.sql("SELECT status, failure_reason FROM pipelines WHERE id = :'id'",
                               id=pl["id"]), [["COMPLETED", None]])
        ids = {j["id"] for j in pl["jobs"]}
        self.assertEqual(ids - finished_ids(runner), set(),
                         "jobs the log of %s does not say finished" % runner.node_id)
        for o in others:
            self.assertEqual(ids & finished_ids(o), set(), "pipeline jobs %s also finished "
                             "on %s" % (ids & finished_ids(o), o.node_id))
        # What the API says, through every daemon still running.
        for x in [runner] + list(others):
            if not x.alive():
                continue
            self.assertEqual(x.pipeline(pl["id"])["status"], "COMPLETED")
            jobs = x.get_json("/api/pipelines/%s/jobs" % pl["id"])["jobs"]
            self.assertEqual([(j["id"], j["status"]) for j in jobs],
                             [(j["id"], "COMPLETED") for j in pl["jobs"]], jobs)
            for j in pl["jobs"]:
                self.assertEqual(x.result(j["id"]).get("metadata"), params,
                                 "result of %s through %s" % (j["name"], x.node_id))


class PipelineAcrossNodesTest(PipelineTestCase):
    def test_pipeline_claimed_by_another_node_when_submitter_is_full(self):
        # Node A (one worker) holds as much as its local backlog takes
        # (4 * workers + 32 jobs, the first one running); a pipeline
        # submitted to it then is stored unclaimed, and node B claims it.
        a = self.start({"queue": {"workers": "1", "shutdown_grace": "200ms"}})
        b = self.start({"queue": {"workers": "1"}}, schema=a.schema,
                       node_id=a.node_id + "-b")
        cap = 4 * 1 + 32
        for i in range(cap):
            a.submit("sleep", {"seconds": 20}, timeout=30, name="filler-%d" % i)
        held = a.sql("SELECT claimed_by, count(*) FROM jobs GROUP BY 1 ORDER BY 1")
        self.assertEqual(held, [[a.node_id, str(cap)]],
                         "%d long jobs submitted to node A (one worker): all must be "
                         "claimed by A (its local backlog takes 4*workers+32)" % cap)
        params = {"token": str(uuid.uuid4()), "n": [1, 2, {"x": None}]}
        pl = a.submit_pipeline(pipeline_body(params), name="across-full")
        claims = a.sql("SELECT claimed_by FROM jobs WHERE pipeline_id = :'pl'", pl=pl["id"])
        self.assertNotIn([a.node_id], claims, "node A claimed the pipeline although its "
                         "local backlog was full")
        done = a.wait_pipeline(pl["id"], FINAL, timeout=10)
        self.assertEqual(done["status"], "COMPLETED", "%s\n%s\n%s"
                         % (done, self.pipeline_rows(a, pl["id"]), self.logs()))
        self.check_ran_on(a, pl, b, params, [a])
        # The fillers stayed on A.
        self.assertEqual(a.sql("SELECT count(*) FROM jobs WHERE pipeline_id IS NULL AND "
                               "claimed_by IS DISTINCT FROM :'a'", a=a.node_id), [["0"]])

    def test_scheduled_pipeline_runs_on_another_node_after_submitter_stopped(self):
        a = self.start({"queue": {"workers": "2"}})
        params = {"token": str(uuid.uuid4()), "nested": {"a": [1, 2]}}
        run_at = time.time() + 2.0
        pl = a.submit_pipeline(pipeline_body(params), name="across-later",
                               run_at=fmt_ts(run_at))
        self.assertEqual(a.sql("SELECT count(*) FROM jobs WHERE pipeline_id = :'pl' AND "
                               "claimed_by IS NULL", pl=pl["id"]), [["3"]],
                         "a scheduled pipeline must be stored unclaimed")
        rc, _ = a.terminate()
        a.check_exit(rc)
        self.assertLess(time.time(), run_at - 0.3, "node A took too long to stop")
        b = self.start({"queue": {"workers": "2"}}, schema=a.schema, node_id=a.node_id + "-b")
        done = b.wait_pipeline(pl["id"], FINAL, timeout=max(run_at - time.time(), 0) + 4)
        self.assertEqual(done["status"], "COMPLETED", "%s\n%s\n%s"
                         % (done, self.pipeline_rows(b, pl["id"]), self.logs()))
        self.check_ran_on(b, pl, b, params, [a])
        first = self.pipeline_rows(b, pl["id"])[0]
        self.assertGreaterEqual(first[8], run_at - 0.001, "first job started before run_at")


class LimitsAcrossNodesTest(PgTestCase):
    def test_claimed_job_runs_with_its_own_limits(self):
        # Node A stores a scheduled job with its own output limit and stops;
        # node B, whose configured default is 1M, claims and runs it with the
        # job's 4k. The limits column holds the effective limits.
        a = self.start({})
        run_at = time.time() + 1.5
        job = a.submit("hostile_flood", timeout=10, limits={"output": "4k", "processes": 9},
                       run_at=fmt_ts(run_at))
        rc, _ = a.terminate()
        a.check_exit(rc)
        b = self.start({}, schema=a.schema, node_id=a.node_id + "-b")
        done = b.wait_for(job["id"], FINAL, timeout=max(run_at - time.time(), 0) + 5)
        self.assertEqual(done["failure_reason"],
                         "output limit exceeded (more than 4 KiB on stdout/stderr)", done)
        self.assertEqual(done["limits"]["output"], 4096)
        self.assertEqual(done["limits"]["processes"], 9)
        rows = b.sql("SELECT node_id, limits->>'output', limits->>'processes', "
                     "isolation->>'profile' FROM jobs WHERE id = :'id'", id=job["id"])
        # The isolation it got is recorded with the job, as the API shows it.
        self.assertEqual(rows, [[b.node_id, "4096", "9", "strict"]])
        self.assertEqual(done["isolation"]["profile"], "strict")
        # A job that set no limits stores none.
        other = b.submit("dummytask")
        b.wait_for(other["id"])
        self.assertEqual(b.sql("SELECT limits FROM jobs WHERE id = :'id'", id=other["id"]),
                         [[None]])


class PipelineRescueTest(PipelineTestCase):
    CONFIG = {"queue": {"workers": "2"},
              "storage": {"lease": "2s", "retry_backoff": "100ms"}}

    def kill_mid_pipeline(self, max_attempts):
        """Nodes A and B ([jobs] max_attempts); a pipeline dummytask ->
        sleep 3 s -> echoprev submitted to A; SIGKILL A while the sleep
        runs. Returns (a, b, pipeline, first job row at the kill, kill time)."""
        cfg = dict(self.CONFIG, jobs={"max_attempts": str(max_attempts)})
        a = self.start(cfg)
        b = self.start(cfg, schema=a.schema, node_id=a.node_id + "-b")
        pl = a.submit_pipeline([
            {"name": "first", "task_name": "dummytask", "task_params": {"v": 1}},
            {"name": "sleep", "task_name": "sleep", "task_params": {"seconds": 3},
             "timeout": 30},
            {"name": "echo", "task_name": "echoprev", "use_previous_results": True},
        ], name="rescue-%d" % max_attempts)
        ids = [j["id"] for j in pl["jobs"]]
        self.assertEqual(a.sql("SELECT count(*) FROM jobs WHERE pipeline_id = :'pl' AND "
                               "claimed_by IS DISTINCT FROM :'a' AND " + OPEN,
                               pl=pl["id"], a=a.node_id), [["0"]],
                         "an idle node A must store the pipeline claimed by itself: %s"
                         % self.pipeline_rows(a, pl["id"]))
        self.wait_sql(a, "SELECT status FROM jobs WHERE id = :'id' AND status = "
                      "'IN_PROGRESS' AND claimed_by = :'a' AND started_at > now() - "
                      "interval '2.5 s'", lambda rows: bool(rows), 5,
                      "the sleep job IN_PROGRESS on node A", interval=0.02, id=ids[1],
                      a=a.node_id, explain=lambda: str(self.pipeline_rows(a, pl["id"])))
        self.assertEqual(a.kill(signal.SIGKILL), -signal.SIGKILL)
        t_kill = time.time()
        first = self.pipeline_rows(a, pl["id"])[0]
        self.assertEqual(first[1:3], ["COMPLETED", a.node_id], first)
        return a, b, pl, first, t_kill

    def wait_pipeline_final(self, d, pl_id, timeout):
        self.wait_sql(d, "SELECT status FROM pipelines WHERE id = :'id' AND status IN "
                      "('COMPLETED', 'FAILED', 'CANCELLED')", lambda rows: bool(rows), timeout,
                      "pipeline final after node A was killed", id=pl_id,
                      explain=lambda: "jobs: %s\nattempts: %s" % (
                          self.pipeline_rows(d, pl_id), self.attempts_by_job(d)))

    def test_pipeline_rescued_mid_run_retries_on_another_node(self):
        a, b, pl, first, t_kill = self.kill_mid_pipeline(2)
        ids = [j["id"] for j in pl["jobs"]]
        self.wait_pipeline_final(b, pl["id"], 15)
        rows = self.pipeline_rows(b, pl["id"])
        attempts = self.attempts_by_job(b)
        what = "jobs: %s\nattempts: %s\n%s" % (rows, attempts, self.logs())
        self.assertEqual(b.sql("SELECT status, failure_reason FROM pipelines WHERE id = :'id'",
                               id=pl["id"]), [["COMPLETED", None]], what)
        # The sleep job: attempt 1 failed on A when its lease expired,
        # attempt 2 ran on B.
        atts = attempts.get(ids[1], [])
        self.assertEqual([(x[0], x[1], x[2]) for x in atts],
                         [(1, a.node_id, "FAILED"), (2, b.node_id, "COMPLETED")], what)
        self.assertIn("node %s stopped renewing its lease" % a.node_id, atts[0][3] or "", what)
        self.assertTrue(1.0 < atts[0][5] - t_kill < 5.0, "attempt 1 failed %.2fs after the "
                        "kill (lease 2s): %s" % (atts[0][5] - t_kill, atts))
        self.assertGreaterEqual(atts[1][4], atts[0][5], "attempt 2 started before attempt 1 "
                                "was failed: %s" % (atts,))
        self.assertEqual(rows[1][1:5], ["COMPLETED", b.node_id, None, 2], what)
        self.assertEqual(rows[1][6], {"slept": 3}, what)
        # The last job ran on B with the sleep's result.
        self.assertEqual(rows[2][1:5], ["COMPLETED", b.node_id, None, 1], what)
        self.assertEqual(rows[2][6], {"slept": 3}, what)
        self.assertEqual([(x[0], x[1], x[2]) for x in attempts.get(ids[2], [])],
                         [(1, b.node_id, "COMPLETED")], what)
        # The first job is not run again.
        self.assertEqual(rows[0][:8], first[:8], "the first job changed after the rescue")
        self.assertEqual(rows[0][4], 1, what)
        self.assertEqual([(x[0], x[1], x[2]) for x in attempts.get(ids[0], [])],
                         [(1, a.node_id, "COMPLETED")], what)
        self.assertNotIn(ids[0], finished_ids(b), "node B ran the first job again")
        self.assertLessEqual({ids[1], ids[2]}, finished_ids(b), "node B's log")
        # The API (through B) agrees.
        self.assertEqual(b.pipeline(pl["id"])["status"], "COMPLETED")
        j = b.job(ids[1])
        self.assertEqual((j["status"], j.get("attempt"), j.get("max_attempts")),
                         ("COMPLETED", 2, 2), j)
        self.assertEqual(b.result(ids[2]).get("metadata"), {"slept": 3})

    def test_pipeline_rescued_mid_run_without_retries_fails(self):
        a, b, pl, first, t_kill = self.kill_mid_pipeline(1)
        ids = [j["id"] for j in pl["jobs"]]
        self.wait_pipeline_final(b, pl["id"], 10)
        t_final = time.time()
        rows = self.pipeline_rows(b, pl["id"])
        attempts = self.attempts_by_job(b)
        what = "jobs: %s\nattempts: %s\n%s" % (rows, attempts, self.logs())
        self.assertEqual(b.sql("SELECT status, failure_reason FROM pipelines WHERE id = :'id'",
                               id=pl["id"]), [["FAILED", "job %s failed" % ids[1]]], what)
        self.assertEqual(rows[1][1:5], ["FAILED", a.node_id, None, 1], what)
        self.assertIn("node %s stopped renewing its lease" % a.node_id, rows[1][5] or "", what)
        self.assertEqual([(x[0], x[1], x[2]) for x in attempts.get(ids[1], [])],
                         [(1, a.node_id, "FAILED")], what)
        self.assertEqual(rows[2][1], "CANCELLED", what)
        self.assertEqual(rows[2][3], None, what)
        self.assertEqual(rows[2][5], "cancelled: job %s failed" % ids[1], what)
        self.assertEqual(rows[0][:8], first[:8], "the first job changed after the rescue")
        self.assertLess(t_final - t_kill, 6.0, "pipeline failed %.1fs after the kill (lease 2s)"
                        % (t_final - t_kill))
        self.assertEqual(finished_ids(b) & set(ids), set(), "node B ran pipeline jobs")
        self.assertEqual(b.pipeline(pl["id"])["status"], "FAILED")
        jobs = b.get_json("/api/pipelines/%s/jobs" % pl["id"])["jobs"]
        self.assertEqual([j["status"] for j in jobs], ["COMPLETED", "FAILED", "CANCELLED"], jobs)
        self.assertIn("node %s stopped renewing its lease" % a.node_id,
                      jobs[1].get("failure_reason", ""), jobs)


def url_with_host(url, host):
    """url (a libpq URL) with its host replaced by host (a socket dir);
    returns (new url, port)."""
    u = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(u.query)
    port = dict(query).get("port") or (str(u.port) if u.port else "5432")
    userinfo = u.netloc.rpartition("@")[0]
    netloc = userinfo + "@" if userinfo else ""
    query = [(k, v) for k, v in query if k not in ("host", "hostaddr", "port")]
    query += [("host", host), ("port", port)]
    return ("%s://%s%s?%s" % (u.scheme, netloc, u.path, urllib.parse.urlencode(query)), port)


def url_with_user(url, user):
    """url (a libpq URL) with user as its user."""
    u = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(u.query) if k != "user"]
    netloc = u.netloc.rpartition("@")[2]
    return "%s://%s%s?%s" % (u.scheme, netloc, u.path,
                             urllib.parse.urlencode(query + [("user", user)]))


class StorageDownTest(PgTestCase):
    def test_database_down_at_startup(self):
        # The database URL names a socket directory where no server
        # listens (the shared test server keeps running for the others).
        empty = tempfile.mkdtemp(prefix="valet-nopg-", dir="/tmp")
        _tmp_dirs.append(empty)
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


class NodeIdInUseTest(PgTestCase):
    def test_second_daemon_with_the_same_node_id(self):
        a = self.start({"queue": {"workers": "2"}})
        job = a.submit("sleep", {"seconds": 2.5}, timeout=30)
        self.wait_sql(a, "SELECT status FROM jobs WHERE id = :'id' AND status = 'IN_PROGRESS'",
                      lambda rows: bool(rows), 5, "job IN_PROGRESS on A", interval=0.02,
                      id=job["id"])
        twin = self.start(daemon=LateDaemon({"queue": {"workers": "2"}}, store="postgres",
                                            schema=a.schema, node_id=a.node_id))
        # Until A's job is done, the twin must stay unhealthy and take
        # nothing over; what it answers is checked after the job's fate.
        answers = {}
        deadline = time.monotonic() + 10
        while a.job(job["id"])["status"] not in FINAL:
            if time.monotonic() > deadline:
                self.fail("A's job not final within 10s\n%s" % self.logs())
            r = twin.get("/api/status")
            key = ("GET /api/status", r.status, (r.json or {}).get("storage_healthy"))
            answers[key] = answers.get(key, 0) + 1
            r = twin.post("/api/jobs", {"name": "twin", "task_name": "dummytask"})
            key = ("POST /api/jobs", r.status, (r.json or {}).get("message"))
            answers[key] = answers.get(key, 0) + 1
            time.sleep(0.1)
        self.assertTrue(twin.alive(), twin.log_tail())
        rows = a.sql("SELECT status, node_id, failure_reason, attempt, claimed_by FROM jobs "
                     "WHERE id = :'id'", id=job["id"])
        self.assertEqual(rows, [["COMPLETED", a.node_id, None, "1", None]],
                         "A's running job after a second daemon with its node id started\n%s"
                         % self.logs())
        self.assertEqual(a.sql("SELECT count(*) FROM attempts WHERE status <> 'COMPLETED'"),
                         [["0"]], self.attempts_by_job(a))
        self.assertEqual(a.sql("SELECT pid, stopped_at FROM nodes WHERE node_id = :'n'",
                               n=a.node_id), [[str(a.proc.pid), None]],
                         "the nodes row is not A's any more")
        self.assertNotIn("released_from_earlier_run", twin.log_text(),
                         "the second daemon registered: %s" % twin.log_tail())
        self.assertEqual(set(answers), {("GET /api/status", 503, False),
                                        ("POST /api/jobs", 503, STORAGE_DOWN)},
                         "answers of the second daemon while A ran its job: %s" % answers)
        # The log quotes the message: its quotes may come escaped.
        in_use = r'node id \\?"%s\\?" is in use by another valetd' % re.escape(a.node_id)
        self.assertRegex(twin.log_text(), in_use, "the second daemon's log does not say why")
        # Once A stops, the twin gets the node id (it keeps retrying).
        rc, _ = a.terminate()
        a.check_exit(rc)
        deadline = time.monotonic() + 8
        while twin.get("/api/status").status != 200:
            if time.monotonic() > deadline:
                self.fail("the second daemon is not healthy 8s after the first one stopped\n%s"
                          % twin.log_tail())
            time.sleep(0.05)
        self.assertEqual(a.sql("SELECT pid, stopped_at FROM nodes WHERE node_id = :'n'",
                               n=a.node_id), [[str(twin.proc.pid), None]])
        j2 = twin.submit("dummytask", {"twin": 1})
        twin.wait_for(j2["id"], "COMPLETED", timeout=5)


class RetryTest(PgTestCase):
    def attempts_ok(self, d, job, n, message):
        """job (failtask) ended FAILED after n attempts on d, all recorded."""
        done = d.wait_for(job["id"], FINAL, timeout=10)
        atts = self.attempts_by_job(d).get(job["id"], [])
        what = "job %s\nattempts (attempt, node, status, reason, started, finished): %s" % (
            done, atts)
        self.assertEqual(done["status"], "FAILED", what)
        self.assertEqual(done.get("failure_reason"), message, what)
        if n > 1:
            self.assertEqual((done.get("attempt"), done.get("max_attempts")), (n, n), what)
        else:
            self.assertNotIn("max_attempts", done, what)
        self.assertEqual([(x[0], x[1], x[2]) for x in atts],
                         [(i, d.node_id, "FAILED") for i in range(1, n + 1)] if n > 1 else [],
                         what)
        for x in atts:
            self.assertIn(message, x[3] or "", what)
        for x, y in zip(atts, atts[1:]):
            # retry_backoff 50ms, doubling, times 0.5-1.0: at least 25 ms after the
            # attempt ended, so after it started. (Its finished_at is when the retry
            # was written, which can be later than its end by a commit under load.)
            self.assertGreaterEqual(y[4] - x[4], 0.025, "retried too early: " + what)
        rows = d.sql("SELECT status, attempt, max_attempts, failure_reason, claimed_by "
                     "FROM jobs WHERE id = :'id'", id=job["id"])
        self.assertEqual(rows, [["FAILED", str(n), str(n), message, None]], what)

    def test_retries_recorded_on_one_node(self):
        d = self.start({"queue": {"workers": "2"}, "jobs": {"max_attempts": "3"},
                        "storage": {"retry_backoff": "50ms"}})
        three = d.submit("failtask", {"message": "boom three"})
        two = d.submit("failtask", {"message": "boom two"}, max_attempts=2)
        one = d.submit("failtask", {"message": "boom one"}, max_attempts=1)
        ok = d.submit("dummytask", {"fine": True})
        self.attempts_ok(d, three, 3, "boom three")
        self.attempts_ok(d, two, 2, "boom two")
        self.attempts_ok(d, one, 1, "boom one")
        done = d.wait_for(ok["id"], FINAL, timeout=5)
        self.assertEqual((done["status"], done.get("attempt"), done.get("max_attempts")),
                         ("COMPLETED", 1, 3), done)
        self.assertEqual([(x[0], x[2]) for x in self.attempts_by_job(d).get(ok["id"], [])],
                         [(1, "COMPLETED")])

    def test_task_section_sets_max_attempts(self):
        d = self.start({"queue": {"workers": "2"}, "storage": {"retry_backoff": "50ms"},
                        "task.failtask": {"max_attempts": "2"}})
        two = d.submit("failtask", {"message": "task default"})
        three = d.submit("failtask", {"message": "request wins"}, max_attempts=3)
        other = d.submit("dummytask", {"x": 1})
        self.attempts_ok(d, two, 2, "task default")
        self.attempts_ok(d, three, 3, "request wins")
        done = d.wait_for(other["id"], FINAL, timeout=5)
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertNotIn("max_attempts", done, "[task.failtask] changed dummytask: %s" % done)
        self.assertEqual(d.sql("SELECT max_attempts, attempt FROM jobs WHERE id = :'id'",
                               id=other["id"]), [["1", "1"]])


if __name__ == "__main__":
    unittest.main()
