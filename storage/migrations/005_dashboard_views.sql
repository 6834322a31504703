-- 005_dashboard_views.sql - views for dashboards and alerts, and the
-- read-only role valet_reader.
--
-- The Grafana dashboard (packaging/grafana/valet-postgres.json) and the
-- alert rules (packaging/grafana/provisioning/alerting/) read these views
-- and the four of 001, never a table: a view runs with its owner's rights
-- (the daemon's role), so a role that may SELECT the views only sees what
-- they show - no task_params, no results, no way to write.
--
-- finished_jobs: one row per finished job (the outcome columns, times, the
--   failure's class), for throughput, failure reasons and percentiles over
--   any time range; failure_class is a short name of failure_reason's kind.
-- queue_age: per task, the queued jobs whose time has come and how long the
--   oldest has waited since (scheduled jobs are not late before run_at).
-- node_status: every node, its lease, and what it runs and holds.
-- stuck_jobs: running jobs that should have ended: past their timeout by
--   more than a minute (the kill did not happen or was not written), or on
--   a node whose lease expired (nobody rescued them yet).

CREATE VIEW @SCHEMA@.finished_jobs AS
SELECT j.id, j.task_name, j.node_id, j.status,
       CASE WHEN j.status <> 'FAILED' THEN NULL
	    WHEN j.timed_out OR r.reason LIKE 'timed out%' THEN 'timeout'
	    WHEN j.oom_killed OR r.reason LIKE 'out of memory%' THEN 'oom'
	    WHEN j.seccomp_syscall IS NOT NULL OR r.reason LIKE 'blocked by sandbox%' THEN 'seccomp'
	    WHEN r.reason LIKE '%lease%' OR r.reason LIKE '% while the job was running'
		 THEN 'lost node'
	    WHEN r.reason LIKE 'CPU time limit%' THEN 'cpu limit'
	    WHEN r.reason LIKE 'crashed:%' THEN 'signal'
	    WHEN r.reason LIKE 'sandbox setup failed%' OR r.reason LIKE 'could not start%'
		 THEN 'setup'
	    WHEN r.reason LIKE 'exited with status%' THEN 'exit'
	    WHEN r.reason LIKE 'killed at shutdown%' THEN 'shutdown'
	    WHEN r.reason LIKE 'output limit%' OR r.reason LIKE 'result too large%'
		 OR r.reason LIKE 'malformed result%' THEN 'output'
	    ELSE 'task error' END AS failure_class,
       j.failure_reason, j.attempt, j.pipeline_id,
       j.created_at, j.started_at, j.completed_at,
       (extract(epoch FROM j.started_at - coalesce(j.run_at, j.created_at)) * 1000)::bigint
	 AS queue_wait_ms,
       j.wall_ms, j.cpu_ms, j.max_rss_kb, j.memory_peak_kb,
       (j.isolation->>'degraded')::boolean AS isolation_degraded
FROM @SCHEMA@.jobs j
CROSS JOIN LATERAL (SELECT regexp_replace(coalesce(j.failure_reason, ''),
					  '^attempt [0-9]+ (of [0-9]+ )?failed: ', '') AS reason) r
WHERE j.status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND j.completed_at IS NOT NULL;

CREATE VIEW @SCHEMA@.queue_age AS
SELECT task_name, count(*) AS queued, min(due_at) AS oldest_due_at,
       greatest(extract(epoch FROM now() - min(due_at)), 0) AS oldest_wait_s
FROM @SCHEMA@.jobs
WHERE status IN ('PENDING', 'SCHEDULED') AND due_at IS NOT NULL AND due_at <= now()
GROUP BY task_name;

CREATE VIEW @SCHEMA@.node_status AS
SELECT n.node_id, n.hostname, n.version, n.started_at, n.heartbeat_at, n.lease_until,
       n.stopped_at,
       n.stopped_at IS NULL AND n.lease_until < now() AS lease_expired,
       (SELECT count(*) FROM @SCHEMA@.jobs j
	WHERE j.claimed_by = n.node_id AND j.status = 'IN_PROGRESS') AS running,
       (SELECT count(*) FROM @SCHEMA@.jobs j
	WHERE j.claimed_by = n.node_id AND j.status IN ('PENDING', 'SCHEDULED')) AS held
FROM @SCHEMA@.nodes n;

CREATE VIEW @SCHEMA@.stuck_jobs AS
SELECT id, task_name, name, node_id, started_at, running_for, timeout_ms,
       CASE WHEN node_lease_expired THEN 'node lease expired'
	    ELSE 'past its timeout' END AS why
FROM @SCHEMA@.running_jobs
WHERE node_lease_expired
   OR running_for > (timeout_ms + 60000) * interval '1 millisecond';

-- valet_reader: SELECT on the views, nothing else. Roles belong to the
-- whole cluster, and the daemon's role may not be allowed to make one
-- (CREATEROLE): it makes valet_reader (NOLOGIN) when it may, and grants
-- to it whenever it exists. Otherwise an administrator runs
-- packaging/sql/valet_reader.sql, before or after this migration. A later
-- migration that adds a view grants on it the same way.
DO $do$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'valet_reader')
	   AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user
		       AND (rolcreaterole OR rolsuper)) THEN
		BEGIN
			CREATE ROLE valet_reader NOLOGIN;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN
			NULL; /* another schema's first start made it meanwhile */
		END;
	END IF;
	IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'valet_reader') THEN
		GRANT USAGE ON SCHEMA @SCHEMA@ TO valet_reader;
		GRANT SELECT ON @SCHEMA@.queue_depth, @SCHEMA@.task_throughput,
			@SCHEMA@.task_durations, @SCHEMA@.running_jobs, @SCHEMA@.finished_jobs,
			@SCHEMA@.queue_age, @SCHEMA@.node_status, @SCHEMA@.stuck_jobs
			TO valet_reader;
	END IF;
END
$do$;
