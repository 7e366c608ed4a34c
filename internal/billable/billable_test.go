package billable

import (
	"os"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
)

// The histories recorded from the dev server for the replay test, counted
// by hand from their event types.
func TestCountRecordedHistories(t *testing.T) {
	tests := []struct {
		file  string
		want  Actions
		total int
	}{
		// 410 at once: start, one attempt, the final status upsert.
		{"delivery_gone_history.json", Actions{WorkflowStarted: 1, ActivityScheduled: 1, SearchAttributeUpsert: 1}, 3},
		// Two 503s, then 200: three attempts, two waits, retrying and delivered.
		{"delivery_retried_history.json", Actions{WorkflowStarted: 1, ActivityScheduled: 3, TimerStarted: 2, SearchAttributeUpsert: 2}, 8},
		// Canceled by signal while waiting.
		{"delivery_canceled_history.json", Actions{WorkflowStarted: 1, ActivityScheduled: 1, TimerStarted: 1, Signal: 1, SearchAttributeUpsert: 2}, 6},
		// retry-now as an update during a wait.
		{"delivery_retry_now_history.json", Actions{WorkflowStarted: 1, ActivityScheduled: 2, TimerStarted: 1, Update: 1, SearchAttributeUpsert: 2}, 7},
		// A resend run: signal-with-start counts the start and the signal.
		{"delivery_resent_history.json", Actions{WorkflowStarted: 1, Signal: 1, ActivityScheduled: 1, SearchAttributeUpsert: 1}, 4},
		// First try, local attempt, close status (behaviour version 3): the
		// two actions of issue 13, the version marker costing none.
		{"delivery_first_try_probe-parks-again_history.json", Actions{WorkflowStarted: 1, LocalActivityTask: 1}, 2},
		// A retried delivery (behaviour version 3): the local first try
		// fails (retrying, its timer); retry-now as an update cuts the wait
		// short and the attempt it makes delivers.
		{"delivery_retry_now_probe-parks-again_history.json",
			Actions{WorkflowStarted: 1, LocalActivityTask: 1, SearchAttributeUpsert: 1, TimerStarted: 1, Update: 1, ActivityScheduled: 1}, 6},
		// The same two with the delivery log's facts in each attempt's
		// input: the log is written by the attempt itself, so neither costs
		// an action more.
		{"delivery_first_try_log-fairness_history.json", Actions{WorkflowStarted: 1, LocalActivityTask: 1}, 2},
		{"delivery_retry_now_log-fairness_history.json",
			Actions{WorkflowStarted: 1, LocalActivityTask: 1, SearchAttributeUpsert: 1, TimerStarted: 1, Update: 1, ActivityScheduled: 1}, 6},
		// With the bounds on operator signals: a first try still costs 2,
		// and a retry-now (now an update in every form) 6.
		{"delivery_first_try_signal-bounds_history.json", Actions{WorkflowStarted: 1, LocalActivityTask: 1}, 2},
		{"delivery_retry_now_signal-bounds_history.json",
			Actions{WorkflowStarted: 1, LocalActivityTask: 1, SearchAttributeUpsert: 1, TimerStarted: 1, Update: 1, ActivityScheduled: 1}, 6},
		// With throttling in the attempt: a first try under its limits
		// still costs 2; one throttled by its endpoint's rate_limit (its
		// local first try sends nothing) costs the timer to its reserved
		// request time and the ordinary attempt then: 4.
		{"delivery_first_try_throttle_history.json", Actions{WorkflowStarted: 1, LocalActivityTask: 1}, 2},
		{"delivery_rate_throttled_throttle_history.json", Actions{WorkflowStarted: 1, LocalActivityTask: 1, TimerStarted: 1, ActivityScheduled: 1}, 4},
		// Recorded with the signal bounds and throttling together: the same.
		{"delivery_first_try_merged_history.json", Actions{WorkflowStarted: 1, LocalActivityTask: 1}, 2},
		{"delivery_retry_now_merged_history.json",
			Actions{WorkflowStarted: 1, LocalActivityTask: 1, SearchAttributeUpsert: 1, TimerStarted: 1, Update: 1, ActivityScheduled: 1}, 6},
		{"delivery_rate_throttled_merged_history.json", Actions{WorkflowStarted: 1, LocalActivityTask: 1, TimerStarted: 1, ActivityScheduled: 1}, 4},
		// Recorded with retries heartbeating every 5 s against 15 s: a
		// heartbeat is not in history, so the same counts.
		{"delivery_first_try_heartbeat_history.json", Actions{WorkflowStarted: 1, LocalActivityTask: 1}, 2},
		{"delivery_retry_now_heartbeat_history.json",
			Actions{WorkflowStarted: 1, LocalActivityTask: 1, SearchAttributeUpsert: 1, TimerStarted: 1, Update: 1, ActivityScheduled: 1}, 6},
		// A first try to a slow endpoint (timeout 20 s, answering after
		// 9 s), whose workflow task timeout is fitted to its timeout: one
		// workflow task, no heartbeat task, still 2.
		{"delivery_first_try_slow_fitted-task_history.json", Actions{WorkflowStarted: 1, LocalActivityTask: 1}, 2},
		// A failed first try opens the circuit (retrying, 1s), the retry
		// parks (its park-limit timer, parked); the first probe fails and
		// parks it again with no timer or upsert; the second delivers it.
		{"delivery_probe_parked_again_probe-parks-again_history.json",
			Actions{WorkflowStarted: 1, LocalActivityTask: 1, SearchAttributeUpsert: 2, TimerStarted: 2, ActivityScheduled: 3, Update: 2}, 11},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open("../../workflows/testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
			if err != nil {
				t.Fatalf("%s: %v", tt.file, err)
			}
			got := Count(h.GetEvents())
			for _, c := range Categories {
				if got[c] != tt.want[c] {
					t.Errorf("%s: %d, want %d", c, got[c], tt.want[c])
				}
			}
			if got.Total() != tt.total {
				t.Errorf("total %d, want %d", got.Total(), tt.total)
			}
		})
	}
}

