-- The delivery log: one row per delivery, one per attempt. Times are unix
-- milliseconds, as in the endpoint registry. Nothing a payload holds
-- (subject, from, to, headers) is stored; the response excerpt is sealed
-- with the payload keys.
CREATE TABLE log_deliveries (
    delivery_id      TEXT PRIMARY KEY,   -- "<endpoint-id>:<event-id>"
    account_id       TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    event_name       TEXT NOT NULL,
    mail_log_id      TEXT NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    last_attempt_at  BIGINT,
    last_status_code INTEGER,
    next_attempt_at  BIGINT
);

-- Listing is newest first by (created_at, delivery_id) within an account,
-- filtered by at most one of endpoint, status or event name: one index each.
CREATE INDEX log_deliveries_account ON log_deliveries (account_id, created_at DESC, delivery_id DESC);
CREATE INDEX log_deliveries_endpoint ON log_deliveries (account_id, endpoint_id, created_at DESC, delivery_id DESC);
CREATE INDEX log_deliveries_status ON log_deliveries (account_id, status, created_at DESC, delivery_id DESC);
CREATE INDEX log_deliveries_event ON log_deliveries (account_id, event_name, created_at DESC, delivery_id DESC);
-- Retention deletes the oldest deliveries first.
CREATE INDEX log_deliveries_created ON log_deliveries (created_at);

-- One row per attempt, partitioned by month of started_at so retention
-- drops whole partitions (log_attempts_YYYYMM, created ahead by the store).
-- PostgreSQL cannot enforce uniqueness across partitions without the
-- partition key, so the store writes an attempt once under its delivery's
-- row lock; the key below is the backstop within a month.
CREATE TABLE log_attempts (
    delivery_id      TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    status_code      INTEGER NOT NULL,   -- 0: no HTTP answer
    outcome          TEXT NOT NULL,
    error_class      TEXT NOT NULL,
    response_excerpt BYTEA,              -- sealed; NULL when empty or past content retention
    PRIMARY KEY (delivery_id, run_id, attempt, started_at)
) PARTITION BY RANGE (started_at);

-- Content retention blanks excerpts by age; the index shrinks as it does.
CREATE INDEX log_attempts_excerpt_age ON log_attempts (started_at) WHERE response_excerpt IS NOT NULL;
