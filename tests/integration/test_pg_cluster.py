"""PostgreSQL integration tests of several nodes on one database
(issues 3 and 14): jobs spread over nodes, a node's lease and the rescue of
its work when it expires, the queue's wake-ups, scheduling and cancel
across nodes, pipelines run by another node and rescued mid-run, limits
across nodes, a stopping node's unstarted work taken over at once
(DrainTest), a lone node that keeps what it is given until another comes
(LoneNodeTest), a node id used twice, retries with their attempts rows, and
the fencing of a node that lost its work: its writes about that work
change nothing (FenceTest). The harness is pgcase.py's. Run with
tests/run_tests.sh (suite test_pg_cluster@postgres).
"""

import re
import signal
import sys
import time
import unittest
import uuid

from valetd import FINAL, fmt_ts, parse_ts, pg_restart
# tearDownModule: unittest calls it, to remove the daemons' logs.
from pgcase import (  # noqa: F401
    tearDownModule, OPEN, STORAGE_DOWN, FAR, PgTestCase, RUNNING_ON,
    sleep_body, LateDaemon, pipeline_body, finished_ids, PipelineTestCase)


class MultiNodeTest(PgTestCase):
    def nodes(self, n, config):
        """n daemons on one schema, node ids X, X-b, X-c..."""
        first = self.start(config)
        out = [first]
        for i in range(1, n):
            out.append(self.start(config, schema=first.schema,
                                  node_id="%s-%c" % (first.node_id, ord("a") + i)))
        return out

    def test_three_nodes_run_each_job_once(self):
        n = 3000
        cfg = {"queue": {"workers": "2", "capacity": "100000"}}
        nodes = self.nodes(3, cfg)
        node_ids = {d.node_id for d in nodes}
        self.assertEqual(len(node_ids), 3)
        ids = self.submit_many(nodes, n, lambda i: sleep_body(0.005, "multi-%d" % i),
                               threads=6)
        self.wait_final(nodes[0], 90, "3000 jobs on three nodes")
        rows = nodes[0].sql(
            "SELECT j.id, j.status, j.node_id, j.claimed_by, "
            "(SELECT count(*) FROM attempts a WHERE a.job_id = j.id), "
            "(SELECT min(a.node_id || ' ' || a.status) FROM attempts a WHERE a.job_id = j.id), "
            "r.job_id IS NOT NULL FROM jobs j LEFT JOIN results r ON r.job_id = j.id")
        self.assertEqual(sorted(r[0] for r in rows), sorted(ids))
        # With max_attempts = 1 the job row is the attempt: an attempts row
        # is optional, but never more than one, and it must agree.
        bad = [r for r in rows if r[1] != "COMPLETED" or r[3] is not None or r[6] != "t"
               or int(r[4]) > 1 or (r[4] == "1" and r[5] != r[2] + " COMPLETED")]
        self.assertNoneBad(bad, "jobs not COMPLETED once (id, status, node_id, claimed_by, "
                           "attempts, attempt node and status, has result)")
        # Ran once: one "job finished" log line per job over the three nodes.
        runs = {}
        for d in nodes:
            for jid in re.findall(r"job finished job_id=(\S+)", d.log_text()):
                runs.setdefault(jid, []).append(d.node_id)
        self.assertNoneBad([(j, runs.get(j)) for j in ids if len(runs.get(j, [])) != 1],
                           "jobs did not run exactly once (id, nodes whose log says it "
                           "finished there)")
        per_node = {}
        for r in rows:
            per_node[r[2]] = per_node.get(r[2], 0) + 1
        self.assertEqual(set(per_node), node_ids, "jobs per node: %s" % per_node)
        self.assertEqual(nodes[0].sql("SELECT count(*) FROM jobs WHERE claimed_by IS NOT NULL"),
                         [["0"]])

    def test_idle_nodes_take_shared_work(self):
        # Node A stores what it cannot start at once unclaimed: nodes B and
        # C, which got no request at all, must take their share.
        a, b, c = self.nodes(3, {"queue": {"workers": "2", "capacity": "100000"}})
        ids = self.submit_many([a], 120, lambda i: sleep_body(0.05, "idle-%d" % i))
        self.wait_final(a, 20, "120 jobs submitted to node A")
        per_node = dict((r[0], int(r[1])) for r in a.sql(
            "SELECT node_id, count(*) FROM jobs WHERE status = 'COMPLETED' GROUP BY 1"))
        self.assertEqual(sum(per_node.values()), len(ids), per_node)
        for d in (b, c):
            self.assertGreater(per_node.get(d.node_id, 0), 0,
                               "node %s (idle, no request of its own) ran none of the "
                               "%d jobs submitted to node A; jobs per node: %s"
                               % (d.node_id, len(ids), per_node))

    def test_killed_node_work_is_rescued(self):
        # Submitted round-robin to all three nodes, so that every node has
        # work even without taking shared work when idle (that is
        # test_idle_nodes_take_shared_work).
        n = 300
        cfg = {"queue": {"workers": "2", "capacity": "100000"},
               "storage": {"lease": "2s", "retry_backoff": "100ms"},
               "jobs": {"max_attempts": "3"}}
        a, b, c = self.nodes(3, cfg)
        ids = self.submit_many(
            [a, b, c], n, lambda i: sleep_body(0.6 if i % 25 == 0 else 0.05, "rescue-%d" % i),
            threads=6)
        self.wait_sql(a, "SELECT count(*) FROM jobs WHERE " + RUNNING_ON,
                      lambda rows: int(rows[0][0]) > 0, 10, "node B running jobs",
                      interval=0.01, node=b.node_id, explain=lambda: self.queue_state(a))
        self.assertEqual(b.kill(signal.SIGKILL), -signal.SIGKILL)
        t_kill = time.time()
        victims = {r[0] for r in a.sql("SELECT id FROM jobs WHERE claimed_by = :'b' AND "
                                       "status = 'IN_PROGRESS'", b=b.node_id)}
        self.assertTrue(victims, "node B had no running job at the kill")
        self.assertLessEqual(len(victims), 2, victims)
        self.wait_final(a, 40, "jobs after node B was killed")

        rows = a.sql("SELECT id, status, failure_reason, claimed_by, attempt, node_id "
                     "FROM jobs")
        self.assertEqual(sorted(r[0] for r in rows), sorted(ids))
        not_done = [r for r in rows if r[1] != "COMPLETED"]
        self.assertNoneBad(not_done, "jobs did not end COMPLETED (id, status, reason, "
                           "claimed_by, attempt, node_id)", logs=True)
        self.assertNoneBad([r for r in rows if r[3] is not None], "jobs left claimed")
        attempts = self.attempts_by_job(a)
        bad = []
        for jid in ids:
            atts = attempts.get(jid, [])
            if sum(1 for x in atts if x[2] == "COMPLETED") != 1:
                bad.append((jid, "not exactly one COMPLETED attempt", atts))
            if len(atts) > 3:
                bad.append((jid, "more attempts than max_attempts", atts))
            spans = sorted((x[4], x[5]) for x in atts if x[4] is not None)
            for (s1, f1), (s2, f2) in zip(spans, spans[1:]):
                if s2 < f1:
                    bad.append((jid, "attempts overlap", atts))
            if jid not in victims and len(atts) != 1:
                bad.append((jid, "retried although not running on B", atts))
        self.assertNoneBad(bad, "jobs ran wrongly (id, what, attempts: (attempt, node, "
                           "status, reason, started, finished))")
        expect = "node %s stopped renewing its lease" % b.node_id
        for jid in victims:
            atts = attempts.get(jid, [])
            self.assertGreaterEqual(len(atts), 2, "rescued job %s: attempts %s\n%s"
                                    % (jid, atts, self.logs()))
            first, last = atts[0], atts[-1]
            self.assertEqual((first[0], first[1], first[2]), (1, b.node_id, "FAILED"), atts)
            self.assertIn(expect, first[3] or "", atts)
            # Rescued once B's lease (2 s, renewed every 2/3 s) expired: not
            # before, and not much later either.
            self.assertTrue(1.0 < first[5] - t_kill < 5.0, "attempt failed %.2fs after the "
                            "kill: %s" % (first[5] - t_kill, atts))
            self.assertEqual(last[2], "COMPLETED", atts)
            self.assertIn(last[1], (a.node_id, c.node_id), atts)
        self.assertEqual(a.sql("SELECT count(*) FROM jobs WHERE claimed_by = :'b' OR "
                               "(node_id = :'b' AND status <> 'COMPLETED')", b=b.node_id),
                         [["0"]])
        rescued_after = max(attempts[j][0][5] for j in victims) - t_kill
        sys.stderr.write("[%d running jobs of node B rescued %.1fs after the kill] "
                         % (len(victims), rescued_after))

    def test_cancel_through_another_node(self):
        a, b = self.nodes(2, {"queue": {"workers": "2"}})
        job = a.submit("sleep", {"seconds": 10}, timeout=30)
        rows = self.wait_sql(a, "SELECT claimed_by, node_id FROM jobs WHERE id = :'id' AND "
                             "status = 'IN_PROGRESS'", lambda rows: bool(rows), 5,
                             "job IN_PROGRESS", interval=0.02, id=job["id"])
        runner = rows[0][0]
        self.assertIn(runner, (a.node_id, b.node_id), rows)
        other = b if runner == a.node_id else a
        t0 = time.monotonic()
        r = other.post("/api/jobs/%s/cancel" % job["id"])
        took = time.monotonic() - t0
        self.assertEqual(r.status, 200, "cancel through %s of a job running on %s: %r\n%s"
                         % (other.node_id, runner, r, self.logs()))
        self.assertEqual(r.json["status"], "CANCELLED", r)
        self.assertLess(took, 2.0, r)
        rows = a.sql("SELECT status, failure_reason, claimed_by, completed_at IS NOT NULL "
                     "FROM jobs WHERE id = :'id'", id=job["id"])
        self.assertEqual(rows, [["CANCELLED", "cancelled by request", None, "t"]])

        # Queued and unclaimed (run_at far ahead): through either node.
        for via in (a, b):
            with self.subTest(via=via.node_id):
                parked = a.submit("dummytask", run_at=fmt_ts(time.time() + FAR))
                self.assertEqual(a.sql("SELECT claimed_by FROM jobs WHERE id = :'id'",
                                       id=parked["id"]), [[None]])
                r = via.post("/api/jobs/%s/cancel" % parked["id"])
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json["status"], "CANCELLED", r)
                self.assertEqual(a.sql("SELECT status FROM jobs WHERE id = :'id'",
                                       id=parked["id"]), [["CANCELLED"]])
                self.assertEqual(b.job(parked["id"])["status"], "CANCELLED")


