-- Attempt partitions are created ahead and dropped by retention, which the
-- run-time processes do. These two functions let them without DDL
-- privileges of their own: each runs as this schema's owner (SECURITY
-- DEFINER) and does one thing, on log_attempts only: create the partition
-- of one whole UTC month, or drop one attempt partition (no more than a
-- DELETE of its rows, which the run-time role may do anyway).
CREATE FUNCTION log_create_partition(month_start BIGINT) RETURNS TEXT
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    first TIMESTAMP := to_timestamp(month_start / 1000.0) AT TIME ZONE 'UTC';
    name TEXT := 'log_attempts_' || to_char(first, 'YYYYMM');
BEGIN
    IF first <> date_trunc('month', first) THEN
        RAISE EXCEPTION 'log_create_partition: % is not the first instant of a UTC month', month_start;
    END IF;
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I PARTITION OF %I.log_attempts FOR VALUES FROM (%s) TO (%s)',
        current_schema(), name, current_schema(), month_start,
        (extract(epoch FROM (first + interval '1 month') AT TIME ZONE 'UTC') * 1000)::BIGINT);
    RETURN name;
END $$;

CREATE FUNCTION log_drop_partition(name TEXT) RETURNS BOOLEAN
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF name !~ '^log_attempts_[0-9]{6}$' THEN
        RAISE EXCEPTION 'log_drop_partition: % is not an attempt partition', name;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
            JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE i.inhparent = format('%I.log_attempts', current_schema())::regclass
            AND c.relname = name AND n.nspname = current_schema()) THEN
        RETURN FALSE;
    END IF;
    EXECUTE format('DROP TABLE %I.%I', current_schema(), name);
    RETURN TRUE;
END $$;

-- Only the roles this schema's owner grants them to (the run-time role).
REVOKE EXECUTE ON FUNCTION log_create_partition(BIGINT) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION log_drop_partition(TEXT) FROM PUBLIC;
