package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// apiRecovery is GET .../recoveries/{recover_id}'s answer.
type apiRecovery struct {
	RecoverID         string              `json:"recover_id"`
	EndpointID        string              `json:"endpoint_id"`
	Since             time.Time           `json:"since"`
	Until             time.Time           `json:"until"`
	State             string              `json:"state"`
	Matched           int                 `json:"matched"`
	Resent            int                 `json:"resent"`
	Skipped           int                 `json:"skipped"`
	SkippedDeliveries []workflows.Skipped `json:"skipped_deliveries"`
}

// recoverFixture is a worker and serve on one delivery log (a fresh
// PostgreSQL database), an endpoints file with an endpoint of account
// acct-a that is down until healed (one retry 200ms after a failure, so a
// delivery fails after two POSTs; a circuit that never opens) and one of
// account acct-b, and the receivers behind them.
type recoverFixture struct {
	srv        *ingestServer
	log        *deliverylog.Log
	dc         *deliveries.Client
	rc         *testenv.Receiver
	down       atomic.Bool // the receiver answers 503 while set
	endpoints  string
	logDSN     string
	worker     *testenv.Process
	drainPerS  float64
	outageFrom time.Time
	// idBase sets this fixture's events apart from every other's on the
	// suite's one server: delivery ids derive from the events.
	idBase int
}

// recoverFixtures numbers the fixtures, so their events never collide.
var recoverFixtures atomic.Int64

