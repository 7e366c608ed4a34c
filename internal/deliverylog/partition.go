package deliverylog

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Attempt partitions (PostgreSQL) are named log_attempts_YYYYMM and hold
// the attempts that started in that UTC month.
const partitionPrefix = "log_attempts_"

// monthOf is the first instant of t's UTC month.
func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func partitionName(month time.Time) string { return partitionPrefix + month.Format("200601") }

// partitionMonth parses a partition's name back to its month.
func partitionMonth(name string) (time.Time, bool) {
	m, err := time.Parse("200601", strings.TrimPrefix(name, partitionPrefix))
	return m, err == nil && strings.HasPrefix(name, partitionPrefix)
}

// ensureAhead creates the partitions of now's month and the next two, so
// writes seldom wait on creating one.
func (l *Log) ensureAhead(ctx context.Context, now time.Time) error {
	if !l.postgres() {
		return nil
	}
	for i := range 3 {
		if err := l.ensurePartition(ctx, monthOf(now).AddDate(0, i, 0)); err != nil {
			return err
		}
	}
	return nil
}

// ensurePartition creates the partition of t's month unless this process
// knows it exists, through log_create_partition (migration 3). Creators take a transaction-scoped advisory lock, so
// processes creating one month at once do not collide on the catalog.
func (l *Log) ensurePartition(ctx context.Context, t time.Time) error {
	month := monthOf(t)
	name := partitionName(month)
	l.mu.Lock()
	known := l.partitions[name]
	l.mu.Unlock()
	if known {
		return nil
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delivery log: create partition %s: %w", name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('hookrelay delivery log partitions'))`); err != nil {
		return fmt.Errorf("delivery log: create partition %s: %w", name, err)
	}
	// The schema's function, which runs as its owner: the run-time role
	// holds no DDL privilege.
	if _, err := tx.ExecContext(ctx, `SELECT log_create_partition($1)`, month.UnixMilli()); err != nil {
		return fmt.Errorf("delivery log: create partition %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delivery log: create partition %s: %w", name, err)
	}
	l.mu.Lock()
	l.partitions[name] = true
	l.mu.Unlock()
	return nil
}

func (l *Log) forgetPartitions() {
	l.mu.Lock()
	clear(l.partitions)
	l.mu.Unlock()
}

// Partitions lists the attempt partitions (PostgreSQL; none in SQLite),
// oldest first.
func (l *Log) Partitions(ctx context.Context) ([]string, error) {
	if !l.postgres() {
		return nil, nil
	}
	rows, err := l.db.QueryContext(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'log_attempts'::regclass ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("delivery log: list partitions: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("delivery log: list partitions: %w", err)
		}
		names = append(names, n)
	}
	return names, rows.Err()
}
