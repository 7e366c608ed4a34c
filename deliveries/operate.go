package deliveries

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/workflows"
)

// ErrFinished means the delivery has closed, so it cannot be canceled or retried; resend it instead.
var ErrFinished = errors.New("delivery already finished")

// ErrPlaintextInput means the delivery's run was started with an input the
// payload codec did not seal (a start made past the codec, by a client
// without keys): Resend and RetryNow refuse to re-seal and send it unless
// Client.ResealPlaintext is set.
var ErrPlaintextInput = errors.New("its input did not arrive sealed")

// InputSealed reports whether a run's start input, as stored in its history
// (before any decoding), carries the payload codec's encrypted encoding in
// every payload. An empty input is not sealed.
func InputSealed(in *commonpb.Payloads) bool {
	if len(in.GetPayloads()) == 0 {
		return false
	}
	for _, p := range in.GetPayloads() {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != codec.EncodingEncrypted {
			return false
		}
	}
	return true
}

// checkSealed refuses a run whose start event's raw input is not sealed,
// unless the client was told to re-seal plaintext.
func (c *Client) checkSealed(id string, start *historypb.HistoryEvent) error {
	if c.ResealPlaintext {
		return nil
	}
	attrs := start.GetWorkflowExecutionStartedEventAttributes()
	if attrs == nil {
		return fmt.Errorf("delivery %s: read history: the first event is not the run's start", id)
	}
	if !InputSealed(attrs.GetInput()) {
		return fmt.Errorf("delivery %s: %w (refused; --reseal-plaintext re-seals it, for migrations only)", id, ErrPlaintextInput)
	}
	return nil
}

// checkRunSealed reads the first event of a run's raw history and checks its input.
func (c *Client) checkRunSealed(ctx context.Context, id, runID string) error {
	if c.ResealPlaintext {
		return nil
	}
	it := c.Temporal.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return fmt.Errorf("delivery %s: read history: %w", id, ErrNotFound)
	}
	e, err := it.Next()
	if err != nil {
		return lookupError(id, err)
	}
	return c.checkSealed(id, e)
}

// cancelWait bounds how long Cancel waits for the workflow to close.
const cancelWait = 30 * time.Second

func (c *Client) dataConverter() converter.DataConverter {
	if c.DataConverter != nil {
		return c.DataConverter
	}
	return converter.GetDefaultDataConverter()
}

// describeOpen returns the running run's id, or ErrNotFound / ErrFinished.
func (c *Client) describeOpen(ctx context.Context, id string) (string, error) {
	if _, _, err := workflows.ParseDeliveryID(id); err != nil {
		return "", err
	}
	desc, err := c.Temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return "", lookupError(id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		st, err := c.Status(ctx, id)
		if err != nil {
			return "", err
		}
		return "", fmt.Errorf("delivery %s: %w (%s)", id, ErrFinished, st.Status)
	}
	return info.GetExecution().GetRunId(), nil
}

// signal sends a signal to the open run, mapping a run that closed meanwhile to ErrFinished.
func (c *Client) signal(ctx context.Context, id, runID, name string, arg any) error {
	if err := c.Temporal.SignalWorkflow(ctx, id, runID, name, arg); err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return fmt.Errorf("delivery %s: %w", id, ErrFinished)
		}
		return fmt.Errorf("delivery %s: signal %s: %w", id, name, unavailable(err))
	}
	return nil
}

