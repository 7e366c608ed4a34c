-- Account API keys. Only the key's SHA-256 is stored; a revoked key keeps
-- its row (revoked_at set), so the credential an audit names stays known.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,       -- key_ + 26 base32 characters, also inside the key
    account_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    scopes      TEXT NOT NULL,          -- JSON array of scopes
    key_hash    BLOB NOT NULL,          -- SHA-256 of the key
    created_at  INTEGER NOT NULL,       -- unix milliseconds
    expires_at  INTEGER,                -- NULL: until revoked
    revoked_at  INTEGER
);

-- Listing an account's keys, and counting its usable ones at creation.
CREATE INDEX api_keys_account_id ON api_keys (account_id, id);
