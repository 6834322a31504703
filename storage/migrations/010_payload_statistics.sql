-- 010_payload_statistics.sql - no planner statistics for the columns that
-- only carry a job's payload.
--
-- Autovacuum's ANALYZE of jobs samples up to 30,000 rows and, for every
-- column, sorts the sampled values to find the most common ones and a
-- histogram. For the jsonb columns (task_params, result_metadata, limits,
-- isolation) that sort compares whole JSON documents: it was a fifth of
-- PostgreSQL's CPU in the benchmark's job path (a table that grows from
-- empty is analyzed after every 10% of growth). No query of valet's, and no
-- view of 005, filters or joins on these columns or on the free text ones
-- (description, failure_reason, result_error): their statistics are never
-- used. STATISTICS 0 makes ANALYZE skip them; the columns that queries do
-- filter on (status, task_name, the timestamps, the queue's columns) keep
-- theirs. A dashboard's own query on a payload column is planned with the
-- default estimates, as an expression on a jsonb column is anyway.
ALTER TABLE @SCHEMA@.jobs
	ALTER COLUMN task_params SET STATISTICS 0,
	ALTER COLUMN result_metadata SET STATISTICS 0,
	ALTER COLUMN limits SET STATISTICS 0,
	ALTER COLUMN isolation SET STATISTICS 0,
	ALTER COLUMN description SET STATISTICS 0,
	ALTER COLUMN failure_reason SET STATISTICS 0,
	ALTER COLUMN result_error SET STATISTICS 0;
ALTER TABLE @SCHEMA@.pipelines
	ALTER COLUMN description SET STATISTICS 0,
	ALTER COLUMN failure_reason SET STATISTICS 0;
ALTER TABLE @SCHEMA@.attempts ALTER COLUMN failure_reason SET STATISTICS 0;
