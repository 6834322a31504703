-- valet_reader.sql - the read-only role of valet's dashboards and alerts.
--
-- valet_reader may SELECT the views of valetd's schema (valet.queue_depth,
-- task_throughput, task_durations, running_jobs, finished_jobs, queue_age,
-- node_status, stuck_jobs) and nothing else: no table, no write. A view
-- reads its tables with its owner's rights (the daemon's role), so the
-- reader sees what the views show and no more (no task_params, results or
-- error texts beyond failure_reason). The view results (migration 009: the
-- result columns of jobs, in the old results table's shape) is valetd's and
-- its operators': this file grants on every view of the schema but that one.
--
-- valetd's migration 005 makes the role itself when its database role may
-- (CREATEROLE), and grants on the views whenever the role exists. When
-- valetd's role may not create roles, run this file once as a role that may
-- (a superuser, or the database's owner with CREATEROLE) - before or after
-- valetd's first start, and again after an upgrade that adds views:
--
--   psql -d valet -v schema=valet -f /usr/share/valet/sql/valet_reader.sql
--
-- Then give Grafana a login role that is a member:
--
--   CREATE ROLE grafana LOGIN PASSWORD 'secret' IN ROLE valet_reader;
--
-- schema: valetd's [storage] schema (default valet). Safe to run again.
\set ON_ERROR_STOP on
\if :{?schema}
\else
\set schema valet
\endif
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'valet_reader') AS create_role \gset
\if :create_role
CREATE ROLE valet_reader NOLOGIN;
\endif
-- Nothing more until valetd has made its schema (its first start grants).
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = :'schema') AS have_schema \gset
\if :have_schema
GRANT USAGE ON SCHEMA :"schema" TO valet_reader;
-- Every view but results (migration 009: the jobs' results, not for the reader).
SELECT format('GRANT SELECT ON %I.%I TO valet_reader', schemaname, viewname)
FROM pg_views WHERE schemaname = :'schema' AND viewname <> 'results' ORDER BY viewname \gexec
\else
\echo valet_reader.sql: no schema :schema yet: valetd grants on its views at its first start
\endif
