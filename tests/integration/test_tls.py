"""HTTPS ([server] tls_cert / tls_key): GnuTLS on valetd's own connections.

A certificate made here with openssl; clients verify it. TLS 1.2+ only;
plain HTTP to the port gets a plain answer that says so; keep-alive and a
large answer over TLS; a new certificate read on SIGHUP.

Client certificates (ClientCertRequireTest, ClientCertOptionalTest): a CA
and client certificates made here with openssl, the keys made with
`valetd key create --cert`. With tls_client_auth = require, a client
without a certificate, with one of another CA (even one a key names) or
with a server-only one fails the handshake, over TLS 1.2 and 1.3; a
certificate a key names is that key (its scopes: 403 outside them; its
work: another key's job is 404); a verified certificate of no key, or a
token of another key next to it, is 401 with the JSON body and the
challenge; each denial is logged once with the key and the certificate's
fingerprint; a SIGHUP reads a new CA bundle (a bad one keeps the old). With
optional, a client without a certificate is its token's key.
"""

import hashlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import unittest

from valetd import VALETD, DaemonTestCase, ERROR_KEYS, free_port, scratch_dir


def make_cert(d, name):
    cert, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


class TlsTest(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = scratch_dir("valet-tls-")
        cls.cert, cls.key = make_cert(cls.dir, "one")
        cls.config = {"server": {"tls_cert": cls.cert, "tls_key": cls.key, "max_body": "16M"},
                      "jobs": {"max_result_size": "16M"}}
        super().setUpClass()

    def context(self, cafile=None):
        ctx = ssl.create_default_context(cafile=cafile or self.cert)
        return ctx

    def https(self, cafile=None):
        return http.client.HTTPSConnection("127.0.0.1", self.d.port, timeout=20,
                                           context=self.context(cafile))

    def test_verified_keep_alive(self):
        c = self.https()
        for _ in range(3):
            c.request("GET", "/api/status")
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertIn("job_queue_healthy", json.loads(r.read()))
        self.assertTrue(c.sock.version() in ("TLSv1.2", "TLSv1.3"), c.sock.version())
        c.close()

    def test_submit_and_large_result(self):
        c = self.https()
        blob = "x" * (6 << 20)
        c.request("POST", "/api/jobs", body=json.dumps(
            {"name": "big", "task_name": "dummytask", "task_params": {"blob": blob}}),
            headers={"Content-Type": "application/json"})
        r = c.getresponse()
        self.assertEqual(r.status, 202)
        jid = json.loads(r.read())["id"]
        for _ in range(400):
            c.request("GET", "/api/jobs/" + jid)
            if json.loads(c.getresponse().read())["status"] == "COMPLETED":
                break
            time.sleep(0.05)
        c.request("GET", "/api/jobs/%s/results" % jid)
        r = c.getresponse()
        body = json.loads(r.read())
        self.assertEqual(body["metadata"]["blob"], blob)
        c.close()

    def test_plain_http_is_told(self):
        s = socket.create_connection(("127.0.0.1", self.d.port), timeout=10)
        s.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data)
        self.assertIn(b"use https://", data)

    def test_old_tls_refused(self):
        ctx = self.context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        with self.assertRaises((ssl.SSLError, ConnectionResetError)):
            with socket.create_connection(("127.0.0.1", self.d.port), timeout=10) as s:
                with ctx.wrap_socket(s, server_hostname="localhost"):
                    pass

    def test_wrong_ca_fails_verification(self):
        other, _ = make_cert(self.dir, "stranger")
        with self.assertRaises(ssl.SSLCertVerificationError):
            c = self.https(cafile=other)
            c.request("GET", "/api/status")

    def test_zz_new_certificate_on_sighup(self):
        c1, k1 = make_cert(self.dir, "two")
        os.replace(c1, self.cert)
        os.replace(k1, self.key)
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while time.time() < deadline:
            with socket.create_connection(("127.0.0.1", self.d.port), timeout=10) as s:
                ctx = ssl.create_default_context(cafile=self.cert)
                try:
                    with ctx.wrap_socket(s, server_hostname="localhost") as t:
                        subject = dict(x[0] for x in t.getpeercert()["subject"])
                        if subject["commonName"] == "two":
                            return
                except ssl.SSLCertVerificationError:
                    pass
            time.sleep(0.1)
        self.fail("the new certificate was not served after SIGHUP")


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_ca(d, name):
    cert, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    openssl("req", "-x509", *EC, "-keyout", key, "-out", cert, "-days", "2",
            "-subj", "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def make_client(d, name, ca, usage="clientAuth", days="2"):
    """A certificate of CN=name signed by ca (cert, key); usage: its extendedKeyUsage;
    days: its validity ("-1": it expired yesterday)."""
    cert, key = os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
    csr, ext = os.path.join(d, name + ".csr"), os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n" % usage)
    openssl("req", "-new", *EC, "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
    openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
            "-days", days, "-extfile", ext, "-out", cert)
    return cert, key


def fingerprint(cert):
    with open(cert) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def key_cmd(path, *args):
    r = subprocess.run([VALETD, "--file", path, "key"] + list(args), capture_output=True,
                       text=True, timeout=30)
    return r.returncode, r.stdout.strip(), r.stderr


class Answer:
    def __init__(self, r):
        self.status = r.status
        self.headers = {k.lower(): v for k, v in r.getheaders()}
        self.body = r.read()
        self.json = json.loads(self.body) if self.body else None

    def __repr__(self):
        return "<HTTP %d %r>" % (self.status, self.body[:300])


HANDSHAKE_FAILED = (ssl.SSLError, ConnectionResetError, BrokenPipeError,
                    http.client.RemoteDisconnected)


class ClientCertCase(DaemonTestCase):
    """A server certificate, CA "ca" (the bundle valetd trusts) and "stranger"
    (another CA), client certificates, and the keys:

      alice  submit,read      alice.crt (and a token)
      bob    submit,read      bob.crt
      ro     read             ro.crt
      tok    submit,read      a token only
      evil   admin            evil.crt - signed by the stranger CA
      old    admin            old.crt - expired
    carol.crt (CA "ca") is no key's; web.crt (CA "ca") is for servers only.
    """

    mode = None
    with_keys = True

    @classmethod
    def setUpClass(cls):
        cls.dir = scratch_dir("valet-mtls-")
        cls.cert, cls.key = make_cert(cls.dir, "server")
        cls.ca = make_ca(cls.dir, "ca")
        cls.stranger = make_ca(cls.dir, "stranger")
        cls.bundle = os.path.join(cls.dir, "clients.pem")
        with open(cls.ca[0]) as f, open(cls.bundle, "w") as out:
            out.write(f.read())
        cls.certs = {n: make_client(cls.dir, n, cls.ca) for n in ("alice", "bob", "ro", "carol")}
        cls.certs["evil"] = make_client(cls.dir, "evil", cls.stranger)
        cls.certs["web"] = make_client(cls.dir, "web", cls.ca, usage="serverAuth")
        cls.certs["old"] = make_client(cls.dir, "old", cls.ca, days="-1")
        cls.keys = os.path.join(cls.dir, "keys")
        cls.tokens = {}
        for name, scopes, cert in (("alice", "submit,read", True), ("bob", "submit,read", True),
                                   ("ro", "read", True), ("tok", "submit,read", False),
                                   ("evil", "admin", True), ("old", "admin", True)):
            args = ["create", name, "--scopes", scopes]
            if cert:
                args += ["--cert", cls.certs[name][0]]
            rc, out, err = key_cmd(cls.keys, *args)
            assert rc == 0, err
            cls.tokens[name] = out
        cls.config = {"server": {"tls_cert": cls.cert, "tls_key": cls.key,
                                 "tls_client_ca": cls.bundle, "tls_client_auth": cls.mode}}
        if cls.with_keys:
            cls.config["server"]["auth_keys"] = cls.keys
        super().setUpClass()

    def context(self, who=None, version=None):
        ctx = ssl.create_default_context(cafile=self.cert)
        if who:
            ctx.load_cert_chain(*self.certs[who])
        if version:
            ctx.minimum_version = ctx.maximum_version = version
        return ctx

    def call(self, method, path, who=None, body=None, token=None, version=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.d.port, timeout=20,
                                        context=self.context(who, version))
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = "Bearer " + token
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers=headers)
            return Answer(c.getresponse())
        finally:
            c.close()

    def assertDenied(self, r, code):
        self.assertEqual(r.status, code, r)
        self.assertEqual(set(r.json), ERROR_KEYS, r)
        self.assertEqual(r.json["code"], code, r)

    def assertHandshakeFails(self, who):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.assertRaises(HANDSHAKE_FAILED, msg="%s over %s" % (who, version)):
                self.call("GET", "/api/jobs", who=who, version=version,
                          token=self.tokens.get("tok"))

    def denials_since(self, mark):
        return [line for line in self.d.log_text()[mark:].splitlines()
                if "request denied" in line]

    def wait_denials(self, mark, n=1):
        deadline = time.time() + 10
        while time.time() < deadline:
            lines = self.denials_since(mark)
            if len(lines) >= n:
                return lines
            time.sleep(0.05)
        return self.denials_since(mark)


