// Package deliveries is how the mail service hands events to hookrelay: it
// starts one DeliveryWorkflow per subscribed endpoint, idempotently, reports
// where a delivery stands and steers it, and reads and steers an endpoint's
// circuit through its health workflow. The starter command is a thin shell
// over it.
package deliveries

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/tracing"
	"github.com/hookrelay/hookrelay/workflows"
)

// Errors callers act on differently. Invalid input is an *event.FieldError.
var (
	// ErrUnavailable wraps a failure to reach Temporal: retry later; a
	// retried Publish does not duplicate deliveries already started.
	ErrUnavailable = errors.New("temporal unavailable")
	// ErrNotFound means no delivery has that workflow ID.
	ErrNotFound = errors.New("delivery not found")
	// ErrNoWorker means Temporal answered but no worker answered a status
	// query in time: the delivery exists, its state is unknown for now.
	ErrNoWorker = errors.New("no worker answered the status query")
)

// queryTimeout bounds a status query, which needs a worker to answer.
const queryTimeout = 10 * time.Second

// Client starts deliveries and reads their status.
type Client struct {
	Temporal client.Client
	// Endpoints routes events to endpoints: the endpoints file or the registry.
	Endpoints endpoint.Source
	TaskQueue string
	// DataConverter decodes histories; it must match the one Temporal was
	// dialled with. Nil means the SDK's default.
	DataConverter converter.DataConverter
	// EagerStart asks the server to hand a new delivery's first workflow
	// task straight back to a worker in this process (one must run on
	// Temporal and TaskQueue), saving a round trip before the first attempt.
	EagerStart bool
	// TracerProvider records a span per Publish (ids and the event's name,
	// never its payload); for the trace to reach the workflows, Temporal
	// must be dialled with the SDK's tracing interceptor on the same
	// provider (temporalclient.Options.TracerProvider). Nil: none.
	TracerProvider trace.TracerProvider
	// ResealPlaintext lets Resend, RetryNow and RetryNowWait act on a run
	// whose input did not arrive sealed by the payload codec (a plaintext
	// start, as a client without keys makes): they re-seal and send it.
	// Meant for migrations from a deployment without keys; false refuses
	// such runs with ErrPlaintextInput.
	ResealPlaintext bool
}

// Started is one delivery Publish started, or found already started. In
// JSON it also carries DeliveryID as "workflow_id", its deprecated name.
type Started struct {
	DeliveryID string `json:"delivery_id"`
	RunID      string `json:"run_id"`
	EndpointID string `json:"endpoint_id"`
	EventID    string `json:"event_id"`
	Duplicate  bool   `json:"duplicate"`
	// RoutingError, when set, says why the event did not reach this
	// endpoint (its registry row was refused): nothing started for it,
	// while the account's other endpoints got theirs.
	RoutingError string `json:"routing_error,omitempty"`
}

// MarshalJSON writes delivery_id and its deprecated name workflow_id.
func (s Started) MarshalJSON() ([]byte, error) {
	type plain Started
	return json.Marshal(struct {
		plain
		WorkflowID string `json:"workflow_id"`
	}{plain(s), s.DeliveryID})
}

// PublishJSON validates a submitted event and publishes it. Invalid input is
// an *event.FieldError and starts nothing.
func (c *Client) PublishJSON(ctx context.Context, data []byte) ([]Started, error) {
	ev, err := event.Parse(data)
	if err != nil {
		return nil, err
	}
	return c.Publish(ctx, ev)
}

// Publish starts one delivery per enabled endpoint subscribed to the event,
// in endpoint file order. A delivery that already exists (the same event
// submitted before) is returned with Duplicate set, and nothing new starts.
// No subscriber means nothing to deliver: no deliveries and no error.
//
// Errors: an *event.FieldError for an event that does not validate (nothing
// starts); ErrUnavailable (errors.Is) when Temporal cannot be reached or does
// not answer before ctx's deadline. On error the deliveries started so far are
// returned with it; publishing the same event again is safe and completes the set.
func (c *Client) Publish(ctx context.Context, ev event.Event) (started []Started, err error) {
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	ctx, span := c.startSpan(ctx, ev)
	defer func() { endSpan(span, started, err) }()
	endpoints, err := c.Endpoints.Route(ctx, ev.AccountID, ev.Name)
	var partial *endpoint.RouteError
	if err != nil && !errors.As(err, &partial) {
		return nil, fmt.Errorf("route event %s: %w", ev.ID, unavailable(err))
	}
	started, err = c.publish(ctx, ev, endpoints)
	if err != nil || partial == nil {
		return started, err
	}
	return append(started, Refused(ev, partial)...), nil
}

