"""API keys in PostgreSQL ([server] auth_source = postgres): every node of
a cluster sees the same keys.

Two valetd nodes on one database and schema (ClusterKeysTest): a key made
with `valetd key create` before they start works on both; one made while
they run is accepted by both without a restart (and gives no other key's
rate a fresh burst), and one revoked is refused
(401) by both, within the documented bound (STORE_KEYS_BOUND_S, 2 s) -
also when the table is changed by hand, with no NOTIFY (the backstop
re-read); work submitted on node A by key k is k's on node B, and another
key gets 404 there; a row that does not parse is left out (that key is
refused) and does not hold back the others' changes; the table keeps only
the token's SHA-256, and valet_reader cannot read it; the command's exit
statuses are the file version's (0, 1, 2). With the database down
(DatabaseDownTest) each node keeps the keys it had - a known key still gets
through, an unknown one or none is still 401, never an open API - and
logs that once; once it is back, a new key works again. A node that never
read the keys (NeverReadTest: its database is unreachable from the start)
answers 503, never an open API. ConfigTest: auth_source = postgres wants
the PostgreSQL backend and no keys file beside it; a non-loopback listen
with it is accepted; `valetd key --help` needs no database, and a database
that cannot be reached is exit status 1.
"""

import hashlib
import os
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from valetd import (VALETD, Client, Daemon, free_port, new_schema, pg_restart, sql)

BOUND_S = 2.0  # STORE_KEYS_BOUND_S (supervisor/store.h), as the README says
CONFIG = {"server": {"auth_source": "postgres"}}


def key_cmd(conf, *args):
    r = subprocess.run([VALETD, "-c", conf, "key"] + list(args), capture_output=True,
                       text=True, timeout=30)
    return r.returncode, r.stdout.strip(), r.stderr


def bearer(token):
    return {"Authorization": "Bearer " + token}


def wait_status(nodes, token, status, timeout, path="/api/jobs"):
    """Seconds until every node answers path with this status for token."""
    t0 = time.monotonic()
    left = list(nodes)
    while left:
        left = [d for d in left if d.get(path, headers=bearer(token)).status != status]
        if left and time.monotonic() - t0 > timeout:
            raise AssertionError("not %d within %.1fs on %s" % (
                status, timeout, ", ".join(d.node_id for d in left)))
        if left:
            time.sleep(0.02)
    return time.monotonic() - t0


