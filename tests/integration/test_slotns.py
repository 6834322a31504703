"""A worker slot's namespaces, reused by its C-task jobs (full isolation).

A C task runs in its slot's PID, mount, IPC and UTS namespaces, made once
and entered by each of the slot's C-task jobs (sandbox/sbx_init.c). That is
safe only if no job can leave anything there for the next one. These tests
look at running jobs from outside (as root: a C task may open nothing) and
check:
  - the reuse is real, and the namespaces are still a job's own: the
    slot's jobs share them, they are neither valetd's nor the spawner's,
    pid 1 is a valetd-init of the spawner's, and while a job runs its PID
    namespace holds exactly that init and the task - nothing of an earlier
    job;
  - what a C task tries to leave (a process, a thread, a file in /tmp, a
    device node, a System V segment, a mount, a new host name) is refused
    by seccomp, and the next job of the slot finds nothing: an empty /tmp,
    no IPC object, host name "valet", no process;
  - namespaces that may be dirty are made anew: after a kill at the
    deadline, and when /tmp is not as it was built (a file the test plants
    there from outside, as a task that could write would);
  - /tmp is the size of each job's memory limit, changed in place;
  - a change of the view (a host unmount followed) drops the slots'
    namespaces at once: their copy would keep the host's mount busy.
One worker, so that consecutive jobs run in the same slots; each job's slot
is known by its uid (uid_base + slot).
"""

import os
import signal
import subprocess
import tempfile
import time
import unittest

from valetd import Daemon, proc_table, spawner_of
from test_isolation import (NAMESPACES, PROBE_TASK, ns_of, pidns_init_of, procs_of, status_of,
                            wait_until)

UID_BASE = 72000 + 64 * (os.getpid() % 1000)
JOB_NS = ("pid", "mnt", "ipc", "uts")


def pidns_members(pid):
    """The pids (in its namespace) of every process in pid's PID namespace."""
    pidns = os.readlink("/proc/%d/ns/pid" % pid)
    out = []
    for p in proc_table():
        try:
            if os.readlink("/proc/%d/ns/pid" % p) == pidns:
                out.append(int(status_of(p)["NSpid"].split()[-1]))
        except OSError:
            continue
    return sorted(out)


def in_ns(pid, flag, *cmd):
    return subprocess.run(["nsenter", "-t", str(pid), flag] + list(cmd),
                          stdout=subprocess.PIPE, text=True, timeout=10, check=True).stdout


