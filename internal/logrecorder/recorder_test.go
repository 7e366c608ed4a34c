package logrecorder

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// fakeStore records writes; while down, every write blocks until its
// context ends.
type fakeStore struct {
	mu       sync.Mutex
	down     bool
	attempts map[string]deliverylog.AttemptRecord
	status   map[string]string
}

func newFakeStore() *fakeStore {
	return &fakeStore{attempts: map[string]deliverylog.AttemptRecord{}, status: map[string]string{}}
}

func (f *fakeStore) wait(ctx context.Context) error {
	f.mu.Lock()
	down := f.down
	f.mu.Unlock()
	if down {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (f *fakeStore) setDown(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }

func (f *fakeStore) UpsertDelivery(ctx context.Context, d deliverylog.Delivery) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.status[d.DeliveryID]; !ok {
		f.status[d.DeliveryID] = d.Status
	}
	return nil
}

func (f *fakeStore) RecordAttempt(ctx context.Context, a deliverylog.AttemptRecord) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := fmt.Sprint(a.DeliveryID, "/", a.RunID, "/", a.Attempt)
	if _, ok := f.attempts[key]; !ok {
		f.attempts[key] = a
		f.status[a.DeliveryID] = a.Status
	}
	return nil
}

func (f *fakeStore) SetStatus(ctx context.Context, _, deliveryID, status string, _ time.Time) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status[deliveryID] = status
	return nil
}

func (f *fakeStore) Write(ctx context.Context, entries []deliverylog.Entry) []error {
	errs := make([]error, len(entries))
	for i, e := range entries {
		if errs[i] = f.UpsertDelivery(ctx, e.Delivery); errs[i] != nil {
			continue
		}
		if e.Attempt == nil {
			errs[i] = f.SetStatus(ctx, e.Delivery.AccountID, e.Delivery.DeliveryID, e.Delivery.Status, time.Time{})
		} else {
			errs[i] = f.RecordAttempt(ctx, *e.Attempt)
		}
	}
	return errs
}

func (f *fakeStore) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.attempts) }

var created = time.Date(2026, 4, 18, 20, 0, 0, 0, time.UTC)

func input(n int, spent bool) workflows.AttemptInput {
	return workflows.AttemptInput{
		DeliveryID: "ep_1:evt_1", EndpointID: "ep_1", AccountID: "acct_1", Attempt: n,
		Log: &workflows.AttemptLog{CreatedAt: created, EventID: "evt_1", EventName: "api_mail_log_delivered",
			MailLogID: 5555550001, RetryDelay: time.Minute, ScheduleSpent: spent},
	}
}

