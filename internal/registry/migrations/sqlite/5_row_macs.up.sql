-- mac: HMAC-SHA256 over the row's id, account, URL and events under the
-- row-MAC key (derived from the key file for that purpose alone); a live
-- row whose MAC does not match is refused, that endpoint alone. NULL on
-- tombstones.
ALTER TABLE endpoints ADD COLUMN mac BLOB;

-- Rows registered before row MACs get theirs once, from the first process
-- that opens the registry after this migration; after that, a live row
-- without a MAC is refused like one whose MAC does not match.
CREATE TABLE row_mac_backfill (pending BOOLEAN NOT NULL);
INSERT INTO row_mac_backfill (pending) VALUES (TRUE);
