// Package billable counts the Temporal Cloud actions a workflow history
// shows, by category, so the cost of a delivery can be measured from a
// sample of histories on any server, the dev server included.
//
// Counted: the workflow start, each activity scheduled, each timer started,
// each signal, each update accepted, each search-attribute upsert except one
// that sets only TemporalChangeVersion (workflow.GetVersion's, which Temporal
// Cloud exempts), and each workflow task whose completion recorded markers,
// local-activity or version markers alike (once per task, however many: Cloud
// counts a task's markers as one action), plus, as "other", child workflow
// starts, signals and cancellations sent to other workflows, Nexus operations
// and memo changes. Actions a history does not show are not counted: activity
// heartbeats (hookrelay's attempts send none in their first second), queries,
// and activity retries by the server's retry policy (hookrelay turns them off).
package billable

import (
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
)

// Category is one kind of billable action.
type Category string

// The categories, in the order reports list them.
const (
	WorkflowStarted       Category = "workflow_started"
	ActivityScheduled     Category = "activity_scheduled"
	TimerStarted          Category = "timer_started"
	Signal                Category = "signal"
	Update                Category = "update"
	SearchAttributeUpsert Category = "search_attribute_upsert"
	// LocalActivityTask is a workflow task whose completion recorded one or
	// more markers (local activities, versions).
	LocalActivityTask Category = "local_activity_workflow_task"
	Other             Category = "other"
)

// Categories lists every category in report order.
var Categories = []Category{WorkflowStarted, ActivityScheduled, TimerStarted, Signal, Update, SearchAttributeUpsert, LocalActivityTask, Other}

// changeVersionAttribute is the search attribute workflow.GetVersion
// upserts; Temporal Cloud does not bill its upsert.
const changeVersionAttribute = "TemporalChangeVersion"

// Actions counts one history's billable actions by category.
type Actions map[Category]int

// Total sums every category.
func (a Actions) Total() int {
	n := 0
	for _, v := range a {
		n += v
	}
	return n
}

// Count reads one run's history.
func Count(events []*historypb.HistoryEvent) Actions {
	a := Actions{}
	markerTasks := map[int64]bool{} // by WorkflowTaskCompleted event id
	for _, e := range events {
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
			a[WorkflowStarted]++
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			a[ActivityScheduled]++
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			a[TimerStarted]++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
			a[Signal]++
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			a[Update]++
		case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
			fields := e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
			if _, version := fields[changeVersionAttribute]; !version || len(fields) > 1 {
				a[SearchAttributeUpsert]++
			}
		case enumspb.EVENT_TYPE_MARKER_RECORDED:
			task := e.GetMarkerRecordedEventAttributes().GetWorkflowTaskCompletedEventId()
			if !markerTasks[task] {
				markerTasks[task] = true
				a[LocalActivityTask]++
			}
		case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
			enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
			enumspb.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
			enumspb.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED,
			enumspb.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
			a[Other]++
		}
	}
	return a
}

// Summary is the average over a sample of histories.
type Summary struct {
	Sampled int `json:"sampled"`
	// PerDelivery is the mean total per history.
	PerDelivery float64 `json:"per_delivery"`
	Min         int     `json:"min"`
	Max         int     `json:"max"`
	// Breakdown is the mean per category; every category is present.
	Breakdown map[Category]float64 `json:"breakdown"`
}

// Summarize averages the counts of a sample.
func Summarize(sample []Actions) Summary {
	s := Summary{Sampled: len(sample), Breakdown: map[Category]float64{}}
	for _, c := range Categories {
		s.Breakdown[c] = 0
	}
	if len(sample) == 0 {
		return s
	}
	s.Min = sample[0].Total()
	total := 0
	for _, a := range sample {
		t := a.Total()
		total += t
		s.Min, s.Max = min(s.Min, t), max(s.Max, t)
		for c, v := range a {
			s.Breakdown[c] += float64(v)
		}
	}
	n := float64(len(sample))
	s.PerDelivery = float64(total) / n
	for c := range s.Breakdown {
		s.Breakdown[c] /= n
	}
	return s
}
