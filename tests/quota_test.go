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