@unittest.skipUnless(os.environ.get("VALET_TEST_DATABASE_URL"), "no test PostgreSQL")
class ClusterKeysTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        schema = new_schema()
        cls.a = Daemon(CONFIG, store="postgres", schema=schema, node_id=schema + "-a")
        cls.b = Daemon(CONFIG, store="postgres", schema=schema, node_id=schema + "-b")
        cls.a.write_config()
        cls.conf = cls.a.conf_path
        cls.tokens = {}
        for name, scopes in (("alice", "submit,read,cancel"), ("bob", "submit,read,cancel"),
                             ("adm", "admin")):
            rc, out, err = key_cmd(cls.conf, "create", name, "--scopes", scopes)
            assert rc == 0, err
            cls.tokens[name] = out
        try:
            cls.a.start()
            cls.b.start()
        except BaseException:
            cls.a.kill()
            cls.b.kill()
            raise
        cls.nodes = (cls.a, cls.b)

    @classmethod
    def tearDownClass(cls):
        cls.a.stop()
        cls.b.stop()

    def make(self, name, scopes="read", *extra):
        rc, out, err = key_cmd(self.conf, "create", name, "--scopes", scopes, *extra)
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^vk_[0-9a-f]{64}$")
        return out

    def test_key_made_before_start_works_on_both(self):
        for d in self.nodes:
            self.assertEqual(d.get("/api/jobs", headers=bearer(self.tokens["alice"])).status,
                             200)
            r = d.get("/api/jobs")
            self.assertEqual(r.status, 401, r)
            self.assertEqual(r.header("www-authenticate"), 'Bearer realm="valet"')
            bad = "vk_" + "0" * 64
            self.assertEqual(d.get("/api/jobs", headers=bearer(bad)).status, 401)

    def test_key_made_while_running_works_on_both(self):
        token = self.make("late")
        took = wait_status(self.nodes, token, 200, BOUND_S + 3)
        self.assertLess(took, BOUND_S + 0.5)
        # Its scopes are the table's: read, not submit.
        r = self.b.post("/api/jobs", {"name": "x", "task_name": "dummytask"},
                        headers=bearer(token))
        self.assertEqual(r.status, 403, r)

    def test_revoked_key_refused_on_both(self):
        token = self.make("doomed")
        wait_status(self.nodes, token, 200, BOUND_S + 3)
        rc, _, err = key_cmd(self.conf, "revoke", "doomed")
        self.assertEqual(rc, 0, err)
        took = wait_status(self.nodes, token, 401, BOUND_S + 3)
        self.assertLess(took, BOUND_S + 0.5)
        # Revoked twice, unknown, made again under its name: 1; bad usage: 2.
        self.assertEqual(key_cmd(self.conf, "revoke", "doomed")[0], 1)
        self.assertEqual(key_cmd(self.conf, "revoke", "nobody")[0], 1)
        rc, _, err = key_cmd(self.conf, "create", "doomed", "--scopes", "read")
        self.assertEqual(rc, 1, err)
        self.assertIn("revoked", err)
        self.assertEqual(key_cmd(self.conf, "create", "x y", "--scopes", "read")[0], 2)
        self.assertEqual(key_cmd(self.conf, "create", "z", "--scopes", "root")[0], 2)
        self.assertEqual(key_cmd(self.conf, "create", "z", "--max-timeout", "soon")[0], 2)
        self.assertEqual(self.a.sql("SELECT count(*) FROM api_keys WHERE name = 'z'"),
                         [["0"]])

    def test_revoked_by_hand_refused_within_the_bound(self):
        """No NOTIFY: the re-read every second is the backstop."""
        token = self.make("byhand")
        wait_status(self.nodes, token, 200, BOUND_S + 3)
        self.a.sql("UPDATE api_keys SET revoked_at = now() WHERE name = 'byhand'")
        took = wait_status(self.nodes, token, 401, BOUND_S + 3)
        self.assertLess(took, BOUND_S + 0.3)

    def test_ownership_across_nodes(self):
        alice, bob, adm = (bearer(self.tokens[k]) for k in ("alice", "bob", "adm"))
        r = self.a.post("/api/jobs", {"name": "mine", "task_name": "dummytask",
                                       "run_at": "2999-01-01T00:00:00Z"}, headers=alice)
        self.assertEqual(r.status, 202, r)
        job = r.json["id"]
        r = self.b.get("/api/jobs/" + job, headers=alice)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["name"], "mine")
        self.assertEqual(self.b.get("/api/jobs/" + job, headers=bob).status, 404)
        self.assertEqual(self.b.post("/api/jobs/%s/cancel" % job, headers=bob).status, 404)
        ids = [j["id"] for j in self.b.get("/api/jobs", headers=bob).json["jobs"]]
        self.assertNotIn(job, ids)
        r = self.b.get("/api/jobs/" + job, headers=adm)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["owner"], "alice")
        self.assertEqual(self.b.post("/api/jobs/%s/cancel" % job, headers=alice).status, 200)

    def test_rate_bucket_survives_a_change_of_the_keys(self):
        """Another key made (the keys read again) gives no key a fresh burst."""
        token = self.make("rl", "submit,read", "--submit-rate", "1", "--submit-burst", "5")
        wait_status((self.a,), token, 200, BOUND_S + 3)
        job = {"name": "r", "task_name": "dummytask", "run_at": "2999-01-01T00:00:00Z"}
        codes = []
        while 429 not in codes and len(codes) < 20:
            codes.append(self.a.post("/api/jobs", job, headers=bearer(token)).status)
        self.assertEqual(codes[-1], 429, codes)
        empty = time.monotonic()
        other = self.make("rl-other")
        wait_status((self.a,), other, 200, BOUND_S + 3)
        self.assertIn("keys=", self.a.log_text())
        codes = [self.a.post("/api/jobs", job, headers=bearer(token)).status for _ in range(5)]
        # What the rate (1/s) added since the bucket ran dry, not 5 afresh.
        self.assertLessEqual(codes.count(202), int(time.monotonic() - empty) + 1, codes)

    def test_table_keeps_the_hash_only(self):
        rows = self.a.sql("SELECT name, scopes, token_sha256, revoked_at, policy "
                          "FROM api_keys WHERE name = 'alice'")
        digest = hashlib.sha256(self.tokens["alice"].encode()).hexdigest()
        self.assertEqual(rows, [["alice", "submit,read,cancel", digest, None, ""]])
        dump = "\n".join(",".join(str(v) for v in row)
                         for row in self.a.sql("SELECT * FROM api_keys"))
        for token in self.tokens.values():
            self.assertNotIn(token[3:], dump)
        token = self.make("ruled", "submit", "--max-timeout", "30s", "--tasks", "sha256")
        self.assertEqual(self.a.sql("SELECT policy FROM api_keys WHERE name = 'ruled'"),
                         [["max_timeout=30s tasks=sha256"]])
        wait_status(self.nodes, token, 403, BOUND_S + 3, path="/api/jobs")
        r = self.b.post("/api/jobs", {"name": "x", "task_name": "dummytask"},
                        headers=bearer(token))
        self.assertEqual(r.status, 403, r)
        self.assertIn("policy tasks", r.json["message"])
        rc, out, _ = key_cmd(self.conf, "list")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"(?m)^ruled +submit +\d{4}-\S+ +tasks=sha256 max_timeout=30s$")
        self.assertNotRegex(out, r"(?m)^doomed ")

    def test_a_certificate_is_one_keys(self):
        """--cert on the table: its cert= word is in the row's policy, and a
        certificate another key of the table has is refused (exit 1)."""
        fp = "sha256:" + "c0" * 32
        self.make("certkey", "read", "--cert", fp)
        self.assertEqual(self.a.sql("SELECT policy FROM api_keys WHERE name = 'certkey'"),
                         [["cert=" + fp]])
        rc, _, err = key_cmd(self.conf, "create", "certkey2", "--scopes", "read", "--cert", fp)
        self.assertEqual(rc, 1, err)
        self.assertIn("one certificate, one key", err)
        self.assertEqual(self.a.sql("SELECT count(*) FROM api_keys WHERE name = 'certkey2'"),
                         [["0"]])

    def test_reader_role_cannot_read_hashes(self):
        if sql("SELECT count(*) FROM pg_roles WHERE rolname = 'valet_reader'") != [["1"]]:
            self.skipTest("needs: the valet_reader role (migration 005 makes it)")
        with self.assertRaises(AssertionError) as cm:
            sql("SET ROLE valet_reader; SELECT token_sha256 FROM %s.api_keys"
                % self.a.schema)
        self.assertIn("permission denied", str(cm.exception))
        # The role still reads its views.
        sql("SET ROLE valet_reader; SELECT count(*) FROM %s.queue_depth" % self.a.schema)

    def test_bad_row_is_left_out_not_the_rest(self):
        """A row the parser refuses (put in by hand) is that key refused;
        the other keys' changes still come through."""
        token = self.make("fine")
        wait_status(self.nodes, token, 200, BOUND_S + 3)
        self.a.sql("INSERT INTO api_keys (name, scopes, token_sha256) "
                   "VALUES ('broken', 'root', repeat('ab', 32))")
        self.a.sql("UPDATE api_keys SET revoked_at = now() WHERE name = 'fine'")
        wait_status(self.nodes, token, 401, BOUND_S + 3)
        self.assertEqual(self.a.get("/api/jobs", headers=bearer(self.tokens["bob"])).status,
                         200)
        for d in self.nodes:
            self.assertIn('bad scopes \\"root\\"', d.log_text())
        self.a.sql("DELETE FROM api_keys WHERE name = 'broken'")