func TestRecordWritesWithinTheBoundAndSpoolsWhatTheDatabaseMisses(t *testing.T) {
	store := newFakeStore()
	r := New(store, Options{WriteTimeout: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)

	r.Record(ctx, "run-1", input(1, false), workflows.Attempt{Number: 1, StartedAt: created, Outcome: workflows.OutcomeHTTPError, StatusCode: 503}, created)
	if store.count() != 1 || store.status["ep_1:evt_1"] != "retrying" {
		t.Fatalf("after a written attempt: %d records, status %q; want 1, retrying", store.count(), store.status["ep_1:evt_1"])
	}

	store.setDown(true)
	began := time.Now()
	r.Record(ctx, "run-1", input(2, false), workflows.Attempt{Number: 2, StartedAt: created.Add(time.Minute), Outcome: workflows.OutcomeDelivered, StatusCode: 200}, created)
	if took := time.Since(began); took > time.Second {
		t.Fatalf("a write to a database that does not answer took %s; the bound is 100ms", took)
	}
	if r.Spooled() != 1 {
		t.Fatalf("spooled %d, want 1", r.Spooled())
	}
	store.setDown(false)
	testenv.Eventually(t, 10*time.Second, "the spool is written", func() bool { return r.Spooled() == 0 })
	if r.Spooled() != 0 || store.count() != 2 || store.status["ep_1:evt_1"] != "delivered" {
		t.Fatalf("after the database returned: spooled %d, %d records, status %q; want 0, 2, delivered", r.Spooled(), store.count(), store.status["ep_1:evt_1"])
	}
}

func TestRecordParkedWritesStatusOnly(t *testing.T) {
	store := newFakeStore()
	r := New(store, Options{})
	r.Record(context.Background(), "run-1", input(1, false), workflows.Attempt{Number: 1, StartedAt: created, Outcome: workflows.OutcomeParked}, created)
	if store.count() != 0 || store.status["ep_1:evt_1"] != "parked" {
		t.Fatalf("parked: %d records, status %q; want 0, parked", store.count(), store.status["ep_1:evt_1"])
	}
}

func TestRecordSkipsWhatTheLogCannotHold(t *testing.T) {
	store := newFakeStore()
	r := New(store, Options{})
	noAccount := input(1, false)
	noAccount.AccountID = ""
	old := input(1, false)
	old.Log = nil
	for _, in := range []workflows.AttemptInput{noAccount, old} {
		r.Record(context.Background(), "run-1", in, workflows.Attempt{Number: 1, StartedAt: created, Outcome: workflows.OutcomeDelivered}, created)
	}
	if store.count() != 0 || r.Spooled() != 0 {
		t.Fatalf("%d records, %d spooled; want none", store.count(), r.Spooled())
	}
}

func TestDrainStopsAtItsDeadline(t *testing.T) {
	store := newFakeStore()
	store.setDown(true)
	r := New(store, Options{WriteTimeout: 50 * time.Millisecond})
	r.Record(context.Background(), "run-1", input(1, false), workflows.Attempt{Number: 1, StartedAt: created, Outcome: workflows.OutcomeDelivered}, created)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	r.Drain(ctx)
	if took := time.Since(began); took > 2*time.Second || r.Spooled() != 1 {
		t.Fatalf("drain against a database that does not answer: took %s, left %d; want under its deadline, 1 left", took, r.Spooled())
	}
}

func TestAfter(t *testing.T) {
	end := created.Add(time.Second)
	for _, c := range []struct {
		name   string
		a      workflows.Attempt
		spent  bool
		status workflows.Status
		next   time.Time
	}{
		{"delivered", workflows.Attempt{Outcome: workflows.OutcomeDelivered}, false, workflows.StatusDelivered, time.Time{}},
		{"retried on the schedule", workflows.Attempt{Outcome: workflows.OutcomeHTTPError}, false, workflows.StatusRetrying, end.Add(time.Minute)},
		{"retried after Retry-After", workflows.Attempt{Outcome: workflows.OutcomeHTTPError, RetryAfterSeconds: 7}, false, workflows.StatusRetrying, end.Add(7 * time.Second)},
		{"schedule spent", workflows.Attempt{Outcome: workflows.OutcomeTimeout}, true, workflows.StatusFailed, time.Time{}},
		{"not retryable", workflows.Attempt{Outcome: workflows.OutcomeGone}, false, workflows.StatusFailed, time.Time{}},
		{"probe failed", workflows.Attempt{Outcome: workflows.OutcomeHTTPError, ParkAgain: true}, false, workflows.StatusParked, time.Time{}},
	} {
		l := workflows.AttemptLog{RetryDelay: time.Minute, ScheduleSpent: c.spent}
		if s, next := l.After(c.a, end); s != c.status || !next.Equal(c.next) {
			t.Errorf("%s: %s, %s; want %s, %s", c.name, s, next, c.status, c.next)
		}
	}
}

func TestErrorClass(t *testing.T) {
	for _, c := range []struct {
		a    workflows.Attempt
		want string
	}{
		{workflows.Attempt{Outcome: workflows.OutcomeDelivered}, ""},
		{workflows.Attempt{Outcome: workflows.OutcomeHTTPError, Error: "503 Service Unavailable"}, "http_error"},
		{workflows.Attempt{Outcome: workflows.OutcomeConnectionError, Error: "dial tcp 127.0.0.1:9: connect: connection refused"}, "connection_refused"},
		{workflows.Attempt{Outcome: workflows.OutcomeConnectionError, Error: "dial tcp: lookup hooks.example.com: no such host"}, "dns"},
		{workflows.Attempt{Outcome: workflows.OutcomeConnectionError, Error: "tls: failed to verify certificate"}, "tls"},
		{workflows.Attempt{Outcome: workflows.OutcomeConnectionError, Error: "unexpected EOF"}, "connection_reset"},
		{workflows.Attempt{Outcome: workflows.OutcomeConnectionError, Error: "something else"}, "connection_error"},
		{workflows.Attempt{Outcome: workflows.OutcomeTimeout, Error: "context deadline exceeded"}, "timeout"},
	} {
		if got := ErrorClass(c.a); got != c.want {
			t.Errorf("ErrorClass(%s, %q) = %q, want %q", c.a.Outcome, c.a.Error, got, c.want)
		}
	}
}
