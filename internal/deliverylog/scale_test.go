package deliverylog

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/testenv"
)

// The delivery log at scale (make bench-log): a fresh PostgreSQL database
// filled with set-based SQL, List timed with each filter over many
// accounts, the bytes a record takes on disk, a day's retention run and a
// month's partition dropped. As a normal test it runs the same code on
// 10,000 attempts and checks what it reads; make bench-log passes
// -bench-log.attempts=10000000 and -v, and it prints its figures.
var (
	scaleAttempts = flag.Int("bench-log.attempts", 10_000, "delivery log scale bench: attempts to fill")
	scaleAccounts = flag.Int("bench-log.accounts", 0, "delivery log scale bench: accounts (0: one per 1,000 attempts, at most 10,000)")
	scaleSamples  = flag.Int("bench-log.samples", 0, "delivery log scale bench: accounts sampled per filter (0: 1,000, fewer on a small fill)")
)

// scale is the shape of one fill. Deliveries are created evenly over
// days ending at end (2026-07-01, so June's attempts all still have their
// response excerpt under 30 days of content retention and the months
// before have had theirs blanked); one in four took two attempts (503,
// then 200), the rest one. Accounts are skewed: account a holds a share
// falling as 1/sqrt(a), so the largest has about 1% of the deliveries and
// the smallest about a twentieth of that.
type scale struct {
	attempts, deliveries, accounts int
	days                           int
	end                            time.Time
}

func newScale() scale {
	s := scale{attempts: *scaleAttempts, accounts: *scaleAccounts, days: 180,
		end: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)}
	s.deliveries = s.attempts * 4 / 5 // 1.25 attempts a delivery
	if s.accounts == 0 {
		s.accounts = min(10_000, max(10, s.attempts/1000))
	}
	return s
}

func (s scale) start() time.Time { return s.end.Add(-time.Duration(s.days) * 24 * time.Hour) }

// step is the milliseconds between two deliveries' creation.
func (s scale) step() float64 {
	return float64(s.days) * 24 * float64(time.Hour.Milliseconds()) / float64(s.deliveries)
}

// The bench's names: the event names are the sample events'.
var (
	scaleEventNames = []string{"api_mail_log_delivered", "api_mail_log_opened", "api_mail_log_permanent_failure", "api_mail_log_temporary_failure"}
	// Statuses by share: delivered 90%, failed 3, retrying 2, pending 2, parked 2, canceled 1.
	scaleStatusSQL = `CASE WHEN m < 90 THEN 'delivered' WHEN m < 93 THEN 'failed' WHEN m < 95 THEN 'retrying'
		WHEN m < 97 THEN 'pending' WHEN m < 99 THEN 'parked' ELSE 'canceled' END`
)

func scaleAccount(a int) string { return fmt.Sprintf("acct_%05d", a) }

