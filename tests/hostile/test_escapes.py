"""Escapes tried from outside, through the HTTP API, with exec tasks: each
test here is a way out that once worked (issue 11) and must stay closed.

Theory of operation: each class starts a real valetd (as root, full
isolation) whose exec tasks run tests/hostile/escapes/probe.py, a program
that tries what the test asks (connect, read, write, list, fork, create
sockets) and reports each answer as data or an errno name. The test sets
the host up around it - a "remote" network namespace reached through a
veth pair, servers on every local address, an abstract socket, a second
procfs, mounts made after startup, a config replaced by rename - and
checks what the job got. Every test that expects a refusal also has a
positive control (the same probe reaching what it may reach), so that it
cannot pass because the probe or the network is simply broken.
"""
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
from valetd import ASAN, VALETD, Daemon, below, proc_table  # noqa: E402

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "escapes", "probe.py")
PYTHON = "/usr/bin/python3"
TAG = "%06x" % random.randrange(16 ** 6)
ROOT = os.geteuid() == 0


def tasks(net=False):
    t = {"task.esc": {"command": "%s %s" % (PYTHON, PROBE)}}
    if net:
        t["task.esc_net"] = {"command": "%s %s" % (PYTHON, PROBE), "profile": "exec+net"}
    return t


def run(*cmd, check=True):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        raise AssertionError("%s: %s" % (" ".join(cmd), r.stdout))
    return r


def probe(d, params, task="esc", timeout=20, limits=None):
    """Run the probe with params; returns (job, result metadata)."""
    job = d.submit(task, params, timeout=timeout, **({"limits": limits} if limits else {}))
    done = d.wait_all([job["id"]], timeout=timeout + 20, check_status=False)[job["id"]]
    if done["status"] != "COMPLETED":
        raise AssertionError("probe job %s: %s" % (done["status"], done.get("failure_reason")))
    return done, d.result(job["id"]).get("metadata") or {}


class Listener:
    """A TCP server that accepts and counts connections (in a thread)."""

    def __init__(self, family=socket.AF_INET, host="127.0.0.1", port=0):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
                self.accepted += 1
                c.close()
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()


def ns_wrapper(directory, setup):
    """A program that runs valetd in a mount namespace of its own, after the
    shell commands setup: a host as the test needs it, which this one is
    not (the namespace is private: nothing of it reaches the host). It
    execs valetd, so valetd keeps its pid."""
    wrapper = os.path.join(directory, "valetd")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\n"
                "exec unshare --mount --propagation private sh -c '%s && exec \"$0\" "
                "\"$@\"' %s \"$@\"\n" % (setup, VALETD))
    os.chmod(wrapper, 0o755)
    os.chmod(directory, 0o755)
    return wrapper


def host_addresses():
    """Every address of every interface of this host: ([IPv4], [IPv6])."""
    out = json.loads(run("ip", "-j", "addr").stdout)
    v4, v6 = [], []
    for ifc in out:
        for a in ifc.get("addr_info", []):
            if a.get("family") == "inet":
                v4.append(a["local"])
            elif a.get("family") == "inet6" and a.get("scope") != "link":
                v6.append(a["local"])
    return v4, v6


