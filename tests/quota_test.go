package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/temporalclient"
	"github.com/hookrelay/hookrelay/workflows"
)

// serve's rate per account on a real server: past an account's burst a
// request is 429 with Retry-After and a JSON error, and starts no
// workflow, a batch's other account's event included; that other account
// is then accepted on its own.
func TestServeAccountRate(t *testing.T) {
	if err := temporalclient.EnsureSearchAttributes(context.Background(), temporal, namespace, workflows.SearchAttributes); err != nil {
		t.Fatal(err)
	}
	eps := writeEndpoints(t,
		testenv.Endpoint{ID: "rate-a", URL: "https://hooks.example.com/a", Extra: "    account_id: acct-rate-a\n"},
		testenv.Endpoint{ID: "rate-b", URL: "https://hooks.example.com/b", Extra: "    account_id: acct-rate-b\n"})
	srv := startServe(t, hookrelay(t), eps, "--account-rate", "0.5", "--account-burst", "2")
	ev := func(account string, id int) string {
		return strings.Replace(accountEvent(account, event.Delivered, id), "{", fmt.Sprintf(`{"event_id":"rate-%d",`, id), 1)
	}
	if r, err := srv.post(`{"events":[` + ev("acct-rate-a", 1) + "," + ev("acct-rate-a", 2) + `]}`); err != nil || r.code != http.StatusAccepted {
		t.Fatalf("acct-rate-a's burst: %v %d %s", err, r.code, r.body)
	}
	r, err := srv.post(`{"events":[` + ev("acct-rate-b", 3) + "," + ev("acct-rate-a", 4) + `]}`)
	var e apiError
	if err != nil || r.code != http.StatusTooManyRequests || !slices.Contains([]string{"1", "2"}, r.header.Get("Retry-After")) || json.Unmarshal(r.body, &e) != nil ||
		e.Field != "account_id" || !strings.Contains(e.Error, "acct-rate-a") {
		t.Fatalf("past acct-rate-a's burst: %v %d Retry-After %q %s, want 429, Retry-After 2 (1 on a slow machine), naming the account", err, r.code, r.header.Get("Retry-After"), r.body)
	}
	for _, id := range []string{"rate-b:rate-3", "rate-a:rate-4"} {
		_, err := temporal.DescribeWorkflowExecution(context.Background(), id, "")
		var nf *serviceerror.NotFound
		if !errors.As(err, &nf) {
			t.Errorf("workflow %s of the refused batch: %v, want not found", id, err)
		}
	}
	if _, err := temporal.DescribeWorkflowExecution(context.Background(), "rate-a:rate-1", ""); err != nil {
		t.Fatalf("an accepted delivery: %v", err)
	}
	if r, err := srv.post(ev("acct-rate-b", 3)); err != nil || r.code != http.StatusAccepted {
		t.Fatalf("acct-rate-b alone: %v %d %s", err, r.code, r.body)
	}
}

// A delivery carries its account as fairness key: on its start (so its
// workflow tasks) and on each attempt scheduled as an activity, as the
// history records them.
func TestDeliveryFairnessKey(t *testing.T) {
	rc := newReceiver(t, failFirst(1, http.StatusServiceUnavailable))
	file := writeEndpoints(t, testenv.Endpoint{ID: "fair", URL: rc.URL, RetrySchedule: []time.Duration{100 * time.Millisecond},
		Extra: "    account_id: acct-fair\n"})
	startWorker(t, file)
	dc := localPublisher(t, temporal, file)
	ev, err := event.Parse([]byte(accountEvent("acct-fair", event.Delivered, 4242)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	started, err := dc.Publish(ctx, ev)
	if err != nil || len(started) != 1 {
		t.Fatalf("publish: %v %v", started, err)
	}
	state, err := dc.Wait(ctx, started[0].DeliveryID)
	if err != nil || state.Status != workflows.StatusDelivered || len(state.Attempts) != 2 {
		t.Fatalf("delivery: %+v %v, want delivered on the second attempt", state, err)
	}
	var startKey string
	var scheduled []string
	for _, e := range rawHistory(t, started[0].DeliveryID) {
		if a := e.GetWorkflowExecutionStartedEventAttributes(); a != nil {
			startKey = a.GetPriority().GetFairnessKey()
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == workflows.AttemptActivityName {
			scheduled = append(scheduled, a.GetPriority().GetFairnessKey())
		}
	}
	if startKey != "acct-fair" || len(scheduled) != 1 || scheduled[0] != "acct-fair" {
		t.Fatalf("fairness keys: start %q, scheduled attempts %q; want acct-fair on the start and on the one scheduled attempt", startKey, scheduled)
	}
}
