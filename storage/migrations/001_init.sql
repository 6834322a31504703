-- 001_init.sql - valet's tables, indexes, views and queue functions.
--
-- @SCHEMA@ is replaced by the configured schema name ([storage] schema, default
-- "valet"). valetd applies every migration it knows and has not yet recorded
-- in @SCHEMA@.schema_migrations, in order, in one transaction, under an
-- advisory lock, at startup. Migrations only ever add; none drops user data.

-- ---- nodes: every valetd that uses this database ---------------------------
CREATE TABLE @SCHEMA@.nodes (
	node_id      text PRIMARY KEY,
	hostname     text NOT NULL,
	pid          integer NOT NULL,
	version      text NOT NULL,
	started_at   timestamptz NOT NULL DEFAULT now(),
	heartbeat_at timestamptz NOT NULL DEFAULT now(),
	lease_until  timestamptz NOT NULL,
	stopped_at   timestamptz
);

-- ---- pipelines ----------------------------------------------------------------
CREATE TABLE @SCHEMA@.pipelines (
	id             uuid PRIMARY KEY,
	seq            bigint GENERATED ALWAYS AS IDENTITY,
	name           text NOT NULL,
	description    text,
	status         text NOT NULL CHECK (status IN ('PENDING', 'SCHEDULED', 'IN_PROGRESS',
						    'COMPLETED', 'FAILED', 'CANCELLED')),
	failure_reason text,
	run_at         timestamptz,
	created_at     timestamptz NOT NULL,
	started_at     timestamptz,
	completed_at   timestamptz
);
CREATE UNIQUE INDEX pipelines_seq ON @SCHEMA@.pipelines (seq);
CREATE INDEX pipelines_status ON @SCHEMA@.pipelines (status, seq);
CREATE INDEX pipelines_completed ON @SCHEMA@.pipelines (completed_at)
	WHERE completed_at IS NOT NULL;

-- ---- jobs -----------------------------------------------------------------------
CREATE TABLE @SCHEMA@.jobs (
	id                   uuid PRIMARY KEY,
	seq                  bigint GENERATED ALWAYS AS IDENTITY,
	name                 text NOT NULL,
	description          text,
	task_name            text NOT NULL,
	task_params          jsonb,
	timeout_ms           bigint NOT NULL CHECK (timeout_ms > 0),
	status               text NOT NULL CHECK (status IN ('PENDING', 'SCHEDULED', 'IN_PROGRESS',
							  'COMPLETED', 'FAILED', 'CANCELLED')),
	failure_reason       text,
	run_at               timestamptz,
	scheduled_at         timestamptz,
	created_at           timestamptz NOT NULL,
	started_at           timestamptz,
	completed_at         timestamptz,
	-- pipeline membership
	pipeline_id          uuid REFERENCES @SCHEMA@.pipelines (id) ON DELETE CASCADE,
	pipeline_index       integer,
	next_job_id          uuid,
	use_previous_results boolean NOT NULL DEFAULT false,
	-- the queue: a job is runnable from due_at on while no node claims it
	due_at               timestamptz,
	claimed_by           text,
	claimed_at           timestamptz,
	attempt              integer NOT NULL DEFAULT 0,
	max_attempts         integer NOT NULL DEFAULT 1 CHECK (max_attempts >= 1),
	-- the outcome of the last attempt
	node_id              text,
	pid                  integer,
	exit_code            integer,
	signal               text,
	timed_out            boolean,
	oom_killed           boolean,
	seccomp_syscall      text,
	cpu_ms               integer,
	wall_ms              integer,
	max_rss_kb           integer
);
CREATE UNIQUE INDEX jobs_seq ON @SCHEMA@.jobs (seq);
CREATE INDEX jobs_queue ON @SCHEMA@.jobs (due_at, seq)
	WHERE claimed_by IS NULL AND due_at IS NOT NULL;
CREATE INDEX jobs_claimed ON @SCHEMA@.jobs (claimed_by) WHERE claimed_by IS NOT NULL;
CREATE INDEX jobs_status ON @SCHEMA@.jobs (status, seq);
CREATE INDEX jobs_pipeline ON @SCHEMA@.jobs (pipeline_id, pipeline_index)
	WHERE pipeline_id IS NOT NULL;
CREATE INDEX jobs_completed ON @SCHEMA@.jobs (completed_at) WHERE completed_at IS NOT NULL;

-- ---- results: what a finished job returned, written with its final status ----
CREATE TABLE @SCHEMA@.results (
	job_id     uuid PRIMARY KEY REFERENCES @SCHEMA@.jobs (id) ON DELETE CASCADE,
	metadata   jsonb,
	error      text,
	created_at timestamptz NOT NULL DEFAULT now()
);

