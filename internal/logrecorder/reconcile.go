package logrecorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/workflows"
)

// Reconciler timing: a pass every ReconcileEvery by default
// (--log-reconcile-every, within its bounds) over deliveries closed since
// the last pass, less an overlap for visibility's lag; a process that takes
// the duty over starts Lookback back.
const (
	ReconcileEvery    = time.Minute
	MinReconcileEvery = 5 * time.Second
	MaxReconcileEvery = time.Hour
	ReconcileOverlap  = 2 * time.Minute
	ReconcileLookback = time.Hour
)

// LeaseName names the reconciler's fleet-wide lease (deliverylog.TryLead).
const LeaseName = "reconcile"

// Ledger is the delivery log as the reconciler reads and writes it
// (*deliverylog.Log).
type Ledger interface {
	UpsertDelivery(ctx context.Context, d deliverylog.Delivery) error
	RecordAttempt(ctx context.Context, a deliverylog.AttemptRecord) error
	SetStatus(ctx context.Context, accountID, deliveryID, status string, nextAttemptAt time.Time) error
	Get(ctx context.Context, accountID, deliveryID string) (deliverylog.Delivery, error)
	TryLead(ctx context.Context, name string) (*deliverylog.Lease, error)
}

// Reconciler writes, from the histories of deliveries closed recently,
// the attempts the log lacks and each delivery's final status. It reads
// visibility (a list) and each delivery's close event (its result or
// failure, which carry its state), never a query: none is a billable
// action. One process of the fleet does it at a time (Ledger.TryLead).
type Reconciler struct {
	Client    client.Client // with the payload keys' data converter
	Namespace string
	TaskQueue string
	Log       Ledger
	Logger    *slog.Logger
	Now       func() time.Time
	// Every is the time between passes; 0: ReconcileEvery.
	Every time.Duration

	mu   sync.Mutex
	done map[string]time.Time // run id: closed deliveries reconciled, by close time
}

// Result is what one pass did.
type Result struct {
	Deliveries int // closed deliveries read
	Written    int // deliveries whose record the pass completed or corrected
}

// Run reconciles every r.Every while this process holds the lease,
// until ctx is done.
func (r *Reconciler) Run(ctx context.Context) {
	var lease *deliverylog.Lease
	defer func() {
		if lease != nil {
			lease.Release()
		}
	}()
	var since time.Time
	every := r.Every
	if every <= 0 {
		every = ReconcileEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if lease != nil && !lease.Held(ctx) {
			lease.Release()
			lease = nil
		}
		if lease == nil {
			var err error
			if lease, err = r.Log.TryLead(ctx, LeaseName); err != nil || lease == nil {
				continue
			}
			since = r.now().Add(-ReconcileLookback)
			r.logger().Info("delivery log: this worker reconciles the log from history")
		}
		until := r.now()
		res, err := r.Pass(ctx, since.Add(-ReconcileOverlap))
		if err != nil {
			r.logger().Warn("delivery log: reconcile pass failed; the next pass covers its window", "error", err.Error())
			continue
		}
		since = until
		if res.Written > 0 {
			r.logger().Info("delivery log: reconciled from history", "deliveries", res.Deliveries, "written", res.Written)
		}
	}
}

func (r *Reconciler) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

func (r *Reconciler) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// Pass reconciles the deliveries of the task queue closed since since.
func (r *Reconciler) Pass(ctx context.Context, since time.Time) (Result, error) {
	query := fmt.Sprintf("%s AND TaskQueue = '%s' AND ExecutionStatus != 'Running' AND CloseTime >= '%s'",
		workflows.DeliveriesQuery, r.TaskQueue, since.UTC().Format(time.RFC3339Nano))
	var res Result
	var token []byte
	for {
		page, err := r.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: r.Namespace, Query: query, PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return res, fmt.Errorf("list deliveries closed since %s: %w", since.Format(time.RFC3339), err)
		}
		for _, e := range page.Executions {
			if r.seen(e.GetExecution().GetRunId()) {
				continue
			}
			res.Deliveries++
			wrote, err := r.reconcile(ctx, e)
			if err != nil {
				return res, err
			}
			if wrote {
				res.Written++
			}
			r.mark(e.GetExecution().GetRunId(), e.GetCloseTime().AsTime())
		}
		if token = page.NextPageToken; len(token) == 0 {
			break
		}
	}
	r.forget(since)
	return res, nil
}

