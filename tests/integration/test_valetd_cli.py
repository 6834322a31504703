"""valetd's own command line, no daemon left running: -t checks a config
file (0, or `file:line: message` and 2), --check reports what the host
offers and what jobs would get with a configuration (exit 1 where valetd
would not start), -V prints the version; a plugin or a spawner that does
not load ends valetd at once. (The `valet` client is test_cli.)
"""

import os
import re
import subprocess
import unittest

from valetd import REPO, VALETD, Daemon

class CliTest(unittest.TestCase):
    """valetd -t checks a config file: 0, or `file:line: message` and 2;
    valetd --check reports the host's isolation."""

    def run_valetd(self, *args):
        return subprocess.run([VALETD] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=20)

    def test_check_good_config(self):
        d = Daemon()
        try:
            d.write_config()
            r = self.run_valetd("-t", "-c", d.conf_path)
            self.assertEqual(r.returncode, 0, r)
        finally:
            d.cleanup()

    def test_plugin_that_does_not_load(self):
        """A plugin that does not load (the spawner loads them): valetd -t and
        valetd itself exit 2, naming the file."""
        d = Daemon()
        try:
            plugins = os.path.join(d.tmp, "plugins")
            os.makedirs(plugins)
            with open(os.path.join(plugins, "broken.so"), "w") as f:
                f.write("not an ELF file\n")
            d.overrides = {"tasks": {"plugin_dir": plugins}}
            d.write_config()
            for args in (["-t"], ["-l", "127.0.0.1:0"]):
                r = self.run_valetd(*args, "-c", d.conf_path)
                self.assertEqual(r.returncode, 2, r)
                self.assertIn("broken.so", r.stderr)
        finally:
            d.cleanup()

    def test_spawner_that_is_not_one(self):
        """--spawner naming a program that does not answer as a spawner:
        valetd says so and exits 1."""
        d = Daemon()
        try:
            d.write_config()
            r = self.run_valetd("--spawner", "/bin/true", "-c", d.conf_path, "-l", "127.0.0.1:0")
        finally:
            d.cleanup()
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("the spawner /bin/true ended before it was ready", r.stderr)

    def test_check_bad_config(self):
        d = Daemon({"queue": {"workers": "many"}})
        try:
            d.write_config()
            with open(d.conf_path) as f:
                lines = f.read().splitlines()
            lineno = lines.index("workers = many") + 1
            r = self.run_valetd("-t", "-c", d.conf_path)
            self.assertEqual(r.returncode, 2, r)
            self.assertRegex(r.stderr, "%s:%d: " % (re.escape(d.conf_path), lineno))
        finally:
            d.cleanup()

    def test_check_refuses_what_a_start_refuses(self):
        """-t (the unit's ExecStartPre and ExecReload) refuses every file a
        start would refuse, naming the key: it used to say "configuration
        OK" for each of these, and the start then failed."""
        d = Daemon()
        missing = os.path.join(d.tmp, "missing")
        cases = [
            ({"server": {"auth_keys": missing}}, "[server] auth_keys: "),
            ({"server": {"tls_cert": missing, "tls_key": missing}}, "[server] tls_cert"),
            ({"storage": {"backend": "postgres", "database_url": ""}}, "needs database_url"),
            ({"storage": {"backend": "postgres", "database_url": "postgresql:///x?a=b=c"}},
             "database_url: "),
            ({"storage": {"backend": "postgres", "database_url": "postgresql:///x",
                          "node_id": "o'brien"}}, "node id"),
            ({"sandbox": {"user": "no-such-user-here"}}, "no such user"),
            ({"sandbox": {"hide": "/etc"}}, "cannot be hidden"),
        ]
        try:
            for overrides, want in cases:
                with self.subTest(overrides=overrides):
                    d.overrides = overrides
                    d.write_config()
                    r = self.run_valetd("-t", "-c", d.conf_path)
                    self.assertEqual(r.returncode, 2, r)
                    self.assertIn(d.conf_path + ": ", r.stderr)
                    self.assertIn(want, r.stderr)
                    r = self.run_valetd("-c", d.conf_path, "-l", "127.0.0.1:0")
                    self.assertNotEqual(r.returncode, 0, r)
        finally:
            d.cleanup()

    def test_a_device_is_no_config_file(self):
        """-c /dev/zero: one endless line, read until memory ran out."""
        r = self.run_valetd("-t", "-c", "/dev/zero")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("/dev/zero: not a regular file", r.stderr)

    def test_bad_listen_variable_is_named(self):
        """VALET_LISTEN=bogus was blamed on the file ("listen = bogus is not
        a loopback address")."""
        d = Daemon()
        try:
            d.write_config()
            r = subprocess.run([VALETD, "-t", "-c", d.conf_path], capture_output=True,
                               text=True, timeout=20,
                               env=dict(os.environ, VALET_LISTEN="bogus"))
        finally:
            d.cleanup()
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("VALET_LISTEN=bogus: expected HOST:PORT", r.stderr)

    def test_isolation_check(self):
        """valetd --check probes the host and says what jobs get; exit 0."""
        d = Daemon()
        try:
            d.write_config()
            r = self.run_valetd("--check", "-c", d.conf_path)
        finally:
            d.cleanup()
        self.assertEqual(r.returncode, 0, r)
        for section in ("namespaces", "cgroups:", "seccomp:", "privileges:",
                        "what jobs get with this configuration:"):
            self.assertIn(section, r.stdout)
        self.assertRegex(r.stdout, r"\n  pid +(yes|no \(E[A-Z]+\))\n")
        # As root on the test machines: full isolation, nothing degraded.
        self.assertIn("  namespaces: pid, mount, ipc and uts namespaces not the daemon's", r.stdout)
        self.assertRegex(r.stdout, r"\n  cgroups: v[12], one per worker slot")
        self.assertNotIn("DEGRADED", r.stdout)
        # The spawner was started as valetd would start it: it made the view.
        self.assertRegex(r.stdout, r"\n  /: (a mount point|not a mount point \(a chroot\))")
        self.assertIn("  jobs' view and network prepared: yes\n", r.stdout)
        self.assertIn("capability bounding set of jobs: empty", r.stdout)
        # No exec+net task: no network helper to speak of.
        self.assertNotIn("exec+net tasks:", r.stdout)

    @unittest.skipUnless(os.geteuid() == 0, "needs root (namespaces)")
    def test_isolation_check_network(self):
        """--check says how exec+net jobs reach the network, and where."""
        net_task = {"command": "/bin/true", "profile": "exec+net"}
        for mode, want in (("slirp4netns", "exec+net tasks: a network namespace per worker "
                                           "slot, served by"),
                           ("host", "exec+net tasks: the HOST's network namespace")):
            d = Daemon({"task.net": net_task,
                        "network": {"mode": mode, "deny": "10.0.0.0/8 192.0.2.128/25"}})
            try:
                d.write_config()
                r = self.run_valetd("--check", "-c", d.conf_path)
            finally:
                d.cleanup()
            self.assertEqual(r.returncode, 0, r)
            self.assertIn(want, r.stdout)
            if mode == "slirp4netns":
                self.assertIn("may not reach: 10.0.0.0/8 192.0.2.128/25\n", r.stdout)
                self.assertIn("may reach: 0.0.0.0/0\n", r.stdout)
                self.assertIn("never, whatever allow says: every address of this node",
                              r.stdout)

    @unittest.skipUnless(os.geteuid() == 0, "needs root (users)")
    def test_isolation_check_uid_allocation(self):
        """--check says which block of ids jobs would get (uid_base = auto by
        default, or pinned), and keeps none of it reserved."""
        d = Daemon({"queue": {"workers": "3"}})
        pinned = Daemon({"sandbox": {"uid_base": "61000"}, "queue": {"workers": "2"}})
        try:
            d.write_config()
            pinned.write_config()
            r = self.run_valetd("--check", "-c", d.conf_path)
            rp = self.run_valetd("--check", "-c", pinned.conf_path)
        finally:
            d.cleanup()
            pinned.cleanup()
        self.assertEqual(r.returncode, 0, r)
        m = re.search(r"\n  user: uid/gid (\d+) \+ slot number \(auto: the first free block of "
                      r"7 in 600000-699999\),\n    one per worker slot, no capabilities; gid "
                      r"(\d+) for the network helper\n", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        base, net = int(m.group(1)), int(m.group(2))
        self.assertGreaterEqual(base, 600000)
        self.assertEqual(net, base + 6)
        with open("/proc/net/unix") as f:
            self.assertNotIn("@valetd-id-%d\n" % base, f.read())
        self.assertEqual(rp.returncode, 0, rp)
        self.assertIn("\n  user: uid/gid 61000 + slot number ([sandbox] uid_base),\n    one per "
                      "worker slot, no capabilities; gid 61004 for the network helper\n",
                      rp.stdout)

    def test_isolation_check_refuses_missing(self):
        """--check exits 1 when configured isolation is missing and not allowed
        to degrade: here a uid range that holds a real user (root's uid 0 is
        never in it, nobody's 65534 is)."""
        d = Daemon({"sandbox": {"uid_base": "65530"}, "queue": {"workers": "4"}})
        try:
            d.write_config()
            r = self.run_valetd("--check", "-c", d.conf_path)
        finally:
            d.cleanup()
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("uid 65534 (slot 4 of", r.stdout)

    def test_isolation_check_unknown_user(self):
        """--check exits 1 where valetd would refuse to start (as root: no such user)."""
        d = Daemon({"sandbox": {"user": "valet-no-such-user"}})
        try:
            d.write_config()
            r = self.run_valetd("--check", "-c", d.conf_path)
        finally:
            d.cleanup()
        if os.geteuid() != 0:
            self.assertEqual(r.returncode, 0, r)
            self.assertIn("cannot switch users", r.stdout)
            return
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("valetd would not start: [sandbox] user valet-no-such-user: no such user",
                      r.stdout)

    def test_version(self):
        """valetd -V prints "valetd VERSION", the Makefile's VERSION (what
        /api/status reports too), and exits 0."""
        with open(os.path.join(REPO, "Makefile")) as f:
            m = re.search(r"^VERSION\s*[:?]?=\s*(\S+)", f.read(), re.M)
        self.assertIsNotNone(m, "no VERSION in the Makefile")
        r = self.run_valetd("-V")
        self.assertEqual(r.returncode, 0, r)
        self.assertEqual((r.stdout, r.stderr), ("valetd %s\n" % m.group(1), ""), r)


if __name__ == "__main__":
    unittest.main()
