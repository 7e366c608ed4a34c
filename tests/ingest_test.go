package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"

	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

// ingestServer is a `starter serve` OS process and how to reach it.
type ingestServer struct {
	*testenv.Process
	url    string
	token  string
	client *testenv.EventsClient // holds every exchange to the OpenAPI document
}

// startServe runs `starter serve` for t through h, on a free loopback port,
// with a token file.
func startServe(t *testing.T, h testenv.Hookrelay, endpoints string, extraArgs ...string) *ingestServer {
	t.Helper()
	return startServeWith(t, h, append([]string{"--endpoints", endpoints}, extraArgs...)...)
}

// startServeWith is startServe with every argument the caller's (the
// endpoints too: a file, or a registry).
func startServeWith(t *testing.T, h testenv.Hookrelay, args ...string) *ingestServer {
	t.Helper()
	token := "fake-test-token-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	p := testenv.StartT(t, h.Serve("serve", writeFile(t, "api-token", token+"\n"), args...))
	addr, err := p.LoggedAddr(testenv.ServeListening)
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Log())
	}
	url := "http://" + addr
	return &ingestServer{Process: p, url: url, token: token,
		client: &testenv.EventsClient{URL: url, Token: token, HTTP: checkedClient(t, httpClient)}}
}

// httpClient keeps connections for up to 64 concurrent clients.
var httpClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

type response struct {
	code   int
	header http.Header
	body   []byte
}

// do sends a request with the token and Content-Type: application/json
// (testenv.EventsClient.Do); header entries replace those, and an empty
// value removes the header.
func (s *ingestServer) do(method, path string, body io.Reader, header map[string]string) (response, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = io.ReadAll(body); err != nil {
			return response{}, err
		}
	}
	r, err := s.client.Do(context.Background(), method, path, b, header)
	return response{code: r.Code, header: r.Header, body: r.Body}, err
}

func (s *ingestServer) post(body string) (response, error) {
	return s.do(http.MethodPost, "/v1/events", strings.NewReader(body), nil)
}

// The API's answers, as a client reads them.
type (
	apiDelivery struct {
		DeliveryID string `json:"delivery_id"`
		WorkflowID string `json:"workflow_id"` // deprecated: delivery_id's former name, still printed
		EndpointID string `json:"endpoint_id"`
		EventID    string `json:"event_id"`
		Duplicate  bool   `json:"duplicate"`
	}
	apiAccepted struct {
		Deliveries []apiDelivery `json:"deliveries"`
	}
	apiError struct {
		Error  string `json:"error"`
		Field  string `json:"field"`
		Events []struct {
			Index int    `json:"index"`
			Error string `json:"error"`
			Field string `json:"field"`
		} `json:"events"`
	}
)

// accepted decodes a 202 for one event.
func accepted(r response) (apiAccepted, error) {
	var a apiAccepted
	if r.code != http.StatusAccepted {
		return a, fmt.Errorf("status %d: %s", r.code, r.body)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return a, fmt.Errorf("202 body %s: %w", r.body, err)
	}
	for _, d := range a.Deliveries {
		if d.DeliveryID == "" || d.WorkflowID != d.DeliveryID {
			return a, fmt.Errorf("202 body %s: delivery_id %q and its deprecated name workflow_id %q differ", r.body, d.DeliveryID, d.WorkflowID)
		}
	}
	return a, nil
}

// eventIDsIn returns the ids of the valid events in a request body, one
// event or a batch: the workflow IDs a refused request must not have started.
func eventIDsIn(body string) []string {
	if ev, err := event.Parse([]byte(body)); err == nil {
		return []string{ev.ID}
	}
	var batch struct{ Events []json.RawMessage }
	json.Unmarshal([]byte(body), &batch)
	var ids []string
	for _, raw := range batch.Events {
		if ev, err := event.Parse(raw); err == nil {
			ids = append(ids, ev.ID)
		}
	}
	return ids
}