class ClientCertRequireTest(ClientCertCase):
    mode = "require"

    def refusals(self, mark, n):
        deadline = time.time() + 10
        while True:
            lines = [line for line in self.d.log_text()[mark:].splitlines()
                     if "TLS client certificate refused" in line]
            if len(lines) >= n or time.time() > deadline:
                return lines
            time.sleep(0.05)

    def test_no_certificate_fails_handshake(self):
        mark = len(self.d.log_text())
        self.assertHandshakeFails(None)
        self.assertEqual(self.call("GET", "/api/jobs", who="alice").status, 200)
        lines = self.refusals(mark, 2)
        self.assertEqual(len(lines), 2, lines)
        self.assertTrue(all("no client certificate" in line for line in lines), lines)

    def test_other_ca_fails_handshake(self):
        # evil.crt is named by an admin key: only the CA check keeps it out.
        mark = len(self.d.log_text())
        self.assertHandshakeFails("evil")
        lines = self.refusals(mark, 2)
        self.assertEqual(len(lines), 2, lines)
        evil = "sha256:" + fingerprint(self.certs["evil"][0])
        self.assertTrue(all(evil in line and "issuer is unknown" in line for line in lines),
                        lines)

    def test_server_only_or_expired_certificate_fails_handshake(self):
        self.assertHandshakeFails("web")
        self.assertHandshakeFails("old")

    def test_mapped_certificate_is_its_key(self):
        job = {"name": "mine", "task_name": "dummytask"}
        r = self.call("POST", "/api/jobs", who="alice", body=job)
        self.assertEqual(r.status, 202, r)
        jid = r.json["id"]
        self.assertEqual(self.call("GET", "/api/jobs/" + jid, who="alice").status, 200)
        # Its token is the same key: both together are fine.
        self.assertEqual(self.call("GET", "/api/jobs/" + jid, who="alice",
                                   token=self.tokens["alice"]).status, 200)
        # Another key's certificate: its job is unknown (404, never 403).
        self.assertDenied(self.call("GET", "/api/jobs/" + jid, who="bob"), 404)
        self.assertDenied(self.call("GET", "/api/jobs/" + jid, who="ro"), 404)
        self.assertEqual(self.call("GET", "/api/jobs", who="bob").json["jobs"], [])

    def test_scopes_of_its_key(self):
        mark = len(self.d.log_text())
        r = self.call("POST", "/api/jobs", who="ro", body={"name": "x", "task_name": "dummytask"})
        self.assertDenied(r, 403)
        self.assertIn('"ro" has no submit scope', r.json["message"])
        self.assertEqual(self.call("GET", "/api/jobs", who="ro").status, 200)
        lines = self.wait_denials(mark)
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("ro", lines[0])
        self.assertIn("sha256:" + fingerprint(self.certs["ro"][0]), lines[0])

    def test_unmapped_certificate_is_401(self):
        mark = len(self.d.log_text())
        r = self.call("GET", "/api/jobs", who="carol")
        self.assertDenied(r, 401)
        self.assertEqual(r.headers.get("www-authenticate"), 'Bearer realm="valet"')
        # A valid token does not make a stranger's certificate a key.
        r = self.call("GET", "/api/jobs", who="carol", token=self.tokens["tok"])
        self.assertDenied(r, 401)
        self.assertIn('error="invalid_token"', r.headers.get("www-authenticate"))
        lines = self.wait_denials(mark, 2)
        self.assertEqual(len(lines), 2, lines)
        carol = "sha256:" + fingerprint(self.certs["carol"][0])
        self.assertTrue(all(carol in line for line in lines), lines)
        self.assertTrue(all(self.tokens["tok"] not in line for line in lines), lines)

    def test_token_of_another_key_is_401(self):
        mark = len(self.d.log_text())
        for token in (self.tokens["tok"], self.tokens["bob"], "vk_" + "0" * 64):
            r = self.call("GET", "/api/jobs", who="alice", token=token)
            self.assertDenied(r, 401)
        lines = self.wait_denials(mark, 3)
        self.assertEqual(len(lines), 3, lines)
        for token in self.tokens.values():
            self.assertFalse(any(token in line for line in lines), lines)
            self.assertFalse(any(token[3:] in line for line in lines), lines)

    def test_key_list_and_create_checks(self):
        rc, out, err = key_cmd(self.keys, "list")
        self.assertEqual(rc, 0, err)
        line = [l for l in out.splitlines() if l.startswith("alice ")][0]
        self.assertIn("cert=sha256:" + fingerprint(self.certs["alice"][0]), line)
        tok = [l for l in out.splitlines() if l.startswith("tok ")][0]
        self.assertNotIn("cert=", tok)
        with open(self.keys) as f:
            before = f.read()
        for args in (["--cert", self.ca[0]], ["--cert", self.certs["alice"][0]],
                     ["--cert", self.certs["carol"][1]], ["--cert", "sha256:abc"],
                     ["--cert", self.certs["carol"][0], "--cert", self.certs["carol"][0]]):
            rc, _, err = key_cmd(self.keys, "create", "x", "--scopes", "read", *args)
            self.assertIn(rc, (1, 2), err)
            self.assertIn("cert", err)
        with open(self.keys) as f:
            self.assertEqual(f.read(), before)

    def test_no_session_is_resumed(self):
        # Each connection's certificate is verified: a resumed session would
        # skip that (and outlive a CA taken out of the bundle).
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = self.context("alice", version)
            session = None
            for _ in range(2):
                with socket.create_connection(("127.0.0.1", self.d.port), timeout=10) as s:
                    with ctx.wrap_socket(s, server_hostname="localhost",
                                         session=session) as t:
                        t.sendall(b"GET /api/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                        answer = t.recv(4096)
                        self.assertFalse(t.session_reused, version)
                        self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:200])
                        session = t.session

    def test_key_made_and_revoked_while_running(self):
        self.certs["dave"] = make_client(self.dir, "dave", self.ca)
        rc, _, err = key_cmd(self.keys, "create", "dave", "--scopes", "read",
                             "--cert=" + self.certs["dave"][0])
        self.assertEqual(rc, 0, err)
        deadline = time.time() + 10
        while self.call("GET", "/api/jobs", who="dave").status != 200:
            self.assertLess(time.time(), deadline, "the new key was not read")
            time.sleep(0.05)
        rc, _, err = key_cmd(self.keys, "revoke", "dave")
        self.assertEqual(rc, 0, err)
        deadline = time.time() + 10
        while True:
            r = self.call("GET", "/api/jobs", who="dave")
            if r.status == 401:
                break
            self.assertEqual(r.status, 200, r)
            self.assertLess(time.time(), deadline, "the revoked key still works")
            time.sleep(0.05)
        self.assertDenied(r, 401)

    def test_two_keys_of_one_certificate_are_refused(self):
        with open(self.keys) as f:
            before = f.read()
        alice = [l for l in before.splitlines() if l.startswith("alice ")][0].split()
        twin = " ".join(["twin", "admin", "ab" * 32] + alice[3:])
        mark = len(self.d.log_text())
        with open(self.keys + ".tmp", "w") as f:
            f.write(twin + "\n" + before)  # first: it would win a lookup
        os.replace(self.keys + ".tmp", self.keys)
        try:
            deadline = time.time() + 10
            while "one certificate, one key" not in self.d.log_text()[mark:]:
                self.assertLess(time.time(), deadline, self.d.log_tail())
                time.sleep(0.05)
            # The keys in use stay: alice is alice, not an admin.
            r = self.call("GET", "/api/jobs?limit=1", who="alice")
            self.assertEqual(r.status, 200, r)
            self.assertDenied(self.call("DELETE", "/api/jobs/" + "0" * 32, who="alice"), 403)
        finally:
            with open(self.keys + ".tmp", "w") as f:
                f.write(before)
            os.replace(self.keys + ".tmp", self.keys)

    def test_zz_sighup_reads_the_ca_bundle(self):
        # A bundle that does not load keeps the one in use: the reload is
        # refused (a start would refuse the file), and says why.
        with open(self.bundle, "w") as f:
            f.write("not a certificate\n")
        mark = len(self.d.log_text())
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while not re.search(r"reload failed.*tls_client_ca", self.d.log_text()[mark:]):
            self.assertLess(time.time(), deadline, self.d.log_tail())
            time.sleep(0.05)
        self.assertEqual(self.call("GET", "/api/jobs", who="alice").status, 200)
        # The stranger CA's bundle: evil is in (its key is admin), alice out.
        with open(self.stranger[0]) as f, open(self.bundle, "w") as out:
            out.write(f.read())
        self.d.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while True:
            try:
                if self.call("GET", "/api/jobs", who="evil").status == 200:
                    break
            except HANDSHAKE_FAILED:
                pass
            self.assertLess(time.time(), deadline, "the new CA bundle was not read")
            time.sleep(0.1)
        self.assertHandshakeFails("alice")