class LoneNodeTest(PgTestCase):
    def claims(self, d):
        return dict((r[0], int(r[1])) for r in d.sql(
            "SELECT coalesce(claimed_by, '-'), count(*) FROM jobs "
            "WHERE status IN ('PENDING', 'IN_PROGRESS') GROUP BY 1"))

    def test_a_lone_node_keeps_its_submits_until_another_comes(self):
        # README, "The queue is the jobs table": a node that no other node
        # shares the queue with stores all it is given claimed (up to half
        # its capacity), not its usual backlog of 4 * workers + 32; once
        # another node registers, it gives back what it has not started,
        # and the nodes claim it again.
        cfg = {"queue": {"workers": "1", "capacity": "1000", "shutdown_grace": "200ms"},
               "storage": {"lease": "3s"}}
        a = self.start(cfg)
        self.wait_sql(a, "SELECT 1 FROM nodes WHERE node_id = :'n'", bool, 10,
                      "node A registered", interval=0.02, n=a.node_id)
        n, cap = 60, 4 * 1 + 32
        ids = [a.submit("sleep", {"seconds": 30}, timeout=60, name="lone-%d" % i)["id"]
               for i in range(n)]
        self.assertEqual(self.claims(a), {a.node_id: n},
                         "%d jobs submitted to node A alone (one worker): all must be "
                         "claimed by A at once, not only its usual %d" % (n, cap))
        self.assertIn("no other node shares the queue", a.log_text())
        b = self.start({"queue": {"workers": "2", "shutdown_grace": "200ms"}},
                       schema=a.schema, node_id=a.node_id + "-b")
        held = self.wait_sql(
            a, "SELECT coalesce(claimed_by, '-'), count(*) FROM jobs "
            "WHERE status IN ('PENDING', 'IN_PROGRESS') GROUP BY 1 ORDER BY 1",
            lambda rows: {r[0] for r in rows} == {a.node_id, b.node_id} and
            sum(int(r[1]) for r in rows) == n, 10,
            "A's backlog claimed by A and B after B registered", interval=0.05,
            explain=lambda: self.queue_state(a))
        per = dict((r[0], int(r[1])) for r in held)
        self.assertLessEqual(per[a.node_id], cap, "A holds more than its usual backlog once "
                             "B shares the queue: %s\n%s" % (per, self.logs()))
        self.assertIn("another node shares the queue: giving back claimed work", a.log_text())
        # The running job stayed where it was, untouched.
        running = a.sql("SELECT claimed_by, attempt, failure_reason FROM jobs "
                        "WHERE id = :'id'", id=ids[0])
        self.assertEqual(running, [[a.node_id, "1", None]], self.logs())
        self.assertEqual(a.sql("SELECT count(*) FROM attempts"), [["0"]])
        # B stops: A is alone again at its next renewal (lease/3 = 1 s).
        rc, _ = b.terminate()
        b.check_exit(rc)
        deadline = time.monotonic() + 5
        while a.log_text().count("no other node shares the queue") < 2:
            self.assertLess(time.monotonic(), deadline, "A did not see it was alone again "
                            "after B stopped\n%s" % self.logs())
            time.sleep(0.05)


