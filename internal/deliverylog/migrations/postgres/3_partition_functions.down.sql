DROP FUNCTION IF EXISTS log_drop_partition(TEXT);
DROP FUNCTION IF EXISTS log_create_partition(BIGINT);