class ClientCertOptionalTest(ClientCertCase):
    mode = "optional"

    def test_no_certificate_falls_back_to_the_token(self):
        r = self.call("POST", "/api/jobs", token=self.tokens["tok"],
                      body={"name": "t", "task_name": "dummytask"})
        self.assertEqual(r.status, 202, r)
        jid = r.json["id"]
        self.assertEqual(self.call("GET", "/api/jobs/" + jid, token=self.tokens["tok"]).status,
                         200)
        self.assertDenied(self.call("GET", "/api/jobs/" + jid, who="alice"), 404)
        r = self.call("GET", "/api/jobs")
        self.assertDenied(r, 401)
        self.assertEqual(r.headers.get("www-authenticate"), 'Bearer realm="valet"')

    def test_certificate_without_token(self):
        self.assertEqual(self.call("GET", "/api/jobs", who="alice").status, 200)
        self.assertDenied(self.call("GET", "/api/jobs", who="carol"), 401)

    def test_bad_certificate_still_fails_handshake(self):
        self.assertHandshakeFails("evil")
        self.assertHandshakeFails("web")
        self.assertHandshakeFails("old")


class ClientCertOpenApiTest(ClientCertCase):
    """require without auth_keys: the open API, for the CA's clients only."""
    mode = "require"
    with_keys = False

    def test_only_the_cas_clients(self):
        self.assertHandshakeFails(None)
        self.assertHandshakeFails("evil")
        self.assertEqual(self.call("GET", "/api/jobs", who="carol").status, 200)


