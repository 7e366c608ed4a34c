package deliverylog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// Every test runs against both stores: an SQLite file and a fresh
// PostgreSQL database (skipped, saying so, where no PostgreSQL answers,
// except in CI, where it fails).

type store struct {
	name  string
	fresh func(t testing.TB) string
}

var stores = []store{
	{"sqlite", func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "log.db") }},
	{"postgres", func(t testing.TB) string { return testenv.PostgresT(t) }},
}

func eachStore(t *testing.T, test func(t *testing.T, dsn string)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) { test(t, s.fresh(t)) })
	}
}

// t0 is the tests' "now": deliveries are created around it.
var t0 = time.Date(2026, 4, 18, 20, 0, 0, 0, time.UTC)

func newCodec(t testing.TB) *codec.Codec {
	t.Helper()
	c, err := codec.Parse([]byte(testenv.CodecKeyLine("k1")))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openLog(t testing.TB, dsn string) *Log {
	t.Helper()
	l, err := Open(context.Background(), dsn, Options{Codec: newCodec(t), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func delivery(account, endpoint string, n int, created time.Time) Delivery {
	return Delivery{
		AccountID: account, EndpointID: endpoint, EventID: fmt.Sprintf("evt_%05d", n),
		DeliveryID: fmt.Sprintf("%s:evt_%05d", endpoint, n), EventName: "api_mail_log_delivered",
		MailLogID: fmt.Sprint(5555550000 + n), Status: "pending", CreatedAt: created,
	}
}

func upsert(t testing.TB, l *Log, ds ...Delivery) {
	t.Helper()
	for _, d := range ds {
		if err := l.UpsertDelivery(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
}

func attempt(d Delivery, n, code int, body string) AttemptRecord {
	status, outcome := "retrying", "http_error"
	if code/100 == 2 {
		status, outcome = "delivered", "delivered"
	}
	next := time.Time{}
	if status == "retrying" {
		next = d.CreatedAt.Add(time.Duration(n+1) * time.Minute)
	}
	return AttemptRecord{
		AccountID: d.AccountID, DeliveryID: d.DeliveryID, RunID: "run-1", Attempt: n,
		Started: d.CreatedAt.Add(time.Duration(n) * time.Minute), Duration: 120 * time.Millisecond,
		StatusCode: code, Outcome: outcome, Response: []byte(body), Status: status, NextAttemptAt: next,
	}
}

func record(t testing.TB, l *Log, a AttemptRecord) {
	t.Helper()
	if err := l.RecordAttempt(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

// rawDB opens the log's database directly, to look at rows as stored.
func rawDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	driver, conn := "pgx", dsn
	if s, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		driver, conn = "sqlite", s
	}
	db, err := sql.Open(driver, conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t testing.TB, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// The same attempt written three times (a retried task, a replayed
// activity) is one row, and counts once on its delivery; attempts of an
// endpoint answering 503 twice then 200 read back in order, with their
// excerpts opened.
func TestRecordAttemptIsIdempotent(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLog(t, dsn)
		d := delivery("acct_a", "ep_1", 1, t0)
		upsert(t, l, d, d) // a second creation changes nothing
		first := attempt(d, 1, 503, "busy, try later")
		for range 3 {
			record(t, l, first)
		}
		if n := count(t, rawDB(t, dsn), "SELECT count(*) FROM log_attempts"); n != 1 {
			t.Fatalf("one attempt written three times: %d rows", n)
		}
		got, err := l.Get(ctx, "acct_a", d.DeliveryID)
		if err != nil || got.Attempts != 1 || got.Status != "retrying" || got.LastStatusCode != 503 ||
			!got.LastAttemptAt.Equal(first.Started) || !got.NextAttemptAt.Equal(first.NextAttemptAt) {
			t.Fatalf("after attempt 1: %+v %v", got, err)
		}
		record(t, l, attempt(d, 2, 503, "busy again"))
		last := attempt(d, 3, 200, `{"ok":true}`)
		record(t, l, last)
		record(t, l, attempt(d, 2, 503, "busy again")) // late and again: nothing
		got, err = l.Get(ctx, "acct_a", d.DeliveryID)
		if err != nil || got.Attempts != 3 || got.Status != "delivered" || got.LastStatusCode != 200 ||
			!got.LastAttemptAt.Equal(last.Started) || !got.NextAttemptAt.IsZero() {
			t.Fatalf("after attempt 3: %+v %v", got, err)
		}
		as, err := l.Attempts(ctx, "acct_a", d.DeliveryID)
		if err != nil || len(as) != 3 {
			t.Fatalf("Attempts: %d, %v", len(as), err)
		}
		for i, want := range []struct {
			code int
			body string
		}{{503, "busy, try later"}, {503, "busy again"}, {200, `{"ok":true}`}} {
			a := as[i]
			if a.Attempt != i+1 || a.StatusCode != want.code || string(a.ResponseExcerpt) != want.body ||
				a.Duration != 120*time.Millisecond || a.RunID != "run-1" {
				t.Errorf("attempt %d: %+v (excerpt %q), want %d %q", i+1, a, a.ResponseExcerpt, want.code, want.body)
			}
		}
		// A late write of an older attempt leaves the delivery's last as is.
		record(t, l, AttemptRecord{AccountID: "acct_a", DeliveryID: d.DeliveryID, RunID: "run-0", Attempt: 1,
			Started: t0.Add(-time.Second), StatusCode: 500, Outcome: "http_error", Status: "retrying"})
		if got, _ := l.Get(ctx, "acct_a", d.DeliveryID); got.Attempts != 4 || got.Status != "delivered" || got.LastStatusCode != 200 {
			t.Fatalf("after a late older attempt: %+v", got)
		}
	})
}

// Writers racing with the same attempt (two workers, a replay) still
// write one row.
func TestRecordAttemptConcurrently(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		l := openLog(t, dsn)
		d := delivery("acct_a", "ep_1", 1, t0)
		upsert(t, l, d)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() { errs <- l.RecordAttempt(context.Background(), attempt(d, 1, 503, "x")) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if n := count(t, rawDB(t, dsn), "SELECT count(*) FROM log_attempts"); n != 1 {
			t.Fatalf("8 concurrent writes of one attempt: %d rows", n)
		}
		if got, _ := l.Get(context.Background(), "acct_a", d.DeliveryID); got.Attempts != 1 {
			t.Fatalf("attempts %d, want 1", got.Attempts)
		}
	})
}

// The log and the endpoint registry share one database: each keeps its
// own version table, and either may open it first.
func TestSharesTheRegistrysDatabase(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		openLog(t, dsn).Close()
		r, err := registry.Open(ctx, dsn, registry.Options{Codec: newCodec(t)})
		if err != nil {
			t.Fatalf("the registry on the log's database: %v", err)
		}
		defer r.Close()
		if _, err := r.List(ctx, "acct_a", 0, ""); err != nil {
			t.Fatalf("the registry's tables: %v", err)
		}
		l := openLog(t, dsn) // opens again: migrated, nothing to do
		upsert(t, l, delivery("acct_a", "ep_1", 1, t0))
		db := rawDB(t, dsn)
		for _, table := range []string{MigrationsTable, "schema_migrations"} {
			if n := count(t, db, "SELECT count(*) FROM "+table); n != 1 {
				t.Fatalf("%s has %d rows", table, n)
			}
		}
	})
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "x.db"), Options{}); err == nil {
		t.Error("Open without payload keys")
	}
	_, err := Open(context.Background(), "mysql://db/log", Options{Codec: newCodec(t)})
	if err == nil || !strings.Contains(err.Error(), "delivery log") {
		t.Errorf("Open(mysql://): %v, want an error naming the delivery log", err)
	}
}

func TestRecordAttemptUnknownDelivery(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		l := openLog(t, dsn)
		err := l.RecordAttempt(context.Background(), attempt(delivery("acct_a", "ep_1", 1, t0), 1, 200, ""))
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("an attempt of an unrecorded delivery: %v, want ErrNotFound", err)
		}
	})
}