// Cancel stops an open delivery: no further attempts, an attempt in flight is
// cancelled. It waits for the workflow to close and returns its final state.
func (c *Client) Cancel(ctx context.Context, id, reason string) (workflows.DeliveryState, error) {
	runID, err := c.describeOpen(ctx, id)
	if err != nil {
		return workflows.DeliveryState{}, err
	}
	if err := c.signal(ctx, id, runID, workflows.CancelSignal, map[string]string{"reason": reason}); err != nil {
		return workflows.DeliveryState{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, cancelWait)
	defer cancel()
	var st workflows.DeliveryState
	if err := c.Temporal.GetWorkflow(wctx, id, runID).Get(wctx, &st); err != nil {
		if closed, ok := workflows.StateFromError(err); ok {
			return closed, nil // canceled, as asked (or failed just before)
		}
		if wctx.Err() == nil {
			return c.Status(ctx, id) // closed without a state
		}
		return st, fmt.Errorf("delivery %s: cancel sent, but it did not close within %s (is a worker running?): %w", id, cancelWait, err)
	}
	return st, nil
}

// RetryNow cuts an open delivery's current wait short and returns its
// status. It is the retry-now update, once accepted: over the bound it is
// refused with an *OperatorLimitError.
func (c *Client) RetryNow(ctx context.Context, id string) (workflows.DeliveryState, error) {
	runID, err := c.describeOpen(ctx, id)
	if err != nil {
		return workflows.DeliveryState{}, err
	}
	if err := c.checkRunSealed(ctx, id, runID); err != nil {
		return workflows.DeliveryState{}, err
	}
	if err := c.update(ctx, id, runID, workflows.RetryNowUpdate, client.WorkflowUpdateStageAccepted, nil); err != nil {
		return workflows.DeliveryState{}, err
	}
	return c.Status(ctx, id)
}

// RetryNowWait does what RetryNow does through a workflow update, and returns
// the record of the attempt it caused (or of the attempt already in flight).
func (c *Client) RetryNowWait(ctx context.Context, id string) (workflows.Attempt, error) {
	var a workflows.Attempt
	runID, err := c.describeOpen(ctx, id)
	if err != nil {
		return a, err
	}
	if err := c.checkRunSealed(ctx, id, runID); err != nil {
		return a, err
	}
	err = c.update(ctx, id, runID, workflows.RetryNowUpdate, client.WorkflowUpdateStageCompleted, &a)
	return a, err
}

// Resend sends a delivery's event again. An open delivery gets the resend
// signal; a closed one gets a new run of the same workflow ID (so the same
// webhook-id), its event read from the previous run's history and its
// attempts numbered on from the previous run's. A run whose input did not
// arrive sealed is refused with ErrPlaintextInput unless c.ResealPlaintext.
func (c *Client) Resend(ctx context.Context, id string) (Started, error) {
	endpointID, eventID, err := workflows.ParseDeliveryID(id)
	if err != nil {
		return Started{}, err
	}
	desc, err := c.Temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return Started{}, lookupError(id, err)
	}
	prevRun := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	events, err := c.history(ctx, id, prevRun)
	if err != nil {
		return Started{}, err
	}
	if len(events) > 0 {
		if err := c.checkSealed(id, events[0]); err != nil {
			return Started{}, err
		}
	}
	started := Started{DeliveryID: id, RunID: prevRun, EndpointID: endpointID, EventID: eventID}
	if running(desc) {
		err := c.update(ctx, id, prevRun, workflows.ResendUpdate, client.WorkflowUpdateStageCompleted, nil)
		if !errors.Is(err, ErrFinished) {
			return started, err
		}
	}
	tl, err := c.timelineOf(id, events)
	if err != nil {
		return Started{}, err
	}
	in := tl.Input
	in.FirstAttempt = tl.LastAttempt() + 1
	in.ResendOf = prevRun
	in.Carry = nil
	if in.OperatorTimes, err = c.closedOperatorTimes(ctx, id, in.OperatorTimes, time.Now()); err != nil {
		return Started{}, err
	}
	opts := c.startOptions(id, in)
	// Should the run still be open after all, it just receives the signal.
	opts.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	run, err := c.Temporal.SignalWithStartWorkflow(ctx, id, workflows.ResendSignal, nil, opts, workflows.DeliveryWorkflowName, in)
	if err != nil {
		return Started{}, fmt.Errorf("delivery %s: resend: %w", id, unavailable(err))
	}
	return Started{DeliveryID: id, RunID: run.GetRunID(), EndpointID: endpointID, EventID: eventID}, nil
}

