"""Hosts that are not the development VM: a chroot, a minimal system, a
spawner that cannot prepare the jobs' view.

Theory of operation: valetd must work, or say in one sentence why not,
wherever it is started - and `valetd --check` must say what valetd will
really do there.

ChrootTest runs `make run`'s own configuration (packaging/valetd-dev.conf)
in a chroot whose "/" is a plain directory, not a mount point, the way
build chroots and some CI runners are: the test makes one of the host's
root (a directory on a small shared tmpfs, holding bind mounts of the
host's top-level directories, in a mount namespace of the test's own), in
which python3 is not executable, as on a minimal Debian (`debootstrap
--variant=minbase`). There valetd --check and the daemon must agree, the
demo's C task and exec task must run under full isolation (as root), and
none of the spawner's mounts may reach the namespace that holds the chroot
(which stands for the host's: on systemd hosts the mount holding a chroot
directory is shared with it). When the suite itself runs in such a chroot,
the daemon is simply started where it is.

ReachTest: a program in a directory the task users cannot search (as root's
clones in /root are) is named at startup, by valetd and --check.

SandboxFailureTest starts valetd with a spawner that cannot prepare the
jobs' view (a stand-in that answers READY with the failure an old kernel
would give in a chroot, and otherwise execs the real spawner): valetd and
--check both refuse with the sentence that names the cause, or, when
degraded isolation is allowed, both go on without namespaces and say so.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

import valetd
from valetd import BUILD, REPO, VALETD

ROOT_USER = os.geteuid() == 0
DEV_CONF = os.path.join(REPO, "packaging", "valetd-dev.conf")
TOOLS = ("unshare", "mount", "chroot")
FULL_NS = ["pid", "mount", "ipc", "uts", "net"]

# Run as: SCRIPT BASE STATE KEEP COMMAND...: in a mount namespace of its
# own (unshare), a tmpfs on BASE (shared: a mount the spawner made on it
# would show here) holds ROOT, a plain directory with the host's top-level
# directories bound into it (a fresh /tmp, with the directories of KEEP, a
# colon-separated list, that are in the host's), python3 made not
# executable; the mount table as the chroot sees it goes to
# STATE/mounts.before, then COMMAND runs in the chroot (exec: it keeps the
# pid).
CHROOT_SH = textwrap.dedent("""\
    set -eu
    base=$1 state=$2 keep=$3
    shift 3
    root=$base/root
    mount -t tmpfs -o size=1m,mode=0755 valet-chroot "$base"
    mount --make-shared "$base"
    mkdir "$root"
    for entry in /*; do
        name=${entry#/}
        case $name in tmp|lost+found) continue ;; esac
        if [ -L "$entry" ]; then
            ln -s "$(readlink "$entry")" "$root/$name"
        elif [ -d "$entry" ]; then
            mkdir "$root/$name"
            mount --rbind "$entry" "$root/$name"
        fi
    done
    mkdir -m 1777 "$root/tmp"
    IFS=:
    for dir in $keep; do
        case $dir in /tmp/*) mkdir -p "$root$dir"; mount --rbind "$dir" "$root$dir" ;; esac
    done
    unset IFS
    : >"$base/not-here"
    for p in "$root"/usr/bin/python3*; do
        if [ -f "$p" ] && [ ! -L "$p" ]; then mount --bind "$base/not-here" "$p"; fi
    done
    chroot "$root" cat /proc/self/mountinfo >"$state/mounts.before"
    exec chroot "$root" "$@"
""")


def root_is_mount_point():
    """Whether "/" is a mount point: a chroot's is not listed in mountinfo."""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == "/" for line in f)


def mount_points(path):
    with open(path) as f:
        return sorted(line.split()[4] for line in f)


def dev_config():
    """make run's configuration, with this build's paths (make asan's too)."""
    with open(DEV_CONF) as f:
        text = f.read()
    return text.replace("../build/", BUILD.rstrip("/") + "/")


def check_output(argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=120)
    return r.returncode, r.stdout


class Chroot:
    """How to run a command in the test's chroot: wrap(state_dir) gives the
    argv prefix (empty when the suite already runs in a chroot)."""

    def __init__(self):
        self.made = root_is_mount_point()
        self.script = None
        self.bases = []
        if self.made:
            fd, self.script = tempfile.mkstemp(prefix="valet-chroot-", suffix=".sh")
            with os.fdopen(fd, "w") as f:
                f.write(CHROOT_SH)

    def wrap(self, state):
        if not self.made:
            return []
        base = tempfile.mkdtemp(prefix="valet-chroot-", dir="/tmp")
        self.bases.append(base)
        # The namespace and every mount in it go with its last process.
        return ["unshare", "--mount", "--propagation", "private", "sh", self.script, base,
                state, "%s:%s" % (REPO, BUILD)]

    def cleanup(self):
        for base in self.bases:
            shutil.rmtree(base, ignore_errors=True)
        if self.script:
            os.unlink(self.script)


@unittest.skipUnless(ROOT_USER, "needs root (a chroot, mounts, full isolation)")
@unittest.skipUnless(all(shutil.which(t) for t in TOOLS), "needs unshare, mount and chroot")
class ChrootTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.chroot = Chroot()
        cls.d = valetd.Daemon(config_text=dev_config(), tmp_parent=BUILD)
        # Before valetd: the mount table of the namespace that holds the
        # chroot (ours, when the suite runs in one).
        cls.before = os.path.join(cls.d.tmp, "mounts.before")
        if not cls.chroot.made:
            shutil.copy("/proc/self/mountinfo", cls.before)
        cls.d.wrapper = cls.chroot.wrap(cls.d.tmp)
        try:
            cls.d.start()
        except BaseException:
            cls.d.kill()
            cls.chroot.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.stop()
        finally:
            cls.chroot.cleanup()

    def in_chroot(self, path):
        """path as valetd sees it (through its root, in its namespace)."""
        return "/proc/%d/root%s" % (self.d.proc.pid, path)

    def run_job(self, task, params=None, **kw):
        job = self.d.submit(task, params, **kw)
        return self.d.wait_all([job["id"]], timeout=30, check_status=False)[job["id"]]

    def test_root_is_no_mount_point_and_python3_is_missing(self):
        """The conditions of the test hold: else it would prove nothing."""
        self.assertNotIn("/", mount_points("/proc/%d/mountinfo" % self.d.proc.pid))
        if self.chroot.made:
            for name in os.listdir(self.in_chroot("/usr/bin")):
                if re.fullmatch(r"python3(\.\d+)?", name):
                    self.assertFalse(os.access(self.in_chroot("/usr/bin/" + name), os.X_OK),
                                     name)

    def test_check_says_what_the_daemon_does(self):
        state = tempfile.mkdtemp(dir=self.d.tmp)
        rc, out = check_output(self.chroot.wrap(state) +
                               [VALETD, "--check", "-c", self.d.conf_path])
        self.assertEqual(rc, 0, out)
        self.assertIn("/: not a mount point (a chroot)", out)
        self.assertIn("jobs' view and network prepared: yes", out)
        self.assertIn("namespaces: pid, mount, ipc and uts namespaces not the daemon's", out)
        self.assertNotIn("DEGRADED", out)
        # ... and the daemon did just that.
        job = self.run_job("dummytask", {"n": 1})
        self.assertEqual(job["status"], "COMPLETED", job)
        self.assertEqual(job["isolation"]["namespaces"], FULL_NS, job)
        self.assertIs(job["isolation"]["degraded"], False, job)
        self.assertNotIn("degraded isolation", self.d.log_text())

    def test_demo_c_task(self):
        job = self.run_job("sha256", {"data": "abc"})
        self.assertEqual(job["status"], "COMPLETED", job)
        self.assertEqual(self.d.result(job["id"])["metadata"],
                         {"sha256": hashlib.sha256(b"abc").hexdigest()})
        self.assertEqual(job["isolation"]["namespaces"], FULL_NS, job)

    def test_demo_exec_task(self):
        job = self.run_job("wordcount", {"text": "a b c\nd"})
        self.assertEqual(job["status"], "COMPLETED", job)
        self.assertEqual(self.d.result(job["id"])["metadata"], {"words": 4, "lines": 2})
        self.assertEqual(job["isolation"]["namespaces"], FULL_NS, job)
        self.assertEqual(job["isolation"]["profile"], "exec", job)
        job = self.run_job("wordcount", {"text": 5})
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual(job["failure_reason"], 'invalid task_params: "text" must be a string')

    def test_demo_pipeline(self):
        p = self.d.submit_pipeline([
            {"name": "first", "task_name": "dummytask", "task_params": {"text": "x y z"}},
            {"name": "count", "task_name": "wordcount", "use_previous_results": True}])
        p = self.d.wait_pipeline(p["id"], timeout=30)
        self.assertEqual(p["status"], "COMPLETED", p)
        jobs = self.d.get_json("/api/pipelines/%s/jobs" % p["id"])["jobs"]
        count = jobs[1]["id"]
        self.assertEqual(self.d.result(count)["metadata"], {"words": 3, "lines": 1})

    def test_no_mount_reaches_the_namespace_holding_the_chroot(self):
        """The spawner gives itself a root that is a mount point without
        attaching anything to the mount that holds the chroot directory:
        that mount is shared with the host's namespace on most hosts."""
        self.assertEqual(self.run_job("dummytask")["status"], "COMPLETED")
        self.assertEqual(mount_points("/proc/%d/mountinfo" % self.d.proc.pid),
                         mount_points(self.before))


class DemoWordcountTest(unittest.TestCase):
    """The demo exec task is a program of its own (no interpreter): what it
    prints for what valetd writes to its stdin."""

    PROGRAM = os.path.join(BUILD, "tasks", "wordcount")

    def count(self, request):
        data = request if isinstance(request, bytes) else json.dumps(request).encode()
        r = subprocess.run([self.PROGRAM], input=data, stdout=subprocess.PIPE, timeout=10)
        self.assertEqual(r.returncode, 0)
        return json.loads(r.stdout)

    def test_counts_as_python_would(self):
        for text in ("a b c\nd", "", "one", "a\nb\n", "\n\n", "a\r\nb\rc", "  x\t y  ",
                     "caf\u00e9 na\u00efve", "a\u00a0b\u2003c", "l1\u2028l2\x1cl3",
                     "nul\u0000inside"):
            self.assertEqual(self.count({"params": {"text": text}, "previous": None}),
                             {"words": len(text.split()), "lines": len(text.splitlines())},
                             repr(text))

    def test_previous_and_errors(self):
        self.assertEqual(self.count({"params": None, "previous": {"text": "x y"}}),
                         {"words": 2, "lines": 1})
        self.assertEqual(self.count({"params": {}, "previous": None}),
                         {"error": 'invalid task_params: "text" required'})
        self.assertEqual(self.count({"params": [], "previous": None}),
                         {"error": "params must be an object"})
        self.assertEqual(self.count([1]), {"error": "input must be a JSON object"})
        self.assertTrue(self.count(b"{")["error"].startswith("invalid input: "))


@unittest.skipUnless(ROOT_USER, "needs root (task users of their own)")
class ReachTest(unittest.TestCase):
    """A program the task users cannot reach (in a directory only root may
    search, as /root is): valetd and --check say so at startup, naming the
    directory, instead of every job failing without a word why."""

    def test_unreachable_program_is_named(self):
        hidden = tempfile.mkdtemp(prefix="valet-reach-", dir=BUILD)  # mode 0700
        try:
            program = os.path.join(hidden, "wordcount")
            shutil.copy(os.path.join(BUILD, "tasks", "wordcount"), program)
            d = valetd.Daemon({"task.wc": {"command": program}}, tmp_parent=BUILD)
            d.write_config()
            rc, out = check_output([VALETD, "--check", "-c", d.conf_path])
            self.assertEqual(rc, 0, out)
            why = r"task.wc: the task users \(uid \d+\) cannot run %s: %s: Permission denied" % (
                re.escape(program), re.escape(hidden))
            self.assertRegex(out, "WARNING: " + why)
            d.start()
            try:
                self.assertRegex(d.log_text(), why)
                job = d.submit("wc", {"text": "a b"})
                job = d.wait_all([job["id"]], timeout=30, check_status=False)[job["id"]]
                self.assertEqual(job["status"], "FAILED", job)
                self.assertIn("Permission denied", job["failure_reason"])
                os.chmod(hidden, 0o755)  # what the warning asks for
                job = d.submit("wc", {"text": "a b"})
                job = d.wait_all([job["id"]], timeout=30, check_status=False)[job["id"]]
                self.assertEqual(job["status"], "COMPLETED", job)
            finally:
                d.stop()
        finally:
            shutil.rmtree(hidden, ignore_errors=True)


def fake_spawner(path, real):
    """A spawner program that cannot prepare the jobs' view (as in a chroot
    on a kernel without open_tree()), and otherwise is the real one."""
    with open(path, "w") as f:
        f.write(textwrap.dedent("""\
            #!%s
            import json, os, socket, struct, sys
            if sys.argv[1] == "--valet-spawner":
                sock, doc = int(sys.argv[2]), int(sys.argv[3])
                if json.loads(os.pread(doc, 1 << 24, 0)).get("namespaces"):
                    # struct spawn_evt: READY, spawn_err ENOSYS, SPAWN_EVT_F_SANDBOX.
                    evt = struct.pack("=IIQiiiIqqqqq", 3, 0, 0, 0, 0, 38, 4, 0, 0, 0, 0, 0)
                    why = ("cannot prepare the job sandbox: / is not a mount point (a "
                           "chroot) and a root of the jobs' own could not be made: "
                           "chroot: copy /: Function not implemented")
                    socket.socket(fileno=sock).sendmsg([evt, why.encode()])
                    sys.exit(1)
            os.execv(%r, [%r] + sys.argv[1:])
            """ % (sys.executable, real, real)))
    os.chmod(path, 0o755)


@unittest.skipUnless(ROOT_USER, "needs root (namespaces, which the spawner then fails at)")
class SandboxFailureTest(unittest.TestCase):
    CAUSE = ("cannot prepare the job sandbox: / is not a mount point (a chroot) and a root "
             "of the jobs' own could not be made: chroot: copy /: Function not implemented")

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="valet-sbxfail-", dir=BUILD)
        self.spawner = os.path.join(self.tmp, "spawner")
        fake_spawner(self.spawner, os.path.join(BUILD, "valet-spawner"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def daemon(self, degraded):
        text = dev_config().replace("allow_degraded_isolation = true",
                                    "allow_degraded_isolation = %s" % str(degraded).lower())
        return valetd.Daemon(config_text=text, tmp_parent=self.tmp,
                             args=["--spawner", self.spawner])

    def check(self, d):
        d.write_config()
        return check_output([VALETD, "--check", "-c", d.conf_path, "--spawner", self.spawner])

    def test_refused_with_the_cause(self):
        d = self.daemon(False)
        rc, out = self.check(d)
        self.assertEqual(rc, 1, out)
        self.assertIn("jobs' view and network prepared: no: " + self.CAUSE, out)
        refusal = ("isolation configured in [sandbox] is not available here: %s. Refusing to "
                   "start; fix the host, or set allow_degraded_isolation = true" % self.CAUSE)
        self.assertIn("valetd would not start: " + refusal, out)
        with self.assertRaises(AssertionError):
            d.start()
        self.assertEqual(d.proc.returncode, 1, d.log_text())
        self.assertIn("valetd: " + refusal, d.log_text())
        d.cleanup()

    def test_degraded_with_the_cause(self):
        d = self.daemon(True)
        rc, out = self.check(d)
        self.assertEqual(rc, 0, out)
        self.assertIn("jobs' view and network prepared: no: " + self.CAUSE, out)
        self.assertIn("namespaces: none", out)
        self.assertRegex(out, r"DEGRADED: .*" + re.escape(self.CAUSE))
        d.start()
        try:
            for task, params in (("sha256", {"data": "abc"}),
                                 ("wordcount", {"text": "one two"})):
                job = d.submit(task, params)
                job = d.wait_all([job["id"]], timeout=30, check_status=False)[job["id"]]
                self.assertEqual(job["status"], "COMPLETED", job)
                self.assertEqual(job["isolation"]["namespaces"], [], job)
                self.assertIs(job["isolation"]["degraded"], True, job)
            self.assertIn(self.CAUSE, d.log_text())
        finally:
            d.stop()


if __name__ == "__main__":
    unittest.main()
