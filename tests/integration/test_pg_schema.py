"""PostgreSQL integration tests of the schema (issue 3): the migrations
(concurrent, failed, from an earlier schema), the schema as the README
documents it, the operator views, and retention. The harness is
pgcase.py's. Run with tests/run_tests.sh (suite test_pg_schema@postgres).
"""

import os
import random
import re
import socket
import subprocess
import time
import unittest

import valetd
from valetd import Daemon, fmt_ts
# tearDownModule: unittest calls it, to remove the daemons' logs.
from pgcase import (  # noqa: F401
    tearDownModule, FAR, PgTestCase, LateDaemon, pipeline_body,
    url_with_user)


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
        # ANALYZE skips the payload columns (010) and keeps the others'
        # statistics.
        d.sql("ANALYZE %s.jobs, %s.pipelines, %s.attempts" % ((d.schema,) * 3))
        stats = {tuple(r) for r in d.sql("SELECT tablename, attname FROM pg_stats "
                                         "WHERE schemaname = :'s'", s=d.schema)}
        self.assertIn(("jobs", "status"), stats)
        self.assertIn(("jobs", "task_name"), stats)
        payload = ("task_params", "result_metadata", "limits", "isolation", "description",
                   "failure_reason", "result_error")
        for col in payload:
            self.assertNotIn(("jobs", col), stats)
        zero = {tuple(r) for r in d.sql(
            "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON "
            "c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :'s' AND a.attnum > 0 AND a.attstattarget = 0", s=d.schema)}
        self.assertEqual(zero, {("jobs", c) for c in payload} | {
            ("pipelines", "description"), ("pipelines", "failure_reason"),
            ("attempts", "failure_reason")})

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


if __name__ == "__main__":
    unittest.main()
