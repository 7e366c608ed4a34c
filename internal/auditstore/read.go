package auditstore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/audit"
)

const cursorPrefix = "au1:"

func encodeCursor(at, id int64) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s%d:%d", cursorPrefix, at, id))
}

func decodeCursor(c string) (at, id int64, err error) {
	bad := &FieldError{Field: "cursor", Problem: "is not a cursor this API returned"}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, 0, bad
	}
	a, i, ok := strings.Cut(strings.TrimPrefix(string(b), cursorPrefix), ":")
	if !ok || !strings.HasPrefix(string(b), cursorPrefix) {
		return 0, 0, bad
	}
	if at, err = strconv.ParseInt(a, 10, 64); err != nil {
		return 0, 0, bad
	}
	if id, err = strconv.ParseInt(i, 10, 64); err != nil {
		return 0, 0, bad
	}
	return at, id, nil
}

// List returns a page of records matching q, oldest first.
func (s *Store) List(ctx context.Context, q Query) (Page, error) {
	limit := q.Limit
	switch {
	case limit == 0:
		limit = audit.DefaultLimit
	case limit < 0 || limit > audit.MaxLimit:
		return Page{}, &FieldError{Field: "limit", Problem: fmt.Sprintf("must be a whole number from 1 to %d", audit.MaxLimit)}
	}
	where, args := []string{"1 = 1"}, []any{}
	if q.AccountID != "" {
		where, args = append(where, "account_id = ?"), append(args, q.AccountID)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "at >= ?"), append(args, q.Since.UnixMilli())
	}
	if q.Cursor != "" {
		at, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return Page{}, err
		}
		where, args = append(where, "(at > ? OR (at = ? AND id > ?))"), append(args, at, at, id)
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, at, account_id, credential, action, target, changes FROM audit_records
		WHERE `+strings.Join(where, " AND ")+` ORDER BY at, id LIMIT ?`), append(args, limit+1)...)
	if err != nil {
		return Page{}, fmt.Errorf("audit trail: list: %w", err)
	}
	defer rows.Close()
	var page Page
	var lastAt, lastID int64
	for rows.Next() {
		if len(page.Records) == limit {
			page.Next = encodeCursor(lastAt, lastID)
			break
		}
		var r Record
		var changes string
		if err := rows.Scan(&lastID, &lastAt, &r.AccountID, &r.Credential, &r.Action, &r.Target, &changes); err != nil {
			return Page{}, fmt.Errorf("audit trail: list: %w", err)
		}
		r.At = time.UnixMilli(lastAt).UTC()
		if err := json.Unmarshal([]byte(changes), &r.Changes); err != nil {
			return Page{}, fmt.Errorf("audit trail: record %d: changes: %w", lastID, err)
		}
		page.Records = append(page.Records, r)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("audit trail: list: %w", err)
	}
	return page, nil
}

// pruneBatch bounds each delete of Prune, so no statement holds locks long.
const pruneBatch = 5000

// Prune deletes the records from before before, oldest first in bounded
// batches, and counts them. The daily retention calls it with the delivery
// log's cutoff, so the trail is kept as long as the log.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM audit_records WHERE id IN
			(SELECT id FROM audit_records WHERE at < ? ORDER BY at, id LIMIT ?)`), before.UnixMilli(), pruneBatch)
		if err != nil {
			return total, fmt.Errorf("audit trail: prune: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("audit trail: prune: %w", err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}
