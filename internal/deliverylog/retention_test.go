package deliverylog

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Retention as of t0 with 90 days of records and 30 of content: the
// deliveries before the cutoff go; PostgreSQL drops the attempt partitions
// whose whole month is past it, SQLite deletes the attempts before it; the
// excerpts of attempts older than 30 days are blanked.
func TestPrune(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLog(t, dsn)
		at := []time.Time{
			time.Date(2025, 11, 15, 12, 0, 0, 0, time.UTC),
			time.Date(2025, 12, 15, 12, 0, 0, 0, time.UTC),
			time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC), // before the cutoff, in its month
			time.Date(2026, 1, 25, 12, 0, 0, 0, time.UTC), // after the cutoff, before the content cutoff
			t0.Add(-time.Hour),
		}
		var ds []Delivery
		for i, created := range at {
			d := delivery("acct_a", "ep_1", i, created)
			upsert(t, l, d)
			record(t, l, attempt(d, 1, 500, "an answer"))
			ds = append(ds, d)
		}
		p, err := l.Prune(ctx, t0, 90*24*time.Hour, 30*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pruned: %+v", p)
		if p.DeletedDeliveries != 3 {
			t.Errorf("deleted %d deliveries, want 3", p.DeletedDeliveries)
		}
		if p.BlankedExcerpts < 1 {
			t.Errorf("blanked %d excerpts, want the one of 2026-01-25 at least", p.BlankedExcerpts)
		}
		db := rawDB(t, dsn)
		started := func() []time.Time {
			rows, err := db.Query("SELECT started_at FROM log_attempts ORDER BY started_at")
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []time.Time
			for rows.Next() {
				var ms int64
				rows.Scan(&ms)
				out = append(out, time.UnixMilli(ms).UTC().Add(-time.Minute))
			}
			return out
		}()
		want := at[3:]
		if l.postgres() {
			want = at[2:] // January's partition stays until all of January is past retention
			if !slices.Equal(p.DroppedPartitions, []string{"log_attempts_202511", "log_attempts_202512"}) {
				t.Errorf("dropped %v", p.DroppedPartitions)
			}
			t.Logf("dropping %d monthly partitions took %v", len(p.DroppedPartitions), p.DropTime)
		} else if p.DeletedAttempts != 3 {
			t.Errorf("deleted %d attempts, want 3", p.DeletedAttempts)
		}
		if !slices.EqualFunc(started, want, time.Time.Equal) {
			t.Errorf("attempts left started at %v, want %v", started, want)
		}
		for i, d := range ds {
			_, err := l.Get(ctx, "acct_a", d.DeliveryID)
			if gone := err != nil; gone != (i < 3) {
				t.Errorf("delivery created %s: Get %v", d.CreatedAt, err)
			}
		}
		for i, wantExcerpt := range map[int]string{3: "", 4: "an answer"} {
			as, err := l.Attempts(ctx, "acct_a", ds[i].DeliveryID)
			if err != nil || len(as) != 1 || string(as[0].ResponseExcerpt) != wantExcerpt {
				t.Errorf("attempts of the delivery of %s: %+v %v, want excerpt %q", ds[i].CreatedAt, as, err, wantExcerpt)
			}
		}
		again, err := l.Prune(ctx, t0, 90*24*time.Hour, 30*24*time.Hour)
		if err != nil || len(again.DroppedPartitions)+int(again.DeletedAttempts+again.DeletedDeliveries+again.BlankedExcerpts) != 0 {
			t.Errorf("a second prune: %+v %v, want nothing to do", again, err)
		}
	})
}