-- ---- attempts: one row per finished run of a job that may be retried ------------
-- (max_attempts > 1), and of any run a node failure cut short. A job that may
-- run only once keeps its one outcome in its jobs row.
CREATE TABLE @SCHEMA@.attempts (
	job_id          uuid NOT NULL REFERENCES @SCHEMA@.jobs (id) ON DELETE CASCADE,
	attempt         integer NOT NULL,
	node_id         text,
	status          text NOT NULL CHECK (status IN ('COMPLETED', 'FAILED', 'CANCELLED')),
	failure_reason  text,
	started_at      timestamptz,
	finished_at     timestamptz NOT NULL,
	pid             integer,
	exit_code       integer,
	signal          text,
	timed_out       boolean,
	oom_killed      boolean,
	seccomp_syscall text,
	cpu_ms          integer,
	wall_ms         integer,
	max_rss_kb      integer,
	PRIMARY KEY (job_id, attempt)
);

-- ---- views for operators ------------------------------------------------------------
CREATE VIEW @SCHEMA@.queue_depth AS
SELECT task_name, status, count(*) AS jobs, min(created_at) AS oldest_created_at
FROM @SCHEMA@.jobs
GROUP BY task_name, status;

CREATE VIEW @SCHEMA@.task_throughput AS
SELECT date_trunc('minute', completed_at) AS minute,
       task_name,
       count(*) FILTER (WHERE status = 'COMPLETED') AS completed,
       count(*) FILTER (WHERE status = 'FAILED') AS failed,
       count(*) FILTER (WHERE status = 'CANCELLED') AS cancelled,
       round(count(*) FILTER (WHERE status = 'FAILED')::numeric
	     / nullif(count(*) FILTER (WHERE status IN ('COMPLETED', 'FAILED')), 0), 4)
	       AS failure_rate
FROM @SCHEMA@.jobs
WHERE completed_at IS NOT NULL
GROUP BY 1, 2;

CREATE VIEW @SCHEMA@.task_durations AS
SELECT task_name,
       count(*) AS jobs,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY wall_ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY wall_ms) AS p95_ms,
       max(wall_ms) AS max_ms
FROM @SCHEMA@.jobs
WHERE status IN ('COMPLETED', 'FAILED') AND wall_ms IS NOT NULL
  AND completed_at > now() - interval '1 hour'
GROUP BY task_name;

CREATE VIEW @SCHEMA@.running_jobs AS
SELECT j.id, j.task_name, j.name, j.node_id, j.pid, j.attempt, j.started_at,
       now() - j.started_at AS running_for,
       j.timeout_ms, j.pipeline_id,
       n.heartbeat_at AS node_heartbeat_at,
       n.lease_until < now() AS node_lease_expired
FROM @SCHEMA@.jobs j
LEFT JOIN @SCHEMA@.nodes n ON n.node_id = j.node_id
WHERE j.status = 'IN_PROGRESS';

-- ---- queue functions ---------------------------------------------------------------------

-- One attempt of a running job ended without an outcome from its node (the
-- node died or restarted): record the attempt, then retry it after a
-- backoff when attempts remain, else fail it (and the rest of its pipeline).
CREATE FUNCTION @SCHEMA@.fail_attempt(p_id uuid, p_reason text, p_backoff_ms bigint,
				      p_backoff_max_ms bigint)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
	j @SCHEMA@.jobs;
	delay_ms double precision;
BEGIN
	SELECT * INTO j FROM @SCHEMA@.jobs WHERE id = p_id FOR UPDATE;
	IF NOT FOUND OR j.status NOT IN ('IN_PROGRESS') THEN
		RETURN;
	END IF;
	INSERT INTO @SCHEMA@.attempts (job_id, attempt, node_id, status, failure_reason,
				       started_at, finished_at)
	VALUES (j.id, greatest(j.attempt, 1), j.node_id, 'FAILED', p_reason, j.started_at, now())
	ON CONFLICT (job_id, attempt) DO NOTHING;
	IF j.attempt < j.max_attempts THEN
		delay_ms := least(p_backoff_max_ms::double precision,
				  p_backoff_ms * power(2, greatest(j.attempt - 1, 0)));
		delay_ms := delay_ms * (0.5 + random() / 2);
		UPDATE @SCHEMA@.jobs
		SET status = 'PENDING', claimed_by = NULL, claimed_at = NULL,
		    due_at = now() + delay_ms * interval '1 millisecond',
		    failure_reason = format('attempt %s failed: %s', j.attempt, p_reason)
		WHERE id = j.id;
		RETURN;
	END IF;
	UPDATE @SCHEMA@.jobs
	SET status = 'FAILED', failure_reason = p_reason, completed_at = now(),
	    claimed_by = NULL, claimed_at = NULL, due_at = NULL
	WHERE id = j.id;
	INSERT INTO @SCHEMA@.results (job_id, metadata, error) VALUES (j.id, NULL, p_reason)
	ON CONFLICT (job_id) DO UPDATE SET metadata = NULL, error = excluded.error;
	IF j.pipeline_id IS NOT NULL THEN
		UPDATE @SCHEMA@.jobs
		SET status = 'CANCELLED', failure_reason = format('cancelled: job %s failed', j.id),
		    completed_at = now(), claimed_by = NULL, claimed_at = NULL, due_at = NULL
		WHERE pipeline_id = j.pipeline_id AND pipeline_index > j.pipeline_index
		  AND status IN ('PENDING', 'SCHEDULED');
		UPDATE @SCHEMA@.pipelines
		SET status = 'FAILED', failure_reason = format('job %s failed', j.id),
		    completed_at = now()
		WHERE id = j.pipeline_id;
	END IF;
