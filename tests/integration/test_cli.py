"""The `valet` command-line client ($BUILD/valet) against a running valetd.

Each command in both formats (JSON when stdout is not a terminal or with
--json, tables with --table or on a terminal - a pseudo-terminal here), the
exit statuses scripts rely on (0 completed, 1 failed or cancelled with
--wait and watch, 2 usage, 3 unreachable, 4 key refused, 5 not found, 6
other refusal, 7 unavailable), the server's error message shown as it is,
VALET_URL / --url, VALET_TOKEN / --token against a daemon with API keys,
and https verified with --cacert.
"""

import json
import os
import pty
import re
import select
import subprocess
import tempfile
import time
import unittest
import uuid

from valetd import BUILD, REPO, VALETD, DaemonTestCase, free_port, scratch_dir
from test_tls import ClientCertCase, make_cert

VALET = os.path.join(BUILD, "valet")
COMMANDS = ("submit", "get", "list", "pipelines", "watch", "result", "cancel", "pipeline",
            "tasks", "status")


def valet(*args, url=None, env=None, stdin=None, timeout=60):
    """Runs the CLI with stdout a pipe; returns (exit status, stdout, stderr)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("VALET_")}
    if url:
        e["VALET_URL"] = url
    e.update(env or {})
    r = subprocess.run([VALET] + list(args), input=stdin, capture_output=True, text=True,
                       env=e, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def valet_tty(*args, url, timeout=60):
    """Runs the CLI with stdout a terminal; returns (exit status, what it wrote)."""
    master, slave = pty.openpty()
    e = {k: v for k, v in os.environ.items() if not k.startswith("VALET_")}
    e["VALET_URL"] = url
    p = subprocess.Popen([VALET] + list(args), stdout=slave, stderr=slave,
                         stdin=subprocess.DEVNULL, env=e)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    rc = p.wait(timeout=10)
    return rc, out.decode(errors="replace")


class CliTest(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.url = "http://127.0.0.1:%d" % cls.d.port

    def run_ok(self, *args, **kw):
        rc, out, err = valet(*args, url=self.url, **kw)
        self.assertEqual(rc, 0, (args, out, err))
        return out

    def run_json(self, *args, **kw):
        return json.loads(self.run_ok(*args, **kw))

    def submit(self, task, params=None, *more):
        args = ["submit", task] + (["--params", json.dumps(params)] if params else []) + list(more)
        return self.run_json(*args)

    def wait_final(self, jid, pipeline=False):
        path = "/api/%s/%s" % ("pipelines" if pipeline else "jobs", jid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            j = self.d.get(path).json
            if j["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return j
            time.sleep(0.05)
        self.fail("%s did not finish" % jid)

    # --- usage ------------------------------------------------------------
    def test_version_and_help(self):
        rc, out, _ = valet("-V")
        self.assertEqual((rc, out), (0, "valet 0.1.0\n"))
        rc, out, _ = valet("--help")
        self.assertEqual(rc, 0)
        for cmd in COMMANDS:
            self.assertIn("valet " + cmd, out)
        self.assertIn("Exit status", out)
        for cmd in COMMANDS:
            rc, out, _ = valet("help", cmd)
            self.assertEqual(rc, 0, cmd)
            self.assertIn("usage: valet [OPTIONS] " + cmd, out)

    def test_usage_errors_exit_2(self):
        cases = [(), ("frobnicate",), ("get",), ("get", "a", "b"), ("tasks", "--wait"),
                 ("--nope", "tasks"), ("submit", "dummytask", "--timeout", "0"),
                 ("submit", "dummytask", "--timeout", "x"), ("list", "--limit", "1.5"),
                 ("submit", "dummytask", "--params", "{bad"),
                 ("submit", "dummytask", "--params", "@/nonexistent/params.json"),
                 ("submit", "dummytask", "--run-at", "+5 minutes"), ("get", "a/b"),
                 ("help", "frobnicate"), ("submit",), ("--token", "a b", "tasks")]
        before = len(self.d.get("/api/jobs").json["jobs"])
        for args in cases:
            rc, out, err = valet(*args, url=self.url)
            self.assertEqual(rc, 2, (args, out, err))
            self.assertTrue(err.startswith("valet: ") or err.startswith("usage: "), (args, err))
        # Nothing was sent: no job came of the bad submits.
        self.assertEqual(len(self.d.get("/api/jobs").json["jobs"]), before)

    # --- status, tasks ----------------------------------------------------
    def test_status(self):
        st = self.run_json("status")
        self.assertEqual(set(st), {"job_queue_healthy", "storage_healthy", "time", "version"})
        self.assertTrue(st["job_queue_healthy"])
        out = self.run_ok("status", "--table")
        self.assertRegex(out, r"(?m)^job_queue_healthy: +true$")
        self.assertRegex(out, r"(?m)^version: +0\.1\.0$")

    def test_tasks(self):
        self.assertEqual(self.run_json("tasks"), self.d.get("/api/tasks").json)
        out = self.run_ok("--table", "tasks")
        self.assertEqual(out.split(), self.d.get("/api/tasks").json["tasks"])

    # --- submit, get, result ------------------------------------------------
    def test_submit_and_get(self):
        job = self.submit("dummytask", {"n": 42}, "--name", "cli-one", "--timeout", "7.5")
        self.assertEqual(job["status"], "PENDING")
        self.assertEqual(job["name"], "cli-one")
        self.assertEqual(job["task_params"], {"n": 42})
        self.assertEqual(job["timeout"], 7.5)
        final = self.wait_final(job["id"])
        self.assertEqual(self.run_json("get", job["id"]), final)
        out = self.run_ok("get", job["id"], "--table")
        self.assertRegex(out, r"(?m)^id: +%s$" % job["id"])
        self.assertRegex(out, r"(?m)^status: +COMPLETED$")
        self.assertRegex(out, r'(?m)^task_params: +\{"n":42\}$')
        # The name defaults to the task's.
        self.assertEqual(self.submit("dummytask")["name"], "dummytask")

    def test_params_from_file_and_stdin(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"from": "file"}, f)
        try:
            job = self.run_json("submit", "dummytask", "--params", "@" + f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(job["task_params"], {"from": "file"})
        job = self.run_json("submit", "dummytask", "--params", "-", stdin='{"from": "stdin"}')
        self.assertEqual(job["task_params"], {"from": "stdin"})

    def test_run_at(self):
        t0 = time.time()
        job = self.submit("dummytask", None, "--run-at", "+1h")
        self.assertIn(job["status"], ("PENDING", "SCHEDULED"))
        run_at = time.mktime(time.strptime(job["run_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        self.assertAlmostEqual(run_at, t0 + 3600, delta=5)
        job = self.submit("dummytask", None, "--run-at", "2030-01-01T10:00:00+02:00")
        self.assertEqual(job["run_at"], "2030-01-01T08:00:00Z")
        # The server judges RFC 3339; its message is shown.
        rc, _, err = valet("submit", "dummytask", "--run-at", "tomorrow", url=self.url)
        self.assertEqual(rc, 6)
        self.assertIn("invalid run_at", err)

    def test_wait_exit_statuses(self):
        rc, out, err = valet("submit", "sha256", "--params", '{"data":"abc"}', "--wait",
                             "--interval", "0.05", url=self.url)
        self.assertEqual(rc, 0, err)
        job = json.loads(out)
        self.assertEqual(job["status"], "COMPLETED")
        rc, out, err = valet("submit", "failtask", "--params", '{"message":"no luck"}', "--wait",
                             "--interval", "0.05", url=self.url)
        self.assertEqual(rc, 1, err)
        job = json.loads(out)
        self.assertEqual((job["status"], job["failure_reason"]), ("FAILED", "no luck"))
        rc, out, err = valet("submit", "sleep", "--params", '{"seconds":30}', "--timeout", "0.3",
                             "--wait", "--interval", "0.05", url=self.url)
        self.assertEqual(rc, 1, err)
        self.assertEqual(json.loads(out)["failure_reason"], "timed out after 300ms (killed)")
        # A table on request: the final job as key/value lines.
        rc, out, err = valet("--table", "submit", "dummytask", "--wait", url=self.url)
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(?m)^status: +COMPLETED$")

    def test_result(self):
        job = self.submit("sha256", {"data": "abc"})
        self.wait_final(job["id"])
        want = self.d.get("/api/jobs/%s/results" % job["id"]).json
        self.assertEqual(self.run_json("result", job["id"]), want)
        out = self.run_ok("result", job["id"], "--table")
        self.assertEqual(json.loads(out), want["metadata"])
        job = self.submit("failtask", {"message": "bad day"})
        self.wait_final(job["id"])
        out = self.run_ok("result", job["id"], "--table")
        self.assertIn("error: bad day", out)

    # --- list -------------------------------------------------------------
    def test_list(self):
        a = self.submit("sha256", {"data": "x"})
        b = self.submit("failtask", {"message": "m"})
        self.wait_final(a["id"])
        self.wait_final(b["id"])
        self.assertEqual(self.run_json("list"), self.d.get("/api/jobs").json)
        failed = self.run_json("list", "--status", "failed")["jobs"]
        self.assertIn(b["id"], [j["id"] for j in failed])
        self.assertEqual({j["status"] for j in failed}, {"FAILED"})
        only = self.run_json("list", "--task", "sha256")["jobs"]
        self.assertIn(a["id"], [j["id"] for j in only])
        self.assertEqual({j["task_name"] for j in only}, {"sha256"})
        self.assertEqual(len(self.run_json("list", "--limit", "1")["jobs"]), 1)
        out = self.run_ok("list", "--table", "--task", "sha256")
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "NAME", "TASK", "STATUS", "CREATED", "DURATION"])
        row = [ln for ln in lines if ln.startswith(a["id"])]
        self.assertEqual(len(row), 1, out)
        self.assertEqual(row[0].split()[1:4], ["sha256", "sha256", "COMPLETED"])
        self.assertEqual(len(lines), 1 + len(only))
        # The server's 400 for a bad status, its message shown.
        rc, _, err = valet("list", "--status", "bogus", url=self.url)
        self.assertEqual(rc, 6)
        self.assertIn('invalid status: "BOGUS" (HTTP 400)', err)

    # --- cancel, not found ----------------------------------------------------
    def test_cancel(self):
        job = self.submit("sleep", {"seconds": 30})
        out = self.run_json("cancel", job["id"])
        self.assertEqual(out["status"], "CANCELLED")
        rc, _, err = valet("cancel", job["id"], url=self.url)
        self.assertEqual(rc, 6)
        self.assertIn("job with ID: %s has already finished (CANCELLED) (HTTP 409)" % job["id"],
                      err)

    def test_not_found_exit_5(self):
        unknown = str(uuid.uuid4())
        for cmd in ("get", "watch", "cancel", "result"):
            rc, out, err = valet(cmd, unknown, url=self.url)
            self.assertEqual(rc, 5, (cmd, out, err))
            self.assertEqual(out, "")
            what = "job result" if cmd == "result" else "job"
            self.assertIn("%s with ID: %s not found (HTTP 404)" % (what, unknown), err)

    # --- pipelines ----------------------------------------------------------
    def pipeline_file(self, second_task="echoprev"):
        f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump({"name": "cli-p", "jobs": [
            {"name": "first", "task_name": "dummytask", "task_params": {"n": 1}},
            {"name": "second", "task_name": second_task, "use_previous_results": True,
             "task_params": {"message": "second failed"}}]}, f)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return f.name

    def test_pipeline(self):
        p = self.run_json("pipeline", self.pipeline_file())
        self.assertEqual(len(p["jobs"]), 2)
        final = self.wait_final(p["id"], pipeline=True)
        self.assertEqual(final["status"], "COMPLETED")
        self.assertEqual(self.run_json("get", p["id"]), final)
        out = self.run_ok("get", p["id"], "--table")
        self.assertRegex(out, r"(?m)^status: +COMPLETED$")
        for j in p["jobs"]:
            self.assertRegex(out, r"(?m)^%s +%s " % (j["id"], j["name"]))
        self.assertIn(p["id"], [x["id"] for x in self.run_json("pipelines")["pipelines"]])
        self.assertEqual(self.run_json("list", "--pipelines"), self.d.get("/api/pipelines").json)
        out = self.run_ok("pipelines", "--table", "--status", "completed")
        self.assertEqual(out.splitlines()[0].split(), ["ID", "NAME", "STATUS", "CREATED",
                                                       "DURATION"])
        self.assertIn(p["id"], out)

    def test_pipeline_wait(self):
        rc, out, err = valet("pipeline", self.pipeline_file(), "--wait", "--interval", "0.05",
                             url=self.url)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["status"], "COMPLETED")
        rc, out, err = valet("pipeline", self.pipeline_file("failtask"), "--wait", url=self.url)
        self.assertEqual(rc, 1, err)
        self.assertEqual(json.loads(out)["status"], "FAILED")
        rc, out, err = valet("pipeline", "-", stdin='{"name": "x", "jobs": [{"name": "a", "task_name": "dummytask"}]}', url=self.url)
        self.assertEqual(rc, 6)
        self.assertIn("pipeline should have at least 2 jobs, 1 given (HTTP 400)", err)

    def test_pipeline_watch_and_cancel(self):
        body = {"name": "cli-slow", "jobs": [
            {"name": "a", "task_name": "sleep", "task_params": {"seconds": 0.6}},
            {"name": "b", "task_name": "sleep", "task_params": {"seconds": 0.6}}]}
        p = self.run_json("pipeline", "-", stdin=json.dumps(body))
        # watch takes a pipeline's id: one line per change of the pipeline.
        rc, out, err = valet("watch", p["id"], "--interval", "0.05", url=self.url)
        self.assertEqual(rc, 0, err)
        statuses = [json.loads(line)["status"] for line in out.splitlines()]
        self.assertEqual(statuses[-1], "COMPLETED")
        self.assertIn("IN_PROGRESS", statuses)
        # On a terminal: its jobs done out of all.
        p = self.run_json("pipeline", "-", stdin=json.dumps(body))
        rc, out = valet_tty("watch", p["id"], "--interval", "0.05", url=self.url)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"%s IN_PROGRESS \d+\.\ds \(1/2 jobs done\)" % p["id"])
        # cancel takes a pipeline's id too.
        body["jobs"][0]["task_params"]["seconds"] = 30
        p = self.run_json("pipeline", "-", stdin=json.dumps(body))
        out = self.run_json("cancel", p["id"])
        self.assertEqual((out["id"], out["status"]), (p["id"], "CANCELLED"))
        self.assertEqual(self.d.get("/api/jobs/" + p["jobs"][1]["id"]).json["status"],
                         "CANCELLED")

    # --- watch ----------------------------------------------------------------
    def test_watch_not_a_terminal(self):
        job = self.submit("sleep", {"seconds": 1})
        rc, out, err = valet("watch", job["id"], "--interval", "0.05", url=self.url)
        self.assertEqual(rc, 0, err)
        self.assertNotIn("\r", out)
        self.assertNotIn("\033", out)
        changes = [json.loads(line) for line in out.splitlines()]
        statuses = [c["status"] for c in changes]
        self.assertEqual(statuses[-1], "COMPLETED")
        self.assertIn("IN_PROGRESS", statuses)
        self.assertEqual(len(statuses), len(set(statuses)), statuses)  # one line per change
        self.assertEqual({c["id"] for c in changes}, {job["id"]})
        # The table format: "TIME ID STATUS [failure_reason]" per change.
        job = self.submit("failtask", {"message": "watched failure"})
        rc, out, err = valet("watch", job["id"], "--table", "--interval", "0.05", url=self.url)
        self.assertEqual(rc, 1, err)
        self.assertRegex(out.splitlines()[-1],
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ %s FAILED watched failure$"
                         % job["id"])

    def test_watch_terminal(self):
        job = self.submit("sleep", {"seconds": 1})
        rc, out = valet_tty("watch", job["id"], "--interval", "0.05", url=self.url)
        self.assertEqual(rc, 0, out)
        # A status line rewritten in place, then the final job as a table.
        self.assertIn("\r\033[K", out)
        self.assertRegex(out, r"[|/\\-] %s (IN_PROGRESS|PENDING) \d+\.\ds" % job["id"])
        self.assertRegex(out, r"(?m)^status: +COMPLETED\r?$")
        # A terminal gets tables by default.
        rc, out = valet_tty("tasks", url=self.url)
        self.assertEqual(rc, 0)
        self.assertIn("dummytask\r\n", out)

    def test_control_characters_do_not_reach_the_terminal(self):
        # A job's name and description are whoever submitted it's: escape
        # sequences in them (ESC, BEL, DEL, C1's CSI, OSC and ST as UTF-8)
        # could retitle the terminal of whoever lists jobs, or hide lines.
        # Tables show them as \u00XX; JSON escapes them too, the same text
        # to a JSON reader.
        name = "evil\x1b]0;pwned\x07\x1b[2J\x7f\u009b31m\u009d0;t\u009c end"
        r = self.d.post("/api/jobs", {"name": name, "description": name,
                                      "task_name": "failtask",
                                      "task_params": {"message": "m"}})
        self.assertEqual(r.status, 202, r)
        jid = r.json["id"]
        self.wait_final(jid)
        raw = ("\x1b", "\x07", "\x7f", "\u009b", "\u009d", "\u009c")
        outs = {}
        for args in (("get", jid), ("get", jid, "--table"), ("list",), ("list", "--table"),
                     ("watch", jid, "--table", "--interval", "0.05"),
                     ("watch", jid, "--interval", "0.05")):
            rc, out, err = valet(*args, url=self.url)
            self.assertEqual(rc, 1 if args[0] == "watch" else 0, (args, err))
            for ch in raw:
                self.assertNotIn(ch, out, (args, ch))
            outs[tuple(a for a in args if a != jid)] = out
        self.assertEqual(json.loads(outs[("get",)])["name"], name)
        self.assertIn("\\u009b31m", outs[("get",)])
        self.assertRegex(outs[("get", "--table")],
                         r"(?m)^name: +evil\\u001b\]0;pwned\\u0007\\u001b\[2J\\u007f"
                         r"\\u009b31m\\u009d0;t\\u009c end$")
        self.assertIn("evil\\u001b]0;pwned", outs[("list", "--table")])
        rc, out = valet_tty("get", jid, url=self.url)
        self.assertEqual(rc, 0, out)
        self.assertIn("name:", out)
        for ch in raw:
            self.assertNotIn(ch, out, ch)

    def test_url_option_and_environment(self):
        dead = "http://127.0.0.1:%d" % free_port()
        # --url wins over VALET_URL; a trailing slash is fine.
        rc, out, err = valet("--url", self.url + "/", "status", url=dead)
        self.assertEqual(rc, 0, err)
        rc, out, err = valet("status", url=dead)
        self.assertEqual(rc, 3)


class FullQueueCliTest(DaemonTestCase):
    config = {"queue": {"workers": "1", "capacity": "1"}}

    def test_queue_full_exit_7(self):
        url = "http://127.0.0.1:%d" % self.d.port
        ids, rc, err = [], 0, ""
        for _ in range(4):
            rc, out, err = valet("submit", "sleep", "--params", '{"seconds": 30}', url=url)
            if rc != 0:
                break
            ids.append(json.loads(out)["id"])
        self.assertEqual(rc, 7, err)
        self.assertIn("job queue is full - try again later (HTTP 503)", err)
        for jid in ids:
            self.assertEqual(valet("cancel", jid, url=url)[0], 0)


class UnreachableTest(unittest.TestCase):
    def test_unreachable_exit_3(self):
        url = "http://127.0.0.1:%d" % free_port()
        for args in (("status",), ("list",), ("submit", "dummytask", "--wait"),
                     ("get", str(uuid.uuid4()))):
            rc, out, err = valet(*args, url=url)
            self.assertEqual(rc, 3, (args, out, err))
            self.assertIn("valet: cannot reach valetd at %s" % url, err)
            self.assertEqual(out, "")

    def test_what_cannot_be_used_is_a_usage_error(self):
        # Not "unreachable" (3): nothing was tried, the command line is wrong.
        for args, want in (
                (("--url", "ftp://127.0.0.1:1", "status"), "is not an http:// or https:// URL"),
                (("--url", "not a url", "status"), "is not an http:// or https:// URL"),
                (("--url", "https://127.0.0.1:1", "--cacert", "/nonexistent", "status"),
                 "--cacert /nonexistent: No such file"),
                (("--url", "https://127.0.0.1:1", "--cert", "/nonexistent", "status"),
                 "--cert /nonexistent: No such file")):
            rc, out, err = valet(*args)
            self.assertEqual(rc, 2, (args, out, err))
            self.assertIn(want, err)

    def test_default_url_is_valetd_default_listen(self):
        # The packaged default: [server] listen = 127.0.0.1:8080.
        with open(os.path.join(REPO, "packaging", "valetd.conf")) as f:
            self.assertRegex(f.read(), r"(?m)^#listen = 127\.0\.0\.1:8080$")
        rc, out, _ = valet("--help")
        self.assertIn("else http://127.0.0.1:8080", out)


class WatchOutageTest(unittest.TestCase):
    """Once the job exists, watch (and --wait) rides out an outage: valetd
    restarting (no connection), its database down (503). Giving up with 3
    or 7, "try again later", invited a script to submit the job twice."""

    def test_watch_rides_out_an_outage(self):
        import http.server
        import socketserver
        import threading
        port = free_port()
        job = str(uuid.uuid4())
        answers = {"n": 0, "done": False}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                answers["n"] += 1
                status = "COMPLETED" if answers["done"] else "IN_PROGRESS"
                if not answers["done"] and answers["n"] > 2:
                    code, body = 503, {"code": 503, "error": True,
                                       "message": "storage unavailable"}
                else:
                    code, body = 200, {"id": job, "name": "j", "task_name": "dummytask",
                                       "status": status}
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
            allow_reuse_address = True
            daemon_threads = True

        def serve():
            srv = Server(("127.0.0.1", port), Handler)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            return srv

        def outage():
            # Found, one poll, two 503s (the database down), then valetd
            # gone for a second (restarting), then back: the job is done.
            srv = serve()
            deadline = time.monotonic() + 20
            while answers["n"] < 4 and time.monotonic() < deadline:
                time.sleep(0.01)
            srv.shutdown()
            srv.server_close()
            time.sleep(1.0)
            answers["done"] = True
            self.addCleanup(serve().server_close)

        t = threading.Thread(target=outage, daemon=True)
        t.start()
        time.sleep(0.2)
        rc, out, err = valet("watch", job, "--interval", "0.1",
                             url="http://127.0.0.1:%d" % port, timeout=60)
        self.assertEqual(rc, 0, (out, err))
        self.assertIn("COMPLETED", out)
        self.assertEqual(err.count("still waiting"), 1, err)
        self.assertLessEqual(err.count("storage unavailable"), 1, err)
        self.assertNotIn("cannot reach valetd", err)


def key_cmd(path, *args):
    r = subprocess.run([VALETD, "--file", path, "key"] + list(args), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class AuthCliTest(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = scratch_dir("valet-cli-keys-")
        keys = os.path.join(cls.dir, "keys")
        cls.ro = key_cmd(keys, "create", "ro", "--scopes", "read")
        cls.adm = key_cmd(keys, "create", "adm", "--scopes", "admin")
        cls.config = {"server": {"auth_keys": keys}}
        super().setUpClass()
        cls.url = "http://127.0.0.1:%d" % cls.d.port

    def test_token(self):
        # No token: 401 and the server's message; status stays open.
        rc, out, err = valet("list", url=self.url)
        self.assertEqual(rc, 4)
        self.assertIn("an API key is required: Authorization: Bearer TOKEN (HTTP 401)", err)
        self.assertIn("VALET_TOKEN or --token", err)
        rc, _, _ = valet("status", url=self.url)
        self.assertEqual(rc, 0)
        # VALET_TOKEN: a read key lists, but may not submit (403).
        rc, out, err = valet("list", url=self.url, env={"VALET_TOKEN": self.ro})
        self.assertEqual(rc, 0, err)
        rc, out, err = valet("submit", "dummytask", url=self.url, env={"VALET_TOKEN": self.ro})
        self.assertEqual(rc, 4)
        self.assertIn('the API key "ro" has no submit scope (HTTP 403)', err)
        self.assertEqual(len(self.d.get("/api/jobs", headers={
            "Authorization": "Bearer " + self.ro}).json["jobs"]), 0)
        # --token wins over VALET_TOKEN.
        rc, out, err = valet("--token", self.adm, "submit", "dummytask", "--wait", url=self.url,
                             env={"VALET_TOKEN": self.ro})
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["status"], "COMPLETED")
        rc, out, err = valet("--token", "vk_" + "0" * 64, "tasks", url=self.url)
        self.assertEqual(rc, 4)
        self.assertIn("invalid API key (HTTP 401)", err)


class TlsCliTest(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = scratch_dir("valet-cli-tls-")
        cls.cert, key = make_cert(cls.dir, "cli")
        cls.config = {"server": {"tls_cert": cls.cert, "tls_key": key}}
        super().setUpClass()

    def test_https_verified(self):
        url = "https://127.0.0.1:%d" % self.d.port
        rc, out, err = valet("--cacert", self.cert, "submit", "dummytask", "--wait", url=url)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["status"], "COMPLETED")
        # Without the CA the certificate is not trusted: no request is made.
        rc, out, err = valet("status", url=url)
        self.assertEqual(rc, 3)
        self.assertIn("cannot reach valetd at " + url, err)
        # Plain HTTP to the TLS port: the server's 400 says to use https.
        rc, out, err = valet("status", url="http://127.0.0.1:%d" % self.d.port)
        self.assertEqual(rc, 6)
        self.assertIn("https", err)


class MtlsCliTest(ClientCertCase):
    """--cert / --key: a client certificate for a valetd with tls_client_auth."""
    mode = "require"

    def test_client_certificate(self):
        url = "https://127.0.0.1:%d" % self.d.port
        crt, key = self.certs["alice"]
        rc, out, err = valet("--cacert", self.cert, "--cert", crt, "--key", key, "submit",
                             "dummytask", "--wait", url=url)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["status"], "COMPLETED")
        # The key in the certificate's file; the job is alice's.
        both = os.path.join(self.dir, "alice-both.pem")
        with open(both, "w") as f, open(crt) as c, open(key) as k:
            f.write(c.read() + k.read())
        rc, out, err = valet("--cacert", self.cert, "--cert", both, "list", url=url)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(json.loads(out)["jobs"]), 1, out)
        # No certificate: the handshake fails, nothing answered.
        rc, out, err = valet("--cacert", self.cert, "--token", self.tokens["tok"], "list",
                             url=url)
        self.assertEqual(rc, 3, err)
        # A certificate of no key: 401.
        rc, out, err = valet("--cacert", self.cert, "--cert", self.certs["carol"][0], "--key",
                             self.certs["carol"][1], "list", url=url)
        self.assertEqual(rc, 4, err)
        self.assertIn("no API key", err)


if __name__ == "__main__":
    unittest.main()
