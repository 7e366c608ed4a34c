-- max_in_flight: attempts to the endpoint one worker runs at once;
-- rate_limit: requests a second to it across the fleet, 0 for none
-- (endpoint.Endpoint.MaxInFlight, RateLimit). Existing endpoints get the
-- default and no rate limit.
ALTER TABLE endpoints ADD COLUMN max_in_flight INTEGER NOT NULL DEFAULT 10;
ALTER TABLE endpoints ADD COLUMN rate_limit REAL NOT NULL DEFAULT 0;
