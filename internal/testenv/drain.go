package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/workflows"
)

// Outage drives the outage-and-drain scenario on one endpoint: its
// receiver answers 503 (Healable) while deliveries arrive, the circuit
// opens and they park; healed, a probe succeeds and the health workflow
// drains them, oldest event first. It reads what the scenario shows (the
// health workflow, what visibility says of the deliveries, what workers
// log of the circuit and the drain, the order of the drain). Tests assert
// on the readings; the bench reports them.
type Outage struct {
	Client     client.Client // decrypts, as workers do
	Workers    []*Process
	EndpointID string
	TaskQueue  string // the deliveries', one endpoint's only
}

// HealthState queries the endpoint's health workflow.
func (o Outage) HealthState(ctx context.Context) (workflows.HealthState, error) {
	var st workflows.HealthState
	id := workflows.HealthWorkflowID(o.EndpointID)
	v, err := o.Client.QueryWorkflow(ctx, id, "", workflows.HealthQuery)
	if err == nil {
		err = v.Get(&st)
	}
	if err != nil {
		return st, fmt.Errorf("query %s: %w", id, err)
	}
	return st, nil
}

// WaitOpen waits until the health workflow says the circuit is open and
// every worker logged that it sees it so.
func (o Outage) WaitOpen(ctx context.Context, timeout time.Duration) error {
	return Wait(ctx, timeout, "the circuit of "+o.EndpointID+" open, every worker seeing it", func() error {
		seen := 0
		for _, w := range o.Workers {
			if SeesCircuit(w, o.EndpointID, workflows.CircuitOpen) {
				seen++
			}
		}
		st, err := o.HealthState(ctx)
		if err == nil && (st.State != workflows.CircuitOpen || seen < len(o.Workers)) {
			err = fmt.Errorf("state %q, %d of %d workers see it open", st.State, seen, len(o.Workers))
		}
		return err
	})
}

// Deliveries counts the deliveries on the task queue by where they are.
type Deliveries struct {
	Parked   int64
	Retrying int64 // waiting in their retry schedule
	Closed   int64
}

// Count asks visibility where the deliveries are.
func (o Outage) Count(ctx context.Context) (Deliveries, error) {
	var d Deliveries
	q := fmt.Sprintf("TaskQueue = %q AND %s", o.TaskQueue, workflows.DeliveriesQuery)
	var errs [3]error
	d.Parked, errs[0] = CountParked(ctx, o.Client, o.TaskQueue, o.EndpointID)
	d.Retrying, errs[1] = CountWorkflows(ctx, o.Client, q+" AND "+workflows.StatusRetrying.VisibilityQuery())
	d.Closed, errs[2] = CountWorkflows(ctx, o.Client, q+" AND ExecutionStatus != 'Running'")
	return d, errors.Join(errs[:]...)
}

// HealthRun is one run of a health workflow.
type HealthRun struct {
	RunID         string
	Start         time.Time
	Status        enumspb.WorkflowExecutionStatus
	HistoryLength int64
}

// HealthRuns lists every run of the endpoint's health workflow, oldest
// first; a running run's history length comes from describing it
// (visibility lags).
func (o Outage) HealthRuns(ctx context.Context) ([]HealthRun, error) {
	id := workflows.HealthWorkflowID(o.EndpointID)
	var out []HealthRun
	var token []byte
	for {
		resp, err := o.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = %q", id), PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list the runs of %s: %w", id, err)
		}
		for _, e := range resp.GetExecutions() {
			r := HealthRun{RunID: e.GetExecution().GetRunId(), Start: e.GetStartTime().AsTime(), Status: e.GetStatus(), HistoryLength: e.GetHistoryLength()}
			if r.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				if d, err := o.Client.DescribeWorkflowExecution(ctx, id, r.RunID); err == nil {
					r.HistoryLength = d.GetWorkflowExecutionInfo().GetHistoryLength()
				}
			}
			out = append(out, r)
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

// SeesCircuit says whether worker w logged that it sees endpointID's circuit in state.
func SeesCircuit(w *Process, endpointID string, state workflows.CircuitState) bool {
	return strings.Contains(w.Log(), fmt.Sprintf(`"msg":"endpoint circuit changed","endpoint_id":%q,"state":%q`, endpointID, state))
}

// CountParked counts the deliveries to endpointID parked on taskQueue.
func CountParked(ctx context.Context, c client.Client, taskQueue, endpointID string) (int64, error) {
	return CountWorkflows(ctx, c, fmt.Sprintf("TaskQueue = %q AND %s", taskQueue, workflows.ParkedQuery(endpointID)))
}

