ALTER TABLE endpoints DROP COLUMN trace_context;
