package registry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// Routing at scale: 100,000 endpoints over 50,000 accounts in PostgreSQL,
// each lookup an uncached Route of a random account and event, as a worker
// or the API makes it when its cache has expired. Reports the p50 and p99
// latency of one lookup (target p99 ≤ 5 ms). `make bench-registry` runs it.
func BenchmarkRoutePostgres(b *testing.B) {
	const endpoints, accounts = 100_000, 50_000
	dsn := testenv.PostgresT(b)
	r, err := Open(context.Background(), dsn, Options{Codec: newCodec(b, testenv.CodecKeyLine("bench")), Guard: fakeGuard()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	start := time.Now()
	if err := seed(r, endpoints, accounts); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d endpoints over %d accounts in %s", endpoints, accounts, time.Since(start).Round(time.Millisecond))
	if _, err := r.db.Exec("ANALYZE endpoints"); err != nil {
		b.Fatal(err)
	}
	var plan string
	if err := r.db.QueryRow(r.dialect.rebind(`EXPLAIN SELECT `+columns+` FROM endpoints WHERE account_id = ? AND deleted_at IS NULL AND enabled = ? ORDER BY id`), "acct_00001", true).Scan(&plan); err != nil {
		b.Fatal(err)
	}
	if !strings.Contains(plan, "endpoints_account_id") {
		b.Fatalf("routing does not use the account index: %s", plan)
	}

	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var latencies []time.Duration
	routed := 0
	b.ResetTimer()
	for b.Loop() {
		account := fmt.Sprintf("acct_%05d", rng.IntN(accounts))
		name := event.Names[rng.IntN(len(event.Names))]
		t0 := time.Now()
		eps, err := r.Route(ctx, account, name)
		latencies = append(latencies, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range eps {
			if e.AccountID != account {
				b.Fatalf("Route(%s) returned an endpoint of %s", account, e.AccountID)
			}
		}
		routed += len(eps)
	}
	b.StopTimer()
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[int(float64(len(latencies)-1)*p)]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(routed)/float64(len(latencies)), "endpoints/lookup")
}

// seed inserts n endpoints spread evenly over the accounts, each with a
// random subscription and a sealed secret, many rows per statement.
func seed(r *Registry, n, accounts int) error {
	const perInsert = 1000 // 14 parameters a row, under PostgreSQL's 65,535
	rng := rand.New(rand.NewPCG(3, 4))
	subscriptions := [][]string{{"*"}, {event.Delivered}, {event.Delivered, event.PermanentFailure}, {event.Opened}, {event.TemporaryFailure, event.PermanentFailure}}
	now := time.Now().UnixMilli()
	for done := 0; done < n; done += perInsert {
		var q strings.Builder
		q.WriteString(`INSERT INTO endpoints (` + columns + `) VALUES `)
		var args []any
		for i := done; i < min(done+perInsert, n); i++ {
			id, err := newID()
			if err != nil {
				return err
			}
			secret, err := newSecret()
			if err != nil {
				return err
			}
			sealed, err := r.seal(id, secretSet{Current: secret})
			if err != nil {
				return err
			}
			u, _ := endpoint.ParseURL(fmt.Sprintf("https://hooks.example.com/%d", i))
			row, err := toRow(endpoint.Endpoint{ID: id, AccountID: fmt.Sprintf("acct_%05d", i%accounts), URL: u,
				Events: subscriptions[rng.IntN(len(subscriptions))], Timeout: endpoint.DefaultTimeout,
				RetrySchedule: endpoint.DefaultRetrySchedule, Enabled: rng.IntN(10) > 0, Circuit: endpoint.DefaultCircuit()})
			if err != nil {
				return err
			}
			if i > done {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, NULL)")
			args = append(args, row.id, row.accountID, row.url, row.events, row.description, row.timeoutMS, row.retrySchedule, row.enabled, row.circuit, sealed, now, now)
		}
		if _, err := r.exec(context.Background(), q.String(), args...); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	return nil
}