@unittest.skipUnless(ROOT, "needs root (network namespaces, veth)")
@unittest.skipUnless(shutil.which("slirp4netns"), "slirp4netns is not installed")
class NetworkTest(unittest.TestCase):
    """exec+net jobs get a network of their own: the outside, never the
    node (its loopback, its addresses, valetd's API, abstract sockets),
    the cloud metadata address, nor what [network] denies."""

    NS = "valet-esc-" + TAG
    VETH = "vesc" + TAG[:6]
    REMOTE = {"allowed": "198.51.100.2", "denied_cfg": "198.51.100.130",
              "metadata": "169.254.169.254", "inner_allowed": "10.99.0.2",
              "private": "10.98.0.2"}

    @classmethod
    def setUpClass(cls):
        cls.cleanups = []
        try:
            cls._remote()
            cls.host_srv = Listener(socket.AF_INET6, "::")
            cls.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            cls.abstract.bind("\0valet-esc-abstract-" + TAG)
            cls.abstract.listen(8)
            cls.cleanups.append(cls.abstract.close)
            # On every address, as an open API: what a job must not reach.
            cls.d = Daemon(dict(tasks(net=True), network={
                "allow": "0.0.0.0/0 10.99.0.0/24",
                "deny": "10.0.0.0/8 169.254.0.0/16 198.51.100.128/25"},
                server={"allow_unauthenticated": "true"}),
                listen_host="0.0.0.0", tmp_parent="/var/tmp")
            cls.d.start()
        except BaseException:
            cls._undo()
            raise

    @classmethod
    def _remote(cls):
        """A host on the other side of a veth pair, in its own network
        namespace, with a TCP server on each of REMOTE's addresses."""
        run("ip", "netns", "add", cls.NS)
        cls.cleanups.append(lambda: run("ip", "netns", "del", cls.NS, check=False))
        run("ip", "link", "add", cls.VETH, "type", "veth", "peer", "name", cls.VETH + "r")
        cls.cleanups.append(lambda: run("ip", "link", "del", cls.VETH, check=False))
        run("ip", "link", "set", cls.VETH + "r", "netns", cls.NS)
        for a in ("198.51.100.1/24", "10.99.0.1/24", "10.98.0.1/24"):
            run("ip", "addr", "add", a, "dev", cls.VETH)
        run("ip", "link", "set", cls.VETH, "up")
        run("ip", "route", "replace", "169.254.169.254/32", "dev", cls.VETH)
        cls.cleanups.append(lambda: run("ip", "route", "del", "169.254.169.254/32", "dev",
                                        cls.VETH, check=False))
        # nsenter, not `ip netns exec`: that also makes "/" a slave mount,
        # which a chroot cannot do (its "/" is no mount point).
        inside = ["nsenter", "--net=/run/netns/" + cls.NS]
        for a in ("198.51.100.2/24", "198.51.100.130/24", "169.254.169.254/32",
                  "10.99.0.2/24", "10.98.0.2/24"):
            run(*inside, "ip", "addr", "add", a, "dev", cls.VETH + "r")
        run(*inside, "ip", "link", "set", cls.VETH + "r", "up")
        run(*inside, "ip", "link", "set", "lo", "up")
        run(*inside, "ip", "route", "add", "default", "dev", cls.VETH + "r")
        cls.remote_port = 20000 + random.randrange(20000)
        cls.remote = subprocess.Popen(inside + [
            sys.executable, "-c",
            "import socket,sys\n"
            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            "s.bind(('0.0.0.0',%d)); s.listen(64); print('up',flush=True)\n"
            "while True:\n c,_=s.accept(); c.close()\n" % cls.remote_port],
            stdout=subprocess.PIPE, text=True)
        cls.cleanups.append(lambda: (cls.remote.kill(), cls.remote.wait()))
        if cls.remote.stdout.readline().strip() != "up":
            raise AssertionError("the remote server did not start")
        # The host itself reaches every remote address (the test network works).
        for a in cls.REMOTE.values():
            s = socket.create_connection((a, cls.remote_port), timeout=3)
            s.close()

    @classmethod
    def _undo(cls):
        for c in reversed(cls.cleanups):
            try:
                c()
            except Exception:  # noqa: BLE001
                pass

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls.host_srv.close()
            cls._undo()

    def test_reaches_the_outside_and_not_the_node(self):
        v4, v6 = host_addresses()
        api, srv, rp = self.d.port, self.host_srv.port, self.remote_port
        params = {
            "tcp": [[a, p] for a in v4 + ["127.0.0.1", "10.0.2.2"] for p in (api, srv)] +
                   [[a, rp] for a in self.REMOTE.values()],
            "tcp6": [[a, srv] for a in v6 + ["::1"]],
            "abstract": ["valet-esc-abstract-" + TAG],
            "read": ["/etc/resolv.conf"],
        }
        before = self.host_srv.accepted
        job, meta = probe(self.d, params, task="esc_net")
        # Positive control: the outside is reachable, as [network] allows.
        self.assertEqual(meta["tcp %s:%d" % (self.REMOTE["allowed"], rp)], "connected", meta)
        self.assertEqual(meta["tcp %s:%d" % (self.REMOTE["inner_allowed"], rp)], "connected",
                         meta)
        # Denied by [network] (a /25 inside an allowed range, 10/8 around an
        # allowed /24) and by default (the metadata address): at once.
        for k in ("denied_cfg", "private", "metadata"):
            self.assertEqual(meta["tcp %s:%d" % (self.REMOTE[k], rp)], "EHOSTUNREACH",
                             (k, meta))
        # The node: valetd's API and a server on every address, v4 and v6.
        for key, got in meta.items():
            if key.startswith("tcp") and not any(
                    "%s:%d" % (a, rp) in key for a in self.REMOTE.values()):
                self.assertNotEqual(got, "connected", (key, meta))
        self.assertEqual(self.host_srv.accepted, before, meta)
        self.assertEqual(meta["@valet-esc-abstract-" + TAG], "ECONNREFUSED", meta)
        # Names resolve through slirp4netns's forwarder, not the host's resolver.
        self.assertEqual(meta["read /etc/resolv.conf"], "nameserver 10.0.2.3\n", meta)
        iso = job["isolation"]
        self.assertEqual(iso["network"], "slirp4netns", iso)
        self.assertIn("net", iso["namespaces"], iso)
        self.assertIs(iso["degraded"], False, iso)

    def test_new_node_address_is_denied(self):
        """An address the node gets after startup is denied to jobs too (the
        spawner follows the host's address events)."""
        addr = "198.18.%d.%d" % (random.randrange(1, 250), random.randrange(1, 250))
        run("ip", "addr", "add", addr + "/32", "dev", self.VETH)
        try:
            srv = Listener(socket.AF_INET, addr)
            time.sleep(0.5)
            _, meta = probe(self.d, {"tcp": [[addr, srv.port],
                                             [self.REMOTE["allowed"], self.remote_port]]},
                            task="esc_net")
            srv.close()
        finally:
            run("ip", "addr", "del", addr + "/32", "dev", self.VETH, check=False)
        self.assertEqual(meta["tcp %s:%d" % (self.REMOTE["allowed"], self.remote_port)],
                         "connected", meta)
        self.assertEqual(meta["tcp %s:%d" % (addr, srv.port)], "EHOSTUNREACH", meta)
        self.assertEqual(srv.accepted, 0)

    def test_helper_restarts(self):
        """A network helper that dies is started again for its slot's next
        exec+net job (which then reaches the outside as before)."""
        table = proc_table()
        helpers = [p for p in below(table, self.d.proc.pid) if table[p][3] == "slirp4netns"]
        self.assertEqual(len(helpers), 2 * 4, helpers)  # two slots per worker
        for p in helpers:
            os.kill(p, signal.SIGKILL)
        # Gone (the spawner reaped them): a job that starts while a helper
        # is still dying may find its network gone with it.
        deadline = time.monotonic() + 5
        while any(os.path.exists("/proc/%d" % p) for p in helpers):
            self.assertLess(time.monotonic(), deadline, "the helpers were not reaped")
            time.sleep(0.02)
        target = [self.REMOTE["allowed"], self.remote_port]
        for _ in range(3):  # whichever slot runs it
            _, meta = probe(self.d, {"tcp": [target]}, task="esc_net")
            self.assertEqual(meta["tcp %s:%d" % tuple(target)], "connected", meta)
        table = proc_table()
        now = [p for p in below(table, self.d.proc.pid) if table[p][3] == "slirp4netns"]
        self.assertTrue(now and not set(now) & set(helpers), (helpers, now))

    def test_helper_sandboxed(self):
        """Each slot's slirp4netns runs in its own sandbox (--enable-sandbox:
        a mount namespace of its own, every capability but
        CAP_NET_BIND_SERVICE dropped) under its own seccomp filter
        (--enable-seccomp)."""
        table = proc_table()
        helpers = [p for p in below(table, self.d.proc.pid) if table[p][3] == "slirp4netns"]
        self.assertTrue(helpers)
        host_mnt = os.readlink("/proc/%d/ns/mnt" % self.d.proc.pid)
        for p in helpers:
            with open("/proc/%d/status" % p) as f:
                st = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
            self.assertEqual(st["Seccomp"], "2", (p, st))
            self.assertEqual(int(st["CapEff"], 16), 1 << 10, (p, st))  # CAP_NET_BIND_SERVICE
            self.assertEqual(int(st["CapPrm"], 16), 1 << 10, (p, st))
            self.assertNotEqual(os.readlink("/proc/%d/ns/mnt" % p), host_mnt, p)

    def test_allow_list_only(self):
        """allow without 0.0.0.0/0: only those networks, nothing else."""
        d = Daemon(dict(tasks(net=True), network={"allow": "198.51.100.0/25", "deny": ""}),
                   tmp_parent="/var/tmp")
        d.start()
        try:
            rp = self.remote_port
            _, meta = probe(d, {"tcp": [[self.REMOTE["allowed"], rp],
                                        [self.REMOTE["inner_allowed"], rp],
                                        [self.REMOTE["metadata"], rp]]}, task="esc_net")
        finally:
            d.stop()
        self.assertEqual(meta["tcp %s:%d" % (self.REMOTE["allowed"], rp)], "connected", meta)
        for k in ("inner_allowed", "metadata"):
            self.assertIn(meta["tcp %s:%d" % (self.REMOTE[k], rp)],
                          ("ENETUNREACH", "EHOSTUNREACH"), (k, meta))

    def test_only_tcp_and_udp(self):
        """exec+net sockets: TCP and UDP over IPv4 and IPv6, nothing else of IP."""
        inet, inet6 = socket.AF_INET, socket.AF_INET6
        st, dg = socket.SOCK_STREAM, socket.SOCK_DGRAM
        ok = [[inet, st, 0], [inet, st, 6], [inet, dg, 0], [inet, dg, 17], [inet6, st, 6],
              [inet6, dg, 17]]
        refused = [[inet, st, 262], [inet6, st, 262], [inet, dg, 136], [inet6, dg, 136],
                   [inet, st, 132], [inet, socket.SOCK_SEQPACKET, 132], [inet, dg, 1],
                   [inet6, dg, 58], [inet, dg, 115], [inet, socket.SOCK_RAW, 1]]
        _, meta = probe(self.d, {"sockets": ok + refused}, task="esc_net")
        for f, t, p in ok:
            self.assertEqual(meta["socket %d %d %d" % (f, t, p)], "ok", meta)
        for f, t, p in refused:
            self.assertEqual(meta["socket %d %d %d" % (f, t, p)], "EPERM", (f, t, p, meta))


