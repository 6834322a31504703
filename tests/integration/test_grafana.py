"""Grafana dashboards and alert rules on the PostgreSQL views, and the
read-only role valet_reader (issue 17).

Theory of operation. DashboardFilesTest reads packaging/grafana without a
daemon: every dashboard is Grafana dashboard JSON (schemaVersion, a uid,
panels with unique ids and a place on the grid, data source references that
name a provisioned data source or a data source variable), the provisioning
files point where the packages install things, and the alert rules are
complete (each query's data source provisioned, the condition one of the
rule's refIds).

ReaderTest runs a known workload on two valetd nodes sharing a schema:
completed, failed and timed-out jobs, a node killed while it ran a job (its
lease expires and the other node fails the job as "lost node"), a job whose
row says it started an hour ago (stuck), a queued job behind busy workers.
Then, connected as a LOGIN role that is only a member of valet_reader, it
runs every SQL query of the dashboard (its variables' queries first, whose
values stand for "All") and of the alert rules, with Grafana's macros
replaced as Grafana would ($__timeFilter, $__timeGroupAlias, $__interval,
...): each must return rows. The same role cannot read a table, or write.
Without CREATEROLE, valetd's migration leaves the role alone; then
packaging/sql/valet_reader.sql makes it and grants on the views.

Suite test_grafana@postgres (tests/run_tests.sh starts the server).
"""
import csv
import glob
import io
import json
import os
import random
import re
import signal
import subprocess
import time
import unittest
import urllib.parse

import valetd
from valetd import Daemon

GRAFANA = os.path.join(valetd.REPO, "packaging", "grafana")
PROVISIONING = os.path.join(GRAFANA, "provisioning")
DASHBOARD = os.path.join(GRAFANA, "valet-postgres.json")
ALERTS = os.path.join(PROVISIONING, "alerting", "valet-postgres.yaml")
READER_SQL = os.path.join(valetd.REPO, "packaging", "sql", "valet_reader.sql")
VIEWS = {"queue_depth", "task_throughput", "task_durations", "running_jobs", "finished_jobs",
         "queue_age", "node_status", "stuck_jobs"}
TABLES = {"jobs", "results", "attempts", "pipelines", "nodes", "schema_migrations"}

try:
    import yaml  # python3-yaml (packaging/deps.sh --test)
except ImportError:  # pragma: no cover - reported by the tests that need it
    yaml = None


def load_yaml(path):
    if yaml is None:
        raise AssertionError("python3-yaml is not installed (packaging/deps.sh --test)")
    with open(path) as f:
        return yaml.safe_load(f)


def url_with_user(url, user):
    """url (a libpq URL) with user as its user."""
    u = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(u.query) if k != "user"]
    return "%s://%s%s?%s" % (u.scheme, u.netloc.rpartition("@")[2], u.path,
                             urllib.parse.urlencode(query + [("user", user)]))


def psql_as(user, query, stdin_file=None, variables=None):
    """Run query (or the file) as user (None: the test database's own, a
    superuser) on the test database. Returns (exit status, rows of the last
    result, stderr)."""
    url = valetd.database_url()
    cmd = [valetd._psql(), "-X", "-q", "-A", "-t", "--csv", "-v", "ON_ERROR_STOP=1",
           "-d", url_with_user(url, user) if user else url]
    for k, v in (variables or {}).items():
        cmd += ["-v", "%s=%s" % (k, v)]
    if stdin_file:
        cmd += ["-f", stdin_file]
    r = subprocess.run(cmd, input=None if stdin_file else query, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=60)
    return r.returncode, list(csv.reader(io.StringIO(r.stdout))), r.stderr.strip()


