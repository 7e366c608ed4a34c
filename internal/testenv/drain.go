package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/workflows"
)

// The outage-and-drain scenario's readings: what a worker logs of an
// endpoint's circuit and of its drain, what visibility says is parked, and
// the order the drain delivered in. Tests assert on them; the bench
// reports them.

// SeesCircuit says whether worker w logged that it sees endpointID's circuit in state.
func SeesCircuit(w *Process, endpointID string, state workflows.CircuitState) bool {
	return strings.Contains(w.Log(), fmt.Sprintf(`"msg":"endpoint circuit changed","endpoint_id":%q,"state":%q`, endpointID, state))
}

// CountParked counts the deliveries to endpointID parked on taskQueue.
func CountParked(ctx context.Context, c client.Client, taskQueue, endpointID string) (int64, error) {
	return CountWorkflows(ctx, c, fmt.Sprintf("TaskQueue = %q AND %s = %q AND ExecutionStatus = 'Running' AND %s = %q",
		taskQueue, workflows.EndpointAttr.GetName(), endpointID, workflows.StatusAttr.GetName(), workflows.StatusParked))
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