// running reports whether a description is of a running run.
func running(desc *workflowservice.DescribeWorkflowExecutionResponse) bool {
	return desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
}

// Timeline rebuilds one run of a delivery (the latest when runID is "") from its history.
func (c *Client) Timeline(ctx context.Context, id, runID string) (workflows.Timeline, error) {
	events, err := c.history(ctx, id, runID)
	if err != nil {
		return workflows.Timeline{}, err
	}
	return c.timelineOf(id, events)
}

// history reads one run's history as stored, payloads still encoded.
func (c *Client) history(ctx context.Context, id, runID string) ([]*historypb.HistoryEvent, error) {
	var events []*historypb.HistoryEvent
	it := c.Temporal.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, lookupError(id, err)
		}
		events = append(events, e)
	}
	return events, nil
}

// timelineOf decodes a run's history into its timeline.
func (c *Client) timelineOf(id string, events []*historypb.HistoryEvent) (workflows.Timeline, error) {
	tl, err := workflows.TimelineFromHistory(events, c.dataConverter())
	if err != nil {
		return tl, fmt.Errorf("delivery %s: read history: %w", id, err)
	}
	return tl, nil
}

// Listed is one delivery as visibility reports it. In JSON it also carries
// DeliveryID as "workflow_id", its deprecated name.
type Listed struct {
	DeliveryID string     `json:"delivery_id"`
	RunID      string     `json:"run_id"`
	AccountID  string     `json:"account_id,omitempty"`
	EndpointID string     `json:"endpoint_id"`
	EventName  string     `json:"event_name"`
	MailLogID  string     `json:"mail_log_id"`
	Status     string     `json:"status"`
	Attempts   int64      `json:"attempts"`
	Running    bool       `json:"running"`
	StartedAt  time.Time  `json:"started_at"`
	ClosedAt   *time.Time `json:"closed_at,omitempty"`
}

// List returns the deliveries matching a visibility query, newest first,
// one entry per workflow ID (its latest run). The query is confined to
// DeliveryWorkflow executions.
func (c *Client) List(ctx context.Context, query string) ([]Listed, error) {
	q := workflows.DeliveriesQuery
	if strings.TrimSpace(query) != "" {
		q += " AND (" + query + ")"
	}
	seen := map[string]bool{}
	var out []Listed
	var token []byte
	for {
		resp, err := c.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, NextPageToken: token, PageSize: 1000})
		if err != nil {
			var bad *serviceerror.InvalidArgument
			if errors.As(err, &bad) {
				return nil, fmt.Errorf("query: %s", bad.Message)
			}
			return nil, fmt.Errorf("list deliveries: %w", unavailable(err))
		}
		for _, e := range resp.GetExecutions() {
			l := listed(e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId(), e.GetSearchAttributes().GetIndexedFields())
			l.Running = e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
			l.Status = string(statusOf(e.GetStatus(), workflows.Status(l.Status)))
			l.StartedAt = e.GetStartTime().AsTime()
			if e.GetCloseTime() != nil {
				t := e.GetCloseTime().AsTime()
				l.ClosedAt = &t
			}
			out = append(out, l)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartedAt.After(out[j].StartedAt) })
	deduped := out[:0]
	for _, l := range out {
		if !seen[l.DeliveryID] {
			seen[l.DeliveryID] = true
			deduped = append(deduped, l)
		}
	}
	return deduped, nil
}

// MarshalJSON writes delivery_id and its deprecated name workflow_id.
func (l Listed) MarshalJSON() ([]byte, error) {
	type plain Listed
	return json.Marshal(struct {
		plain
		WorkflowID string `json:"workflow_id"`
	}{plain(l), l.DeliveryID})
}