def grafana_sql(sql, schema, variables):
    """sql with Grafana's PostgreSQL macros and the dashboard's variables
    replaced the way Grafana does it for a 6 hour range and 1m interval:
    a multi-value variable becomes its quoted values, comma-separated."""
    group = r"to_timestamp(floor(extract(epoch FROM \1) / 60) * 60)"
    sql = re.sub(r"\$__timeGroupAlias\(\s*([\w.]+)\s*,[^)]*\)", group + ' AS "time"', sql)
    sql = re.sub(r"\$__timeGroup\(\s*([\w.]+)\s*,[^)]*\)", group, sql)
    sql = re.sub(r"\$__timeFilter\(\s*([\w.]+)\s*\)",
                 r"\1 BETWEEN now() - interval '6 hours' AND now()", sql)
    sql = sql.replace("$__timeFrom()", "(now() - interval '6 hours')")
    sql = sql.replace("$__timeTo()", "now()")
    sql = sql.replace("$__interval_ms", "60000").replace("$__interval", "'1m'")
    sql = sql.replace("${schema}", schema).replace("$schema", schema)
    for name, values in variables.items():
        quoted = ",".join("'%s'" % v.replace("'", "''") for v in values)
        sql = sql.replace("${%s}" % name, quoted)
        sql = re.sub(r"\$%s\b" % name, quoted, sql)
    if "$" in sql.replace("$$", ""):
        raise AssertionError("a Grafana macro or variable left in %r" % sql)
    return sql


def dashboard_panels(dash):
    """Every panel, those inside rows too."""
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


