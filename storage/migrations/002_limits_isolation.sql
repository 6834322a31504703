-- 002_limits_isolation.sql - per-job resource limits and the isolation record.
--
-- limits: the job's effective limits when its request set any, as the API
-- shows them: {"memory": bytes|null, "cpu": seconds|null, "processes": n|null,
-- "output": bytes} (null = no limit). NULL: the job takes the defaults of
-- the node that runs it.
-- isolation: how the job's current or last run was isolated (namespaces,
-- cgroup, uid, profile), written when it starts; NULL until then.
ALTER TABLE @SCHEMA@.jobs ADD COLUMN limits jsonb, ADD COLUMN isolation jsonb;
