package workflows

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
)

// The workflow pages the log with the previous page's cursor, resends each
// page with the recovery's start as the bound, and adds up what the pages
// did; the query answers the same state.
func TestRecoverWorkflowPages(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	RegisterRecover(env)
	pages := map[string]RecoverPage{
		"":   {DeliveryIDs: []string{"ep:e1", "ep:e2"}, Next: "c1"},
		"c1": {DeliveryIDs: []string{"ep:e3"}},
	}
	var cursors []string
	env.RegisterActivityWithOptions(func(_ context.Context, in RecoverListInput) (RecoverPage, error) {
		if in.AccountID != "acct" || in.EndpointID != "ep" || in.Limit != RecoverPageSize || in.Until.IsZero() {
			return RecoverPage{}, fmt.Errorf("list input %+v", in)
		}
		cursors = append(cursors, in.Cursor)
		return pages[in.Cursor], nil
	}, activity.RegisterOptions{Name: RecoverListActivityName})
	var notBefore []time.Time
	env.RegisterActivityWithOptions(func(_ context.Context, in RecoverResendInput) (RecoverResendResult, error) {
		notBefore = append(notBefore, in.NotBefore)
		res := RecoverResendResult{}
		for _, id := range in.DeliveryIDs {
			if id == "ep:e2" {
				res.Skipped = append(res.Skipped, Skipped{DeliveryID: id, Reason: SkipUnsealedInput})
			} else {
				res.Resent++
			}
		}
		return res, nil
	}, activity.RegisterOptions{Name: RecoverResendActivityName})
	since := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	env.ExecuteWorkflow(RecoverWorkflowName, RecoverInput{RecoverID: "rcv_x", AccountID: "acct", EndpointID: "ep", Since: since})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var st RecoverState
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.State != RecoverDone || st.Matched != 3 || st.Resent != 2 || st.Skipped != 1 || len(st.SkippedDeliveries) != 1 {
		t.Errorf("state %+v; want done, 3 matched, 2 resent, 1 skipped", st)
	}
	if fmt.Sprint(cursors) != "[ c1]" {
		t.Errorf("cursors %q; want the first page, then c1", cursors)
	}
	if len(notBefore) != 2 || !notBefore[0].Equal(st.StartedAt) || !notBefore[1].Equal(st.StartedAt) || st.Until != st.StartedAt {
		t.Errorf("resends bounded by %v, until %v; want the recovery's start %v", notBefore, st.Until, st.StartedAt)
	}
	val, err := env.QueryWorkflow(RecoverQuery)
	var q RecoverState
	if err != nil || val.Get(&q) != nil || q.Resent != 2 || q.State != RecoverDone {
		t.Errorf("query: %+v, %v", q, err)
	}
}

// An input that did not arrive sealed starts nothing.
func TestRecoverWorkflowRefusesUnsealed(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	RegisterRecover(env)
	in := RecoverInput{RecoverID: "rcv_x", AccountID: "acct", EndpointID: "ep"}
	in.MarkUnsealed()
	env.ExecuteWorkflow(RecoverWorkflowName, in)
	if env.GetWorkflowError() == nil {
		t.Fatal("an unsealed recover input ran")
	}
}

// RecoverID is stable for one account, endpoint and window and differs
// for any other; it never parses as a delivery id.
func TestRecoverID(t *testing.T) {
	since := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	a := RecoverID("acct", "ep", since, time.Time{})
	if a != RecoverID("acct", "ep", since.In(time.FixedZone("x", 3600)), time.Time{}) || !ValidRecoverID(a) {
		t.Errorf("RecoverID %q not stable across zones or not valid", a)
	}
	for _, b := range []string{RecoverID("acct2", "ep", since, time.Time{}), RecoverID("acct", "ep2", since, time.Time{}),
		RecoverID("acct", "ep", since.Add(time.Second), time.Time{}), RecoverID("acct", "ep", since, since.Add(time.Hour))} {
		if a == b {
			t.Errorf("two recoveries share id %s", a)
		}
	}
	if _, _, err := ParseDeliveryID(RecoverWorkflowID(a)); err == nil {
		t.Errorf("recover workflow id %q parses as a delivery id", RecoverWorkflowID(a))
	}
}