class SlotTestCase(unittest.TestCase):
    """A daemon with one worker, and a look at its running C-task jobs."""

    tasks = {}  # exec tasks: section name -> settings

    def setUp(self):
        self.before_start()
        self.d = Daemon(dict({"sandbox": {"uid_base": str(UID_BASE), "namespaces": "true",
                                          "cgroups": "true"},
                              "queue": {"workers": "1"}}, **self.tasks))
        self.d.start()
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self.d.stop)
        self.spawner = spawner_of(self.d)

    def before_start(self):
        pass

    def look(self, task, params, timeout=30, plant=None, **kw):
        """Run one C-task job and look at it while it runs: (the finished
        job, what was seen). plant: a file name to create in the job's
        /tmp from outside."""
        job = self.d.submit(task, params, timeout=timeout, **kw)
        uid = self.d.wait_for(job["id"], ("IN_PROGRESS",) + ("COMPLETED", "FAILED"),
                              timeout=20)["isolation"]["uid"]
        pids = wait_until(lambda: procs_of(uid, "valetd-job"), 10)
        self.assertEqual(len(pids), 1, pids)
        pid = pids[0]
        # Held open, so that no later namespace can get the same inode number.
        for name in JOB_NS:
            fd = os.open("/proc/%d/ns/%s" % (pid, name), os.O_RDONLY)
            self.addCleanup(os.close, fd)
        seen = {"uid": uid, "ns": ns_of(pid), "init": pidns_init_of(pid),
                "nspid": int(status_of(pid)["NSpid"].split()[-1]),
                "members": pidns_members(pid),
                "tmp": sorted(os.listdir("/proc/%d/root/tmp" % pid)),
                "shm": in_ns(pid, "-i", "cat", "/proc/sysvipc/shm").splitlines()[1:],
                "nodename": in_ns(pid, "-u", "uname", "-n").strip(),
                "mounts": [line.split()[4] for line in open("/proc/%d/mountinfo" % pid)],
                "tmp_bytes": (lambda v: v.f_blocks * v.f_frsize)(
                    os.statvfs("/proc/%d/root/tmp" % pid))}
        if plant:
            with open("/proc/%d/root/tmp/%s" % (pid, plant), "w") as f:
                f.write("left behind")
        done = self.d.wait_all([job["id"]], timeout=timeout + 20, check_status=False)
        return done[job["id"]], seen

    def sleeper(self, **kw):
        return self.look("sleep", {"seconds": 1.5}, **kw)

    def assert_clean(self, seen):
        """A job's view while it runs: its own namespaces, and in them
        nothing but itself and the slot's init."""
        host, spawner = ns_of(self.d.proc.pid), ns_of(self.spawner)
        for name in NAMESPACES:
            self.assertNotEqual(seen["ns"][name], host[name], (name, seen))
        for name in JOB_NS:
            self.assertNotEqual(seen["ns"][name], spawner[name], (name, seen))
        init = seen["init"]
        self.assertIsNotNone(init, seen)
        self.assertEqual(init[1:], ("valetd-init", [str(init[0]), "1"], self.spawner), seen)
        self.assertGreaterEqual(seen["nspid"], 2, seen)
        self.assertEqual(seen["members"], [1, seen["nspid"]], seen)
        self.assertEqual(seen["tmp"], [], seen)
        self.assertEqual(seen["shm"], [], seen)
        self.assertEqual(seen["nodename"], "valet", seen)

    def next_in_slot(self, first):
        """What the next sleeper in the slot of the job that saw first
        sees (one worker, two slots: at most 3 jobs), each job clean."""
        for _ in range(3):
            job, seen = self.sleeper()
            self.assertEqual(job["status"], "COMPLETED", job)
            self.assert_clean(seen)
            if seen["uid"] == first["uid"]:
                break
        self.assertEqual(seen["uid"], first["uid"], "the slot never ran again")
        return seen