class FenceTest(PgTestCase):
    """Issue 14: a node that lost its claim - its work was rescued (another
    node believed its lease had expired) or is held by another node now -
    writes nothing about that work any more: not the status of a new
    attempt, not a retry, not the final status with its result, not the
    pipeline's state. The rows stay as the rescue or the new holder left
    them. (tests/unit/test_pg_fence.c checks each fenced statement on its
    own, the late outcome of a pipeline job included.)"""

    maxDiff = None
    JOB_COLS = ("id, status, failure_reason, claimed_by, node_id, attempt, started_at, "
                "completed_at, pid, exit_code, timed_out, (SELECT r.metadata::text FROM "
                "results r WHERE r.job_id = j.id), (SELECT string_agg(a.attempt || ' ' || "
                "a.node_id || ' ' || a.status, ', ' ORDER BY a.attempt) FROM attempts a "
                "WHERE a.job_id = j.id)")

    def rows(self, d, ids, pl_id=None):
        """The state of jobs ids (and of pipeline pl_id), for comparing."""
        jobs = d.sql("SELECT %s FROM jobs j WHERE id = ANY(string_to_array(:'ids', ',')"
                     "::uuid[]) ORDER BY id" % self.JOB_COLS, ids=",".join(ids))
        pl = d.sql("SELECT id, status, failure_reason, started_at, completed_at, claimed_by "
                   "FROM pipelines WHERE id = :'id'", id=pl_id) if pl_id else []
        return jobs, pl

    def synced(self, d):
        """Every change d made so far is committed: a PATCH is answered only
        then."""
        if not hasattr(self, "_anchor"):
            self._anchor = d.submit("dummytask", name="sync-anchor")["id"]
        r = d.patch("/api/jobs/" + self._anchor, {"description": str(time.time())})
        self.assertEqual(r.status, 204, r)

    def wait_finished(self, d, ids, timeout=15):
        """Until d's log says each of ids finished there (its core is done
        with them, whatever the database says)."""
        deadline = time.monotonic() + timeout
        while not set(ids) <= finished_ids(d):
            if time.monotonic() > deadline:
                self.fail("jobs %s did not finish on %s\n%s"
                          % (set(ids) - finished_ids(d), d.node_id, self.logs()))
            time.sleep(0.05)

    def test_rescued_work_is_not_overwritten(self):
        # Node A runs a job and a pipeline; the test rescues A's work the
        # way another node does when A's lease has expired (release_node,
        # as rescue_expired() calls it). With one attempt allowed, the job,
        # the pipeline's running job and the pipeline fail there and then.
        # A does not know: its runs go on and end COMPLETED, the pipeline's
        # second job runs - and none of it may reach the tables.
        a = self.start({"queue": {"workers": "2"}, "jobs": {"max_attempts": "1"}})
        job = a.submit("sleep", {"seconds": 1.5}, timeout=30, name="fence-job")
        pl = a.submit_pipeline([
            {"name": "fence-p0", "task_name": "sleep", "task_params": {"seconds": 1.5},
             "timeout": 30},
            {"name": "fence-p1", "task_name": "dummytask", "task_params": {"x": 1}}],
            name="fence-pipeline")
        ids = [job["id"]] + [j["id"] for j in pl["jobs"]]
        self.wait_sql(a, "SELECT count(*) FROM jobs WHERE id IN (:'j', :'p0') AND status = "
                      "'IN_PROGRESS' AND claimed_by = :'a'", lambda rows: rows == [["2"]], 5,
                      "both sleeps IN_PROGRESS on A", interval=0.02, j=ids[0], p0=ids[1],
                      a=a.node_id)
        self.assertEqual(a.sql("SELECT claimed_by FROM pipelines WHERE id = :'id'",
                               id=pl["id"]), [[a.node_id]], "the pipeline row is not held")
        released = a.sql("SELECT release_node(:'a', 'rescued by the test', 100, 1000)",
                         a=a.node_id)
        self.assertEqual(released, [["2"]])
        rescued = self.rows(a, ids, pl["id"])
        jobs = {r[0]: r for r in rescued[0]}
        self.assertEqual([jobs[i][1:4] for i in ids],
                         [["FAILED", "rescued by the test", None],
                          ["FAILED", "rescued by the test", None],
                          ["CANCELLED", "cancelled: job %s failed" % ids[1], None]], rescued)
        self.assertEqual(rescued[1][0][1:3], ["FAILED", "job %s failed" % ids[1]], rescued)
        self.assertIsNone(rescued[1][0][5], "the rescue left the pipeline held")

        self.wait_finished(a, ids)
        self.synced(a)
        self.assertEqual(self.rows(a, ids, pl["id"]), rescued,
                         "node A's late writes changed rescued work\n%s" % self.logs())
        # A's own view is the database's.
        self.assertEqual(a.job(job["id"])["status"], "FAILED")
        self.assertEqual(a.pipeline(pl["id"])["status"], "FAILED")

    def test_job_held_by_another_node_is_not_overwritten(self):
        # A job of A's that may run 3 times, each run timed out after 2 s.
        # During its first run, the test does what a rescue and a claim by
        # another node do: attempt 1 is failed (fail_attempt), and node
        # "other" holds and runs attempt 2. A goes on: its attempt 1 times
        # out (a retry write), attempts 2 and 3 start (status writes) and
        # time out, the last one is final (a finish write).
        a = self.start({"queue": {"workers": "2"}, "storage": {"retry_backoff": "50ms"}})
        job = a.submit("sleep", {"seconds": 10}, timeout=2, max_attempts=3,
                       name="fence-taken")
        self.wait_sql(a, "SELECT 1 FROM jobs WHERE id = :'id' AND status = 'IN_PROGRESS' AND "
                      "attempt = 1 AND claimed_by = :'a' AND started_at > now() - "
                      "interval '1 s'", lambda rows: bool(rows), 5,
                      "attempt 1 IN_PROGRESS on A", interval=0.02, id=job["id"], a=a.node_id)
        a.sql("BEGIN; SELECT fail_attempt(:'id', 'node A stopped renewing its lease', 100, "
              "1000); UPDATE jobs SET status = 'IN_PROGRESS', claimed_by = 'other', "
              "claimed_at = now(), node_id = 'other', attempt = 2, started_at = now(), "
              "due_at = NULL WHERE id = :'id'; COMMIT", id=job["id"])
        taken = self.rows(a, [job["id"]])
        self.assertEqual(taken[0][0][1:6], ["IN_PROGRESS", "attempt 1 failed: node A stopped "
                                            "renewing its lease", "other", "other", "2"], taken)
        self.assertEqual(taken[0][0][12], "1 %s FAILED" % a.node_id, taken)

        deadline = time.monotonic() + 15
        while "status=FAILED" not in "".join(
                l for l in a.log_text().splitlines() if "job finished job_id=" + job["id"] in l):
            if time.monotonic() > deadline:
                self.fail("A's three attempts did not end\n%s" % self.logs())
            time.sleep(0.05)
        self.assertEqual(len(re.findall(r"job attempt failed; retrying job_id=" + job["id"],
                                        a.log_text())), 2, a.log_tail())
        self.synced(a)
        self.assertEqual(self.rows(a, [job["id"]]), taken,
                         "node A's late writes changed a job another node holds\n%s"
                         % self.logs())


