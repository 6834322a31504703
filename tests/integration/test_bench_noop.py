"""valetd --bench-noop: the queue engine alone, for `make bench`.

With the flag, every job completes in the daemon with the fixed result
{"bench_noop": true} and no process: a C task that would fail, one that
would sleep 30 s and an exec task all complete at once, through the same
lifecycle (IN_PROGRESS with started_at, then COMPLETED with completed_at and
the result stored; with VALET_TEST_STORE=postgres, the row and the results
row in the database), with no "outcome" (no child) and no isolation record;
a pipeline of C and exec tasks completes job by job; and the spawner has no
child at any time - not a warm one, not a job's (its process tree is
sampled all through the run). Without the flag, the same daemon runs them:
the failing task fails, the spawner keeps its warm children, jobs have an
outcome. The flag is the command line's only: no configuration key turns
it on.
"""

import json
import subprocess
import threading
import time
import unittest

from valetd import VALETD, Daemon, descendants, parse_ts, spawner_of, test_store

RESULT = {"bench_noop": True}


class Sampler(threading.Thread):
    """Reads the spawner's process tree every few ms until stopped; keeps
    every process seen below it."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.seen, self.rounds = pid, {}, 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            self.seen.update(descendants(self.pid))
            self.rounds += 1
            time.sleep(0.002)

    def stop(self):
        self.stopping.set()
        self.join(10)


class BenchNoopTest(unittest.TestCase):
    args = ["--bench-noop"]

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon({"queue": {"workers": "2"}}, args=cls.args)
        try:
            cls.d.start()
            cls.spawner = spawner_of(cls.d)
        except BaseException:
            cls.d.kill()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()

    def workload(self):
        """Submits jobs that a real run would fail, make wait or run as a
        program; returns their ids."""
        d = self.d
        ids = [d.submit("failtask", {"message": "boom"})["id"],
               d.submit("sleep", {"seconds": 30}, timeout=60)["id"],
               d.submit("exec_ok")["id"]]
        ids += [d.submit("dummytask", {"i": i})["id"] for i in range(40)]
        return ids

    def test_jobs_complete_without_a_child(self):
        d = self.d
        sampler = Sampler(self.spawner)
        sampler.start()
        try:
            t0 = time.monotonic()
            ids = self.workload()
            jobs = d.wait_all(ids, timeout=20)
            took = time.monotonic() - t0
        finally:
            sampler.stop()
        self.assertGreater(sampler.rounds, 0)
        self.assertEqual(sampler.seen, {}, "the spawner forked under --bench-noop")
        self.assertEqual(descendants(self.spawner), {})
        self.assertLess(took, 15, "a 30 s sleep job ran")
        for jid, job in jobs.items():
            self.assertEqual(job["status"], "COMPLETED", job)
            self.assertNotIn("failure_reason", job)
            self.assertLessEqual(parse_ts(job["created_at"]), parse_ts(job["started_at"]), job)
            self.assertLessEqual(parse_ts(job["started_at"]), parse_ts(job["completed_at"]), job)
            self.assertNotIn("outcome", job)  # no child, no pid
            self.assertNotIn("isolation", job)  # nothing was isolated
            self.assertEqual(d.result(jid), {"job_id": jid, "metadata": RESULT})
        if test_store() == "postgres":
            rows = d.sql("SELECT j.status, j.started_at IS NOT NULL, j.completed_at IS NOT NULL,"
                         " j.pid, r.metadata FROM jobs j JOIN results r ON r.job_id = j.id"
                         " WHERE j.id = ANY(string_to_array(:'ids', ',')::uuid[])",
                         ids=",".join(ids))
            self.assertEqual(len(rows), len(ids))
            for status, started, completed, pid, meta in rows:
                self.assertEqual((status, started, completed, pid), ("COMPLETED", "t", "t", None))
                self.assertEqual(json.loads(meta), RESULT)

    def test_a_pipeline_completes_job_by_job(self):
        d = self.d
        pl = d.submit_pipeline([
            {"name": "a", "task_name": "failtask"},
            {"name": "b", "task_name": "echoprev", "use_previous_results": True},
            {"name": "c", "task_name": "exec_error"},
            {"name": "e", "task_name": "dummytask"},
        ])
        done = d.wait_pipeline(pl["id"], timeout=20)
        self.assertEqual(done["status"], "COMPLETED", done)
        for job in pl["jobs"]:
            got = d.job(job["id"])
            self.assertEqual(got["status"], "COMPLETED", got)
            self.assertIn("started_at", got)
            self.assertEqual(d.result(job["id"])["metadata"], RESULT)
        self.assertEqual(descendants(self.spawner), {})

    def test_the_log_says_so(self):
        self.assertIn("--bench-noop", self.d.log_text())


class WithoutTheFlagTest(BenchNoopTest):
    """The control: the same daemon without --bench-noop runs its jobs."""
    args = []

    def test_jobs_complete_without_a_child(self):
        d = self.d
        ids = self.workload()
        fail, sleep = ids[0], ids[1]
        jobs = d.wait_all([i for i in ids if i != sleep], timeout=60)
        self.assertEqual(jobs[fail]["status"], "FAILED", jobs[fail])
        # Runs, and does not end: its start may be written a moment after
        # the other jobs ended (on this VM 40 jobs take a few ms).
        self.assertEqual(d.wait_for(sleep, "IN_PROGRESS", timeout=10)["status"], "IN_PROGRESS")
        self.assertIn("outcome", jobs[ids[2]])
        self.assertEqual(d.result(ids[3])["metadata"], {"i": 0})
        self.assertNotEqual(descendants(self.spawner), {})
        d.post("/api/jobs/%s/cancel" % sleep)

    def test_a_pipeline_completes_job_by_job(self):
        d = self.d
        pl = d.submit_pipeline([{"name": "a", "task_name": "failtask"},
                                {"name": "e", "task_name": "dummytask"}])
        self.assertEqual(d.wait_pipeline(pl["id"], timeout=30)["status"], "FAILED")

    def test_the_log_says_so(self):
        self.assertNotIn("--bench-noop", self.d.log_text())


class NotAConfigKeyTest(unittest.TestCase):
    def test_no_key_turns_it_on(self):
        """bench_noop in any section is an unknown key: the file is refused."""
        for section in ("queue", "jobs", "sandbox", "server"):
            d = Daemon(config_text="[%s]\nbench_noop = true\n" % section)
            try:
                d.write_config()
                r = subprocess.run([VALETD, "-t", "-c", d.conf_path], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, timeout=30)
                self.assertEqual(r.returncode, 2, r.stdout)
                self.assertIn("bench_noop", r.stdout)
            finally:
                d.cleanup()


if __name__ == "__main__":
    unittest.main()
