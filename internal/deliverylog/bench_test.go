package deliverylog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Bench fill: PostgreSQL only (the store whose query plans matter at a
// fleet's scale). Run with
//
//	go test -run '^$' -bench . ./internal/deliverylog/
const (
	benchAccounts   = 100
	benchDeliveries = 50_000
	benchAttempts   = 2 // per delivery: 100,000 attempts
	benchDays       = 60
)

// benchEnd is the newest delivery's creation time.
var benchEnd = time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)

// fillBench writes the bench's deliveries and attempts straight in SQL
// (RecordAttempt's path is the tests' business): accounts acct_000..,
// five endpoints and three event names each, every status, creation
// spread evenly over benchDays, attempts a minute apart with an 80-byte
// excerpt standing for a sealed answer.
func fillBench(b *testing.B, l *Log) {
	ctx := context.Background()
	start := benchEnd.Add(-benchDays * 24 * time.Hour)
	for m := monthOf(start); !m.After(benchEnd); m = m.AddDate(0, 1, 0) {
		if err := l.ensurePartition(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	step := benchDays * 24 * time.Hour.Milliseconds() / benchDeliveries
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO log_deliveries SELECT
			'ep_' || (i %% %[1]d) || '_' || (i / %[1]d %% 5) || ':evt_' || i,
			'acct_' || lpad((i %% %[1]d)::text, 3, '0'),
			'ep_' || (i %% %[1]d) || '_' || (i / %[1]d %% 5),
			'evt_' || i,
			(ARRAY['api_mail_log_delivered','api_mail_log_opened','api_mail_log_permanent_failure'])[1 + i %% 3],
			(5555000000 + i)::text,
			(ARRAY['pending','retrying','delivered','failed','canceled','parked'])[1 + (i / %[1]d) %% 6],
			%[2]d, %[3]d + i * %[4]d, %[3]d + i * %[4]d + 60000, 200, NULL
			FROM generate_series(0::bigint, %[5]d - 1) i`, benchAccounts, benchAttempts, start.UnixMilli(), step, benchDeliveries),
		fmt.Sprintf(`INSERT INTO log_attempts SELECT d.delivery_id, 'run-1', a, d.created_at + a * 60000, 150,
			CASE WHEN a = %[1]d THEN 200 ELSE 503 END, CASE WHEN a = %[1]d THEN 'delivered' ELSE 'http_error' END, '',
			decode(repeat(md5(d.delivery_id || a), 5), 'hex')
			FROM log_deliveries d, generate_series(1, %[1]d) a`, benchAttempts),
		`ANALYZE log_deliveries`, `ANALYZE log_attempts`,
	} {
		if _, err := l.db.ExecContext(ctx, q); err != nil {
			b.Fatalf("fill: %v", err)
		}
	}
	// The excerpts of the deliveries the attempts bench reads are sealed
	// for real, so reading opens them.
	for _, i := range benchReadable {
		id := benchDeliveryID(i)
		for a := 1; a <= benchAttempts; a++ {
			sealed, err := l.seal(AttemptRecord{DeliveryID: id, RunID: "run-1", Attempt: a, Response: []byte(`{"ok":true}`)})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := l.db.ExecContext(ctx, `UPDATE log_attempts SET response_excerpt = $1
				WHERE delivery_id = $2 AND run_id = 'run-1' AND attempt = $3`, sealed, id, a); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchReadable are the deliveries whose attempts the bench reads.
var benchReadable = func() []int {
	var out []int
	for i := 0; i < benchDeliveries; i += benchDeliveries / 200 {
		out = append(out, i)
	}
	return out
}()

func benchDeliveryID(i int) string {
	return fmt.Sprintf("ep_%d_%d:evt_%d", i%benchAccounts, i/benchAccounts%5, i)
}

// BenchmarkList measures List with each filter on a filled PostgreSQL,
// reporting p50 and p99 latencies; then the table's bytes per row and the
// drop of a month's attempt partition.
func BenchmarkList(b *testing.B) {
	dsn := stores[1].fresh(b)
	l := openLog(b, dsn)
	began := time.Now()
	fillBench(b, l)
	b.Logf("filled %d deliveries and %d attempts in %v", benchDeliveries, benchDeliveries*benchAttempts, time.Since(began).Round(time.Millisecond))
	mid := benchEnd.Add(-benchDays * 12 * time.Hour)
	for _, c := range []struct {
		name string
		f    func(r *rand.Rand) Filter
	}{
		{"all", func(*rand.Rand) Filter { return Filter{} }},
		{"endpoint", func(r *rand.Rand) Filter {
			return Filter{EndpointID: fmt.Sprintf("ep_%d_%d", r.IntN(benchAccounts), r.IntN(5))}
		}},
		{"status", func(r *rand.Rand) Filter { return Filter{Status: Statuses[r.IntN(len(Statuses))]} }},
		{"event_name", func(*rand.Rand) Filter { return Filter{EventName: "api_mail_log_opened"} }},
		{"window", func(*rand.Rand) Filter { return Filter{Since: mid, Until: mid.Add(7 * 24 * time.Hour)} }},
		{"failed_since", func(*rand.Rand) Filter { return Filter{Status: "failed", Since: mid} }},
	} {
		b.Run(c.name, func(b *testing.B) { benchList(b, l, c.f) })
	}
	b.Run("attempts", func(b *testing.B) {
		r := rand.New(rand.NewPCG(1, 2))
		var lat []time.Duration
		for b.Loop() {
			i := benchReadable[r.IntN(len(benchReadable))]
			acct, id := fmt.Sprintf("acct_%03d", i%benchAccounts), benchDeliveryID(i)
			t := time.Now()
			if as, err := l.Attempts(context.Background(), acct, id); err != nil || len(as) != benchAttempts {
				b.Fatalf("Attempts(%s, %s): %d %v", acct, id, len(as), err)
			}
			lat = append(lat, time.Since(t))
		}
		reportLatency(b, lat)
	})
	b.Run("sizes", func(b *testing.B) { benchSizes(b, l) })
	b.Run("drop_partition", func(b *testing.B) { benchDrop(b, l) })
}

// benchList lists the first page (default limit) with a random account,
// then its second page, and reports the latencies of both.
func benchList(b *testing.B, l *Log, filter func(*rand.Rand) Filter) {
	r := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	for b.Loop() {
		f := filter(r)
		f.Limit = DefaultLimit
		acct := fmt.Sprintf("acct_%03d", r.IntN(benchAccounts))
		if f.EndpointID != "" {
			var n int
			fmt.Sscanf(f.EndpointID, "ep_%d_", &n)
			acct = fmt.Sprintf("acct_%03d", n)
		}
		t := time.Now()
		page, err := l.List(context.Background(), acct, f)
		if err != nil || len(page.Deliveries) == 0 {
			b.Fatalf("List(%s, %+v): %d %v", acct, f, len(page.Deliveries), err)
		}
		lat = append(lat, time.Since(t))
		if page.Next != "" {
			f.Cursor = page.Next
			t = time.Now()
			if _, err := l.List(context.Background(), acct, f); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t))
		}
	}
	reportLatency(b, lat)
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// benchSizes reports the bytes per delivery and per attempt on disk,
// indexes and TOAST included (pg_total_relation_size).
func benchSizes(b *testing.B, l *Log) {
	ctx := context.Background()
	var dBytes, aBytes, dRows, aRows int64
	for b.Loop() {
		err := l.db.QueryRowContext(ctx, `SELECT pg_total_relation_size('log_deliveries'),
			(SELECT sum(pg_total_relation_size(i.inhrelid)) FROM pg_inherits i WHERE i.inhparent = 'log_attempts'::regclass),
			(SELECT count(*) FROM log_deliveries), (SELECT count(*) FROM log_attempts)`).Scan(&dBytes, &aBytes, &dRows, &aRows)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(dBytes)/float64(dRows), "B/delivery")
	b.ReportMetric(float64(aBytes)/float64(aRows), "B/attempt")
}

// benchDrop times dropping a month's partition of 20,000 attempts, the
// way Prune does; the fill of each is untimed.
func benchDrop(b *testing.B, l *Log) {
	ctx := context.Background()
	month := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		b.StopTimer()
		month = month.AddDate(0, 1, 0)
		if err := l.ensurePartition(ctx, month); err != nil {
			b.Fatal(err)
		}
		if _, err := l.db.ExecContext(ctx, `INSERT INTO log_attempts SELECT 'ep:evt_' || i, 'run-1', 1, $1::bigint + i, 150, 200,
			'delivered', '', decode(repeat(md5(i::text), 5), 'hex') FROM generate_series(0, 19999) i`, month.UnixMilli()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		dropped, _, err := l.dropPartitions(ctx, month.AddDate(0, 1, 0))
		if err != nil || len(dropped) != 1 {
			b.Fatalf("dropped %v: %v", dropped, err)
		}
	}
}
