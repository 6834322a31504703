"""HTTPS ([server] tls_cert / tls_key): GnuTLS on valetd's own connections.

A certificate made here with openssl; clients verify it. TLS 1.2+ only;
plain HTTP to the port gets a plain answer that says so; keep-alive and a
large answer over TLS; a new certificate read on SIGHUP.
"""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from valetd import DaemonTestCase


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
        cls.dir = tempfile.mkdtemp(prefix="valet-tls-")
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
        s.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
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


if __name__ == "__main__":
    unittest.main()
