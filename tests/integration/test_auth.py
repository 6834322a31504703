"""API keys: who may ask valetd for what ([server] auth_keys).

Keys are made, listed and revoked with `valetd key`; a request needs a
known token with the scope its method and path need; revocation and edits
take effect without a restart; an open API on a non-loopback address is
refused unless the config says so.

Ownership (OwnershipTest, on the memory store; OwnershipPgTest, the same
on PostgreSQL): work is its key's; another key's job or pipeline is a 404
like an unknown id, for every route, and changes nothing; lists hold only
the key's own work; an admin key sees all of it, with each object's owner.

Policy (PolicyTest): each rule of a key's policy - tasks, profiles, the
most timeout, memory and cpu it may ask for, jobs waiting at once, the
submit rate - refuses what breaks it (403 naming the rule, 429 with
Retry-After for the rate), logs it once with the key's name, stores
nothing; [auth] gives the rules of a key whose line sets none.
"""

import datetime
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import uuid

from valetd import VALETD, Daemon, DaemonTestCase, ERROR_KEYS, scratch_dir


def key_cmd(path, *args):
    r = subprocess.run([VALETD, "--file", path, "key"] + list(args), capture_output=True,
                       text=True, timeout=30)
    return r.returncode, r.stdout.strip(), r.stderr


def bearer(token):
    return {"Authorization": "Bearer " + token}


