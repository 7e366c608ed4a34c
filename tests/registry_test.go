package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/webhookverify"
	"github.com/hookrelay/hookrelay/workflows"
)

// The endpoint registry end to end: endpoints registered through `starter
// serve`'s API (or `starter endpoint`), stored in SQLite or PostgreSQL, read
// by workers as OS processes, and real receivers on loopback.

// registryDSN is a fresh database of the store's kind for t.
func registryDSN(t *testing.T, store string) string {
	t.Helper()
	if store == "postgres" {
		return testenv.PostgresT(t)
	}
	return "sqlite:" + filepath.Join(t.TempDir(), "endpoints.db")
}

// apiEndpoint is an endpoint as the API answers it.
type apiEndpoint struct {
	ID        string   `json:"id"`
	AccountID string   `json:"account_id"`
	URL       string   `json:"url"`
	Events    []string `json:"events"`
	Enabled   bool     `json:"enabled"`
	Secret    string   `json:"secret"`
}

// endpointsOf is the API path of an account's endpoints.
func endpointsOf(account string) string { return "/v1/accounts/" + account + "/endpoints" }

// createEndpoint registers an endpoint through the API.
func (s *ingestServer) createEndpoint(account string, fields map[string]any) (apiEndpoint, error) {
	body, _ := json.Marshal(fields)
	r, err := s.do(http.MethodPost, endpointsOf(account), strings.NewReader(string(body)), nil)
	if err != nil {
		return apiEndpoint{}, err
	}
	if r.code != http.StatusCreated {
		return apiEndpoint{}, fmt.Errorf("create endpoint of %s: %d %s", account, r.code, r.body)
	}
	var e apiEndpoint
	return e, json.Unmarshal(r.body, &e)
}

// accountEvent is a fake event of account with payload.id id.
func accountEvent(account, name string, id int) string {
	return fmt.Sprintf(`{"account_id":%q,"event_name":%q,"payload":{"id":%d,"time":"2026-04-18T20:27:25.379Z","subject":"Fake subject %d","to":"patient%d@recipient.example.com"}}`,
		account, name, id, id, id)
}

// payloadID reads payload.id from a delivered body.
func payloadID(body []byte) int {
	var b struct {
		Payload struct {
			ID int `json:"id"`
		} `json:"payload"`
	}
	json.Unmarshal(body, &b)
	return b.Payload.ID
}

// hit is one POST a multiReceiver got.
type hit struct {
	path       string // /<account>/<n>: which endpoint it came in on
	deliveryID string
	payloadID  int
	verifyErr  error
	at         time.Time // when it arrived
}

// multiReceiver is many customer endpoints on one loopback server, told
// apart by URL path, each verifying with its own endpoint's secret.
type multiReceiver struct {
	url       string
	mu        sync.Mutex
	verifiers map[string]*webhookverify.Verifier // by path
	hits      []hit
}