// Every refusal of the API on the real binary: its status, a JSON error
// naming the field, and no workflow started by any of them.
func TestServeRefusesBadRequests(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	endpoints := endpointsFile(t, "acme", rc.URL, "")
	startWorker(t, endpoints) // registers the search attributes the final, valid event needs
	srv := startServe(t, hookrelay(t), endpoints)

	ev := func(i int) string { return sampleEvent(event.Delivered, 3000+i) }
	big := strings.Replace(ev(1), "Fake subject", strings.Repeat("x", event.MaxBodyBytes), 1)
	noTime := strings.Replace(ev(2), `"time":"2026-04-18T20:27:25.379Z",`, "", 1)
	batch := func(items ...string) string { return `{"events":[` + strings.Join(items, ",") + `]}` }
	var many []string
	for i := range 101 {
		many = append(many, ev(100+i))
	}
	tests := []struct {
		name, method, path, body string
		header                   map[string]string
		chunked                  bool
		status                   int
		field                    string
	}{
		{"GET events", "GET", "/v1/events", "", nil, false, 405, ""},
		{"PUT events", "PUT", "/v1/events", ev(3), nil, false, 405, ""},
		{"no token", "POST", "/v1/events", ev(4), map[string]string{"Authorization": ""}, false, 401, "Authorization"},
		{"wrong token", "POST", "/v1/events", ev(5), map[string]string{"Authorization": "Bearer fake-wrong-token-000000"}, false, 401, "Authorization"},
		{"token as basic auth", "POST", "/v1/events", ev(6), map[string]string{"Authorization": "Basic " + srv.token}, false, 401, "Authorization"},
		{"no content type", "POST", "/v1/events", ev(7), map[string]string{"Content-Type": ""}, false, 415, "Content-Type"},
		{"form content type", "POST", "/v1/events", ev(8), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, false, 415, "Content-Type"},
		{"gzip encoding", "POST", "/v1/events", ev(9), map[string]string{"Content-Encoding": "gzip"}, false, 415, "Content-Encoding"},
		{"over 256 KiB", "POST", "/v1/events", big, nil, false, 413, "body"},
		{"over 256 KiB, chunked", "POST", "/v1/events", big, nil, true, 413, "body"},
		{"empty body", "POST", "/v1/events", "", nil, false, 400, "body"},
		{"malformed JSON", "POST", "/v1/events", ev(10)[:60], nil, false, 400, "body"},
		{"two JSON values", "POST", "/v1/events", ev(11) + ev(12), nil, false, 400, "body"},
		{"JSON array", "POST", "/v1/events", "[" + ev(13) + "]", nil, false, 422, "body"},
		{"unknown event_name", "POST", "/v1/events", strings.Replace(ev(14), event.Delivered, "api_mail_log_clicked", 1), nil, false, 422, "event_name"},
		{"payload.id not an integer", "POST", "/v1/events", strings.Replace(ev(15), `"id":3015`, `"id":"3015"`, 1), nil, false, 422, "payload.id"},
		{"payload.time missing", "POST", "/v1/events", noTime, nil, false, 422, "payload.time"},
		{"bad event_id", "POST", "/v1/events", strings.Replace(ev(16), `{"event_name"`, `{"event_id":"no spaces allowed","event_name"`, 1), nil, false, 422, "event_id"},
		{"unknown top-level field", "POST", "/v1/events", strings.Replace(ev(17), `{"event_name"`, `{"priority":1,"event_name"`, 1), nil, false, 422, "priority"},
		{"empty batch", "POST", "/v1/events", batch(), nil, false, 422, "events"},
		{"batch of 101", "POST", "/v1/events", batch(many...), nil, false, 422, "events"},
		{"batch with one bad event", "POST", "/v1/events", batch(ev(18), noTime, ev(19)), nil, false, 422, "events[1].payload.time"},
		{"status of a malformed id", "GET", "/v1/deliveries/not-a-delivery-id", "", nil, false, 400, "delivery_id"},
		{"status of an unknown delivery", "GET", "/v1/deliveries/acme:evt_does_not_exist", "", nil, false, 404, "delivery_id"},
		{"POST a delivery", "POST", "/v1/deliveries/acme:evt_does_not_exist", "", nil, false, 405, ""},
	}
	var wouldBe []string // workflow IDs the valid events among those would have
	for _, tt := range tests {
		for _, id := range eventIDsIn(tt.body) {
			wouldBe = append(wouldBe, workflows.WorkflowID("acme", id))
		}
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // no length known: sent chunked
			}
			r, err := srv.do(tt.method, tt.path, body, tt.header)
			if err != nil {
				t.Fatal(err)
			}
			if r.code != tt.status {
				t.Fatalf("status %d, want %d: %s", r.code, tt.status, r.body)
			}
			var e apiError
			if err := json.Unmarshal(r.body, &e); err != nil || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("body %q (%s) is not a JSON error: %v", r.body, r.header.Get("Content-Type"), err)
			}
			if e.Error == "" || e.Field != tt.field {
				t.Fatalf("error %+v, want field %q", e, tt.field)
			}
		})
	}
	if len(tests) < 15 || len(wouldBe) < 10 {
		t.Fatalf("%d cases, %d would-be workflows: the table lost its teeth", len(tests), len(wouldBe))
	}

	// None of them started a workflow: each ID their valid events would have
	// is unknown to Temporal, and once one valid event is visible it is the
	// only workflow on the queue.
	for _, id := range wouldBe {
		_, err := temporal.DescribeWorkflowExecution(context.Background(), id, "")
		var nf *serviceerror.NotFound
		if !errors.As(err, &nf) {
			t.Errorf("workflow %s: %v, want not found", id, err)
		}
	}
	r, err := srv.post(ev(999))
	a, err2 := accepted(r)
	if err != nil || err2 != nil || len(a.Deliveries) != 1 || a.Deliveries[0].Duplicate {
		t.Fatalf("valid event: %+v %v %v", a, err, err2)
	}
	testenv.Eventually(t, 30*time.Second, "the valid event to be visible", func() bool {
		n, err := testenv.CountWorkflows(context.Background(), temporal, fmt.Sprintf("WorkflowId = %q", a.Deliveries[0].WorkflowID))
		return err == nil && n == 1
	})
	countOnQueue(t, 1)
}

