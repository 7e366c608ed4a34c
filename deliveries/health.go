package deliveries

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/hookrelay/hookrelay/workflows"
)

// EndpointHealth reports an endpoint's circuit: from its health workflow
// while one runs, else healthy, with the count of its parked deliveries.
func (c *Client) EndpointHealth(ctx context.Context, endpointID string) (workflows.HealthState, error) {
	id := workflows.HealthWorkflowID(endpointID)
	desc, err := c.Temporal.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return c.idleHealth(ctx, endpointID)
	case err != nil:
		return workflows.HealthState{}, fmt.Errorf("endpoint %s: describe health: %w", endpointID, unavailable(err))
	case desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return c.idleHealth(ctx, endpointID)
	}
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	val, err := c.Temporal.QueryWorkflow(qctx, id, "", workflows.HealthQuery)
	if err != nil {
		if qctx.Err() != nil {
			return workflows.HealthState{}, fmt.Errorf("endpoint %s: %w within %s", endpointID, ErrNoWorker, queryTimeout)
		}
		return workflows.HealthState{}, fmt.Errorf("endpoint %s: health query: %w", endpointID, unavailable(err))
	}
	var st workflows.HealthState
	if err := val.Get(&st); err != nil {
		return st, fmt.Errorf("endpoint %s: decode health: %w", endpointID, err)
	}
	return st, nil
}

// idleHealth is the health of an endpoint no health workflow watches:
// healthy; parked deliveries are counted all the same.
func (c *Client) idleHealth(ctx context.Context, endpointID string) (workflows.HealthState, error) {
	st := workflows.HealthState{EndpointID: endpointID, State: workflows.CircuitHealthy}
	resp, err := c.Temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: workflows.ParkedQuery(endpointID)})
	if err != nil {
		return st, fmt.Errorf("endpoint %s: count parked: %w", endpointID, unavailable(err))
	}
	st.Parked = int(resp.GetCount())
	return st, nil
}

// SteerEndpoint sends an operator's pause, resume, enable or disable, with
// its reason, to the endpoint's health workflow (starting it if none runs),
// and returns the health once the workflow has taken it.
func (c *Client) SteerEndpoint(ctx context.Context, endpointID, signal, reason string) (workflows.HealthState, error) {
	switch signal {
	case workflows.PauseSignal, workflows.ResumeSignal, workflows.EnableSignal, workflows.DisableSignal:
	default:
		return workflows.HealthState{}, fmt.Errorf("unknown endpoint command %q", signal)
	}
	ep, err := c.Endpoints.Resolve(ctx, endpointID)
	if err != nil {
		return workflows.HealthState{}, fmt.Errorf("endpoint %s: %w", endpointID, err)
	}
	before, err := c.EndpointHealth(ctx, endpointID)
	if err != nil {
		return before, err
	}
	var since time.Time // the newest action before this one
	if n := len(before.Actions); n > 0 {
		since = before.Actions[n-1].At
	}
	if _, err := c.Temporal.SignalWithStartWorkflow(ctx, workflows.HealthWorkflowID(ep.ID), signal, map[string]string{"reason": reason},
		workflows.HealthStartOptions(ep, c.TaskQueue), workflows.HealthWorkflowName,
		workflows.HealthInput{EndpointID: ep.ID, AccountID: ep.AccountID, Circuit: ep.Circuit}); err != nil {
		return workflows.HealthState{}, fmt.Errorf("endpoint %s: %s: %w", endpointID, signal, unavailable(err))
	}
	// The signal is in history; the query answers once a workflow task has applied it.
	for {
		st, err := c.EndpointHealth(ctx, endpointID)
		if err != nil {
			return st, err
		}
		for _, a := range st.Actions {
			if a.Name == signal && a.At.After(since) {
				return st, nil
			}
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("endpoint %s: %s sent, not yet applied: %w", endpointID, signal, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// EndpointStates reads, from visibility alone (no query, so no action),
// each endpoint's circuit state and how many of its deliveries are parked.
func (c *Client) EndpointStates(ctx context.Context, ids []string) (map[string]workflows.HealthState, error) {
	out := make(map[string]workflows.HealthState, len(ids))
	for _, id := range ids {
		out[id] = workflows.HealthState{EndpointID: id, State: workflows.CircuitHealthy}
	}
	var token []byte
	for {
		resp, err := c.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query:         workflows.UnhealthyCircuitsQuery(c.TaskQueue),
			NextPageToken: token,
		})
		if err != nil {
			return out, fmt.Errorf("list endpoint circuits: %w", unavailable(err))
		}
		for _, e := range resp.GetExecutions() {
			id, _ := strings.CutPrefix(e.GetExecution().GetWorkflowId(), workflows.HealthWorkflowID(""))
			st, ok := out[id]
			if !ok {
				continue
			}
			st.State = workflows.CircuitOf(e.GetSearchAttributes())
			out[id] = st
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	for _, id := range ids {
		idle, err := c.idleHealth(ctx, id)
		if err != nil {
			return out, err
		}
		st := out[id]
		st.Parked = idle.Parked
		out[id] = st
	}
	return out, nil
}

// ParkedCounts counts, from visibility, the parked deliveries of each of
// accountID's endpoints ids: the query names the account too, so a count
// never includes another account's deliveries. Ids not of the form
// [a-z0-9_-] are left out.
func (c *Client) ParkedCounts(ctx context.Context, accountID string, ids []string) (map[string]int, error) {
	f := Filter{Account: accountID, Status: string(workflows.StatusParked)}
	out := make(map[string]int, len(ids))
	for _, id := range ids {
		f.Endpoint = id
		q, err := f.Query()
		if err != nil {
			continue
		}
		resp, err := c.Temporal.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: workflows.DeliveriesQuery + " AND " + q})
		if err != nil {
			return out, fmt.Errorf("endpoint %s: count parked: %w", id, unavailable(err))
		}
		out[id] = int(resp.GetCount())
	}
	return out, nil
}