// Refused are the deliveries a partial route refused, each with its
// RoutingError; the event's other endpoints are routed as usual.
func Refused(ev event.Event, partial *endpoint.RouteError) []Started {
	out := make([]Started, len(partial.Refused))
	for i, r := range partial.Refused {
		out[i] = Started{DeliveryID: workflows.DeliveryID(r.ID, ev.ID), EndpointID: r.ID, EventID: ev.ID, RoutingError: r.Err.Error()}
	}
	return out
}

// PublishTo is Publish to endpoints the caller already routed the event to
// (to tell "no subscriber" apart before dialling, say). Each must belong to
// the event's account.
func (c *Client) PublishTo(ctx context.Context, ev event.Event, endpoints []endpoint.Endpoint) (started []Started, err error) {
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	ctx, span := c.startSpan(ctx, ev)
	defer func() { endSpan(span, started, err) }()
	for _, ep := range endpoints {
		if ep.AccountID != ev.AccountID {
			return nil, fmt.Errorf("endpoint %q belongs to another account than event %s; nothing started", ep.ID, ev.ID)
		}
	}
	return c.publish(ctx, ev, endpoints)
}

// startSpan starts a Publish's span: the event's id, name and account.
// The deliveries' StartWorkflow spans (the SDK's interceptor) are its children.
func (c *Client) startSpan(ctx context.Context, ev event.Event) (context.Context, trace.Span) {
	if c.TracerProvider == nil {
		return ctx, trace.SpanFromContext(ctx) // tracing off here: record nothing, keep the caller's span
	}
	return tracing.Tracer(c.TracerProvider, "deliveries").Start(ctx, "Publish "+ev.Name, trace.WithAttributes(
		attribute.String("hookrelay.event.id", ev.ID),
		attribute.String("hookrelay.event.name", ev.Name),
		attribute.String("hookrelay.account.id", ev.AccountID),
	))
}

// endSpan records how many deliveries started and were duplicates, and
// on failure the error's kind (its message may name an endpoint's URL).
func endSpan(span trace.Span, started []Started, err error) {
	if !span.IsRecording() {
		return
	}
	dup := 0
	for _, s := range started {
		if s.Duplicate {
			dup++
		}
	}
	span.SetAttributes(attribute.Int("hookrelay.deliveries", len(started)), attribute.Int("hookrelay.duplicates", dup))
	if err != nil {
		kind := "error"
		if errors.Is(err, ErrUnavailable) {
			kind = "temporal_unavailable"
		}
		span.SetAttributes(attribute.String("error.type", kind))
		span.SetStatus(otelcodes.Error, kind)
	}
	span.End()
}

