package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Recovery: RecoverWorkflow resends, once each, every delivery of one
// endpoint that ended failed (endpoint_unavailable after the park limit
// included) and was created in a window, as the delivery log lists them,
// paced at the endpoint's drain_per_second. It runs on RecoverTaskQueue,
// which only workers with a delivery log poll.
const (
	RecoverWorkflowName = "RecoverWorkflow"
	// RecoverQuery answers the recovery's RecoverState while it runs.
	RecoverQuery = "recover"
	// Recover activities: a page of the log's failed deliveries, and the
	// resend of one such page.
	RecoverListActivityName   = "ListFailedDeliveries"
	RecoverResendActivityName = "ResendFailedDeliveries"
	// RecoverPageSize is how many deliveries one list activity reads, and
	// one resend activity resends.
	RecoverPageSize = 100
	// MaxSkippedListed bounds the skipped deliveries a recovery lists by id
	// (it counts them all).
	MaxSkippedListed = 100
	// recoverPagesPerRun bounds a run's history (a page is about a dozen
	// events): past it the recovery continues as new with its state.
	recoverPagesPerRun = 200
)

// Recovery states.
const (
	RecoverRunning  = "running"
	RecoverDone     = "done"
	RecoverCanceled = "canceled"
)

// What a recovery did with a matched delivery: resent it, found it resent
// already (since the recovery started), or skipped it for a reason.
const (
	RecoverResent        = "resent"
	RecoverAlreadyResent = "already_resent"

	// SkipUnsealedInput: its input did not arrive sealed by the payload
	// codec (a plaintext start); a recovery never re-seals.
	SkipUnsealedInput = "unsealed_input"
	// SkipNotFailed: its latest run is not failed any more (resent, or
	// running) since the log listed it, by someone other than this recovery.
	SkipNotFailed = "not_failed"
	// SkipHistoryGone: Temporal no longer has the delivery (closed past
	// the namespace's retention), so its event cannot be read to resend.
	SkipHistoryGone = "history_gone"
)

// RecoverTaskQueue is the task queue of the recoveries of the deliveries
// on deliveryQueue: only workers with a delivery log poll it.
func RecoverTaskQueue(deliveryQueue string) string { return deliveryQueue + "-recover" }

var recoverIDPattern = regexp.MustCompile(`^rcv_[0-9a-f]{32}$`)

// RecoverID is a recovery's id: a hash of the account, the endpoint and
// the window (a zero until is an open window), so the same request twice
// is the same recovery. It names nothing personal.
func RecoverID(accountID, endpointID string, since, until time.Time) string {
	u := "open"
	if !until.IsZero() {
		u = strconv.FormatInt(until.UnixNano(), 10)
	}
	sum := sha256.Sum256([]byte("hookrelay-recover-v1\x00" + accountID + "\x00" + endpointID + "\x00" +
		strconv.FormatInt(since.UnixNano(), 10) + "\x00" + u))
	return "rcv_" + hex.EncodeToString(sum[:16])
}

// ValidRecoverID reports whether id has RecoverID's shape.
func ValidRecoverID(id string) bool { return recoverIDPattern.MatchString(id) }

// RecoverWorkflowID is a recovery's workflow ID. It has no ':', so it
// never parses as a delivery id.
func RecoverWorkflowID(recoverID string) string { return "recover/" + recoverID }

// RecoverInput starts (or continues as new) a recovery.
type RecoverInput struct {
	Provenance
	RecoverID  string    `json:"recover_id"`
	AccountID  string    `json:"account_id"`
	EndpointID string    `json:"endpoint_id"`
	Since      time.Time `json:"since"`
	// Until bounds the window (exclusive); zero: up to when the recovery
	// started.
	Until time.Time `json:"until,omitzero"`
	// State and Cursor carry a recovery across continue-as-new.
	State  *RecoverState `json:"state,omitempty"`
	Cursor string        `json:"cursor,omitempty"`
}

// Skipped is a matched delivery a recovery did not resend, and why.
type Skipped struct {
	DeliveryID string `json:"delivery_id"`
	Reason     string `json:"reason"`
}

// RecoverState is where a recovery stands: the RecoverQuery's answer and
// the workflow's result.
type RecoverState struct {
	RecoverID  string    `json:"recover_id"`
	AccountID  string    `json:"account_id"`
	EndpointID string    `json:"endpoint_id"`
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"`
	State      string    `json:"state"`
	// Matched counts the failed deliveries of the window the log listed;
	// Resent those resent; Skipped those not resent, the first
	// MaxSkippedListed of them listed in SkippedDeliveries.
	Matched           int       `json:"matched"`
	Resent            int       `json:"resent"`
	Skipped           int       `json:"skipped"`
	SkippedDeliveries []Skipped `json:"skipped_deliveries,omitempty"`
	// StartedAt is when the recovery started: a delivery whose latest run
	// started since was resent since, and is not resent again.
	StartedAt time.Time `json:"started_at"`
}

// RecoverListInput asks for a page of an endpoint's failed deliveries
// created in [Since, Until), newest first, after Cursor.
type RecoverListInput struct {
	Provenance
	AccountID  string    `json:"account_id"`
	EndpointID string    `json:"endpoint_id"`
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"`
	Cursor     string    `json:"cursor,omitempty"`
	Limit      int       `json:"limit"`
}

