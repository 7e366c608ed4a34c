-- Retention runs by itself once a day across every worker: one row holds
-- when it last succeeded and which runner holds it now (a lease that a
-- crashed runner's successor takes over once it expires). Times are unix
-- milliseconds.
CREATE TABLE log_retention_runs (
    name          TEXT PRIMARY KEY,
    last_run_at   BIGINT,       -- the start of the last successful run
    last_took_ms  BIGINT,
    last_error    TEXT NOT NULL DEFAULT '',
    holder        TEXT NOT NULL DEFAULT '',
    lease_until   BIGINT
);

INSERT INTO log_retention_runs (name) VALUES ('prune');
