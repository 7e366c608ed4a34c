package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/event"
)

// fakeEvent is one event as the mail service would send it, with fake data
// only (example.com addresses, a made-up subject).
type fakeEvent struct {
	id   string // the event id serve derives from the body
	body []byte // what is POSTed to /v1/events
	sent []byte // what an endpoint receives: {"event_name","payload"}
}

// makeEvents builds n distinct events, cycling through the four event
// names; base makes them distinct from any earlier run's on the same server.
func makeEvents(n int, base time.Time) ([]fakeEvent, error) { return makeAccountEvents("", n, base) }

// makeAccountEvents is makeEvents of account (none if empty): an endpoint
// in the registry belongs to one, and routing is exact on it.
func makeAccountEvents(account string, n int, base time.Time) ([]fakeEvent, error) {
	out := make([]fakeEvent, n)
	accountField := ""
	if account != "" {
		accountField = fmt.Sprintf(`"account_id":%q,`, account)
	}
	for i := range out {
		mailLogID := 1_000_000 + i
		body := fmt.Sprintf(`{`+accountField+`"event_name":%q,"payload":{"id":%d,"time":%q,"subject":"Fake subject %d","from":"clinic@sender.example.com","to":"patient%d@recipient.example.com","custom_headers":{"X-Bench":"fake"}}}`,
			event.Names[i%len(event.Names)], mailLogID, base.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), mailLogID, mailLogID)
		ev, err := event.Parse([]byte(body))
		if err != nil {
			return nil, fmt.Errorf("fake event %d: %w", i, err)
		}
		out[i] = fakeEvent{id: ev.ID, body: []byte(body), sent: ev.Body()}
	}
	return out, nil
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
	chunks := make(chan []int)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for idx := range chunks {
				now := time.Now()
				for _, i := range idx {
					started[i] = now
				}
				if err := send(ctx, idx); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					continue
				}
				accepted.Add(int64(len(idx)))
			}
		}()
	}
	begin := time.Now()
feed:
	for first := 0; first < n; first += batch {
		if rate > 0 {
			due := begin.Add(time.Duration(float64(first) / rate * float64(time.Second)))
			if err := sleep(ctx, time.Until(due)); err != nil {
				break feed
			}
		}
		idx := make([]int, 0, batch)
		for i := first; i < min(first+batch, n); i++ {
			idx = append(idx, i)
		}
		select {
		case chunks <- idx:
		case <-ctx.Done():
			break feed
		}
	}
	close(chunks)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// background is a submitAll running while a mode polls visibility.
type background struct {
	out      io.Writer
	mode     string // names it in what it prints
	events   int
	begin    time.Time
	sc       *serveClient
	done     chan error // nil once the submission has ended
	accepted time.Time  // when it ended, every event accepted
}

// submitInBackground runs submit while the caller polls; mode, events,
// begin and sc are for the line that says it ended.
func submitInBackground(out io.Writer, mode string, events int, begin time.Time, sc *serveClient, submit func() error) *background {
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
		fmt.Fprintf(b.out, "   %s: all %d accepted in %.1fs (%d refused with 503 and retried)\n", b.mode, b.events, b.accepted.Sub(b.begin).Seconds(), b.sc.refused.Load())
	case <-time.After(2 * time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// serveClient posts events to `starter serve` as a producer should: a 503 is
// retried after its Retry-After, a lost connection a few times.
type serveClient struct {
	url     string
	token   string
	http    *http.Client
	refused atomic.Int64 // 503s
	lost    atomic.Int64 // requests retried after a transport error
}

func newServeClient(url, token string, concurrency int) *serveClient {
	return &serveClient{url: url, token: token, http: &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency, IdleConnTimeout: time.Minute},
	}}
}

// maxTransportRetries bounds retries after transport errors (not 503s,
// which serve answers deliberately and are retried until the phase's timeout).
const maxTransportRetries = 5

// send posts events[idx] (one event, or a batch) and checks the 202 names
// the delivery each should have started on endpointID.
func (s *serveClient) send(ctx context.Context, events []fakeEvent, idx []int, wantIDs func(fakeEvent) string) error {
	body := events[idx[0]].body
	if len(idx) > 1 {
		var b bytes.Buffer
		b.WriteString(`{"events":[`)
		for k, i := range idx {
			if k > 0 {
				b.WriteByte(',')
			}
			b.Write(events[i].body)
		}
		b.WriteString(`]}`)
		body = b.Bytes()
	}
	for attempt := 1; ; attempt++ {
		code, header, answer, err := s.post(ctx, body)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			if attempt > maxTransportRetries {
				return fmt.Errorf("POST /v1/events: %w (after %d tries)", err, attempt)
			}
			s.lost.Add(1)
			if err := sleep(ctx, time.Second); err != nil {
				return err
			}
		case code == http.StatusAccepted:
			return checkAccepted(answer, events, idx, wantIDs)
		case code == http.StatusServiceUnavailable:
			s.refused.Add(1)
			wait, err := strconv.Atoi(header.Get("Retry-After"))
			if err != nil || wait < 1 {
				wait = 1
			}
			if err := sleep(ctx, time.Duration(min(wait, 30))*time.Second); err != nil {
				return err
			}
		default:
			return fmt.Errorf("POST /v1/events: status %d: %s", code, truncate(answer, 300))
		}
	}
}

func (s *serveClient) post(ctx context.Context, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, resp.Header, answer, err
}

// checkAccepted checks a 202 lists, for each event, exactly the delivery wantIDs says.
func checkAccepted(answer []byte, events []fakeEvent, idx []int, wantIDs func(fakeEvent) string) error {
	type deliveries struct {
		Deliveries []struct {
			WorkflowID string `json:"workflow_id"`
		} `json:"deliveries"`
	}
	var got []deliveries
	if len(idx) == 1 {
		var one deliveries
		if err := json.Unmarshal(answer, &one); err != nil {
			return fmt.Errorf("202 body %s: %w", truncate(answer, 300), err)
		}
		got = []deliveries{one}
	} else {
		var batch struct{ Events []deliveries }
		if err := json.Unmarshal(answer, &batch); err != nil {
			return fmt.Errorf("202 body %s: %w", truncate(answer, 300), err)
		}
		got = batch.Events
	}
	if len(got) != len(idx) {
		return fmt.Errorf("202 answers %d events, want %d", len(got), len(idx))
	}
	for k, i := range idx {
		want := wantIDs(events[i])
		if len(got[k].Deliveries) != 1 || got[k].Deliveries[0].WorkflowID != want {
			return fmt.Errorf("202 for event %d lists %+v, want the one delivery %s: is the endpoint subscribed and enabled?", i, got[k].Deliveries, want)
		}
	}
	return nil
}

// startLean starts a lean baseline workflow directly, as a Go producer
// would; the SDK already retries transient errors, and this retries
// overload a few times more.
func startLean(ctx context.Context, c client.Client, taskQueue, workflowID string, ev fakeEvent) error {
	for attempt := 1; ; attempt++ {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflowID, TaskQueue: taskQueue}, leanWorkflowName, leanInput{Body: ev.sent})
		var exhausted *serviceerror.ResourceExhausted
		var unavailable *serviceerror.Unavailable
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case (errors.As(err, &exhausted) || errors.As(err, &unavailable)) && attempt <= maxTransportRetries:
			if err := sleep(ctx, time.Second); err != nil {
				return err
			}
		default:
			return fmt.Errorf("start %s: %w", workflowID, err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