func newRecoverFixture(t *testing.T, drainPerSecond float64) *recoverFixture {
	t.Helper()
	f := &recoverFixture{drainPerS: drainPerSecond, idBase: 5_000_000 + int(recoverFixtures.Add(1))*10_000}
	answer := func(string, int, http.ResponseWriter) int {
		if f.down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	rc, err := testenv.NewReceiver(testenv.ReceiverOptions{Secret: testSecret, Answer: answer, KeepRequests: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Close)
	f.rc = rc
	other, err := testenv.NewReceiver(testenv.ReceiverOptions{Secret: testSecret, Answer: testenv.Always(200)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	f.endpoints = writeFile(t, "endpoints.yaml", "")
	if err := testenv.WriteEndpoints(f.endpoints,
		testenv.Endpoint{ID: "clinic-a", URL: rc.URL + "/hook", Secret: testSecret, RetrySchedule: []time.Duration{200 * time.Millisecond},
			Extra: fmt.Sprintf("    account_id: acct-a\n    circuit:\n      open_after: 1000\n      drain_per_second: %g\n", drainPerSecond)},
		testenv.Endpoint{ID: "clinic-b", URL: other.URL + "/hook", Secret: testSecret, Extra: "    account_id: acct-b\n"},
	); err != nil {
		t.Fatal(err)
	}
	f.logDSN = testenv.PostgresT(t)
	h := hookrelay(t)
	f.worker = startWorker(t, f.endpoints, "--log-db", f.logDSN)
	f.srv = startServe(t, h, f.endpoints, "--log-db", f.logDSN)
	c, err := codec.Load(codecKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if f.log, err = deliverylog.Open(context.Background(), f.logDSN, deliverylog.Options{Codec: c}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.log.Close() })
	f.dc = &deliveries.Client{Temporal: temporal, DataConverter: dataConverter}
	return f
}

// send posts n fake events of account to serve and returns the delivery ids.
func (f *recoverFixture) send(t *testing.T, account string, n, firstID int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := f.idBase + firstID + i
		r, err := f.srv.post(testenv.FakeEvent(account, event.Names[i%len(event.Names)], id, testenv.FakeEventTime.Add(time.Duration(id)*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
		a, err := accepted(r)
		if err != nil || len(a.Deliveries) != 1 {
			t.Fatalf("send: %v %+v", err, a)
		}
		ids = append(ids, a.Deliveries[0].DeliveryID)
	}
	return ids
}

// waitAll waits until each delivery closes and checks its final status.
func (f *recoverFixture) waitAll(t *testing.T, ids []string, want workflows.Status) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, id := range ids {
		st, err := f.dc.Wait(ctx, id)
		if err != nil || st.Status != want {
			t.Fatalf("%s: %s, %v; want %s", id, st.Status, err, want)
		}
	}
}

// waitLogged waits until the workers have written each delivery's final
// status to the delivery log, as its attempts ended: recoveries page the log.
func waitLogged(t *testing.T, f *recoverFixture, account string, ids []string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		st, err := f.dc.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, id+" in the delivery log as "+string(st.Status), func() bool {
			d, err := f.log.Get(ctx, account, id)
			return err == nil && d.Status == string(st.Status)
		})
	}
}

// recover POSTs a recovery and returns the answer's code and recover_id.
func (f *recoverFixture) recover(t *testing.T, account, endpointID, body string) (int, string, apiError) {
	t.Helper()
	r, err := f.srv.do(http.MethodPost, "/v1/accounts/"+account+"/endpoints/"+endpointID+"/recover", strings.NewReader(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		RecoverID string `json:"recover_id"`
	}
	var e apiError
	json.Unmarshal(r.body, &out)
	json.Unmarshal(r.body, &e)
	return r.code, out.RecoverID, e
}

// recovery GETs a recovery.
func (f *recoverFixture) recovery(t *testing.T, account, id string) (int, apiRecovery) {
	t.Helper()
	r, err := f.srv.do(http.MethodGet, "/v1/accounts/"+account+"/recoveries/"+id, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out apiRecovery
	json.Unmarshal(r.body, &out)
	return r.code, out
}

// waitRecovery blocks until the recovery's workflow closes.
func waitRecovery(t *testing.T, id string) workflows.RecoverState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var st workflows.RecoverState
	if err := temporal.GetWorkflow(ctx, workflows.RecoverWorkflowID(id), "").Get(ctx, &st); err != nil {
		t.Fatalf("recovery %s: %v", id, err)
	}
	return st
}

// outage is the common start: 5 deliveries of acct-a delivered before the
// outage, 50 that fail during it (two POSTs each), then the receiver heals
// and 5 more are delivered; the log is seeded with all 60.
func (f *recoverFixture) outage(t *testing.T) (before, failed, after []string) {
	t.Helper()
	before = f.send(t, "acct-a", 5, 1000)
	f.waitAll(t, before, workflows.StatusDelivered)
	f.down.Store(true)
	f.outageFrom = time.Now().UTC()
	failed = f.send(t, "acct-a", 50, 2000)
	f.waitAll(t, failed, workflows.StatusFailed)
	f.down.Store(false)
	after = f.send(t, "acct-a", 5, 3000)
	f.waitAll(t, after, workflows.StatusDelivered)
	waitLogged(t, f, "acct-a", append(append(append([]string{}, before...), failed...), after...))
	for _, id := range failed {
		if n := f.rc.Count(id); n != 2 {
			t.Fatalf("%s was POSTed %d times during the outage; want 2 (an attempt and its retry)", id, n)
		}
	}
	return before, failed, after
}

// Recover since the outage's start resends each delivery that failed in it
// exactly once more, and nothing else: not the delivered ones, not a forged
// plaintext start (skipped as unsealed_input, never re-sealed); the same
// request twice is one recovery; another account sees neither the endpoint
// nor the recovery.
func TestRecoverAfterOutage(t *testing.T) {
	f := newRecoverFixture(t, 50)
	_, failed, after := f.outage(t)
	// A delivery started past the codec (plaintext, as a client without
	// keys starts one) fails invalid_input; the recovery must not re-seal it.
	forged := "clinic-a:forged-1"
	attackerCLI(t, "workflow", "start", "--type", workflows.DeliveryWorkflowName, "--task-queue", taskQueue(t), "--workflow-id", forged,
		"--input", `{"endpoint_id":"clinic-a","account_id":"acct-a","event_id":"forged-1","event_name":"api_mail_log_delivered","mail_log_id":9101,`+
			`"body":{"event_name":"api_mail_log_delivered","payload":{"id":9101,"subject":"Forged subject (fake)"}},"timeout":2000000000}`)
	f.waitAll(t, []string{forged}, workflows.StatusFailed)
	waitLogged(t, f, "acct-a", []string{forged})
	forgedRun := latestRun(t, forged)
	since := f.outageFrom.Format(time.RFC3339Nano)
	body := `{"since": "` + since + `"}`
	code, id, e := f.recover(t, "acct-a", "clinic-a", body)
	if code != http.StatusAccepted || !workflows.ValidRecoverID(id) {
		t.Fatalf("recover: %d %q %+v", code, id, e)
	}
	code2, id2, _ := f.recover(t, "acct-a", "clinic-a", body)
	if code2 != http.StatusAccepted || id2 != id {
		t.Errorf("the same request again: %d %q; want 202 and the same recovery %q", code2, id2, id)
	}
	st := waitRecovery(t, id)
	recordHistory(t, workflows.RecoverWorkflowID(id), "HOOKRELAY_RECORD_RECOVER_HISTORY")
	if st.State != workflows.RecoverDone || st.Matched != 51 || st.Resent != 50 || st.Skipped != 1 ||
		len(st.SkippedDeliveries) != 1 || st.SkippedDeliveries[0] != (workflows.Skipped{DeliveryID: forged, Reason: workflows.SkipUnsealedInput}) {
		t.Errorf("recovery ended %+v; want done, 51 matched, 50 resent, the forged one skipped as unsealed_input", st)
	}
	if run := latestRun(t, forged); run != forgedRun || f.rc.Count(forged) != 0 {
		t.Errorf("the forged start got run %s (was %s) and %d POSTs; want none", run, forgedRun, f.rc.Count(forged))
	}
	f.waitAll(t, failed, workflows.StatusDelivered)
	for _, id := range failed {
		if n := f.rc.Count(id); n != 3 {
			t.Errorf("%s was POSTed %d times in all; want 3 (two in the outage, one resent)", id, n)
		}
	}
	for _, id := range after {
		if n := f.rc.Count(id); n != 1 {
			t.Errorf("delivered %s was POSTed %d times; want 1 (untouched)", id, n)
		}
	}
	code, got := f.recovery(t, "acct-a", id)
	if code != 200 || got.State != "done" || got.Matched != 51 || got.Resent != 50 || got.Skipped != 1 || got.EndpointID != "clinic-a" {
		t.Errorf("GET recovery: %d %+v", code, got)
	}
	// The same request after it ended is still that recovery: nothing resent again.
	if code3, id3, _ := f.recover(t, "acct-a", "clinic-a", body); code3 != http.StatusAccepted || id3 != id {
		t.Errorf("the same request after the end: %d %q; want 202 and %q", code3, id3, id)
	}
	if again := waitRecovery(t, id); again.Resent != 50 {
		t.Errorf("after the request again: %+v", again)
	}

	// The CLI: the same window is the same recovery; --wait prints its end.
	out, errOut, exit := starter(t, "", "endpoint", "recover", "clinic-a", "--account", "acct-a", "--since", since,
		"--endpoints", f.endpoints, "--wait", "--output", "json")
	var cli workflows.RecoverState
	if err := json.Unmarshal([]byte(out), &cli); exit != 0 || err != nil || cli.RecoverID != id || cli.Resent != 50 || cli.State != "done" {
		t.Errorf("starter endpoint recover --wait: exit %d %s %s; want recovery %s, done, 50 resent", exit, out, errOut, id)
	}
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--account", "acct-b", "--since", since}, 1, "not found"},
		{[]string{"--account", "acct-a", "--since", "yesterday"}, 2, "--since"},
		{[]string{"--account", "acct-a", "--since", since, "--until", since}, 2, "--until"},
	} {
		_, errOut, exit := starter(t, "", append([]string{"endpoint", "recover", "clinic-a", "--endpoints", f.endpoints}, c.args...)...)
		if exit != c.code || !strings.Contains(errOut, c.says) {
			t.Errorf("starter endpoint recover %v: exit %d %q; want %d saying %q", c.args, exit, errOut, c.code, c.says)
		}
	}

	// Tenancy: acct-b's path to acct-a's endpoint and recovery is 404.
	if code, _, e := f.recover(t, "acct-b", "clinic-a", body); code != 404 || e.Field != "endpoint_id" {
		t.Errorf("acct-b recovers acct-a's endpoint: %d %+v; want 404 endpoint_id", code, e)
	}
	if code, _ := f.recovery(t, "acct-b", id); code != 404 {
		t.Errorf("acct-b reads acct-a's recovery: %d; want 404", code)
	}
	// Bad windows: 422 naming the field, and no recovery.
	for _, c := range []struct{ body, field string }{
		{`{}`, "since"},
		{`{"since": "last tuesday"}`, "since"},
		{`{"since": "` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`, "since"},
		{`{"since": "` + since + `", "until": "` + f.outageFrom.Add(-time.Hour).Format(time.RFC3339) + `"}`, "until"},
	} {
		if code, id, e := f.recover(t, "acct-a", "clinic-a", c.body); code != 422 || e.Field != c.field || id != "" {
			t.Errorf("recover %s: %d %q %+v; want 422 naming %s", c.body, code, id, e, c.field)
		}
	}
}

// A test event reaches the endpoint once, through the normal path: signed,
// fake, marked "test": true, and shows in Temporal as a delivery of the
// account; another account's endpoint is 404.
func TestEndpointTestEvent(t *testing.T) {
	f := newRecoverFixture(t, 10)
	r, err := f.srv.do(http.MethodPost, "/v1/accounts/acct-a/endpoints/clinic-a/test", strings.NewReader(`{"event_name": "api_mail_log_opened"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var d apiDelivery
	if err := json.Unmarshal(r.body, &d); r.code != http.StatusAccepted || err != nil || !strings.HasPrefix(d.EventID, "test_") {
		t.Fatalf("test: %d %s", r.code, r.body)
	}
	f.waitAll(t, []string{d.DeliveryID}, workflows.StatusDelivered)
	var got []testenv.Request
	for _, req := range f.rc.Requests() {
		if req.ID == d.DeliveryID {
			got = append(got, req)
		}
	}
	if len(got) != 1 || got[0].VerifyErr != nil {
		t.Fatalf("the receiver got %d test POSTs (%+v); want one, verified", len(got), got)
	}
	var body struct {
		EventName string `json:"event_name"`
		Payload   struct {
			Test bool   `json:"test"`
			To   string `json:"to"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(got[0].Body, &body); err != nil || body.EventName != "api_mail_log_opened" || !body.Payload.Test ||
		!strings.HasSuffix(body.Payload.To, "@example.com") {
		t.Errorf("test body %s: want api_mail_log_opened, \"test\": true, an example.com address", got[0].Body)
	}
	out, errOut, exit := starter(t, "", "endpoint", "test", "clinic-a", "--account", "acct-a", "--event", "api_mail_log_delivered",
		"--endpoints", f.endpoints, "--output", "json")
	var cli apiDelivery
	if err := json.Unmarshal([]byte(out), &cli); exit != 0 || err != nil || !strings.HasPrefix(cli.EventID, "test_") || cli.DeliveryID == d.DeliveryID {
		t.Errorf("starter endpoint test: exit %d %s %s; want a new test delivery", exit, out, errOut)
	} else {
		f.waitAll(t, []string{cli.DeliveryID}, workflows.StatusDelivered)
	}
	r, err = f.srv.do(http.MethodPost, "/v1/accounts/acct-b/endpoints/clinic-a/test", strings.NewReader(`{"event_name": "api_mail_log_opened"}`), nil)
	if err != nil || r.code != 404 {
		t.Errorf("acct-b tests acct-a's endpoint: %d %s; want 404", r.code, r.body)
	}
	r, err = f.srv.do(http.MethodPost, "/v1/accounts/acct-a/endpoints/clinic-a/test", strings.NewReader(`{"event_name": "api_mail_log_bounced"}`), nil)
	if err != nil || r.code != 422 {
		t.Errorf("an unknown event name: %d %s; want 422", r.code, r.body)
	}
}

// recordHistory writes workflowID's history, its payloads decrypted, to
// the file the environment variable env names, if it is set: a recording
// for the replay test made by an integration test, whose worker seals
// payloads (scripts/record-histories.sh sets the variables). The histories
// hold fake data only.
func recordHistory(t *testing.T, workflowID, env string) {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		return
	}
	ctx := context.Background()
	c, err := codec.Load(codecKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	h := &historypb.History{}
	it := rawTemporal.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, e)
	}
	if err := proxy.VisitPayloads(ctx, h, proxy.VisitPayloadsOptions{SkipSearchAttributes: true,
		Visitor: func(_ *proxy.VisitPayloadsContext, p []*commonpb.Payload) ([]*commonpb.Payload, error) {
			return c.Decode(p)
		}}); err != nil {
		t.Fatal(err)
	}
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A worker SIGKILLed halfway through a recovery loses nothing and resends
// nothing twice: a new worker resumes the page from its last heartbeat,
// and the delivery resent after it is found resent. Each failed delivery's
// latest run is a resend of the run that failed (so it was resent once),
// and delivered; the deliveries delivered before are untouched.
func TestRecoverSurvivesWorkerKill(t *testing.T) {
	f := newRecoverFixture(t, 4) // 50 resends take about 12 s
	_, failed, after := f.outage(t)
	ctx := context.Background()
	failedRun := map[string]string{}
	for _, id := range failed {
		desc, err := temporal.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		failedRun[id] = desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	}
	code, id, e := f.recover(t, "acct-a", "clinic-a", `{"since": "`+f.outageFrom.Format(time.RFC3339Nano)+`"}`)
	if code != http.StatusAccepted {
		t.Fatalf("recover: %d %+v", code, e)
	}
	resentSoFar := func() error {
		n := 0
		for _, id := range failed {
			n += f.rc.Count(id) - 2
		}
		if n < 15 {
			return fmt.Errorf("%d resent", n)
		}
		return nil
	}
	if err := testenv.Wait(ctx, 2*time.Minute, "15 of 50 resent", resentSoFar); err != nil {
		t.Fatal(err)
	}
	if err := f.worker.Kill(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	killedAt := 0
	for _, id := range failed {
		killedAt += f.rc.Count(id) - 2
	}
	startWorker(t, f.endpoints, "--log-db", f.logDSN)
	st := waitRecovery(t, id)
	if st.State != workflows.RecoverDone || st.Matched != 50 || st.Resent != 50 || st.Skipped != 0 {
		t.Errorf("recovery ended %+v; want done, 50 matched, 50 resent", st)
	}
	if n := resendAttempts(t, id); n < 2 {
		t.Errorf("the resend page ran in %d attempt(s); want a second, after the kill", n)
	}
	t.Logf("killed the worker after %d of 50 resends", killedAt)
	f.waitAll(t, failed, workflows.StatusDelivered)
	extra := 0
	for _, id := range failed {
		tl, err := f.dc.Timeline(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		if tl.Input.ResendOf != failedRun[id] {
			t.Errorf("%s: the latest run resends %q; want the failed run %q (resent once)", id, tl.Input.ResendOf, failedRun[id])
		}
		n := f.rc.Count(id)
		if n < 3 {
			t.Errorf("%s was POSTed %d times in all; want its resend too", id, n)
		}
		extra += n - 3
	}
	for _, id := range after {
		if n := f.rc.Count(id); n != 1 {
			t.Errorf("delivered %s was POSTed %d times; want 1 (untouched)", id, n)
		}
	}
	// An attempt in flight on the killed worker may POST again when it is
	// retried (deliveries are at least once); the recovery adds none.
	t.Logf("POSTs beyond one per resend, from attempts in flight on the killed worker: %d", extra)
}

// resendAttempts is the attempt the recovery's last resend page completed on.
func resendAttempts(t *testing.T, recoverID string) int {
	t.Helper()
	it := temporal.GetWorkflowHistory(context.Background(), workflows.RecoverWorkflowID(recoverID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	attempt := 0
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := e.GetActivityTaskStartedEventAttributes(); a != nil {
			attempt = int(a.GetAttempt())
		}
	}
	return attempt
}