class QueueWakeTest(PgTestCase):
    """README, "The queue": an idle node claims when woken by LISTEN/NOTIFY,
    and every 2 s as a fallback. Jobs are put into the table by SQL, as a
    producer other than valetd would: with a NOTIFY on <schema>_jobs they
    run at once; without, within the 2 s poll."""

    def put_job(self, d, name, notify):
        d.sql("BEGIN; INSERT INTO jobs (id, name, task_name, timeout_ms, status, created_at, "
              "due_at) VALUES (gen_random_uuid(), :'n', 'dummytask', 5000, 'PENDING', now(), "
              "now()); %s COMMIT" % ("SELECT pg_notify(:'chan', '');" if notify else ""),
              n=name, chan=d.schema + "_jobs")
        t0 = time.monotonic()
        self.wait_sql(d, "SELECT status FROM jobs WHERE name = :'n'",
                      lambda rows: rows == [["COMPLETED"]], 5, "job %s run" % name,
                      interval=0.01, n=name)
        return time.monotonic() - t0

    def test_notify_wakes_and_the_poll_finds(self):
        d = self.start({"queue": {"workers": "2"}})
        warm = d.submit("dummytask")
        d.wait_for(warm["id"], "COMPLETED", timeout=5)
        # Without the NOTIFY, only the poll (every 2 s, at any phase) would
        # find them: most within 0.5 s, and none later than 1.5 s, is the
        # wake-up (a chance below 1% for the poll alone).
        woken = sorted(round(self.put_job(d, "notified-%d" % i, True), 3) for i in range(6))
        self.assertTrue(woken[3] < 0.5 and woken[-1] < 1.5,
                        "seconds from a NOTIFY to the job's end: %s" % woken)
        polled = self.put_job(d, "not-notified", False)
        self.assertLess(polled, 2.6, "a job put in without NOTIFY ran after %.1fs" % polled)
        sys.stderr.write("[NOTIFY: %s s; poll: %.2f s] " % (woken, polled))


class LeaseTest(PgTestCase):
    def test_lease_renewed_every_third(self):
        # README, "Leases": each node has a row in nodes and renews its
        # lease every lease/3.
        d = self.start({"queue": {"workers": "2"}, "storage": {"lease": "3s"}})
        beats = []
        deadline = time.monotonic() + 3.6
        while time.monotonic() < deadline:
            rows = d.sql("SELECT extract(epoch FROM heartbeat_at), extract(epoch FROM "
                         "lease_until - heartbeat_at), pid, stopped_at FROM nodes "
                         "WHERE node_id = :'n'", n=d.node_id)
            self.assertEqual(len(rows), 1, rows)
            self.assertEqual(rows[0][2:], [str(d.proc.pid), None], rows)
            self.assertAlmostEqual(float(rows[0][1]), 3.0, delta=0.01, msg=rows)
            if not beats or float(rows[0][0]) != beats[-1]:
                beats.append(float(rows[0][0]))
            time.sleep(0.05)
        gaps = [round(b - a, 2) for a, b in zip(beats[1:], beats[2:])]
        self.assertGreaterEqual(len(gaps), 2, beats)
        for g in gaps:
            self.assertAlmostEqual(g, 1.0, delta=0.25, msg="renewals %s s apart" % gaps)

    def test_outage_longer_than_the_lease(self):
        # README, "Database down": running jobs go on - while the outage is
        # shorter than 5/6 of the lease. Then another node may take the
        # node's work over, so the node kills what it runs, starts nothing,
        # and, once the database is back, gives its work back and goes on.
        d = self.start({"queue": {"workers": "1"}, "storage": {"lease": "1500ms"},
                        "jobs": {"max_attempts": "1"}})
        job = d.submit("sleep", {"seconds": 6}, timeout=30, name="outlived-the-lease")
        # Held by the node, waiting for its one worker.
        queued = d.submit("sleep", {"seconds": 0.2}, timeout=30, name="queued-behind")
        self.wait_sql(d, "SELECT 1 FROM jobs WHERE id = :'id' AND status = 'IN_PROGRESS'",
                      lambda rows: bool(rows), 5, "the job IN_PROGRESS", interval=0.02,
                      id=job["id"])
        self.assertEqual(d.sql("SELECT status, claimed_by FROM jobs WHERE id = :'id'",
                               id=queued["id"]), [["PENDING", d.node_id]])
        t0 = time.monotonic()
        pg_restart(down=3)
        t_up = time.time()
        # Killed during the outage (the job would have run 6 s).
        log = d.log_text()
        self.assertLess(time.monotonic() - t0, 5.5, "the outage took too long to tell")
        self.assertIn("lost the database lease", log)
        self.assertIn("job finished job_id=" + job["id"], log)
        rows = self.wait_sql(
            d, "SELECT status, failure_reason, extract(epoch FROM completed_at), claimed_by "
            "FROM jobs WHERE id = :'id' AND status <> 'IN_PROGRESS'", lambda rows: bool(rows),
            15, "the job's end written", id=job["id"])
        self.assertEqual(rows[0][0], "FAILED", rows)
        # Its own end, or its node's giving back of its claims (whichever
        # is written first once the database is back: the other then
        # changes nothing, fenced by the claim).
        self.assertIn(rows[0][1], (
            "killed: this node could not renew its database lease in time (another node "
            "may take its work over)",
            "valetd on node %s lost its database lease while the job was running" % d.node_id),
            rows)
        self.assertIsNone(rows[0][3], rows)
        deadline = time.monotonic() + 10
        while ("database lease renewed" not in d.log_text() or
               d.get("/api/status").status != 200):
            self.assertLess(time.monotonic(), deadline, d.log_tail())
            time.sleep(0.05)
        after = d.submit("dummytask", {"after": True})
        d.wait_for(after["id"], "COMPLETED", timeout=10)
        # What it held but had not started was given back and claimed
        # anew: it ran once the database was back.
        done = d.wait_for(queued["id"], FINAL, timeout=10)
        self.assertEqual((done["status"], done.get("attempt", 1)), ("COMPLETED", 1), done)
        self.assertGreater(parse_ts(done["started_at"]), t_up - 0.5, done)


