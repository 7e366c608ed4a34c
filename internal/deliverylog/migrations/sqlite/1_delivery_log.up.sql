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
    created_at       INTEGER NOT NULL,
    last_attempt_at  INTEGER,
    last_status_code INTEGER,
    next_attempt_at  INTEGER
);

CREATE INDEX log_deliveries_account ON log_deliveries (account_id, created_at DESC, delivery_id DESC);
CREATE INDEX log_deliveries_endpoint ON log_deliveries (account_id, endpoint_id, created_at DESC, delivery_id DESC);
CREATE INDEX log_deliveries_status ON log_deliveries (account_id, status, created_at DESC, delivery_id DESC);
CREATE INDEX log_deliveries_event ON log_deliveries (account_id, event_name, created_at DESC, delivery_id DESC);
CREATE INDEX log_deliveries_created ON log_deliveries (created_at);

-- One row per attempt; retention deletes in bounded batches.
CREATE TABLE log_attempts (
    delivery_id      TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    status_code      INTEGER NOT NULL,
    outcome          TEXT NOT NULL,
    error_class      TEXT NOT NULL,
    response_excerpt BLOB,
    PRIMARY KEY (delivery_id, run_id, attempt)
);

CREATE INDEX log_attempts_started ON log_attempts (started_at);
CREATE INDEX log_attempts_excerpt_age ON log_attempts (started_at) WHERE response_excerpt IS NOT NULL;