// ReleasesLogged reads the workers' "released parked deliveries" lines:
// how many release activities (probes and drains) ran, and the most
// releases a drain (a release of more than one) had in flight at once.
func ReleasesLogged(workers ...*Process) (releases, maxInFlight int) {
	for _, w := range workers {
		for _, l := range strings.Split(w.Log(), "\n") {
			var line struct {
				Msg         string `json:"msg"`
				Released    int    `json:"released"`
				MaxInFlight int    `json:"max_in_flight"`
			}
			if json.Unmarshal([]byte(l), &line) != nil || line.Msg != "released parked deliveries" {
				continue
			}
			releases++
			if line.Released > 1 {
				maxInFlight = max(maxInFlight, line.MaxInFlight)
			}
		}
	}
	return releases, maxInFlight
}

// Overtaken reads a delivery order (event indexes, in the order they
// arrived): how many arrived after some later event had, and the most
// later events that arrived before one. A drain with k releases in flight
// keeps event-time order when most is below k.
func Overtaken(order []int) (outOfOrder, most int) {
	if len(order) == 0 {
		return 0, 0
	}
	// A Fenwick tree over event indexes counts the later events seen so far.
	size := slices.Max(order) + 2
	tree := make([]int, size+1)
	add := func(i int) {
		for i++; i <= size; i += i & -i {
			tree[i]++
		}
	}
	upTo := func(i int) int { // events seen with index <= i
		s := 0
		for i++; i > 0; i -= i & -i {
			s += tree[i]
		}
		return s
	}
	for seen, i := range order {
		if later := seen - upTo(i); later > 0 {
			outOfOrder++
			most = max(most, later)
		}
		add(i)
	}
	return outOfOrder, most
}

// DrainReading is what a receiver saw of a drain, from the first 2xx after
// it healed (the probe's) to the last.
type DrainReading struct {
	FirstAfterHealSeconds float64 `json:"first_2xx_after_heal_seconds"` // the heal to the first 2xx (the probe)
	Seconds               float64 `json:"seconds"`                      // first 2xx to the last
	PerSecond             float64 `json:"per_second"`
	// Clean deliveries are those not left out: their order is the drain's.
	Clean         int     `json:"clean_deliveries"`
	CleanSeconds  float64 `json:"clean_seconds"` // first to last 2xx of the clean ones
	CleanPerSec   float64 `json:"clean_per_second"`
	OutOfOrder    int     `json:"out_of_order"` // clean deliveries some later event overtook (Overtaken)
	MaxOvertaken  int     `json:"max_overtaken"`
	SecondsByTens []int   `json:"deliveries_per_10s"` // 2xx per 10 s of the drain
}

// ReadDrain reads a drain from delivered[i], when event i (in event-time
// order) was first answered 2xx (zero: never); leaveOut(i) keeps event i
// out of the order (a delivery answered 503 before, or the probe).
func ReadDrain(delivered []time.Time, leaveOut func(i int) bool, healAt time.Time) DrainReading {
	type hit struct {
		at    time.Time
		index int
	}
	var hits []hit
	for i, at := range delivered {
		if !at.IsZero() {
			hits = append(hits, hit{at, i})
		}
	}
	var d DrainReading
	if len(hits) == 0 {
		return d
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].at.Before(hits[j].at) })
	first, last := hits[0].at, hits[len(hits)-1].at
	d.FirstAfterHealSeconds = Round(first.Sub(healAt).Seconds(), 3)
	d.Seconds = Round(last.Sub(first).Seconds(), 3)
	if d.Seconds > 0 {
		d.PerSecond = Round(float64(len(hits)-1)/d.Seconds, 1)
	}
	var order []int
	var cleanFirst, cleanLast time.Time
	for _, x := range hits {
		bucket := int(x.at.Sub(first) / (10 * time.Second))
		for len(d.SecondsByTens) <= bucket {
			d.SecondsByTens = append(d.SecondsByTens, 0)
		}
		d.SecondsByTens[bucket]++
		if leaveOut(x.index) {
			continue
		}
		if cleanFirst.IsZero() {
			cleanFirst = x.at
		}
		cleanLast = x.at
		order = append(order, x.index)
	}
	d.Clean = len(order)
	d.CleanSeconds = Round(cleanLast.Sub(cleanFirst).Seconds(), 3)
	if d.CleanSeconds > 0 {
		d.CleanPerSec = Round(float64(d.Clean-1)/d.CleanSeconds, 1)
	}
	d.OutOfOrder, d.MaxOvertaken = Overtaken(order)
	return d
}