// postAll posts one event per body from clients concurrent clients. A 503 is
// retried after its Retry-After, as a producer should; any other answer but
// 202 fails. It returns each body's 202 and how many 503s it took.
func postAll(t *testing.T, srv *ingestServer, bodies []string, clients int) (answers []apiAccepted, refused int) {
	t.Helper()
	answers = make([]apiAccepted, len(bodies))
	var mu sync.Mutex
	errs := inParallel(len(bodies), clients, func(i int) error {
		a, n, err := postUntilAccepted(srv, bodies[i], 2*time.Minute)
		mu.Lock()
		answers[i], refused = a, refused+n
		mu.Unlock()
		if err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		return nil
	})
	if len(errs) > 0 {
		t.Fatalf("%d events not accepted, first: %v", len(errs), errs[0])
	}
	return answers, refused
}

// postUntilAccepted posts body, retrying 503s after their Retry-After until
// it is accepted or timeout passes.
func postUntilAccepted(srv *ingestServer, body string, timeout time.Duration) (a apiAccepted, refused int, err error) {
	r, refused, err := postRetrying(srv, body, timeout)
	if err != nil {
		return a, refused, err
	}
	a, err = accepted(r)
	return a, refused, err
}

// postRetrying POSTs body to /v1/events, sending it again after each 503's
// Retry-After, until another answer or timeout; it returns that answer and
// how many times it was refused.
func postRetrying(srv *ingestServer, body string, timeout time.Duration) (response, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := &testenv.EventsClient{URL: srv.url, Token: srv.token, HTTP: httpClient}
	r, refused, err := c.PostEvents(ctx, []byte(body))
	return response{code: r.Code, header: r.Header, body: r.Body}, refused, err
}

