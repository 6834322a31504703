-- 007_api_keys.sql - API keys that every node of a cluster reads
-- ([server] auth_source = postgres; `valetd key create|list|revoke`).
--
-- One row per key: its name (the owner of the work it submits, jobs.owner),
-- its scopes, the SHA-256 of its token in hex (the token itself is stored
-- nowhere), when it was made and when revoked (NULL: live), and its policy
-- as the FIELD=VALUE words of a keys file line (api/auth_policy.c). A
-- revoked key keeps its row, so its name is never given to another key,
-- which would own the revoked key's work. The checks keep every row one
-- line of the keys file's format (no white space inside a field).
-- valet_reader is granted nothing here (migration 005 grants views only):
-- the hashes are for valetd.
CREATE TABLE @SCHEMA@.api_keys (
	name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
	scopes text NOT NULL CHECK (scopes ~ '^[a-z]+(,[a-z]+)*$'),
	token_sha256 text NOT NULL CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
	created_at timestamptz NOT NULL DEFAULT now(),
	revoked_at timestamptz,
	policy text NOT NULL DEFAULT ''
		CHECK (policy = '' OR policy ~ '^[^[:space:]]+( [^[:space:]]+)*$')
);