func listed(id, runID string, fields map[string]*commonpb.Payload) Listed {
	dc := converter.GetDefaultDataConverter() // search attributes are never encrypted
	str := func(name string) string {
		var s string
		if p := fields[name]; p != nil {
			_ = dc.FromPayload(p, &s)
		}
		return s
	}
	l := Listed{DeliveryID: id, RunID: runID, AccountID: str(workflows.AccountAttr.GetName()), EndpointID: str(workflows.EndpointAttr.GetName()),
		EventName: str(workflows.EventNameAttr.GetName()), MailLogID: str(workflows.MailLogIDAttr.GetName()),
		Status: str(workflows.StatusAttr.GetName())}
	if p := fields[workflows.AttemptsAttr.GetName()]; p != nil {
		_ = dc.FromPayload(p, &l.Attempts)
	}
	return l
}

// statusOf is a delivery's status as visibility shows it: HookrelayStatus
// while it runs; once closed, its close status (delivered, failed or
// canceled), except for deliveries that upserted their final status before
// the close status carried it. Status.VisibilityQuery is its inverse.
func statusOf(exec enumspb.WorkflowExecutionStatus, attr workflows.Status) workflows.Status {
	switch exec {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return attr
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		if attr == workflows.StatusFailed || attr == workflows.StatusCanceled {
			return attr
		}
		return workflows.StatusDelivered
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		return workflows.StatusCanceled
	default:
		return workflows.StatusFailed
	}
}

// Filter selects deliveries by their search attributes.
type Filter struct {
	Account   string
	Endpoint  string
	EventName string
	Status    string
	Since     time.Duration // started within this long before Now
	Now       time.Time
}

// statusNames lists the statuses: "pending, retrying, ... or canceled".
func statusNames() string {
	names := make([]string, len(workflows.Statuses))
	for i, s := range workflows.Statuses {
		names[i] = string(s)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

var endpointIDPattern = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// Query turns the filter into a visibility query, refusing values that could
// not match (and so could not be quoted safely), named by their flag.
func (f Filter) Query() (string, error) {
	var parts []string
	if f.Account != "" {
		if err := event.CheckAccountID(f.Account); err != nil {
			return "", fmt.Errorf("--account: %q %w", f.Account, err)
		}
		parts = append(parts, fmt.Sprintf("%s = '%s'", workflows.AccountAttr.GetName(), f.Account))
	}
	if f.Endpoint != "" {
		if !endpointIDPattern.MatchString(f.Endpoint) {
			return "", fmt.Errorf("--endpoint: %q is not an endpoint id ([a-z0-9_-])", f.Endpoint)
		}
		parts = append(parts, fmt.Sprintf("%s = '%s'", workflows.EndpointAttr.GetName(), f.Endpoint))
	}
	if f.EventName != "" {
		if !event.Known(f.EventName) {
			return "", fmt.Errorf("--event-name: unknown event %q, want one of %s", f.EventName, strings.Join(event.Names, ", "))
		}
		parts = append(parts, fmt.Sprintf("%s = '%s'", workflows.EventNameAttr.GetName(), f.EventName))
	}
	if f.Status != "" {
		q := workflows.Status(f.Status).VisibilityQuery()
		if q == "" {
			return "", fmt.Errorf("--status: %q is not %s", f.Status, statusNames())
		}
		parts = append(parts, q)
	}
	if f.Since < 0 {
		return "", fmt.Errorf("--since: %s must be positive", f.Since)
	}
	if f.Since > 0 {
		parts = append(parts, fmt.Sprintf("StartTime >= '%s'", f.Now.Add(-f.Since).UTC().Format(time.RFC3339)))
	}
	return strings.Join(parts, " AND "), nil
}

// Account is the account of delivery id, from its HookrelayAccount search
// attribute ("" for a delivery of an event without one), so an account's
// route can refuse another account's delivery before touching it. A
// description is not a billable action.
func (c *Client) Account(ctx context.Context, id string) (string, error) {
	if _, _, err := workflows.ParseDeliveryID(id); err != nil {
		return "", err
	}
	desc, err := c.Temporal.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return "", lookupError(id, err)
	}
	return workflows.AccountOf(desc.GetWorkflowExecutionInfo().GetSearchAttributes()), nil
}