@unittest.skipUnless(ROOT, "needs root (network namespaces)")
class NetworkDegradedTest(unittest.TestCase):
    """Without slirp4netns, an exec+net task keeps valetd from starting,
    unless degraded isolation is allowed: then its jobs get the host's
    network and say so."""

    def test_refused_then_degraded(self):
        net = dict(tasks(net=True), network={"helper": "/nonexistent/slirp4netns"})
        d = Daemon(net, tmp_parent="/var/tmp")
        try:
            with self.assertRaises(AssertionError) as cm:
                d.start()
        finally:
            d.cleanup()
        self.assertIn("exec+net jobs need slirp4netns", str(cm.exception))
        self.assertIn("allow_degraded_isolation", str(cm.exception))
        net["sandbox"] = {"allow_degraded_isolation": "true"}
        d = Daemon(net, tmp_parent="/var/tmp")
        d.start()
        try:
            job, _ = probe(d, {}, task="esc_net")
            plain, _ = probe(d, {})
        finally:
            d.stop()
        self.assertEqual(job["isolation"]["network"], "host", job["isolation"])
        self.assertNotIn("net", job["isolation"]["namespaces"], job["isolation"])
        self.assertIs(job["isolation"]["degraded"], True, job["isolation"])
        # The other jobs keep their empty network namespace.
        self.assertEqual(plain["isolation"]["network"], "none", plain["isolation"])

    def test_no_tun_device(self):
        """Without /dev/net/tun (here: a tmpfs over /dev/net in valetd's own
        mount namespace) slirp4netns cannot serve exec+net jobs: valetd
        refuses to start and says so."""
        tmp = tempfile.mkdtemp(prefix="valet-esc-tun-", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, tmp, True)
        d = Daemon(tasks(net=True), binary=ns_wrapper(tmp, "mount -t tmpfs none /dev/net"),
                   tmp_parent="/var/tmp")
        try:
            with self.assertRaises(AssertionError) as cm:
                d.start()
        finally:
            d.cleanup()
        self.assertIn("exec+net jobs need /dev/net/tun for slirp4netns", str(cm.exception))
        self.assertIn("allow_degraded_isolation", str(cm.exception))

    def test_mode_host(self):
        """[network] mode = host: exec+net jobs get the host's network -
        the node's loopback, a server there - by configuration, not
        degraded, and say "network": "host"; other jobs keep none."""
        srv = Listener()
        self.addCleanup(srv.close)
        d = Daemon(dict(tasks(net=True), network={"mode": "host"}), tmp_parent="/var/tmp")
        d.start()
        try:
            job, meta = probe(d, {"tcp": [["127.0.0.1", srv.port]]}, task="esc_net")
            plain, plain_meta = probe(d, {"tcp": [["127.0.0.1", srv.port]]})
        finally:
            d.stop()
        self.assertEqual(meta["tcp 127.0.0.1:%d" % srv.port], "connected", meta)
        self.assertEqual(job["isolation"]["network"], "host", job["isolation"])
        self.assertNotIn("net", job["isolation"]["namespaces"], job["isolation"])
        self.assertIs(job["isolation"]["degraded"], False, job["isolation"])
        self.assertEqual(plain_meta["tcp 127.0.0.1:%d" % srv.port], "EPERM", plain_meta)
        self.assertEqual(plain["isolation"]["network"], "none", plain["isolation"])


