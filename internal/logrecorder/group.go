package logrecorder

import (
	"context"
	"errors"
	"sync"

	"github.com/hookrelay/hookrelay/internal/deliverylog"
)

// Group commit: the writes of attempts that end at about the same time go
// to the database together (Store.Write: in PostgreSQL one round trip and
// one commit for all). A write joins the queue; unless a batch is being
// written already, a writer starts and writes what is queued, up to
// maxBatch writes at a time, until the queue is empty. No write waits for
// others to arrive: a lone write goes at once, and writes that arrive while
// a batch is in flight form the next one. Each attempt waits for its
// batch's result within its own write timeout; past it, it spools its
// write as before, and a batch that commits after all makes the spool's
// retry write nothing (writes are idempotent).

// maxBatch bounds the writes of one batch.
const maxBatch = 100

type groupCommit struct {
	mu      sync.Mutex
	queue   []*queued
	writing bool // a writer goroutine is running
}

// queued is one attempt's write waiting for its batch.
type queued struct {
	ctx  context.Context // the attempt's write timeout
	w    write
	done chan error // buffered: the writer never waits on it
}

// commit writes w with the writes queued beside it and returns its
// result, or ctx's error once ctx is done.
func (r *Recorder) commit(ctx context.Context, w write) error {
	q := &queued{ctx: ctx, w: w, done: make(chan error, 1)}
	g := &r.group
	g.mu.Lock()
	g.queue = append(g.queue, q)
	start := !g.writing
	g.writing = true
	g.mu.Unlock()
	if start {
		go r.writeQueued()
	}
	select {
	case err := <-q.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeQueued writes batches until the queue is empty.
func (r *Recorder) writeQueued() {
	for {
		batch := r.group.take()
		if len(batch) == 0 {
			return
		}
		r.writeBatch(batch)
	}
}

// take removes up to maxBatch writes from the queue, leaving out those
// whose attempt gave up waiting (it spooled its write); with none left it
// marks the writer stopped.
func (g *groupCommit) take() []*queued {
	g.mu.Lock()
	defer g.mu.Unlock()
	var batch []*queued
	for len(batch) < maxBatch && len(g.queue) > 0 {
		q := g.queue[0]
		g.queue[0] = nil
		g.queue = g.queue[1:]
		if q.ctx.Err() == nil {
			batch = append(batch, q)
		}
	}
	if len(batch) == 0 {
		g.writing = false
	}
	return batch
}

// writeBatch writes batch within the write timeout and hands each write
// its result. When the batch failed as a whole but not for lack of time,
// one write may be what failed it: each is then tried alone.
func (r *Recorder) writeBatch(batch []*queued) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	entries := make([]deliverylog.Entry, len(batch))
	for i, q := range batch {
		entries[i] = q.w.entry()
	}
	errs := r.store.Write(ctx, entries)
	alone := len(batch) > 1 && ctx.Err() == nil && failedAsOne(errs)
	for i, q := range batch {
		err := errs[i]
		if alone && q.ctx.Err() == nil {
			err = q.w.apply(q.ctx, r.store)
		}
		q.done <- err
	}
}

// failedAsOne reports whether every write of a batch failed, none of them
// refused for itself.
func failedAsOne(errs []error) bool {
	for _, err := range errs {
		if err == nil || refused(err) {
			return false
		}
	}
	return true
}

// refused reports an error writing again cannot mend: a bad field, or a
// delivery of another account.
func refused(err error) bool {
	var field *deliverylog.FieldError
	return errors.As(err, &field) || errors.Is(err, deliverylog.ErrNotFound)
}
