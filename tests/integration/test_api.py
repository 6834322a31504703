"""The HTTP contract of API.md, endpoint by endpoint, against the real valetd.

Every request goes over real HTTP to a daemon started for the test class:
what each endpoint answers (ApiTest), [server] cors_origins (CorsConfigTest,
CorsAnyTest), and what a browser's page may send: cross-origin writes and
DNS-rebound Host names (CrossOriginTest, allowed_hosts: AllowedHostsTest);
every other refused request is test_api_refused's. Jobs that
must stay put while a test looks at them are scheduled an hour ahead
(run_at), so their status cannot change under the test; tests delete what
they create when it could disturb the list tests. What a running job gets, its limits and isolation:
test_isolation; valetd's command line: test_valetd_cli.
"""

import json
import time
import unittest

from valetd import (DEMO_TASKS, EXEC_TASKS, HOSTILE_TASKS, STRICT_TS_RE, UUID4_RE,
                    DaemonTestCase, fmt_ts, new_uuid, parse_ts)

JOB_KEYS = {"id", "name", "description", "task_name", "task_params", "timeout", "status",
            "failure_reason", "run_at", "scheduled_at", "created_at", "started_at",
            "completed_at", "duration", "pipeline_id", "next_job_id", "use_previous_results",
            "outcome"}
PIPELINE_KEYS = {"id", "name", "description", "status", "failure_reason", "run_at",
                 "created_at", "started_at", "completed_at", "duration"}
FAR = 3600.0  # run_at this far ahead keeps a job waiting for the whole test


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
        # The first and the last instant valet takes (test_api_refused.
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
        # Just below 2^63 (test_api_refused refuses more): whichever the
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
        # On loopback the default allows the loopback origins (a front end
        # in development), any port.
        origin = "http://localhost:5173"
        r = self.d.get("/api/status", headers={"Origin": origin})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("access-control-allow-origin"), origin, r.headers)
        self.assertEqual(r.header("vary"), "Origin", r.headers)
        r = self.d.get("/api/status")
        self.assertIsNone(r.header("access-control-allow-origin"), r.headers)
        r = self.d.post("/api/jobs", {"name": "x"}, headers={"Origin": origin})
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.header("access-control-allow-origin"), origin, r.headers)
        r = self.d.get("/api/jobs/" + new_uuid(), headers={"Origin": origin})
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.header("access-control-allow-origin"), origin, r.headers)
        for other in ("http://127.0.0.1:3000", "https://127.1.2.3", "http://[::1]:8000",
                      "http://app.localhost:8080", "HTTP://LOCALHOST"):
            r = self.d.get("/api/status", headers={"Origin": other})
            self.assertEqual(r.header("access-control-allow-origin"), other, r.headers)

    def test_cors_other_sites_are_not_allowed_on_loopback(self):
        # Not "*": another site's page may not read what the API answers.
        for origin in ("http://example.com", "https://evil.example", "null",
                       "http://localhost.evil.example", "http://127.0.0.1.evil.example",
                       "file://", "http://10.0.0.1:8080", "http://localhost:80/x"):
            with self.subTest(origin=origin):
                r = self.d.get("/api/status", headers={"Origin": origin})
                self.assertEqual(r.status, 200, r)
                self.assertIsNone(r.header("access-control-allow-origin"), r.headers)
                self.assertEqual(r.header("vary"), "Origin", r.headers)
                r = self.d.options("/api/jobs", headers={
                    "Origin": origin, "Access-Control-Request-Method": "POST"})
                self.assertError(r, 403, "origin not allowed")
                self.assertIsNone(r.header("access-control-allow-origin"), r.headers)

    def test_cors_preflight(self):
        origin = "http://localhost:5173"
        for path in ("/api/jobs", "/api/jobs/%s/results" % new_uuid(), "/api/pipelines"):
            with self.subTest(path=path):
                r = self.d.options(path, headers={
                    "Origin": origin, "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type"})
                self.assertNoBody(r, 204)
                self.assertEqual(r.header("access-control-allow-origin"), origin)
                # The methods the routes have, no more (no PUT).
                methods = {m.strip().upper() for m in
                           (r.header("access-control-allow-methods") or "").split(",")}
                self.assertEqual({"GET", "HEAD", "POST", "PATCH", "DELETE"}, methods, r.headers)
                # What clients send: a key, a JSON body, the dashboard's ETags.
                hdrs = {h.strip().lower() for h in
                        (r.header("access-control-allow-headers") or "").split(",")}
                self.assertLessEqual({"authorization", "content-type", "if-none-match"}, hdrs,
                                     r.headers)
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


