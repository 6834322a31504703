"""An upgrade of a PostgreSQL schema made by an earlier valetd: its data
must survive the migrations this build adds (issue 15: migration 009 moves
each job's result from the results table into columns of jobs and leaves a
view named results in the table's place).

Theory of operation. The test builds the schema an earlier valetd left:
migrations 001 to 008 (storage/migrations), applied with psql as valetd
applies them - the @SCHEMA@ mark replaced, all in one transaction, each
recorded in schema_migrations - then rows as that valetd wrote them: a
completed job with its results row, a failed one (an error and no
metadata), a cancelled one without a result, and a pipeline whose node died
after its first job finished (its second job, which uses the previous
result, queued again and held by nobody), and a job the upgraded node was
running when it stopped. Then this build's valetd starts on the schema with
that node's id, applies what is missing, fails the job it was running (the
queue functions as 009 replaced them write that result), and the test reads
everything back: through the API (results, the pipeline's second job run
with the first job's result), through the results view (the same columns as the old table,
the same values), a result deleted through the API, a write through the
view refused, and, as a member of valet_reader, no result data at all.

NewerSchemaTest: the other way round, a schema newer than this build (a
row in schema_migrations for a version it does not know, as a newer valetd
leaves it): refused at the start, and by a running node as soon as a newer
one NOTIFYs that it migrated; nothing is written meanwhile and nothing is
lost once the versions agree again.

Suite test_pg_upgrade@postgres (tests/run_tests.sh starts the server).
"""
import glob
import os
import random
import re
import subprocess
import time
import unittest
import uuid

import valetd
from pgcase import LateDaemon
from valetd import Daemon

MIGRATIONS = sorted(glob.glob(os.path.join(valetd.REPO, "storage", "migrations", "*.sql")))
BEFORE = 8  # the schema version of the valetd before results moved into jobs
READER_SQL = os.path.join(valetd.REPO, "packaging", "sql", "valet_reader.sql")
RESULT_AT = "2026-01-02 03:04:05.123456+00"


def schema_at(schema, version):
    """Make schema as a valetd that knew migrations 1..version left it."""
    parts = ["BEGIN;", "CREATE SCHEMA %s;" % schema,
             "CREATE TABLE %s.schema_migrations (version integer PRIMARY KEY, name text "
             "NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());" % schema]
    for i, path in enumerate(MIGRATIONS[:version]):
        with open(path) as f:
            parts.append(f.read().replace("@SCHEMA@", schema))
        parts.append("INSERT INTO %s.schema_migrations (version, name) VALUES (%d, '%s');"
                     % (schema, i + 1, os.path.basename(path)[:-4]))
    parts.append("COMMIT;")
    valetd.sql("\n".join(parts))