// checkAnswers checks every 202 lists one delivery per subscribed endpoint,
// with the workflow ID "<endpoint>:<event id>", and returns the workflow IDs.
func checkAnswers(t *testing.T, bodies []string, answers []apiAccepted, subscribed []string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for i, a := range answers {
		eventID := eventIDsIn(bodies[i])[0]
		if len(a.Deliveries) != len(subscribed) {
			t.Fatalf("event %d: %d deliveries, want %d: %+v", i, len(a.Deliveries), len(subscribed), a)
		}
		for k, d := range a.Deliveries {
			if d.EndpointID != subscribed[k] || d.EventID != eventID || d.WorkflowID != workflows.WorkflowID(subscribed[k], eventID) {
				t.Fatalf("event %d: delivery %+v, want endpoint %s, event %s", i, d, subscribed[k], eventID)
			}
			ids[d.WorkflowID] = true
		}
	}
	return ids
}

// waitDelivered waits until every one of ids was accepted by rc (a 200 to a
// verified request) and Temporal shows exactly len(ids) workflows on the
// test's queue, all delivered: nothing missing, nothing duplicated.
func waitDelivered(t *testing.T, c client.Client, rc *testenv.Receiver, ids map[string]bool, timeout time.Duration) {
	t.Helper()
	want := int64(len(ids))
	delivered := fmt.Sprintf("TaskQueue = %q AND %s", taskQueue(t), statusQuery(t, workflows.StatusDelivered))
	testenv.Eventually(t, timeout, fmt.Sprintf("%d deliveries", want), func() bool {
		n, err := testenv.CountWorkflows(context.Background(), c, delivered)
		return err == nil && n == want
	})
	if n, err := testenv.CountWorkflows(context.Background(), c, fmt.Sprintf("TaskQueue = %q AND WorkflowType = %q", taskQueue(t), workflows.DeliveryWorkflowName)); err != nil || n != want {
		t.Fatalf("workflows on the queue: %d (%v), want exactly %d", n, err, want)
	}
	got := map[string]bool{}
	for _, r := range rc.Requests() {
		if r.VerifyErr != nil {
			t.Fatalf("%s: signature: %v", r.ID, r.VerifyErr)
		}
		if r.Status == http.StatusOK {
			got[r.ID] = true
		}
	}
	for id := range ids {
		if !got[id] {
			t.Fatalf("the receiver never accepted %s", id)
		}
	}
	if len(got) != len(ids) {
		t.Fatalf("the receiver accepted %d webhook-ids, want %d", len(got), len(ids))
	}
}

// 1,000 events from 50 concurrent clients become exactly 1,000 deliveries per
// subscribed endpoint, all delivered; posting them again starts nothing.
func TestServeThousandEventsFromFiftyClients(t *testing.T) {
	const events, clients = 1000, 50
	rc := newReceiver(t, always(http.StatusOK))
	endpoints := writeEndpoints(t,
		testenv.Endpoint{ID: "crm", URL: rc.URL + "/crm"},
		testenv.Endpoint{ID: "billing", URL: rc.URL + "/billing", Events: []string{event.Delivered, event.Opened}},
		testenv.Endpoint{ID: "bounces", URL: rc.URL + "/bounces", Events: []string{event.PermanentFailure}}, // subscribes to an event not sent here
		testenv.Endpoint{ID: "archive", URL: rc.URL + "/archive", Extra: "    enabled: false\n"})
	subscribed := []string{"crm", "billing"}
	// Two workers, as production runs several, each with the default pollers.
	startWorker(t, endpoints)
	startWorker(t, endpoints)
	srv := startServe(t, hookrelay(t), endpoints)

	bodies := make([]string, events)
	for i := range bodies {
		name := event.Delivered
		if i%2 == 1 {
			name = event.Opened
		}
		bodies[i] = sampleEvent(name, 10_000+i)
	}
	start := time.Now()
	answers, refused := postAll(t, srv, bodies, clients)
	posted := time.Since(start)
	ids := checkAnswers(t, bodies, answers, subscribed)
	if len(ids) != events*len(subscribed) {
		t.Fatalf("%d distinct deliveries, want %d", len(ids), events*len(subscribed))
	}
	waitDelivered(t, temporal, rc, ids, 5*time.Minute)
	all := time.Since(start)
	t.Logf("%d events (%d deliveries) accepted in %s (%.0f events/s, %d refused with 503 and retried); all delivered after %s (%.0f deliveries/s)",
		events, len(ids), posted.Round(time.Millisecond), events/posted.Seconds(), refused, all.Round(time.Millisecond), float64(len(ids))/all.Seconds())

	// The same 1,000 again: the same workflow IDs, every one a duplicate, nothing new.
	receivedBefore := len(rc.Requests())
	again, _ := postAll(t, srv, bodies, clients)
	if againIDs := checkAnswers(t, bodies, again, subscribed); len(againIDs) != len(ids) {
		t.Fatalf("resubmission answered %d deliveries, want %d", len(againIDs), len(ids))
	}
	for i, a := range again {
		for _, d := range a.Deliveries {
			if !d.Duplicate {
				t.Fatalf("event %d resubmitted: %+v not a duplicate", i, d)
			}
		}
	}
	countOnQueue(t, int64(len(ids)))
	if n := len(rc.Requests()); n != receivedBefore {
		t.Fatalf("the receiver got %d more requests after the resubmission", n-receivedBefore)
	}
}

