package main

import (
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// ReadSignals and fillStep: each failure signal is read by the next workflow
// task started after it; a step counts what happened in its window.
func TestReadRunAndFillStep(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	at := func(ms int) *timestamppb.Timestamp {
		return timestamppb.New(t0.Add(time.Duration(ms) * time.Millisecond))
	}
	ev := func(ms int, typ enumspb.EventType) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventTime: at(ms), EventType: typ}
	}
	signal := func(ms int, name string) *historypb.HistoryEvent {
		e := ev(ms, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
		e.Attributes = &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{
			WorkflowExecutionSignaledEventAttributes: &historypb.WorkflowExecutionSignaledEventAttributes{SignalName: name}}
		return e
	}
	events := []*historypb.HistoryEvent{
		ev(0, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
		ev(0, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED), ev(10, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED), ev(20, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
		signal(100, workflows.FailureSignal), signal(150, workflows.FailureSignal), signal(160, workflows.PauseSignal),
		ev(150, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED), ev(200, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED), ev(230, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
		signal(1500, workflows.FailureSignal),
		ev(1500, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED), ev(1800, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED), ev(1810, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
	}
	rh := testenv.ReadSignals(t0, events, workflows.FailureSignal)
	if len(rh.Signals) != 3 || len(rh.WFTStart) != 3 {
		t.Fatalf("%d failure signals, %d workflow tasks; want 3 and 3", len(rh.Signals), len(rh.WFTStart))
	}
	if rh.Lags[0] != 100*time.Millisecond || rh.Lags[1] != 50*time.Millisecond || rh.Lags[2] != 300*time.Millisecond {
		t.Fatalf("lags %v, want 100ms 50ms 300ms", rh.Lags)
	}
	first := absorbStep{begin: t0, end: t0.Add(time.Second), Seconds: 1}
	fillStep(&first, []testenv.SignalRun{rh})
	if first.Recorded != 2 || first.RecordedPerS != 2 || first.WorkflowTasks != 2 || first.SignalsPerWFT != 1 || first.LagMaxMs != 100 || first.Runs != 1 {
		t.Fatalf("first second: %+v", first)
	}
	second := absorbStep{begin: t0.Add(time.Second), end: t0.Add(2 * time.Second), Seconds: 1}
	fillStep(&second, []testenv.SignalRun{rh})
	if second.Recorded != 1 || second.WorkflowTasks != 1 || second.LagP50Ms != 300 || second.WFTWaitMaxMs != 300 || second.Runs != 0 {
		t.Fatalf("second second: %+v", second)
	}
}
