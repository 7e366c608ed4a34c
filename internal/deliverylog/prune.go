package deliverylog

import (
	"context"
	"fmt"
	"time"
)

// Default retentions: records six years (the common practice for records
// of disclosures of health information), response excerpts 30 days.
const (
	DefaultRetention        = 2190 * 24 * time.Hour
	DefaultContentRetention = 30 * 24 * time.Hour
)

// pruneBatch bounds each delete or update of Prune, so no statement holds
// locks or grows the write-ahead log for long.
const pruneBatch = 5000

// Pruned is what one Prune did.
type Pruned struct {
	DroppedPartitions []string      // PostgreSQL
	DropTime          time.Duration // spent dropping them
	DeletedAttempts   int64         // SQLite
	DeletedDeliveries int64
	BlankedExcerpts   int64
	// DeletedAuditRecords are the audit trail's, when the run has one
	// (RetentionOptions.Trail).
	DeletedAuditRecords int64
}

// Prune applies retention as of now: records (deliveries, and attempts)
// older than records are removed, and response excerpts older than content
// are blanked; zero durations are the defaults. In PostgreSQL attempts go
// a whole month's partition at a time, once the month has entirely passed
// the retention; in SQLite in bounded batches. It also creates the attempt
// partitions ahead, so running it daily keeps them ready.
func (l *Log) Prune(ctx context.Context, now time.Time, records, content time.Duration) (Pruned, error) {
	if records == 0 {
		records = DefaultRetention
	}
	if content == 0 {
		content = DefaultContentRetention
	}
	if records < 0 || content < 0 {
		return Pruned{}, &FieldError{Field: "retention", Problem: "is negative"}
	}
	var p Pruned
	var err error
	cutoff := now.Add(-records).UnixMilli()
	if l.postgres() {
		if err := l.ensureAhead(ctx, now); err != nil {
			return p, err
		}
		p.DroppedPartitions, p.DropTime, err = l.dropPartitions(ctx, now.Add(-records))
	} else {
		p.DeletedAttempts, err = l.batches(ctx, `DELETE FROM log_attempts WHERE rowid IN
			(SELECT rowid FROM log_attempts WHERE started_at < ? LIMIT ?)`, cutoff)
	}
	if err != nil {
		return p, fmt.Errorf("delivery log: prune attempts: %w", err)
	}
	if p.DeletedDeliveries, err = l.batches(ctx, `DELETE FROM log_deliveries WHERE delivery_id IN
		(SELECT delivery_id FROM log_deliveries WHERE created_at < ? LIMIT ?)`, cutoff); err != nil {
		return p, fmt.Errorf("delivery log: prune deliveries: %w", err)
	}
	if p.BlankedExcerpts, err = l.blank(ctx, now.Add(-content)); err != nil {
		return p, fmt.Errorf("delivery log: blank response excerpts: %w", err)
	}
	return p, nil
}

// blank sets the response excerpts of attempts started before cutoff to
// NULL. PostgreSQL goes partition by partition, by ctid (a row's address
// within its partition), so no statement joins across partitions; months
// already blanked cost one probe of an empty partial index.
func (l *Log) blank(ctx context.Context, cutoff time.Time) (int64, error) {
	if !l.postgres() {
		return l.batches(ctx, `UPDATE log_attempts SET response_excerpt = NULL WHERE rowid IN
			(SELECT rowid FROM log_attempts WHERE started_at < ? AND response_excerpt IS NOT NULL LIMIT ?)`, cutoff.UnixMilli())
	}
	names, err := l.Partitions(ctx)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, name := range names {
		if month, ok := partitionMonth(name); !ok || !month.Before(cutoff) {
			continue
		}
		n, err := l.batches(ctx, `UPDATE `+name+` SET response_excerpt = NULL WHERE ctid = ANY(ARRAY(
			SELECT ctid FROM `+name+` WHERE started_at < ? AND response_excerpt IS NOT NULL LIMIT ?))`, cutoff.UnixMilli())
		total += n
		if err != nil {
			return total, fmt.Errorf("%s: %w", name, err)
		}
	}
	return total, nil
}

// batches runs a statement taking (cutoff, batch size) until it affects
// fewer rows than a batch, and counts them.
func (l *Log) batches(ctx context.Context, query string, cutoff int64) (int64, error) {
	var total int64
	for {
		res, err := l.db.ExecContext(ctx, l.q(query), cutoff, pruneBatch)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

// dropPartitions drops the attempt partitions whose whole month is before
// cutoff.
func (l *Log) dropPartitions(ctx context.Context, cutoff time.Time) ([]string, time.Duration, error) {
	names, err := l.Partitions(ctx)
	if err != nil {
		return nil, 0, err
	}
	var dropped []string
	var spent time.Duration
	for _, name := range names {
		month, ok := partitionMonth(name)
		if !ok || month.AddDate(0, 1, 0).After(cutoff) {
			continue
		}
		start := time.Now()
		// Through the schema's function, as its owner (migration 3).
		if _, err := l.db.ExecContext(ctx, `SELECT log_drop_partition($1)`, name); err != nil {
			return dropped, spent, fmt.Errorf("drop %s: %w", name, err)
		}
		spent += time.Since(start)
		dropped = append(dropped, name)
		l.mu.Lock()
		delete(l.partitions, name)
		l.mu.Unlock()
	}
	return dropped, spent, nil
}