@unittest.skipUnless(os.geteuid() == 0, "needs root (namespaces, cgroups, users)")
class SlotNamespacesTest(SlotTestCase):
    def test_tmp_follows_the_memory_limit(self):
        """/tmp is the size of the job's memory limit, also when the slot's
        last job had another: 64, 32, 64 MiB in a row, in one slot."""
        seen_by_slot = {}
        for mib in (64, 64, 32, 32, 64, 64):
            job, seen = self.sleeper(limits={"memory": "%dm" % mib})
            self.assertEqual(job["status"], "COMPLETED", job)
            self.assert_clean(seen)
            self.assertEqual(seen["tmp_bytes"], mib << 20, (mib, seen))
            seen_by_slot.setdefault(seen["uid"], []).append(seen["ns"]["mnt"])
        # Same namespaces throughout: the size changed in place.
        self.assertTrue(all(len(set(v)) == 1 for v in seen_by_slot.values()), seen_by_slot)

    def test_jobs_of_a_slot_share_its_namespaces(self):
        """Four jobs in a row: each sees only itself and the init; the jobs
        of one slot (uid) run in the same namespaces, under the same init;
        every job COMPLETED."""
        runs = [self.sleeper() for _ in range(4)]
        by_slot = {}
        for job, seen in runs:
            self.assertEqual(job["status"], "COMPLETED", job)
            self.assert_clean(seen)
            by_slot.setdefault(seen["uid"], []).append(seen)
        self.assertTrue(any(len(v) > 1 for v in by_slot.values()), by_slot)
        for slot in by_slot.values():
            first = slot[0]
            for seen in slot[1:]:
                for name in JOB_NS:
                    self.assertEqual(seen["ns"][name], first["ns"][name], (name, slot))
                self.assertEqual(seen["init"], first["init"], slot)
                self.assertGreater(seen["nspid"], first["nspid"], slot)

    def test_what_a_task_tries_to_leave_is_refused_and_not_found(self):
        """Each attempt to leave something is a seccomp kill; then every
        slot's next job still finds only itself and an empty, unchanged view,
        in the same namespaces (a seccomp kill is no reason to make them
        anew: nothing was left)."""
        before = {}
        for _ in range(2):
            job, seen = self.sleeper()
            self.assertEqual(job["status"], "COMPLETED", job)
            before[seen["uid"]] = seen
        attempts = [("hostile_fork", {}, "clone"), ("hostile_thread", {}, "clone"),
                    ("hostile_syscall", {"call": "mknod"}, "mknodat"),
                    ("hostile_syscall", {"call": "shmget"}, "shmget"),
                    ("hostile_syscall", {"call": "mount"}, "mount"),
                    ("hostile_syscall", {"call": "sethostname"}, "sethostname"),
                    ("hostile_open_shadow", {}, "openat")]
        for task, params, call in attempts:
            job = self.d.submit(task, params, timeout=20)
            job = self.d.wait_all([job["id"]], timeout=40, check_status=False)[job["id"]]
            self.assertEqual(job["status"], "FAILED", job)
            self.assertEqual(job["outcome"]["signal"], "SIGSYS", job)
            self.assertIn(job["failure_reason"], ("blocked by sandbox: system call " + call,
                                                  "blocked by sandbox: forbidden system call"),
                          job)
        for _ in range(2):
            job, seen = self.sleeper()
            self.assertEqual(job["status"], "COMPLETED", job)
            self.assert_clean(seen)
            self.assertEqual(seen["ns"], before[seen["uid"]]["ns"], (seen, before))

    def test_a_killed_job_leaves_new_namespaces(self):
        """A job killed at its deadline: its slot's next job runs in new
        namespaces under a new init, and the old init is gone."""
        job, first = self.look("hostile_sleep", {}, timeout=1)
        self.assertEqual(job["status"], "FAILED", job)
        self.assertIn("timed out", job["failure_reason"], job)
        seen = self.next_in_slot(first)
        for name in JOB_NS:
            self.assertNotEqual(seen["ns"][name], first["ns"][name], (name, seen, first))
        self.assertNotEqual(seen["init"][0], first["init"][0], (seen, first))
        self.assertFalse(os.path.exists("/proc/%d" % first["init"][0]), first)

    def test_a_dirty_tmp_is_not_reused(self):
        """A file in the slot's /tmp (planted from outside: a C task cannot
        write one) makes the slot's namespaces go: its next job runs in new
        ones, whose /tmp is empty."""
        job, first = self.sleeper(plant="leftover")
        self.assertEqual(job["status"], "COMPLETED", job)
        seen = self.next_in_slot(first)
        self.assertNotEqual(seen["ns"]["mnt"], first["ns"]["mnt"], (seen, first))