class DashboardFilesTest(unittest.TestCase):
    def provisioned_datasources(self):
        uids = {}
        for path in glob.glob(os.path.join(PROVISIONING, "datasources", "*.yaml")):
            doc = load_yaml(path)
            self.assertEqual(doc.get("apiVersion"), 1, path)
            for ds in doc["datasources"]:
                uids[ds["uid"]] = ds
        return uids

    def test_dashboards_are_grafana_json(self):
        provisioned = self.provisioned_datasources()
        paths = sorted(glob.glob(os.path.join(GRAFANA, "*.json")))
        self.assertIn(DASHBOARD, paths)
        uids = set()
        for path in paths:
            with self.subTest(dashboard=os.path.basename(path)):
                with open(path) as f:
                    dash = json.load(f)
                self.assertIsInstance(dash.get("schemaVersion"), int)
                self.assertGreaterEqual(dash["schemaVersion"], 30)
                self.assertTrue(dash.get("title"))
                self.assertTrue(re.match(r"^[A-Za-z0-9_-]{1,40}$", dash.get("uid", "")))
                self.assertNotIn(dash["uid"], uids, "two dashboards with one uid")
                uids.add(dash["uid"])
                self.assertNotIn("id", dash, "a provisioned dashboard has no database id")
                variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
                panels = dashboard_panels(dash)
                self.assertGreater(len(panels), 0)
                ids = [p.get("id") for p in panels]
                self.assertTrue(all(isinstance(i, int) for i in ids), ids)
                self.assertEqual(len(ids), len(set(ids)), "panel ids not unique: %s" % ids)
                for p in panels:
                    pos = p.get("gridPos", {})
                    self.assertTrue(p.get("type") and p.get("title"), p)
                    self.assertTrue(all(isinstance(pos.get(k), int) for k in "hwxy"), p)
                    self.assertLessEqual(pos["x"] + pos["w"], 24, p["title"])
                    if p["type"] == "row":
                        continue
                    refs = [p.get("datasource")] + [t.get("datasource")
                                                    for t in p.get("targets", [])]
                    self.assertTrue(p.get("targets"), p["title"])
                    for ref in refs:
                        self.assertIsInstance(ref, dict, p["title"])
                        uid = ref.get("uid", "")
                        if uid.startswith("$"):
                            var = variables.get(uid.strip("${}"))
                            self.assertTrue(var and var["type"] == "datasource",
                                            "%s: %s is no data source variable"
                                            % (p["title"], uid))
                        else:
                            self.assertIn(uid, provisioned, p["title"])
                            self.assertEqual(ref.get("type"), provisioned[uid]["type"])
                for v in variables.values():
                    if v["type"] == "query":
                        self.assertIn(v["datasource"]["uid"], provisioned, v["name"])

    def test_postgres_dashboard_reads_views_only(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        queries = [t["rawSql"] for p in dashboard_panels(dash) for t in p.get("targets", [])]
        queries += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
        for q in queries:
            names = set(re.findall(r"\$\{schema\}\.(\w+)", q))
            self.assertTrue(names, q)
            self.assertLessEqual(names, VIEWS, q)

    def test_provisioning_files(self):
        ds = self.provisioned_datasources()["valet-postgres"]
        self.assertEqual(ds["type"], "postgres")
        # The connection comes from Grafana's environment, nothing is baked in.
        for value in (ds["url"], ds["user"], ds["jsonData"]["database"],
                      ds["secureJsonData"]["password"]):
            self.assertRegex(value, r"^\$\{?VALET_PG_[A-Z]+\}?$")
        prov = load_yaml(os.path.join(PROVISIONING, "dashboards", "valet.yaml"))
        path = prov["providers"][0]["options"]["path"]
        self.assertEqual(path, "/usr/share/valet/grafana/dashboards")
        with open(os.path.join(valetd.REPO, "Makefile")) as f:
            self.assertTrue("GRAFANADIR ?= $(PREFIX)/share/valet/grafana" in f.read(),
                            "the Makefile installs the dashboards elsewhere")

    def test_alert_rules(self):
        provisioned = self.provisioned_datasources()
        doc = load_yaml(ALERTS)
        self.assertEqual(doc["apiVersion"], 1)
        rules = [r for g in doc["groups"] for r in g["rules"]]
        self.assertGreaterEqual(len(rules), 4)
        self.assertEqual(len({r["uid"] for r in rules}), len(rules))
        for r in rules:
            with self.subTest(rule=r["title"]):
                refs = {d["refId"]: d for d in r["data"]}
                self.assertIn(r["condition"], refs)
                for d in r["data"]:
                    self.assertEqual(d["model"]["refId"], d["refId"])
                    if d["datasourceUid"] == "__expr__":
                        self.assertIn(d["model"]["expression"], refs)
                    else:
                        self.assertIn(d["datasourceUid"], provisioned)
                        self.assertTrue(d["model"]["rawSql"].strip())
                self.assertIn(r["noDataState"], ("OK", "NoData", "Alerting"))
                self.assertTrue(r["annotations"]["summary"])


class ReaderTest(unittest.TestCase):
    """The workload once; then each check as valet_reader's member."""

    @classmethod
    def setUpClass(cls):
        cls.daemons = []
        cls.role = "valet_t_grafana_%d_%06x" % (os.getpid(), random.randrange(16 ** 6))
        valetd.sql('CREATE ROLE "%s" LOGIN' % cls.role)
        try:
            cls.workload()
        except BaseException:
            cls.tearDownClass()
            raise
        valetd.sql('GRANT valet_reader TO "%s"' % cls.role)

    @classmethod
    def tearDownClass(cls):
        for d in cls.daemons:
            d.kill()
            d.cleanup()
        valetd.sql('DROP ROLE IF EXISTS "%s"' % cls.role)

    @classmethod
    def start(cls, daemon):
        cls.daemons.append(daemon)
        cls.d = daemon
        return daemon.start()

    @classmethod
    def wait_sql(cls, d, query, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            rows = d.sql(query)
            if pred(rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError("%s: not within %ds: %s\n%s"
                                     % (what, timeout, rows, d.log_tail()))
            time.sleep(0.1)

    @classmethod
    def workload(cls):
        a = cls.start(Daemon({"queue": {"workers": "2"}}, store="postgres"))
        cls.schema = a.schema
        ids = [a.submit("dummytask", {"i": i})["id"] for i in range(12)]
        ids += [a.submit("failtask", {"message": "boom %d" % i})["id"] for i in range(3)]
        ids.append(a.submit("sleep", {"seconds": 5}, timeout=0.3)["id"])
        a.wait_all(ids, timeout=30, check_status=False)
        # Node b runs a job and is killed: its lease (2 s) expires, node a
        # fails the job ("stopped renewing its lease"), b's row stays.
        b = cls.start(Daemon({"queue": {"workers": "1"}, "storage": {"lease": "2s"}},
                             store="postgres", schema=a.schema, node_id=a.node_id + "-b"))
        lost = b.submit("sleep", {"seconds": 30}, timeout=60)["id"]
        cls.wait_sql(b, "SELECT count(*) FROM jobs WHERE id = '%s' AND started_at IS NOT NULL "
                     "AND claimed_by = '%s'" % (lost, b.node_id), lambda r: r == [["1"]], 10,
                     "the job started on node b")
        b.kill(signal.SIGKILL)
        a.wait_for(lost, "FAILED", timeout=60)
        # A stuck job (its row says it started an hour ago), one running and
        # one queued behind them on a's two workers.
        stuck = a.submit("sleep", {"seconds": 300}, timeout=600)["id"]
        cls.wait_sql(a, "SELECT count(*) FROM jobs WHERE id = '%s' AND started_at IS NOT NULL"
                     % stuck, lambda r: r == [["1"]], 10, "the stuck job's start written")
        a.sql("UPDATE jobs SET started_at = now() - interval '1 hour' WHERE id = '%s'" % stuck)
        running = a.submit("sleep", {"seconds": 300}, timeout=600)["id"]
        a.wait_for(running, "IN_PROGRESS", timeout=10)
        cls.queued = a.submit("sleep", {"seconds": 1}, timeout=60)["id"]
        cls.a = a

    def reader(self, query):
        rc, rows, err = psql_as(self.role, "SET search_path = %s;\n%s" % (self.schema, query))
        if rc != 0:
            self.fail("as a member of valet_reader: %s\n%s" % (query, err))
        return rows

    def test_every_dashboard_query_returns_rows(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        variables = {}
        for v in dash["templating"]["list"]:
            if v["type"] == "query":
                rows = self.reader(grafana_sql(v["query"], self.schema, variables))
                variables[v["name"]] = [r[0] for r in rows]
                self.assertTrue(rows, v["name"])
        self.assertEqual(set(variables["task"]), {"dummytask", "failtask", "sleep"})
        self.assertEqual(set(variables["node"]), {self.a.node_id, self.a.node_id + "-b"})
        n = 0
        for p in dashboard_panels(dash):
            for t in p.get("targets", []):
                with self.subTest(panel=p["title"]):
                    sql = grafana_sql(t["rawSql"], self.schema, variables)
                    rows = self.reader(sql)
                    self.assertTrue(rows, "no rows: %s" % sql)
                    n += 1
        self.assertGreaterEqual(n, 20)

    def test_panels_show_the_workload(self):
        # A few panels' numbers, as the workload made them.
        classes = dict(self.reader("SELECT failure_class, count(*) FROM finished_jobs "
                                   "WHERE status = 'FAILED' GROUP BY 1"))
        self.assertEqual(classes, {"task error": "3", "timeout": "1", "lost node": "1"})
        self.assertEqual(self.reader("SELECT node_id, lease_expired FROM node_status "
                                     "ORDER BY 1"),
                         [[self.a.node_id, "f"], [self.a.node_id + "-b", "t"]])
        self.assertEqual(self.reader("SELECT task_name, why FROM stuck_jobs"),
                         [["sleep", "past its timeout"]])
        self.assertEqual(self.reader("SELECT task_name, queued FROM queue_age"),
                         [["sleep", "1"]])

    def test_every_alert_query_returns_rows(self):
        doc = load_yaml(ALERTS)
        for rule in (r for g in doc["groups"] for r in g["rules"]):
            for d in rule["data"]:
                if d["datasourceUid"] == "__expr__":
                    continue
                with self.subTest(rule=rule["title"]):
                    sql = d["model"]["rawSql"].replace("valet.", self.schema + ".")
                    rows = self.reader(grafana_sql(sql, self.schema, {}))
                    self.assertTrue(rows, "no rows: %s" % sql)
                    # The value column is a number (what the threshold compares).
                    for row in rows:
                        float(row[-1])

    def test_alerts_fire_on_the_workload(self):
        # The lease rule's value is > 0 for the killed node only; the stuck
        # rule counts the stuck job; the failure rate of failtask is 1.
        doc = load_yaml(ALERTS)
        rules = {r["uid"]: r for g in doc["groups"] for r in g["rules"]}

        def values(uid):
            sql = rules[uid]["data"][0]["model"]["rawSql"].replace("valet.", self.schema + ".")
            return {tuple(r[:-1]): float(r[-1]) for r in self.reader(sql)}

        lease = values("valet-pg-node-lease")
        self.assertEqual(lease[(self.a.node_id,)], 0)
        self.assertGreater(lease[(self.a.node_id + "-b",)], 0)
        self.assertEqual(values("valet-pg-stuck-jobs"), {(): 1})
        self.assertEqual(values("valet-pg-failure-rate"), {("dummytask",): 0})
        self.assertEqual(values("valet-pg-degraded-isolation"),
                         {(self.a.node_id,): 0, (self.a.node_id + "-b",): 0})

    def test_reader_cannot_read_tables_or_write(self):
        for view in sorted(VIEWS):
            with self.subTest(view=view):
                self.reader("SELECT * FROM %s LIMIT 1" % view)
        for table in sorted(TABLES):
            with self.subTest(table=table):
                rc, _, err = psql_as(self.role, "SELECT 1 FROM %s.%s LIMIT 1"
                                     % (self.schema, table))
                self.assertNotEqual(rc, 0)
                self.assertIn("permission denied", err)
        for what, q in (
                ("update", "UPDATE %s.jobs SET status = 'FAILED'"),
                ("insert", "INSERT INTO %s.nodes (node_id, hostname, pid, version, "
                           "lease_until) VALUES ('x', 'x', 1, 'x', now())"),
                ("delete through a view", "DELETE FROM %s.queue_depth"),
                ("a function", "SELECT %s.release_node('x', 'x', 1, 1)"),
                ("create", "CREATE TABLE %s.mine (x int)")):
            with self.subTest(write=what):
                rc, _, err = psql_as(self.role, q % self.schema)
                self.assertNotEqual(rc, 0, what)
                self.assertRegex(err, "permission denied|cannot delete from view")
        self.assertEqual(self.a.sql("SELECT count(*) FROM nodes WHERE node_id = 'x'"), [["0"]])

    def test_without_createrole_the_sql_file_makes_the_role(self):
        # valetd's role may not create roles: its migration neither fails
        # nor makes valet_reader; packaging/sql/valet_reader.sql, run by an
        # administrator, makes it and grants on the views of the schema.
        owner = "valet_t_owner_%d_%06x" % (os.getpid(), random.randrange(16 ** 6))
        db = valetd.sql("SELECT current_database()")[0][0]
        saved = valetd.sql("SELECT n.nspname FROM pg_namespace n WHERE has_schema_privilege("
                           "'valet_reader', n.oid, 'USAGE') AND n.nspname LIKE 't\\_%'")
        valetd.sql('CREATE ROLE "%s" LOGIN; GRANT CREATE ON DATABASE "%s" TO "%s"'
                   % (owner, db, owner))
        d = None

        def cleanup():
            if d:
                d.kill()
                d.cleanup()
            valetd.sql('REVOKE ALL ON DATABASE "%s" FROM "%s"; DROP OWNED BY "%s" CASCADE; '
                       'DROP ROLE "%s"' % (db, owner, owner, owner))
            # valet_reader as the other tests left it.
            valetd.sql("CREATE ROLE valet_reader NOLOGIN"
                       if not valetd.sql("SELECT 1 FROM pg_roles WHERE rolname = "
                                         "'valet_reader'") else "SELECT 1")
            valetd.sql('GRANT valet_reader TO "%s"' % self.role)
            for (schema,) in saved:
                psql_as(None, None, READER_SQL, {"schema": schema})

        self.addCleanup(cleanup)
        valetd.sql("DROP OWNED BY valet_reader; DROP ROLE valet_reader")
        d = Daemon({"queue": {"workers": "1"}}, store="postgres")
        d.database_url = url_with_user(valetd.database_url(), owner)
        d.start()
        job = d.submit("dummytask")
        d.wait_for(job["id"], "COMPLETED", timeout=10)
        self.assertEqual(valetd.sql("SELECT count(*) FROM pg_roles WHERE rolname = "
                                    "'valet_reader'"), [["0"]])
        self.assertEqual(d.sql("SELECT max(version) FROM schema_migrations"),
                         [[str(len(glob.glob(os.path.join(valetd.REPO, "storage",
                                                          "migrations", "*.sql"))))]])
        rc, _, err = psql_as(None, None, READER_SQL, {"schema": d.schema})
        self.assertEqual(rc, 0, err)
        valetd.sql('GRANT valet_reader TO "%s"' % self.role)
        rc, rows, err = psql_as(self.role, "SELECT task_name, status FROM %s.finished_jobs"
                                % d.schema)
        self.assertEqual((rc, rows), (0, [["dummytask", "COMPLETED"]]), err)
        rc, _, err = psql_as(self.role, "SELECT * FROM %s.jobs" % d.schema)
        self.assertNotEqual(rc, 0)
        self.assertIn("permission denied", err)
        granted = valetd.sql("SELECT table_name FROM information_schema.role_table_grants "
                             "WHERE grantee = 'valet_reader' AND table_schema = :'s'",
                             s=d.schema)
        self.assertEqual({r[0] for r in granted}, VIEWS)


if __name__ == "__main__":
    unittest.main()