def psql_as(role, query):
    """(exit status, stderr) of query run as role (a LOGIN role)."""
    cmd = [valetd._psql(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
           valetd.database_url(), "-c", "SET ROLE %s; %s" % (role, query)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60)
    return r.returncode, r.stderr.strip()


class UpgradeTest(unittest.TestCase):
    def setUp(self):
        self.schema = valetd.new_schema()
        self.d = None
        schema_at(self.schema, BEFORE)
        self.ids = {k: str(uuid.uuid4()) for k in ("done", "failed", "cancelled", "first",
                                                   "second", "running")}
        self.node = "node-" + self.schema.replace("_", "-")
        self.pl = str(uuid.uuid4())
        self.old_columns = self.columns("results")
        self.write_rows()

    def tearDown(self):
        if self.d:
            self.d.kill()
            self.d.cleanup()

    def sql(self, query, **params):
        return valetd.sql(query, schema=self.schema, **params)

    def columns(self, table):
        return self.sql("SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_schema = :'s' AND table_name = :'t' "
                        "ORDER BY ordinal_position", s=self.schema, t=table)

    def write_rows(self):
        """Rows as the valetd of schema version 8 wrote them."""
        i = self.ids
        self.sql(
            "INSERT INTO jobs (id, name, task_name, timeout_ms, status, created_at, "
            "completed_at, failure_reason) VALUES "
            "(:'done', 'done', 'dummytask', 1000, 'COMPLETED', now(), now(), NULL), "
            "(:'failed', 'failed', 'failtask', 1000, 'FAILED', now(), now(), 'boom'), "
            "(:'cancelled', 'c', 'dummytask', 1000, 'CANCELLED', now(), now(), 'cancelled');"
            "INSERT INTO pipelines (id, name, status, created_at, started_at) "
            "VALUES (:'pl', 'pl', 'IN_PROGRESS', now(), now());"
            "INSERT INTO jobs (id, name, task_name, timeout_ms, status, created_at, "
            "completed_at, pipeline_id, pipeline_index, next_job_id, use_previous_results, "
            "due_at) VALUES "
            "(:'first', 'first', 'dummytask', 5000, 'COMPLETED', now(), now(), :'pl', 0, "
            ":'second', false, NULL), "
            "(:'second', 'second', 'echoprev', 5000, 'PENDING', now(), NULL, :'pl', 1, NULL, "
            "true, now());"
            "INSERT INTO jobs (id, name, task_name, timeout_ms, status, created_at, "
            "started_at, attempt, claimed_by, claimed_at, node_id) VALUES (:'running', "
            "'running', 'sleep', 60000, 'IN_PROGRESS', now(), now(), 1, :'node', now(), "
            ":'node');"
            "INSERT INTO results (job_id, metadata, error, created_at) VALUES "
            "(:'done', '{\"sha\": \"ab\", \"n\": [1, 2]}', NULL, :'t'), "
            "(:'failed', NULL, 'exited with status 3', :'t'), "
            "(:'first', '{\"n\": 42}', NULL, :'t')",
            pl=self.pl, t=RESULT_AT, node=self.node, **i)

    def upgrade(self):
        self.d = Daemon({"queue": {"workers": "1"}}, store="postgres", schema=self.schema,
                        node_id=self.node)
        self.d.start()
        self.assertEqual(self.sql("SELECT max(version) FROM schema_migrations"),
                         [[str(len(MIGRATIONS))]])

    def test_results_survive_the_upgrade(self):
        self.upgrade()
        d, i = self.d, self.ids
        self.assertEqual(d.result(i["done"]),
                         {"job_id": i["done"], "metadata": {"sha": "ab", "n": [1, 2]}})
        self.assertEqual(d.result(i["failed"]),
                         {"job_id": i["failed"], "error": "exited with status 3"})
        self.assertEqual(d.get("/api/jobs/%s/results" % i["cancelled"]).status, 404)
        self.assertEqual(d.job(i["done"])["status"], "COMPLETED")
        # The job the node ran when it stopped: failed at its start, with
        # its result, as 009's fail_attempt() writes it.
        running = d.wait_for(i["running"], "FAILED", timeout=10)
        self.assertIn("while the job was running", running["failure_reason"])
        self.assertEqual(d.result(i["running"]),
                         {"job_id": i["running"], "error": running["failure_reason"]})
        # results is a view now, with the old table's columns and rows (the
        # pipeline's second job may have run meanwhile: its row is new).
        self.assertEqual(self.sql("SELECT relkind FROM pg_class WHERE oid = "
                                  "to_regclass(:'s' || '.results')", s=self.schema), [["v"]])
        self.assertEqual(self.columns("results"), self.old_columns)
        self.assertEqual(
            self.sql("SELECT job_id, metadata->>'sha', error, created_at = :'t' FROM results "
                     "WHERE job_id NOT IN (:'second', :'running') "
                     "ORDER BY job_id = :'done' DESC, job_id = :'failed' DESC",
                     t=RESULT_AT, **i),
            [[i["done"], "ab", None, "t"], [i["failed"], None, "exited with status 3", "t"],
             [i["first"], None, None, "t"]])

    def test_pipeline_uses_the_result_from_before(self):
        # The pipeline's second job is claimed by the new node and runs
        # with the first job's result, written before the upgrade.
        self.upgrade()
        second = self.d.wait_for(self.ids["second"], "COMPLETED", timeout=20)
        self.assertEqual(second["status"], "COMPLETED", second)
        self.assertEqual(self.d.result(self.ids["second"])["metadata"], {"n": 42})
        self.assertEqual(self.d.pipeline(self.pl)["status"], "COMPLETED")

    def test_delete_result_and_writes_through_the_view(self):
        self.upgrade()
        d, i = self.d, self.ids
        self.assertEqual(d.delete("/api/jobs/%s/results" % i["done"]).status, 204)
        self.assertEqual(d.get("/api/jobs/%s/results" % i["done"]).status, 404)
        self.assertEqual(d.delete("/api/jobs/%s/results" % i["done"]).status, 404)
        self.assertEqual(d.job(i["done"])["status"], "COMPLETED")
        self.assertEqual(self.sql("SELECT count(*) FROM results WHERE job_id = :'done'", **i),
                         [["0"]])
        # The view is no table: a write through it (an older valetd's
        # delete of a result) is refused and deletes no job.
        for q in ("DELETE FROM results WHERE job_id = :'failed'",
                  "UPDATE results SET error = 'x' WHERE job_id = :'failed'",
                  "INSERT INTO results (job_id, error) VALUES (:'cancelled', 'x')"):
            with self.subTest(write=q.split()[0]):
                with self.assertRaisesRegex(AssertionError, "is a view since migration 009"):
                    self.sql(q, **i)
        self.assertEqual(d.result(i["failed"]),
                         {"job_id": i["failed"], "error": "exited with status 3"})
        self.assertEqual(self.sql("SELECT count(*) FROM jobs WHERE id = :'cancelled' "
                                  "AND result_at IS NULL", **i), [["1"]])

    def test_reader_sees_no_results(self):
        # valet_reader (migration 005 made it: the test's role may create
        # roles) may read the dashboards' views, not the results view, not
        # even after packaging/sql/valet_reader.sql granted on "the views".
        self.upgrade()
        role = "valet_t_upgrade_%d_%06x" % (os.getpid(), random.randrange(16 ** 6))
        valetd.sql('CREATE ROLE "%s" LOGIN IN ROLE valet_reader' % role)
        self.addCleanup(valetd.sql, 'DROP ROLE "%s"' % role)
        for again in (False, True):
            if again:
                r = subprocess.run([valetd._psql(), "-X", "-q", "-d", valetd.database_url(),
                                    "-v", "schema=" + self.schema, "-f", READER_SQL],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                self.assertEqual(r.returncode, 0, r.stdout)
            with self.subTest(after_reader_sql=again):
                rc, err = psql_as(role, "SELECT count(*) FROM %s.finished_jobs" % self.schema)
                self.assertEqual(rc, 0, err)
                for q in ("SELECT * FROM %s.results", "SELECT result_metadata FROM %s.jobs",
                          "SELECT task_params FROM %s.jobs"):
                    rc, err = psql_as(role, q % self.schema)
                    self.assertNotEqual(rc, 0, q)
                    self.assertIn("permission denied", err)


class NewerSchemaTest(unittest.TestCase):
    """This build knows len(MIGRATIONS) versions; a newer valetd records
    one more (NEWER) when it migrates, and NOTIFYs <schema>_schema."""

    NEWER = len(MIGRATIONS) + 1
    REFUSED = (r'the database schema \\?"%s\\?" is at version %d, newer than this '
               r'valetd knows \(%d\)')

    def setUp(self):
        self.schema = valetd.new_schema()
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.kill()
            d.cleanup()

    def sql(self, query, **params):
        return valetd.sql(query, schema=self.schema, **params)

    def daemon(self, late=False):
        cls = LateDaemon if late else Daemon
        d = cls({"queue": {"workers": "2"}}, store="postgres", schema=self.schema)
        self.daemons.append(d)
        return d.start()

    def newer(self, notify):
        """What a newer valetd's migration leaves: its version recorded
        and, when notify, the NOTIFY of its commit."""
        self.sql("BEGIN; INSERT INTO schema_migrations (version, name) VALUES (%d, "
                 "'%03d_from_the_future'); %s COMMIT"
                 % (self.NEWER, self.NEWER, "SELECT pg_notify('%s_schema', '%d');"
                    % (self.schema, self.NEWER) if notify else ""))

    def wait_status(self, d, status, seconds):
        deadline = time.monotonic() + seconds
        while True:
            r = d.get("/api/status")
            if r.status == status:
                return
            if time.monotonic() > deadline:
                self.fail("GET /api/status %r, not %d, after %gs\n%s"
                          % (r, status, seconds, d.log_tail()))
            time.sleep(0.05)

    def refused_in_log(self, d, seconds=5):
        """The setup's refusal, logged at its next (re)connect."""
        want = self.REFUSED % (self.schema, self.NEWER, len(MIGRATIONS))
        deadline = time.monotonic() + seconds
        while not re.search(want, d.log_text()):
            if time.monotonic() > deadline:
                self.assertRegex(d.log_text(), want)
            time.sleep(0.05)

    def test_refused_at_the_start(self):
        schema_at(self.schema, len(MIGRATIONS))
        self.newer(notify=False)
        jobs = self.sql("SELECT count(*) FROM jobs")
        d = self.daemon(late=True)
        time.sleep(1.0)
        self.assertTrue(d.alive(), d.log_tail())
        self.assertEqual(d.get("/api/status").status, 503)
        r = d.post("/api/jobs", {"name": "x", "task_name": "dummytask"})
        self.assertEqual(r.status, 503, r)
        self.refused_in_log(d)
        self.assertEqual(self.sql("SELECT count(*) FROM jobs"), jobs)
        self.assertEqual(self.sql("SELECT count(*) FROM nodes"), [["0"]],
                         "the node registered in a schema it refused")
        # The versions agree again (here: the newer migration is gone):
        # the node comes up by itself and works.
        self.sql("DELETE FROM schema_migrations WHERE version = %d" % self.NEWER)
        self.wait_status(d, 200, 10)
        job = d.submit("dummytask", {"n": 1})
        d.wait_for(job["id"], "COMPLETED", timeout=10)

    def test_a_running_node_stops_writing_when_a_newer_one_migrates(self):
        d = self.daemon()
        job = d.submit("sleep", {"seconds": 1.5}, timeout=30)
        d.wait_for(job["id"], "IN_PROGRESS", timeout=5)
        self.newer(notify=True)
        self.wait_status(d, 503, 2)
        self.assertIn("a newer valetd migrated the database schema", d.log_text())
        self.refused_in_log(d)
        # The job ends while the node refuses the schema: nothing of it is
        # written, and nothing new is accepted.
        time.sleep(2.0)
        self.assertEqual(self.sql("SELECT status FROM jobs WHERE id = :'id'", id=job["id"]),
                         [["IN_PROGRESS"]])
        self.assertEqual(d.post("/api/jobs", {"name": "x", "task_name": "dummytask"}).status,
                         503)
        # Once the versions agree again, what it kept is written.
        self.sql("DELETE FROM schema_migrations WHERE version = %d" % self.NEWER)
        self.wait_status(d, 200, 10)
        self.assertEqual(d.wait_for(job["id"], "COMPLETED", timeout=10)["status"], "COMPLETED")
        self.assertEqual(self.sql("SELECT status, result_at IS NOT NULL FROM jobs "
                                  "WHERE id = :'id'", id=job["id"]), [["COMPLETED", "t"]])

    def test_an_older_version_notified_changes_nothing(self):
        # A node of the same version (or an older one, whose migrations
        # this schema has) NOTIFYs too: that is no reason to stop.
        d = self.daemon()
        self.sql("SELECT pg_notify('%s_schema', '%d')" % (self.schema, len(MIGRATIONS)))
        job = d.submit("dummytask", {"n": 2})
        d.wait_for(job["id"], "COMPLETED", timeout=10)
        self.assertEqual(d.get("/api/status").status, 200)
        self.assertNotIn("a newer valetd migrated", d.log_text())

    def heard_at_start(self):
        """What psql, LISTENing on <schema>_schema, hears while a valetd
        starts on the schema."""
        listen = subprocess.Popen(
            [valetd._psql(), "-X", "-d", valetd.database_url(), "-c",
             "LISTEN %s_schema" % self.schema, "-c", "SELECT pg_sleep(3)"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.0)
        self.daemon()
        return listen.communicate(timeout=30)[0]

    def test_migrating_notifies_the_new_version(self):
        # The NOTIFY a node hears comes from the migration itself: a valetd
        # migrates a fresh schema.
        self.assertRegex(self.heard_at_start(), r'notification "%s_schema" with payload "%d"'
                         % (self.schema, len(MIGRATIONS)))
        # A second start migrates nothing and says nothing.
        first = self.daemons.pop()
        first.kill()
        first.cleanup()
        self.assertNotIn("notification", self.heard_at_start())


if __name__ == "__main__":
    unittest.main()
