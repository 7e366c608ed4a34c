-- trace_context: whether attempts to the endpoint carry the W3C traceparent
-- header (endpoint.Endpoint.TraceContext). Existing endpoints get none.
ALTER TABLE endpoints ADD COLUMN trace_context BOOLEAN NOT NULL DEFAULT FALSE;
