-- The audit trail: one row per change made through the API (or payloads
-- decoded by the codec server). Times are unix milliseconds, as in the
-- endpoint registry and the delivery log. changes holds field names (a JSON
-- array), never values.
CREATE TABLE audit_records (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    account_id TEXT NOT NULL,   -- "*": a record about every account (payload.decode)
    credential TEXT NOT NULL,   -- which credential acted: an id, never the secret
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    changes    TEXT NOT NULL    -- JSON array of field names
);

-- Listing is oldest first by (at, id), within an account or across all;
-- retention deletes the oldest first.
CREATE INDEX audit_records_account ON audit_records (account_id, at, id);
CREATE INDEX audit_records_at ON audit_records (at, id);