@unittest.skipUnless(os.geteuid() == 0, "needs root (namespaces, cgroups, users)")
class ExecSlotTest(SlotTestCase):
    """Exec tasks without network run in their slot's namespaces too, while
    no job has left anything there (sbx_init.c, spawner.c). The probe (an
    exec task, python3) reports from inside; "probe" is the task whose jobs
    leave things, "look" (the same program) the one that looks after it."""

    # "look" looks after a job of another task; one task per case, since a
    # task that created processes is not run in the slot's namespaces again.
    tasks = {"task." + t: PROBE_TASK for t in ("look", "p0", "p1", "p2", "p3", "p4", "pk")}

    def run_exec(self, task, timeout=20, status="COMPLETED", limits=None, **params):
        params.setdefault("whoami", True)
        params.setdefault("ls", ["/tmp"])
        extra = {"limits": limits} if limits else {}
        job = self.d.submit(task, params, timeout=timeout, **extra)
        done = self.d.wait_all([job["id"]], timeout=timeout + 20, check_status=False)[job["id"]]
        self.assertEqual(done["status"], status, done)
        if status != "COMPLETED":
            return done, None
        out = self.d.result(job["id"])["metadata"]
        out["uid"] = done["isolation"]["uid"]
        return done, out

    def look_in_slot(self, uid):
        """A "look" job in the slot that ran as uid (one worker, two slots:
        at most 3 jobs); what it saw."""
        for _ in range(3):
            _, seen = self.run_exec("look")
            self.assertEqual(seen["ls /tmp"], [], seen)
            who = seen["whoami"]
            self.assertGreaterEqual(who["pid"], 2, seen)
            self.assertEqual((who["ppid"], who["init"], who["nodename"]),
                             (0, "valetd-init", "valet"), seen)
            if seen["uid"] == uid:
                return who
        self.fail("the slot never ran again")

    def test_clean_jobs_share_the_slot_namespaces(self):
        """An exec job that leaves nothing: the slot's next job runs in the
        same namespaces, as the next pid there - the only trace of the one
        before, as for C tasks - and finds /tmp empty."""
        _, first = self.run_exec("look")
        who = self.look_in_slot(first["uid"])
        for name in JOB_NS:
            self.assertEqual(who["ns"][name], first["whoami"]["ns"][name], (name, who, first))
        self.assertEqual(who["pid"], first["whoami"]["pid"] + 1, (who, first))

    def test_what_a_job_leaves_makes_new_namespaces(self):
        """A file in /tmp, a file made and removed again (its times), a
        child that ended (its pid), a process left running: the slot's next
        job runs in new namespaces with an empty /tmp, and a job that left
        a process is over only once it is gone. A task that created
        processes gets namespaces of its own per job from then on: pid 2
        beside its own init."""
        cases = [("p0", "a file", {"write": ["/tmp/left"]}, False),
                 ("p1", "a file removed", {"write": ["/tmp/gone"], "unlink": ["/tmp/gone"]},
                  False),
                 ("p2", "a child that ended", {"fork": 1}, True),
                 ("p3", "a process left", {"leave": 60}, True)]
        for task, what, params, forks in cases:
            with self.subTest(what):
                _, first = self.run_exec(task, **params)
                self.assertNotIn("ENOENT", str(first), first)
                self.assertEqual(procs_of(first["uid"], "python3"), [],
                                 "%s: the job's process outlived it" % what)
                who = self.look_in_slot(first["uid"])
                self.assert_fresh(who, first)
                if forks:
                    for _ in range(2):
                        _, again = self.run_exec(task)
                        self.assertEqual(again["whoami"]["pid"], 2, (what, again))

    def test_pids_moved_on_seen_by_a_task_the_spawner_clones(self):
        """A job with another memory limit (a /tmp of another size, which a
        task that joins the namespaces itself remounts) is cloned by the
        spawner, not started by the slot's launcher: it checks the pids
        too. After a child that ended, it runs in new namespaces."""
        _, first = self.run_exec("p4", fork=1)
        for _ in range(3):
            _, seen = self.run_exec("look", limits={"memory": "96M"})
            if seen["uid"] == first["uid"]:
                break
        self.assertEqual(seen["uid"], first["uid"], seen)
        self.assert_fresh(seen["whoami"], first)

    def test_a_killed_exec_job_leaves_nothing(self):
        """A kill at the deadline of a job that left a process: both gone
        when the job is over, and new namespaces for the slot's next job."""
        _, first = self.run_exec("look")
        done, _ = self.run_exec("pk", timeout=1, status="FAILED", leave=60, sleep=30)
        self.assertIn("timed out", done["failure_reason"], done)
        uid = done["isolation"]["uid"]
        self.assertEqual(procs_of(uid, "python3"), [], "a killed job's process outlived it")
        self.assert_fresh(self.look_in_slot(uid), first)

    def assert_fresh(self, who, first):
        """who ran in new namespaces: pid 2 (its own, per job) or 3 (its
        slot's, made anew: the builder was 2), where the slot's namespaces
        kept would have made it the next pid after first's, 4 or more.
        (Namespaces' inode numbers are used again once they are freed, so
        they cannot tell.)"""
        self.assertIn(who["pid"], (2, 3), (who, first))


def launchers_of(spawner):
    """{uid: pid} of the spawner's exec launchers (sandbox/spawner_launch.c)."""
    return {v[2]: p for p, v in proc_table().items()
            if v[0] == spawner and v[3] == "valetd-launch"}