class SchedulingTest(PgTestCase):
    """Jobs with run_at start at run_at (within 100 ms), also when the node
    that took the request is idle, and whichever node runs them."""

    def check_on_time(self, nodes, delays):
        a = nodes[0]
        t0 = time.time()
        jobs = []
        for i, delay in enumerate(delays):
            node = nodes[i % len(nodes)]
            jobs.append(node.submit("dummytask", {"i": i}, run_at=fmt_ts(t0 + delay)))
        for job in jobs:
            err = None
            try:
                done = a.wait_for(job["id"], FINAL, timeout=max(t0 + 4 - time.time(), 0.1))
            except AssertionError as e:
                err = str(e)
            if err:
                rows = a.sql("SELECT id, status, claimed_by, due_at <= now(), run_at, now() "
                             "FROM jobs ORDER BY run_at")
                stuck = [r[0] for r in rows if r[2] is None and r[3] == "t"
                         and r[1] not in FINAL]
                self.fail("%s\n%d of %d jobs are due and unclaimed: no node claimed them"
                          "\nrows (id, status, claimed_by, due, run_at, now): %s\n%s"
                          % (err, len(stuck), len(rows), rows, self.logs()))
            self.assertEqual(done["status"], "COMPLETED", done)
            late = parse_ts(done["started_at"]) - parse_ts(job["run_at"])
            self.assertGreaterEqual(late, -0.001, "started before run_at: %s" % done)
            self.assertLess(late, 0.1, "started %.3fs after run_at: %s" % (late, done))
        ran_on = {r[0] for r in a.sql("SELECT node_id FROM jobs")}
        self.assertLessEqual(ran_on, {d.node_id for d in nodes}, ran_on)

    def test_scheduled_job_on_an_idle_node(self):
        d = self.start({"queue": {"workers": "2"}})
        self.check_on_time([d], (1.0, 1.3))

    def test_scheduled_jobs_across_nodes(self):
        a = self.start({"queue": {"workers": "2"}})
        b = self.start({"queue": {"workers": "2"}}, schema=a.schema, node_id=a.node_id + "-b")
        self.check_on_time([a, b], (1.0, 1.2, 1.4, 1.6))


class PipelineAcrossNodesTest(PipelineTestCase):
    def test_pipeline_claimed_by_another_node_when_submitter_is_full(self):
        # Node A (one worker) holds as much as its local backlog takes
        # (4 * workers + 32 jobs, the first one running); a pipeline
        # submitted to it then is stored unclaimed, and node B claims it.
        a = self.start({"queue": {"workers": "1", "shutdown_grace": "200ms"}})
        b = self.start({"queue": {"workers": "1"}}, schema=a.schema,
                       node_id=a.node_id + "-b")
        cap = 4 * 1 + 32
        for i in range(cap):
            a.submit("sleep", {"seconds": 20}, timeout=30, name="filler-%d" % i)
        held = a.sql("SELECT claimed_by, count(*) FROM jobs GROUP BY 1 ORDER BY 1")
        self.assertEqual(held, [[a.node_id, str(cap)]],
                         "%d long jobs submitted to node A (one worker): all must be "
                         "claimed by A (its local backlog takes 4*workers+32)" % cap)
        params = {"token": str(uuid.uuid4()), "n": [1, 2, {"x": None}]}
        pl = a.submit_pipeline(pipeline_body(params), name="across-full")
        claims = a.sql("SELECT claimed_by FROM jobs WHERE pipeline_id = :'pl'", pl=pl["id"])
        self.assertNotIn([a.node_id], claims, "node A claimed the pipeline although its "
                         "local backlog was full")
        done = a.wait_pipeline(pl["id"], FINAL, timeout=10)
        self.assertEqual(done["status"], "COMPLETED", "%s\n%s\n%s"
                         % (done, self.pipeline_rows(a, pl["id"]), self.logs()))
        self.check_ran_on(a, pl, b, params, [a])
        # The fillers stayed on A.
        self.assertEqual(a.sql("SELECT count(*) FROM jobs WHERE pipeline_id IS NULL AND "
                               "claimed_by IS DISTINCT FROM :'a'", a=a.node_id), [["0"]])

    def test_scheduled_pipeline_runs_on_another_node_after_submitter_stopped(self):
        a = self.start({"queue": {"workers": "2"}})
        params = {"token": str(uuid.uuid4()), "nested": {"a": [1, 2]}}
        run_at = time.time() + 2.0
        pl = a.submit_pipeline(pipeline_body(params), name="across-later",
                               run_at=fmt_ts(run_at))
        self.assertEqual(a.sql("SELECT count(*) FROM jobs WHERE pipeline_id = :'pl' AND "
                               "claimed_by IS NULL", pl=pl["id"]), [["3"]],
                         "a scheduled pipeline must be stored unclaimed")
        rc, _ = a.terminate()
        a.check_exit(rc)
        self.assertLess(time.time(), run_at - 0.3, "node A took too long to stop")
        b = self.start({"queue": {"workers": "2"}}, schema=a.schema, node_id=a.node_id + "-b")
        done = b.wait_pipeline(pl["id"], FINAL, timeout=max(run_at - time.time(), 0) + 4)
        self.assertEqual(done["status"], "COMPLETED", "%s\n%s\n%s"
                         % (done, self.pipeline_rows(b, pl["id"]), self.logs()))
        self.check_ran_on(b, pl, b, params, [a])
        first = self.pipeline_rows(b, pl["id"])[0]
        self.assertGreaterEqual(first[8], run_at - 0.001, "first job started before run_at")