@unittest.skipUnless(ROOT, "needs root (mounts)")
class HiddenTest(unittest.TestCase):
    """What valetd reads stays out of every job's view: the config's
    directory (also after an editor replaced the file by rename, and after
    the directory itself was renamed away and made anew), /etc/default, and
    [sandbox] hide."""

    @classmethod
    def setUpClass(cls):
        cls.extra = "/var/tmp/valet-esc-hide-" + TAG
        os.makedirs(cls.extra)
        with open(os.path.join(cls.extra, "secret"), "w") as f:
            f.write("extra-secret\n")
        cls.default = "/etc/default/valet-esc-" + TAG
        with open(cls.default, "w") as f:
            f.write("VALET_DATABASE_URL=postgres://u:pw-%s@db/x\n" % TAG)
        # /etc/valet, the packaged config's directory, is hidden whatever
        # the config file in use: made here (readable by all) if the host
        # has none, and removed again.
        cls.made_etc_valet = not os.path.exists("/etc/valet")
        os.makedirs("/etc/valet", exist_ok=True)
        cls.etc_valet = "/etc/valet/valet-esc-" + TAG
        with open(cls.etc_valet, "w") as f:
            f.write("etc-valet-secret\n")
        os.chmod(cls.etc_valet, 0o644)
        cls.d = Daemon(dict(tasks(), sandbox={"hide": cls.extra}), tmp_parent="/var/tmp")
        try:
            cls.d.start()
            os.chmod(cls.d.tmp, 0o755)
            os.chmod(cls.d.conf_path, 0o644)
        except BaseException:
            cls.d.cleanup()
            cls._remove_etc_valet()
            raise

    @classmethod
    def _remove_etc_valet(cls):
        os.unlink(cls.etc_valet)
        if cls.made_etc_valet:
            os.rmdir("/etc/valet")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            shutil.rmtree(cls.extra, ignore_errors=True)
            shutil.rmtree(cls.extra + ".old", ignore_errors=True)
            os.unlink(cls.default)
            cls._remove_etc_valet()

    def read(self, *paths):
        return probe(self.d, {"read": list(paths), "ls": ["/etc"]})[1]

    def test_config_after_an_edit(self):
        conf = self.d.conf_path
        meta = self.read(conf)
        self.assertEqual(meta["read " + conf], "ENOENT", meta)
        self.assertIn("passwd", meta["ls /etc"], meta)  # positive control: /etc is there
        # What sed -i, editors, git and cp + mv do: a new file renamed over.
        with open(conf) as f:
            text = f.read()
        new = conf + ".new"
        with open(new, "w") as f:
            f.write(text + "# secret-after-edit-%s\n" % TAG)
        os.chmod(new, 0o644)
        os.rename(new, conf)
        meta = self.read(conf)
        self.assertEqual(meta["read " + conf], "ENOENT", meta)
        os.kill(self.d.proc.pid, signal.SIGHUP)
        time.sleep(0.5)
        meta = self.read(conf)
        self.assertEqual(meta["read " + conf], "ENOENT", meta)

    def test_default_and_hide(self):
        secret = os.path.join(self.extra, "secret")
        meta = self.read(self.default, secret, self.etc_valet, "/etc/hostname")
        self.assertEqual(meta["read " + self.default], "ENOENT", meta)
        self.assertEqual(meta["read " + secret], "ENOENT", meta)
        self.assertEqual(meta["read " + self.etc_valet], "ENOENT", meta)
        self.assertIn("valet", meta["ls /etc"], meta)  # hidden: there, and empty
        self.assertNotIn(meta["read /etc/hostname"], ("ENOENT", "EACCES"), meta)

    def test_directory_renamed_and_made_anew(self):
        """A hidden directory renamed away and made again is hidden again: at
        once on SIGHUP, else within the spawner's periodic check."""
        secret = os.path.join(self.extra, "secret")
        os.rename(self.extra, self.extra + ".old")
        os.makedirs(self.extra)
        with open(secret, "w") as f:
            f.write("new-secret\n")
        os.kill(self.d.proc.pid, signal.SIGHUP)
        time.sleep(0.5)
        meta = self.read(secret, "/etc/hostname")
        self.assertEqual(meta["read " + secret], "ENOENT", meta)
        self.assertNotEqual(meta["read /etc/hostname"], "ENOENT", meta)
        # Without a reload: the periodic check (every 2 s).
        shutil.rmtree(self.extra + ".old")
        os.rename(self.extra, self.extra + ".old")
        os.makedirs(self.extra)
        with open(secret, "w") as f:
            f.write("newer-secret\n")
        time.sleep(3)
        _, meta = probe(self.d, {"read": [secret], "mountinfo": True})
        self.assertEqual(meta["read " + secret], "ENOENT", meta)
        # What is laid over a directory after startup is as read-only, nosuid
        # and nodev as the rest of the view (sbx_view.c's sbx_harden).
        over = [m for m in meta["mountinfo"] if m["point"] == self.extra]
        self.assertTrue(over, meta["mountinfo"])
        for flag in ("ro", "nosuid", "nodev", "noexec"):
            self.assertIn(flag, over[-1]["opts"], over)