func (c *Client) publish(ctx context.Context, ev event.Event, endpoints []endpoint.Endpoint) ([]Started, error) {
	body := ev.Body() // one body for every endpoint, POSTed as is by every attempt
	var out []Started
	for _, ep := range endpoints {
		s, err := c.start(ctx, ep, ev, body)
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
	return out, nil
}

// localAttemptWrapUp is how long a local first attempt may take past its
// request's timeout to record its outcome (the delivery log, the audit
// trail).
const localAttemptWrapUp = 5 * time.Second

// workflowTaskTimeout is the workflow task timeout of a delivery whose
// first attempt runs as a local activity to an endpoint given longer than
// the default to answer: a fifth over the attempt's longest run, so the
// attempt completes inside the one workflow task that started it. On the
// server's 10 s, a local activity that runs past 8 s (80% of it) keeps its
// task alive with a heartbeat workflow task every 8 s: more work for the
// server, a billable action each, and a worker too busy to send one in time
// loses the task and runs the attempt again. The cost of the longer
// timeout: a worker that dies holding the task is noticed after it, not
// after 10 s, and a cancel reaches the attempt when it ends. Zero (the
// server's default) otherwise.
func workflowTaskTimeout(in workflows.DeliveryInput) time.Duration {
	if !in.FirstAttemptLocal || in.Timeout <= endpoint.DefaultTimeout {
		return 0
	}
	return (in.Timeout + localAttemptWrapUp) * 5 / 4
}

// startOptions are a delivery run's start options: its ID, summary and
// initial search attributes (ids, event name and status only: never PHI).
func (c *Client) startOptions(id string, in workflows.DeliveryInput) client.StartWorkflowOptions {
	attrs := []temporal.SearchAttributeUpdate{
		workflows.EndpointAttr.ValueSet(in.EndpointID),
		workflows.EventNameAttr.ValueSet(in.EventName),
		workflows.MailLogIDAttr.ValueSet(strconv.FormatInt(in.MailLogID, 10)),
		workflows.StatusAttr.ValueSet(string(workflows.StatusPending)),
		workflows.AttemptsAttr.ValueSet(int64(max(in.FirstAttempt, 1) - 1)),
	}
	if in.AccountID != "" {
		attrs = append(attrs, workflows.AccountAttr.ValueSet(in.AccountID))
	}
	if !in.EventTime.IsZero() {
		attrs = append(attrs, workflows.EventTimeAttr.ValueSet(in.EventTime))
	}
	return client.StartWorkflowOptions{
		ID:                    id,
		TaskQueue:             c.TaskQueue,
		StaticSummary:         fmt.Sprintf("%s → %s, mail log %d", in.EventName, in.EndpointID, in.MailLogID),
		WorkflowTaskTimeout:   workflowTaskTimeout(in),
		TypedSearchAttributes: temporal.NewSearchAttributes(attrs...),
		// Fairness keyed by account: one account's backlog does not hold
		// back another's first workflow task.
		Priority: workflows.Priority(in.AccountID),
	}
}

func (c *Client) start(ctx context.Context, ep endpoint.Endpoint, ev event.Event, body []byte) (Started, error) {
	id := workflows.DeliveryID(ep.ID, ev.ID)
	s := Started{DeliveryID: id, EndpointID: ep.ID, EventID: ev.ID}
	in := workflows.DeliveryInput{
		EndpointID:    ep.ID,
		AccountID:     ev.AccountID,
		EventID:       ev.ID,
		EventName:     ev.Name,
		MailLogID:     ev.MailLogID,
		EventTime:     ev.Time,
		Body:          body,
		RetrySchedule: ep.RetrySchedule,
		Timeout:       ep.Timeout,
		// The fast path: the first attempt runs in the workflow task.
		FirstAttemptLocal: true,
	}
	opts := c.startOptions(id, in)
	// A workflow ID is never reused by send: the same event again is a duplicate,
	// even after its delivery closed. Only an explicit Resend starts a new run.
	opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
	opts.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL
	opts.WorkflowExecutionErrorWhenAlreadyStarted = true
	opts.EnableEagerStart = c.EagerStart
	run, err := c.Temporal.ExecuteWorkflow(ctx, opts, workflows.DeliveryWorkflowName, in)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &already):
		s.RunID, s.Duplicate = already.RunId, true
		return s, nil
	case err != nil:
		return s, fmt.Errorf("start delivery %s: %w", id, unavailable(err))
	}
	s.RunID = run.GetRunID()
	return s, nil
}

// Notify starts one delivery of an operational event (hookrelay.*, not a
// mail event) to ep: signed, retried and audited like any delivery. The
// same eventID again starts nothing.
func (c *Client) Notify(ctx context.Context, ep endpoint.Endpoint, eventID, eventName string, payload any) error {
	p, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("notice %s: %w", eventID, err)
	}
	ev := event.Event{ID: eventID, AccountID: ep.AccountID, Name: eventName, Payload: p}
	_, err = c.start(ctx, ep, ev, ev.Body())
	return err
}