@unittest.skipUnless(os.geteuid() == 0, "needs root (namespaces, cgroups, users)")
class LauncherTest(SlotTestCase):
    """An exec task in its slot's namespaces is started by the slot's
    launcher (sandbox/spawner_launch.c): a child of the spawner already in
    the slot's namespaces and cgroups, as the slot's uid, under the exec
    filter, which the task inherits. Looked at from outside: what the
    launcher is, that no task can reach it, that it goes with the slot's
    namespaces and with the daemon, and that it costs a job no process of
    its limit."""

    tasks = {"task." + t: PROBE_TASK for t in ("look", "reach", "left", "pf", "pf2")}

    def run_exec(self, task, status="COMPLETED", limits=None, **params):
        params.setdefault("whoami", True)
        extra = {"limits": limits} if limits else {}
        job = self.d.submit(task, params, timeout=20, **extra)
        done = self.d.wait_all([job["id"]], timeout=40, check_status=False)[job["id"]]
        self.assertEqual(done["status"], status, done)
        out = self.d.result(job["id"])["metadata"]
        out["uid"] = done["isolation"]["uid"]
        return out

    def launcher_for(self, uid):
        pid = launchers_of(self.spawner).get(uid)
        self.assertIsNotNone(pid, "no launcher of uid %d: %s" % (uid, proc_table()))
        return pid

    def test_the_launcher_is_in_the_sandbox_but_not_the_pid_namespace(self):
        """The slot's uid, no capability, no_new_privs, the exec filter;
        the slot's mount, IPC, UTS and network namespaces and cgroups, but
        not its PID namespace (the spawner's); never the OOM killer's
        choice; and the same process for the slot's next clean job."""
        first = self.run_exec("look")
        pid = self.launcher_for(first["uid"])
        st = status_of(pid)
        for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            self.assertEqual(int(st[k], 16), 0, (k, st))
        self.assertEqual((st["NoNewPrivs"], st["Seccomp"]), ("1", "2"), st)
        self.assertEqual(st["Uid"].split(), [str(first["uid"])] * 4, st)
        ns = ns_of(pid)
        for name in ("mnt", "ipc", "uts", "net"):
            self.assertEqual(ns[name], first["whoami"]["ns"][name], (name, ns, first))
        self.assertNotEqual(ns["pid"], first["whoami"]["ns"]["pid"], (ns, first))
        self.assertEqual(ns["pid"], ns_of(self.spawner)["pid"], ns)
        self.assertEqual(len(st["NSpid"].split()), len(status_of(self.spawner)["NSpid"].split()))
        with open("/proc/%d/cgroup" % pid) as f:
            cgroups = f.read()
        self.assertIn("/slot-", cgroups)
        again = self.run_exec("look")
        if again["uid"] == first["uid"]:
            self.assertEqual(self.launcher_for(first["uid"]), pid)

    def test_no_task_reaches_the_launcher(self):
        """A task that signals every process it may (kill -1: SIGSTOP,
        then SIGKILL) and renices every process of its uid: the launcher
        is none of them - the same process, running, nice 0 - and the
        slot's next job runs."""
        first = self.run_exec("look")
        pid = self.launcher_for(first["uid"])
        for _ in range(3):  # one worker, two slots: until it ran in that slot
            hit = self.run_exec("reach", kill=[[-1, signal.SIGSTOP], [-1, signal.SIGKILL]],
                                renice_user=19)
            if hit["uid"] == first["uid"]:
                break
        self.assertEqual(hit["uid"], first["uid"], hit)
        self.assertEqual(hit["renice_user"], "ok", hit)
        self.assertEqual(self.launcher_for(first["uid"]), pid)
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        self.assertEqual((fields[0], fields[16]), ("S", "0"), fields)
        self.assertEqual(self.run_exec("look")["whoami"]["uid"] >= 0, True)

    def test_the_launcher_goes_with_the_namespaces(self):
        """A job that leaves a process: the slot's namespaces are made
        anew, and the launcher with them (the old one is gone)."""
        first = self.run_exec("look")
        pid = self.launcher_for(first["uid"])
        for _ in range(3):
            left = self.run_exec("left", leave=60)
            if left["uid"] == first["uid"]:
                break
        self.assertEqual(left["uid"], first["uid"], left)
        self.assertTrue(wait_until(lambda: not os.path.exists("/proc/%d" % pid), 5),
                        "the launcher outlived its slot's namespaces")
        self.assertNotEqual(self.launcher_for(self.run_exec("look")["uid"]), pid)

    def test_a_launcher_that_died_is_replaced(self):
        """A launcher killed from outside (as the OOM killer's group kill of
        a job's cgroup does): the slot's next exec job runs all the same,
        started by a new one."""
        first = self.run_exec("look")
        pid = self.launcher_for(first["uid"])
        os.kill(pid, signal.SIGKILL)
        self.assertTrue(wait_until(lambda: not os.path.exists("/proc/%d" % pid), 5))
        for _ in range(3):
            again = self.run_exec("look")
            if again["uid"] == first["uid"]:
                break
        self.assertEqual(again["uid"], first["uid"], again)
        self.assertNotEqual(self.launcher_for(first["uid"]), pid)

    def test_no_launcher_outlives_the_daemon(self):
        d = Daemon(dict({"sandbox": {"uid_base": str(UID_BASE + 8)}}, **self.tasks))
        d.start()
        try:
            spawner = spawner_of(d)
            job = d.submit("look", {})
            d.wait_all([job["id"]], timeout=30)
            self.assertNotEqual(launchers_of(spawner), {})
        finally:
            d.stop()
            d.cleanup()
        self.assertEqual(launchers_of(spawner), {})

    def test_the_launcher_costs_no_process_of_the_limit(self):
        """processes = 3: the task and two children, whether it is started
        by the launcher (its first job) or, having created processes, in
        namespaces of its own (the next)."""
        for task in ("pf", "pf2"):
            for n in range(2):
                with self.subTest(task=task, job=n):
                    out = self.run_exec(task, limits={"processes": 3}, forkbomb=0.5)
                    self.assertEqual((out["forked"], out["stopped_by"]), (2, "EAGAIN"), out)

    def test_the_launcher_costs_no_process_of_a_job_it_does_not_start(self):
        """processes = 3 in a slot whose launcher is there, for a job the
        spawner clones (another memory limit: a /tmp of another size): the
        task and two children. The launcher counts in the slot's pids
        cgroup and uid whichever way the slot's job starts."""
        first = self.run_exec("look")
        self.launcher_for(first["uid"])
        for _ in range(3):
            out = self.run_exec("pf", limits={"processes": 3, "memory": "96M"}, forkbomb=0.5)
            if out["uid"] == first["uid"]:
                break
        self.assertEqual(out["uid"], first["uid"], "the slot never ran again")
        self.assertEqual((out["forked"], out["stopped_by"]), (2, "EAGAIN"), out)


