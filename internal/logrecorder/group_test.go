package logrecorder

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// gatedStore is a fakeStore whose writes wait at a gate while it is shut,
// and that counts the batches it was given and fails a batch holding a
// poisoned delivery as a whole, as a database would.
type gatedStore struct {
	*fakeStore
	gate    chan struct{}
	poison  string
	mu      sync.Mutex
	batches []int
}

func (g *gatedStore) Write(ctx context.Context, entries []deliverylog.Entry) []error {
	g.mu.Lock()
	g.batches = append(g.batches, len(entries))
	g.mu.Unlock()
	select {
	case <-g.gate:
	case <-ctx.Done():
		errs := make([]error, len(entries))
		for i := range errs {
			errs[i] = ctx.Err()
		}
		return errs
	}
	for _, e := range entries {
		if e.Delivery.DeliveryID == g.poison {
			errs := make([]error, len(entries))
			for i := range errs {
				errs[i] = errors.New("invalid byte sequence")
			}
			return errs
		}
	}
	return g.fakeStore.Write(ctx, entries)
}

func (g *gatedStore) sizes() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]int(nil), g.batches...)
}

func attemptOf(delivery string) (workflows.AttemptInput, workflows.Attempt) {
	in := input(1, false)
	in.DeliveryID = delivery
	return in, workflows.Attempt{Number: 1, StartedAt: created, Outcome: workflows.OutcomeDelivered, StatusCode: 200}
}

// Attempts ending while a batch is in flight go to the database together
// in the next one, each written once and each waiting for its own batch; a
// batch that fails as a whole for one bad write writes the others alone.
func TestConcurrentRecordsShareACommit(t *testing.T) {
	store := &gatedStore{fakeStore: newFakeStore(), gate: make(chan struct{}), poison: "ep_1:evt_poison"}
	r := New(store, Options{WriteTimeout: 10 * time.Second})
	var wg sync.WaitGroup
	record := func(delivery string) {
		wg.Go(func() {
			in, rec := attemptOf(delivery)
			r.Record(context.Background(), "run-1", in, rec, created)
		})
	}
	record("ep_1:evt_first")
	testenv.Eventually(t, 5*time.Second, "the first batch is in flight", func() bool { return len(store.sizes()) == 1 })
	for _, d := range []string{"ep_1:evt_a", "ep_1:evt_b", "ep_1:evt_poison", "ep_1:evt_c"} {
		record(d)
	}
	testenv.Eventually(t, 5*time.Second, "four writes queue behind it", func() bool {
		r.group.mu.Lock()
		defer r.group.mu.Unlock()
		return len(r.group.queue) == 4
	})
	close(store.gate)
	wg.Wait()
	if got := store.sizes(); len(got) < 2 || got[0] != 1 || got[1] != 4 {
		t.Fatalf("batches %v, want the first alone, then the four queued behind it together", got)
	}
	if store.count() != 4 || r.Spooled() != 1 {
		t.Fatalf("%d attempts written, %d spooled; want 4 (all but the poisoned one) and 1", store.count(), r.Spooled())
	}
	r.group.mu.Lock()
	writing := r.group.writing
	r.group.mu.Unlock()
	if writing {
		t.Fatal("the writer still runs with nothing queued")
	}
}

// An attempt whose batch outlives its write timeout goes on and spools
// its write, which the spool writes once the database answers.
func TestRecordDoesNotWaitPastItsTimeoutForABatch(t *testing.T) {
	store := &gatedStore{fakeStore: newFakeStore(), gate: make(chan struct{})}
	r := New(store, Options{WriteTimeout: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	began := time.Now()
	in, rec := attemptOf("ep_1:evt_slow")
	r.Record(ctx, "run-1", in, rec, created)
	if took := time.Since(began); took > 2*time.Second || r.Spooled() != 1 {
		t.Fatalf("took %s, spooled %d; want about 100ms, 1", took, r.Spooled())
	}
	close(store.gate)
	go r.Run(ctx)
	testenv.Eventually(t, 10*time.Second, "the spool is written", func() bool { return r.Spooled() == 0 })
	if store.count() != 1 {
		t.Fatalf("%d attempts, want 1", store.count())
	}
}