func newMultiReceiver(t *testing.T) *multiReceiver {
	t.Helper()
	rc := &multiReceiver{verifiers: map[string]*webhookverify.Verifier{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc.url = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		v := rc.verifiers[r.URL.Path]
		rc.mu.Unlock()
		h := hit{path: r.URL.Path, deliveryID: r.Header.Get(webhookverify.HeaderID), payloadID: payloadID(body), at: time.Now()}
		if v == nil {
			h.verifyErr = fmt.Errorf("no endpoint at %s", r.URL.Path)
		} else {
			h.verifyErr = v.Verify(r.Header, body)
		}
		rc.mu.Lock()
		rc.hits = append(rc.hits, h)
		rc.mu.Unlock()
		if h.verifyErr != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"received":true}`)) // the delivery log keeps it as the response excerpt
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return rc
}

func (rc *multiReceiver) register(path, secret string) error {
	v, err := webhookverify.New(secret)
	if err != nil {
		return err
	}
	rc.mu.Lock()
	rc.verifiers[path] = v
	rc.mu.Unlock()
	return nil
}

func (rc *multiReceiver) all() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.hits)
}

// Isolation: 1,000 accounts with random endpoints and subscriptions, 5,000
// events of random accounts: every POST lands on an endpoint of the event's
// own account, signed with that endpoint's secret; zero crossings. Routing
// is checked in the API's answers too, against a model of who subscribes.
func TestRegistryIsolation(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) { isolation(t, registryDSN(t, store)) })
	}
}

func isolation(t *testing.T, dsn string) {
	const accounts, events, batch = 1000, 5000, 20
	rng := rand.New(rand.NewPCG(11, 12))
	rc := newMultiReceiver(t)
	h := hookrelay(t)
	// A batch's starts may take longer than the default 10s on a busy machine: a 503 would only send it again.
	srv := startServeWith(t, h, "--https-only=false", "--endpoints-db", dsn, "--worker", "--allow-cidr", "127.0.0.0/8", "--request-timeout", "60s")
	// A worker process too: the registry shared by processes.
	testenv.StartT(t, h.Worker("worker", "--endpoints-db", dsn, "--allow-cidr", "127.0.0.0/8"))

	// The model: each account's endpoints, their paths and subscriptions.
	type model struct {
		account, path string
		events        []string
		enabled       bool
	}
	subscriptions := [][]string{{"*"}, {event.Delivered}, {event.Opened}, {event.Delivered, event.PermanentFailure}, {event.TemporaryFailure}}
	var specs []model
	for a := range accounts {
		for n := range 1 + rng.IntN(3) {
			account := fmt.Sprintf("acct-%04d", a)
			specs = append(specs, model{account: account, path: fmt.Sprintf("/%s/%d", account, n),
				events: subscriptions[rng.IntN(len(subscriptions))], enabled: rng.IntN(10) > 0})
		}
	}
	start := time.Now()
	byID := map[string]model{}
	var mu sync.Mutex
	errs := inParallel(len(specs), 16, func(i int) error {
		s := specs[i]
		e, err := srv.createEndpoint(s.account, map[string]any{"url": rc.url + s.path, "events": s.events, "enabled": s.enabled, "timeout": "5s"})
		if err != nil {
			return err
		}
		if err := rc.register(s.path, e.Secret); err != nil {
			return err
		}
		mu.Lock()
		byID[e.ID] = s
		mu.Unlock()
		return nil
	})
	if len(errs) > 0 {
		t.Fatalf("%d creates failed, first: %v", len(errs), errs[0])
	}
	created := time.Since(start)

	// Events, in batches, each of a random account.
	type sent struct{ account, name string }
	evs := make([]sent, events)
	bodies := make([]string, events/batch)
	for b := range bodies {
		var items []string
		for i := b * batch; i < (b+1)*batch; i++ {
			evs[i] = sent{fmt.Sprintf("acct-%04d", rng.IntN(accounts)), event.Names[rng.IntN(len(event.Names))]}
			items = append(items, accountEvent(evs[i].account, evs[i].name, 1_000_000+i))
		}
		bodies[b] = `{"events":[` + strings.Join(items, ",") + `]}`
	}
	want := map[string]bool{} // delivery ids
	start = time.Now()
	var refused atomic.Int64
	errs = inParallel(len(bodies), 16, func(b int) error {
		r, n, err := postRetrying(srv, bodies[b], 5*time.Minute)
		refused.Add(int64(n))
		if err != nil || r.code != http.StatusAccepted {
			return fmt.Errorf("batch %d: %v %d %s", b, err, r.code, r.body)
		}
		var answer struct {
			Events []struct {
				Deliveries []apiDelivery `json:"deliveries"`
			} `json:"events"`
		}
		if err := json.Unmarshal(r.body, &answer); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for k, a := range answer.Events {
			ev := evs[b*batch+k]
			var got, expect []string
			for _, d := range a.Deliveries {
				got = append(got, d.EndpointID)
				want[d.DeliveryID] = true
			}
			for id, m := range byID {
				if m.account == ev.account && m.enabled && (slices.Contains(m.events, "*") || slices.Contains(m.events, ev.name)) {
					expect = append(expect, id)
				}
			}
			slices.Sort(got)
			slices.Sort(expect)
			if !slices.Equal(got, expect) {
				return fmt.Errorf("event %d of %s (%s) routed to %v, want %v", b*batch+k, ev.account, ev.name, got, expect)
			}
		}
		return nil
	})
	if len(errs) > 0 {
		t.Fatalf("%d batches failed, first: %v", len(errs), errs[0])
	}
	accepted := time.Since(start)
	testenv.Eventually(t, 10*time.Minute, fmt.Sprintf("%d deliveries", len(want)), func() bool {
		seen := map[string]bool{}
		for _, h := range rc.all() {
			if h.verifyErr == nil {
				seen[h.deliveryID] = true
			}
		}
		return len(seen) >= len(want)
	})
	all := time.Since(start)

	crossings := 0
	for _, h := range rc.all() {
		ev := evs[h.payloadID-1_000_000]
		epID, _, _ := workflows.ParseDeliveryID(h.deliveryID)
		m := byID[epID]
		switch {
		case h.verifyErr != nil:
			t.Errorf("a POST to %s did not verify with that endpoint's secret: %v", h.path, h.verifyErr)
		case !strings.HasPrefix(h.path, "/"+ev.account+"/") || m.path != h.path:
			crossings++
			t.Errorf("event %d of %s landed on %s (delivery %s)", h.payloadID, ev.account, h.path, h.deliveryID)
		case !want[h.deliveryID]:
			t.Errorf("a delivery the API did not answer: %s", h.deliveryID)
		}
	}
	t.Logf("%d endpoints over %d accounts created in %s; %d events (%d deliveries) accepted in %s (%d requests refused with 503 and sent again), all delivered %s after the first POST; %d POSTs, %d crossings",
		len(byID), accounts, created.Round(time.Millisecond), events, len(want), accepted.Round(time.Millisecond), refused.Load(), all.Round(time.Millisecond), len(rc.all()), crossings)
}

// rotationReceiver is one endpoint verified two ways: with only the secret
// it had before a rotation, and with only the new one.
type rotationReceiver struct {
	url       string
	mu        sync.Mutex
	old, new  *webhookverify.Verifier
	byPayload map[int]rotationHit
}

type rotationHit struct {
	at             time.Time
	oldOK, newOK   bool
	signatureCount int
}

// Rotation: during the overlap a receiver holding only the old secret and
// one holding only the new both verify; after it, only the new. Overlap 0
// drops the old at once.
func TestRegistryRotation(t *testing.T) {
	const ttl = time.Second
	h := hookrelay(t)
	srv := startServeWith(t, h, "--https-only=false", "--endpoints-db", registryDSN(t, "sqlite"), "--worker", "--allow-cidr", "127.0.0.0/8",
		"--endpoints-cache-ttl", ttl.String())
	rc := &rotationReceiver{byPayload: map[int]rotationHit{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc.url = "http://" + ln.Addr().String() + "/hooks"
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		old, nw := rc.old, rc.new
		rc.mu.Unlock()
		got := rotationHit{at: time.Now(), oldOK: old != nil && old.Verify(r.Header, body) == nil, newOK: nw != nil && nw.Verify(r.Header, body) == nil,
			signatureCount: len(webhookverify.ParseSignatures(r.Header.Get(webhookverify.HeaderSignature)))}
		rc.mu.Lock()
		rc.byPayload[payloadID(body)] = got
		rc.mu.Unlock()
	}), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	ep, err := srv.createEndpoint("acct-rot", map[string]any{"url": rc.url, "events": []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	rotate := func(overlap string) (secret string, expires *time.Time) {
		t.Helper()
		r, err := srv.do(http.MethodPost, endpointsOf("acct-rot")+"/"+ep.ID+"/rotate-secret?overlap="+overlap, nil, nil)
		var rot struct {
			Secret            string     `json:"secret"`
			PreviousExpiresAt *time.Time `json:"previous_expires_at"`
		}
		if err != nil || r.code != http.StatusOK || json.Unmarshal(r.body, &rot) != nil {
			t.Fatalf("rotate: %v %d %s", err, r.code, r.body)
		}
		return rot.Secret, rot.PreviousExpiresAt
	}
	verifier := func(secret string) *webhookverify.Verifier {
		v, err := webhookverify.New(secret)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	next := 500
	deliver := func() rotationHit {
		t.Helper()
		next++
		id := next
		if r, err := srv.post(accountEvent("acct-rot", event.Delivered, id)); err != nil || r.code != http.StatusAccepted {
			t.Fatalf("POST: %v %d %s", err, r.code, r.body)
		}
		var got rotationHit
		testenv.Eventually(t, time.Minute, fmt.Sprintf("event %d delivered", id), func() bool {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			var ok bool
			got, ok = rc.byPayload[id]
			return ok
		})
		return got
	}

	second, expires := rotate("6s")
	if expires == nil {
		t.Fatal("rotation with an overlap answered no previous_expires_at")
	}
	rc.mu.Lock()
	rc.old, rc.new = verifier(ep.Secret), verifier(second)
	rc.mu.Unlock()
	during := deliver()
	if !during.at.Before(*expires) {
		t.Fatalf("the first delivery after the rotation came after the overlap (%s); the machine is too slow for this test", during.at.Sub(*expires))
	}
	if !during.oldOK || !during.newOK || during.signatureCount != 2 {
		t.Fatalf("during the overlap: old verifies %t, new verifies %t, %d signatures; want both, 2", during.oldOK, during.newOK, during.signatureCount)
	}
	// Once the overlap and the cache's bound have passed, only the new verifies.
	testenv.Eventually(t, time.Minute, "the overlap to pass", func() bool { return time.Now().After(expires.Add(ttl)) })
	after := deliver()
	if after.oldOK || !after.newOK || after.signatureCount != 1 {
		t.Fatalf("after the overlap: old verifies %t, new verifies %t, %d signatures; want only the new", after.oldOK, after.newOK, after.signatureCount)
	}

	// overlap=0: the replaced secret stops signing at once.
	third, expires := rotate("0")
	if expires != nil {
		t.Fatalf("overlap=0 answered previous_expires_at %s", expires)
	}
	rc.mu.Lock()
	rc.old, rc.new = verifier(second), verifier(third)
	rc.mu.Unlock()
	if dropped := deliver(); dropped.oldOK || !dropped.newOK {
		t.Fatalf("after a rotation with overlap 0: old verifies %t, new verifies %t", dropped.oldOK, dropped.newOK)
	}
}

// waitState waits for a delivery to close and returns its final state.
func waitState(t *testing.T, id string) workflows.DeliveryState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := (&deliveries.Client{Temporal: temporal, DataConverter: dataConverter}).Wait(ctx, id)
	if err != nil {
		t.Fatalf("delivery %s: %v", id, err)
	}
	return st
}

// A deleted endpoint ends an open delivery at its next attempt with
// outcome endpoint_deleted, not retried.
func TestRegistryDeleteEndsOpenDelivery(t *testing.T) {
	rc := newReceiver(t, always(http.StatusServiceUnavailable))
	srv := startServeWith(t, hookrelay(t), "--https-only=false", "--endpoints-db", registryDSN(t, "sqlite"), "--worker", "--allow-cidr", "127.0.0.0/8")
	// The receiver verifies with testSecret; this endpoint signs with its own, so it answers 401: a failure either way.
	ep, err := srv.createEndpoint("acct-del", map[string]any{"url": rc.URL + "/down", "events": []string{"*"},
		"retry_schedule": slices.Repeat([]string{"500ms"}, 30)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := srv.post(accountEvent("acct-del", event.Opened, 901))
	a, aerr := accepted(r)
	if err != nil || aerr != nil || len(a.Deliveries) != 1 {
		t.Fatalf("POST: %v %v %+v", err, aerr, a)
	}
	id := a.Deliveries[0].DeliveryID
	testenv.Eventually(t, time.Minute, "two failed attempts", func() bool { return len(rc.Requests()) >= 2 })
	if r, err := srv.do(http.MethodDelete, endpointsOf("acct-del")+"/"+ep.ID, nil, nil); err != nil || r.code != http.StatusNoContent {
		t.Fatalf("DELETE: %v %d %s", err, r.code, r.body)
	}
	st := waitState(t, id)
	last := st.Attempts[len(st.Attempts)-1]
	if st.Status != workflows.StatusFailed || last.Outcome != workflows.OutcomeEndpointDeleted || len(st.Attempts) > len(rc.Requests())+1 {
		t.Fatalf("after the delete: %s after %d attempts (last %s), receiver got %d", st.Status, len(st.Attempts), last.Outcome, len(rc.Requests()))
	}
	if r, _ := srv.do(http.MethodGet, endpointsOf("acct-del")+"/"+ep.ID, nil, nil); r.code != http.StatusNotFound {
		t.Fatalf("GET a deleted endpoint: %d", r.code)
	}
}

// An update reaches the next attempt within the cache's bound, in a worker
// that did not make the write (serve's own cache forgets at once): no
// attempt starts on the old URL later than the bound after the update.
func TestRegistryUpdateReachesNextAttempt(t *testing.T) {
	const ttl = 4 * time.Second
	dsn := registryDSN(t, "sqlite")
	h := hookrelay(t)
	srv := startServeWith(t, h, "--https-only=false", "--endpoints-db", dsn, "--allow-cidr", "127.0.0.0/8")
	testenv.StartT(t, h.Worker("worker", "--endpoints-db", dsn, "--allow-cidr", "127.0.0.0/8", "--endpoints-cache-ttl", ttl.String()))

	oldRC := newMultiReceiver(t)
	newRC := newMultiReceiver(t)
	ep, err := srv.createEndpoint("acct-upd", map[string]any{"url": oldRC.url + "/old", "events": []string{"*"},
		"retry_schedule": slices.Repeat([]string{"500ms"}, 30)})
	if err != nil {
		t.Fatal(err)
	}
	newRC.register("/new", ep.Secret) // oldRC knows no endpoint: it answers 401, a failed attempt
	r, err := srv.post(accountEvent("acct-upd", event.Delivered, 902))
	a, aerr := accepted(r)
	if err != nil || aerr != nil || len(a.Deliveries) != 1 {
		t.Fatalf("POST: %v %v %+v", err, aerr, a)
	}
	testenv.Eventually(t, time.Minute, "attempts on the old URL", func() bool { return len(oldRC.all()) >= 2 })
	r, err = srv.do(http.MethodPatch, endpointsOf("acct-upd")+"/"+ep.ID, strings.NewReader(`{"url":"`+newRC.url+`/new"}`), nil)
	updated := time.Now()
	if err != nil || r.code != http.StatusOK {
		t.Fatalf("PATCH: %v %d %s", err, r.code, r.body)
	}
	st := waitState(t, a.Deliveries[0].DeliveryID)
	if st.Status != workflows.StatusDelivered || len(newRC.all()) != 1 {
		t.Fatalf("after the update: %s, new URL got %d", st.Status, len(newRC.all()))
	}
	var lastOld time.Time
	for _, at := range st.Attempts {
		if at.Outcome != workflows.OutcomeDelivered && at.StartedAt.After(lastOld) {
			lastOld = at.StartedAt
		}
	}
	// The bound, plus the attempt's own time to start after its timer fired.
	if late := lastOld.Sub(updated); late > ttl+time.Second {
		t.Fatalf("an attempt started on the old URL %s after the update; the cache's bound is %s", late, ttl)
	}
	t.Logf("%d attempts on the old URL, the last %s after the update (bound %s); then delivered to the new one",
		len(st.Attempts)-1, lastOld.Sub(updated).Round(time.Millisecond), ttl)

}

// Bad input to every field of the API: 422 naming it, and nothing written.
// With only an endpoints file, writes answer 409.
func TestRegistryAPIRefusesBadInput(t *testing.T) {
	// Loopback is admitted, as the receivers are there; the guard refuses other private ranges.
	srv := startServeWith(t, hookrelay(t), "--https-only=false", "--endpoints-db", registryDSN(t, "sqlite"), "--allow-cidr", "127.0.0.0/8",
		"--max-in-flight-limit", "5", "--min-rate-limit", "1", "--max-rate-limit", "50")
	for _, c := range []struct{ body, field string }{
		{`{"events":["*"]}`, "url"},
		{`{"url":"ftp://127.0.0.1/","events":["*"]}`, "url"},
		{`{"url":"http://10.0.0.1/","events":["*"]}`, "url"}, // the guard, at registration
		{`{"url":"http://169.254.169.254/latest","events":["*"]}`, "url"},
		{`{"url":"http://127.0.0.1:9009/"}`, "events"},
		{`{"url":"http://127.0.0.1:9009/","events":["api_mail_log_exploded"]}`, "events"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"description":"` + strings.Repeat("d", 501) + `"}`, "description"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"timeout":"soon"}`, "timeout"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"retry_schedule":["1s","later"]}`, "retry_schedule[1]"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"enabled":"yes"}`, "enabled"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"account_id":"acct-other"}`, "account_id"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"circuit":{"open_after":0}}`, "circuit.open_after"},
		// The bounds on endpoint values, each just outside.
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"timeout":"31s"}`, "timeout"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"circuit":{"probe_every":["4s"]}}`, "circuit.probe_every[0]"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"circuit":{"drain_per_second":1e-9}}`, "circuit.drain_per_second"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"circuit":{"open_after":1001}}`, "circuit.open_after"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"circuit":{"park_limit":"721h"}}`, "circuit.park_limit"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"retry_schedule":["` + strings.Repeat(`1s","`, 30) + `1s"]}`, "retry_schedule"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"retry_schedule":["168h","168h","168h","168h","49h"]}`, "retry_schedule"},
	} {
		r, err := srv.do(http.MethodPost, endpointsOf("acct-bad"), strings.NewReader(c.body), nil)
		var e apiError
		if err != nil || r.code != http.StatusUnprocessableEntity || json.Unmarshal(r.body, &e) != nil || e.Field != c.field {
			t.Errorf("POST %.60s: %v %d %s, want 422 on %s", c.body, err, r.code, r.body, c.field)
		}
	}
	// max_in_flight and rate_limit past the bounds serve's flags narrowed:
	// 422 naming the field and the narrowed bound.
	for _, c := range []struct{ body, field, bound string }{
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"max_in_flight":6}`, "max_in_flight", "1 to 5"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"rate_limit":51}`, "rate_limit", "1 to 50"},
		{`{"url":"http://127.0.0.1:9009/","events":["*"],"rate_limit":0.5}`, "rate_limit", "1 to 50"},
	} {
		r, err := srv.do(http.MethodPost, endpointsOf("acct-bad"), strings.NewReader(c.body), nil)
		var e apiError
		if err != nil || r.code != http.StatusUnprocessableEntity || json.Unmarshal(r.body, &e) != nil || e.Field != c.field || !strings.Contains(e.Error, c.bound) {
			t.Errorf("POST %.80s: %v %d %s, want 422 on %s naming %s", c.body, err, r.code, r.body, c.field, c.bound)
		}
	}
	if r, _ := srv.do(http.MethodGet, endpointsOf("acct bad"), nil, nil); r.code != http.StatusUnprocessableEntity {
		t.Errorf("a malformed account in the path: %d %s", r.code, r.body)
	}
	r, err := srv.do(http.MethodGet, endpointsOf("acct-bad"), nil, nil)
	if err != nil || r.code != http.StatusOK || !strings.Contains(string(r.body), `"endpoints":[]`) {
		t.Fatalf("after refused requests: %v %d %s", err, r.code, r.body)
	}

	file := startServe(t, hookrelay(t), endpointsFile(t, "acme", "https://hooks.example.com/", "    account_id: acct-file\n"))
	r, err = file.do(http.MethodPost, endpointsOf("acct-file"), strings.NewReader(`{"url":"http://127.0.0.1:9009/","events":["*"]}`), nil)
	if err != nil || r.code != http.StatusConflict || !strings.Contains(string(r.body), "endpoints file") {
		t.Fatalf("a write with only a file: %v %d %s", err, r.code, r.body)
	}
	if r, _ := file.do(http.MethodGet, endpointsOf("acct-file"), nil, nil); r.code != http.StatusOK || !strings.Contains(string(r.body), `"id":"acme"`) || strings.Contains(string(r.body), "whsec_") {
		t.Fatalf("reads with only a file: %d %s", r.code, r.body)
	}
}

