"""A worker slot's forker (sandbox/spawner_forker.c), from outside.

A warm C-task child is cloned by its slot's forker, a process already in the
sandbox, and inherits its seccomp program instead of loading one. That
program allows clone() to whoever knows the forker's secret. These tests,
as root, look at the real processes and check:
  - warm children come from the forker, in both isolation modes: the
    spawner's children (CLONE_PARENT) in the forker's process group, under
    seccomp with no_new_privs and no capability, and - with namespaces - in
    the slot's PID namespace while the forker is not;
  - the secret is nowhere in a warm child, waiting for its job: not in its
    memory (read through /proc/PID/mem) nor its registers (ptrace), while
    the same search finds it in the forker; the secret itself is read off
    the child's seccomp program (PTRACE_SECCOMP_GET_FILTER: the two words
    the clone rule compares the tls argument with);
  - a task that stops or kills its forker (seccomp only: the same uid, and
    no PID namespace between them) costs the next jobs at most a short wait:
    the spawner gives up on it, the jobs run, a forker serves again later;
    with namespaces the task cannot even name it.
"""

import ctypes
import os
import signal
import struct
import time
import unittest

from valetd import ASAN, Daemon, below, memory_holds, proc_table, spawner_of
from test_isolation import status_of, wait_until

PTRACE_GETREGS = 12
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
# struct seccomp_data: args[4] at 16 + 4 * 8; little-endian halves.
ARG4_LO, ARG4_HI = 48, 52
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


def pgid_of(pid):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    return int(stat[stat.rfind(")") + 2:].split()[2])


def waiting_in_read(pid):
    try:
        with open("/proc/%d/wchan" % pid) as f:
            return f.read().strip() in ("pipe_read", "anon_pipe_read")
    except OSError:
        return False


class Traced:
    """ptrace-stopped for a look (PTRACE_SEIZE, PTRACE_INTERRUPT)."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        if libc.ptrace(PTRACE_SEIZE, self.pid, None, None) < 0:
            raise OSError(ctypes.get_errno(), "PTRACE_SEIZE %d" % self.pid)
        libc.ptrace(PTRACE_INTERRUPT, self.pid, None, None)
        os.waitpid(self.pid, 0x40000000)  # __WALL
        return self

    def __exit__(self, *exc):
        libc.ptrace(PTRACE_DETACH, self.pid, None, None)

    def regs(self):
        buf = ctypes.create_string_buffer(27 * 8)  # struct user_regs_struct
        if libc.ptrace(PTRACE_GETREGS, self.pid, None, buf) < 0:
            raise OSError(ctypes.get_errno(), "PTRACE_GETREGS")
        return struct.unpack("<27Q", buf.raw)

    def filter(self):
        """The process's newest seccomp program: [(code, jt, jf, k)]."""
        n = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, self.pid, None, None)
        if n < 0:
            raise OSError(ctypes.get_errno(), "PTRACE_SECCOMP_GET_FILTER")
        buf = ctypes.create_string_buffer(8 * n)
        libc.ptrace(PTRACE_SECCOMP_GET_FILTER, self.pid, None, buf)
        return [struct.unpack_from("<HBBI", buf.raw, 8 * i) for i in range(n)]


def secret_of(program):
    """The 64 bits the clone rule compares clone's tls argument with: the
    only comparisons on argument 4 in the forker's program."""
    halves = {}
    for (code, _, _, k), nxt in zip(program, program[1:]):
        if code == BPF_LD_W_ABS and k in (ARG4_LO, ARG4_HI) and nxt[0] == BPF_JEQ_K:
            if k in halves:
                raise AssertionError("two comparisons of tls' %s half" % k)
            halves[k] = nxt[3]
    if set(halves) != {ARG4_LO, ARG4_HI}:
        raise AssertionError("no clone rule with a tls secret in the program")
    return (halves[ARG4_HI] << 32) | halves[ARG4_LO]


class ForkerChecks:
    """What both isolation modes must show (a mixin: run by the classes
    below)."""

    sandbox = {}

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("SKIP(host): needs root (another process's memory, ptrace)")
        self.d = Daemon({"sandbox": dict(self.sandbox), "queue": {"workers": "2"}})
        self.d.start()
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self.d.stop)
        self.spawner = spawner_of(self.d)
        # The first jobs make the forkers and their first warm children.
        for _ in range(4):
            self.assertEqual(self.d.wait_for(self.d.submit("dummytask", {})["id"])["status"],
                             "COMPLETED")

    def forkers(self):
        return {p: v for p, v in proc_table().items()
                if v[0] == self.spawner and v[3] == "valetd-forker"}

    def warm(self):
        """{warm child: its forker}: the spawner's children waiting for
        input in a forker's process group."""
        forkers = self.forkers()
        out = {}
        for p, v in proc_table().items():
            if v[0] == self.spawner and v[3] == "valetd-job" and waiting_in_read(p):
                try:
                    if pgid_of(p) in forkers:
                        out[p] = pgid_of(p)
                except OSError:
                    continue
        return out

    def test_warm_children_come_from_the_forker(self):
        warm = wait_until(self.warm, 5)
        self.assertTrue(warm, "no warm child of a forker: %s" % proc_table())
        for child, forker in warm.items():
            st = status_of(child)
            self.assertEqual(st["Seccomp"], "2")
            self.assertEqual(st["NoNewPrivs"], "1")
            self.assertEqual(int(st["CapEff"], 16), 0)
            self.assertEqual(status_of(forker)["Uid"], st["Uid"])
            self.check_namespaces(child, forker)
        # Jobs keep coming from them: a job's pid is a forker's child.
        job = self.d.wait_for(self.d.submit("sleep", {"seconds": 0.3})["id"], "IN_PROGRESS")
        pid = job["outcome"]["pid"] if job.get("outcome") else None
        running = [p for p in below(proc_table(), self.spawner)
                   if proc_table().get(p, (0, "", 0, ""))[3] == "valetd-job"
                   and not waiting_in_read(p)]
        self.assertTrue(running or pid, "no running job child")
        for p in running:
            self.assertIn(pgid_of(p), self.forkers())

    def check_namespaces(self, child, forker):
        pass

    def test_no_secret_in_a_warm_child(self):
        warm = wait_until(self.warm, 5)
        self.assertTrue(warm, "no warm child of a forker")
        child, forker = next(iter(warm.items()))
        with Traced(child) as t:
            secret = secret_of(t.filter())
            regs = t.regs()
        self.assertNotIn(secret, regs, "a register of the warm child holds the secret")
        needles = {struct.pack("<Q", secret), struct.pack("<I", secret >> 32),
                   struct.pack("<I", secret & 0xFFFFFFFF)}
        # Every readable mapping; under AddressSanitizer not its shadow
        # and reserves (above 64 MiB), which hold nothing of the process's.
        skip = 64 << 20 if ASAN else None
        self.assertEqual(memory_holds(child, needles, False, skip), set(),
                         "the warm child's memory holds the secret")
        # The search finds it where it is: in the forker.
        self.assertIn(struct.pack("<Q", secret), memory_holds(forker, needles, False, skip))
        # And each forker has a secret of its own.
        others = [c for c, f in warm.items() if f != forker]
        if others:
            with Traced(others[0]) as t:
                self.assertNotEqual(secret_of(t.filter()), secret)


