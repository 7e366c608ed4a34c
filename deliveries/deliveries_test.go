package deliveries

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/converter"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/codec"
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

// InputSealed reads the start input as stored: only payloads the codec
// sealed (its encrypted encoding) pass; a plaintext start, as a client
// without keys makes, or a mix, or nothing at all, does not.
func TestInputSealed(t *testing.T) {
	sealed := &commonpb.Payload{Metadata: map[string][]byte{
		converter.MetadataEncoding: []byte(codec.EncodingEncrypted), codec.MetadataKeyID: []byte("k1")}, Data: []byte{1, 2, 3}}
	plain, err := converter.GetDefaultDataConverter().ToPayload(map[string]string{"endpoint_id": "crm"})
	if err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		in   *commonpb.Payloads
		want bool
	}{
		"sealed":         {&commonpb.Payloads{Payloads: []*commonpb.Payload{sealed}}, true},
		"plaintext json": {&commonpb.Payloads{Payloads: []*commonpb.Payload{plain}}, false},
		"mixed":          {&commonpb.Payloads{Payloads: []*commonpb.Payload{sealed, plain}}, false},
		"no metadata":    {&commonpb.Payloads{Payloads: []*commonpb.Payload{{Data: []byte("{}")}}}, false},
		"empty":          {&commonpb.Payloads{}, false},
		"nil":            {nil, false},
	} {
		if got := InputSealed(tt.in); got != tt.want {
			t.Errorf("%s: InputSealed = %t, want %t", name, got, tt.want)
		}
	}

	// A real codec's output passes; its input does not.
	c, err := codec.Parse([]byte("k1:" + base64.StdEncoding.EncodeToString(make([]byte, codec.KeyBytes)) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	if !InputSealed(&commonpb.Payloads{Payloads: enc}) {
		t.Errorf("the codec's own output is not seen as sealed: %q", enc[0].GetMetadata())
	}

	// The refusal names the delivery and the reason, and wraps the sentinel.
	start := &historypb.HistoryEvent{Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{
		WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{Input: &commonpb.Payloads{Payloads: []*commonpb.Payload{plain}}}}}
	err = (&Client{}).checkSealed("crm:evt_1", start)
	if !errors.Is(err, ErrPlaintextInput) || !strings.Contains(err.Error(), "crm:evt_1") || !strings.Contains(err.Error(), "did not arrive sealed") {
		t.Errorf("checkSealed of a plaintext start = %v", err)
	}
	if err := (&Client{ResealPlaintext: true}).checkSealed("crm:evt_1", start); err != nil {
		t.Errorf("with ResealPlaintext: %v", err)
	}
}

// A delivery to an endpoint given longer than the default timeout gets a
// workflow task timeout its local first attempt fits in, with no heartbeat
// task (the SDK heartbeats at 80% of it); the others keep the server's.
func TestWorkflowTaskTimeout(t *testing.T) {
	tests := []struct {
		timeout time.Duration
		local   bool
		want    time.Duration
	}{
		{0, true, 0},
		{5 * time.Second, true, 0},
		{endpoint.DefaultTimeout, true, 0},
		{endpoint.DefaultTimeout + time.Second, true, 26250 * time.Millisecond},
		{endpoint.MaxTimeout, true, 43750 * time.Millisecond},
		{endpoint.MaxTimeout, false, 0}, // ordinary attempts only: they heartbeat themselves
	}
	for _, tt := range tests {
		in := workflows.DeliveryInput{Timeout: tt.timeout, FirstAttemptLocal: tt.local}
		got := workflowTaskTimeout(in)
		if got != tt.want {
			t.Errorf("timeout %s, local %t: workflow task timeout %s, want %s", tt.timeout, tt.local, got, tt.want)
		}
		if got > 0 && got*4/5 < tt.timeout+localAttemptWrapUp {
			t.Errorf("timeout %s: the SDK would heartbeat at %s, before the attempt's end", tt.timeout, got*4/5)
		}
		if opts := (&Client{}).startOptions("ep:evt", in); opts.WorkflowTaskTimeout != got {
			t.Errorf("timeout %s: start options carry %s, want %s", tt.timeout, opts.WorkflowTaskTimeout, got)
		}
	}
}
