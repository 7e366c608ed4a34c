-- hookrelay's database and its two roles, created by PostgreSQL's superuser
-- (docker-compose.yml's hookrelay-db job; by hand elsewhere, see
-- docs/deployment.md). Safe to run again: it creates what is absent and
-- sets the rest as below.
--
--   HOOKRELAY_DB_OWNER_PASSWORD=... HOOKRELAY_DB_PASSWORD=... \
--     psql -v owner=hookrelay_owner -v app=hookrelay -v db=hookrelay -f roles.sql
--
-- owner  owns the database and its schema: `starter migrate` runs as it.
-- app    the run-time role every process connects as (--migrate=false):
--        `starter migrate --grant-to app` grants it SELECT, INSERT, UPDATE
--        and DELETE on hookrelay's tables and nothing more. Neither is a
--        superuser or may create roles or databases.
\set ON_ERROR_STOP on
-- The passwords from the environment (psql 15 or later), never on a command line.
\getenv owner_password HOOKRELAY_DB_OWNER_PASSWORD
\getenv app_password HOOKRELAY_DB_PASSWORD
\if :{?owner_password}
\if :{?app_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: HOOKRELAY_DB_PASSWORD is not set'; END $$;
\endif
\else
DO $$ BEGIN RAISE EXCEPTION 'roles.sql: HOOKRELAY_DB_OWNER_PASSWORD is not set'; END $$;
\endif

SELECT format('CREATE ROLE %I', :'owner') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I', :'app') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L', :'owner', :'owner_password') \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L', :'app', :'app_password') \gexec

SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'owner') \gexec
-- Only the two roles connect; no one else creates schemas or temporary tables.
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', :'db', :'app') \gexec

\connect :db
-- The owner creates hookrelay's tables in public; the run-time role only uses them.
SELECT format('ALTER SCHEMA public OWNER TO %I', :'owner') \gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- A database made before these roles: its tables (and their sequences) pass to the owner.
SELECT format('ALTER TABLE public.%I OWNER TO %I', tablename, :'owner') FROM pg_tables
    WHERE schemaname = 'public' AND tableowner <> :'owner' \gexec
