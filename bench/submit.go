package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/internal/testenv"
)

// makeEvents builds n distinct fake events of account (none if empty); base
// makes them distinct from any earlier run's on the same server.
func makeEvents(account string, n int) ([]testenv.Event, error) {
	return makeEventsFrom(account, n, 1_000_000)
}

// makeEventsFrom is makeEvents with mail log ids from firstID, so a second
// phase's events are other events.
func makeEventsFrom(account string, n, firstID int) ([]testenv.Event, error) {
	return testenv.FakeEvents(account, n, firstID, time.Now().UTC().Truncate(time.Millisecond))
}

// sendFunc submits the events at idx (one request's worth) and returns
// once they are accepted.
type sendFunc func(ctx context.Context, idx []int) error

// submitAll sends events 0..n-1 in chunks of batch from concurrency
// goroutines, at most rate events per second when rate > 0. started[i] is
// set just before event i's first request; the first error stops the rest.
func submitAll(ctx context.Context, n, batch, concurrency int, rate float64, started []time.Time, accepted *atomic.Int64, send sendFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var every time.Duration
	if rate > 0 {
		every = time.Duration(float64(batch) / rate * float64(time.Second))
	}
	errs := testenv.Paced((n+batch-1)/batch, concurrency, every, func(chunk int) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var idx []int
		now := time.Now()
		for i := chunk * batch; i < min((chunk+1)*batch, n); i++ {
			idx, started[i] = append(idx, i), now
		}
		if err := send(ctx, idx); err != nil {
			cancel()
			return err
		}
		accepted.Add(int64(len(idx)))
		return nil
	})
	for _, err := range errs {
		if ctx.Err() == nil || err != context.Canceled {
			return err
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// postEvents posts events[idx] (one event, or a batch) to serve, retrying
// 503s after their Retry-After and a lost connection a few times.
func postEvents(ctx context.Context, sc *testenv.EventsClient, events []testenv.Event, idx []int) error {
	body := events[idx[0]].Body
	if len(idx) > 1 {
		var b bytes.Buffer
		b.WriteString(`{"events":[`)
		for k, i := range idx {
			if k > 0 {
				b.WriteByte(',')
			}
			b.Write(events[i].Body)
		}
		b.WriteString(`]}`)
		body = b.Bytes()
	}
	r, _, err := sc.PostEvents(ctx, body)
	if err == nil && r.Code != http.StatusAccepted {
		err = fmt.Errorf("POST /v1/events: status %d: %s", r.Code, truncate(r.Body, 300))
	}
	return err
}

// background is a submitAll running while a mode polls visibility.
type background struct {
	out      io.Writer
	mode     string // names it in what it prints
	events   int
	begin    time.Time
	sc       *testenv.EventsClient
	done     chan error // nil once the submission has ended
	accepted time.Time  // when it ended, every event accepted
}

// submitInBackground runs submit while the caller polls; mode, events,
// begin and sc are for the line that says it ended.
func submitInBackground(out io.Writer, mode string, events int, begin time.Time, sc *testenv.EventsClient, submit func() error) *background {
	b := &background{out: out, mode: mode, events: events, begin: begin, sc: sc, done: make(chan error, 1)}
	go func() { b.done <- submit() }()
	return b
}

// wait waits two seconds for the next poll, or less when the submission
// ends: then it notes when, and says so.
func (b *background) wait(ctx context.Context) error {
	select {
	case err := <-b.done:
		if err != nil {
			return fmt.Errorf("%s: submit: %w", b.mode, err)
		}
		b.accepted, b.done = time.Now(), nil
		fmt.Fprintf(b.out, "   %s: all %d accepted in %.1fs (%d refused with 503 and retried)\n", b.mode, b.events, b.accepted.Sub(b.begin).Seconds(), b.sc.Refused.Load())
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// startLean starts a lean baseline workflow directly, as a Go producer
// would; the SDK already retries transient errors, and this retries
// overload a few times more.
func startLean(ctx context.Context, c client.Client, taskQueue, workflowID string, ev testenv.Event) error {
	for attempt := 1; ; attempt++ {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflowID, TaskQueue: taskQueue}, leanWorkflowName, leanInput{Body: ev.Sent})
		var exhausted *serviceerror.ResourceExhausted
		var unavailable *serviceerror.Unavailable
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case (errors.As(err, &exhausted) || errors.As(err, &unavailable)) && attempt <= 5:
			if err := testenv.Sleep(ctx, time.Second); err != nil {
				return err
			}
		default:
			return fmt.Errorf("start %s: %w", workflowID, err)
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
