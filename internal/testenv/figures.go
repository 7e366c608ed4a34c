package testenv

// The figures a run measures: latency percentiles, the cost of a sample
// of histories, and where the latency of a delivery went.

import (
	"math"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/proto"
)

// Latency summarises a set of latencies in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Min  float64 `json:"min_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Summarize sorts ds (in place) and reads its percentiles.
func Summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Latency{
		P50: ms(Percentile(ds, 50)), P95: ms(Percentile(ds, 95)), P99: ms(Percentile(ds, 99)),
		Min: ms(ds[0]), Max: ms(ds[len(ds)-1]), Mean: ms(sum / time.Duration(len(ds))),
	}
}

// Percentile is the nearest-rank percentile of sorted: the smallest value
// at least p percent of the values are less than or equal to.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)) / 1000 }

// Spread picks k indexes of n evenly spread from the first to the last,
// for a history sample that covers the start, middle and end of a run.
func Spread(n, k int) []int {
	k = min(k, n)
	out := make([]int, 0, k)
	for j := range k {
		if k == 1 {
			out = append(out, 0)
			break
		}
		out = append(out, j*(n-1)/(k-1))
	}
	return out
}

// Ratio is a/b, or 0 when b is 0.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return Round(a/b, 3)
}

// Round rounds x to places decimals.
func Round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

// HistoryFigures are the mean size of a sample of histories, per delivery.
type HistoryFigures struct {
	Sampled int     `json:"sampled"`
	Events  float64 `json:"events_per_delivery"`
	// Bytes sums proto.Size of each HistoryEvent: the encoded history the
	// server stores and sends to every worker that replays it.
	Bytes float64 `json:"bytes_per_delivery"`
	// VisibilityWrites counts the events that write the visibility store:
	// the start, each search-attribute upsert (TemporalChangeVersion's
	// too, which Cloud does not bill) and memo change, and the close.
	VisibilityWrites float64 `json:"visibility_writes_per_delivery"`
}

// HistoryCost measures one history: its events, their encoded bytes, and
// how many of them write visibility.
func HistoryCost(events []*historypb.HistoryEvent) (bytes, visibility int) {
	for _, e := range events {
		bytes += proto.Size(e)
		if writesVisibility(e.GetEventType()) {
			visibility++
		}
	}
	return bytes, visibility
}

// writesVisibility tells the event types after which the server records
// the execution in visibility: its start, an upsert of search attributes
// or memo, and its close, however it closed.
func writesVisibility(t enumspb.EventType) bool {
	switch t {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
		enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
		enumspb.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
		enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		return true
	}
	return false
}

// SummarizeHistories averages the sizes of a sample of histories.
func SummarizeHistories(sample [][]*historypb.HistoryEvent) HistoryFigures {
	f := HistoryFigures{Sampled: len(sample)}
	if len(sample) == 0 {
		return f
	}
	var events, bytes, vis int
	for _, h := range sample {
		b, v := HistoryCost(h)
		events, bytes, vis = events+len(h), bytes+b, vis+v
	}
	n := float64(len(sample))
	f.Events, f.Bytes, f.VisibilityWrites = Round(float64(events)/n, 2), Round(float64(bytes)/n, 1), Round(float64(vis)/n, 2)
	return f
}

// Stages splits the latency of the sampled deliveries at the two moments
// their histories record: the server's start event and the first workflow
// task started (matching handed it to a worker). With eager start the two
// are one write, so start→first task is about zero.
type Stages struct {
	Sampled        int     `json:"sampled"`
	RequestToStart Latency `json:"request_to_start"`
	StartToTask    Latency `json:"start_to_first_task"`
	TaskTo2xx      Latency `json:"first_task_to_2xx"`
}

// SplitLatency reads the stages of each sampled delivery: sample[j] is the
// history of the delivery whose request started at started[j] and whose
// 2xx the receiver verified at delivered[j]. A history without a workflow
// task started is left out.
func SplitLatency(sample [][]*historypb.HistoryEvent, started, delivered []time.Time) Stages {
	var toStart, toTask, to2xx []time.Duration
	for j, h := range sample {
		var begun, task time.Time
		for _, e := range h {
			switch e.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
				begun = e.GetEventTime().AsTime()
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
				task = e.GetEventTime().AsTime()
			}
			if !task.IsZero() {
				break
			}
		}
		if begun.IsZero() || task.IsZero() {
			continue
		}
		toStart = append(toStart, begun.Sub(started[j]))
		toTask = append(toTask, task.Sub(begun))
		to2xx = append(to2xx, delivered[j].Sub(task))
	}
	return Stages{Sampled: len(toStart), RequestToStart: Summarize(toStart), StartToTask: Summarize(toTask), TaskTo2xx: Summarize(to2xx)}
}
