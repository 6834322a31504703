"""The HTTP contract of API.md, endpoint by endpoint, against the real valetd.

Every request goes over real HTTP to a daemon started for the test class.
Jobs that must stay put while a test looks at them are scheduled an hour
ahead (run_at), so their status cannot change under the test; tests delete
what they create when it could disturb the list tests.
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

from valetd import (ASAN, DEMO_TASKS, EXEC_TASKS, FINAL, HOSTILE_EXEC, HOSTILE_TASKS, REPO,
                    STRICT_TS_RE, UUID4_RE, VALETD, Daemon, DaemonTestCase, below, fmt_ts,
                    marker_pattern, new_uuid, parse_ts, pgrep, proc_table, spawner_of)

JOB_KEYS = {"id", "name", "description", "task_name", "task_params", "timeout", "status",
            "failure_reason", "run_at", "scheduled_at", "created_at", "started_at",
            "completed_at", "duration", "pipeline_id", "next_job_id", "use_previous_results",
            "outcome"}
PIPELINE_KEYS = {"id", "name", "description", "status", "failure_reason", "run_at",
                 "created_at", "started_at", "completed_at", "duration"}
FAR = 3600.0  # run_at this far ahead keeps a job waiting for the whole test


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


def later(seconds=FAR):
    return fmt_ts(time.time() + seconds)


class ApiTest(DaemonTestCase):
    config = {"server": {"max_body": "64k", "access_log": "true"}, "queue": {"workers": "2"}}

    # --- helpers ----------------------------------------------------------
    def scheduled_job(self, **extra):
        body = {"name": "parked", "task_name": "dummytask", "run_at": later()}
        body.update(extra)
        r = self.d.post("/api/jobs", body)
        self.assertEqual(r.status, 202, r)
        job = r.json
        self.addCleanup(self.d.delete, "/api/jobs/" + job["id"])
        return job

    def scheduled_pipeline(self, njobs=2, **extra):
        jobs = [{"name": "j%d" % i, "task_name": "dummytask"} for i in range(njobs)]
        body = {"name": "parked-pipeline", "run_at": later(), "jobs": jobs}
        body.update(extra)
        r = self.d.post("/api/pipelines", body)
        self.assertEqual(r.status, 202, r)
        pl = r.json
        self.addCleanup(self.d.delete, "/api/pipelines/" + pl["id"])
        return pl

    def completed_job(self, params=None):
        job = self.d.submit("dummytask", params)
        return self.d.wait_for(job["id"], "COMPLETED")

    def list_ids(self, path):
        r = self.d.get(path)
        self.assertEqual(r.status, 200, r)
        key = "pipelines" if path.startswith("/api/pipelines") else "jobs"
        self.assertEqual(set(r.json), {key}, r)
        return [x["id"] for x in r.json[key]]

    # --- startup and status -----------------------------------------------
    def test_startup_log_line(self):
        self.assertIn("listening on http://127.0.0.1:%d" % self.d.port, self.d.log_text())

    def test_status(self):
        r = self.d.get("/api/status")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("content-type").startswith("application/json"), r)
        body = r.json
        self.assertEqual(set(body), {"job_queue_healthy", "storage_healthy", "time", "version"})
        self.assertIs(body["job_queue_healthy"], True)
        self.assertIs(body["storage_healthy"], True)
        self.assertIsInstance(body["version"], str)
        self.assertNotEqual(body["version"], "")
        self.assertRegex(body["time"], STRICT_TS_RE)
        self.assertLess(abs(parse_ts(body["time"]) - time.time()), 5.0, body)

    def test_tasks_sorted_and_complete(self):
        r = self.d.get("/api/tasks")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"tasks"})
        tasks = r.json["tasks"]
        self.assertEqual(tasks, sorted(tasks))
        self.assertEqual(len(tasks), len(set(tasks)), tasks)
        for name in DEMO_TASKS + HOSTILE_TASKS + list(EXEC_TASKS):
            self.assertIn(name, tasks)
        # Nothing else but the demo plugin's five tasks.
        others = [t for t in tasks if not t.startswith(("hostile_", "exec_"))]
        self.assertEqual(others, DEMO_TASKS)

    # --- POST /api/jobs -----------------------------------------------------
    def test_post_job(self):
        body = {"name": "job_name", "description": "some description",
                "task_name": "dummytask", "task_params": {"url": "some-url.com", "n": 3},
                "timeout": 7}
        before = time.time()
        r = self.d.post("/api/jobs", body)
        self.assertEqual(r.status, 202, r)
        self.assertTrue(r.header("content-type").startswith("application/json"), r)
        job = r.json
        self.assertEqual(set(job), {"id", "name", "description", "task_name", "task_params",
                                    "timeout", "status", "created_at"}, job)
        self.assertRegex(job["id"], UUID4_RE)
        self.assertEqual(job["name"], "job_name")
        self.assertEqual(job["description"], "some description")
        self.assertEqual(job["task_name"], "dummytask")
        self.assertEqual(job["task_params"], {"url": "some-url.com", "n": 3})
        self.assertEqual(job["timeout"], 7)
        self.assertEqual(job["status"], "PENDING")
        self.assertRegex(job["created_at"], STRICT_TS_RE)
        self.assertLess(abs(parse_ts(job["created_at"]) - before), 2.0)
        self.assertJob(job)
        got = self.d.job(job["id"])
        for k in ("id", "name", "description", "task_name", "task_params", "timeout",
                  "created_at"):
            self.assertEqual(got[k], job[k], got)
        done = self.d.wait_for(job["id"])
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertJob(done)

    def test_post_job_minimal(self):
        job = self.d.submit("dummytask", name="minimal")
        self.assertNotIn("description", job)
        self.assertNotIn("task_params", job)
        self.assertNotIn("run_at", job)
        self.assertNotIn("pipeline_id", job)
        self.assertNotIn("use_previous_results", job)
        self.assertEqual(job["status"], "PENDING")
        self.assertJob(job)

    def test_post_job_ids_unique(self):
        ids = [self.d.submit("dummytask")["id"] for _ in range(10)]
        self.assertEqual(len(set(ids)), 10, ids)
        for i in ids:
            self.assertRegex(i, UUID4_RE)
        self.d.wait_all(ids, "COMPLETED")

    def test_post_job_body_just_under_max_body(self):
        # max_body is 64k in this class: a 60 000-byte body is accepted.
        data = "x" * 60000
        job = self.d.submit("dummytask", {"data": data})
        self.assertEqual(job["task_params"], {"data": data})
        done = self.d.wait_for(job["id"], "COMPLETED")
        self.assertEqual(self.d.result(done["id"])["metadata"], {"data": data})

    def test_run_at_is_normalised_to_utc(self):
        job = self.scheduled_job(run_at="2030-01-01T10:00:00.5+02:00")
        self.assertEqual(job["run_at"], "2030-01-01T08:00:00.5Z")
        self.assertEqual(self.d.job(job["id"])["run_at"], "2030-01-01T08:00:00.5Z")
        job = self.scheduled_job(run_at="2030-01-01T10:00:00.000Z")
        self.assertEqual(job["run_at"], "2030-01-01T10:00:00Z")
        job = self.scheduled_job(run_at="2030-01-01T10:00:00.123456789Z")
        self.assertRegex(job["run_at"], r"^2030-01-01T10:00:00\.12345(6|7|6789)Z$")

    def test_scheduled_job_waits(self):
        job = self.scheduled_job()
        self.assertIn(job["status"], ("PENDING", "SCHEDULED"))
        self.assertIn("run_at", job)
        got = self.d.job(job["id"])
        self.assertIn(got["status"], ("PENDING", "SCHEDULED"))
        self.assertJob(got)

    # --- GET /api/jobs/:id and unknown ids ----------------------------------
    def test_unknown_job_ids(self):
        for jid in (new_uuid(), "not-a-uuid", "12345"):
            with self.subTest(id=jid):
                self.assertError(self.d.get("/api/jobs/" + jid), 404,
                                 "job with ID: %s not found" % jid)
                self.assertError(self.d.patch("/api/jobs/" + jid, {"name": "x"}), 404,
                                 "job with ID: %s not found" % jid)
                self.assertError(self.d.delete("/api/jobs/" + jid), 404,
                                 "job with ID: %s not found" % jid)
                self.assertError(self.d.get("/api/jobs/%s/results" % jid), 404,
                                 "job result with ID: %s not found" % jid)
                self.assertError(self.d.delete("/api/jobs/%s/results" % jid), 404,
                                 "job result with ID: %s not found" % jid)
                self.assertError(self.d.post("/api/jobs/%s/cancel" % jid), 404,
                                 "job with ID: %s not found" % jid)

    def test_unknown_pipeline_ids(self):
        for pid in (new_uuid(), "not-a-uuid"):
            with self.subTest(id=pid):
                msg = "pipeline with ID: %s not found" % pid
                self.assertError(self.d.get("/api/pipelines/" + pid), 404, msg)
                self.assertError(self.d.patch("/api/pipelines/" + pid, {"name": "x"}), 404,
                                 msg)
                self.assertError(self.d.delete("/api/pipelines/" + pid), 404, msg)
                self.assertError(self.d.get("/api/pipelines/%s/jobs" % pid), 404, msg)
                self.assertError(self.d.post("/api/pipelines/%s/cancel" % pid), 404, msg)

    # --- GET /api/jobs ------------------------------------------------------
    def test_list_jobs_and_filters(self):
        done = self.completed_job({"list": 1})
        failed = self.d.submit("failtask", {"message": "listed failure"})
        failed = self.d.wait_for(failed["id"], "FAILED")
        parked = self.scheduled_job()

        r = self.d.get("/api/jobs")
        self.assertEqual(r.status, 200, r)
        jobs = r.json["jobs"]
        ids = [j["id"] for j in jobs]
        for j in jobs:
            self.assertJob(j)
        # Oldest first.
        created = [parse_ts(j["created_at"]) for j in jobs]
        self.assertEqual(created, sorted(created))
        self.assertLess(ids.index(done["id"]), ids.index(failed["id"]))
        self.assertLess(ids.index(failed["id"]), ids.index(parked["id"]))
        self.assertEqual(self.list_ids("/api/jobs?status="), ids)

        for spelling in ("completed", "COMPLETED", "Completed"):
            r = self.d.get("/api/jobs?status=" + spelling)
            self.assertEqual(r.status, 200, r)
            self.assertTrue(all(j["status"] == "COMPLETED" for j in r.json["jobs"]), r)
            self.assertIn(done["id"], [j["id"] for j in r.json["jobs"]])
            self.assertNotIn(failed["id"], [j["id"] for j in r.json["jobs"]])
        r = self.d.get("/api/jobs?status=failed")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([j["status"] for j in r.json["jobs"]],
                         ["FAILED"] * len(r.json["jobs"]))
        self.assertIn(failed["id"], [j["id"] for j in r.json["jobs"]])
        status = self.d.job(parked["id"])["status"]
        for s in ("pending", "scheduled", "in_progress", "cancelled"):
            r = self.d.get("/api/jobs?status=" + s)
            self.assertEqual(r.status, 200, r)
            self.assertTrue(all(j["status"] == s.upper() for j in r.json["jobs"]), r)
            self.assertEqual(parked["id"] in [j["id"] for j in r.json["jobs"]],
                             s.upper() == status, (s, status))

    def test_list_invalid_status(self):
        for path in ("/api/jobs", "/api/pipelines"):
            self.assertError(self.d.get(path + "?status=not_started"), 400,
                             'invalid status: "NOT_STARTED"')
            self.assertError(self.d.get(path + "?status=Bogus"), 400,
                             'invalid status: "BOGUS"')

    def test_list_limit_offset(self):
        for _ in range(4):
            self.scheduled_job()
        full = self.list_ids("/api/jobs")
        self.assertGreaterEqual(len(full), 4)
        self.assertEqual(self.list_ids("/api/jobs?limit=2"), full[:2])
        self.assertEqual(self.list_ids("/api/jobs?limit=2&offset=1"), full[1:3])
        self.assertEqual(self.list_ids("/api/jobs?offset=%d" % (len(full) - 1)), full[-1:])
        self.assertEqual(self.list_ids("/api/jobs?offset=%d" % len(full)), [])
        self.assertEqual(self.list_ids("/api/jobs?offset=%d&limit=3" % (len(full) + 5)), [])
        self.assertEqual(self.list_ids("/api/jobs?limit=%d" % (len(full) + 10)), full)
        # With a status filter, the window applies to the filtered list.
        status = self.d.job(full[-1])["status"].lower()
        parked = self.list_ids("/api/jobs?status=" + status)
        self.assertGreaterEqual(len(parked), 4)
        self.assertEqual(self.list_ids("/api/jobs?status=%s&limit=2&offset=1" % status),
                         parked[1:3])

    def test_list_counts_out_of_range(self):
        # Issue 13: a size_t cast to PostgreSQL's bigint became a negative
        # OFFSET (500 there, a 200 from the memory store). Both stores now
        # take 0 to 2^63-1, and anything else is a 400 that names it.
        self.scheduled_job()
        self.scheduled_pipeline()
        big = 2 ** 63 - 1
        for path in ("/api/jobs", "/api/pipelines"):
            for key in ("limit", "offset"):
                for bad in (str(big + 1), "18446744073709551615", "18446744073709551616",
                            "99999999999999999999999", "-1", "1.5", "1e3", "0x10"):
                    with self.subTest(path=path, key=key, value=bad):
                        self.assertError(self.d.get("%s?%s=%s" % (path, key, bad)), 400,
                                         'invalid %s: "%s" (an integer from 0 to %d)'
                                         % (key, bad, big))
            full = self.list_ids(path)
            self.assertGreaterEqual(len(full), 1)
            self.assertEqual(self.list_ids("%s?offset=%d" % (path, big)), [])
            self.assertEqual(self.list_ids("%s?limit=%d" % (path, big)), full)
            self.assertEqual(self.list_ids("%s?limit=%d&offset=%d" % (path, big, big)), [])
            self.assertEqual(self.list_ids("%s?offset=%s" % (path, "0" * 30 + "1")), full[1:])

    def test_run_at_edges(self):
        # The first and the last instant valet takes (ApiValidationTest.
        # test_run_at_out_of_range refuses the next ones): the store gives
        # back exactly what was sent, whichever store it is.
        for edge, utc in (("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
                          ("9999-12-31T22:59:59.5-01:00", "9999-12-31T23:59:59.5Z"),
                          ("0001-01-01T00:00:00.000001Z", "0001-01-01T00:00:00.000001Z"),
                          ("0001-01-01T01:00:00+01:00", "0001-01-01T00:00:00Z")):
            with self.subTest(run_at=edge):
                job = self.scheduled_job(run_at=edge)
                self.assertEqual(job["run_at"], utc, job)
                self.assertEqual(self.d.job(job["id"])["run_at"], utc)
                pl = self.scheduled_pipeline(run_at=edge)
                self.assertEqual(pl["run_at"], utc, pl)
                self.assertEqual(self.d.pipeline(pl["id"])["run_at"], utc)

    def test_task_params_large_numbers_kept(self):
        # Just below 2^63 (ApiValidationTest refuses more): whichever the
        # store, the params and the result come back as the same numbers.
        params = {"a": 9.2e18, "b": -9223372036854775808, "c": 1e-300, "d": 0.1}
        job = self.d.submit("dummytask", params)
        self.assertEqual(job["task_params"], params)
        done = self.d.wait_for(job["id"], "COMPLETED")
        self.assertEqual(done["task_params"], params)
        self.assertEqual(self.d.result(job["id"])["metadata"], params)

    def test_pipeline_job_null_run_at(self):
        # null is an absent field, as everywhere in a POST body.
        ok = {"name": "a", "task_name": "dummytask"}
        pl = self.scheduled_pipeline(jobs=[dict(ok, run_at=None), ok])
        self.assertIn("run_at", pl)

    def test_list_pipelines_limit_offset(self):
        for _ in range(3):
            self.scheduled_pipeline()
        full = self.list_ids("/api/pipelines")
        self.assertGreaterEqual(len(full), 3)
        self.assertEqual(self.list_ids("/api/pipelines?limit=1&offset=1"), full[1:2])
        self.assertEqual(self.list_ids("/api/pipelines?offset=%d" % len(full)), [])

    # --- PATCH /api/jobs/:id --------------------------------------------------
    def test_patch_job(self):
        job = self.scheduled_job(name="orig", description="d0")
        path = "/api/jobs/" + job["id"]
        self.assertNoBody(self.d.patch(path, {"description": "d1"}))
        got = self.d.job(job["id"])
        self.assertEqual((got["name"], got["description"]), ("orig", "d1"))
        self.assertNoBody(self.d.patch(path, {"name": "renamed"}))
        got = self.d.job(job["id"])
        self.assertEqual((got["name"], got["description"]), ("renamed", "d1"))
        self.assertNoBody(self.d.patch(path, {}))
        got = self.d.job(job["id"])
        self.assertEqual((got["name"], got["description"]), ("renamed", "d1"))
        self.assertNoBody(self.d.patch(path, {"name": "both", "description": "d2"}))
        got = self.d.job(job["id"])
        self.assertEqual((got["name"], got["description"]), ("both", "d2"))
        # Nothing else changes.
        for k in ("id", "task_name", "created_at", "run_at"):
            self.assertEqual(got[k], job[k])

    def test_patch_job_bad_requests(self):
        job = self.scheduled_job(name="keep", description="keep-d")
        path = "/api/jobs/" + job["id"]
        self.assertError(self.d.patch(path, {"name": ""}), 400)
        self.assertError(self.d.patch(path, {"name": 5}), 400)
        self.assertError(self.d.patch(path, {"description": 5}), 400)
        self.assertError(self.d.patch(path, {"name": None, "description": "x"}), 400)
        self.assertError(self.d.patch(path, raw=b'{"name":'), 400)
        self.assertError(self.d.patch(path, raw=b"null"), 400)
        self.assertError(self.d.patch(path, raw=b"[]"), 400)
        got = self.d.job(job["id"])
        self.assertEqual((got["name"], got["description"]), ("keep", "keep-d"))

    # --- DELETE /api/jobs/:id -----------------------------------------------
    def test_delete_job(self):
        job = self.completed_job({"del": True})
        path = "/api/jobs/" + job["id"]
        self.assertNoBody(self.d.delete(path))
        self.assertError(self.d.get(path), 404, "job with ID: %s not found" % job["id"])
        self.assertError(self.d.delete(path), 404, "job with ID: %s not found" % job["id"])
        self.assertError(self.d.get(path + "/results"), 404,
                         "job result with ID: %s not found" % job["id"])
        self.assertNotIn(job["id"], self.list_ids("/api/jobs"))

    def test_delete_scheduled_job(self):
        job = self.scheduled_job()
        self.assertNoBody(self.d.delete("/api/jobs/" + job["id"]))
        self.assertError(self.d.get("/api/jobs/" + job["id"]), 404)
        self.assertNotIn(job["id"], self.list_ids("/api/jobs"))

    def test_delete_pipeline_job_conflict(self):
        pl = self.scheduled_pipeline()
        jid = pl["jobs"][1]["id"]
        self.assertError(self.d.delete("/api/jobs/" + jid), 409,
                         "job with ID: %s can not be deleted because it belongs to a pipeline"
                         " - try to delete the pipeline instead" % jid)
        self.assertEqual(self.d.job(jid)["id"], jid)

    # --- results ------------------------------------------------------------
    def test_results(self):
        job = self.completed_job({"k": "v", "n": [1, 2]})
        path = "/api/jobs/%s/results" % job["id"]
        r = self.d.get(path)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("content-type").startswith("application/json"), r)
        self.assertEqual(r.json, {"job_id": job["id"], "metadata": {"k": "v", "n": [1, 2]}})
        self.assertNoBody(self.d.delete(path))
        msg = "job result with ID: %s not found" % job["id"]
        self.assertError(self.d.get(path), 404, msg)
        self.assertError(self.d.delete(path), 404, msg)
        # The job itself stays.
        self.assertEqual(self.d.job(job["id"])["status"], "COMPLETED")

    def test_results_before_completion(self):
        job = self.scheduled_job()
        self.assertError(self.d.get("/api/jobs/%s/results" % job["id"]), 404,
                         "job result with ID: %s not found" % job["id"])
        self.assertError(self.d.delete("/api/jobs/%s/results" % job["id"]), 404,
                         "job result with ID: %s not found" % job["id"])

    def test_finished_job_has_result_at_once(self):
        # The result is stored with the final status: no window in which a
        # COMPLETED job answers 404 on /results.
        for _ in range(5):
            job = self.completed_job({"atomic": True})
            r = self.d.get("/api/jobs/%s/results" % job["id"])
            self.assertEqual(r.status, 200, r)

    # --- pipelines ----------------------------------------------------------
    def test_post_pipeline(self):
        body = {"name": "pl", "description": "pd", "jobs": [
            {"name": "a", "task_name": "dummytask", "task_params": {"i": 0}, "timeout": 5},
            {"name": "b", "task_name": "echoprev", "use_previous_results": True},
            {"name": "c", "description": "third", "task_name": "dummytask",
             "use_previous_results": False, "task_params": {"i": 2}},
        ]}
        r = self.d.post("/api/pipelines", body)
        self.assertEqual(r.status, 202, r)
        pl = r.json
        self.assertEqual(set(pl), {"id", "name", "description", "status", "created_at",
                                   "jobs"}, pl)
        self.assertRegex(pl["id"], UUID4_RE)
        self.assertEqual((pl["name"], pl["description"], pl["status"]), ("pl", "pd", "PENDING"))
        self.assertRegex(pl["created_at"], STRICT_TS_RE)
        jobs = pl["jobs"]
        self.assertEqual([j["name"] for j in jobs], ["a", "b", "c"])
        self.assertEqual(len({j["id"] for j in jobs}), 3)
        for i, j in enumerate(jobs):
            self.assertJob(j)
            self.assertLessEqual(set(j), JOB_KEYS, j)
            self.assertEqual(j["pipeline_id"], pl["id"])
            self.assertEqual(j["status"], "PENDING")
            self.assertNotIn("run_at", j)
            if i < 2:
                self.assertEqual(j["next_job_id"], jobs[i + 1]["id"])
            else:
                self.assertNotIn("next_job_id", j)
        self.assertNotIn("use_previous_results", jobs[0])
        self.assertIs(jobs[1]["use_previous_results"], True)
        self.assertNotIn("use_previous_results", jobs[2])
        self.assertEqual(jobs[0]["timeout"], 5)
        self.assertEqual(jobs[0]["task_params"], {"i": 0})
        self.assertEqual(jobs[2]["description"], "third")

        done = self.d.wait_pipeline(pl["id"])
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertNotIn("jobs", done)
        self.assertLessEqual(set(done), PIPELINE_KEYS, done)
        self.assertIs(type(done["duration"]), int)
        for k in ("created_at", "started_at", "completed_at"):
            self.assertRegex(done[k], STRICT_TS_RE)
        r = self.d.get("/api/pipelines/%s/jobs" % pl["id"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"jobs"})
        listed = r.json["jobs"]
        self.assertEqual([j["id"] for j in listed], [j["id"] for j in jobs])
        for j in listed:
            self.assertEqual(j["status"], "COMPLETED", j)
            self.assertJob(j)

    def test_get_and_list_pipelines(self):
        pl = self.scheduled_pipeline(description="listed")
        got = self.d.pipeline(pl["id"])
        self.assertNotIn("jobs", got)
        self.assertLessEqual(set(got), PIPELINE_KEYS, got)
        for k in ("id", "name", "description", "created_at", "run_at"):
            self.assertEqual(got[k], pl[k])
        self.assertEqual(got["status"], "PENDING")
        r = self.d.get("/api/pipelines")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"pipelines"})
        for p in r.json["pipelines"]:
            self.assertNotIn("jobs", p)
        self.assertIn(pl["id"], [p["id"] for p in r.json["pipelines"]])
        created = [parse_ts(p["created_at"]) for p in r.json["pipelines"]]
        self.assertEqual(created, sorted(created))
        for s in ("PENDING", "pending"):
            r = self.d.get("/api/pipelines?status=" + s)
            self.assertEqual(r.status, 200, r)
            self.assertIn(pl["id"], [p["id"] for p in r.json["pipelines"]])
            self.assertTrue(all(p["status"] == "PENDING" for p in r.json["pipelines"]))
        r = self.d.get("/api/pipelines?status=completed")
        self.assertEqual(r.status, 200, r)
        self.assertNotIn(pl["id"], [p["id"] for p in r.json["pipelines"]])
        self.assertTrue(all(p["status"] == "COMPLETED" for p in r.json["pipelines"]))
        # run_at of the pipeline is job 0's; later jobs have none.
        jobs = self.d.get_json("/api/pipelines/%s/jobs" % pl["id"])["jobs"]
        self.assertEqual(jobs[0]["run_at"], pl["run_at"])
        self.assertNotIn("run_at", jobs[1])

    def test_patch_pipeline(self):
        pl = self.scheduled_pipeline(description="d0")
        path = "/api/pipelines/" + pl["id"]
        self.assertNoBody(self.d.patch(path, {"description": "d1"}))
        got = self.d.pipeline(pl["id"])
        self.assertEqual((got["name"], got["description"]), ("parked-pipeline", "d1"))
        self.assertNoBody(self.d.patch(path, {"name": "p2"}))
        got = self.d.pipeline(pl["id"])
        self.assertEqual((got["name"], got["description"]), ("p2", "d1"))
        self.assertError(self.d.patch(path, {"name": ""}), 400)
        self.assertError(self.d.patch(path, {"name": 1}), 400)
        self.assertError(self.d.patch(path, raw=b"{"), 400)
        got = self.d.pipeline(pl["id"])
        self.assertEqual((got["name"], got["description"]), ("p2", "d1"))
        # The pipeline's jobs are not touched.
        jobs = self.d.get_json(path + "/jobs")["jobs"]
        self.assertEqual([j["name"] for j in jobs], ["j0", "j1"])

    def test_delete_pipeline(self):
        pl = self.scheduled_pipeline(3)
        path = "/api/pipelines/" + pl["id"]
        self.assertNoBody(self.d.delete(path))
        msg = "pipeline with ID: %s not found" % pl["id"]
        self.assertError(self.d.get(path), 404, msg)
        self.assertError(self.d.get(path + "/jobs"), 404, msg)
        self.assertError(self.d.delete(path), 404, msg)
        for j in pl["jobs"]:
            self.assertError(self.d.get("/api/jobs/" + j["id"]), 404,
                             "job with ID: %s not found" % j["id"])
        ids = self.list_ids("/api/jobs")
        for j in pl["jobs"]:
            self.assertNotIn(j["id"], ids)
        self.assertNotIn(pl["id"], self.list_ids("/api/pipelines"))

    def test_delete_finished_pipeline_removes_results(self):
        pl = self.d.submit_pipeline([{"name": "a", "task_name": "dummytask"},
                                     {"name": "b", "task_name": "dummytask"}])
        self.assertEqual(self.d.wait_pipeline(pl["id"])["status"], "COMPLETED")
        for j in pl["jobs"]:
            self.assertEqual(self.d.get("/api/jobs/%s/results" % j["id"]).status, 200)
        self.assertNoBody(self.d.delete("/api/pipelines/" + pl["id"]))
        for j in pl["jobs"]:
            self.assertError(self.d.get("/api/jobs/%s/results" % j["id"]), 404,
                             "job result with ID: %s not found" % j["id"])

    # --- CORS ---------------------------------------------------------------
    def test_cors_simple_requests(self):
        origin = "http://example.com"
        r = self.d.get("/api/status", headers={"Origin": origin})
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.header("access-control-allow-origin"), ("*", origin), r.headers)
        r = self.d.get("/api/status")
        self.assertIsNone(r.header("access-control-allow-origin"), r.headers)
        r = self.d.post("/api/jobs", {"name": "x"}, headers={"Origin": origin})
        self.assertEqual(r.status, 400, r)
        self.assertIn(r.header("access-control-allow-origin"), ("*", origin), r.headers)
        r = self.d.get("/api/jobs/" + new_uuid(), headers={"Origin": origin})
        self.assertEqual(r.status, 404, r)
        self.assertIn(r.header("access-control-allow-origin"), ("*", origin), r.headers)

    def test_cors_preflight(self):
        origin = "http://example.com"
        for path in ("/api/jobs", "/api/jobs/%s/results" % new_uuid(), "/api/pipelines"):
            with self.subTest(path=path):
                r = self.d.options(path, headers={
                    "Origin": origin, "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type"})
                self.assertNoBody(r, 204)
                self.assertIn(r.header("access-control-allow-origin"), ("*", origin))
                methods = {m.strip().upper() for m in
                           (r.header("access-control-allow-methods") or "").split(",")}
                self.assertLessEqual({"GET", "POST", "PATCH", "DELETE"}, methods, r.headers)
                hdrs = {h.strip().lower() for h in
                        (r.header("access-control-allow-headers") or "").split(",")}
                self.assertIn("content-type", hdrs, r.headers)
                self.assertRegex(r.header("access-control-max-age") or "", r"^[1-9][0-9]*$")

    def test_options_without_origin(self):
        r = self.d.options("/api/jobs")
        self.assertEqual(r.status, 404, r)
        self.assertIsNone(r.header("access-control-allow-origin"))

    # --- routes -------------------------------------------------------------
    def test_unknown_routes(self):
        for method, path in (("GET", "/api/nope"), ("GET", "/nope"), ("POST", "/api/nope"),
                             ("GET", "/api/jobs/%s/nope" % new_uuid()),
                             ("GET", "/api")):
            with self.subTest(method=method, path=path):
                r = self.d.client.request(method, path)
                self.assertEqual(r.status, 404, r)
                self.assertError(r, 404)
        # A known path with a method it does not take.
        for method, path in (("PUT", "/api/jobs"), ("DELETE", "/api/tasks"),
                             ("POST", "/api/status")):
            r = self.d.client.request(method, path)
            self.assertIn(r.status, (404, 405), r)

    def test_keep_alive(self):
        # Many requests on one connection: the server must not close it.
        self.d.client.close()
        self.d.get("/api/status")
        conn = self.d.client._local.conn
        for _ in range(50):
            self.assertEqual(self.d.get("/api/status").status, 200)
        self.assertIs(self.d.client._local.conn, conn)


class ApiValidationTest(DaemonTestCase):
    """Every rejected request: the error body and no side effects (the job
    and pipeline lists of this daemon stay empty)."""

    config = {"server": {"max_body": "64k"}}

    def setUp(self):
        self.tasks = self.d.task_names()

    def tearDown(self):
        r = self.d.get("/api/jobs")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"jobs": []}, "a rejected request created a job")
        r = self.d.get("/api/pipelines")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"pipelines": []}, "a rejected request created a pipeline")

    def rejected(self, path, body=None, raw=None, code=400, message=None, contains=None):
        r = self.d.post(path, body, raw=raw)
        return self.assertError(r, code, message, contains)

    def unknown_task_message(self, name):
        return "%s is not a valid task name - valid tasks: [%s]" % (name, " ".join(self.tasks))

    # --- jobs ---------------------------------------------------------------
    def test_bad_run_at_first(self):
        for bad in ("invalid_timestamp_format", "2022-06-06T15:04:05.999",
                    "2022-06-06 15:04:05Z", "2022-06-06", "2022-13-01T00:00:00Z",
                    "2022-06-31T00:00:00Z", "2022-06-06T15:04:05z", "1700000000"):
            with self.subTest(run_at=bad):
                # Missing name and task: the run_at error still wins.
                self.rejected("/api/jobs", {"run_at": bad}, contains=bad)
                self.rejected("/api/jobs", {"name": "x", "task_name": "nope", "run_at": bad},
                              contains=bad)

    def test_run_at_out_of_range(self):
        # Issue 13: year 0 was stored by the memory store and a 500 from
        # PostgreSQL; a time that its zone pushes past 9999 would not format
        # as RFC 3339. Both stores take years 0001-9999 (UTC), exactly (the
        # edges are accepted: ApiTest.test_run_at_edges).
        msg = ('invalid run_at: "%s" is out of range: times must be from '
               '0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z')
        ok = {"name": "a", "task_name": "dummytask"}
        for bad in ("0000-01-01T00:00:00Z", "0000-12-31T23:59:59.999999Z",
                    "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-00:01"):
            with self.subTest(run_at=bad):
                self.rejected("/api/jobs", dict(ok, run_at=bad), message=msg % bad)
                self.rejected("/api/pipelines", {"name": "p", "run_at": bad, "jobs": [ok, ok]},
                              message=msg % bad)

    def test_required_fields(self):
        cases = [
            ({}, "name, task_name required"),
            ({"name": "", "task_name": ""}, "name, task_name required"),
            ({"description": "only"}, "name, task_name required"),
            ({"task_name": "dummytask"}, "name required"),
            ({"name": "", "task_name": "dummytask"}, "name required"),
            ({"name": "x"}, "task_name required"),
            ({"name": "x", "task_name": ""}, "task_name required"),
            ({"task_name": "nope"}, "name required"),
        ]
        for body, msg in cases:
            with self.subTest(body=body):
                self.rejected("/api/jobs", body, message=msg)

    def test_unknown_task(self):
        self.assertEqual(self.tasks, sorted(self.tasks))
        self.rejected("/api/jobs", {"name": "x", "task_name": "nope"},
                      message=self.unknown_task_message("nope"))
        self.rejected("/api/jobs", {"name": "x", "task_name": "DummyTask"},
                      message=self.unknown_task_message("DummyTask"))

    def test_undecodable_bodies(self):
        for raw in (b'{"name":', b"not json", b"", b"null", b"[]", b'"text"', b"42",
                    b'{"name":"x","task_name":"dummytask"} trailing',
                    b'{"name":"x","task_name":"dummytask"',
                    b"\xff\xfe{}"):
            with self.subTest(raw=raw):
                self.rejected("/api/jobs", raw=raw)

    def test_wrong_types(self):
        good = {"name": "x", "task_name": "dummytask"}
        for field, value in (("name", 5), ("name", ["x"]), ("task_name", True),
                             ("description", 5), ("task_params", "text"),
                             ("task_params", [1, 2]), ("task_params", 3),
                             ("timeout", "abc"), ("timeout", True), ("timeout", [1]),
                             ("run_at", 5), ("run_at", {"t": 1})):
            with self.subTest(field=field, value=value):
                body = dict(good)
                body[field] = value
                self.rejected("/api/jobs", body)

    def test_timeout_must_be_positive(self):
        for t in (0, -1, -100):
            with self.subTest(timeout=t):
                self.rejected("/api/jobs", {"name": "x", "task_name": "dummytask",
                                            "timeout": t})

    def test_body_too_large(self):
        body = {"name": "x", "task_name": "dummytask", "task_params": {"d": "x" * 100000}}
        r = self.d.post("/api/jobs", body)
        self.assertEqual(r.status, 413, r)
        if r.json is not None:
            self.assertEqual(r.json.get("code"), 413, r)
        self.d.client.close()
        r = self.d.post("/api/pipelines", {"name": "p", "jobs": [body, body]})
        self.assertEqual(r.status, 413, r)
        self.d.client.close()

    # --- pipelines ----------------------------------------------------------
    def test_pipeline_validation_messages(self):
        ok = {"name": "a", "task_name": "dummytask"}
        cases = [
            ({"jobs": [{}]}, "name, task_name required"),
            ({"jobs": [{"name": "a"}]}, "task_name required"),
            ({"name": "p", "jobs": [ok, {"task_name": "dummytask"}]}, "name required"),
            ({"name": "p", "jobs": [ok, {"name": "b"}]}, "task_name required"),
            ({"jobs": [{"name": "a", "task_name": "nope"}]},
             self.unknown_task_message("nope")),
            ({"name": "p", "jobs": [ok, {"name": "b", "task_name": "nope"}]},
             self.unknown_task_message("nope")),
            ({}, "name, jobs required"),
            ({"name": ""}, "name, jobs required"),
            ({"name": "", "jobs": []}, "name, jobs required"),
            ({"description": "d", "jobs": [ok, ok]}, "name required"),
            ({"name": "p"}, "jobs required"),
            ({"name": "p", "jobs": []}, "jobs required"),
            ({"name": "p", "jobs": [ok]}, "pipeline should have at least 2 jobs, 1 given"),
        ]
        for body, msg in cases:
            with self.subTest(body=body):
                self.rejected("/api/pipelines", body, message=msg)

    def test_pipeline_bad_run_at(self):
        ok = {"name": "a", "task_name": "dummytask"}
        for bad in ("garbage-time", "2022-06-06T15:04:05"):
            with self.subTest(run_at=bad):
                self.rejected("/api/pipelines", {"name": "p", "run_at": bad, "jobs": [ok, ok]},
                              contains=bad)
                self.rejected("/api/pipelines", {"run_at": bad, "jobs": [ok, ok]},
                              contains=bad)

    def test_task_params_numbers_too_large(self):
        # Issue 13: PostgreSQL's jsonb gives such a number back as an integer
        # of 20 digits, which valet cannot read: the job lost its params with
        # PostgreSQL (and kept them with the memory store).
        ok = {"name": "a", "task_name": "dummytask"}
        for params, shown in (({"x": 1e19}, "1e+19"), ({"x": [1, {"y": -1.5e300}]}, "-1.5e+300"),
                              ({"x": 9223372036854775808.0}, "9.22337e+18")):
            with self.subTest(params=params):
                msg = "task_params must not hold numbers of 2^63 or more in magnitude, got " + shown
                self.rejected("/api/jobs", dict(ok, task_params=params), message=msg)
                self.rejected("/api/pipelines", {"name": "p", "jobs": [
                    ok, dict(ok, task_params=params)]}, message=msg)

    def test_pipeline_job_run_at_refused(self):
        # Issue 13: a pipeline job's own run_at (even of a wrong type) was
        # silently ignored; run_at belongs to the pipeline. (null is an
        # absent field: ApiTest.test_pipeline_job_null_run_at.)
        ok = {"name": "a", "task_name": "dummytask"}
        msg = ('jobs[%d].run_at is not allowed: run_at belongs to the pipeline '
               '(set it next to "jobs")')
        for value in (later(), "garbage", "", 5, {"t": 1}):
            with self.subTest(run_at=value):
                self.rejected("/api/pipelines", {"name": "p", "jobs": [
                    ok, dict(ok, run_at=value)]}, message=msg % 1)
                self.rejected("/api/pipelines", {"name": "p", "run_at": later(), "jobs": [
                    dict(ok, run_at=value), ok]}, message=msg % 0)

    def test_pipeline_wrong_types(self):
        ok = {"name": "a", "task_name": "dummytask"}
        for body in ({"name": "p", "jobs": "x"}, {"name": "p", "jobs": {"a": ok}},
                     {"name": "p", "jobs": [1, 2]}, {"name": "p", "jobs": [ok, None]},
                     {"name": 5, "jobs": [ok, ok]}, {"name": "p", "jobs": None},
                     {"name": "p", "description": 1, "jobs": [ok, ok]},
                     {"name": "p", "jobs": [ok, dict(ok, use_previous_results="yes")]},
                     {"name": "p", "jobs": [ok, dict(ok, timeout=0)]},
                     {"name": "p", "jobs": [ok, dict(ok, task_params=[1])]}):
            with self.subTest(body=body):
                self.rejected("/api/pipelines", body)
        for raw in (b"null", b"{", b"[]", b""):
            with self.subTest(raw=raw):
                self.rejected("/api/pipelines", raw=raw)


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
        spawner's whose pid 1 is a valetd-init of the spawner's: the exec
        task is its pid 2, its parent the init; the C task's namespace is
        its worker slot's (test_slotns), where it is pid 2 or more, a child
        of the spawner; their mount, IPC, UTS and network
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
        # The exec task, from inside: pid 2 beside the init, its parent (the
        # spawner) outside the namespace, as a C task's.
        x_iso = done[x_job["id"]]["isolation"]
        self.assertEqual((inside["pid"], inside["ppid"], inside["init"]), (2, 0, "valetd-init"),
                         inside)
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


class CorsConfigTest(DaemonTestCase):
    """cors_origins names the allowed origins; others get no CORS headers."""

    config = {"server": {"cors_origins": "http://good.example http://other.example"}}

    def test_allowed_origin(self):
        for origin in ("http://good.example", "http://other.example"):
            r = self.d.get("/api/status", headers={"Origin": origin})
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("access-control-allow-origin"), origin, r.headers)
            r = self.d.options("/api/jobs", headers={"Origin": origin,
                                                     "Access-Control-Request-Method": "POST"})
            self.assertNoBody(r, 204)
            self.assertEqual(r.header("access-control-allow-origin"), origin, r.headers)

    def test_other_origin(self):
        r = self.d.get("/api/status", headers={"Origin": "http://evil.example"})
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("access-control-allow-origin"), r.headers)
        r = self.d.options("/api/jobs", headers={"Origin": "http://evil.example",
                                                 "Access-Control-Request-Method": "POST"})
        self.assertIsNone(r.header("access-control-allow-origin"), r.headers)


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
                      r"7 in 600000-699999\),\n    one per worker slot; gid (\d+) for the "
                      r"network helper; no capabilities\n", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        base, net = int(m.group(1)), int(m.group(2))
        self.assertGreaterEqual(base, 600000)
        self.assertEqual(net, base + 6)
        with open("/proc/net/unix") as f:
            self.assertNotIn("@valetd-id-%d\n" % base, f.read())
        self.assertEqual(rp.returncode, 0, rp)
        self.assertIn("\n  user: uid/gid 61000 + slot number ([sandbox] uid_base),\n    one per "
                      "worker slot; gid 61004 for the network helper; no capabilities\n",
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