class PipelineCapacityTest(DaemonTestCase):
    """[queue] capacity counts a pipeline as its jobs (attack-http finding
    7: one 740 KB request held 20,000 jobs on one unit of capacity)."""

    config = {"queue": {"workers": "1", "capacity": "100"}}
    # With PostgreSQL the database is the queue: work due later is stored
    # for any node to claim, and held (and counted) by none until then.
    store = "memory"

    def pipeline(self, n, name="p"):
        return self.d.post("/api/pipelines", {
            "name": name, "run_at": "2099-01-01T00:00:00Z",
            "jobs": [{"name": "j", "task_name": "dummytask"}] * n})

    def test_a_pipeline_counts_as_its_jobs(self):
        self.assertError(self.pipeline(101), 400,
                         "pipeline has 101 jobs, more than the queue holds "
                         "([queue] capacity 100)")
        first = self.pipeline(60)
        self.assertEqual(first.status, 202, first)
        self.assertError(self.pipeline(41), 503, "job queue is full - try again later")
        self.assertEqual(self.pipeline(40).status, 202)
        r = self.d.post("/api/jobs", {"name": "one too many", "task_name": "dummytask"})
        self.assertError(r, 503, "job queue is full - try again later")
        # Nothing was stored for the refused work.
        self.assertEqual(len(self.d.get_json("/api/jobs")["jobs"]), 100)
        # A deleted (or finished) pipeline gives its jobs' room back.
        self.assertEqual(self.d.delete("/api/pipelines/" + first.json["id"]).status, 204)
        self.assertEqual(self.pipeline(59).status, 202)
        self.assertEqual(self.d.post("/api/jobs", {"name": "fits", "task_name": "dummytask",
                                                   "run_at": "2099-01-01T00:00:00Z"}).status,
                         202)


class CorsConfigTest(DaemonTestCase):
    """cors_origins names the allowed origins; others get no CORS headers,
    and may not write."""

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
            # A listed origin may write cross-origin.
            r = self.d.post("/api/jobs", {"name": "w", "task_name": "dummytask",
                                          "run_at": later()},
                            headers={"Origin": origin, "Sec-Fetch-Site": "cross-site"})
            self.assertEqual(r.status, 202, r)
            self.assertNoBody(self.d.delete("/api/jobs/" + r.json["id"]))

    def test_other_origin(self):
        r = self.d.get("/api/status", headers={"Origin": "http://evil.example"})
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("access-control-allow-origin"), r.headers)
        r = self.d.options("/api/jobs", headers={"Origin": "http://evil.example",
                                                 "Access-Control-Request-Method": "POST"})
        self.assertIsNone(r.header("access-control-allow-origin"), r.headers)
        r = self.d.post("/api/jobs", {"name": "w", "task_name": "dummytask"},
                        headers={"Origin": "http://evil.example"})
        self.assertError(r, 403, contains="cross-origin POST")
        # A list replaces the loopback default.
        r = self.d.post("/api/jobs", {"name": "w", "task_name": "dummytask"},
                        headers={"Origin": "http://localhost:5173"})
        self.assertError(r, 403, contains="cross-origin POST")


class CorsAnyTest(DaemonTestCase):
    """cors_origins = *: every origin, the operator's choice, may read and
    write."""

    config = {"server": {"cors_origins": "*"}}

    def test_every_origin(self):
        origin = "https://evil.example"
        r = self.d.get("/api/status", headers={"Origin": origin})
        self.assertEqual(r.header("access-control-allow-origin"), "*", r.headers)
        self.assertIsNone(r.header("vary"), r.headers)
        r = self.d.post("/api/jobs", {"name": "w", "task_name": "dummytask", "run_at": later()},
                        headers={"Origin": origin, "Sec-Fetch-Site": "cross-site",
                                 "Content-Type": "text/plain"})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(r.header("access-control-allow-origin"), "*", r.headers)


