ALTER TABLE endpoints DROP COLUMN rate_limit;
ALTER TABLE endpoints DROP COLUMN max_in_flight;
