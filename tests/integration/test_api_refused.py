"""Every request the HTTP API refuses (API.md), against the real valetd:
the status, the error body, and no side effects - the job and pipeline
lists of the daemon stay empty after each test (tearDown). What the
endpoints answer to good requests, and [server] cors_origins: test_api.
"""

import unittest

from test_api import later
from valetd import DaemonTestCase


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


if __name__ == "__main__":
    unittest.main()
