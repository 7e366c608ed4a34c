DROP TABLE log_attempts;
DROP TABLE log_deliveries;