@unittest.skipUnless(ROOT, "needs root (mounts)")
class DatabaseSocketTest(unittest.TestCase):
    """The database's socket directory, as database_url names it, is hidden
    (not a fixed list): here a directory outside /tmp (jobs have a /tmp of
    their own anyway) where the test server's socket also shows."""

    def setUp(self):
        url = os.environ.get("VALET_TEST_DATABASE_URL")
        if not url:
            self.fail("VALET_TEST_DATABASE_URL is not set: run through tests/run_tests.sh")
        u = urllib.parse.urlparse(url)
        q = urllib.parse.parse_qs(u.query)
        host, port = q["host"][0], q.get("port", ["5432"])[0]
        self.dir = "/var/tmp/valet-esc-pg-" + TAG
        os.makedirs(self.dir, exist_ok=True)
        run("mount", "--bind", host, self.dir)
        self.addCleanup(lambda: (run("umount", "-l", self.dir, check=False),
                                 os.rmdir(self.dir)))
        q["host"] = [self.dir]
        self.sock = os.path.join(self.dir, ".s.PGSQL." + port)
        self.assertTrue(os.path.exists(self.sock))
        self.d = Daemon(tasks(), store="postgres", tmp_parent="/var/tmp")
        self.d.database_url = "%s://%s%s?%s" % (u.scheme, u.netloc, u.path,
                                                urllib.parse.urlencode(q, doseq=True))
        self.d.start()
        self.addCleanup(self.d.stop)

    def test_socket_dir_hidden(self):
        _, meta = probe(self.d, {"ls": [self.dir, "/var/tmp"], "unix": [self.sock]})
        self.assertEqual(meta["ls " + self.dir], [], meta)
        self.assertEqual(meta["unix " + self.sock], "ENOENT", meta)
        self.assertNotEqual(meta["ls /var/tmp"], "ENOENT", meta)