class LimitsAcrossNodesTest(PgTestCase):
    def test_claimed_job_runs_with_its_own_limits(self):
        # Node A stores a scheduled job with its own output limit and stops;
        # node B, whose configured default is 1M, claims and runs it with the
        # job's 4k. The limits column holds the effective limits.
        a = self.start({})
        run_at = time.time() + 1.5
        job = a.submit("hostile_flood", timeout=10, limits={"output": "4k", "processes": 9},
                       run_at=fmt_ts(run_at))
        rc, _ = a.terminate()
        a.check_exit(rc)
        b = self.start({}, schema=a.schema, node_id=a.node_id + "-b")
        done = b.wait_for(job["id"], FINAL, timeout=max(run_at - time.time(), 0) + 5)
        self.assertEqual(done["failure_reason"],
                         "output limit exceeded (more than 4 KiB on stdout/stderr)", done)
        self.assertEqual(done["limits"]["output"], 4096)
        self.assertEqual(done["limits"]["processes"], 9)
        rows = b.sql("SELECT node_id, limits->>'output', limits->>'processes', "
                     "isolation->>'profile' FROM jobs WHERE id = :'id'", id=job["id"])
        # The isolation it got is recorded with the job, as the API shows it.
        self.assertEqual(rows, [[b.node_id, "4096", "9", "strict"]])
        self.assertEqual(done["isolation"]["profile"], "strict")
        # A job that set no limits stores none.
        other = b.submit("dummytask")
        b.wait_for(other["id"])
        self.assertEqual(b.sql("SELECT limits FROM jobs WHERE id = :'id'", id=other["id"]),
                         [[None]])


class PipelineRescueTest(PipelineTestCase):
    CONFIG = {"queue": {"workers": "2"},
              "storage": {"lease": "2s", "retry_backoff": "100ms"}}

    def kill_mid_pipeline(self, max_attempts):
        """Nodes A and B ([jobs] max_attempts); a pipeline dummytask ->
        sleep 3 s -> echoprev submitted to A; SIGKILL A while the sleep
        runs. Returns (a, b, pipeline, first job row at the kill, kill time)."""
        cfg = dict(self.CONFIG, jobs={"max_attempts": str(max_attempts)})
        a = self.start(cfg)
        b = self.start(cfg, schema=a.schema, node_id=a.node_id + "-b")
        pl = a.submit_pipeline([
            {"name": "first", "task_name": "dummytask", "task_params": {"v": 1}},
            {"name": "sleep", "task_name": "sleep", "task_params": {"seconds": 3},
             "timeout": 30},
            {"name": "echo", "task_name": "echoprev", "use_previous_results": True},
        ], name="rescue-%d" % max_attempts)
        ids = [j["id"] for j in pl["jobs"]]
        self.assertEqual(a.sql("SELECT count(*) FROM jobs WHERE pipeline_id = :'pl' AND "
                               "claimed_by IS DISTINCT FROM :'a' AND " + OPEN,
                               pl=pl["id"], a=a.node_id), [["0"]],
                         "an idle node A must store the pipeline claimed by itself: %s"
                         % self.pipeline_rows(a, pl["id"]))
        self.wait_sql(a, "SELECT status FROM jobs WHERE id = :'id' AND status = "
                      "'IN_PROGRESS' AND claimed_by = :'a' AND started_at > now() - "
                      "interval '2.5 s'", lambda rows: bool(rows), 5,
                      "the sleep job IN_PROGRESS on node A", interval=0.02, id=ids[1],
                      a=a.node_id, explain=lambda: str(self.pipeline_rows(a, pl["id"])))
        self.assertEqual(a.kill(signal.SIGKILL), -signal.SIGKILL)
        t_kill = time.time()
        first = self.pipeline_rows(a, pl["id"])[0]
        self.assertEqual(first[1:3], ["COMPLETED", a.node_id], first)
        return a, b, pl, first, t_kill

    def wait_pipeline_final(self, d, pl_id, timeout):
        self.wait_sql(d, "SELECT status FROM pipelines WHERE id = :'id' AND status IN "
                      "('COMPLETED', 'FAILED', 'CANCELLED')", lambda rows: bool(rows), timeout,
                      "pipeline final after node A was killed", id=pl_id,
                      explain=lambda: "jobs: %s\nattempts: %s" % (
                          self.pipeline_rows(d, pl_id), self.attempts_by_job(d)))

    def test_pipeline_rescued_mid_run_retries_on_another_node(self):
        a, b, pl, first, t_kill = self.kill_mid_pipeline(2)
        ids = [j["id"] for j in pl["jobs"]]
        self.wait_pipeline_final(b, pl["id"], 15)
        rows = self.pipeline_rows(b, pl["id"])
        attempts = self.attempts_by_job(b)
        what = "jobs: %s\nattempts: %s\n%s" % (rows, attempts, self.logs())
        self.assertEqual(b.sql("SELECT status, failure_reason FROM pipelines WHERE id = :'id'",
                               id=pl["id"]), [["COMPLETED", None]], what)
        # The sleep job: attempt 1 failed on A when its lease expired,
        # attempt 2 ran on B.
        atts = attempts.get(ids[1], [])
        self.assertEqual([(x[0], x[1], x[2]) for x in atts],
                         [(1, a.node_id, "FAILED"), (2, b.node_id, "COMPLETED")], what)
        self.assertIn("node %s stopped renewing its lease" % a.node_id, atts[0][3] or "", what)
        self.assertTrue(1.0 < atts[0][5] - t_kill < 5.0, "attempt 1 failed %.2fs after the "
                        "kill (lease 2s): %s" % (atts[0][5] - t_kill, atts))
        self.assertGreaterEqual(atts[1][4], atts[0][5], "attempt 2 started before attempt 1 "
                                "was failed: %s" % (atts,))
        self.assertEqual(rows[1][1:5], ["COMPLETED", b.node_id, None, 2], what)
        self.assertEqual(rows[1][6], {"slept": 3}, what)
        # The last job ran on B with the sleep's result.
        self.assertEqual(rows[2][1:5], ["COMPLETED", b.node_id, None, 1], what)
        self.assertEqual(rows[2][6], {"slept": 3}, what)
        self.assertEqual([(x[0], x[1], x[2]) for x in attempts.get(ids[2], [])],
                         [(1, b.node_id, "COMPLETED")], what)
        # The first job is not run again.
        self.assertEqual(rows[0][:8], first[:8], "the first job changed after the rescue")
        self.assertEqual(rows[0][4], 1, what)
        self.assertEqual([(x[0], x[1], x[2]) for x in attempts.get(ids[0], [])],
                         [(1, a.node_id, "COMPLETED")], what)
        self.assertNotIn(ids[0], finished_ids(b), "node B ran the first job again")
        self.assertLessEqual({ids[1], ids[2]}, finished_ids(b), "node B's log")
        # The API (through B) agrees.
        self.assertEqual(b.pipeline(pl["id"])["status"], "COMPLETED")
        j = b.job(ids[1])
        self.assertEqual((j["status"], j.get("attempt"), j.get("max_attempts")),
                         ("COMPLETED", 2, 2), j)
        self.assertEqual(b.result(ids[2]).get("metadata"), {"slept": 3})

    def test_pipeline_rescued_mid_run_without_retries_fails(self):
        a, b, pl, first, t_kill = self.kill_mid_pipeline(1)
        ids = [j["id"] for j in pl["jobs"]]
        self.wait_pipeline_final(b, pl["id"], 10)
        t_final = time.time()
        rows = self.pipeline_rows(b, pl["id"])
        attempts = self.attempts_by_job(b)
        what = "jobs: %s\nattempts: %s\n%s" % (rows, attempts, self.logs())
        self.assertEqual(b.sql("SELECT status, failure_reason FROM pipelines WHERE id = :'id'",
                               id=pl["id"]), [["FAILED", "job %s failed" % ids[1]]], what)
        self.assertEqual(rows[1][1:5], ["FAILED", a.node_id, None, 1], what)
        self.assertIn("node %s stopped renewing its lease" % a.node_id, rows[1][5] or "", what)
        self.assertEqual([(x[0], x[1], x[2]) for x in attempts.get(ids[1], [])],
                         [(1, a.node_id, "FAILED")], what)
        self.assertEqual(rows[2][1], "CANCELLED", what)
        self.assertEqual(rows[2][3], None, what)
        self.assertEqual(rows[2][5], "cancelled: job %s failed" % ids[1], what)
        self.assertEqual(rows[0][:8], first[:8], "the first job changed after the rescue")
        self.assertLess(t_final - t_kill, 6.0, "pipeline failed %.1fs after the kill (lease 2s)"
                        % (t_final - t_kill))
        self.assertEqual(finished_ids(b) & set(ids), set(), "node B ran pipeline jobs")
        self.assertEqual(b.pipeline(pl["id"])["status"], "FAILED")
        jobs = b.get_json("/api/pipelines/%s/jobs" % pl["id"])["jobs"]
        self.assertEqual([j["status"] for j in jobs], ["COMPLETED", "FAILED", "CANCELLED"], jobs)
        self.assertIn("node %s stopped renewing its lease" % a.node_id,
                      jobs[1].get("failure_reason", ""), jobs)


