package deliveries

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/workflows"
)

// The errors the SDK returns when Temporal is down or slow, as observed
// against a stopped dev server (tests/ingest_test.go checks the real ones),
// are ErrUnavailable; errors a retry will not cure are not.
func TestUnavailable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"server down: the SDK retries until the deadline", serviceerror.NewDeadlineExceeded("context deadline exceeded"), true},
		{"never connected: lazy client's first call", fmt.Errorf("failed reaching server: %w", status.Error(codes.Unavailable, "connection error: connection refused")), true},
		{"health check on a closed port", fmt.Errorf("health check error: %w", status.Error(codes.Unavailable, "connection refused")), true},
		{"unavailable", serviceerror.NewUnavailable("frontend shutting down"), true},
		{"overloaded", &serviceerror.ResourceExhausted{Message: "rate limited"}, true},
		{"caller's deadline", context.DeadlineExceeded, true},
		{"gRPC deadline status", status.Error(codes.DeadlineExceeded, "deadline"), true},
		{"invalid argument", serviceerror.NewInvalidArgument("search attribute not registered"), false},
		{"namespace not found", serviceerror.NewNamespaceNotFound("default"), false},
		{"permission denied", serviceerror.NewPermissionDenied("no", ""), false},
		{"caller canceled", context.Canceled, false},
		{"plain error", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := unavailable(tt.err)
			if got := errors.Is(err, ErrUnavailable); got != tt.want {
				t.Fatalf("errors.Is(unavailable(%v), ErrUnavailable) = %v, want %v", tt.err, got, tt.want)
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("unavailable(%v) lost the cause: %v", tt.err, err)
			}
		})
	}
}

// An invalid event is refused before Temporal is called: the client here
// has no Temporal connection at all, so any call would panic.
func TestPublishRefusesInvalidEventBeforeTemporal(t *testing.T) {
	c := &Client{}
	_, err := c.Publish(context.Background(), event.Event{Name: event.Delivered, MailLogID: 1, Payload: []byte(`{"id":1}`)})
	var fe *event.FieldError
	if !errors.As(err, &fe) || fe.Field != "event_id" || errors.Is(err, ErrUnavailable) {
		t.Fatalf("Publish = %v, want a *event.FieldError on event_id", err)
	}
	_, err = c.PublishJSON(context.Background(), []byte(`{"event_name":"api_mail_log_opened"}`))
	if !errors.As(err, &fe) || fe.Field != "payload" {
		t.Fatalf("PublishJSON = %v, want a *event.FieldError on payload", err)
	}
}

// PublishTo refuses, before starting anything, an endpoint of another
// account than the event's: a routing mistake must never start a delivery.
func TestPublishToRefusesAnotherAccountsEndpoint(t *testing.T) {
	ev, err := event.Parse([]byte(`{"account_id":"acct-a","event_name":"api_mail_log_opened","payload":{"id":1,"time":"2026-01-01T00:00:00Z"}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := &Client{} // no Temporal client: reaching it would panic
	for _, account := range []string{"acct-b", ""} {
		started, err := c.PublishTo(context.Background(), ev, []endpoint.Endpoint{{ID: "crm", AccountID: account}})
		if err == nil || len(started) != 0 {
			t.Fatalf("endpoint of account %q: started %v, err %v; want a refusal", account, started, err)
		}
	}
}

func TestFilterQuery(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	q, err := Filter{Account: "acct_42:eu", Endpoint: "ep_7f3a", Status: "failed", Since: time.Hour, Now: now}.Query()
	want := "HookrelayAccount = 'acct_42:eu' AND HookrelayEndpoint = 'ep_7f3a' AND " +
		"(ExecutionStatus = 'Failed' OR ExecutionStatus = 'TimedOut' OR (ExecutionStatus = 'Completed' AND HookrelayStatus = 'failed')) AND StartTime >= '2026-11-29T11:00:00Z'"
	if err != nil || q != want {
		t.Fatalf("Query = %q, %v\nwant  %q", q, err, want)
	}
	if _, err := (Filter{Status: "lost"}).Query(); err == nil || !strings.Contains(err.Error(), "pending, retrying, parked, delivered, failed or canceled") {
		t.Errorf("--status lost: %v, want the statuses named", err)
	}
	for flag, f := range map[string]Filter{
		"--account":    {Account: "x' OR 'a'='a"},
		"--endpoint":   {Endpoint: "Acme"},
		"--event-name": {EventName: "api_mail_log_clicked"},
		"--status":     {Status: "lost"},
		"--since":      {Since: -time.Hour},
	} {
		if _, err := f.Query(); err == nil || !strings.HasPrefix(err.Error(), flag) {
			t.Errorf("%+v: %v, want an error naming %s", f, err, flag)
		}
	}
}

// --status parked finds the running deliveries whose HookrelayStatus is
// parked, which List reports as parked; every status is accepted.
func TestFilterQueryParked(t *testing.T) {
	q, err := Filter{Endpoint: "acme", Status: "parked"}.Query()
	want := "HookrelayEndpoint = 'acme' AND (ExecutionStatus = 'Running' AND HookrelayStatus = 'parked')"
	if err != nil || q != want {
		t.Fatalf("Query = %q, %v\nwant  %q", q, err, want)
	}
	if got := statusOf(enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, workflows.StatusParked); got != workflows.StatusParked {
		t.Fatalf("a running parked delivery lists as %q", got)
	}
	for _, s := range workflows.Statuses {
		if q, err := (Filter{Status: string(s)}).Query(); err != nil || q != s.VisibilityQuery() {
			t.Errorf("--status %s: %q, %v", s, q, err)
		}
	}
}
