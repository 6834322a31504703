"""What a job gets, against the real valetd and its children: the limits
that its request, its task and [jobs] set (LimitsTest), and its isolation -
namespaces, users, cgroups, seccomp profile, network - as each job records
it ("isolation") and as the test sees it from outside and, through the probe
task, from inside; with valetd's refusal to start without the isolation it
is configured for (IsolationTest).

test_slotns (a C task's worker slot) and the hostile suites look at the same
from other sides; the helpers here that read a process's namespaces and
status from outside (ns_of, status_of, pidns_init_of, procs_of, wait_until)
are theirs too.
"""

import errno
import os
import re
import shutil
import socket
import tempfile
import subprocess
import threading
import time
import unittest

from valetd import (ASAN, HOSTILE_EXEC, REPO, VALETD, Daemon, DaemonTestCase, below,
                    marker_pattern, new_uuid, pgrep, proc_table, spawner_of)
from test_api import later


# The exec task that looks around from inside a job (tests/hostile/escapes).
PROBE = os.path.join(REPO, "tests", "hostile", "escapes", "probe.py")
PROBE_TASK = {"command": "/usr/bin/python3 " + PROBE}
NAMESPACES = ("pid", "mnt", "ipc", "uts", "net")


def wait_until(pred, timeout, interval=0.01):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def ns_of(pid):
    """{"net": "net:[4026...]", ...} of a process, read from outside."""
    return {n: os.readlink("/proc/%d/ns/%s" % (pid, n)) for n in NAMESPACES}