// A partition dropped behind this process's back (another host's prune)
// is made again when an attempt of its month arrives late.
func TestLateAttemptRecreatesPartition(t *testing.T) {
	l := openLog(t, stores[1].fresh(t))
	ctx := context.Background()
	d := delivery("acct_a", "ep_1", 1, t0)
	upsert(t, l, d)
	if _, err := l.db.Exec("DROP TABLE " + partitionName(t0)); err != nil {
		t.Fatal(err)
	}
	record(t, l, attempt(d, 1, 200, "ok"))
	if as, err := l.Attempts(ctx, "acct_a", d.DeliveryID); err != nil || len(as) != 1 {
		t.Fatalf("after recreating the partition: %+v %v", as, err)
	}
}

// sample is what the sample events' payloads hold that the log must never.
type sample struct {
	raw     []byte
	name    string
	mailLog string
	secrets []string // subject, from, to, custom header values
}

func samples(t *testing.T) []sample {
	t.Helper()
	files, err := filepath.Glob("../../examples/events/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("sample events: %v (%d)", err, len(files))
	}
	var out []sample
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			EventName string `json:"event_name"`
			Payload   struct {
				ID                int64 `json:"id"`
				Subject, From, To string
				CustomHeaders     map[string]string `json:"custom_headers"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		s := sample{raw: raw, name: e.EventName, mailLog: fmt.Sprint(e.Payload.ID)}
		s.secrets = []string{e.Payload.Subject, e.Payload.From, e.Payload.To}
		for _, v := range e.Payload.CustomHeaders {
			s.secrets = append(s.secrets, v)
		}
		for _, v := range s.secrets {
			if v == "" {
				t.Fatalf("%s: a sample without subject, from or to", f)
			}
		}
		out = append(out, s)
	}
	return out
}

// Receivers echo what they got: the log stores it sealed, and no raw row
// of either table holds a sample payload's subject, from, to or headers.
func TestNoPayloadAtRest(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLog(t, dsn)
		ss := samples(t)
		for i, s := range ss {
			d := delivery("acct_a", "ep_1", i, t0)
			d.EventName, d.MailLogID = s.name, s.mailLog
			upsert(t, l, d)
			echo := append(append([]byte{}, s.raw...), make([]byte, 2*ExcerptBytes)...)
			record(t, l, attempt(d, 1, 200, string(echo)))
			as, err := l.Attempts(ctx, "acct_a", d.DeliveryID)
			if err != nil || len(as) != 1 || string(as[0].ResponseExcerpt) != string(echo[:ExcerptBytes]) {
				t.Fatalf("the excerpt read back is not the answer's first KiB: %v", err)
			}
		}
		db := rawDB(t, dsn)
		rows, all := 0, ""
		for _, table := range []string{"log_deliveries", "log_attempts"} {
			n, text := scanRaw(t, db, table, ss)
			rows, all = rows+n, all+text
		}
		if rows != 2*len(ss) {
			t.Fatalf("scanned %d rows, want %d", rows, 2*len(ss))
		}
		// The scan sees what is stored in clear: the mail log ids.
		for _, s := range ss {
			if !strings.Contains(all, s.mailLog) {
				t.Fatalf("the raw scan misses mail log id %s, stored in clear", s.mailLog)
			}
		}
		var sealed []byte
		if err := db.QueryRow("SELECT response_excerpt FROM log_attempts LIMIT 1").Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if len(sealed) <= ExcerptBytes || strings.Contains(string(sealed), `"event_name"`) {
			t.Errorf("a response excerpt at rest is not ciphertext: %q...", sealed[:min(40, len(sealed))])
		}
	})
}

// scanRaw reads every row of table as raw bytes and fails on any sample
// secret found in any column; it returns the count of rows and all their
// bytes.
func scanRaw(t *testing.T, db *sql.DB, table string, ss []sample) (int, string) {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	n := 0
	var all strings.Builder
	for rows.Next() {
		n++
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			all.Write(v)
			for _, s := range ss {
				for _, secret := range s.secrets {
					if strings.Contains(string(v), secret) {
						t.Errorf("%s.%s holds %q in clear", table, cols[i], secret)
					}
				}
			}
		}
	}
	return n, all.String()
}
