package testenv

import (
	"os"
	"slices"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// History sizes of recorded histories: events, and the events that write
// visibility (start, upserts, close), counted by hand from their types.
func TestHistoryCost(t *testing.T) {
	for _, tt := range []struct {
		file               string
		events, visibility int
	}{
		// start, version upsert (TemporalChangeVersion), completed
		{"delivery_first_try_health_history.json", 8, 3},
		// start, status upsert, completed
		{"delivery_first_try_local-first_history.json", 7, 3},
		// start, upserts of retrying and of delivered (before the close status), completed
		{"delivery_retried_history.json", 35, 4},
	} {
		f, err := os.Open("../../workflows/testdata/" + tt.file)
		if err != nil {
			t.Fatal(err)
		}
		h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		events := h.GetEvents()
		bytes, vis := HistoryCost(events)
		if len(events) != tt.events || vis != tt.visibility {
			t.Errorf("%s: %d events, %d visibility writes; want %d, %d", tt.file, len(events), vis, tt.events, tt.visibility)
		}
		if bytes < 100*len(events)/2 || bytes > 64<<10 {
			t.Errorf("%s: %d bytes for %d events", tt.file, bytes, len(events))
		}
		f2 := SummarizeHistories([][]*historypb.HistoryEvent{events, events})
		if f2.Sampled != 2 || f2.Events != float64(len(events)) || f2.Bytes != float64(bytes) || f2.VisibilityWrites != float64(vis) {
			t.Errorf("%s: summary of twice the same history %+v", tt.file, f2)
		}
	}
}

func TestSplitLatency(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	event := func(typ enumspb.EventType, at time.Duration) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: typ, EventTime: timestamppb.New(t0.Add(at))}
	}
	history := func(begun, task, secondTask time.Duration) []*historypb.HistoryEvent {
		return []*historypb.HistoryEvent{
			event(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, begun),
			event(enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, begun),
			event(enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, task),
			event(enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, secondTask), // a later task is not the first
		}
	}
	sample := [][]*historypb.HistoryEvent{
		history(3*time.Millisecond, 10*time.Millisecond, time.Second),
		{event(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, 0)}, // never handed to a worker: left out
	}
	started := []time.Time{t0, t0}
	delivered := []time.Time{t0.Add(15 * time.Millisecond), t0.Add(time.Hour)}
	got := SplitLatency(sample, started, delivered)
	if got.Sampled != 1 || got.RequestToStart.P50 != 3 || got.StartToTask.P50 != 7 || got.TaskTo2xx.P50 != 5 {
		t.Errorf("splitLatency = %+v, want 1 sampled: 3 ms to start, 7 to the first task, 5 to the 2xx", got)
	}
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond // 1..100ms
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", []time.Duration{7}, 99, 7},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p95 of 1..100", hundred, 95, 95 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"p0 is the min", hundred, 0, 1 * time.Millisecond},
		{"p50 of four rounds down to the second", []time.Duration{1, 2, 3, 4}, 50, 2},
		{"p99 of four is the max", []time.Duration{1, 2, 3, 4}, 99, 4},
	}
	for _, tt := range tests {
		if got := Percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("%s: p%v = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	ds := []time.Duration{40 * time.Millisecond, 10 * time.Millisecond, 30 * time.Millisecond, 20 * time.Millisecond}
	got := Summarize(ds)
	want := Latency{P50: 20, P95: 40, P99: 40, Min: 10, Max: 40, Mean: 25}
	if got != want {
		t.Fatalf("summarize = %+v, want %+v", got, want)
	}
	if (Summarize(nil) != Latency{}) {
		t.Fatal("Summarize(nil) is not zero")
	}
}

func TestSpread(t *testing.T) {
	tests := []struct {
		n, k int
		want []int
	}{
		{10, 0, []int{}},
		{10, 1, []int{0}},
		{10, 2, []int{0, 9}},
		{10, 4, []int{0, 3, 6, 9}},
		{3, 50, []int{0, 1, 2}},
		{2000, 50, nil}, // checked below: 50 distinct, first and last included
	}
	for _, tt := range tests {
		got := Spread(tt.n, tt.k)
		if tt.want != nil && !slices.Equal(got, tt.want) {
			t.Errorf("Spread(%d, %d) = %v, want %v", tt.n, tt.k, got, tt.want)
		}
		if len(got) != min(tt.n, tt.k) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Errorf("Spread(%d, %d) = %v: want %d distinct indexes", tt.n, tt.k, got, min(tt.n, tt.k))
		}
		if len(got) > 1 && (got[0] != 0 || got[len(got)-1] != tt.n-1) {
			t.Errorf("Spread(%d, %d) = %v: want first and last", tt.n, tt.k, got)
		}
	}
}