// RecoverPage is a page of failed deliveries; Next is "" on the last.
type RecoverPage struct {
	DeliveryIDs []string `json:"delivery_ids"`
	Next        string   `json:"next,omitempty"`
}

// RecoverResendInput asks to resend a page of deliveries, paced at the
// endpoint's drain rate, each at most once: one whose latest run started
// at or after NotBefore (the recovery's start) was resent already.
type RecoverResendInput struct {
	Provenance
	RecoverID   string    `json:"recover_id"`
	AccountID   string    `json:"account_id"`
	EndpointID  string    `json:"endpoint_id"`
	DeliveryIDs []string  `json:"delivery_ids"`
	NotBefore   time.Time `json:"not_before"`
}

// RecoverResendResult is what a resend activity did with its page.
type RecoverResendResult struct {
	Resent  int       `json:"resent"`
	Skipped []Skipped `json:"skipped,omitempty"`
}

// RegisterRecover registers RecoverWorkflow under its contract name.
func RegisterRecover(r interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
}) {
	r.RegisterWorkflowWithOptions(RecoverWorkflow, workflow.RegisterOptions{Name: RecoverWorkflowName})
}

// Activity options of a recovery. A resend page may take long (100
// deliveries at the lowest drain rate, 0.1/s, is about 17 minutes); its
// heartbeats, before and after each delivery and every 5 s while paced,
// carry its progress, so a lost worker's page resumes on another within
// the heartbeat timeout.
var (
	recoverListOptions = workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	}
	recoverResendOptions = workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Hour,
		HeartbeatTimeout:    20 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	}
)

// RecoverWorkflow pages the log's failed deliveries of one endpoint and
// window (one activity a page, its cursor in the workflow's state) and
// resends each page (one activity a page, progress in its heartbeats), so
// a worker lost at any point resumes where the recovery stood and no
// delivery is resent twice (see RecoverResendInput.NotBefore).
func RecoverWorkflow(ctx workflow.Context, in RecoverInput) (RecoverState, error) {
	if in.Unsealed() {
		return RecoverState{}, temporal.NewNonRetryableApplicationError("recover input did not arrive sealed by a payload key this worker holds; refused", "InvalidInput", nil)
	}
	if in.AccountID == "" || in.EndpointID == "" || in.RecoverID == "" {
		return RecoverState{}, temporal.NewNonRetryableApplicationError("recover input lacks recover_id, account_id or endpoint_id", "InvalidInput", nil)
	}
	st := in.State
	if st == nil {
		started := workflow.GetInfo(ctx).WorkflowStartTime.UTC()
		until := in.Until
		if until.IsZero() {
			until = started
		}
		st = &RecoverState{RecoverID: in.RecoverID, AccountID: in.AccountID, EndpointID: in.EndpointID,
			Since: in.Since.UTC(), Until: until.UTC(), State: RecoverRunning, StartedAt: started}
	}
	if err := workflow.SetQueryHandler(ctx, RecoverQuery, func() (RecoverState, error) { return *st, nil }); err != nil {
		return *st, err
	}
	cursor := in.Cursor
	for pages := 0; ; pages++ {
		if pages == recoverPagesPerRun {
			next := in
			next.State, next.Cursor = st, cursor
			return *st, workflow.NewContinueAsNewError(ctx, RecoverWorkflowName, next)
		}
		next, err := recoverPage(ctx, st, cursor)
		if err != nil {
			if temporal.IsCanceledError(err) || errors.Is(ctx.Err(), workflow.ErrCanceled) {
				st.State = RecoverCanceled
			}
			return *st, err
		}
		if next == "" {
			st.State = RecoverDone
			return *st, nil
		}
		cursor = next
	}
}

// recoverPage lists one page after cursor and resends it, and returns the
// next page's cursor ("" after the last).
func recoverPage(ctx workflow.Context, st *RecoverState, cursor string) (string, error) {
	var page RecoverPage
	lctx := workflow.WithActivityOptions(ctx, recoverListOptions)
	if err := workflow.ExecuteActivity(lctx, RecoverListActivityName, RecoverListInput{AccountID: st.AccountID, EndpointID: st.EndpointID,
		Since: st.Since, Until: st.Until, Cursor: cursor, Limit: RecoverPageSize}).Get(ctx, &page); err != nil {
		return "", err
	}
	st.Matched += len(page.DeliveryIDs)
	if len(page.DeliveryIDs) == 0 {
		return page.Next, nil
	}
	var res RecoverResendResult
	rctx := workflow.WithActivityOptions(ctx, recoverResendOptions)
	if err := workflow.ExecuteActivity(rctx, RecoverResendActivityName, RecoverResendInput{RecoverID: st.RecoverID, AccountID: st.AccountID,
		EndpointID: st.EndpointID, DeliveryIDs: page.DeliveryIDs, NotBefore: st.StartedAt}).Get(ctx, &res); err != nil {
		return "", err
	}
	st.Resent += res.Resent
	st.Skipped += len(res.Skipped)
	for _, s := range res.Skipped {
		if len(st.SkippedDeliveries) < MaxSkippedListed {
			st.SkippedDeliveries = append(st.SkippedDeliveries, s)
		}
	}
	return page.Next, nil
}
