package deliverylog

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A batch writes each entry as UpsertDelivery then RecordAttempt (or
// SetStatus) would: new and known deliveries, an attempt written before
// (nothing more), a parked delivery's status, and an entry of another
// account's delivery, refused alone while the rest is written.
func TestWriteBatch(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l := openLog(t, dsn)
		known, fresh, parked := delivery("acct_a", "ep_1", 1, t0), delivery("acct_a", "ep_1", 2, t0), delivery("acct_a", "ep_2", 3, t0)
		upsert(t, l, known)
		first := attempt(known, 1, 503, "busy")
		record(t, l, first)
		theirs := delivery("acct_b", "ep_1", 1, t0) // known's id, another account
		parked.Status = "parked"
		second, again, freshFirst, theirsFirst := attempt(known, 2, 200, `{"ok":true}`), first, attempt(fresh, 1, 200, ""), attempt(theirs, 1, 200, "")
		errs := l.Write(ctx, []Entry{
			{Delivery: known, Attempt: &again},
			{Delivery: theirs, Attempt: &theirsFirst},
			{Delivery: fresh, Attempt: &freshFirst},
			{Delivery: known, Attempt: &second},
			{Delivery: parked},
			{Delivery: Delivery{AccountID: "acct_a"}},
		})
		for i, want := range []error{nil, ErrNotFound, nil, nil, nil} {
			if !errors.Is(errs[i], want) || (want == nil && errs[i] != nil) {
				t.Errorf("entry %d: %v, want %v", i, errs[i], want)
			}
		}
		var field *FieldError
		if !errors.As(errs[5], &field) || field.Field != "delivery_id" {
			t.Errorf("an entry with no delivery id: %v, want a field error naming delivery_id", errs[5])
		}
		if n := count(t, rawDB(t, dsn), "SELECT count(*) FROM log_attempts"); n != 3 {
			t.Fatalf("%d attempt rows, want 3 (known's two, fresh's one)", n)
		}
		for _, want := range []struct {
			d        Delivery
			attempts int
			status   string
			code     int
		}{{known, 2, "delivered", 200}, {fresh, 1, "delivered", 200}, {parked, 0, "parked", 0}} {
			got, err := l.Get(ctx, "acct_a", want.d.DeliveryID)
			if err != nil || got.Attempts != want.attempts || got.Status != want.status || got.LastStatusCode != want.code {
				t.Errorf("%s: %+v %v; want %d attempts, %s, %d", want.d.DeliveryID, got, err, want.attempts, want.status, want.code)
			}
		}
		if _, err := l.Get(ctx, "acct_b", known.DeliveryID); !errors.Is(err, ErrNotFound) {
			t.Errorf("acct_b sees %s: %v", known.DeliveryID, err)
		}
		as, err := l.Attempts(ctx, "acct_a", known.DeliveryID)
		if err != nil || len(as) != 2 || string(as[1].ResponseExcerpt) != `{"ok":true}` {
			t.Fatalf("known's attempts: %+v %v", as, err)
		}
	})
}

// Batches racing with the same attempts (two workers, a spool's retry
// beside the attempt's own write) still write each attempt once, and
// batches that lock the same deliveries do not deadlock.
func TestWriteBatchesConcurrently(t *testing.T) {
	eachStore(t, func(t *testing.T, dsn string) {
		l := openLog(t, dsn)
		var entries []Entry
		for n := range 10 {
			d := delivery("acct_a", "ep_1", n, t0)
			a := attempt(d, 1, 200, "ok")
			entries = append(entries, Entry{Delivery: d, Attempt: &a})
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8*len(entries))
		for w := range 8 {
			batch := append([]Entry(nil), entries...)
			if w%2 == 1 { // the other order
				for i, j := 0, len(batch)-1; i < j; i, j = i+1, j-1 {
					batch[i], batch[j] = batch[j], batch[i]
				}
			}
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				for _, err := range l.Write(ctx, batch) {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		db := rawDB(t, dsn)
		if n := count(t, db, "SELECT count(*) FROM log_attempts"); n != len(entries) {
			t.Fatalf("8 concurrent batches of %d attempts: %d rows", len(entries), n)
		}
		if n := count(t, db, "SELECT count(*) FROM log_deliveries WHERE attempts = 1 AND status = 'delivered'"); n != len(entries) {
			t.Fatalf("%d deliveries counted one delivered attempt, want %d", n, len(entries))
		}
	})
}