// Stopping Temporal mid-stream: serve answers 503 with Retry-After, never
// anything else; once Temporal is back (same address, same database),
// resubmitting every refused event completes the set, and every event,
// accepted before the stop or after, is delivered by exactly one workflow
// per endpoint.
func TestServeThroughTemporalRestart(t *testing.T) {
	opts := testenv.DevServerOptions{HostPort: testenv.FreeAddrT(t), DBFilename: filepath.Join(t.TempDir(), "temporal.db")}
	ds := startOwnDevServer(t, opts)
	h := on(hookrelay(t), ds.FrontendHostPort())
	rc := newReceiver(t, always(http.StatusOK))
	schedule := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 5 * time.Second, 10 * time.Second, 10 * time.Second, 30 * time.Second}
	endpoints := writeEndpoints(t,
		testenv.Endpoint{ID: "crm", URL: rc.URL + "/crm", Timeout: 5 * time.Second, RetrySchedule: schedule},
		testenv.Endpoint{ID: "billing", URL: rc.URL + "/billing", Timeout: 5 * time.Second, RetrySchedule: schedule})
	subscribed := []string{"crm", "billing"}
	testenv.StartT(t, h.Worker("worker", "--endpoints", endpoints, "--allow-cidr", "127.0.0.0/8"))
	srv := startServe(t, h, endpoints, "--request-timeout", "2s")

	// The stream: a feeder offers a new event every 10ms to 10 clients, which
	// post each once and keep what they got.
	var (
		mu              sync.Mutex
		acceptedBodies  []string
		acceptedAnswers []apiAccepted
		refusedBodies   []string
		unexpected      []string
		wg              sync.WaitGroup
		stream          = make(chan string)
		stopFeeding     = make(chan struct{})
	)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range stream {
				r, err := srv.post(body)
				mu.Lock()
				switch {
				case err != nil:
					unexpected = append(unexpected, err.Error())
				case r.code == http.StatusServiceUnavailable && r.header.Get("Retry-After") != "":
					refusedBodies = append(refusedBodies, body)
				default:
					if a, err := accepted(r); err != nil {
						unexpected = append(unexpected, err.Error())
					} else {
						acceptedBodies, acceptedAnswers = append(acceptedBodies, body), append(acceptedAnswers, a)
					}
				}
				mu.Unlock()
			}
		}()
	}
	go func() {
		defer close(stream)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stopFeeding:
				return
			case <-tick.C:
				stream <- sampleEvent(event.Names[i%len(event.Names)], 50_000+i)
			}
		}
	}()
	counts := func() (accepted, refused int) {
		mu.Lock()
		defer mu.Unlock()
		return len(acceptedBodies), len(refusedBodies)
	}

	testenv.Eventually(t, time.Minute, "50 events accepted", func() bool { a, _ := counts(); return a >= 50 })
	stopStart := time.Now()
	if err := ds.Stop(); err != nil {
		t.Logf("dev server stop: %v", err)
	}
	acceptedAtStop, _ := counts()
	t.Logf("dev server stopped in %s, %d events accepted by then", time.Since(stopStart).Round(time.Millisecond), acceptedAtStop)
	testenv.Eventually(t, time.Minute, "20 events refused", func() bool { _, r := counts(); return r >= 20 })
	close(stopFeeding)
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("%d answers other than 202 or 503 with Retry-After, first: %s", len(unexpected), unexpected[0])
	}
	if r, err := srv.do(http.MethodGet, "/readyz", nil, nil); err != nil || r.code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with Temporal down: %d %v", r.code, err)
	}

	ds = startOwnDevServer(t, opts) // same address, same database
	testenv.Eventually(t, 2*time.Minute, "serve to be ready again", func() bool {
		r, err := srv.do(http.MethodGet, "/readyz", nil, nil)
		return err == nil && r.code == http.StatusOK
	})
	resubmitted, refusedAgain := postAll(t, srv, refusedBodies, 10)
	duplicates := 0
	for _, a := range resubmitted {
		for _, d := range a.Deliveries {
			if d.Duplicate {
				duplicates++ // started before a 503: the stop came mid-request
			}
		}
	}
	bodies := append(append([]string(nil), acceptedBodies...), refusedBodies...)
	ids := checkAnswers(t, bodies, append(append([]apiAccepted(nil), acceptedAnswers...), resubmitted...), subscribed)
	if len(ids) != len(bodies)*len(subscribed) {
		t.Fatalf("%d distinct deliveries for %d events, want %d", len(ids), len(bodies), len(bodies)*len(subscribed))
	}
	t.Logf("%d events: %d accepted in the stream, %d refused and resubmitted (%d deliveries of them had started before the 503; %d 503s during resubmission)",
		len(bodies), len(acceptedBodies), len(refusedBodies), duplicates, refusedAgain)
	waitDelivered(t, ds.Client(), rc, ids, 3*time.Minute)
}