// A workflow task that records several local-activity markers counts once;
// markers of other names are not actions.
func TestCountLocalActivityTasks(t *testing.T) {
	ev := func(id int64, typ enumspb.EventType) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventId: id, EventType: typ}
	}
	marker := func(id int64, name string, completedBy int64) *historypb.HistoryEvent {
		e := ev(id, enumspb.EVENT_TYPE_MARKER_RECORDED)
		e.Attributes = &historypb.HistoryEvent_MarkerRecordedEventAttributes{MarkerRecordedEventAttributes: &historypb.MarkerRecordedEventAttributes{
			MarkerName: name, WorkflowTaskCompletedEventId: completedBy,
		}}
		return e
	}
	history := []*historypb.HistoryEvent{
		ev(1, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
		ev(2, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
		ev(3, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED),
		ev(4, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
		marker(5, "LocalActivity", 4),
		marker(6, "LocalActivity", 4),
		marker(7, "Version", 4),
		upsert(8, "HookrelayStatus"),
		ev(9, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
		ev(10, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED),
		ev(11, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
		marker(12, "LocalActivity", 11),
		ev(13, enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
		ev(14, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED),
		ev(15, enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
		marker(16, "Version", 15), // a version marker alone in its task is one action
		upsert(17, "TemporalChangeVersion"),
		upsert(18, "TemporalChangeVersion", "HookrelayStatus"),
		ev(19, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED),
	}
	got := Count(history)
	if got[LocalActivityTask] != 3 || got[WorkflowStarted] != 1 || got[SearchAttributeUpsert] != 2 || got.Total() != 6 {
		t.Fatalf("got %v (total %d), want 3 marker tasks, 1 start, 2 upserts (the version-only one is free): 6", got, got.Total())
	}
}

// upsert is an UpsertWorkflowSearchAttributes event setting names.
func upsert(id int64, names ...string) *historypb.HistoryEvent {
	fields := map[string]*commonpb.Payload{}
	for _, n := range names {
		fields[n] = &commonpb.Payload{}
	}
	return &historypb.HistoryEvent{EventId: id, EventType: enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
		Attributes: &historypb.HistoryEvent_UpsertWorkflowSearchAttributesEventAttributes{UpsertWorkflowSearchAttributesEventAttributes: &historypb.UpsertWorkflowSearchAttributesEventAttributes{
			SearchAttributes: &commonpb.SearchAttributes{IndexedFields: fields},
		}}}
}

func TestSummarize(t *testing.T) {
	s := Summarize([]Actions{
		{WorkflowStarted: 1, ActivityScheduled: 1, SearchAttributeUpsert: 1},
		{WorkflowStarted: 1, ActivityScheduled: 2, TimerStarted: 1, SearchAttributeUpsert: 2},
	})
	if s.Sampled != 2 || s.PerDelivery != 4.5 || s.Min != 3 || s.Max != 6 {
		t.Fatalf("summary %+v", s)
	}
	if s.Breakdown[ActivityScheduled] != 1.5 || s.Breakdown[TimerStarted] != 0.5 || s.Breakdown[Signal] != 0 {
		t.Fatalf("breakdown %v", s.Breakdown)
	}
	if _, ok := s.Breakdown[Other]; !ok {
		t.Fatal("breakdown lacks a category")
	}
	if empty := Summarize(nil); empty.PerDelivery != 0 || len(empty.Breakdown) != len(Categories) {
		t.Fatalf("empty summary %+v", empty)
	}
}
