package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/hookrelay/hookrelay/internal/sqldb"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// benchLog is the fresh database the throughput mode's second hookrelay
// phase keeps its delivery log in (--log-db): a SQLite file in the run's
// temporary directory, or a PostgreSQL database created on
// HOOKRELAY_TEST_POSTGRES and dropped at the end. The workers create its
// schema; the bench only counts its rows.
type benchLog struct {
	kind  string
	dsn   string
	where string       // dsn without its password, for the output
	drop  func() error // drops the PostgreSQL database; nil for SQLite
}

func newBenchLog(ctx context.Context, kind, tmp string) (*benchLog, error) {
	l := &benchLog{kind: kind}
	switch kind {
	case logSQLite:
		l.dsn = "sqlite:" + filepath.Join(tmp, "delivery-log.db")
	case logPostgres:
		var err error
		if l.dsn, l.drop, err = testenv.FreshPostgres(ctx); err != nil {
			return nil, fmt.Errorf("--log-db postgres (--log-db none skips the run with the log): %w", err)
		}
	default:
		return nil, usagef("--log-db: %q is not none, sqlite or postgres", kind)
	}
	l.where = sqldb.Redact(l.dsn)
	return l, nil
}

// close drops a PostgreSQL database; the processes that used it are stopped.
func (l *benchLog) close() error {
	if l == nil || l.drop == nil {
		return nil
	}
	err := l.drop()
	l.drop = nil
	if err != nil {
		return fmt.Errorf("drop the delivery log database %s: %w", l.where, err)
	}
	return nil
}

// logCount is what the delivery log holds after the phase with it.
type logCount struct {
	// Expected is the deliveries the phase made (warm-up included), each
	// delivered at its first attempt.
	Expected int `json:"expected"`
	// Deliveries are rows of log_deliveries, Delivered those with status delivered.
	Deliveries int `json:"delivery_records"`
	Delivered  int `json:"delivered_records"`
	// Attempts are rows of log_attempts; FirstTry200 those numbered 1 with status 200;
	// DistinctDeliveries the deliveries they belong to.
	Attempts           int `json:"attempt_records"`
	FirstTry200        int `json:"first_try_200_records"`
	DistinctDeliveries int `json:"deliveries_with_attempts"`
	// Missing is Expected less DistinctDeliveries; Extra is attempt records past one per delivery.
	Missing int `json:"missing"`
	Extra   int `json:"extra"`
	// MissedWrites are attempt writes the workers logged as missed (spooled,
	// or left to the reconciler); ReconciledWrites are records the
	// reconciler wrote from history. Both 0: every record was written by
	// its attempt.
	MissedWrites     int `json:"missed_writes"`
	ReconciledWrites int `json:"reconciled_writes"`
	// WaitedSeconds is how long after the workers stopped the count reached Expected (or gave up).
	WaitedSeconds float64 `json:"waited_seconds"`
}

// count reads the log's rows until every one of expected deliveries has
// its attempt record, or for at most wait: an attempt's record is written
// right after its POST, so the last ones may trail the receiver's 2xx.
func (l *benchLog) count(ctx context.Context, expected int, wait time.Duration) (logCount, error) {
	driver, conn := "pgx", l.dsn
	if l.kind == logSQLite {
		driver, conn = "sqlite", "file:"+strings.TrimPrefix(l.dsn, "sqlite:")+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, conn)
	if err != nil {
		return logCount{}, fmt.Errorf("delivery log %s: %w", l.where, err)
	}
	defer db.Close()
	begin := time.Now()
	for {
		c, err := readCount(ctx, db)
		if err != nil {
			return c, fmt.Errorf("delivery log %s: count: %w", l.where, err)
		}
		c.Expected, c.WaitedSeconds = expected, round(time.Since(begin).Seconds(), 1)
		c.Missing, c.Extra = expected-c.DistinctDeliveries, c.Attempts-c.DistinctDeliveries
		if c.DistinctDeliveries >= expected || time.Since(begin) > wait {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func readCount(ctx context.Context, db *sql.DB) (logCount, error) {
	var c logCount
	err := db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT delivery_id),
		coalesce(sum(CASE WHEN attempt = 1 AND status_code = 200 THEN 1 ELSE 0 END), 0) FROM log_attempts`).
		Scan(&c.Attempts, &c.DistinctDeliveries, &c.FirstTry200)
	if err == nil {
		err = db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(CASE WHEN status = 'delivered' THEN 1 ELSE 0 END), 0) FROM log_deliveries`).
			Scan(&c.Deliveries, &c.Delivered)
	}
	return c, err
}

// logWriteFigures reads the workers' logs (JSON lines) for writes missed
// and records the reconciler wrote.
func logWriteFigures(logs []string) (missed, reconciled int) {
	for _, l := range logs {
		for _, line := range strings.Split(l, "\n") {
			switch {
			case strings.Contains(line, "delivery log: write missed"):
				missed++
			case strings.Contains(line, "delivery log: reconciled from history"):
				var v struct {
					Written int `json:"written"`
				}
				if json.Unmarshal([]byte(line), &v) == nil {
					reconciled += v.Written
				}
			}
		}
	}
	return missed, reconciled
}
