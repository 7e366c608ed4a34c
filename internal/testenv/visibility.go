package testenv

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
)

// CountWorkflows asks visibility how many workflows match query, in c's namespace.
func CountWorkflows(ctx context.Context, c client.Client, query string) (int64, error) {
	resp, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
	if err != nil {
		return 0, fmt.Errorf("count %q: %w", query, err)
	}
	return resp.GetCount(), nil
}

// History is a workflow run's whole history (runID empty: the latest run),
// its payloads as Temporal stores them: the SDK decodes none of them here.
func History(ctx context.Context, c client.Client, workflowID, runID string) ([]*historypb.HistoryEvent, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var events []*historypb.HistoryEvent
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", workflowID, err)
		}
		events = append(events, e)
	}
	return events, nil
}

// PendingTimer finds the last timer started and neither fired nor
// canceled, and when it fires.
func PendingTimer(events []*historypb.HistoryEvent) (time.Time, bool) {
	open := map[string]time.Time{}
	for _, e := range events {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			a := e.GetTimerStartedEventAttributes()
			open[a.GetTimerId()] = e.GetEventTime().AsTime().Add(a.GetStartToFireTimeout().AsDuration())
		case enumspb.EVENT_TYPE_TIMER_FIRED:
			delete(open, e.GetTimerFiredEventAttributes().GetTimerId())
		case enumspb.EVENT_TYPE_TIMER_CANCELED:
			delete(open, e.GetTimerCanceledEventAttributes().GetTimerId())
		}
	}
	var fires time.Time
	for _, t := range open {
		if fires.IsZero() || t.Before(fires) {
			fires = t
		}
	}
	return fires, !fires.IsZero()
}

// SignalRun is what one run's history says about the signals of a name
// and the workflow tasks that read them.
type SignalRun struct {
	Start      time.Time
	Signals    []time.Time     // the signals' event times
	Lags       []time.Duration // signal to the start of the task that read it
	LagAt      []time.Time     // the signal each lag belongs to
	WFTStart   []time.Time
	WFTWait    []time.Duration // schedule to start
	WFTRun     []time.Duration // start to complete
	WFTSignals []int           // signals each workflow task read
}

// ReadSignals reads one run's history: each signal named name, the
// workflow task that read it (the next one started after it), and each
// task's timings.
func ReadSignals(start time.Time, events []*historypb.HistoryEvent, name string) SignalRun {
	rh := SignalRun{Start: start}
	var pending []time.Time // signals not yet read by a task
	var scheduled, startedAt time.Time
	for _, e := range events {
		at := e.GetEventTime().AsTime()
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			if e.GetWorkflowExecutionSignaledEventAttributes().GetSignalName() == name {
				rh.Signals = append(rh.Signals, at)
				pending = append(pending, at)
			}
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			scheduled = at
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			startedAt = at
			rh.WFTStart = append(rh.WFTStart, at)
			rh.WFTWait = append(rh.WFTWait, at.Sub(scheduled))
			rh.WFTSignals = append(rh.WFTSignals, len(pending))
			for _, s := range pending {
				rh.Lags = append(rh.Lags, at.Sub(s))
				rh.LagAt = append(rh.LagAt, s)
			}
			pending = pending[:0]
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
			rh.WFTRun = append(rh.WFTRun, at.Sub(startedAt))
		}
	}
	return rh
}