// fillScale writes deliveries [lo, hi) and their attempts in two
// set-based statements. Within content retention (the last 30 days)
// attempts carry a response excerpt the size of a sealed short answer
// (43 bytes: {"ok":true}) or, for the 503s, of a sealed 200-byte error page
// (232 bytes); older ones carry none, as content retention leaves them.
func fillScale(ctx context.Context, l *Log, s scale, lo, hi int) error {
	contentFrom := s.end.Add(-DefaultContentRetention).UnixMilli()
	deliveries := fmt.Sprintf(`INSERT INTO log_deliveries
		SELECT 'ep_' || a || '_' || k || ':evt_' || i, 'acct_' || lpad(a::text, 5, '0'), 'ep_' || a || '_' || k, 'evt_' || i,
			(ARRAY['%[1]s','%[1]s','%[1]s','%[1]s','%[1]s','%[2]s','%[2]s','%[2]s','%[3]s','%[4]s'])[1 + i %% 10],
			(5555000000 + i)::text, %[5]s, n, created, created + (n - 1) * 60000 + 150, 200, NULL
		FROM (SELECT i, floor(%[6]d * power((hashint8(i)::float8 + 2147483648) / 4294967296, 2))::int AS a,
			abs(hashint8(-i - 1)) %% 5 AS k, (i / 10) %% 100 AS m, CASE WHEN i %% 4 = 0 THEN 2 ELSE 1 END AS n,
			%[7]d + floor(i * %[8]f)::bigint AS created
			FROM generate_series(%[9]d::bigint, %[10]d - 1) i) s`,
		scaleEventNames[0], scaleEventNames[1], scaleEventNames[2], scaleEventNames[3], scaleStatusSQL,
		s.accounts, s.start().UnixMilli(), s.step(), lo, hi)
	attempts := fmt.Sprintf(`INSERT INTO log_attempts
		SELECT d.delivery_id, 'run-1', t, d.created_at + (t - 1) * 60000, 150,
			CASE WHEN t < d.attempts THEN 503 ELSE 200 END, CASE WHEN t < d.attempts THEN 'http_error' ELSE 'delivered' END,
			CASE WHEN t < d.attempts THEN 'status_5xx' ELSE '' END,
			CASE WHEN d.created_at >= %[1]d THEN substring(decode(repeat(md5(d.delivery_id || t), 15), 'hex')
				FROM 1 FOR CASE WHEN t < d.attempts THEN 232 ELSE 43 END) END
		FROM log_deliveries d, generate_series(1, d.attempts) t
		WHERE d.created_at >= %[2]d AND d.created_at < %[3]d`,
		contentFrom, s.start().UnixMilli()+int64(float64(lo)*s.step()), s.start().UnixMilli()+int64(float64(hi)*s.step()))
	for _, q := range []string{deliveries, attempts} {
		if _, err := l.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("fill %d to %d: %w", lo, hi, err)
		}
	}
	return nil
}

// scaleFilters are the List filters timed, each for a sampled account.
var scaleFilters = []struct {
	name string
	f    func(r *rand.Rand, s scale, account int) Filter
}{
	{"none", func(*rand.Rand, scale, int) Filter { return Filter{} }},
	{"endpoint", func(r *rand.Rand, _ scale, a int) Filter {
		return Filter{EndpointID: fmt.Sprintf("ep_%d_%d", a, r.IntN(5))}
	}},
	{"status", func(r *rand.Rand, _ scale, _ int) Filter { return Filter{Status: Statuses[r.IntN(len(Statuses))]} }},
	{"event_name", func(r *rand.Rand, _ scale, _ int) Filter {
		return Filter{EventName: scaleEventNames[r.IntN(len(scaleEventNames))]}
	}},
	{"since_until", func(r *rand.Rand, s scale, _ int) Filter {
		since := s.start().Add(time.Duration(r.IntN(s.days-7)) * 24 * time.Hour)
		return Filter{Since: since, Until: since.Add(7 * 24 * time.Hour)}
	}},
	{"failed_since", func(r *rand.Rand, s scale, _ int) Filter {
		return Filter{Status: "failed", Since: s.end.Add(-time.Duration(1+r.IntN(30)) * 24 * time.Hour)}
	}},
}

// latency is one filter's timings: first pages and following ones.
type latency struct {
	name                 string
	first, next          []time.Duration
	rows, emptyFirstPage int
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return d[int(q*float64(len(d)-1)+0.5)]
}

// timeList lists, for each of n sampled accounts, the first page (50) of
// a filter and, when there is one, the page after it by its cursor.
func timeList(ctx context.Context, l *Log, s scale, n int) ([]latency, error) {
	var out []latency
	for _, c := range scaleFilters {
		r := rand.New(rand.NewPCG(7, 11))
		lat := latency{name: c.name}
		for range n {
			a := r.IntN(s.accounts)
			f := c.f(r, s, a)
			f.Limit = DefaultLimit
			t := time.Now()
			page, err := l.List(ctx, scaleAccount(a), f)
			if err != nil {
				return nil, err
			}
			lat.first = append(lat.first, time.Since(t))
			lat.rows += len(page.Deliveries)
			if len(page.Deliveries) == 0 {
				lat.emptyFirstPage++
			}
			if page.Next == "" {
				continue
			}
			f.Cursor = page.Next
			t = time.Now()
			page, err = l.List(ctx, scaleAccount(a), f)
			if err != nil {
				return nil, err
			}
			lat.next = append(lat.next, time.Since(t))
			lat.rows += len(page.Deliveries)
		}
		out = append(out, lat)
	}
	return out, nil
}

