DROP TABLE row_mac_backfill;
ALTER TABLE endpoints DROP COLUMN mac;
