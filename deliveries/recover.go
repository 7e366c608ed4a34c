package deliveries

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/workflows"
)

// ErrRecoveryNotFound means the account has no recovery of that id.
var ErrRecoveryNotFound = errors.New("recovery not found")

// Recover starts the recovery of an account's endpoint: every delivery of
// it that ended failed (endpoint_unavailable included) and was created in
// [since, until) (a zero until: up to the recovery's start) is resent once,
// paced at the endpoint's drain_per_second, by RecoverWorkflow on the
// workers that have the delivery log. The same account, endpoint and window
// again is the same recovery, running or finished: its id is returned and
// nothing new starts. An endpoint of another account is endpoint.ErrNotFound.
func (c *Client) Recover(ctx context.Context, accountID, endpointID string, since, until time.Time) (string, error) {
	since, until = since.UTC(), until.UTC()
	if !until.IsZero() && !since.Before(until) {
		return "", &event.FieldError{Field: "until", Problem: "must be after since"}
	}
	if _, err := c.accountEndpoint(ctx, accountID, endpointID); err != nil {
		return "", err
	}
	id := workflows.RecoverID(accountID, endpointID, since, until)
	in := workflows.RecoverInput{RecoverID: id, AccountID: accountID, EndpointID: endpointID, Since: since}
	if !until.IsZero() {
		in.Until = until
	}
	opts := client.StartWorkflowOptions{
		ID:                       workflows.RecoverWorkflowID(id),
		TaskQueue:                workflows.RecoverTaskQueue(c.TaskQueue),
		StaticSummary:            "recover failed deliveries of endpoint " + endpointID,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}
	_, err := c.Temporal.ExecuteWorkflow(ctx, opts, workflows.RecoverWorkflowName, in)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &already) {
		return "", fmt.Errorf("recover endpoint %s: %w", endpointID, unavailable(err))
	}
	return id, nil
}

// Recovery reports one of an account's recoveries: from its query while
// it runs, from its result once done. Another account's recovery, or an id
// no recovery has, is ErrRecoveryNotFound.
func (c *Client) Recovery(ctx context.Context, accountID, recoverID string) (workflows.RecoverState, error) {
	var st workflows.RecoverState
	if !workflows.ValidRecoverID(recoverID) {
		return st, fmt.Errorf("recovery %s: %w", recoverID, ErrRecoveryNotFound)
	}
	wid := workflows.RecoverWorkflowID(recoverID)
	desc, err := c.Temporal.DescribeWorkflowExecution(ctx, wid, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return st, fmt.Errorf("recovery %s: %w", recoverID, ErrRecoveryNotFound)
	case err != nil:
		return st, fmt.Errorf("recovery %s: %w", recoverID, unavailable(err))
	}
	status := desc.GetWorkflowExecutionInfo().GetStatus()
	if status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		err = c.Temporal.GetWorkflow(ctx, wid, "").Get(ctx, &st)
	} else {
		st, err = c.queryRecovery(ctx, recoverID)
	}
	if err != nil {
		return st, err
	}
	if st.AccountID != accountID {
		return workflows.RecoverState{}, fmt.Errorf("recovery %s: %w", recoverID, ErrRecoveryNotFound)
	}
	switch status {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
	default: // canceled, terminated, failed or timed out: it stopped before its end
		st.State = workflows.RecoverCanceled
	}
	return st, nil
}

// WaitRecovery blocks until one of an account's recoveries ends and
// returns its final state.
func (c *Client) WaitRecovery(ctx context.Context, accountID, recoverID string) (workflows.RecoverState, error) {
	if _, err := c.Recovery(ctx, accountID, recoverID); err != nil {
		return workflows.RecoverState{}, err
	}
	var st workflows.RecoverState
	if err := c.Temporal.GetWorkflow(ctx, workflows.RecoverWorkflowID(recoverID), "").Get(ctx, &st); err != nil {
		if last, qerr := c.Recovery(ctx, accountID, recoverID); qerr == nil {
			return last, nil // canceled: its state as it stopped
		}
		return st, fmt.Errorf("recovery %s: %w", recoverID, unavailable(err))
	}
	return st, nil
}

func (c *Client) queryRecovery(ctx context.Context, recoverID string) (workflows.RecoverState, error) {
	var st workflows.RecoverState
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	val, err := c.Temporal.QueryWorkflow(qctx, workflows.RecoverWorkflowID(recoverID), "", workflows.RecoverQuery)
	if err != nil {
		if qctx.Err() != nil {
			return st, fmt.Errorf("recovery %s: %w within %s; is a worker with a delivery log polling?", recoverID, ErrNoWorker, queryTimeout)
		}
		return st, fmt.Errorf("recovery %s: query: %w", recoverID, unavailable(err))
	}
	if err := val.Get(&st); err != nil {
		return st, fmt.Errorf("recovery %s: decode state: %w", recoverID, err)
	}
	return st, nil
}

