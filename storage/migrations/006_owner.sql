-- 006_owner.sql - whose work a job or pipeline is.
--
-- owner: the name of the API key that submitted it ([server] auth_keys);
-- NULL for work submitted to an open API. A key sees only rows of its own
-- name (lists filter on it; a read by id of another's row is "not found");
-- an admin key sees all. A revoked key's rows keep its name. The jobs of a
-- pipeline have the pipeline's owner.
ALTER TABLE @SCHEMA@.jobs ADD COLUMN owner text;
ALTER TABLE @SCHEMA@.pipelines ADD COLUMN owner text;
CREATE INDEX jobs_owner ON @SCHEMA@.jobs (owner, seq) WHERE owner IS NOT NULL;
CREATE INDEX pipelines_owner ON @SCHEMA@.pipelines (owner, seq) WHERE owner IS NOT NULL;