@unittest.skipUnless(os.environ.get("VALET_TEST_PG_DIR"), "no test PostgreSQL to restart")
class DatabaseDownTest(unittest.TestCase):
    def test_database_down_keeps_the_keys(self):
        schema = new_schema()
        a = Daemon(CONFIG, store="postgres", schema=schema, node_id=schema + "-a")
        b = Daemon(CONFIG, store="postgres", schema=schema, node_id=schema + "-b")
        a.write_config()
        rc, token, err = key_cmd(a.conf_path, "create", "mon", "--scopes", "metrics")
        self.assertEqual(rc, 0, err)
        try:
            a.start()
            b.start()
            wait_status((a, b), token, 200, BOUND_S + 3, path="/metrics")
            down = threading.Thread(target=pg_restart, kwargs={"down": 4})
            down.start()
            try:
                # Wait until both nodes see the database gone (status 503).
                deadline = time.monotonic() + 20
                while any(d.get("/api/status").status != 503 for d in (a, b)):
                    self.assertLess(time.monotonic(), deadline, "the database never went")
                    time.sleep(0.05)
                time.sleep(BOUND_S)  # a poll or two that fail
                for d in (a, b):
                    self.assertEqual(d.get("/metrics", headers=bearer(token)).status, 200)
                    self.assertEqual(d.get("/metrics").status, 401)
                    self.assertEqual(d.get("/metrics", headers=bearer("vk_" + "1" * 64))
                                     .status, 401)
            finally:
                down.join()
            for d in (a, b):
                self.assertEqual(d.log_text().count("API keys cannot be read from the "
                                                    "database"), 1, d.log_tail())
            # Back: LISTEN again, and new keys come through.
            rc, late, err = key_cmd(a.conf_path, "create", "late", "--scopes", "metrics")
            self.assertEqual(rc, 0, err)
            wait_status((a, b), late, 200, 15, path="/metrics")
            a.stop()
            b.stop()
        finally:
            a.cleanup()
            b.cleanup()