class AuthTest(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = scratch_dir("valet-keys-")
        cls.keys = os.path.join(cls.dir, "keys")
        cls.tokens = {}
        for name, scopes in (("sub", "submit"), ("ro", "read"), ("can", "cancel,read"),
                             ("adm", "admin"), ("gone", "read"), ("later", "read")):
            rc, out, err = key_cmd(cls.keys, "create", name, "--scopes", scopes)
            assert rc == 0, err
            cls.tokens[name] = out
        cls.config = {"server": {"auth_keys": cls.keys}}
        super().setUpClass()

    def assertDenied(self, r, code):
        self.assertEqual(r.status, code, r)
        self.assertEqual(set(r.json), ERROR_KEYS, r)
        self.assertEqual(r.json["code"], code)

    def test_token_shape_and_file(self):
        for name, token in self.tokens.items():
            self.assertRegex(token, r"^vk_[0-9a-f]{64}$")
        with open(self.keys) as f:
            text = f.read()
        for token in self.tokens.values():
            self.assertNotIn(token, text)
            self.assertNotIn(token[3:], text)
        self.assertEqual(len(set(self.tokens.values())), len(self.tokens))

    def test_no_token(self):
        r = self.d.get("/api/jobs")
        self.assertDenied(r, 401)
        self.assertEqual(r.header("www-authenticate"), 'Bearer realm="valet"')

    def test_bad_tokens(self):
        for auth in ("Bearer vk_" + "0" * 64, "Bearer " + self.tokens["ro"] + "x",
                     "Basic " + self.tokens["ro"], "Bearer", self.tokens["ro"]):
            r = self.d.get("/api/jobs", headers={"Authorization": auth})
            self.assertDenied(r, 401)
        r = self.d.get("/api/jobs", headers=bearer("vk_" + "0" * 64))
        self.assertEqual(r.header("www-authenticate"),
                         'Bearer realm="valet", error="invalid_token"')

    def test_no_credentials_get_no_error_code(self):
        # RFC 6750 3.1: no error code when no bearer token was sent (none,
        # an empty one, another scheme).
        for auth in (b"", b"Authorization: Bearer\r\n", b"Authorization: Bearer  \t\r\n",
                     b"Authorization: Basic dTpw\r\n"):
            data, _ = raw_head(self.d.port, b"GET /api/jobs HTTP/1.1\r\nHost: x\r\n%s"
                               b"Connection: close\r\n\r\n" % auth)
            self.assertTrue(data.startswith(b"HTTP/1.1 401 "), data[:100])
            self.assertIn(b'\r\nWWW-Authenticate: Bearer realm="valet"\r\n', data, auth)

    def test_token_with_trailing_blanks(self):
        # Trailing blanks (OWS) are no part of a header's value.
        for tail in (b" ", b"\t", b" \t  "):
            data, _ = raw_head(self.d.port, b"GET /api/jobs HTTP/1.1\r\nHost: x\r\n"
                               b"Authorization: Bearer %s%s\r\nConnection: close\r\n\r\n"
                               % (self.tokens["ro"].encode(), tail))
            self.assertTrue(data.startswith(b"HTTP/1.1 200 "), (tail, data[:200]))

    def test_scopes(self):
        job = {"name": "j", "task_name": "dummytask"}
        self.assertDenied(self.d.post("/api/jobs", job, headers=bearer(self.tokens["ro"])), 403)
        r = self.d.post("/api/jobs", job, headers=bearer(self.tokens["sub"]))
        self.assertEqual(r.status, 202, r)
        jid = r.json["id"]
        self.assertDenied(self.d.get("/api/jobs/" + jid, headers=bearer(self.tokens["sub"])),
                          403)
        self.assertEqual(self.d.get("/api/jobs", headers=bearer(self.tokens["ro"])).status, 200)
        # The scope is checked first; with it, another key's job is unknown.
        self.assertEqual(self.d.get("/api/jobs/" + jid,
                                    headers=bearer(self.tokens["ro"])).status, 404)
        self.assertDenied(self.d.delete("/api/jobs/" + jid, headers=bearer(self.tokens["ro"])),
                          403)
        self.assertDenied(self.d.post("/api/jobs/%s/cancel" % jid,
                                      headers=bearer(self.tokens["sub"])), 403)
        self.assertDenied(self.d.patch("/api/jobs/" + jid, {"name": "x"},
                                       headers=bearer(self.tokens["can"])), 403)
        self.assertEqual(self.d.patch("/api/jobs/" + jid, {"name": "x"},
                                      headers=bearer(self.tokens["sub"])).status, 204)
        self.assertEqual(self.d.delete("/api/jobs/" + jid,
                                       headers=bearer(self.tokens["can"])).status, 404)
        self.assertEqual(self.d.delete("/api/jobs/" + jid,
                                       headers=bearer(self.tokens["adm"])).status, 204)
        # admin holds every scope.
        r = self.d.post("/api/jobs", job, headers=bearer(self.tokens["adm"]))
        self.assertEqual(r.status, 202, r)
        self.assertEqual(self.d.get("/api/jobs/" + r.json["id"],
                                    headers=bearer(self.tokens["adm"])).status, 200)
        self.assertEqual(self.d.delete("/api/jobs/" + r.json["id"],
                                       headers=bearer(self.tokens["adm"])).status, 204)

    def test_status_is_open_and_preflight_needs_no_key(self):
        self.assertEqual(self.d.get("/api/status").status, 200)
        r = self.d.options("/api/jobs", headers={"Origin": "http://localhost:5173",
                                                  "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers":
                                                      "authorization,content-type"})
        self.assertEqual(r.status, 204, r)
        # The browser sends the key only if the preflight allows the header.
        hdrs = {h.strip().lower() for h in
                (r.header("access-control-allow-headers") or "").split(",")}
        self.assertLessEqual({"authorization", "content-type"}, hdrs, r.headers)

    def test_any_host_with_keys(self):
        # A page that rebinds a name to valetd has no token: with keys the
        # Host is not checked (allowed_hosts empty), a proxy's name works.
        r = self.d.get("/api/jobs", headers=dict(bearer(self.tokens["ro"]),
                                                 Host="valet.example"))
        self.assertEqual(r.status, 200, r)
        # Cross-origin writes are still refused, before the key is looked at.
        r = self.d.post("/api/jobs", {"name": "x", "task_name": "dummytask"},
                        headers=dict(bearer(self.tokens["adm"]),
                                     Origin="https://evil.example"))
        self.assertEqual(r.status, 403, r)
        self.assertIn("cross-origin POST", r.json["message"])

    def test_refused_before_the_body(self):
        # No key, a key without the scope: answered from the head, with no
        # 100 Continue, and closed - the announced megabyte is never read.
        post = (b"POST /api/jobs HTTP/1.1\r\nHost: x\r\n%sContent-Length: 1000000\r\n"
                b"Content-Type: application/json\r\n\r\n")
        for auth, code in ((b"", 401), (b"Authorization: Bearer vk_" + b"0" * 64 + b"\r\n", 401),
                           (b"Authorization: Bearer %s\r\n" % self.tokens["ro"].encode(), 403)):
            for expect in (b"Expect: 100-continue\r\n", b""):
                with self.subTest(code=code, auth=auth[:30], expect=expect):
                    data, closed = raw_head(self.d.port, post % (auth + expect))
                    self.assertTrue(data.startswith(b"HTTP/1.1 %d " % code), data[:100])
                    self.assertIn(b"\r\nConnection: close\r\n", data)
                    self.assertTrue(closed, data)
        # Chunked alike.
        data, closed = raw_head(self.d.port, b"POST /api/pipelines HTTP/1.1\r\nHost: x\r\n"
                                b"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 401 "), data[:100])
        self.assertTrue(closed)
        self.assertRegex(self.d.log_text(), r"request denied key=- reason=\"no token\" "
                         r"method=POST path=/api/pipelines")

    def test_a_key_is_invited_to_send_its_body(self):
        body = b'{"name":"j","task_name":"dummytask"}'
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        try:
            s.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n"
                      % (self.tokens["sub"].encode(), len(body)))
            self.assertEqual(s.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
            s.sendall(body)
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 202 "))
        finally:
            s.close()

    def test_no_key_needed_body_is_read_and_the_answer_stands(self):
        # The open status with a body: answered, the connection kept.
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        try:
            s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                      b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        self.assertEqual(data.count(b"HTTP/1.1 200 "), 2, data)

    def test_revoke_takes_effect_without_restart(self):
        self.assertEqual(self.d.get("/api/jobs", headers=bearer(self.tokens["gone"])).status,
                         200)
        rc, _, err = key_cmd(self.keys, "revoke", "gone")
        self.assertEqual(rc, 0, err)
        deadline = time.time() + 5
        while time.time() < deadline:
            if self.d.get("/api/jobs", headers=bearer(self.tokens["gone"])).status == 401:
                break
            time.sleep(0.02)
        self.assertDenied(self.d.get("/api/jobs", headers=bearer(self.tokens["gone"])), 401)
        # The other keys still work.
        self.assertEqual(self.d.get("/api/jobs", headers=bearer(self.tokens["ro"])).status,
                         200)

    def test_bad_file_keeps_the_keys_in_use(self):
        with open(self.keys) as f:
            good = f.read()
        try:
            with open(self.keys, "a") as f:
                f.write("broken line\n")
            self.d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            self.assertEqual(self.d.get("/api/jobs",
                                        headers=bearer(self.tokens["later"])).status, 200)
            self.assertRegex(self.d.log_text(), r"API keys not read again.*keys:%d: "
                             % (good.count("\n") + 1))
        finally:
            with open(self.keys, "w") as f:
                f.write(good)
            self.d.proc.send_signal(signal.SIGHUP)

    def test_denials_are_logged_without_the_token(self):
        self.d.get("/api/jobs", headers=bearer(self.tokens["sub"]))
        time.sleep(0.1)
        log = self.d.log_text()
        self.assertRegex(log, r"request denied key=sub reason=.*no read scope")
        for token in self.tokens.values():
            self.assertNotIn(token, log)
            self.assertNotIn(token[3:], log)


def raw_head(port, head, timeout=5):
    """Send a request's head alone (its body announced, never sent) and read
    what comes back before the timeout: (bytes, whether the server closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    data, closed = b"", False
    try:
        s.sendall(head)
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
            if data.startswith(b"HTTP/1.1 100 ") and data.endswith(b"\r\n\r\n"):
                break  # an invitation to send the body: the old behaviour
    finally:
        s.close()
    return data, closed


class ClosedStatusTest(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = scratch_dir("valet-keys-")
        cls.keys = os.path.join(cls.dir, "keys")
        rc, cls.token, err = key_cmd(cls.keys, "create", "mon", "--scopes", "read")
        assert rc == 0, err
        cls.config = {"server": {"auth_keys": cls.keys, "open_status": "false"}}
        super().setUpClass()

    def test_status_needs_a_key(self):
        self.assertEqual(self.d.get("/api/status").status, 401)
        self.assertEqual(self.d.get("/api/status", headers=bearer(self.token)).status, 200)


class KeyCommandTest(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir("valet-keys-")
        self.keys = os.path.join(self.dir, "keys")

    def test_usage_errors(self):
        self.assertEqual(key_cmd(self.keys, "create", "a", "--scopes", "root")[0], 2)
        self.assertEqual(key_cmd(self.keys, "create", "bad name", "--scopes", "read")[0], 2)
        self.assertEqual(key_cmd(self.keys, "create", "a")[0], 2)
        self.assertEqual(key_cmd(self.keys, "frobnicate")[0], 2)
        self.assertFalse(os.path.exists(self.keys))

    def test_create_list_revoke(self):
        self.assertEqual(key_cmd(self.keys, "create", "a", "--scopes", "read,submit")[0], 0)
        self.assertEqual(key_cmd(self.keys, "create", "a", "--scopes", "read")[0], 1)
        rc, out, _ = key_cmd(self.keys, "list")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"^a +submit,read +\d{4}-")
        self.assertEqual(oct(os.stat(self.keys).st_mode & 0o777), "0o640")
        self.assertEqual(key_cmd(self.keys, "revoke", "b")[0], 1)
        self.assertEqual(key_cmd(self.keys, "revoke", "a")[0], 0)
        self.assertEqual(key_cmd(self.keys, "list")[1], "")

    def test_new_file_gets_the_group_of_the_config(self):
        # `valetd -c CONF key create` as root makes a file the service's
        # user (the config file's group: root:valet in the packages) can
        # read; an existing file keeps its own owner, group and mode.
        conf = os.path.join(self.dir, "valetd.conf")
        with open(conf, "w") as f:
            f.write("[server]\nauth_keys = %s\n" % self.keys)
        os.chown(conf, 0, 65534)
        r = subprocess.run([VALETD, "-c", conf, "key", "create", "a", "--scopes", "read"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat(self.keys)
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777), (0, 65534, 0o640))
        os.chown(self.keys, 0, 0)
        os.chmod(self.keys, 0o600)
        self.assertEqual(key_cmd(self.keys, "create", "b", "--scopes", "read")[0], 0)
        st = os.stat(self.keys)
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777), (0, 0, 0o600))

    def test_a_directory_is_no_keys_file(self):
        # Read as an empty file, it locked every client out without a word.
        os.mkdir(self.keys)
        rc, _, err = key_cmd(self.keys, "list")
        self.assertEqual(rc, 1)
        self.assertIn("Is a directory", err)
        d = Daemon({"server": {"auth_keys": self.keys}})
        with self.assertRaises(AssertionError):
            d.start(timeout=5)
        self.assertIn("Is a directory", d.log_text())
        d.cleanup()

    def test_bad_file_refuses_to_start(self):
        with open(self.keys, "w") as f:
            f.write("# comment\nk read nothex\n")
        d = Daemon({"server": {"auth_keys": self.keys}})
        with self.assertRaises(AssertionError):
            d.start(timeout=5)
        self.assertIn("keys:2: bad hash", d.log_text())
        d.cleanup()


class SecureDefaultTest(unittest.TestCase):
    def check(self, listen, extra):
        conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        conf.write("[server]\nlisten = %s\n%s" % (listen, extra))
        conf.close()
        r = subprocess.run([VALETD, "-t", "-c", conf.name], capture_output=True, text=True)
        os.unlink(conf.name)
        return r.returncode, r.stderr

    def test_open_api_off_loopback_is_refused(self):
        rc, err = self.check("0.0.0.0:8080", "")
        self.assertEqual(rc, 2)
        self.assertIn("not a loopback address", err)
        rc, err = self.check("[::]:8080", "")
        self.assertEqual(rc, 2)
        self.assertEqual(self.check("0.0.0.0:8080", "allow_unauthenticated = true\n")[0], 0)
        for loop in ("127.0.0.1:8080", "[::1]:8080", "localhost:8080", "127.0.0.2:9"):
            self.assertEqual(self.check(loop, "")[0], 0, loop)


def later():
    return "2999-01-01T00:00:00Z"


class As:
    """The daemon's HTTP helpers with one key's token."""

    def __init__(self, d, token):
        self.d, self.h = d, bearer(token)

    def get(self, path):
        return self.d.get(path, headers=self.h)

    def post(self, path, body=None):
        return self.d.post(path, body, headers=self.h)

    def patch(self, path, body):
        return self.d.patch(path, body, headers=self.h)

    def delete(self, path):
        return self.d.delete(path, headers=self.h)

    def submit(self, body):
        r = self.post("/api/jobs", body)
        assert r.status == 202, r
        return r.json

    def pipeline(self, name, **extra):
        body = {"name": name, "jobs": [{"name": "a", "task_name": "dummytask"},
                                       {"name": "b", "task_name": "dummytask"}]}
        body.update(extra)
        r = self.post("/api/pipelines", body)
        assert r.status == 202, r
        return r.json


class OwnershipTest(DaemonTestCase):
    store = None  # VALET_TEST_STORE, else memory

    @classmethod
    def setUpClass(cls):
        cls.dir = scratch_dir("valet-keys-")
        cls.keys = os.path.join(cls.dir, "keys")
        tokens = {}
        for name, scopes in (("alice", "submit,read,cancel"), ("bob", "submit,read,cancel"),
                             ("adm", "admin"), ("temp", "submit,read")):
            rc, out, err = key_cmd(cls.keys, "create", name, "--scopes", scopes)
            assert rc == 0, err
            tokens[name] = out
        cls.config = {"server": {"auth_keys": cls.keys}, "queue": {"workers": "2"}}
        super().setUpClass()
        cls.alice, cls.bob, cls.adm, cls.temp = (As(cls.d, tokens[n])
                                                 for n in ("alice", "bob", "adm", "temp"))

    def assertNotFound(self, r, what, ident):
        """r is the 404 an unknown id gets, word for word."""
        self.assertEqual(r.status, 404, r)
        self.assertEqual(set(r.json), ERROR_KEYS, r)
        self.assertEqual(r.json["message"], "%s with ID: %s not found" % (what, ident), r)

    def finished(self, who, job_id):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            job = who.get("/api/jobs/" + job_id).json
            if job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return job
            time.sleep(0.02)
        self.fail("job %s did not finish" % job_id)

    def test_another_keys_job_is_not_found(self):
        done = self.alice.submit({"name": "done", "task_name": "dummytask",
                                  "task_params": {"x": 1}})
        self.assertEqual(self.finished(self.alice, done["id"])["status"], "COMPLETED")
        parked = self.alice.submit({"name": "parked", "task_name": "dummytask",
                                    "run_at": later()})
        unknown = str(uuid.uuid4())
        # Another key's job answers exactly as an unknown one.
        for jid in (done["id"], parked["id"], unknown):
            self.assertNotFound(self.bob.get("/api/jobs/" + jid), "job", jid)
            self.assertNotFound(self.bob.get("/api/jobs/%s/results" % jid), "job result", jid)
            self.assertNotFound(self.bob.patch("/api/jobs/" + jid, {"name": "mine"}), "job", jid)
            self.assertNotFound(self.bob.post("/api/jobs/%s/cancel" % jid), "job", jid)
            self.assertNotFound(self.bob.delete("/api/jobs/%s/results" % jid), "job result",
                                jid)
            self.assertNotFound(self.bob.delete("/api/jobs/" + jid), "job", jid)
        # ... and nothing changed.
        job = self.alice.get("/api/jobs/" + parked["id"]).json
        self.assertEqual((job["name"], job["status"]), ("parked", "PENDING"))
        job = self.alice.get("/api/jobs/" + done["id"]).json
        self.assertEqual((job["name"], job["status"]), ("done", "COMPLETED"))
        self.assertEqual(self.alice.get("/api/jobs/%s/results" % done["id"]).status, 200)
        # The owner may do all of it.
        self.assertEqual(self.alice.patch("/api/jobs/" + parked["id"], {"name": "p2"}).status,
                         204)
        r = self.alice.post("/api/jobs/%s/cancel" % parked["id"])
        self.assertEqual((r.status, r.json["status"]), (200, "CANCELLED"), r)
        self.assertEqual(self.alice.delete("/api/jobs/%s/results" % done["id"]).status, 204)
        self.assertEqual(self.alice.delete("/api/jobs/" + done["id"]).status, 204)

    def test_another_keys_pipeline_is_not_found(self):
        pl = self.alice.pipeline("alice-pl", run_at=later())
        pid, first = pl["id"], pl["jobs"][0]["id"]
        for path, what in (("", "pipeline"), ("/jobs", "pipeline")):
            self.assertNotFound(self.bob.get("/api/pipelines/" + pid + path), what, pid)
        self.assertNotFound(self.bob.patch("/api/pipelines/" + pid, {"name": "x"}), "pipeline",
                            pid)
        self.assertNotFound(self.bob.post("/api/pipelines/%s/cancel" % pid), "pipeline", pid)
        self.assertNotFound(self.bob.delete("/api/pipelines/" + pid), "pipeline", pid)
        # Its jobs are the pipeline's owner's.
        self.assertNotFound(self.bob.get("/api/jobs/" + first), "job", first)
        self.assertNotFound(self.bob.post("/api/jobs/%s/cancel" % first), "job", first)
        pl = self.alice.get("/api/pipelines/" + pid).json
        self.assertEqual((pl["name"], pl["status"]), ("alice-pl", "PENDING"))
        r = self.alice.get("/api/pipelines/%s/jobs" % pid)
        self.assertEqual([j["id"] for j in r.json["jobs"]][0], first)
        r = self.alice.post("/api/pipelines/%s/cancel" % pid)
        self.assertEqual((r.status, r.json["status"]), (200, "CANCELLED"), r)

    def test_lists_hold_only_the_keys_own_work(self):
        mine = [self.temp.submit({"name": "t%d" % i, "task_name": "dummytask",
                                  "run_at": later()})["id"] for i in range(3)]
        theirs = self.bob.submit({"name": "b", "task_name": "dummytask", "run_at": later()})
        pls = [self.temp.pipeline("tp%d" % i, run_at=later())["id"] for i in range(2)]
        self.bob.pipeline("bp", run_at=later())
        jobs = self.temp.get("/api/jobs").json["jobs"]
        own = [j["id"] for j in jobs]
        self.assertEqual([i for i in own if i in mine], mine)
        self.assertNotIn(theirs["id"], own)
        # Each of its pipelines' jobs, and nothing else.
        self.assertEqual(len(own), 3 + 2 * 2, jobs)
        self.assertTrue(all("owner" not in j for j in jobs))
        # limit and offset count only what the key may see.
        r = self.temp.get("/api/jobs?status=pending&limit=2&offset=1").json["jobs"]
        self.assertEqual([j["id"] for j in r], mine[1:3])
        r = self.temp.get("/api/pipelines").json["pipelines"]
        self.assertEqual([p["id"] for p in r], pls)
        r = self.temp.get("/api/pipelines?limit=1&offset=1").json["pipelines"]
        self.assertEqual([p["id"] for p in r], pls[1:])

    def test_admin_sees_all_with_the_owner(self):
        a = self.alice.submit({"name": "a", "task_name": "dummytask", "run_at": later()})
        b = self.bob.submit({"name": "b", "task_name": "dummytask", "run_at": later()})
        pl = self.bob.pipeline("bob-pl", run_at=later())
        self.assertNotIn("owner", a)
        owners = {j["id"]: j["owner"] for j in self.adm.get("/api/jobs").json["jobs"]}
        self.assertEqual((owners[a["id"]], owners[b["id"]]), ("alice", "bob"))
        self.assertEqual(owners[pl["jobs"][1]["id"]], "bob")
        self.assertEqual(self.adm.get("/api/jobs/" + a["id"]).json["owner"], "alice")
        self.assertEqual(self.adm.get("/api/pipelines/" + pl["id"]).json["owner"], "bob")
        pls = {p["id"]: p["owner"] for p in self.adm.get("/api/pipelines").json["pipelines"]}
        self.assertEqual(pls[pl["id"]], "bob")
        own = self.adm.submit({"name": "mine", "task_name": "dummytask", "run_at": later()})
        self.assertEqual(own["owner"], "adm")
        self.assertNotFound(self.alice.get("/api/jobs/" + own["id"]), "job", own["id"])
        # ... and may change and cancel anyone's.
        self.assertEqual(self.adm.patch("/api/jobs/" + a["id"], {"name": "a2"}).status, 204)
        self.assertEqual(self.alice.get("/api/jobs/" + a["id"]).json["name"], "a2")
        r = self.adm.post("/api/jobs/%s/cancel" % b["id"])
        self.assertEqual((r.status, r.json["status"], r.json["owner"]), (200, "CANCELLED", "bob"))
        self.assertEqual(self.adm.delete("/api/pipelines/" + pl["id"]).status, 204)

    def test_work_keeps_its_owner_after_revocation(self):
        rc, out, err = key_cmd(self.keys, "create", "brief", "--scopes", "submit")
        self.assertEqual(rc, 0, err)
        brief = As(self.d, out)
        deadline = time.monotonic() + 5
        while brief.post("/api/jobs", {}).status == 401 and time.monotonic() < deadline:
            time.sleep(0.02)
        job = brief.submit({"name": "left", "task_name": "dummytask", "run_at": later()})
        self.assertEqual(key_cmd(self.keys, "revoke", "brief")[0], 0)
        while brief.post("/api/jobs", {}).status != 401 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(brief.post("/api/jobs", {}).status, 401)
        self.assertEqual(self.adm.get("/api/jobs/" + job["id"]).json["owner"], "brief")


@unittest.skipUnless(os.environ.get("VALET_TEST_DATABASE_URL"), "no test PostgreSQL")
class OwnershipPgTest(OwnershipTest):
    store = "postgres"

    def test_owner_is_stored(self):
        a = self.alice.submit({"name": "a", "task_name": "dummytask", "run_at": later()})
        pl = self.bob.pipeline("bob-pl", run_at=later())
        rows = self.d.sql("SELECT owner FROM jobs WHERE id = :'id'", id=a["id"])
        self.assertEqual(rows, [["alice"]])
        rows = self.d.sql("SELECT owner FROM pipelines WHERE id = :'id'", id=pl["id"])
        self.assertEqual(rows, [["bob"]])
        rows = self.d.sql("SELECT DISTINCT owner FROM jobs WHERE pipeline_id = :'id'",
                          id=pl["id"])
        self.assertEqual(rows, [["bob"]])


class PolicyTest(DaemonTestCase):
    # The memory store: with PostgreSQL, work run_at ahead waits in the
    # database, for any node, and max_queued counts what a node holds.
    store = "memory"
    KEYS = (("tasks", ["--tasks", "dummytask,echoprev"]),
            ("strict", ["--profiles", "strict"]),
            ("limits", ["--max-timeout", "5s", "--max-memory", "64M", "--max-cpu", "2s"]),
            ("queue", ["--max-queued", "2"]),
            ("rate", ["--submit-rate", "1", "--submit-burst", "2"]),
            ("slow", ["--submit-rate", "1", "--submit-burst", "1", "--tasks", "dummytask"]),
            ("plain", []),
            ("roomy", ["--max-timeout", "30s"]))

    @classmethod
    def setUpClass(cls):
        cls.dir = scratch_dir("valet-keys-")
        cls.keys = os.path.join(cls.dir, "keys")
        cls.who = {}
        for name, opts in cls.KEYS:
            rc, out, err = key_cmd(cls.keys, "create", name, "--scopes", "submit,read", *opts)
            assert rc == 0, err
            cls.who[name] = out
        cls.config = {"server": {"auth_keys": cls.keys},
                      "auth": {"max_timeout": "10s"}}
        super().setUpClass()
        cls.who = {n: As(cls.d, t) for n, t in cls.who.items()}

    def refused(self, key, body, rule, kind="jobs"):
        """body is refused for key with a 403 naming rule; nothing is stored;
        the denial is logged once, with the key's name."""
        who = self.who[key]
        before = who.get("/api/" + kind).json[kind]
        pattern = r"request denied key=%s reason=[^\n]*\(policy %s" % (key, rule)
        logged = len(re.findall(pattern, self.d.log_text()))
        r = who.post("/api/" + kind, body)
        self.assertEqual(r.status, 403, r)
        self.assertEqual(set(r.json), ERROR_KEYS, r)
        self.assertIn('the API key "%s"' % key, r.json["message"])
        self.assertIn("(policy %s" % rule, r.json["message"])
        self.assertEqual(who.get("/api/" + kind).json[kind], before)
        deadline = time.monotonic() + 5
        while (len(re.findall(pattern, self.d.log_text())) == logged
               and time.monotonic() < deadline):
            time.sleep(0.02)
        time.sleep(0.05)
        self.assertEqual(len(re.findall(pattern, self.d.log_text())), logged + 1,
                         self.d.log_text())
        return r.json["message"]

    def job(self, task, **extra):
        body = {"name": "p", "task_name": task, "run_at": later()}
        body.update(extra)
        return body

    def test_tasks(self):
        msg = self.refused("tasks", self.job("sha256"), "tasks")
        self.assertIn("dummytask, echoprev", msg)
        self.who["tasks"].submit(self.job("dummytask"))
        # A pipeline is refused whole for one job outside the policy.
        self.refused("tasks", {"name": "pl", "jobs": [{"name": "a", "task_name": "dummytask"},
                                                      {"name": "b", "task_name": "sha256"}]},
                     "tasks", kind="pipelines")

    def test_profiles(self):
        msg = self.refused("strict", self.job("exec_ok"), "profiles")
        self.assertIn("the exec profile", msg)
        self.who["strict"].submit(self.job("dummytask"))

    def test_limits_and_timeout(self):
        self.refused("limits", self.job("dummytask", timeout=6), "max_timeout")
        self.refused("limits", self.job("dummytask", limits={"memory": "65M"}), "max_memory")
        self.refused("limits", self.job("dummytask", limits={"cpu": 3}), "max_cpu")
        job = self.who["limits"].submit(self.job("dummytask", timeout=5,
                                                 limits={"memory": "64M", "cpu": 2}))
        self.assertEqual(job["timeout"], 5)

    def test_config_defaults(self):
        # [auth] max_timeout = 10s for a key whose line says nothing; a key's
        # own value replaces it.
        self.refused("plain", self.job("dummytask", timeout=11), "max_timeout")
        self.who["plain"].submit(self.job("dummytask", timeout=10))
        self.who["roomy"].submit(self.job("dummytask", timeout=20))

    def test_queue_quota(self):
        q = self.who["queue"]
        q.submit(self.job("dummytask"))
        self.refused("queue", {"name": "pl", "run_at": later(),
                               "jobs": [{"name": "a", "task_name": "dummytask"},
                                        {"name": "b", "task_name": "dummytask"}]},
                     "max_queued", kind="pipelines")
        q.submit(self.job("dummytask"))
        msg = self.refused("queue", self.job("dummytask"), "max_queued")
        self.assertIn("has 2 jobs waiting", msg)
        # Another key's work is not counted against it.
        self.who["plain"].submit(self.job("dummytask"))

    def test_submit_rate(self):
        rate = self.who["rate"]
        codes, start = [], time.monotonic()
        while 429 not in codes and len(codes) < 10:
            r = rate.post("/api/jobs", self.job("dummytask"))
            codes.append(r.status)
        # The burst (2), and no more than the rate (1/s) adds meanwhile.
        self.assertEqual(codes[:2], [202, 202])
        self.assertLessEqual(codes.count(202), 2 + int(time.monotonic() - start) + 1, codes)
        self.assertEqual(r.status, 429, r)
        self.assertEqual(set(r.json), ERROR_KEYS, r)
        self.assertEqual(r.json["code"], 429)
        self.assertIn("(policy submit_rate)", r.json["message"])
        self.assertEqual(r.header("retry-after"), "1")
        self.assertEqual(len(rate.get("/api/jobs").json["jobs"]), codes.count(202))
        # Reads are not submits; the bucket fills again.
        self.assertEqual(rate.get("/api/jobs").status, 200)
        time.sleep(1.1)
        self.assertEqual(rate.post("/api/jobs", self.job("dummytask")).status, 202)
        self.assertRegex(self.d.log_text(), r"request denied key=rate reason=.*submit_rate")

    def test_refused_submits_leave_the_rate_alone(self):
        # Burst 1: a bad body, a body the core refuses and a rule's refusal
        # each change nothing, the bucket included - the valid submit after
        # them is accepted at once.
        slow = self.who["slow"]
        self.assertEqual(self.d.post("/api/jobs", raw=b"garbage", headers=slow.h).status, 400)
        self.assertEqual(slow.post("/api/jobs", {"name": "a"}).status, 400)
        self.assertEqual(slow.post("/api/jobs", {"name": "a", "task_name": "nosuch"}).status,
                         400)
        self.assertEqual(slow.post("/api/jobs", self.job("sha256")).status, 403)
        self.assertEqual(slow.post("/api/pipelines", {"name": "p", "jobs": []}).status, 400)
        self.assertEqual(slow.post("/api/jobs", self.job("dummytask")).status, 202)
        # The one token is gone now: the next submit is a 429 from its
        # head, before its body is read (and takes nothing).
        data, closed = raw_head(self.d.port,
                                b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                b"Authorization: %s\r\nContent-Length: 100\r\n\r\n"
                                % slow.h["Authorization"].encode())
        self.assertTrue(data.startswith(b"HTTP/1.1 429 "), data[:100])
        self.assertIn(b"\r\nRetry-After: 1\r\n", data)
        self.assertTrue(closed)
        time.sleep(1.1)
        self.assertEqual(slow.post("/api/jobs", self.job("dummytask")).status, 202)

    def test_bad_policy_field_refuses_the_key(self):
        self.assertEqual(key_cmd(self.keys, "create", "x", "--scopes", "read",
                                 "--max-timeout", "soon")[0], 2)
        self.assertEqual(key_cmd(self.keys, "create", "x", "--scopes", "read",
                                 "--profiles", "root")[0], 2)
        rc, out, _ = key_cmd(self.keys, "list")
        self.assertNotRegex(out, r"(?m)^x ")
        self.assertRegex(out, r"(?m)^limits .*max_timeout=5s max_memory=64M max_cpu=2s")


class RunningCapTest(DaemonTestCase):
    """max_running: a key's jobs beyond it wait (not refused), without
    holding up other keys' work; a waiting one can be cancelled."""

    store = "memory"

    @classmethod
    def setUpClass(cls):
        cls.dir = scratch_dir("valet-keys-")
        cls.keys = os.path.join(cls.dir, "keys")
        tokens = {}
        for name, opts in (("capped", ["--max-running", "1"]), ("free", [])):
            rc, out, err = key_cmd(cls.keys, "create", name, "--scopes", "submit,read,cancel",
                                   *opts)
            assert rc == 0, err
            tokens[name] = out
        cls.config = {"server": {"auth_keys": cls.keys}, "queue": {"workers": "3"}}
        super().setUpClass()
        cls.capped, cls.free = As(cls.d, tokens["capped"]), As(cls.d, tokens["free"])

    def statuses(self, who, ids):
        # One list call: a snapshot. GETs one by one could see a job still
        # running and, a moment later, the next one started.
        jobs = {j["id"]: j["status"] for j in who.get("/api/jobs?limit=100").json["jobs"]}
        return [jobs[i] for i in ids]

    def test_one_at_a_time_and_others_go_on(self):
        ids = [self.capped.submit({"name": "c%d" % i, "task_name": "sleep",
                                   "task_params": {"seconds": 0.6}})["id"] for i in range(4)]
        other = self.free.submit({"name": "f", "task_name": "sleep",
                                  "task_params": {"seconds": 0.1}})["id"]
        deadline, most, other_done_early = time.monotonic() + 30, 0, False
        cancelled = False
        while time.monotonic() < deadline:
            st = self.statuses(self.capped, ids)
            most = max(most, st.count("IN_PROGRESS"))
            if self.free.get("/api/jobs/" + other).json["status"] == "COMPLETED" \
                    and "PENDING" in st[1:3]:
                other_done_early = True
            if not cancelled and st[3] == "PENDING":
                r = self.capped.post("/api/jobs/%s/cancel" % ids[3])
                self.assertEqual((r.status, r.json["status"]), (200, "CANCELLED"), r)
                cancelled = True
            if all(x in ("COMPLETED", "CANCELLED") for x in st):
                break
            time.sleep(0.02)
        self.assertEqual(self.statuses(self.capped, ids),
                         ["COMPLETED", "COMPLETED", "COMPLETED", "CANCELLED"])
        self.assertEqual(most, 1)
        self.assertTrue(other_done_early, "another key's job waited for the capped key's")
        # They ran one after another.
        jobs = [self.capped.get("/api/jobs/" + i).json for i in ids[:3]]
        at = datetime.datetime.fromisoformat
        for a, b in zip(jobs, jobs[1:]):
            self.assertLessEqual(at(a["completed_at"]), at(b["started_at"]))


if __name__ == "__main__":
    unittest.main()
