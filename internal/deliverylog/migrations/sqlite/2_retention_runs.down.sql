DROP TABLE log_retention_runs;