@unittest.skipUnless(os.environ.get("VALET_TEST_DATABASE_URL"), "no test PostgreSQL")
class NeverReadTest(unittest.TestCase):
    def test_keys_never_read_is_503_not_open(self):
        """Its database cannot be reached: no key was ever read, so every
        request that needs one is a 503 (not a 401 that calls a good token
        bad, never an open API)."""
        d = Daemon(CONFIG, store="postgres")
        d.database_url = "postgresql:///nowhere?host=/nonexistent&connect_timeout=1"
        d.write_config()
        port = free_port()
        log = open(d.log_path, "ab")
        proc = subprocess.Popen([VALETD, "-c", d.conf_path, "-l", "127.0.0.1:%d" % port],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        c = Client("127.0.0.1", port, timeout=5)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    r = c.get("/api/jobs")
                    break
                except OSError:
                    self.assertLess(time.monotonic(), deadline, d.log_text())
                    c.close()
                    time.sleep(0.05)
            self.assertEqual(r.status, 503, r)
            self.assertIn("API keys not read yet", r.json["message"])
            r = c.get("/api/jobs", headers=bearer("vk_" + "2" * 64))
            self.assertEqual(r.status, 503, r)
            # Logged once it has tried for 5 s, and once only.
            deadline = time.monotonic() + 15
            while "API keys cannot be read" not in d.log_text():
                self.assertLess(time.monotonic(), deadline, d.log_text())
                time.sleep(0.1)
            time.sleep(1.5)
            self.assertEqual(d.log_text().count("API keys cannot be read"), 1, d.log_text())
            r = c.get("/api/jobs")
            self.assertEqual(r.status, 503, r)
        finally:
            c.close()
            proc.terminate()
            self.assertEqual(proc.wait(15), 0)
            log.close()
            d.cleanup()


class ConfigTest(unittest.TestCase):
    def check(self, text):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as conf:
            conf.write(text)
        r = subprocess.run([VALETD, "-t", "-c", conf.name], capture_output=True, text=True)
        os.unlink(conf.name)
        return r.returncode, r.stderr

    def test_auth_source_postgres_needs_its_backend_alone(self):
        pg = "[storage]\nbackend = postgres\ndatabase_url = postgresql:///x\n"
        rc, err = self.check("[server]\nauth_source = postgres\n")
        self.assertEqual(rc, 2)
        self.assertIn("auth_source = postgres needs [storage] backend = postgres", err)
        rc, err = self.check("[server]\nauth_source = postgres\nauth_keys = /k\n" + pg)
        self.assertEqual(rc, 2)
        self.assertIn("auth_keys must not name a file too", err)
        rc, err = self.check("[server]\nauth_source = ldap\n")
        self.assertEqual(rc, 2)
        self.assertIn("auth_source", err)
        rc, err = self.check("[server]\nlisten = 0.0.0.0:8080\nauth_source = postgres\n" + pg)
        self.assertEqual(rc, 0, err)
        rc, err = self.check("[server]\nlisten = 0.0.0.0:8080\nauth_source = file\n" + pg)
        self.assertEqual(rc, 2, err)
        self.assertIn("not a loopback address", err)

    def test_key_help_needs_no_database(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as conf:
            conf.write("[server]\nauth_source = postgres\n[storage]\nbackend = postgres\n"
                       "database_url = postgresql:///x?host=/nonexistent\n")
        try:
            rc, out, err = key_cmd(conf.name, "--help")
            self.assertEqual(rc, 0, err)
            self.assertIn("api_keys table", out)
            rc, out, err = key_cmd(conf.name, "list")
            self.assertEqual(rc, 1)
            self.assertIn("cannot connect to PostgreSQL", err)
        finally:
            os.unlink(conf.name)


if __name__ == "__main__":
    unittest.main()
