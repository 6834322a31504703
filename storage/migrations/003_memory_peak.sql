-- 003_memory_peak.sql - the memory peak of a job's cgroup.
--
-- memory_peak_kb: the peak memory use of the cgroup the job ran in (all its
-- processes, their page cache, its /tmp), reset at its start; NULL when the
-- job ran without a cgroup (or before this column existed).
ALTER TABLE @SCHEMA@.jobs ADD COLUMN memory_peak_kb integer;
ALTER TABLE @SCHEMA@.attempts ADD COLUMN memory_peak_kb integer;