class DrainTest(PipelineTestCase):
    """A node told to stop (SIGTERM) drains: it starts nothing more and lets
    what runs finish for shutdown_grace. The work it holds claimed and has
    not started - standalone jobs, pipelines none of whose jobs started -
    it gives back to the queue at once (with a NOTIFY), so that the other
    nodes run it during the grace period, not after it; it runs none of it
    itself, fails none, and its running job finishes there as before."""

    def test_unstarted_work_goes_to_other_nodes_at_once(self):
        a = self.start({"queue": {"workers": "1", "shutdown_grace": "60s"}})
        running = a.submit("sleep", {"seconds": 4}, timeout=30, name="drain-running")
        self.wait_sql(a, "SELECT 1 FROM jobs WHERE id = :'id' AND status = 'IN_PROGRESS'",
                      bool, 5, "the first job running on A", interval=0.02, id=running["id"])
        queued = [a.submit("sleep", {"seconds": 0.2}, timeout=30, name="drain-queued-%d" % i)
                  for i in range(4)]
        params = {"token": str(uuid.uuid4())}
        pl = a.submit_pipeline(pipeline_body(params), name="drain-pipeline")
        ids = [j["id"] for j in queued] + [j["id"] for j in pl["jobs"]]
        b = self.start({"queue": {"workers": "3"}}, schema=a.schema, node_id=a.node_id + "-b")
        self.assertEqual(a.sql("SELECT claimed_by, status, count(*) FROM jobs WHERE id <> :'r' "
                               "GROUP BY 1, 2", r=running["id"]),
                         [[a.node_id, "PENDING", str(len(ids))]],
                         "A (one worker, busy) must hold the other jobs claimed, unstarted")
        t_term = time.time()
        a.proc.send_signal(signal.SIGTERM)

        rows = self.wait_sql(
            a, "SELECT id, status, node_id, attempt, failure_reason, claimed_by, "
            "extract(epoch FROM started_at) FROM jobs WHERE id = ANY(:'ids'::uuid[])",
            lambda rows: all(r[1] == "COMPLETED" for r in rows), 20,
            "A's unstarted jobs COMPLETED after its SIGTERM", interval=0.05,
            explain=lambda: self.queue_state(a), ids="{%s}" % ",".join(ids))
        rc = a.proc.wait(20)
        a.check_exit(rc)
        done = a.sql("SELECT status, node_id, attempt, failure_reason, claimed_by, "
                     "extract(epoch FROM completed_at) FROM jobs WHERE id = :'id'",
                     id=running["id"])
        self.assertEqual(done[0][:5], ["COMPLETED", a.node_id, "1", None, None],
                         "A's running job must finish on A through the drain\n%s" % self.logs())
        finished_at = float(done[0][5])
        late = max(float(r[6]) for r in rows) - t_term
        # Given back at the drain's start: B starts them at once (it has
        # room for all), not once A's running job is done (and A closes).
        self.assertLess(late, 2.0, "A's unstarted jobs started on B %.1fs after A's SIGTERM "
                        "(A's running job finished %.1fs after it): held through the grace "
                        "period\n%s" % (late, finished_at - t_term, self.logs()))
        self.assertLess(late, finished_at - t_term, "not started before A's running job ended")
        sys.stderr.write("[A's unstarted work started on B within %.2fs of its SIGTERM] " % late)
        bad = [r for r in rows if r[1:6] != ["COMPLETED", b.node_id, "1", None, None]]
        self.assertNoneBad(bad, "given-back jobs not COMPLETED once on B, unfailed (id, "
                           "status, node_id, attempt, reason, claimed_by)", logs=True)
        self.assertEqual(a.sql("SELECT count(*) FROM attempts WHERE job_id = ANY(:'ids'::uuid[])",
                               ids="{%s}" % ",".join(ids)), [["0"]], self.attempts_by_job(a))
        self.assertEqual(set(ids) & finished_ids(a), set(), "jobs A gave back also ran on A")
        self.assertEqual(set(ids) - finished_ids(b), set(), "given-back jobs B's log misses")
        self.check_ran_on(a, pl, b, params, [a])
        self.assertNotIn("while the job was running", a.log_text() + b.log_text())
        self.assertEqual(a.sql("SELECT count(*) FROM jobs WHERE claimed_by IS NOT NULL"),
                         [["0"]])