@unittest.skipUnless(os.geteuid() == 0, "needs root (namespaces, cgroups, users, mounts)")
class SlotViewTest(SlotTestCase):
    """A slot's namespaces are a copy of the view as it was: when the view
    changes, they go at once - not only at the slot's next job, since they
    would keep busy what the host unmounted."""

    def before_start(self):
        self.gone = tempfile.mkdtemp(prefix="valet-slotns-", dir="/var/tmp")
        self.addCleanup(os.rmdir, self.gone)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", self.gone], check=True)
        self.addCleanup(subprocess.run, ["umount", self.gone], stderr=subprocess.DEVNULL)

    def test_a_host_unmount_drops_the_slot_namespaces(self):
        job, first = self.sleeper()
        self.assertEqual(job["status"], "COMPLETED", job)
        self.assertTrue(os.path.exists("/proc/%d" % first["init"][0]), first)
        self.assertIn(self.gone, first["mounts"], first)
        subprocess.run(["umount", self.gone], check=True)
        deadline = time.monotonic() + 5
        while os.path.exists("/proc/%d" % first["init"][0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(os.path.exists("/proc/%d" % first["init"][0]),
                         "the slot's init outlived a change of the view")
        seen = self.next_in_slot(first)
        self.assertNotEqual(seen["ns"]["mnt"], first["ns"]["mnt"], (seen, first))
        self.assertNotIn(self.gone, seen["mounts"], seen)


if __name__ == "__main__":
    unittest.main()
