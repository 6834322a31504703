"""API keys: who may ask valetd for what ([server] auth_keys).

Keys are made, listed and revoked with `valetd key`; a request needs a
known token with the scope its method and path need; revocation and edits
take effect without a restart; an open API on a non-loopback address is
refused unless the config says so.
"""

import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

from valetd import VALETD, Daemon, DaemonTestCase, ERROR_KEYS


def key_cmd(path, *args):
    r = subprocess.run([VALETD, "--file", path, "key"] + list(args), capture_output=True,
                       text=True, timeout=30)
    return r.returncode, r.stdout.strip(), r.stderr


def bearer(token):
    return {"Authorization": "Bearer " + token}


class AuthTest(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="valet-keys-")
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
        self.assertIn('error="invalid_token"', r.header("www-authenticate"))

    def test_scopes(self):
        job = {"name": "j", "task_name": "dummytask"}
        self.assertDenied(self.d.post("/api/jobs", job, headers=bearer(self.tokens["ro"])), 403)
        r = self.d.post("/api/jobs", job, headers=bearer(self.tokens["sub"]))
        self.assertEqual(r.status, 202, r)
        jid = r.json["id"]
        self.assertDenied(self.d.get("/api/jobs/" + jid, headers=bearer(self.tokens["sub"])),
                          403)
        self.assertEqual(self.d.get("/api/jobs/" + jid,
                                    headers=bearer(self.tokens["ro"])).status, 200)
        self.assertDenied(self.d.delete("/api/jobs/" + jid, headers=bearer(self.tokens["ro"])),
                          403)
        self.assertDenied(self.d.post("/api/jobs/%s/cancel" % jid,
                                      headers=bearer(self.tokens["sub"])), 403)
        self.assertDenied(self.d.patch("/api/jobs/" + jid, {"name": "x"},
                                       headers=bearer(self.tokens["can"])), 403)
        self.assertEqual(self.d.patch("/api/jobs/" + jid, {"name": "x"},
                                      headers=bearer(self.tokens["sub"])).status, 204)
        self.assertEqual(self.d.delete("/api/jobs/" + jid,
                                       headers=bearer(self.tokens["can"])).status, 204)
        # admin holds every scope.
        r = self.d.post("/api/jobs", job, headers=bearer(self.tokens["adm"]))
        self.assertEqual(r.status, 202, r)
        self.assertEqual(self.d.get("/api/jobs/" + r.json["id"],
                                    headers=bearer(self.tokens["adm"])).status, 200)
        self.assertEqual(self.d.delete("/api/jobs/" + r.json["id"],
                                       headers=bearer(self.tokens["adm"])).status, 204)

    def test_status_is_open_and_preflight_needs_no_key(self):
        self.assertEqual(self.d.get("/api/status").status, 200)
        r = self.d.options("/api/jobs", headers={"Origin": "http://example.com",
                                                  "Access-Control-Request-Method": "POST"})
        self.assertEqual(r.status, 204, r)

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


class ClosedStatusTest(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="valet-keys-")
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
        self.dir = tempfile.mkdtemp(prefix="valet-keys-")
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


if __name__ == "__main__":
    unittest.main()