class SeccompOnlyForkerTest(ForkerChecks, unittest.TestCase):
    """Without namespaces: the forker is in reach of its slot's tasks."""

    sandbox = {"namespaces": "false", "cgroups": "false"}

    def hit_forker(self, sig):
        forker = next(iter(self.forkers()))
        uid = proc_table()[forker][2]
        # A task of the forker's slot (its uid) signals it.
        for _ in range(20):
            job = self.d.wait_for(self.d.submit("hostile_tgkill", {"pid": forker,
                                                                   "signal": sig})["id"])
            self.assertEqual(job["status"], "COMPLETED", job)
            if job["isolation"]["uid"] == uid:
                break
        self.assertEqual(self.d.result(job["id"])["metadata"]["rc"], 0, "the task could not signal it")
        return forker

    def jobs_run_on(self, n=6, within=5.0):
        t0 = time.monotonic()
        ids = [self.d.submit("dummytask", {})["id"] for _ in range(n)]
        for i in ids:
            self.assertEqual(self.d.wait_for(i, timeout=within)["status"], "COMPLETED")
        return time.monotonic() - t0

    def test_a_stopped_forker_costs_a_short_wait(self):
        forker = self.hit_forker(signal.SIGSTOP)
        took = self.jobs_run_on()
        self.assertLess(took, 3.0, "jobs waited on a stopped forker")
        # The spawner gave up on it: killed with its children, reaped.
        self.assertTrue(wait_until(lambda: forker not in proc_table(), 5),
                        "the stopped forker is still there")

    def test_its_children_die_with_the_spawner(self):
        # Without namespaces no init takes them along: a running job and
        # the forkers' waiting children each set a parent-death signal.
        job = self.d.submit("sleep", {"seconds": 30}, timeout=60)
        self.d.wait_for(job["id"], "IN_PROGRESS")
        uids = {v[2] for v in self.forkers().values()}
        mine = lambda: {p for p, v in proc_table().items()
                        if v[2] in uids and v[3] in ("valetd-job", "valetd-forker")}
        self.assertTrue(wait_until(lambda: len(mine()) >= 3, 5), proc_table())
        os.kill(self.spawner, signal.SIGKILL)
        self.assertTrue(wait_until(lambda: not mine(), 5),
                        "left after the spawner died: %s" % sorted(mine()))

    def test_a_killed_forker_is_made_again(self):
        forker = self.hit_forker(signal.SIGKILL)
        self.jobs_run_on()
        self.assertTrue(wait_until(lambda: forker not in proc_table(), 5))
        self.assertTrue(wait_until(lambda: self.forkers(), 5), "no forker any more")


class FullIsolationForkerTest(ForkerChecks, unittest.TestCase):
    """With namespaces: the forker is in the spawner's PID namespace, its
    children in the slot's."""

    sandbox = {"namespaces": "true", "cgroups": "true"}

    def check_namespaces(self, child, forker):
        self.assertNotEqual(os.readlink("/proc/%d/ns/pid" % child),
                            os.readlink("/proc/%d/ns/pid" % forker))
        self.assertEqual(os.readlink("/proc/%d/ns/pid" % child),
                         os.readlink("/proc/%d/ns/pid_for_children" % forker))
        for ns in ("mnt", "ipc", "uts", "net"):
            self.assertEqual(os.readlink("/proc/%d/ns/%s" % (child, ns)),
                             os.readlink("/proc/%d/ns/%s" % (forker, ns)))
        self.assertEqual(status_of(child)["NSpid"].split()[0], str(child))
        self.assertEqual(len(status_of(child)["NSpid"].split()), 2)

    def test_a_task_cannot_name_its_forker(self):
        forkers = self.forkers()
        for forker in forkers:
            job = self.d.wait_for(self.d.submit("hostile_tgkill", {"pid": forker,
                                                                   "signal": 19})["id"])
            res = self.d.result(job["id"])["metadata"]
            self.assertEqual((res["rc"], res["errno"]), (-1, 3), "tgkill reached %d" % forker)
        self.assertEqual(set(self.forkers()), set(forkers))
        for forker in forkers:
            self.assertNotEqual(proc_table()[forker][1], "T")


if __name__ == "__main__":
    unittest.main()