def status_of(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def held_netns(pid):
    """The network namespaces a process holds open fds of."""
    out = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("net:["):
            out.add(target)
    return out


def pidns_init_of(pid):
    """(pid, name, NSpid, parent) of pid 1 of the PID namespace of pid, read
    from outside; None when there is none."""
    pidns = os.readlink("/proc/%d/ns/pid" % pid)
    for p, v in proc_table().items():
        try:
            if os.readlink("/proc/%d/ns/pid" % p) != pidns:
                continue
            nspid = status_of(p)["NSpid"].split()
        except OSError:
            continue
        if nspid[-1] == "1":
            return (p, v[3], nspid, v[0])
    return None


def procs_of(uid, comm):
    """The pids running as uid whose name is comm."""
    return sorted(p for p, v in proc_table().items() if v[2] == uid and v[3] == comm)


def gate_dir():
    """A directory in /var/tmp, which jobs see (read-only): a probe job waits
    there for a file the test makes when the job may end."""
    gate = tempfile.mkdtemp(prefix="valet-gate-", dir="/var/tmp")
    os.chmod(gate, 0o755)
    return gate


class LimitsTest(DaemonTestCase):
    """Per-job limits ("limits" in the request), per-task defaults and the
    [jobs] maxima, against the real daemon and its children."""

    config = {"task.hostile_flood": {"max_output_size": "2k"}}

    def no_limits(self):
        # Under ASan the daemon runs without a memory limit (valetd.py).
        return None if ASAN else 268435456

    def test_job_output_limit(self):
        job = self.d.submit("hostile_flood", timeout=10, limits={"output": "64k"})
        self.assertEqual(job["limits"], {"memory": self.no_limits(), "cpu": None,
                                         "processes": 64, "output": 65536})
        job = self.d.wait_for(job["id"], timeout=15)
        self.assertEqual(job["status"], "FAILED", job)
        self.assertEqual(job["failure_reason"],
                         "output limit exceeded (more than 64 KiB on stdout/stderr)")
        self.assertEqual(job["limits"]["output"], 65536)
        self.assertFalse(job["outcome"]["timed_out"])

    def test_task_default_output_limit(self):
        job = self.d.submit("hostile_flood", timeout=10)
        self.assertNotIn("limits", job)
        job = self.d.wait_for(job["id"], timeout=15)
        self.assertEqual(job["failure_reason"],
                         "output limit exceeded (more than 2 KiB on stdout/stderr)")
        self.assertNotIn("limits", job)
        # An exec task's stderr counts the same.
        job = self.d.submit("exec_flood_stderr", timeout=10, limits={"output": 4096})
        job = self.d.wait_for(job["id"], timeout=15)
        self.assertEqual(job["failure_reason"],
                         "output limit exceeded (more than 4 KiB on stdout/stderr)")

    def test_cpu_limit(self):
        # RLIMIT_CPU: the kernel's SIGXCPU at the limit ends the task (its
        # rusage may read below the limit on a busy machine: the signal
        # tells).
        for task, cpu in (("hostile_spin", 1), ("exec_spin", "1s")):
            job = self.d.submit(task, timeout=30, limits={"cpu": cpu})
            self.assertEqual(job["limits"]["cpu"], 1)
            job = self.d.wait_for(job["id"], timeout=20)
            self.assertEqual(job["status"], "FAILED", job)
            self.assertEqual(job["failure_reason"], "CPU time limit exceeded (limit 1s)", job)
            oc = job["outcome"]
            self.assertEqual(oc["signal"], "SIGXCPU", job)
            self.assertFalse(oc["timed_out"], job)
            self.assertGreaterEqual(oc["cpu_ms"], 500, job)
            self.assertLess(job["duration"], 10000, job)

    def test_limits_shown(self):
        job = self.d.submit("dummytask", params={"a": 1},
                            limits={"processes": 16, "output": "64k", "cpu": 5})
        want = {"memory": self.no_limits(), "cpu": 5, "processes": 16, "output": 65536}
        self.assertEqual(job["limits"], want)
        job = self.d.wait_for(job["id"])
        self.assertEqual(job["status"], "COMPLETED", job)
        self.assertEqual(job["limits"], want)
        self.assertEqual(self.d.job(job["id"])["limits"], want)
        listed = [j for j in self.d.get_json("/api/jobs")["jobs"] if j["id"] == job["id"]]
        self.assertEqual(listed[0]["limits"], want)
        # Task default (2k) under a job's own limits it does not set.
        job = self.d.submit("hostile_flood", timeout=10, limits={"cpu": 5},
                            run_at=later())
        self.assertEqual(job["limits"]["output"], 2048)
        self.assertNoBody(self.d.delete("/api/jobs/" + job["id"]), 204)

    def test_pipeline_limits(self):
        pl = self.d.submit_pipeline([
            {"name": "a", "task_name": "dummytask", "task_params": {"x": 1}},
            {"name": "b", "task_name": "echoprev", "use_previous_results": True,
             "limits": {"processes": 8, "output": 1024}},
        ])
        pl = self.d.wait_pipeline(pl["id"])
        self.assertEqual(pl["status"], "COMPLETED", pl)
        jobs = self.d.get_json("/api/pipelines/%s/jobs" % pl["id"])["jobs"]
        self.assertNotIn("limits", jobs[0])
        self.assertEqual(jobs[1]["limits"], {"memory": self.no_limits(), "cpu": None,
                                             "processes": 8, "output": 1024})

    def test_above_maximum(self):
        before = len(self.d.get_json("/api/jobs")["jobs"])
        cases = [
            ({"processes": 65}, "limits.processes must be at most 64"),
            ({"output": "2M"}, "limits.output must be at most 1048576 bytes (1 MiB)"),
            ({"output": 0}, 'limits.output must be an integer number of bytes greater than 0 '
                            'or a size such as "64k"'),
            ({"cpu": -1}, 'limits.cpu must be an integer number of seconds greater than 0 '
                          'or a duration such as "5s"'),
            ({"swap": 1}, "limits.swap is not a valid limit - valid limits: "
                          "[cpu memory output processes]"),
            ("64M", "limits must be an object"),
        ]
        if not ASAN:
            cases.append(({"memory": "512M"},
                          "limits.memory must be at most 268435456 bytes (256 MiB)"))
        for limits, msg in cases:
            r = self.d.post("/api/jobs", {"name": "x", "task_name": "dummytask",
                                          "limits": limits})
            self.assertError(r, 400, msg)
            r = self.d.post("/api/pipelines", {"name": "p", "jobs": [
                {"name": "a", "task_name": "dummytask"},
                {"name": "b", "task_name": "dummytask", "limits": limits}]})
            self.assertError(r, 400, msg)
        self.assertEqual(len(self.d.get_json("/api/jobs")["jobs"]), before)


class IsolationTest(unittest.TestCase):
    """What isolation jobs get, as each job records it ("isolation"), and
    valetd's refusal to start without the isolation it is configured for."""

    def run_one(self, d, task, **kw):
        """Start d, run one job of task; (the finished job, valetd's log)."""
        d.start()
        try:
            job = d.submit(task, **kw)
            done = d.wait_all([job["id"]], timeout=20, check_status=False)[job["id"]]
            log = d.log_text()
            d.stop()
            return done, log
        finally:
            d.cleanup()

    @unittest.skipUnless(os.geteuid() == 0, "needs root (namespaces, cgroups, users)")
    def test_full_isolation_is_recorded(self):
        """A job's isolation record is what the job got. A running C task
        (looked at from outside: it may not open files) and an exec task
        (the probe, from inside) each run in a PID namespace that is not the
        spawner's whose pid 1 is a valetd-init of the spawner's: their worker
        slot's (test_slotns), where the task is pid 2 or more, a child of the
        spawner (outside: ppid 0 inside); their mount, IPC, UTS and network
        namespaces are neither valetd's nor the spawner's; the host name is
        "valet"; the network namespace is the slot's, one the spawner holds;
        they run as the uid the record names; and both jobs COMPLETED."""
        d = Daemon({"sandbox": {"uid_base": "61000"}, "queue": {"workers": "2"},
                    "task.probe": PROBE_TASK})
        d.start()
        try:
            host, spawner = ns_of(d.proc.pid), spawner_of(d)
            spawner_ns = ns_of(spawner)
            c_job = d.submit("sleep", {"seconds": 3})
            c_uid = d.wait_for(c_job["id"], "IN_PROGRESS", timeout=10)["isolation"]["uid"]
            # One process per slot, and a slot per uid: the running task.
            tasks = wait_until(lambda: procs_of(c_uid, "valetd-job"), 5)
            self.assertEqual(len(tasks), 1, tasks)
            task = tasks[0]
            c_seen = {"ns": ns_of(task), "status": status_of(task), "init": pidns_init_of(task)}
            c_seen["nodename"] = subprocess.run(
                ["nsenter", "-t", str(task), "-u", "uname", "-n"], stdout=subprocess.PIPE,
                text=True, timeout=10).stdout.strip()
            x_job = d.submit("probe", {"whoami": True})
            done = d.wait_all([c_job["id"], x_job["id"]], timeout=20)
            inside = d.result(x_job["id"])["metadata"]["whoami"]
            slot_netns = held_netns(spawner)
        finally:
            d.stop()
            d.cleanup()
        for j, profile in ((c_job, "strict"), (x_job, "exec")):
            job = done[j["id"]]
            self.assertEqual(job["status"], "COMPLETED", job)
            iso = job["isolation"]
            self.assertEqual(iso["namespaces"], ["pid", "mount", "ipc", "uts", "net"], iso)
            self.assertIn(iso["cgroup"], ("v1", "v2"), iso)
            self.assertIn(iso["uid"], range(61000, 61000 + 4), iso)
            self.assertEqual(iso["profile"], profile, iso)
            self.assertEqual(iso["network"], "none", iso)
            self.assertIs(iso["degraded"], False, iso)
        # The C task, from outside.
        self.assertEqual(len(c_seen["status"]["NSpid"].split()), 2, c_seen)
        self.assertGreaterEqual(int(c_seen["status"]["NSpid"].split()[1]), 2, c_seen)
        self.assertEqual(c_seen["status"]["PPid"], str(spawner), c_seen)
        init = c_seen["init"][0] if c_seen["init"] else None
        self.assertEqual(c_seen["init"], (init, "valetd-init", [str(init), "1"], spawner), c_seen)
        self.assertEqual(set(c_seen["status"]["Uid"].split()), {str(c_uid)}, c_seen)
        self.assertEqual(c_seen["nodename"], "valet", c_seen)
        # The exec task, from inside: pid 2 or more beside the init, its
        # parent (the spawner) outside the namespace, as a C task's.
        x_iso = done[x_job["id"]]["isolation"]
        self.assertGreaterEqual(inside["pid"], 2, inside)
        self.assertEqual((inside["ppid"], inside["init"]), (0, "valetd-init"), inside)
        self.assertEqual((inside["uid"], inside["gid"]), (x_iso["uid"], x_iso["uid"]), inside)
        self.assertEqual(inside["nodename"], "valet", inside)
        for ns in (c_seen["ns"], inside["ns"]):
            for name in NAMESPACES:
                self.assertNotEqual(ns[name], host[name], (name, ns, host))
            # A job's own PID, mount, IPC and UTS namespaces; the network
            # namespace is its slot's (test_network_namespace_per_slot),
            # which the spawner made (and sits in the last one it made).
            for name in ("pid", "mnt", "ipc", "uts"):
                self.assertNotEqual(ns[name], spawner_ns[name], (name, ns, spawner_ns))
            self.assertIn(ns["net"], slot_netns, (ns, slot_netns))

    @unittest.skipUnless(os.geteuid() == 0, "needs root (users)")
    def test_slots_have_uids_of_their_own(self):
        """By default (uid_base = auto) two jobs running at the same time run
        as two uids of the block valetd picked in 600000-699999. Each job
        waits for a file that the test makes only once both run, so they
        provably overlap; then each reports getuid() from inside: its
        record's uid, and not the other's."""
        gate = gate_dir()
        self.addCleanup(shutil.rmtree, gate, True)
        go = os.path.join(gate, "go")
        d = Daemon({"queue": {"workers": "2"}, "task.probe": PROBE_TASK})
        d.start()
        try:
            jobs = [d.submit("probe", {"until": go, "whoami": True, "timeout": 30}, timeout=60)
                    for _ in range(2)]
            for j in jobs:
                d.wait_for(j["id"], "IN_PROGRESS", timeout=20)
            spawner = spawner_of(d)

            def probes():
                table = proc_table()
                return [p for p in below(table, spawner) if table[p][3] == "python3"]
            self.assertTrue(wait_until(lambda: len(probes()) == 2, 20),
                            "the two probes never ran at once: %s" % probes())
            with open(go, "w"):
                pass
            done = d.wait_all([j["id"] for j in jobs], timeout=30)
            metas = [d.result(j["id"])["metadata"] for j in jobs]
            m = re.search(r"task users: .* first=(\d+)", d.log_text())
        finally:
            d.stop()
            d.cleanup()
        self.assertIsNotNone(m, "no block of task ids in the log")
        first = int(m.group(1))
        uids = set()
        for j, meta in zip(jobs, metas):
            job = done[j["id"]]
            self.assertEqual(job["status"], "COMPLETED", job)
            self.assertEqual(meta["until"], "seen", meta)
            iso_uid = job["isolation"]["uid"]
            self.assertEqual((meta["whoami"]["uid"], meta["whoami"]["gid"]), (iso_uid, iso_uid),
                             (meta, job["isolation"]))
            self.assertGreaterEqual(iso_uid, 600000)
            # 2 workers: 4 slots, and the network helper's id after them.
            self.assertIn(iso_uid, range(first, first + 4), (first, job))
            uids.add(meta["whoami"]["uid"])
        self.assertEqual(len(uids), 2, metas)

    @staticmethod
    def held_ids():
        """The ids whose valetd lock (an abstract socket) is held on this host."""
        with open("/proc/net/unix") as f:
            return {int(m.group(1)) for m in re.finditer(r"@valetd-id-(\d+)$", f.read(), re.M)}

    @unittest.skipUnless(os.geteuid() == 0, "needs root (users)")
    def test_two_daemons_get_different_blocks(self):
        """Two valetds started at once with uid_base = auto reserve blocks
        that do not overlap, and hold their locks until they exit."""
        ds = [Daemon({"queue": {"workers": "2"}}) for _ in range(2)]
        barrier = threading.Barrier(2)
        errors = []

        def start(d):
            barrier.wait()
            try:
                d.start()
            except AssertionError as e:
                errors.append(e)

        threads = [threading.Thread(target=start, args=(d,)) for d in ds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            self.assertEqual(errors, [])
            blocks = []
            for d in ds:
                m = re.search(r"task users: .* first=(\d+) network_helper=(\d+) picked=auto",
                              d.log_text())
                self.assertIsNotNone(m, d.log_tail())
                blocks.append(range(int(m.group(1)), int(m.group(2)) + 1))
            held = self.held_ids()
            for block in blocks:
                self.assertEqual(len(block), 5, blocks)  # 4 slots + the network helper
                self.assertGreaterEqual(block[0], 600000, blocks)
                self.assertLessEqual(block[-1], 699999, blocks)
                self.assertLessEqual(set(block), held, blocks)
            self.assertFalse(set(blocks[0]) & set(blocks[1]), blocks)
            # A job of each runs in its daemon's block.
            for d, block in zip(ds, blocks):
                job = d.submit("dummytask")
                done = d.wait_all([job["id"]], timeout=20)[job["id"]]
                self.assertIn(done["isolation"]["uid"], block[:-1], done)
        finally:
            for d in ds:
                d.stop()
                d.cleanup()
        self.assertFalse(set(blocks[0]) & self.held_ids(), blocks)

    @unittest.skipUnless(os.geteuid() == 0, "needs root (users)")
    def test_pinned_range_held_is_refused(self):
        """A pinned uid_base one of whose ids another valetd holds is
        refused, with the id named: here the first valetd's network helper
        id (61504, after 4 slots), which no process runs as, so that only
        the lock says it is taken (the slots' pre-forked children run as
        theirs)."""
        d = Daemon({"sandbox": {"uid_base": "61500"}, "queue": {"workers": "2"}})
        other = Daemon({"sandbox": {"uid_base": "61504"}, "queue": {"workers": "1"}})
        d.start()
        try:
            other.write_config()
            r = subprocess.run([VALETD, "--check", "-c", other.conf_path], capture_output=True,
                               text=True, timeout=20)
        finally:
            d.stop()
            d.cleanup()
            other.cleanup()
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("valetd would not start: [sandbox] uid_base 61504: id 61504 (slot 0 of 2) "
                      "is held by another valetd on this host", r.stdout)

    @unittest.skipUnless(os.geteuid() == 0, "needs root (cgroups)")
    def test_memory_peak(self):
        """outcome.memory_peak_kb: the peak of the job's cgroup, reset for
        each job (a small job after a big one in the same slot is small)."""
        alloc = ("/usr/bin/python3 -c 'import sys; sys.stdin.read(); "
                 "b = bytearray(48 << 20); print(\"{}\")'")
        small = "/usr/bin/python3 -c 'import sys; sys.stdin.read(); print(\"{}\")'"
        # What a job keeps in its /tmp (a tmpfs) is memory of its cgroup too:
        # 48 MiB in files of 12 MiB (RLIMIT_FSIZE is 16 MiB).
        tmp = ("/bin/sh -c 'cat >/dev/null; for i in 1 2 3 4; do "
               "head -c 12M /dev/zero >/tmp/fill$i || exit 1; done; echo \"{}\"'")
        d = Daemon({"queue": {"workers": "1"}, "task.alloc": {"command": alloc},
                    "task.small": {"command": small}, "task.fill": {"command": tmp}})
        d.start()
        try:
            big = d.wait_all([d.submit("alloc")["id"]], timeout=20)
            smalls = [d.wait_all([d.submit("small")["id"]], timeout=20) for _ in range(4)]
            fill = d.wait_all([d.submit("fill")["id"]], timeout=20)
        finally:
            d.stop()
            d.cleanup()
        for job in list(big.values()) + list(fill.values()):
            self.assertEqual(job["status"], "COMPLETED", job)
            self.assertGreaterEqual(job["outcome"]["memory_peak_kb"], 48 << 10, job)
            self.assertLess(job["outcome"]["memory_peak_kb"], 256 << 10, job)
        (job,) = big.values()
        for done in smalls:
            (job,) = done.values()
            self.assertLess(job["outcome"]["memory_peak_kb"], 40 << 10, job)

    @unittest.skipUnless(os.geteuid() == 0, "needs root (namespaces)")
    def test_program_under_tmp(self):
        """An exec task whose program lives in the host's /tmp runs: every
        job sees that directory, read-only, in its own /tmp - and nothing
        else of the host's /tmp. A config file in that directory is refused."""
        keep = tempfile.mkdtemp(prefix="valet-keep-", dir="/tmp")
        other = tempfile.mkdtemp(prefix="valet-other-", dir="/tmp")
        prog = os.path.join(keep, "prog.sh")
        try:
            with open(prog, "w") as f:
                f.write("#!/bin/sh\n"
                        "cat >/dev/null\n"
                        "touch %s/x 2>/dev/null && w=yes || w=no\n"
                        "printf '{\"tmp\": \"%%s\", \"writable\": \"%%s\"}\\n' "
                        "\"$(ls -A /tmp | tr '\\n' ' ')\" \"$w\"\n" % keep)
            os.chmod(prog, 0o755)
            os.chmod(keep, 0o755)
            d = Daemon({"task.prog": {"command": prog}})
            d.start()
            try:
                job = d.submit("prog")
                done = d.wait_all([job["id"]], timeout=20)[job["id"]]
                meta = d.result(job["id"]).get("metadata")
            finally:
                d.stop()
                d.cleanup()
            self.assertEqual(done["status"], "COMPLETED", done)
            # This checkout too, when it lives under /tmp: the harness's
            # exec tasks run scripts from it.
            here = os.path.abspath(__file__)
            expected = {os.path.basename(keep)}
            if here.startswith("/tmp/"):
                expected.add(here.split("/")[2])
            self.assertEqual(set(meta["tmp"].split()), expected, meta)
            self.assertEqual(meta["writable"], "no", meta)
            self.assertFalse(os.path.exists(os.path.join(keep, "x")))
            # The config file in the kept directory: refused at startup.
            conf = os.path.join(keep, "valetd.conf")
            with open(conf, "w") as f:
                f.write("[task.prog]\ncommand = %s\n" % prog)
            r = subprocess.run([VALETD, "-c", conf, "-l", "127.0.0.1:0"], capture_output=True,
                               text=True, timeout=20)
            self.assertEqual(r.returncode, 1, r)
            self.assertIn("keep the configuration in a directory of its own", r.stderr)
        finally:
            shutil.rmtree(keep, ignore_errors=True)
            shutil.rmtree(other, ignore_errors=True)

    @unittest.skipUnless(os.geteuid() == 0, "needs root (namespaces)")
    def test_jobs_share_no_network(self):
        """Two jobs running at the same time, in two slots: the first listens
        on an abstract AF_UNIX socket and reaches it itself (the positive
        control: the same network namespace connects); the second, started
        once the socket is up (seen in the first job's /proc/PID/net/unix)
        and ended while the first still holds it, cannot reach it. Nor can
        the host."""
        name = "valet-xjob-%d-%s" % (os.getpid(), new_uuid()[:8])
        gate = gate_dir()
        self.addCleanup(shutil.rmtree, gate, True)
        go = os.path.join(gate, "go")
        d = Daemon({"queue": {"workers": "2"}, "task.probe": PROBE_TASK})
        d.start()
        try:
            first = d.submit("probe", {"listen": name, "listen_until": go, "timeout": 30},
                             timeout=60)
            uid = d.wait_for(first["id"], "IN_PROGRESS", timeout=20)["isolation"]["uid"]

            def listening():
                for pid in procs_of(uid, "python3"):
                    try:
                        with open("/proc/%d/net/unix" % pid) as f:
                            if "@%s\n" % name in f.read():
                                return True
                    except OSError:
                        pass
                return False
            self.assertTrue(wait_until(listening, 20), "the first job never listened")
            second = d.submit("probe", {"abstract": [name]})
            done_second = d.wait_for(second["id"], timeout=20)
            meta_second = d.result(second["id"]).get("metadata")
            from_host = socket.socket(socket.AF_UNIX)
            host_errno = from_host.connect_ex(b"\0" + name.encode())
            from_host.close()
            self.assertEqual(d.job(first["id"])["status"], "IN_PROGRESS")
            with open(go, "w"):
                pass
            done_first = d.wait_for(first["id"], timeout=20)
            meta_first = d.result(first["id"]).get("metadata")
        finally:
            d.stop()
            d.cleanup()
        self.assertEqual(done_first["status"], "COMPLETED", done_first)
        self.assertEqual(meta_first, {"listen": {"self": "connected", "until": "seen"}})
        self.assertEqual(done_second["status"], "COMPLETED", done_second)
        self.assertNotEqual(done_second["isolation"]["uid"], uid)  # another slot
        self.assertEqual(meta_second, {"@" + name: "ECONNREFUSED"}, done_second)
        self.assertEqual(host_errno, errno.ECONNREFUSED)

    @unittest.skipUnless(os.geteuid() == 0, "needs root (namespaces)")
    def test_network_namespace_per_slot(self):
        """Every worker slot has one network namespace, made once and reused by
        each of its jobs: jobs of one slot (one uid) see the same namespace,
        jobs of two slots two different ones, each one the spawner holds
        open, none the host's nor the one the spawner is in. Two jobs at a time, six rounds: the slots
        come round."""
        d = Daemon({"queue": {"workers": "2"}, "task.probe": PROBE_TASK})
        d.start()
        seen = []
        try:
            for _ in range(6):
                ids = [d.submit("probe", {"whoami": True})["id"] for _ in range(2)]
                done = d.wait_all(ids, timeout=20)
                for i in ids:
                    self.assertEqual(done[i]["status"], "COMPLETED", done[i])
                    who = d.result(i)["metadata"]["whoami"]
                    self.assertEqual(who["uid"], done[i]["isolation"]["uid"], done[i])
                    seen.append((who["uid"], who["ns"]["net"]))
            spawner = spawner_of(d)
            held = held_netns(spawner)
            own = ns_of(spawner)["net"]
            host = ns_of(d.proc.pid)["net"]
        finally:
            d.stop()
            d.cleanup()
        by_slot = {}
        for uid, net in seen:
            by_slot.setdefault(uid, set()).add(net)
        self.assertGreaterEqual(len(by_slot), 2, seen)
        self.assertGreater(len(seen), len(by_slot), seen)  # some slot ran twice
        for uid, nets in by_slot.items():
            self.assertEqual(len(nets), 1, (uid, seen))
        nets = [n for ns in by_slot.values() for n in ns]
        self.assertEqual(len(set(nets)), len(nets), by_slot)
        self.assertLessEqual(set(nets), held, (by_slot, held))
        self.assertNotIn(host, nets)
        self.assertNotIn(own, nets)  # the spawner's own is none of them
        self.assertNotEqual(own, host)

    @unittest.skipUnless(os.geteuid() == 0, "needs root (users)")
    def test_seccomp_only_is_recorded(self):
        """Neither namespaces nor cgroups; uid_base 0: every task as [sandbox]
        user. The jobs COMPLETED, and the record is what they got: an exec
        task still gets a PID namespace of its own (the program is its pid
        1, so a setsid() orphan it leaves dies with it), and nothing else:
        valetd's mount, IPC, UTS and network namespaces and host name."""
        d = Daemon({"sandbox": {"namespaces": "false", "cgroups": "false", "uid_base": "0"},
                    "task.probe": PROBE_TASK})
        marker = marker_pattern(d.markers["exec_orphan"])
        d.start()
        try:
            host = ns_of(d.proc.pid)
            jobs = [d.submit(t, p) for t, p in (("dummytask", None), ("probe", {"whoami": True}),
                                                ("exec_orphan", None))]
            done = d.wait_all([j["id"] for j in jobs], timeout=20)
            inside = d.result(jobs[1]["id"])["metadata"]["whoami"]
            orphans = wait_until(lambda: not pgrep(marker), 3) or pgrep(marker)
        finally:
            for pid in pgrep(marker):
                os.kill(pid, 9)
            d.stop()
            d.cleanup()
        c, x, orphan = (done[j["id"]] for j in jobs)
        for job in (c, x, orphan):
            self.assertEqual(job["status"], "COMPLETED", job)
        self.assertIsNone(c["outcome"]["memory_peak_kb"], c)  # no cgroup
        self.assertEqual(c["isolation"], {"namespaces": [], "cgroup": None, "uid": 65534,
                                          "profile": "strict", "network": "host",
                                          "degraded": False})
        self.assertEqual(x["isolation"], dict(c["isolation"], profile="exec"))
        self.assertEqual((inside["uid"], inside["pid"]), (65534, 1), inside)
        self.assertNotEqual(inside["ns"]["pid"], host["pid"], inside)
        for name in ("mnt", "ipc", "uts", "net"):
            self.assertEqual(inside["ns"][name], host[name], (name, inside))
        self.assertEqual(inside["nodename"], os.uname().nodename, inside)
        self.assertIs(orphans, True, "the exec task's setsid() orphan outlived it: %s" % orphans)

    @unittest.skipIf(ASAN, "asan: no RLIMIT_AS under ASan")
    @unittest.skipUnless(os.geteuid() == 0, "needs root (cgroups)")
    def test_address_space_limit(self):
        """With a memory cgroup, RLIMIT_AS is 4 x the memory limit (a backstop:
        runtimes reserve address space they never touch); without cgroups it
        is the limit itself, seen from inside the job."""
        got = {}
        for cgroups in ("true", "false"):
            d = Daemon({"sandbox": {"memory_limit": "64M", "cgroups": cgroups},
                        "task.probe": PROBE_TASK})
            d.start()
            try:
                job = d.submit("probe", {"limits": True})
                done = d.wait_all([job["id"]], timeout=20)[job["id"]]
                self.assertEqual(done["status"], "COMPLETED", done)
                self.assertEqual(done["isolation"]["cgroup"] is not None, cgroups == "true",
                                 done)
                got[cgroups] = d.result(job["id"])["metadata"]["limits"]["Max address space"]
            finally:
                d.stop()
                d.cleanup()
        self.assertEqual(got, {"true": [4 * (64 << 20)] * 2, "false": [64 << 20] * 2})

    @unittest.skipIf(ASAN, "asan: no RLIMIT_AS under ASan")
    @unittest.skipUnless(os.geteuid() == 0, "needs root (users)")
    def test_memory_without_cgroups(self):
        """Without cgroups the memory limit is RLIMIT_AS alone: a task that
        touches page after page gets ENOMEM from mmap before the limit, and
        its job is not an OOM kill (there is no cgroup to report one)."""
        d = Daemon({"sandbox": {"memory_limit": "64M", "cgroups": "false"},
                    "task.membomb": {"command": HOSTILE_EXEC + " membomb"}})
        d.start()
        try:
            job = d.submit("membomb", timeout=20)
            done = d.wait_all([job["id"]], timeout=30)[job["id"]]
        finally:
            d.stop()
            d.cleanup()
        self.assertEqual(done["status"], "FAILED", done)
        m = re.match(r"^exited with status 4: mmap failed after (\d+) MiB: ENOMEM$",
                     done["failure_reason"])
        self.assertIsNotNone(m, done)
        self.assertLess(int(m.group(1)), 64, done)
        self.assertIs(done["outcome"]["oom_killed"], False, done)
        self.assertIsNone(done["outcome"]["memory_peak_kb"], done)
        self.assertIsNone(done["isolation"]["cgroup"], done)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to start valetd as nobody")
    def test_refuses_to_start_without_isolation(self):
        """As nobody, valetd can neither switch users nor make namespaces or
        cgroups: it refuses to start and says why."""
        d = Daemon(user="nobody")
        with self.assertRaises(AssertionError) as cm:
            d.start()
        d.cleanup()
        self.assertIn("exited with status 1", str(cm.exception))
        self.assertIn("isolation configured in [sandbox] is not available here: cannot "
                      "switch users", str(cm.exception))
        self.assertIn("set allow_degraded_isolation = true", str(cm.exception))

    @unittest.skipUnless(os.geteuid() == 0, "needs root to start valetd as nobody")
    def test_degraded_isolation_is_recorded(self):
        """Degraded, loudly: valetd starts, logs a warning that says what is
        missing, and the job COMPLETED saying "degraded": true."""
        d = Daemon({"sandbox": {"allow_degraded_isolation": "true"}}, user="nobody")
        done, log = self.run_one(d, "dummytask")
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertEqual(done["isolation"], {"namespaces": [], "cgroup": None, "uid": None,
                                             "profile": "strict", "network": "host",
                                             "degraded": True})
        self.assertRegex(log, r"WARN degraded isolation \(allow_degraded_isolation = true\) "
                              r"missing=.*cannot switch users.*no pid, mount, ipc, uts and "
                              r"network namespaces.*no cgroup")


if __name__ == "__main__":
    unittest.main()