class NodeIdInUseTest(PgTestCase):
    def test_second_daemon_with_the_same_node_id(self):
        a = self.start({"queue": {"workers": "2"}})
        job = a.submit("sleep", {"seconds": 2.5}, timeout=30)
        self.wait_sql(a, "SELECT status FROM jobs WHERE id = :'id' AND status = 'IN_PROGRESS'",
                      lambda rows: bool(rows), 5, "job IN_PROGRESS on A", interval=0.02,
                      id=job["id"])
        twin = self.start(daemon=LateDaemon({"queue": {"workers": "2"}}, store="postgres",
                                            schema=a.schema, node_id=a.node_id))
        # Until A's job is done, the twin must stay unhealthy and take
        # nothing over; what it answers is checked after the job's fate.
        answers = {}
        deadline = time.monotonic() + 10
        while a.job(job["id"])["status"] not in FINAL:
            if time.monotonic() > deadline:
                self.fail("A's job not final within 10s\n%s" % self.logs())
            r = twin.get("/api/status")
            key = ("GET /api/status", r.status, (r.json or {}).get("storage_healthy"))
            answers[key] = answers.get(key, 0) + 1
            r = twin.post("/api/jobs", {"name": "twin", "task_name": "dummytask"})
            key = ("POST /api/jobs", r.status, (r.json or {}).get("message"))
            answers[key] = answers.get(key, 0) + 1
            time.sleep(0.1)
        self.assertTrue(twin.alive(), twin.log_tail())
        rows = a.sql("SELECT status, node_id, failure_reason, attempt, claimed_by FROM jobs "
                     "WHERE id = :'id'", id=job["id"])
        self.assertEqual(rows, [["COMPLETED", a.node_id, None, "1", None]],
                         "A's running job after a second daemon with its node id started\n%s"
                         % self.logs())
        self.assertEqual(a.sql("SELECT count(*) FROM attempts WHERE status <> 'COMPLETED'"),
                         [["0"]], self.attempts_by_job(a))
        self.assertEqual(a.sql("SELECT pid, stopped_at FROM nodes WHERE node_id = :'n'",
                               n=a.node_id), [[str(a.proc.pid), None]],
                         "the nodes row is not A's any more")
        self.assertNotIn("released_from_earlier_run", twin.log_text(),
                         "the second daemon registered: %s" % twin.log_tail())
        self.assertEqual(set(answers), {("GET /api/status", 503, False),
                                        ("POST /api/jobs", 503, STORAGE_DOWN)},
                         "answers of the second daemon while A ran its job: %s" % answers)
        # The log quotes the message: its quotes may come escaped.
        in_use = r'node id \\?"%s\\?" is in use by another valetd' % re.escape(a.node_id)
        self.assertRegex(twin.log_text(), in_use, "the second daemon's log does not say why")
        # Once A stops, the twin gets the node id (it keeps retrying).
        rc, _ = a.terminate()
        a.check_exit(rc)
        deadline = time.monotonic() + 8
        while twin.get("/api/status").status != 200:
            if time.monotonic() > deadline:
                self.fail("the second daemon is not healthy 8s after the first one stopped\n%s"
                          % twin.log_tail())
            time.sleep(0.05)
        self.assertEqual(a.sql("SELECT pid, stopped_at FROM nodes WHERE node_id = :'n'",
                               n=a.node_id), [[str(twin.proc.pid), None]])
        j2 = twin.submit("dummytask", {"twin": 1})
        twin.wait_for(j2["id"], "COMPLETED", timeout=5)


class RetryTest(PgTestCase):
    def attempts_ok(self, d, job, n, message):
        """job (failtask) ended FAILED after n attempts on d, all recorded."""
        done = d.wait_for(job["id"], FINAL, timeout=10)
        atts = self.attempts_by_job(d).get(job["id"], [])
        what = "job %s\nattempts (attempt, node, status, reason, started, finished): %s" % (
            done, atts)
        self.assertEqual(done["status"], "FAILED", what)
        self.assertEqual(done.get("failure_reason"), message, what)
        if n > 1:
            self.assertEqual((done.get("attempt"), done.get("max_attempts")), (n, n), what)
        else:
            self.assertNotIn("max_attempts", done, what)
        self.assertEqual([(x[0], x[1], x[2]) for x in atts],
                         [(i, d.node_id, "FAILED") for i in range(1, n + 1)] if n > 1 else [],
                         what)
        for x in atts:
            self.assertIn(message, x[3] or "", what)
        for x, y in zip(atts, atts[1:]):
            # retry_backoff 50ms, doubling, times 0.5-1.0: at least 25 ms after the
            # attempt ended, so after it started. (Its finished_at is when the retry
            # was written, which can be later than its end by a commit under load.)
            self.assertGreaterEqual(y[4] - x[4], 0.025, "retried too early: " + what)
        rows = d.sql("SELECT status, attempt, max_attempts, failure_reason, claimed_by "
                     "FROM jobs WHERE id = :'id'", id=job["id"])
        self.assertEqual(rows, [["FAILED", str(n), str(n), message, None]], what)

    def test_retries_recorded_on_one_node(self):
        d = self.start({"queue": {"workers": "2"}, "jobs": {"max_attempts": "3"},
                        "storage": {"retry_backoff": "50ms"}})
        three = d.submit("failtask", {"message": "boom three"})
        two = d.submit("failtask", {"message": "boom two"}, max_attempts=2)
        one = d.submit("failtask", {"message": "boom one"}, max_attempts=1)
        ok = d.submit("dummytask", {"fine": True})
        self.attempts_ok(d, three, 3, "boom three")
        self.attempts_ok(d, two, 2, "boom two")
        self.attempts_ok(d, one, 1, "boom one")
        done = d.wait_for(ok["id"], FINAL, timeout=5)
        self.assertEqual((done["status"], done.get("attempt"), done.get("max_attempts")),
                         ("COMPLETED", 1, 3), done)
        self.assertEqual([(x[0], x[2]) for x in self.attempts_by_job(d).get(ok["id"], [])],
                         [(1, "COMPLETED")])

    def test_task_section_sets_max_attempts(self):
        d = self.start({"queue": {"workers": "2"}, "storage": {"retry_backoff": "50ms"},
                        "task.failtask": {"max_attempts": "2"}})
        two = d.submit("failtask", {"message": "task default"})
        three = d.submit("failtask", {"message": "request wins"}, max_attempts=3)
        other = d.submit("dummytask", {"x": 1})
        self.attempts_ok(d, two, 2, "task default")
        self.attempts_ok(d, three, 3, "request wins")
        done = d.wait_for(other["id"], FINAL, timeout=5)
        self.assertEqual(done["status"], "COMPLETED", done)
        self.assertNotIn("max_attempts", done, "[task.failtask] changed dummytask: %s" % done)
        self.assertEqual(d.sql("SELECT max_attempts, attempt FROM jobs WHERE id = :'id'",
                               id=other["id"]), [["1", "1"]])


if __name__ == "__main__":
    unittest.main()