// The Go package tells a Temporal outage (ErrUnavailable: retry later) from
// invalid input (*event.FieldError: fix it), for real, against a dev server
// that is stopped, and one that never ran.
func TestPublishTellsOutageFromInvalidInput(t *testing.T) {
	ds := startOwnDevServer(t, testenv.DevServerOptions{})
	ctx := context.Background()
	if err := temporalclient.EnsureSearchAttributes(ctx, ds.Client(), "default", workflows.SearchAttributes); err != nil {
		t.Fatal(err)
	}
	cfg, err := endpoint.Parse([]byte(fmt.Sprintf("endpoints:\n  - id: acme\n    url: https://hooks.acme.example/mail\n    events: [\"*\"]\n    secret: %s\n", testSecret)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	newClient := func(addr string) *deliveries.Client {
		tc, err := temporalclient.DialLazy(temporalclient.Options{Address: addr, Namespace: "default", TaskQueue: taskQueue(t), CodecKeyFile: codecKeyFile}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(tc.Close)
		return &deliveries.Client{Temporal: tc, Endpoints: cfg, TaskQueue: taskQueue(t)}
	}
	dc := newClient(ds.FrontendHostPort())
	ev := func(i int) event.Event {
		e, err := event.Parse([]byte(sampleEvent(event.Opened, 6000+i)))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	invalid := func(t *testing.T, err error, field string) {
		t.Helper()
		var fe *event.FieldError
		if !errors.As(err, &fe) || fe.Field != field || errors.Is(err, deliveries.ErrUnavailable) {
			t.Fatalf("err = %v, want a *event.FieldError on %s and not ErrUnavailable", err, field)
		}
	}
	unavailable := func(t *testing.T, err error) {
		t.Helper()
		var fe *event.FieldError
		if !errors.Is(err, deliveries.ErrUnavailable) || errors.As(err, &fe) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	}

	started, err := dc.Publish(ctx, ev(1))
	if err != nil || len(started) != 1 || started[0].Duplicate {
		t.Fatalf("Publish with Temporal up = %+v, %v", started, err)
	}
	if err := dc.Ready(ctx); err != nil {
		t.Fatalf("Ready with Temporal up: %v", err)
	}
	_, err = dc.Publish(ctx, event.Event{Name: event.Opened, MailLogID: 1, Payload: []byte(`{"id":1}`)})
	invalid(t, err, "event_id")

	if err := ds.Stop(); err != nil {
		t.Logf("dev server stop: %v", err)
	}
	// Each call gets its own deadline: one already past would make any call
	// "unavailable" without reaching the SDK's handling of the outage.
	within := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 3*time.Second)
		t.Cleanup(cancel)
		return c
	}
	start := time.Now()
	got, err := dc.Publish(within(), ev(2)) // the SDK retries until the deadline
	unavailable(t, err)
	if len(got) != 0 {
		t.Fatalf("Publish with Temporal down returned deliveries %+v", got)
	}
	t.Logf("Publish with Temporal down: %v after %s", err, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	err = dc.Ready(within()) // a health check on a refused connection fails at once
	unavailable(t, err)
	t.Logf("Ready with Temporal down: %v after %s", err, time.Since(start).Round(time.Millisecond))
	_, err = dc.Status(within(), started[0].DeliveryID)
	unavailable(t, err)
	_, err = dc.PublishJSON(within(), []byte(`{"event_name":"api_mail_log_opened"}`))
	invalid(t, err, "payload") // still told apart while Temporal is down

	never := newClient(testenv.FreeAddrT(t)) // a lazy client's first call fails differently
	_, err = never.Publish(within(), ev(3))
	unavailable(t, err)
	t.Logf("Publish to a server never started: %v", err)
	unavailable(t, never.Ready(within()))
}

// SIGTERM: serve stops accepting connections, but a request already in
// flight (its handler waiting for the body) is finished and answered, then
// serve exits 0.
func TestServeFinishesInFlightRequestOnSIGTERM(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	endpoints := endpointsFile(t, "acme", rc.URL, "")
	startWorker(t, endpoints)
	srv := startServe(t, hookrelay(t), endpoints)
	hostPort := strings.TrimPrefix(srv.url, "http://")

	body := sampleEvent(event.Delivered, 4000)
	conn, err := net.Dial("tcp", hostPort)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// With Expect: 100-continue the server answers "100 Continue" when the
	// handler starts reading the body: proof the request is in flight.
	fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
		hostPort, srv.token, len(body))
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	answers := bufio.NewReader(conn)
	if resp, err := http.ReadResponse(answers, nil); err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("want 100 Continue, got %v %v", resp, err)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(30 * time.Second) }()
	testenv.Eventually(t, 10*time.Second, "serve to log that it is stopping", func() bool {
		return strings.Contains(srv.Log(), `"msg":"ingest stopping`)
	})
	testenv.Eventually(t, 10*time.Second, "serve to refuse new connections", func() bool {
		c, err := net.Dial("tcp", hostPort)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-stopped:
		t.Fatalf("serve exited (%v) with a request in flight", err)
	default:
	}

	if _, err := io.WriteString(conn, body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(answers, nil)
	if err != nil {
		t.Fatalf("in-flight request: %v\n%s", err, srv.Log())
	}
	b, _ := io.ReadAll(resp.Body)
	a, err := accepted(response{code: resp.StatusCode, body: b})
	if err != nil || len(a.Deliveries) != 1 {
		t.Fatalf("in-flight request: %+v %v", a, err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("serve: %v\n%s", err, srv.Log())
	}
	if st := result(t, a.Deliveries[0].WorkflowID); st.Status != workflows.StatusDelivered {
		t.Fatalf("the delivery accepted during shutdown: %+v", st)
	}
}

// Cancel and resend over HTTP, against the real dev server.
func TestServeCancelsAndResends(t *testing.T) {
	rc, heal := recoveringReceiver(t, http.StatusServiceUnavailable)
	endpoints := endpointsFile(t, "acme", rc.URL, "    retry_schedule: [1h]\n")
	startWorker(t, endpoints)
	srv := startServe(t, hookrelay(t), endpoints)

	resp, err := srv.post(sampleEvent(event.Delivered, 701))
	if err != nil || resp.code != http.StatusAccepted {
		t.Fatalf("POST /v1/events: %d %s %v", resp.code, resp.body, err)
	}
	a, err := accepted(resp)
	if err != nil {
		t.Fatal(err)
	}
	id := a.Deliveries[0].WorkflowID
	testenv.Eventually(t, 30*time.Second, "the delivery to wait for its retry", func() bool {
		st, err := statusOf(id)
		return err == nil && st.Status == workflows.StatusRetrying
	})

	resp, err = srv.do(http.MethodPost, "/v1/deliveries/"+id+"/cancel", strings.NewReader(`{"reason":"customer paused deliveries"}`), nil)
	var st workflows.DeliveryState
	if err != nil || resp.code != http.StatusOK || json.Unmarshal(resp.body, &st) != nil ||
		st.Status != workflows.StatusCanceled || st.Actions[0].Reason != "customer paused deliveries" {
		t.Fatalf("cancel: %d %s %v", resp.code, resp.body, err)
	}
	resp, _ = srv.do(http.MethodPost, "/v1/deliveries/"+id+"/cancel", nil, nil)
	if resp.code != http.StatusConflict {
		t.Fatalf("second cancel: %d %s, want 409", resp.code, resp.body)
	}

	heal()
	resp, err = srv.do(http.MethodPost, "/v1/deliveries/"+id+"/resend", nil, nil)
	if err != nil || resp.code != http.StatusAccepted {
		t.Fatalf("resend: %d %s %v", resp.code, resp.body, err)
	}
	if final := result(t, id); final.Status != workflows.StatusDelivered || final.Attempts[0].Number != 2 {
		t.Fatalf("after resend: %+v", final)
	}
	if resp, _ := srv.do(http.MethodPost, "/v1/deliveries/acme:evt_nope/resend", nil, nil); resp.code != http.StatusNotFound {
		t.Fatalf("resend of an unknown delivery: %d %s", resp.code, resp.body)
	}
}

// With --worker, serve runs deliveries itself and starts them eagerly: no
// other worker runs here, yet every event is delivered, each workflow task by serve.
func TestServeHostsAWorker(t *testing.T) {
	rc := newReceiver(t, always(http.StatusOK))
	endpoints := endpointsFile(t, "acme", rc.URL, "")
	srv := startServe(t, hookrelay(t), endpoints, "--worker", "--worker-allow-cidr", "127.0.0.0/8")

	var ids []string
	for i := range 5 {
		resp, err := srv.post(sampleEvent(event.Delivered, 720+i))
		a, aerr := accepted(resp)
		if err != nil || aerr != nil {
			t.Fatalf("POST: %d %s %v %v\n%s", resp.code, resp.body, err, aerr, srv.Log())
		}
		ids = append(ids, a.Deliveries[0].WorkflowID)
	}
	pid := fmt.Sprintf("%d@", srv.PID())
	for _, id := range ids {
		if st := result(t, id); st.Status != workflows.StatusDelivered || len(st.Attempts) != 1 {
			t.Fatalf("%s: %+v", id, st)
		}
		events, err := testenv.History(context.Background(), temporal, id, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if started := e.GetWorkflowTaskStartedEventAttributes(); started != nil && !strings.HasPrefix(started.GetIdentity(), pid) {
				t.Fatalf("%s: a workflow task ran on %q, not serve (pid %s)", id, started.GetIdentity(), pid)
			}
		}
	}
	if n := len(rc.Requests()); n != len(ids) {
		t.Fatalf("receiver got %d requests, want %d", n, len(ids))
	}
}