@unittest.skipUnless(ROOT, "needs root (mounts)")
class MountTest(unittest.TestCase):
    """The view is the host's mounts as they were at startup: nothing the
    host mounts later reaches a job (even from a shared mount), what the
    host unmounts leaves the view, no procfs, sysfs or devtmpfs but the
    job's own, and nosuid and nodev everywhere (dev only in /dev).

    The flags are read twice, from the job's /proc/self/mountinfo (every
    mount) and with statvfs() (what the kernel applies at a path): with
    no_new_privs a missing nosuid changes nothing a task could see, so
    only the flags themselves tell. Every kind of mount a job gets is
    there: the view's (/, /etc, /usr, ...), the minimal /dev and its
    nodes, /run, the job's own /proc and /tmp, and an exec task's program
    directory under the host's /tmp bound into it (esc_tmp)."""

    MEMORY = 64 << 20

    @classmethod
    def setUpClass(cls):
        cls.base = "/var/tmp/valet-esc-mnt-" + TAG
        cls.shared = os.path.join(cls.base, "shared")
        cls.proc2 = os.path.join(cls.base, "proc")
        cls.gone = os.path.join(cls.base, "gone")
        # A task whose program lives under the host's /tmp: bound, read-only,
        # into every job's /tmp (sbx_init.c), a mount of its own.
        cls.keep = "/tmp/valet-esc-keep-" + TAG
        cls.mounted = []
        for d in (cls.shared, cls.proc2, cls.gone, cls.keep):
            os.makedirs(d)
        os.chmod(cls.keep, 0o755)
        shutil.copy(PROBE, cls.keep)
        os.makedirs(os.path.join(cls.shared, "late"))
        os.chmod(os.path.join(cls.shared, "late"), 0o777)
        try:
            # A shared mount: what the host mounts below it propagates to
            # every namespace that is its peer or slave.
            run("mount", "--bind", cls.shared, cls.shared)
            cls.mounted.append(cls.shared)
            run("mount", "--make-shared", cls.shared)
            run("mount", "-t", "proc", "proc", cls.proc2)
            cls.mounted.append(cls.proc2)
            run("mount", "-t", "tmpfs", "-o", "size=1m", "valet-esc-gone", cls.gone)
            cls.mounted.append(cls.gone)
            conf = dict(tasks())
            conf["task.esc_tmp"] = {"command": "%s %s/probe.py" % (PYTHON, cls.keep)}
            if not ASAN:  # ASan: no memory limit (valetd.py)
                conf["sandbox"] = {"memory_limit": str(cls.MEMORY)}
            cls.d = Daemon(conf, tmp_parent="/var/tmp")
            cls.d.start()
        except BaseException:
            cls._unmount()
            raise

    @classmethod
    def _unmount(cls):
        for m in reversed(cls.mounted):
            run("umount", "-l", m, check=False)
        shutil.rmtree(cls.base, ignore_errors=True)
        shutil.rmtree(cls.keep, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls._unmount()

    def spawner(self):
        table = proc_table()
        for p in below(table, self.d.proc.pid):
            if table[p][3] == "valetd-spawner":
                return p
        self.fail("no spawner below valetd")

    def test_late_mount_never_reaches_a_job(self):
        late = os.path.join(self.shared, "late")
        run("mount", "-t", "tmpfs", "-o", "size=1m,mode=1777", "valet-esc-late", late)
        self.mounted.append(late)
        with open(os.path.join(late, "host-file"), "w") as f:
            f.write("x")
        _, meta = probe(self.d, {"ls": [late], "write": [late + "/job-file"],
                                 "mountinfo": True})
        self.assertEqual(meta["ls " + late], [], meta)
        self.assertEqual(meta["write %s/job-file" % late], "EROFS", meta)
        self.assertFalse(os.path.exists(os.path.join(late, "job-file")))
        self.assertNotIn(late, [m["point"] for m in meta["mountinfo"]])

    def test_no_kernel_fs_and_flags(self):
        _, meta = probe(self.d, {"ls": [self.proc2, "/sys", "/run", "/proc/1"],
                                 "mountinfo": True})
        self.assertEqual(meta["ls " + self.proc2], [], meta)
        self.assertEqual(meta["ls /sys"], [], meta)
        self.assertEqual(meta["ls /run"], [], meta)
        self.assertNotEqual(meta["ls /proc/1"], "ENOENT", meta)  # its own /proc works
        procs = [m for m in meta["mountinfo"] if m["fstype"] == "proc"]
        self.assertEqual([m["point"] for m in procs][-1:], ["/proc"], procs)
        for m in meta["mountinfo"]:
            if m["fstype"] in ("sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2",
                               "debugfs", "mqueue"):
                where = m["point"]
                self.assertTrue(where.startswith("/dev/") or where.startswith("/tmp/"),
                                m)

    def assertViewFlags(self, point, flags, how):
        """What the README promises of a mount (or path) at point: nosuid
        everywhere, nodev but in the minimal /dev, read-only but the job's
        own /proc and /tmp (a program directory kept under /tmp is
        read-only again)."""
        in_dev = point == "/dev" or point.startswith("/dev/")
        self.assertIn("nosuid", flags, (how, point, flags))
        if not in_dev:
            self.assertIn("nodev", flags, (how, point, flags))
        if point not in ("/proc", "/tmp"):
            self.assertIn("ro", flags, (how, point, flags))

    def test_every_mount_nosuid_nodev_readonly(self):
        paths = ["/", "/etc", "/usr", "/usr/bin", "/var/tmp", "/run", "/proc", "/tmp",
                 "/dev", "/dev/null", "/dev/urandom", self.keep, "/etc/resolv.conf"]
        _, meta = probe(self.d, {"mountinfo": True, "statvfs": paths}, task="esc_tmp")
        points = [m["point"] for m in meta["mountinfo"]]
        # Every kind of mount the README names is there to be checked.
        for want in ("/", "/proc", "/tmp", "/dev", "/dev/null", "/run", self.keep):
            self.assertIn(want, points, meta["mountinfo"])
        for m in meta["mountinfo"]:
            self.assertViewFlags(m["point"], m["opts"], "mountinfo")
        for path in paths:
            st = meta["statvfs " + path]
            self.assertIsInstance(st, dict, (path, st))
            self.assertViewFlags(path, st["flags"], "statvfs")
        if not ASAN:
            # The job's /tmp is a tmpfs of the memory limit.
            self.assertEqual(meta["statvfs /tmp"]["bytes"], self.MEMORY, meta["statvfs /tmp"])

    def test_minimal_dev(self):
        """/dev holds null, zero, full, random, urandom and tty (the host's
        nodes, bound), the fd links, and shm, a link to /tmp: nothing else of
        the host's /dev. Writing /dev/shm writes the job's own /tmp."""
        _, meta = probe(self.d, {"ls": ["/dev"], "mountinfo": True,
                                 "readlink": ["/dev/shm", "/dev/fd", "/dev/stdin",
                                              "/dev/stdout", "/dev/stderr"],
                                 "write": ["/dev/shm/valet-esc-" + TAG],
                                 "read": ["/dev/null"]})
        nodes = [n for n in ("null", "zero", "full", "random", "urandom", "tty")
                 if os.path.exists("/dev/" + n)]
        self.assertEqual(meta["ls /dev"],
                         sorted(nodes + ["fd", "stdin", "stdout", "stderr", "shm"]), meta)
        self.assertEqual(meta["readlink /dev/shm"], "/tmp", meta)
        self.assertEqual(meta["readlink /dev/fd"], "/proc/self/fd", meta)
        for i, name in enumerate(("stdin", "stdout", "stderr")):
            self.assertEqual(meta["readlink /dev/" + name], "/proc/self/fd/%d" % i, meta)
        self.assertEqual(meta["write /dev/shm/valet-esc-" + TAG], "ok", meta)
        self.assertFalse(os.path.exists("/dev/shm/valet-esc-" + TAG))
        self.assertEqual(meta["read /dev/null"], "", meta)
        dev = [m for m in meta["mountinfo"] if m["point"] == "/dev"]
        self.assertEqual([m["fstype"] for m in dev], ["tmpfs"], dev)
        for n in nodes:  # the nodes work (nodev is off in /dev)
            self.assertIn("/dev/" + n, [m["point"] for m in meta["mountinfo"]])

    def test_host_unmount_is_followed(self):
        """A file system the host unmounts leaves the jobs' view too (it
        does not stay busy while valetd runs)."""
        spawner = self.spawner()

        def in_view():
            with open("/proc/%d/mountinfo" % spawner) as f:
                return any(line.split()[4] == self.gone for line in f)

        self.assertTrue(in_view())
        run("umount", self.gone)
        self.mounted.remove(self.gone)
        deadline = time.monotonic() + 3
        while in_view() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(in_view())


@unittest.skipUnless(ROOT, "needs root (mounts)")
class RunResolvConfTest(unittest.TestCase):
    """/run in a job is an empty tmpfs, but on a host whose /etc/resolv.conf
    is a link into /run (systemd-resolved's stub-resolv.conf) that one file
    is bound back, so that names still resolve. This host's resolv.conf is
    a plain file: valetd runs here in a mount namespace of its own where an
    overlay on /etc makes it such a link (to /run/valet-esc-TAG/resolv.conf)."""

    def setUp(self):
        self.run_dir = "/run/valet-esc-" + TAG
        self.ov = tempfile.mkdtemp(prefix="valet-esc-ov-", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, self.ov, True)
        os.makedirs(self.run_dir)
        self.addCleanup(shutil.rmtree, self.run_dir, True)
        with open(os.path.join(self.run_dir, "resolv.conf"), "w") as f:
            f.write("nameserver 192.0.2.53\n")
        os.chmod(self.run_dir, 0o755)
        with open(os.path.join(self.run_dir, "other"), "w") as f:
            f.write("not for jobs\n")
        upper, work = os.path.join(self.ov, "upper"), os.path.join(self.ov, "work")
        os.makedirs(upper)
        os.makedirs(work)
        os.symlink(os.path.join(self.run_dir, "resolv.conf"), os.path.join(upper, "resolv.conf"))
        wrapper = ns_wrapper(self.ov, "mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,"
                                      "workdir=%s /etc" % (upper, work))
        self.d = Daemon(tasks(), binary=wrapper, tmp_parent="/var/tmp")
        self.d.start()
        self.addCleanup(self.d.stop)

    def test_resolv_conf_in_run(self):
        with open("/proc/%d/root/etc/resolv.conf" % self.d.proc.pid) as f:
            self.assertEqual(f.read(), "nameserver 192.0.2.53\n")  # the daemon's view
        _, meta = probe(self.d, {"read": ["/etc/resolv.conf",
                                          os.path.join(self.run_dir, "other")],
                                 "ls": ["/run", self.run_dir]})
        self.assertEqual(meta["read /etc/resolv.conf"], "nameserver 192.0.2.53\n", meta)
        self.assertEqual(meta["ls /run"], [os.path.basename(self.run_dir)], meta)
        self.assertEqual(meta["ls " + self.run_dir], ["resolv.conf"], meta)
        self.assertEqual(meta["read %s/other" % self.run_dir], "ENOENT", meta)


@unittest.skipUnless(ROOT, "needs root (users)")
class StrangersTest(unittest.TestCase):
    """Jobs are strangers: by default each worker slot has a uid of its own,
    so one job's fork bomb (RLIMIT_NPROC counts per user, host-wide) does
    not make a job in another slot fail fork()."""

    def test_fork_bomb_next_door(self):
        d = Daemon(dict(tasks(), queue={"workers": "2"}), tmp_parent="/var/tmp")
        d.start()
        try:
            bomb = d.submit("esc", {"forkbomb": 4}, timeout=30)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until the bomb holds its processes
                j = d.get_json("/api/jobs/" + bomb["id"])
                kids = [p for p, v in proc_table().items() if v[3] == "python3" and
                        v[2] == (j.get("isolation") or {}).get("uid")]
                if len(kids) > 32:
                    break
                time.sleep(0.05)
            else:
                self.fail("the fork bomb never got going")
            victim, meta = probe(d, {"fork": 8})
            done = d.wait_all([bomb["id"]], timeout=30, check_status=False)[bomb["id"]]
            bomb_meta = d.result(bomb["id"]).get("metadata") or {}
        finally:
            d.stop()
        self.assertEqual(meta["fork"], "ok", meta)
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertEqual(bomb_meta["stopped_by"], "EAGAIN", bomb_meta)
        self.assertNotEqual(done["isolation"]["uid"], victim["isolation"]["uid"])


@unittest.skipUnless(ROOT, "needs root (namespaces, cgroups, users)")
class LeftInSlotTest(unittest.TestCase):
    """Nothing of a job lives on in its worker slot without a process
    (findings 1 and 2 of the sandbox attack; sandbox/sbx_leftover.c,
    spawner_left.c): sockets a job sent to itself with SCM_RIGHTS and never
    received - with memfds, kept only by the kernel's AF_UNIX garbage
    collector - and TCP connections it closed first (TIME_WAIT, exec+net).
    One worker: consecutive jobs share a slot (the next job is run until it
    lands in the first one's, by its uid), its network namespace and its
    memory cgroup. The next job must not see the sockets (nor connect to the
    abstract name), and must get the memory of its limit."""

    ROUNDS = 3
    LIMITS = {"memory": 64 << 20}

    @classmethod
    def setUpClass(cls):
        cls.net = shutil.which("slirp4netns") is not None
        cls.d = Daemon(dict(tasks(net=cls.net), queue={"workers": "1"}),
                       tmp_parent="/var/tmp")
        cls.d.start()

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def next_in_slot(self, first, task, params, limits=None):
        """The next jobs of task (at most 3) until one runs in first's slot;
        each must complete. Their results, the last one's slot's."""
        seen = []
        for _ in range(3):
            job = self.d.submit(task, params, timeout=20,
                                **({"limits": limits} if limits else {}))
            done = self.d.wait_all([job["id"]], timeout=40, check_status=False)[job["id"]]
            self.assertEqual(done["status"], "COMPLETED", (done, seen))
            seen.append(self.d.result(job["id"]).get("metadata") or {})
            if done["isolation"]["uid"] == first["isolation"]["uid"]:
                return seen
        self.fail("the slot never ran again: %s" % seen)

    def test_sockets_and_memory_in_flight_are_gone_for_the_next_job(self):
        """40 MiB of memfds and the sockets carrying them, in flight in a
        cycle when the job ends: the next job of the slot lists no AF_UNIX
        socket, cannot connect to the name, and touches 30 MiB of its 64 MiB
        (before: it failed "out of memory", and connected). Several rounds:
        the collector sometimes runs by itself in time."""
        for r in range(self.ROUNDS):
            name = "valet-left-%s-%d" % (TAG, r)
            first, meta = probe(self.d, {"scm_cycle": name, "mb": 40}, limits=self.LIMITS)
            self.assertEqual(meta["scm_cycle"]["memfds"], 3, meta)
            self.assertIn("@" + name, meta["scm_cycle"]["listed"], meta)
            for seen in self.next_in_slot(first, "esc", {"net": ["unix"], "abstract": [name],
                                                         "alloc": 30}, limits=self.LIMITS):
                self.assertEqual(seen["net"]["unix"], [], (r, seen))
                self.assertEqual(seen["@" + name], "ECONNREFUSED", (r, seen))
                self.assertEqual(seen["alloc"], "ok", (r, seen))

    def test_no_time_wait_for_the_next_job(self):
        """exec+net: eight connections the job closed first, from ports it
        chose; the next exec+net job of the slot lists no TCP socket (before:
        the eight TIME_WAIT sockets, for a minute, with their ports)."""
        if not self.net:
            self.skipTest("slirp4netns is not installed")
        for r in range(self.ROUNDS):
            first, meta = probe(self.d, {"time_wait": 8}, task="esc_net")
            self.assertEqual(meta["time_wait"]["closed"], 8, meta)
            self.assertGreaterEqual(len(meta["time_wait"]["listed"]), 1, meta)  # its listener
            for seen in self.next_in_slot(first, "esc_net",
                                          {"net": ["tcp", "tcp6", "udp", "udp6", "unix"]}):
                self.assertEqual(seen["net"], {"tcp": [], "tcp6": [], "udp": [], "udp6": [],
                                               "unix": []}, (r, seen))


    def test_closed_connections_skip_time_wait(self):
        """exec+net: the slot's namespace keeps no TIME_WAIT socket at all
        (tcp_max_tw_buckets 0 there): right after closing its eight
        connections the job itself lists only its listener, so the common
        job leaves nothing and keeps its slot's namespace."""
        if not self.net:
            self.skipTest("slirp4netns is not installed")
        _, meta = probe(self.d, {"time_wait": 8}, task="esc_net")
        self.assertEqual(len(meta["time_wait"]["listed"]), 1, meta)


@unittest.skipUnless(ROOT, "needs root (users, capabilities)")
class PrivilegeTest(unittest.TestCase):
    """A job holds no capability, not even in its bounding set."""

    def test_bounding_set_empty(self):
        d = Daemon(tasks(), tmp_parent="/var/tmp")
        d.start()
        try:
            _, meta = probe(d, {"status": True})
        finally:
            d.stop()
        st = meta["status"]
        for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            self.assertEqual(int(st[k], 16), 0, (k, st))
        self.assertEqual(st["NoNewPrivs"].strip(), "1", st)

    def test_init_out_of_reach(self):
        """The init that watches the task (pid 1, valetd-init) keeps uid 0
        without capabilities: the task, under its slot's uid, can neither
        signal it (SIGKILL, SIGSTOP, SIGTERM: EPERM) nor read its environment
        or memory, and the init is still there to report the job, which
        COMPLETED (probe() requires it)."""
        d = Daemon(tasks(), tmp_parent="/var/tmp")
        d.start()
        try:
            job, meta = probe(d, {"kill": [[1, signal.SIGKILL], [1, signal.SIGSTOP],
                                           [1, signal.SIGTERM]],
                                  "read": ["/proc/1/status", "/proc/1/environ", "/proc/1/mem"]})
        finally:
            d.stop()
        for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM):
            self.assertEqual(meta["kill 1 %d" % sig], "EPERM", meta)
        self.assertEqual(meta["read /proc/1/environ"], "EACCES", meta)
        self.assertEqual(meta["read /proc/1/mem"], "EACCES", meta)
        init = dict(line.split(":\t", 1) for line in meta["read /proc/1/status"].splitlines()
                    if ":\t" in line)
        self.assertEqual(init["Name"], "valetd-init", init)
        self.assertEqual(init["Uid"].split(), ["0"] * 4, init)
        self.assertNotEqual(job["isolation"]["uid"], 0, job)
        for k in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            self.assertEqual(int(init[k], 16), 0, (k, init))
        self.assertEqual(init["NoNewPrivs"].strip(), "1", init)


if __name__ == "__main__":
    unittest.main()
