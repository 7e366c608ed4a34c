package workflows

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Timeline is one run of a delivery rebuilt from its workflow history alone:
// what it was asked to deliver, every attempt, every operator action with
// its reason, and every wait. It is how a closed run is read back (for a
// resend) and the proof that history is a complete audit trail.
type Timeline struct {
	Input    DeliveryInput
	Attempts []Attempt
	Actions  []Action
	Waits    []Wait
	// Result is the run's result, when it completed.
	Result *DeliveryState
}

// Wait is one backoff timer.
type Wait struct {
	Duration  time.Duration
	Summary   string
	StartedAt time.Time
	// Ended is "fired", "canceled" (cut short by retry-now, resend or cancel) or "" while pending.
	Ended string
}

// LastAttempt is the highest attempt number in the run, or FirstAttempt-1 if it made none.
func (t Timeline) LastAttempt() int {
	last := max(t.Input.FirstAttempt, 1) - 1
	if t.Input.Carry != nil { // a run continued as new
		last = max(last, t.Input.Carry.Next-1)
	}
	for _, a := range t.Attempts {
		last = max(last, a.Number)
	}
	return last
}

// TimelineFromHistory rebuilds a run from its history events; dc must be the
// data converter the workers use (it decrypts payloads once encryption is on).
func TimelineFromHistory(events []*historypb.HistoryEvent, dc converter.DataConverter) (Timeline, error) {
	r := &timelineReader{dc: dc, scheduled: map[int64]*Attempt{}, timers: map[string]int{}}
	for _, e := range events {
		if err := r.read(e); err != nil {
			return r.t, err
		}
	}
	if c := r.t.Input.Carry; c != nil { // a run continued as new: the attempts it carried
		r.t.Attempts = append(r.t.Attempts, c.Attempts...)
	}
	for _, a := range r.scheduled {
		if a.Outcome != "" { // an attempt still in flight has no record yet
			r.t.Attempts = append(r.t.Attempts, *a)
		}
	}
	sort.Slice(r.t.Attempts, func(i, j int) bool { return r.t.Attempts[i].Number < r.t.Attempts[j].Number })
	return r.t, nil
}

// timelineReader builds a Timeline one history event at a time.
type timelineReader struct {
	t         Timeline
	dc        converter.DataConverter
	scheduled map[int64]*Attempt // by ActivityTaskScheduled (or marker) event id
	timers    map[string]int     // timer id -> index in t.Waits
}

// read takes in one event: the input, an attempt, an action, a wait or the result.
func (r *timelineReader) read(e *historypb.HistoryEvent) error {
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
		if err := decodeFirst(r.dc, e.GetWorkflowExecutionStartedEventAttributes().GetInput(), &r.t.Input); err != nil {
			return fmt.Errorf("event %d: workflow input: %w", e.GetEventId(), err)
		}
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
		enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED, enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
		enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED, enumspb.EVENT_TYPE_MARKER_RECORDED:
		return r.attempt(e)
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
		r.action(e)
	case enumspb.EVENT_TYPE_TIMER_STARTED, enumspb.EVENT_TYPE_TIMER_FIRED, enumspb.EVENT_TYPE_TIMER_CANCELED:
		r.wait(e)
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
		return r.result(e)
	}
	return nil
}

// attempt reads an event of an attempt: the attempt activity's scheduling
// and outcome, or a local attempt's marker.
func (r *timelineReader) attempt(e *historypb.HistoryEvent) error {
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		attrs := e.GetActivityTaskScheduledEventAttributes()
		if attrs.GetActivityType().GetName() != AttemptActivityName {
			return nil
		}
		var in AttemptInput
		if err := decodeFirst(r.dc, attrs.GetInput(), &in); err != nil {
			return fmt.Errorf("event %d: attempt input: %w", e.GetEventId(), err)
		}
		r.scheduled[e.GetEventId()] = &Attempt{Number: in.Attempt, StartedAt: e.GetEventTime().AsTime()}
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
		attrs := e.GetActivityTaskCompletedEventAttributes()
		if a := r.scheduled[attrs.GetScheduledEventId()]; a != nil {
			n := a.Number
			if err := decodeFirst(r.dc, attrs.GetResult(), a); err != nil {
				return fmt.Errorf("event %d: attempt result: %w", e.GetEventId(), err)
			}
			a.Number = n
			if a.Outcome.Held() { // nothing was sent: not an attempt
				delete(r.scheduled, attrs.GetScheduledEventId())
			}
		}
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
		attrs := e.GetActivityTaskFailedEventAttributes()
		if a := r.scheduled[attrs.GetScheduledEventId()]; a != nil {
			a.Outcome, a.Error = OutcomeWorkerError, failureMessage(r.dc, attrs.GetFailure())
		}
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
		attrs := e.GetActivityTaskTimedOutEventAttributes()
		if a := r.scheduled[attrs.GetScheduledEventId()]; a != nil {
			a.Outcome, a.Error = OutcomeWorkerError, failureMessage(r.dc, attrs.GetFailure())
		}
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
		attrs := e.GetActivityTaskCancelRequestedEventAttributes()
		if a := r.scheduled[attrs.GetScheduledEventId()]; a != nil && a.Outcome == "" {
			a.Outcome = OutcomeCanceled
		}
	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		a, err := localAttempt(e, r.dc, max(r.t.Input.FirstAttempt, 1))
		if err != nil {
			return fmt.Errorf("event %d: %w", e.GetEventId(), err)
		}
		if a != nil && !a.Outcome.Held() {
			r.scheduled[e.GetEventId()] = a
		}
	}
	return nil
}