// ResendFailedOnce resends a delivery whose latest run ended failed, at
// most once since notBefore: a delivery whose latest run started at or
// after notBefore was resent since then (by the caller, before it was
// interrupted, or by anyone) and is not resent again (workflows.RecoverAlreadyResent).
// A run whose input did not arrive sealed is never re-sealed, whatever
// c.ResealPlaintext says (workflows.SkipUnsealedInput); a delivery running
// or delivered is workflows.SkipNotFailed; one Temporal no longer has is
// workflows.SkipHistoryGone. Other errors are worth a retry.
func (c *Client) ResendFailedOnce(ctx context.Context, id string, notBefore time.Time) (string, error) {
	desc, err := c.Temporal.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return workflows.SkipHistoryGone, nil
	case err != nil:
		return "", fmt.Errorf("delivery %s: %w", id, unavailable(err))
	}
	info := desc.GetWorkflowExecutionInfo()
	if !info.GetStartTime().AsTime().Before(notBefore) {
		return workflows.RecoverAlreadyResent, nil
	}
	attr := listed(id, "", info.GetSearchAttributes().GetIndexedFields()).Status
	if statusOf(info.GetStatus(), workflows.Status(attr)) != workflows.StatusFailed {
		return workflows.SkipNotFailed, nil
	}
	strict := *c
	strict.ResealPlaintext = false
	_, err = strict.Resend(ctx, id)
	switch {
	case errors.Is(err, ErrPlaintextInput):
		return workflows.SkipUnsealedInput, nil
	case errors.Is(err, ErrNotFound):
		return workflows.SkipHistoryGone, nil
	case err != nil:
		return "", err
	}
	return workflows.RecoverResent, nil
}

// TestPayload is the example payload of a test event: fake values only
// (example.com addresses, mail log id 1), and "test": true, which no mail
// event carries, so a receiver can tell a test from a real event.
func TestPayload(at time.Time) json.RawMessage {
	p, _ := json.Marshal(map[string]any{
		"id":                 1,
		"test":               true,
		"subject":            "Test event from hookrelay (fake)",
		"header_message_id":  "<test@mail.example.com>",
		"source_tracking_id": "00000000-0000-4000-8000-000000000000",
		"outbound_queue_id":  "TEST",
		"time":               at.UTC().Format(time.RFC3339Nano),
		"from":               "sender@example.com",
		"to":                 "recipient@example.com",
		"custom_headers":     map[string]string{},
	})
	return p
}

// SendTest delivers an example event of eventName (TestPayload) to the
// account's endpoint alone, through the normal path: a delivery like any
// other, signed, retried and in the delivery log, whether or not the
// endpoint subscribes to eventName. Its event id is "test_" and random, so
// each test is a new delivery. An endpoint of another account is
// endpoint.ErrNotFound.
func (c *Client) SendTest(ctx context.Context, accountID, endpointID, eventName string) (Started, error) {
	if !event.Known(eventName) {
		return Started{}, &event.FieldError{Field: "event_name", Problem: fmt.Sprintf("unknown event %q, want one of %s", eventName, strings.Join(event.Names, ", "))}
	}
	ep, err := c.accountEndpoint(ctx, accountID, endpointID)
	if err != nil {
		return Started{}, err
	}
	var b [16]byte
	rand.Read(b[:])
	now := time.Now().UTC()
	ev := event.Event{ID: "test_" + hex.EncodeToString(b[:]), AccountID: ep.AccountID, Name: eventName, MailLogID: 1,
		Time: now, Payload: TestPayload(now)}
	started, err := c.PublishTo(ctx, ev, []endpoint.Endpoint{ep})
	if err != nil {
		return Started{}, err
	}
	return started[0], nil
}

// accountEndpoint resolves an endpoint of the account; another account's,
// like an unknown one, is endpoint.ErrNotFound.
func (c *Client) accountEndpoint(ctx context.Context, accountID, endpointID string) (endpoint.Endpoint, error) {
	ep, err := c.Endpoints.Resolve(ctx, endpointID)
	if err != nil {
		return ep, fmt.Errorf("endpoint %s: %w", endpointID, err)
	}
	if ep.AccountID != accountID {
		return endpoint.Endpoint{}, fmt.Errorf("endpoint %s: %w", endpointID, endpoint.ErrNotFound)
	}
	return ep, nil
}