// seen, mark and forget keep the runs a pass reconciled, so the overlap
// reads each closed delivery's history once.
func (r *Reconciler) seen(runID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.done[runID]
	return ok
}

func (r *Reconciler) mark(runID string, closed time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		r.done = map[string]time.Time{}
	}
	r.done[runID] = closed
}

func (r *Reconciler) forget(before time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, closed := range r.done {
		if closed.Before(before) {
			delete(r.done, id)
		}
	}
}

// reconcile writes one closed delivery's missing attempts and final
// status; it reports whether it wrote anything.
func (r *Reconciler) reconcile(ctx context.Context, e *workflowpb.WorkflowExecutionInfo) (bool, error) {
	attrs := e.GetSearchAttributes()
	account := keyword(attrs, workflows.AccountAttr.GetName())
	if account == "" {
		return false, nil // the log is per account
	}
	id, runID := e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId()
	endpointID, eventID, err := workflows.ParseDeliveryID(id)
	if err != nil {
		return false, nil // not a delivery
	}
	state, status := r.closedState(ctx, id, runID, e.GetStatus())
	if status == "" {
		return false, nil
	}
	d := deliverylog.Delivery{
		AccountID: account, DeliveryID: id, EndpointID: endpointID, EventID: eventID,
		EventName: keyword(attrs, workflows.EventNameAttr.GetName()), MailLogID: keyword(attrs, workflows.MailLogIDAttr.GetName()),
		Status: string(status), CreatedAt: e.GetStartTime().AsTime(),
	}
	if d.EventName == "" {
		d.EventName = state.EventName
	}
	before, err := r.Log.Get(ctx, account, id)
	if errors.Is(err, deliverylog.ErrNotFound) {
		if err := r.Log.UpsertDelivery(ctx, d); err != nil {
			return false, err
		}
	} else if err != nil {
		return false, err
	}
	for _, a := range state.Attempts {
		rec := attemptRecord(account, id, runID, a.Number, a, "", time.Time{})
		if err := r.Log.RecordAttempt(ctx, *rec); err != nil {
			return false, err
		}
	}
	after, err := r.Log.Get(ctx, account, id)
	if err != nil {
		return false, err
	}
	// The final status, unless a later run's attempt is the newest.
	var last time.Time
	if n := len(state.Attempts); n > 0 {
		last = state.Attempts[n-1].StartedAt.Truncate(time.Millisecond)
	}
	if !after.LastAttemptAt.After(last) && (after.Status != string(status) || !after.NextAttemptAt.IsZero()) {
		if err := r.Log.SetStatus(ctx, account, id, string(status), time.Time{}); err != nil {
			return false, err
		}
		return true, nil
	}
	return after.Attempts != before.Attempts || before.DeliveryID == "", nil
}

// closedState reads a closed run's state from its close event and its
// final status from how it closed; "" for a run that is no delivery's.
func (r *Reconciler) closedState(ctx context.Context, id, runID string, s enumspb.WorkflowExecutionStatus) (workflows.DeliveryState, workflows.Status) {
	var st workflows.DeliveryState
	err := r.Client.GetWorkflow(ctx, id, runID).Get(ctx, &st)
	switch s {
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		if err != nil || !st.Status.Final() {
			return st, ""
		}
		return st, st.Status
	case enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT:
		st, _ = workflows.StateFromError(err)
		return st, workflows.StatusFailed
	case enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED:
		st, _ = workflows.StateFromError(err)
		return st, workflows.StatusCanceled
	}
	return st, ""
}

// keyword reads a keyword (or int) search attribute; "" when absent.
func keyword(attrs *commonpb.SearchAttributes, name string) string {
	p := attrs.GetIndexedFields()[name]
	if p == nil {
		return ""
	}
	var s string
	if converter.GetDefaultDataConverter().FromPayload(p, &s) == nil {
		return s
	}
	var n int64
	if converter.GetDefaultDataConverter().FromPayload(p, &n) == nil {
		return strconv.FormatInt(n, 10)
	}
	return ""
}