// action reads an operator's action: a signal, an update, a cancellation.
func (r *timelineReader) action(e *historypb.HistoryEvent) {
	at := e.GetEventTime().AsTime()
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		attrs := e.GetWorkflowExecutionSignaledEventAttributes()
		act := Action{Name: attrs.GetSignalName(), At: at}
		if act.Name == CancelSignal && len(attrs.GetInput().GetPayloads()) > 0 {
			var raw json.RawMessage
			if err := r.dc.FromPayload(attrs.GetInput().GetPayloads()[0], &raw); err == nil {
				act.Reason = cancelReason(raw)
			}
		}
		r.t.Actions = append(r.t.Actions, act)
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
		name := e.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput().GetName()
		r.t.Actions = append(r.t.Actions, Action{Name: name, At: at})
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
		r.t.Actions = append(r.t.Actions, Action{Name: CancelSignal, Reason: "workflow cancellation requested through Temporal", At: at})
	}
}

// wait reads a timer's start and its end.
func (r *timelineReader) wait(e *historypb.HistoryEvent) {
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_TIMER_STARTED:
		attrs := e.GetTimerStartedEventAttributes()
		w := Wait{Duration: attrs.GetStartToFireTimeout().AsDuration(), StartedAt: e.GetEventTime().AsTime()}
		if p := e.GetUserMetadata().GetSummary(); p != nil {
			_ = r.dc.FromPayload(p, &w.Summary) // a summary is a convenience; its absence is not an error
		}
		r.timers[attrs.GetTimerId()] = len(r.t.Waits)
		r.t.Waits = append(r.t.Waits, w)
	case enumspb.EVENT_TYPE_TIMER_FIRED:
		if i, ok := r.timers[e.GetTimerFiredEventAttributes().GetTimerId()]; ok {
			r.t.Waits[i].Ended = "fired"
		}
	case enumspb.EVENT_TYPE_TIMER_CANCELED:
		if i, ok := r.timers[e.GetTimerCanceledEventAttributes().GetTimerId()]; ok {
			r.t.Waits[i].Ended = "canceled"
		}
	}
}

// result reads the run's end: its result, or the state a failed or
// canceled delivery carries in its details.
func (r *timelineReader) result(e *historypb.HistoryEvent) error {
	var payloads *commonpb.Payloads
	what := "workflow result"
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
		payloads = e.GetWorkflowExecutionCompletedEventAttributes().GetResult()
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
		// A failed delivery's state is its failure's details.
		f := e.GetWorkflowExecutionFailedEventAttributes().GetFailure()
		if f.GetApplicationFailureInfo().GetType() != DeliveryFailedType {
			return nil
		}
		payloads, what = f.GetApplicationFailureInfo().GetDetails(), "failed delivery's state"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
		payloads, what = e.GetWorkflowExecutionCanceledEventAttributes().GetDetails(), "canceled delivery's state"
	}
	if payloads == nil && e.GetEventType() != enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED {
		return nil
	}
	var st DeliveryState
	if err := decodeFirst(r.dc, payloads, &st); err != nil {
		return fmt.Errorf("event %d: %s: %w", e.GetEventId(), what, err)
	}
	r.t.Result = &st
	return nil
}

// localAttempt reads a local-activity marker recording an attempt (the
// first of a run started with FirstAttemptLocal, numbered first), or
// returns nil for any other marker.
func localAttempt(e *historypb.HistoryEvent, dc converter.DataConverter, first int) (*Attempt, error) {
	attrs := e.GetMarkerRecordedEventAttributes()
	if attrs.GetMarkerName() != localActivityMarker {
		return nil, nil
	}
	var data struct{ ActivityType string }
	if err := decodeFirst(dc, attrs.GetDetails()["data"], &data); err != nil {
		return nil, fmt.Errorf("local activity marker: %w", err)
	}
	if data.ActivityType != AttemptActivityName {
		return nil, nil
	}
	a := &Attempt{Number: first, StartedAt: e.GetEventTime().AsTime()}
	if f := attrs.GetFailure(); f != nil {
		a.Outcome, a.Error = OutcomeWorkerError, failureMessage(dc, f)
		return a, nil
	}
	if err := decodeFirst(dc, attrs.GetDetails()["result"], a); err != nil {
		return nil, fmt.Errorf("local attempt result: %w", err)
	}
	a.Number = first
	return a, nil
}

// localActivityMarker names the markers the Go SDK records local activities with.
const localActivityMarker = "LocalActivity"

// failureMessage reads a failure's message, which the codec encrypts along
// with its stack trace; decoding works on a copy, leaving the event as fetched.
func failureMessage(dc converter.DataConverter, f *failurepb.Failure) string {
	if f == nil {
		return ""
	}
	f = proto.Clone(f).(*failurepb.Failure)
	converter.DecodeCommonFailureAttributes(dc, f)
	return f.GetMessage()
}

func decodeFirst(dc converter.DataConverter, p *commonpb.Payloads, v any) error {
	if len(p.GetPayloads()) == 0 {
		return fmt.Errorf("no payload")
	}
	return dc.FromPayload(p.GetPayloads()[0], v)
}
