-- The endpoint registry. A deleted endpoint keeps its row as a tombstone
-- (deleted_at set, configuration and secrets cleared), so attempts of its
-- open deliveries learn it was deleted rather than never seen.
CREATE TABLE endpoints (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    url            TEXT NOT NULL,
    events         TEXT NOT NULL,          -- JSON array of event names, or ["*"]
    description    TEXT NOT NULL,
    timeout_ms     BIGINT NOT NULL,
    retry_schedule TEXT NOT NULL,          -- JSON array of delays in milliseconds
    enabled        BOOLEAN NOT NULL,
    circuit        TEXT NOT NULL,          -- JSON: the circuit breaker's settings (endpoint.Circuit)
    secrets        BYTEA,                  -- sealed with the payload keys; NULL once deleted
    version        BIGINT NOT NULL,        -- bumped by every write (optimistic concurrency)
    created_at     BIGINT NOT NULL,        -- unix milliseconds
    updated_at     BIGINT NOT NULL,
    deleted_at     BIGINT
);

-- Routing (an account's enabled endpoints) and listing (an account's
-- endpoints by id, from a cursor) both read this index, live endpoints only.
CREATE INDEX endpoints_account_id ON endpoints (account_id, id) WHERE deleted_at IS NULL;
