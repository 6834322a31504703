"""The harness of the PostgreSQL integration tests (test_pg,
test_pg_cluster, test_pg_schema): PgTestCase starts daemons on a schema of
the test's own (valetd.Daemon with store="postgres") and stops them with
SIGTERM at the test's end (a non-zero exit fails the test), submits many
jobs fast and waits on SQL conditions (Daemon.sql), so that the checks are
about what is really in the database, not only about what the API says;
the daemons' logs stay until the module ends, so that a failure can show
them (a test module imports tearDownModule, which removes them).
CommitHold holds commits back with an advisory lock a deferred trigger
takes; LateDaemon is a daemon whose start the test finishes itself;
PipelineTestCase submits and follows pipelines.
"""

import json
import os
import random
import re
import shutil
import subprocess
import threading
import time
import unittest
import urllib.parse

import valetd
from valetd import Daemon


# Jobs that are not final yet, in SQL.
OPEN = "status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED')"


STORAGE_DOWN = "storage unavailable - try again later"


FAR = 3600.0


tmp_dirs = []


def tearDownModule():
    for d in tmp_dirs:
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
        tmp_dirs.append(d.tmp)
        if self.d is None:
            self.d = d
        self.addCleanup(self._stop, d)
        try:
            d.start()
            if schema is not None:
                # Joining the nodes of a schema: registered before the test
                # goes on, so that every other node knows it shares the
                # queue (a node alone holds what it is given).
                deadline = time.monotonic() + 10
                while "node registered" not in d.log_text():
                    if time.monotonic() > deadline:
                        raise AssertionError("node %s did not register within 10s\n%s"
                                             % (d.node_id, d.log_tail()))
                    time.sleep(0.01)
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


def sleep_body(seconds, name="pg-sleep"):
    return {"name": name, "task_name": "sleep", "task_params": {"seconds": seconds},
            "timeout": 30}


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
