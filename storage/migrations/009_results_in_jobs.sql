-- 009_results_in_jobs.sql - a job's result in columns of its jobs row; the
-- results table becomes a view of them.
--
-- Until now a finished job's result was a second row, in results: per job a
-- heap tuple, a results_pkey entry and the foreign key's check (which locks
-- the jobs row FOR KEY SHARE, one WAL record more), on top of the jobs row
-- the same statement updates anyway. Now the final UPDATE of the job writes
-- its result too:
--   result_metadata jsonb - what the task returned (NULL: nothing, or none);
--   result_error text     - the failure text of the result;
--   result_at timestamptz - when the result was written; NULL: the job has
--                           no result (not finished, cancelled before it ran,
--                           or its result deleted through the API).
-- The columns are part of the row: a job deleted (by the API or retention)
-- takes its result with it, as the foreign key's ON DELETE CASCADE did.
--
-- The rows of results move into the columns (each finished job's row is
-- written once more: this migration takes time in proportion to them), then
-- the table goes and a view of the same name and columns (job_id, metadata,
-- error, created_at) shows the jobs that have a result, for whoever reads
-- @SCHEMA@.results. valet_reader is granted nothing on it (005 grants named
-- views; packaging/sql/valet_reader.sql leaves this one out). An object of
-- someone else's that depends on the table (a view of theirs) makes this
-- migration fail, with nothing changed, rather than being dropped with it.
--
-- The view refuses every write (INSTEAD OF trigger): a simple view is
-- updatable, and an older valetd's DELETE of a result through it would
-- delete the job, its INSERT would try to make a jobs row. Writes now go
-- to the columns.
ALTER TABLE @SCHEMA@.jobs ADD COLUMN result_metadata jsonb, ADD COLUMN result_error text,
	ADD COLUMN result_at timestamptz;

UPDATE @SCHEMA@.jobs j
SET result_metadata = r.metadata, result_error = r.error, result_at = r.created_at
FROM @SCHEMA@.results r
WHERE r.job_id = j.id;

DROP TABLE @SCHEMA@.results;

CREATE VIEW @SCHEMA@.results AS
SELECT id AS job_id, result_metadata AS metadata, result_error AS error,
       result_at AS created_at
FROM @SCHEMA@.jobs
WHERE result_at IS NOT NULL;

CREATE FUNCTION @SCHEMA@.results_read_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
	RAISE EXCEPTION '%', 'valet: @SCHEMA@.results is a view since migration 009 (the results '
		'are columns of @SCHEMA@.jobs): upgrade the valetd that writes it'
		USING ERRCODE = 'object_not_in_prerequisite_state';
END
$fn$;
CREATE TRIGGER results_read_only INSTEAD OF INSERT OR UPDATE OR DELETE ON @SCHEMA@.results
	FOR EACH ROW EXECUTE FUNCTION @SCHEMA@.results_read_only();

-- fail_attempt() as in 001, its result written to the columns.
CREATE OR REPLACE FUNCTION @SCHEMA@.fail_attempt(p_id uuid, p_reason text, p_backoff_ms bigint,
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
	    claimed_by = NULL, claimed_at = NULL, due_at = NULL,
	    result_metadata = NULL, result_error = p_reason, result_at = now()
	WHERE id = j.id;
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