// relSize is one relation's rows and bytes on disk, indexes and TOAST
// included (pg_total_relation_size), and its indexes' share.
type relSize struct {
	name               string
	rows, bytes, index int64
	excerpts           int64 // attempts with a response excerpt
}

func (r relSize) perRow() float64 { return float64(r.bytes) / float64(max(r.rows, 1)) }

func sizes(ctx context.Context, l *Log) ([]relSize, error) {
	names, err := l.Partitions(ctx)
	if err != nil {
		return nil, err
	}
	var out []relSize
	for _, name := range append([]string{"log_deliveries"}, names...) {
		r := relSize{name: name}
		excerpts := "0"
		if name != "log_deliveries" {
			excerpts = "(SELECT count(*) FROM " + name + " WHERE response_excerpt IS NOT NULL)"
		}
		if err := l.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM `+name+`), pg_total_relation_size('`+name+`'),
			pg_indexes_size('`+name+`'), `+excerpts).Scan(&r.rows, &r.bytes, &r.index, &r.excerpts); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// TestBenchLog is make bench-log: at its default size a test that the
// bench's code runs and reads what it filled; with -bench-log.attempts
// the measurement, printed.
func TestBenchLog(t *testing.T) {
	ctx := context.Background()
	s := newScale()
	l := openLog(t, testenv.PostgresT(t))
	out := io.Discard
	if testing.Verbose() {
		out = os.Stdout
	}
	fmt.Fprintf(out, "delivery log bench: %d attempts, %d deliveries, %d accounts, %d days to %s\n",
		s.attempts, s.deliveries, s.accounts, s.days, s.end.Format(time.DateOnly))
	// Through end's month: the last deliveries' second attempts start there.
	for m := monthOf(s.start()); !m.After(s.end); m = m.AddDate(0, 1, 0) {
		if err := l.ensurePartition(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	rebuild, err := dropDeliveryIndexes(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	chunk := max(s.deliveries/20, 1)
	for lo := 0; lo < s.deliveries; lo += chunk {
		if err := fillScale(ctx, l, s, lo, min(lo+chunk, s.deliveries)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(out, "  filled %d deliveries (%v)\n", min(lo+chunk, s.deliveries), time.Since(began).Round(time.Second))
	}
	for _, q := range rebuild {
		if _, err := l.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintf(out, "  built log_deliveries' %d indexes (%v)\n", len(rebuild), time.Since(began).Round(time.Second))
	fill := time.Since(began)
	if _, err := l.db.ExecContext(ctx, `VACUUM ANALYZE log_deliveries, log_attempts`); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(out, "fill: %v (and VACUUM ANALYZE: %v)\n", fill.Round(time.Second), (time.Since(began) - fill).Round(time.Second))
	rels, err := sizes(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	checkScaleFill(t, s, rels)
	printSizes(out, rels)

	samples := *scaleSamples
	if samples == 0 {
		samples = min(1000, s.accounts*20)
	}
	lats, err := timeList(ctx, l, s, samples)
	if err != nil {
		t.Fatal(err)
	}
	printLatency(out, samples, lats)
	for _, lat := range lats {
		if lat.rows == 0 {
			t.Errorf("List with filter %s found nothing in %d accounts", lat.name, samples)
		}
	}
	benchScaleRetention(t, out, l, s)
}

// dropDeliveryIndexes drops log_deliveries' secondary indexes, for the
// fill, and returns the statements that build them again: an index built
// once over the table is far quicker than one kept through millions of
// inserts (and packed tighter: see the sizing notes).
func dropDeliveryIndexes(ctx context.Context, l *Log) ([]string, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT indexname, indexdef FROM pg_indexes
		WHERE tablename = 'log_deliveries' AND indexname <> 'log_deliveries_pkey'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var names, defs []string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			return nil, err
		}
		names, defs = append(names, name), append(defs, def)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if _, err := l.db.ExecContext(ctx, `DROP INDEX `+strings.Join(names, ", ")); err != nil {
		return nil, err
	}
	return defs, nil
}

// checkScaleFill checks the fill holds what the bench says it measures.
func checkScaleFill(t *testing.T, s scale, rels []relSize) {
	t.Helper()
	var attempts int64
	for _, r := range rels[1:] {
		attempts += r.rows
	}
	// Deliveries 0, 4, 8, ... took two attempts.
	if want := int64(s.deliveries + (s.deliveries+3)/4); rels[0].rows != int64(s.deliveries) || attempts != want {
		t.Fatalf("filled %d deliveries and %d attempts, want %d and %d", rels[0].rows, attempts, s.deliveries, want)
	}
}

func printSizes(w io.Writer, rels []relSize) {
	fmt.Fprintf(w, "%-22s %12s %14s %12s %10s %14s\n", "relation", "rows", "bytes", "indexes", "B/row", "with excerpt")
	var a relSize
	for _, r := range rels {
		fmt.Fprintf(w, "%-22s %12d %14d %12d %10.0f %14d\n", r.name, r.rows, r.bytes, r.index, r.perRow(), r.excerpts)
		if r.name != "log_deliveries" {
			a.rows, a.bytes, a.index, a.excerpts = a.rows+r.rows, a.bytes+r.bytes, a.index+r.index, a.excerpts+r.excerpts
		}
	}
	fmt.Fprintf(w, "%-22s %12d %14d %12d %10.0f %14d\n", "log_attempts (all)", a.rows, a.bytes, a.index, a.perRow(), a.excerpts)
}

func printLatency(w io.Writer, samples int, lats []latency) {
	fmt.Fprintf(w, "List, %d sampled accounts a filter, pages of %d (ms):\n", samples, DefaultLimit)
	fmt.Fprintf(w, "%-14s %8s %8s %8s %8s %8s %8s %7s\n", "filter", "first", "p50", "p99", "next", "p50", "p99", "empty")
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for _, l := range lats {
		fmt.Fprintf(w, "%-14s %8d %8.2f %8.2f %8d %8.2f %8.2f %7d\n", l.name, len(l.first), ms(quantile(l.first, 0.5)),
			ms(quantile(l.first, 0.99)), len(l.next), ms(quantile(l.next, 0.5)), ms(quantile(l.next, 0.99)), l.emptyFirstPage)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(append(all, l.first...), l.next...)
	}
	fmt.Fprintf(w, "%-14s %8d %8.2f %8.2f   (every page of every filter; target p99 <= 50 ms)\n", "all", len(all),
		ms(quantile(all, 0.5)), ms(quantile(all, 0.99)))
}

// benchScaleRetention times a day's retention run at the end of the fill
// (records kept for all but the first day, excerpts for 29 days: one
// day's deliveries deleted, one day's excerpts blanked), then dropping the
// oldest month's partition as Prune does.
func benchScaleRetention(t *testing.T, w io.Writer, l *Log, s scale) {
	ctx := context.Background()
	records := time.Duration(s.days-1) * 24 * time.Hour
	began := time.Now()
	p, err := l.Prune(ctx, s.end, records, DefaultContentRetention-24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "a day's retention run: %v (%d deliveries deleted, %d excerpts blanked, partitions dropped %v)\n",
		time.Since(began).Round(time.Millisecond), p.DeletedDeliveries, p.BlankedExcerpts, p.DroppedPartitions)
	if p.DeletedDeliveries == 0 || p.BlankedExcerpts == 0 {
		t.Errorf("a day's retention deleted %d deliveries and blanked %d excerpts, want some of each", p.DeletedDeliveries, p.BlankedExcerpts)
	}
	oldest := partitionName(monthOf(s.start()))
	var rows int64
	if err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM `+oldest).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	dropped, took, err := l.dropPartitions(ctx, monthOf(s.start()).AddDate(0, 1, 0))
	if err != nil || !slices.Equal(dropped, []string{oldest}) {
		t.Fatalf("dropped %v: %v, want %s", dropped, err, oldest)
	}
	fmt.Fprintf(w, "dropping partition %s (%d attempts): %v (target < 1 s)\n", oldest, rows, took.Round(time.Microsecond))
	if names, err := l.Partitions(ctx); err != nil || slices.Contains(names, oldest) {
		t.Errorf("partitions after the drop: %v %v", names, err)
	}
}