class ClientCertConfigTest(unittest.TestCase):
    """A client-certificate setting that could not work, or would look like
    mTLS and check nothing, is an error of the file (valetd --check)."""

    def test_bad_combinations(self):
        d = scratch_dir("valet-mtls-conf-")
        for text, line, words in (
                ("tls_cert = a\ntls_key = b\ntls_client_ca = c\n", 4, "tls_client_auth = off"),
                ("tls_client_auth = require\n", 2, "needs tls_client_ca"),
                ("tls_client_ca = c\ntls_client_auth = optional\n", 3, "needs TLS"),
                ("tls_client_auth = yes\n", 2, "off, optional, require")):
            path = os.path.join(d, "valetd.conf")
            with open(path, "w") as f:
                f.write("[server]\n" + text)
            r = subprocess.run([VALETD, "-c", path, "--check"], capture_output=True, text=True,
                               timeout=30)
            self.assertEqual(r.returncode, 2, (text, r.stderr))
            self.assertIn("%s:%d: " % (path, line), r.stderr)
            self.assertIn(words, r.stderr)

    def test_bundle_that_does_not_load(self):
        d = scratch_dir("valet-mtls-conf-")
        cert, key = make_cert(d, "server")
        junk = os.path.join(d, "junk.pem")
        with open(junk, "w") as f:
            f.write("not a certificate\n")
        for bundle, words in ((junk, "no certificate in it"),
                              (os.path.join(d, "missing.pem"), "missing.pem")):
            path = os.path.join(d, "valetd.conf")
            with open(path, "w") as f:
                f.write("[server]\ntls_cert = %s\ntls_key = %s\ntls_client_ca = %s\n"
                        "tls_client_auth = require\n" % (cert, key, bundle))
            r = subprocess.run([VALETD, "-c", path, "-l", "127.0.0.1:%d" % free_port()],
                               capture_output=True, text=True, timeout=60, cwd=d)
            self.assertNotEqual(r.returncode, 0, r.stderr)
            self.assertIn("as the client CA bundle", r.stderr)
            self.assertIn(words, r.stderr)


if __name__ == "__main__":
    unittest.main()