class CrossOriginTest(DaemonTestCase):
    """What a web page can make a browser send to a default (open, loopback)
    valetd: writes from another origin are refused (Go's
    CrossOriginProtection), and so is a Host that DNS rebinding could
    have made (allowed_hosts); curl and other non-browser clients are not
    affected."""

    JOB = {"name": "csrf", "task_name": "dummytask"}

    def count_jobs(self):
        return len(self.d.get_json("/api/jobs"))

    def host(self):
        return "127.0.0.1:%d" % self.d.port

    def test_cross_site_writes_are_refused(self):
        before = self.count_jobs()
        # A cross-site <form enctype=text/plain>, or fetch() in no-cors
        # mode: no preflight, so only valetd can stop it.
        for headers in ({"Origin": "https://evil.example", "Content-Type": "text/plain"},
                        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
                        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
                        {"Origin": "http://localhost.evil.example:%d" % self.d.port},
                        {"Sec-Fetch-Site": "cross-site"},
                        {"Sec-Fetch-Site": "same-site", "Origin": "http://evil.localhost.example"},
                        # Sec-Fetch-Site decides over an Origin that is the Host.
                        {"Sec-Fetch-Site": "cross-site", "Host": "10.1.2.3:8080",
                         "Origin": "http://10.1.2.3:8080"}):
            with self.subTest(headers=headers):
                r = self.d.post("/api/jobs", self.JOB, headers=headers)
                self.assertError(r, 403, contains="cross-origin POST")
                self.assertIn("[server] cors_origins", r.json["message"])
                self.assertIsNone(r.header("access-control-allow-origin"), r.headers)
        r = self.d.post("/api/pipelines", {"name": "p", "jobs": [self.JOB, self.JOB]},
                        headers={"Origin": "https://evil.example"})
        self.assertError(r, 403, contains="cross-origin POST")
        self.assertEqual(self.count_jobs(), before)
        # PATCH and DELETE too, before the id is even looked up.
        job = self.d.submit("dummytask", run_at=later())
        for method in ("PATCH", "DELETE"):
            r = self.d.client.request(method, "/api/jobs/" + job["id"], body={"name": "x"},
                                      headers={"Origin": "https://evil.example",
                                               "Sec-Fetch-Site": "cross-site"})
            self.assertError(r, 403, contains="cross-origin " + method)
        r = self.d.post("/api/jobs/%s/cancel" % job["id"],
                        headers={"Origin": "https://evil.example"})
        self.assertError(r, 403)
        self.assertEqual(self.d.job(job["id"])["name"], job["name"])
        self.assertNoBody(self.d.delete("/api/jobs/" + job["id"]))
        self.assertIn("cross-origin POST", self.d.log_text())

    def test_reads_go_on_but_are_not_shared(self):
        r = self.d.get("/api/jobs", headers={"Origin": "https://evil.example",
                                             "Sec-Fetch-Site": "cross-site"})
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("access-control-allow-origin"), r.headers)

    def test_same_origin_and_non_browser_writes_go_on(self):
        for headers in ({},  # curl, valet(1), scripts: whatever the Content-Type
                        {"Content-Type": "text/plain"},
                        {"Content-Type": "application/x-www-form-urlencoded"},
                        {"Sec-Fetch-Site": "same-origin", "Origin": "http://" + self.host()},
                        {"Sec-Fetch-Site": "none"},
                        # A browser without Sec-Fetch-Site: Origin is Host.
                        {"Origin": "http://" + self.host()},
                        {"Origin": "http://10.1.2.3:8080", "Host": "10.1.2.3:8080"},
                        {"Origin": "http://localhost:%d" % self.d.port,
                         "Host": "localhost:%d" % self.d.port},
                        # A loopback origin (a local front end) is allowed.
                        {"Origin": "http://localhost:5173", "Sec-Fetch-Site": "same-site"},
                        {"Origin": "http://127.0.0.1:3000", "Sec-Fetch-Site": "cross-site"}):
            with self.subTest(headers=headers):
                body = dict(self.JOB, run_at=later())
                r = self.d.client.request("POST", "/api/jobs", raw=json.dumps(body).encode(),
                                          headers=headers)
                self.assertEqual(r.status, 202, r)
                self.assertNoBody(self.d.delete("/api/jobs/" + r.json["id"],
                                                headers={k: v for k, v in headers.items()
                                                         if k != "Content-Type"}))

    def test_rebound_host_is_refused(self):
        # A page on attacker.example, its name now resolving to 127.0.0.1.
        for host in ("attacker.example:%d" % self.d.port, "attacker.example",
                     "localhost.attacker.example", "127.0.0.1.nip.io", "x"):
            with self.subTest(host=host):
                for method, path in (("GET", "/api/jobs"), ("GET", "/ui/"),
                                     ("POST", "/api/jobs"), ("OPTIONS", "/api/jobs")):
                    r = self.d.client.request(method, path, headers={
                        "Host": host, "Origin": "http://" + host})
                    self.assertError(r, 403)
                    self.assertIn('host "%s" is not allowed' % host, r.json["message"])
                    self.assertIn("[server] allowed_hosts", r.json["message"])
                    self.assertIsNone(r.header("access-control-allow-origin"), r.headers)
        self.assertIn("DNS rebinding", self.d.log_text())

    def test_local_hosts_are_served(self):
        for host in ("127.0.0.1:%d" % self.d.port, "127.0.0.1", "localhost:%d" % self.d.port,
                     "LOCALHOST", "valet.localhost:%d" % self.d.port, "[::1]:%d" % self.d.port,
                     "10.1.2.3:80", "[2001:db8::1]"):
            with self.subTest(host=host):
                r = self.d.get("/api/status", headers={"Host": host})
                self.assertEqual(r.status, 200, r)


class AllowedHostsTest(DaemonTestCase):
    """allowed_hosts names the hosts a proxy in front passes; the local ones
    stay allowed."""

    config = {"server": {"allowed_hosts": "valet.example, .corp.example"}}

    def test_listed_hosts(self):
        for host, status in (("valet.example", 200), ("VALET.example:443", 200),
                             ("corp.example", 200), ("ci.corp.example:8080", 200),
                             ("localhost", 200), ("127.0.0.1", 200),
                             ("evil.example", 403), ("xvalet.example", 403),
                             ("evilcorp.example", 403), ("valet.example.evil", 403)):
            with self.subTest(host=host):
                r = self.d.get("/api/status", headers={"Host": host})
                self.assertEqual(r.status, status, r)
        r = self.d.get("/api/status", headers={"Host": "evil.example"})
        self.assertError(r, 403, contains="not in [server] allowed_hosts")


class AllowedHostsAnyTest(DaemonTestCase):
    """allowed_hosts = *: the check is off."""

    config = {"server": {"allowed_hosts": "*"}}

    def test_any_host(self):
        r = self.d.get("/api/status", headers={"Host": "attacker.example"})
        self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    unittest.main()
