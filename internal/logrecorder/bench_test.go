package logrecorder

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// oneByOne writes each entry as UpsertDelivery then RecordAttempt, its
// own statements and two commits: the write without batches, to compare.
type oneByOne struct{ l *deliverylog.Log }

func (o oneByOne) Write(ctx context.Context, entries []deliverylog.Entry) []error {
	errs := make([]error, len(entries))
	for i, e := range entries {
		if errs[i] = o.l.UpsertDelivery(ctx, e.Delivery); errs[i] == nil {
			errs[i] = o.l.RecordAttempt(ctx, *e.Attempt)
		}
	}
	return errs
}

// BenchmarkRecordPostgres records first-try attempts from 50 concurrent
// attempts into a fresh PostgreSQL database (HOOKRELAY_TEST_POSTGRES),
// through the group commit and, to compare, one write at a time (two
// commits each: the delivery's, then the attempt's); it reports the
// commits that carried the attempts, per attempt.
//
//	go test -run '^$' -bench BenchmarkRecordPostgres -benchtime 5000x ./internal/logrecorder/
func BenchmarkRecordPostgres(b *testing.B) {
	keys, err := codec.Parse([]byte(testenv.CodecKeyLine("k1")))
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		store func(*deliverylog.Log) Store
	}{{"group", func(l *deliverylog.Log) Store { return l }}, {"one-by-one", func(l *deliverylog.Log) Store { return oneByOne{l} }}} {
		b.Run(c.name, func(b *testing.B) {
			dsn := testenv.PostgresT(b)
			l, err := deliverylog.Open(context.Background(), dsn, deliverylog.Options{Codec: keys})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			r := New(c.store(l), Options{WriteTimeout: 10 * time.Second})
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range 50 {
				wg.Go(func() {
					for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
						in, rec := attemptOf(fmt.Sprintf("ep_1:evt_%d", n))
						rec.StartedAt = time.Now()
						in.Log.CreatedAt = rec.StartedAt
						r.Record(context.Background(), "run-1", in, rec, rec.StartedAt)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if r.Spooled() != 0 {
				b.Fatalf("%d writes spooled", r.Spooled())
			}
			b.ReportMetric(float64(attemptTxns(b, db))/float64(b.N), "attempt-commits/attempt")
		})
	}
}

// attemptTxns is how many transactions wrote the attempts in the log: the
// commits that carried them.
func attemptTxns(b *testing.B, db *sql.DB) int64 {
	b.Helper()
	var n int64
	if err := db.QueryRow(`SELECT count(DISTINCT xmin::text) FROM log_attempts`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