END
$fn$;

-- Give back everything node p_node holds: running attempts fail (and may be
-- retried), claimed but unstarted work goes back to the queue. Used by a
-- node for its own leftovers when it starts, and by any node for a node
-- whose lease expired. Returns the number of jobs released.
CREATE FUNCTION @SCHEMA@.release_node(p_node text, p_reason text, p_backoff_ms bigint,
				      p_backoff_max_ms bigint)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
	j record;
	head @SCHEMA@.jobs;
	released integer := 0;
BEGIN
	FOR j IN SELECT id, status FROM @SCHEMA@.jobs
		 WHERE claimed_by = p_node AND pipeline_id IS NULL FOR UPDATE
	LOOP
		IF j.status = 'IN_PROGRESS' THEN
			PERFORM @SCHEMA@.fail_attempt(j.id, p_reason, p_backoff_ms, p_backoff_max_ms);
		ELSE
			UPDATE @SCHEMA@.jobs SET claimed_by = NULL, claimed_at = NULL,
			       due_at = coalesce(due_at, run_at, created_at)
			WHERE id = j.id;
		END IF;
		released := released + 1;
	END LOOP;
	FOR j IN SELECT DISTINCT pipeline_id FROM @SCHEMA@.jobs
		 WHERE claimed_by = p_node AND pipeline_id IS NOT NULL
	LOOP
		PERFORM 1 FROM @SCHEMA@.jobs WHERE pipeline_id = j.pipeline_id FOR UPDATE;
		SELECT * INTO head FROM @SCHEMA@.jobs
		WHERE pipeline_id = j.pipeline_id
		  AND status IN ('PENDING', 'SCHEDULED', 'IN_PROGRESS')
		ORDER BY pipeline_index LIMIT 1;
		IF FOUND AND head.status = 'IN_PROGRESS' THEN
			PERFORM @SCHEMA@.fail_attempt(head.id, p_reason, p_backoff_ms,
						      p_backoff_max_ms);
		ELSIF FOUND THEN
			UPDATE @SCHEMA@.jobs SET due_at = coalesce(due_at, now())
			WHERE id = head.id;
		END IF;
		UPDATE @SCHEMA@.jobs SET claimed_by = NULL, claimed_at = NULL
		WHERE pipeline_id = j.pipeline_id AND claimed_by = p_node;
		released := released + 1;
	END LOOP;
	IF released > 0 THEN
		PERFORM pg_notify('@SCHEMA@_jobs', '');
	END IF;
	RETURN released;
END
$fn$;

-- Release the work of every other node whose lease has expired. Nodes are
-- locked with SKIP LOCKED, so two rescuers never release the same node.
CREATE FUNCTION @SCHEMA@.rescue_expired(p_me text, p_backoff_ms bigint,
					p_backoff_max_ms bigint)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
	n record;
	released integer := 0;
BEGIN
	FOR n IN SELECT node_id, lease_until FROM @SCHEMA@.nodes
		 WHERE lease_until < now() AND node_id <> p_me
		   AND EXISTS (SELECT 1 FROM @SCHEMA@.jobs WHERE claimed_by = nodes.node_id)
		 FOR UPDATE SKIP LOCKED
	LOOP
		released := released + @SCHEMA@.release_node(n.node_id,
			format('node %s stopped renewing its lease (expired %s) while the job was running',
			       n.node_id, to_char(n.lease_until AT TIME ZONE 'UTC',
						  'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
			p_backoff_ms, p_backoff_max_ms);
	END LOOP;
	RETURN released;
END
$fn$;
