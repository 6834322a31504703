-- 004_pipeline_claim.sql - a pipeline row says which node holds it.
--
-- A pipeline is claimed whole, with its jobs; until now only the jobs said
-- by whom, so a node that had lost a pipeline to a rescue could still write
-- the pipeline's status (and the late outcome of one of its finished jobs,
-- whose own claim ends with its final status). claimed_by: the node that
-- holds the pipeline (it runs it, or will), NULL when nobody does. It is
-- set with the claim of the pipeline's jobs (the insert of a pipeline
-- claimed at once, the claim of its head), cleared by the holder's write
-- of its final status and by release_node(). A node's writes of the
-- pipeline's status are fenced by it.
ALTER TABLE @SCHEMA@.pipelines ADD COLUMN claimed_by text;
CREATE INDEX pipelines_claimed ON @SCHEMA@.pipelines (claimed_by) WHERE claimed_by IS NOT NULL;

-- Pipelines held while this migration runs: by whoever holds their jobs.
UPDATE @SCHEMA@.pipelines p SET claimed_by = j.claimed_by
FROM (SELECT DISTINCT ON (pipeline_id) pipeline_id, claimed_by FROM @SCHEMA@.jobs
      WHERE pipeline_id IS NOT NULL AND claimed_by IS NOT NULL
      ORDER BY pipeline_id, claimed_at DESC) j
WHERE p.id = j.pipeline_id AND p.status NOT IN ('COMPLETED', 'FAILED', 'CANCELLED');

-- release_node() as in 001, and it gives back the pipeline rows too: those
-- of the pipelines whose jobs it releases, and any other the node still
-- holds (every job of it final, the pipeline's own final status never
-- written).
CREATE OR REPLACE FUNCTION @SCHEMA@.release_node(p_node text, p_reason text, p_backoff_ms bigint,
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
	UPDATE @SCHEMA@.pipelines SET claimed_by = NULL WHERE claimed_by = p_node;
	IF released > 0 THEN
		PERFORM pg_notify('@SCHEMA@_jobs', '');
	END IF;
	RETURN released;
END
$fn$;
