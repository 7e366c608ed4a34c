-- Portal sessions: short-lived credentials of one account for the portal.
-- Only the token's SHA-256 is stored; an ended session keeps its row
-- (revoked_at set) until it is pruned, long after it expired.
CREATE TABLE portal_sessions (
    id          TEXT PRIMARY KEY,       -- ses_ + 26 base32 characters, also inside the token
    account_id  TEXT NOT NULL,
    scopes      TEXT NOT NULL,          -- JSON array of scopes
    token_hash  BLOB NOT NULL,          -- SHA-256 of the token
    created_at  INTEGER NOT NULL,       -- unix milliseconds
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Ending an account's sessions, counting and pruning them.
CREATE INDEX portal_sessions_account_id ON portal_sessions (account_id, expires_at);