// `starter endpoint` manages the same registry the API does; mistakes exit
// 2, a missing endpoint 1, and secrets are printed only by create and
// rotate-secret.
func TestStarterEndpointCommands(t *testing.T) {
	// starter send starts deliveries with hookrelay's search attributes, which
	// a worker registers at start; no worker runs here, so register them as
	// one would, and the test passes alone as in the whole suite.
	if err := temporalclient.EnsureSearchAttributes(context.Background(), temporal, namespace, workflows.SearchAttributes); err != nil {
		t.Fatal(err)
	}
	dsn := registryDSN(t, "sqlite")
	run := func(args ...string) (string, string, int) {
		return starter(t, "", append([]string{"endpoint"}, append(args, "--endpoints-db", dsn)...)...)
	}
	out, errOut, code := run("create", "--account", "acct-cli", "--url", "http://127.0.0.1:9000/hook?token=fake", "--events", "api_mail_log_delivered,api_mail_log_opened",
		"--allow-cidr", "127.0.0.0/8", "--output", "json")
	var created apiEndpoint
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || !strings.HasPrefix(created.Secret, "whsec_") || len(created.Events) != 2 {
		t.Fatalf("create: exit %d %s %s", code, out, errOut)
	}
	srv := startServeWith(t, hookrelay(t), "--endpoints-db", dsn)
	if r, _ := srv.do(http.MethodGet, endpointsOf("acct-cli")+"/"+created.ID, nil, nil); r.code != http.StatusOK || strings.Contains(string(r.body), "whsec_") {
		t.Fatalf("the API does not see the CLI's endpoint: %d %s", r.code, r.body)
	}
	// starter send routes through the registry too, exactly on the account.
	for _, c := range []struct {
		account string
		want    bool
	}{{"acct-cli", true}, {"acct-else", false}} {
		out, errOut, code := starter(t, accountEvent(c.account, event.Opened, 903), "send", "--endpoints-db", dsn, "--output", "json")
		if code != 0 || strings.Contains(out, created.ID+":") != c.want {
			t.Fatalf("send for %s: exit %d\n%s%s", c.account, code, out, errOut)
		}
	}
	for _, args := range [][]string{{"list", "--account", "acct-cli"}, {"show", "--account", "acct-cli", created.ID},
		{"update", "--account", "acct-cli", created.ID, "--enabled=false"}} {
		out, errOut, code := run(args...)
		if code != 0 || !strings.Contains(out, created.ID) || strings.Contains(out, "whsec_") {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	// --trace-context sets the endpoint's trace_context; off unless given.
	if strings.Contains(out, `"trace_context":true`) {
		t.Fatalf("create without --trace-context: %s", out)
	}
	for _, on := range []string{"true", "false"} {
		out, errOut, code := run("update", "--account", "acct-cli", created.ID, "--trace-context="+on, "--output", "json")
		if code != 0 || !strings.Contains(out, `"trace_context":`+on) {
			t.Fatalf("update --trace-context=%s: exit %d\n%s%s", on, code, out, errOut)
		}
	}
	if out, _, code := run("rotate-secret", "--account", "acct-cli", created.ID, "--overlap", "1h"); code != 0 || !strings.Contains(out, "whsec_") {
		t.Fatalf("rotate-secret: exit %d %s", code, out)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"show", "--account", "acct-other", created.ID}, 1},
		{[]string{"create", "--account", "acct-cli", "--url", "ftp://hooks.example.com/", "--events", "*"}, 2},
		{[]string{"create", "--account", "acct-cli", "--url", "http://127.0.0.1:9009/", "--events", "*"}, 2},
		{[]string{"create", "--url", "https://hooks.example.com/", "--events", "*"}, 2},
		{[]string{"show", "--account", "acct-cli"}, 2},
		{[]string{"frobnicate", "--account", "acct-cli"}, 2},
	} {
		if _, errOut, code := run(c.args...); code != c.code {
			t.Errorf("%v: exit %d, want %d: %s", c.args, code, c.code, errOut)
		}
	}
	// The endpoint quota: acct-cli holds one endpoint, its quota here.
	if _, errOut, code := run("create", "--account", "acct-cli", "--url", "http://127.0.0.1:9000/hook", "--events", "*",
		"--allow-cidr", "127.0.0.0/8", "--max-endpoints-per-account", "1"); code != 2 ||
		!strings.Contains(errOut, "--account") || !strings.Contains(errOut, "max-endpoints-per-account: 1") {
		t.Errorf("create past the quota: exit %d %s, want 2 naming --account and max-endpoints-per-account", code, errOut)
	}
	// max_in_flight and rate_limit under bounds narrowed by flag: exit 2
	// naming the flag and the narrowed bound, and nothing changed.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "--account", "acct-throttle", "--url", "http://127.0.0.1:9000/hook", "--events", "*", "--allow-cidr", "127.0.0.0/8",
			"--max-in-flight", "6", "--max-in-flight-limit", "5"}, "--max-in-flight: 6 must be 1 to 5"},
		{[]string{"update", "--account", "acct-cli", created.ID, "--rate-limit", "60", "--max-rate-limit", "50"}, "--rate-limit: 60 must be 0 (no limit) or 0.1 to 50"},
		{[]string{"update", "--account", "acct-cli", created.ID, "--rate-limit", "0.5", "--min-rate-limit", "1"}, "--rate-limit: 0.5 must be 0 (no limit) or 1 to 1000"},
		{[]string{"update", "--account", "acct-cli", created.ID, "--max-in-flight", "5", "--max-in-flight-limit", "101"}, "--max-in-flight-limit: 101 must be 1 to 100"},
	} {
		if _, errOut, code := run(c.args...); code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d %s, want 2 naming %q", c.args, code, errOut, c.want)
		}
	}
	if out, errOut, code := run("update", "--account", "acct-cli", created.ID, "--max-in-flight", "5", "--rate-limit", "50", "--max-in-flight-limit", "5",
		"--max-rate-limit", "50", "--output", "json"); code != 0 || !strings.Contains(out, `"max_in_flight":5,"rate_limit":50`) {
		t.Errorf("update within the narrowed bounds: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, code := run("list", "--account", "acct-throttle"); code != 0 || strings.Contains(out, "ep_") {
		t.Errorf("a refused create registered an endpoint: exit %d %s", code, out)
	}
	if out, _, code := run("delete", "--account", "acct-cli", created.ID); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: exit %d %s", code, out)
	}
	if _, _, code := run("show", "--account", "acct-cli", created.ID); code != 1 {
		t.Fatalf("show after delete: exit %d", code)
	}
}

// Without --https-only=false, serve's API registers https endpoints only: a
// plain http URL is 422 on url, an https one on the same host is taken.
func TestRegistryAPIRefusesPlainHTTP(t *testing.T) {
	srv := startServeWith(t, hookrelay(t), "--endpoints-db", registryDSN(t, "sqlite"), "--allow-cidr", "127.0.0.0/8")
	r, err := srv.do(http.MethodPost, endpointsOf("acct-tls"), strings.NewReader(`{"url":"http://127.0.0.1:9009/","events":["*"]}`), nil)
	var e apiError
	if err != nil || r.code != http.StatusUnprocessableEntity || json.Unmarshal(r.body, &e) != nil || e.Field != "url" || !strings.Contains(e.Error, "--https-only") {
		t.Fatalf("plain http: %v %d %s, want 422 on url naming --https-only", err, r.code, r.body)
	}
	if r, err := srv.do(http.MethodPost, endpointsOf("acct-tls"), strings.NewReader(`{"url":"https://127.0.0.1:9009/","events":["*"]}`), nil); err != nil || r.code != http.StatusCreated {
		t.Fatalf("https: %v %d %s", err, r.code, r.body)
	}
}