// Status reports a delivery: from its status query while it runs, from its
// result once it has closed.
func (c *Client) Status(ctx context.Context, deliveryID string) (workflows.DeliveryState, error) {
	if _, _, err := workflows.ParseDeliveryID(deliveryID); err != nil {
		return workflows.DeliveryState{}, err
	}
	desc, err := c.Temporal.DescribeWorkflowExecution(ctx, deliveryID, "")
	if err != nil {
		return workflows.DeliveryState{}, lookupError(deliveryID, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	runID := info.GetExecution().GetRunId()
	var st workflows.DeliveryState
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		defer cancel()
		val, err := c.Temporal.QueryWorkflow(qctx, deliveryID, runID, workflows.StatusQuery)
		if err != nil {
			if qctx.Err() != nil {
				return st, fmt.Errorf("delivery %s: %w within %s; is a worker polling task queue %q?", deliveryID, ErrNoWorker, queryTimeout, info.GetTaskQueue())
			}
			return st, fmt.Errorf("delivery %s: status query: %w", deliveryID, err)
		}
		if err := val.Get(&st); err != nil {
			return st, fmt.Errorf("delivery %s: decode status: %w", deliveryID, err)
		}
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED:
		// A delivery's final status is its close status; its state is the
		// result, or the details of the failure or cancellation it closed with.
		err := c.Temporal.GetWorkflow(ctx, deliveryID, runID).Get(ctx, &st)
		if err == nil {
			return st, nil
		}
		if closed, ok := workflows.StateFromError(err); ok {
			return closed, nil
		}
		if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			return st, fmt.Errorf("delivery %s: read result: %w", deliveryID, err)
		}
		if info.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED {
			return closedWithoutResult(deliveryID, workflows.StatusCanceled), nil
		}
		st = closedWithoutResult(deliveryID, workflows.StatusFailed)
	case enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		st = closedWithoutResult(deliveryID, workflows.StatusCanceled)
	default: // timed out
		st = closedWithoutResult(deliveryID, workflows.StatusFailed)
	}
	return st, nil
}

// Wait blocks until the delivery closes and returns its final state.
func (c *Client) Wait(ctx context.Context, deliveryID string) (workflows.DeliveryState, error) {
	if _, _, err := workflows.ParseDeliveryID(deliveryID); err != nil {
		return workflows.DeliveryState{}, err
	}
	if _, err := c.Temporal.DescribeWorkflowExecution(ctx, deliveryID, ""); err != nil {
		return workflows.DeliveryState{}, lookupError(deliveryID, err)
	}
	var st workflows.DeliveryState
	if err := c.Temporal.GetWorkflow(ctx, deliveryID, "").Get(ctx, &st); err != nil {
		if closed, ok := workflows.StateFromError(err); ok {
			return closed, nil // failed or canceled
		}
		return c.Status(ctx, deliveryID) // closed without a state: terminated, say
	}
	return st, nil
}

func closedWithoutResult(id string, s workflows.Status) workflows.DeliveryState {
	ep, ev, _ := workflows.ParseDeliveryID(id)
	return workflows.DeliveryState{DeliveryID: id, EndpointID: ep, EventID: ev, Status: s, Attempts: []workflows.Attempt{}}
}

func lookupError(id string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	return fmt.Errorf("delivery %s: %w", id, unavailable(err))
}

// Ready reports whether Temporal answers a health check; when it does not,
// the error wraps ErrUnavailable.
func (c *Client) Ready(ctx context.Context) error {
	if _, err := c.Temporal.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		return fmt.Errorf("health check: %w", unavailable(err))
	}
	return nil
}

// unavailable marks errors that mean Temporal could not be reached or is
// overloaded, so callers know a retry later may succeed.
//
// While the server is down the SDK retries a call until its deadline and
// returns DeadlineExceeded; a connection that never came up (a lazy client's
// first call, a health check) fails at once with a gRPC Unavailable status
// wrapped in plain errors, which only the status code reveals.
func unavailable(err error) error {
	var (
		down      *serviceerror.Unavailable
		deadline  *serviceerror.DeadlineExceeded
		exhausted *serviceerror.ResourceExhausted
	)
	switch {
	case errors.As(err, &down), errors.As(err, &deadline), errors.As(err, &exhausted),
		errors.Is(err, context.DeadlineExceeded):
	default:
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		default:
			return err
		}
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
