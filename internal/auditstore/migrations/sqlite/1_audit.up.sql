-- The audit trail: one row per change made through the API (or payloads
-- decoded by the codec server). Times are unix milliseconds. changes holds
-- field names (a JSON array), never values.
CREATE TABLE audit_records (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    account_id TEXT NOT NULL,
    credential TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    changes    TEXT NOT NULL
);

CREATE INDEX audit_records_account ON audit_records (account_id, at, id);
CREATE INDEX audit_records_at ON audit_records (at, id);
