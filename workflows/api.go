// Package workflows holds DeliveryWorkflow, which carries one event to one
// endpoint: attempt, classify, wait on a durable timer, attempt again, or
// park while the endpoint's circuit is open; and EndpointHealthWorkflow
// (health.go), one per endpoint on the "<queue>-health" task queue, which
// keeps its circuit: failures counted, probes, the drain of parked
// deliveries, disable. This file is the contract other packages build on:
// names, IDs, input, result and query types, search attributes.
package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
)

// Names registered with Temporal.
const (
	TaskQueue            = "webhooks"
	DeliveryWorkflowName = "DeliveryWorkflow"
	// AttemptActivityName is the attempt activity's (activities'
	// Attempt) registered name: recorded histories hold it, so it stays.
	AttemptActivityName = "AttemptDelivery"
	StatusQuery         = "status"

	// Signals. Each takes effect within seconds, even in the middle of a long wait.
	CancelSignal   = "cancel"    // stop: no further attempts; payload {"reason": "..."} or a JSON string
	RetryNowSignal = "retry-now" // skip the current wait and attempt at once
	ResendSignal   = "resend"    // send again, even after a success

	// RetryNowUpdate does what RetryNowSignal does and returns that attempt's record.
	RetryNowUpdate = "retry-now"
)

// Search attributes. They are not encrypted by Temporal, so they hold ids,
// event names and statuses only: never a subject, an address or a header value.
var (
	EndpointAttr  = temporal.NewSearchAttributeKeyKeyword("HookrelayEndpoint")
	EventNameAttr = temporal.NewSearchAttributeKeyKeyword("HookrelayEventName")
	MailLogIDAttr = temporal.NewSearchAttributeKeyKeyword("HookrelayMailLogID")
	StatusAttr    = temporal.NewSearchAttributeKeyKeyword("HookrelayStatus")
	AttemptsAttr  = temporal.NewSearchAttributeKeyInt64("HookrelayAttempts")
	// AccountAttr is the event's account, set at start when it has one.
	AccountAttr = temporal.NewSearchAttributeKeyKeyword("HookrelayAccount")
)

// SearchAttributes lists every key the worker registers.
var SearchAttributes = []temporal.SearchAttributeKey{EndpointAttr, EventNameAttr, MailLogIDAttr, StatusAttr, AttemptsAttr, AccountAttr, CircuitAttr, EventTimeAttr}

// Status is where a delivery stands.
type Status string

const (
	StatusPending   Status = "pending"   // no attempt has finished yet
	StatusRetrying  Status = "retrying"  // an attempt failed; another is scheduled
	StatusDelivered Status = "delivered" // an attempt got a 2xx
	StatusFailed    Status = "failed"    // 410, or the retry schedule ran out
	StatusCanceled  Status = "canceled"  // an operator stopped it
	// StatusParked: the endpoint's circuit is not healthy; the delivery
	// waits, its retry schedule paused, until the endpoint's health
	// workflow releases it (a probe, or its turn in a drain).
	StatusParked Status = "parked"
)

// Statuses lists every status a delivery can have.
var Statuses = []Status{StatusPending, StatusRetrying, StatusParked, StatusDelivered, StatusFailed, StatusCanceled}

// Final reports whether no further attempt will be made.
func (s Status) Final() bool {
	return s == StatusDelivered || s == StatusFailed || s == StatusCanceled
}

// VisibilityQuery is the visibility query, in parentheses, that finds the
// deliveries in status s; "" for a status that is none of Statuses.
//
// A running delivery's status is HookrelayStatus. A closed one's is its
// close status (closing upserts nothing): Completed is delivered, Failed or
// TimedOut failed, Canceled or Terminated canceled; deliveries that closed
// before the close status carried the final status completed with it in
// HookrelayStatus.
func (s Status) VisibilityQuery() string {
	attr := StatusAttr.GetName()
	switch s {
	case StatusPending, StatusRetrying, StatusParked:
		return fmt.Sprintf("(ExecutionStatus = 'Running' AND %s = '%s')", attr, s)
	case StatusDelivered:
		return fmt.Sprintf("(ExecutionStatus = 'Completed' AND %[1]s != '%[2]s' AND %[1]s != '%[3]s')", attr, StatusFailed, StatusCanceled)
	case StatusFailed:
		return fmt.Sprintf("(ExecutionStatus = 'Failed' OR ExecutionStatus = 'TimedOut' OR (ExecutionStatus = 'Completed' AND %s = '%s'))", attr, s)
	case StatusCanceled:
		return fmt.Sprintf("(ExecutionStatus = 'Canceled' OR ExecutionStatus = 'Terminated' OR (ExecutionStatus = 'Completed' AND %s = '%s'))", attr, s)
	}
	return ""
}

// DeliveriesQuery confines a visibility query to deliveries.
var DeliveriesQuery = fmt.Sprintf("WorkflowType = '%s'", DeliveryWorkflowName)

// ParkedQuery finds, in visibility, the parked deliveries of an endpoint
// (an endpoint id, [a-z0-9_-]: it is quoted as is).
func ParkedQuery(endpointID string) string {
	return fmt.Sprintf("%s AND %s = '%s' AND %s", DeliveriesQuery, EndpointAttr.GetName(), endpointID, StatusParked.VisibilityQuery())
}

// DeliveryID is a delivery's identity: its workflow ID and its webhook-id
// header, "<endpoint-id>:<event-id>".
func DeliveryID(endpointID, eventID string) string { return endpointID + ":" + eventID }

// ParseDeliveryID splits a delivery id into endpoint id and event id.
func ParseDeliveryID(id string) (endpointID, eventID string, err error) {
	endpointID, eventID, ok := strings.Cut(id, ":")
	if !ok || endpointID == "" || eventID == "" {
		return "", "", fmt.Errorf("delivery id %q: want <endpoint-id>:<event-id>", id)
	}
	return endpointID, eventID, nil
}

// WorkflowID is DeliveryID's former name.
//
// Deprecated: use DeliveryID.
func WorkflowID(endpointID, eventID string) string { return DeliveryID(endpointID, eventID) }

// ParseWorkflowID is ParseDeliveryID's former name.
//
// Deprecated: use ParseDeliveryID.
func ParseWorkflowID(id string) (endpointID, eventID string, err error) { return ParseDeliveryID(id) }

// Provenance is embedded in every workflow and activity input. A worker that
// holds payload keys decodes with a converter that calls MarkUnsealed when
// the input's payload was not sealed by one of its keys: whoever reached the
// frontend without a key (say, `temporal workflow start` with plaintext
// input). The code acting on the input then refuses to. It is no JSON
// field, so no input can claim it; a worker started with
// --insecure-plaintext marks nothing.
type Provenance struct{ unsealed bool }

// MarkUnsealed records that the value's payload was not sealed by a key
// the worker holds. The data converter calls it.
func (p *Provenance) MarkUnsealed() { p.unsealed = true }

// Unsealed reports whether MarkUnsealed was called.
func (p Provenance) Unsealed() bool { return p.unsealed }

// DeliveryInput starts a delivery. It carries the endpoint's id, never its
// URL or secret, which the attempt activity resolves at attempt time, and
// the event as parsed once on ingest: its name, ids, time and the exact
// body the receiver gets.
type DeliveryInput struct {
	Provenance
	EndpointID string `json:"endpoint_id"`
	// AccountID is the event's account; the attempt refuses an endpoint of
	// any other. "" for events without one.
	AccountID string `json:"account_id,omitempty"`
	EventID   string `json:"event_id"`
	EventName string `json:"event_name"`
	MailLogID int64  `json:"mail_log_id"`
	// EventTime is the event's payload.time.
	EventTime time.Time `json:"event_time,omitzero"`
	// Body is what every attempt POSTs: {"event_name", "payload"}, built once
	// by the publisher.
	Body json.RawMessage `json:"body,omitempty"`
	// Payload is the event's payload as deliveries started before Body
	// existed carry it; the workflow then builds the body from it.
	Payload json.RawMessage `json:"payload,omitempty"`
	// RetrySchedule is the endpoint's schedule when the delivery started:
	// the delay after each failed attempt. Empty means a single attempt.
	RetrySchedule []time.Duration `json:"retry_schedule"`
	// Timeout is the endpoint's per-attempt timeout when the delivery started;
	// it bounds the attempt activity.
	Timeout time.Duration `json:"timeout"`
	// FirstAttempt numbers this run's first attempt; a resend of a closed
	// delivery continues the previous run's numbering. 0 means 1.
	FirstAttempt int `json:"first_attempt,omitempty"`
	// ResendOf is the run this one resends, if any.
	ResendOf string `json:"resend_of,omitempty"`
	// FirstAttemptLocal makes the run's first attempt a local activity: it
	// runs in the workflow task's worker, with no activity task round trip,
	// so a first-try delivery costs fewer server actions and less latency.
	// Later attempts are ordinary activities. An input field rather than
	// workflow.GetVersion, which would cost a marker and a search-attribute
	// upsert per delivery; deliveries started without it replay unchanged.
	FirstAttemptLocal bool `json:"first_attempt_local,omitempty"`
	// OperatorTimes are when the delivery's recent resends and retry-nows
	// were accepted, counted against MaxOperatorAttempts: a resend's new run,
	// and a run continued as new, carry them.
	OperatorTimes []time.Time `json:"operator_times,omitempty"`
	// Carry is the state of the run this one continues as new, if any.
	Carry *DeliveryCarry `json:"carry,omitempty"`
}

// Action is an operator's signal or update, as the workflow received it.
type Action struct {
	Name   string    `json:"name"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// MaxReasonLength caps a cancel reason kept in the workflow's state.
const MaxReasonLength = 500

// Outcome classifies one attempt.
type Outcome string

const (
	OutcomeDelivered       Outcome = "delivered"        // 2xx
	OutcomeHTTPError       Outcome = "http_error"       // non-2xx other than 3xx and 410
	OutcomeRedirect        Outcome = "redirect"         // 3xx: not followed
	OutcomeGone            Outcome = "gone"             // 410: the receiver asks us to stop
	OutcomeTimeout         Outcome = "timeout"          // no complete answer within the endpoint's timeout
	OutcomeConnectionError Outcome = "connection_error" // DNS, connect, TLS or read failure
	OutcomeEndpointMissing Outcome = "endpoint_missing" // the endpoint is absent, disabled or its secret unusable
	OutcomeEndpointDeleted Outcome = "endpoint_deleted" // the registry deleted the endpoint: not retried
	// OutcomeAccountMismatch: the endpoint now belongs to another account
	// than the event. Nothing is sent, and it is not retried: a delivery
	// never crosses accounts.
	OutcomeAccountMismatch Outcome = "account_mismatch"
	OutcomeWorkerError     Outcome = "worker_error" // the attempt activity itself failed (worker lost)
	OutcomeCanceled        Outcome = "canceled"     // canceled by an operator while in flight
	// OutcomeBlockedDestination: the network guard refused the endpoint's
	// address (loopback, private, link-local...). Not retried.
	OutcomeBlockedDestination Outcome = "blocked_destination"
	// OutcomeParked: nothing was sent, since the endpoint's circuit is not
	// healthy; the delivery parks. Not an attempt: it is not recorded as
	// one and uses no delay of the schedule.
	OutcomeParked Outcome = "parked"
	// OutcomeEndpointUnavailable: the delivery stayed parked past the
	// endpoint's park_limit. Nothing was sent; not retried.
	OutcomeEndpointUnavailable Outcome = "endpoint_unavailable"
	// OutcomeInvalidInput: the delivery's input did not arrive sealed by a
	// payload key the worker holds (a start forged past the codec). Nothing
	// was sent; not retried.
	OutcomeInvalidInput Outcome = "invalid_input"
	// OutcomeThrottled: nothing was sent, since the endpoint was at its
	// max_in_flight in the worker or its rate_limit's next request was too
	// far ahead; the delivery waits and tries again. Not an attempt: it is
	// not recorded as one and uses no delay of the schedule.
	OutcomeThrottled Outcome = "throttled"
)

// Held reports whether nothing was sent and the delivery waits without
// an attempt: parked or throttled.
func (o Outcome) Held() bool { return o == OutcomeParked || o == OutcomeThrottled }

// Retryable reports whether the schedule continues after this outcome.
func (o Outcome) Retryable() bool {
	switch o {
	case OutcomeDelivered, OutcomeGone, OutcomeCanceled, OutcomeBlockedDestination, OutcomeEndpointDeleted, OutcomeAccountMismatch, OutcomeEndpointUnavailable, OutcomeInvalidInput:
		return false
	}
	return true
}

// EndpointFailure reports whether the outcome counts against the endpoint's
// health: an HTTP error status, a timeout, a connection error or a
// redirect. (A 410, a refused destination or a missing endpoint does not.)
func (o Outcome) EndpointFailure() bool {
	switch o {
	case OutcomeHTTPError, OutcomeTimeout, OutcomeConnectionError, OutcomeRedirect:
		return true
	}
	return false
}

// AttemptInput is what the attempt activity needs.
type AttemptInput struct {
	Provenance
	DeliveryID string `json:"delivery_id"` // the workflow ID, sent as webhook-id
	EndpointID string `json:"endpoint_id"`
	// AccountID is the event's account: the endpoint must belong to it.
	AccountID string `json:"account_id,omitempty"`
	Attempt   int    `json:"attempt"`
	// Body is the exact request body to POST.
	Body json.RawMessage `json:"body,omitempty"`
	// MayPark lets the attempt park instead of POSTing when the endpoint's
	// circuit is not healthy (deliveries that know how to park set it).
	MayPark bool `json:"may_park,omitempty"`
	// Release POSTs whatever the circuit (the endpoint's health workflow
	// releasing it: a probe or a drain) and reports no failure to it: the
	// release reads the outcome itself.
	Release bool `json:"release,omitempty"`
	// Override POSTs whatever the circuit: an operator's retry-now or
	// resend of a parked delivery.
	Override bool `json:"override,omitempty"`
	// UnsealedInput: the delivery's own input arrived unsealed (see
	// Provenance); the attempt sends nothing and ends invalid_input. Set by
	// the workflow, which schedules the attempt all the same, so a history
	// replays into the same commands whatever its payloads.
	UnsealedInput bool `json:"unsealed_input,omitempty"`
	// EventName and Payload are how attempts scheduled before Body existed
	// carry the event; the activity builds the body from them.
	EventName string          `json:"event_name,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	// Log is what the attempt writes to the delivery log besides the
	// attempt itself; nil in attempts scheduled before it existed.
	Log *AttemptLog `json:"log,omitempty"`
	// MayThrottle lets the attempt send nothing and answer throttled when
	// the endpoint is at its max_in_flight or rate_limit (deliveries that
	// know how to wait for it set it).
	MayThrottle bool `json:"may_throttle,omitempty"`
	// RateSlot is the request time a throttled attempt reserved under the
	// endpoint's rate_limit, for this attempt to send at.
	RateSlot *time.Time `json:"rate_slot,omitempty"`
}

// AttemptLog is what the attempt activity needs, beyond its attempt, to
// write the delivery log: the delivery's facts and where a failure leaves
// it. The workflow computes it deterministically when it schedules the
// attempt; an activity's input is not compared on replay, so histories
// recorded without it replay unchanged.
type AttemptLog struct {
	// CreatedAt is the run's start: the delivery's creation (a resend's
	// run finds its delivery already recorded, which keeps its own).
	CreatedAt time.Time `json:"created_at"`
	EventID   string    `json:"event_id"`
	EventName string    `json:"event_name"`
	MailLogID int64     `json:"mail_log_id,omitempty"`
	// RetryDelay is the schedule's delay after this attempt if it fails
	// and may be retried (the receiver's Retry-After replaces it);
	// ScheduleSpent: a failure of this attempt ends the delivery failed.
	RetryDelay    time.Duration `json:"retry_delay,omitempty"`
	ScheduleSpent bool          `json:"schedule_spent,omitempty"`
}

// After is where attempt a leaves its delivery, as the workflow will
// decide unless an operator's signal intervenes: its status and next
// attempt's time (zero: none), the attempt having ended at end.
func (l AttemptLog) After(a Attempt, end time.Time) (Status, time.Time) {
	switch {
	case a.Outcome == OutcomeParked || a.ParkAgain:
		return StatusParked, time.Time{}
	case a.Outcome == OutcomeDelivered:
		return StatusDelivered, time.Time{}
	case !a.Outcome.Retryable() || l.ScheduleSpent:
		return StatusFailed, time.Time{}
	}
	return StatusRetrying, end.Add(nextDelay(l.RetryDelay, a))
}

// RequestBody is the body an attempt POSTs.
func (in AttemptInput) RequestBody() []byte {
	if len(in.Body) > 0 {
		return in.Body
	}
	return event.Event{Name: in.EventName, Payload: in.Payload}.Body()
}

// Attempt records one POST.
type Attempt struct {
	Number     int       `json:"number"`
	StartedAt  time.Time `json:"started_at"`
	Outcome    Outcome   `json:"outcome"`
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
	LatencyMS  int64     `json:"latency_ms"`
	// ResponseBody holds the first 1 KiB of the response body.
	ResponseBody string `json:"response_body,omitempty"`
	// RetryAfterSeconds is the receiver's Retry-After on a 429 or 503, capped at MaxRetryAfter.
	RetryAfterSeconds int64 `json:"retry_after_seconds,omitempty"`
	// KeyIDs name the secrets the attempt was signed with (never the secrets).
	KeyIDs []string `json:"key_ids,omitempty"`
	// ParkLimitSeconds, on a parked outcome (or one that parks again), is
	// the endpoint's park_limit.
	ParkLimitSeconds int64 `json:"park_limit_seconds,omitempty"`
	// ParkAgain, on a release that failed while the endpoint's circuit is
	// open (a probe), parks the delivery again in its place without
	// spending a step of its retry schedule: the failure is the outage's.
	ParkAgain bool `json:"park_again,omitempty"`
	// RateSlot, on a throttled outcome, is the request time reserved for
	// the next attempt under the endpoint's rate_limit; nil when the
	// endpoint was at its max_in_flight.
	RateSlot *time.Time `json:"rate_slot,omitempty"`
	// ThrottleWaitMS, on a throttled outcome of an endpoint at its
	// max_in_flight, is when the worker expects a place to be free.
	ThrottleWaitMS int64 `json:"throttle_wait_ms,omitempty"`
}

// MaxRetryAfter caps a receiver's Retry-After.
const MaxRetryAfter = 24 * time.Hour

// DeliveryState is the status query's answer and the workflow's result.
// In JSON it also carries DeliveryID as "workflow_id", its deprecated name.
type DeliveryState struct {
	DeliveryID    string     `json:"delivery_id"`
	EndpointID    string     `json:"endpoint_id"`
	EventID       string     `json:"event_id"`
	EventName     string     `json:"event_name"`
	Status        Status     `json:"status"`
	Attempts      []Attempt  `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at"`
	// Actions lists the operators' signals and updates, in the order received.
	Actions []Action `json:"actions,omitempty"`
	// ResendOf is the run this one resends, if any.
	ResendOf string `json:"resend_of,omitempty"`
}

// MarshalJSON writes the state with delivery_id, and workflow_id, its
// deprecated name, for readers of earlier output.
func (s DeliveryState) MarshalJSON() ([]byte, error) {
	type plain DeliveryState
	return json.Marshal(struct {
		plain
		WorkflowID string `json:"workflow_id"`
	}{plain(s), s.DeliveryID})
}

// UnmarshalJSON reads delivery_id, or workflow_id from results recorded before it.
func (s *DeliveryState) UnmarshalJSON(data []byte) error {
	type plain DeliveryState
	var v struct {
		plain
		WorkflowID string `json:"workflow_id"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*s = DeliveryState(v.plain)
	if s.DeliveryID == "" {
		s.DeliveryID = v.WorkflowID
	}
	return nil
}

// StateFromError reads a closed delivery's state from the error its run
// ended with: a failed delivery fails with an application error of type
// DeliveryFailedType, a canceled one is canceled, each carrying its state as
// details. ok is false for an error that carries none (a terminated run,
// invalid input, a delivery closed before the close status carried the
// final status).
func StateFromError(err error) (st DeliveryState, ok bool) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == DeliveryFailedType && appErr.HasDetails() {
		return st, appErr.Details(&st) == nil
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) && canceled.HasDetails() {
		return st, canceled.Details(&st) == nil
	}
	return st, false
}

// Endpoint health: one EndpointHealthWorkflow per endpoint keeps its circuit.
// Workers report failed attempts to it (signal-with-start, from the attempt
// activity); it opens the circuit after endpoint.Circuit.OpenAfter
// consecutive failures, so deliveries park instead of POSTing; it probes
// with one real parked delivery on the ProbeEvery backoff, drains the parked
// deliveries oldest event first at DrainPerSecond once a probe succeeds, and
// disables the endpoint after DisableAfter continuously open. Workers learn
// each circuit's state from visibility (HookrelayCircuit), so a first-try
// delivery to a healthy endpoint costs no action for it.
const (
	HealthWorkflowName = "EndpointHealthWorkflow"
	HealthQuery        = "health"

	// Health signals. Operators send pause, resume, enable and disable, each
	// with an optional {"reason": "..."}; workers send failure.
	FailureSignal = "failure"
	PauseSignal   = "pause"   // stop POSTing (deliveries park) until resume
	ResumeSignal  = "resume"  // after pause: drain what parked, then healthy
	EnableSignal  = "enable"  // after disable: drain what parked, then healthy
	DisableSignal = "disable" // park everything until enable

	// ReleaseUpdate, sent to a parked delivery, makes it attempt once now
	// (the probe, or its turn in a drain) and returns that attempt.
	ReleaseUpdate = "release"

	// Health activities.
	ReleaseActivityName = "ReleaseParked"
	NoticeActivityName  = "NotifyEndpointState"
)

// HealthWorkflowID is an endpoint's health workflow ID. It has no ':', so it
// never parses as a delivery id.
func HealthWorkflowID(endpointID string) string { return "endpoint-health/" + endpointID }

// HealthTaskQueue is the task queue of the health workflows of the
// deliveries on deliveryQueue, polled by every worker of deliveryQueue: a
// health workflow's tasks never wait behind a backlog of deliveries, so a
// burst of failing deliveries opens the circuit while the burst is still
// being attempted. (Health workflows started before it existed run on the
// delivery queue, which workers still serve them on.)
func HealthTaskQueue(deliveryQueue string) string { return deliveryQueue + "-health" }

// Health search attributes: the circuit state (on health workflows), and the
// event's time (on deliveries, set at start, so a drain goes oldest first).
var (
	CircuitAttr   = temporal.NewSearchAttributeKeyKeyword("HookrelayCircuit")
	EventTimeAttr = temporal.NewSearchAttributeKeyTime("HookrelayEventTime")
)

// maxFairnessKey is the longest fairness key Temporal takes, in bytes.
const maxFairnessKey = 64

// Priority is the task priority of an account's deliveries: their fairness
// key is the account, so on a server with task-queue fairness each account
// with work waiting gets its share of the workers' slots whatever the
// others' backlog. An account id longer than a fairness key may be is
// shortened to a prefix and a hash of it; events without an account share
// the default (empty) key. On a server without fairness the field is
// ignored and the queue is first in, first out.
func Priority(accountID string) temporal.Priority {
	return temporal.Priority{FairnessKey: FairnessKey(accountID)}
}

// FairnessKey is accountID as a fairness key: as is up to 64 bytes, else
// its first 47 bytes, "#" and 16 hex digits of its SHA-256.
func FairnessKey(accountID string) string {
	if len(accountID) <= maxFairnessKey {
		return accountID
	}
	sum := sha256.Sum256([]byte(accountID))
	return accountID[:maxFairnessKey-17] + "#" + hex.EncodeToString(sum[:8])
}

// HealthStartOptions start an endpoint's health workflow, healthy and
// summarised for the UI, on the health task queue of the deliveries'
// taskQueue. It carries HookrelayCircuit only: the delivery search
// attributes (endpoint, account) stay on deliveries, so queries on them find
// deliveries alone; a health workflow is found by its ID.
func HealthStartOptions(ep endpoint.Endpoint, taskQueue string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                    HealthWorkflowID(ep.ID),
		TaskQueue:             HealthTaskQueue(taskQueue),
		StaticSummary:         "health of endpoint " + ep.ID,
		TypedSearchAttributes: temporal.NewSearchAttributes(CircuitAttr.ValueSet(string(CircuitHealthy))),
	}
}

// UnhealthyCircuitsQuery lists, in visibility, the running health
// workflows whose circuit is not healthy, of the deliveries on
// deliveryQueue: those on its health task queue, or on deliveryQueue itself
// (started before the health queue existed), the queues its workers poll. A
// workflow of that ID and type on any other queue, which no worker runs
// (started by hand with HookrelayCircuit=disabled, say), parks nothing.
func UnhealthyCircuitsQuery(deliveryQueue string) string {
	return fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND %s != '%s' AND (TaskQueue = %s OR TaskQueue = %s)",
		HealthWorkflowName, CircuitAttr.GetName(), CircuitHealthy, queryString(HealthTaskQueue(deliveryQueue)), queryString(deliveryQueue))
}

// HealthQueueTrusted says whether a health workflow on queue speaks for the
// circuits of the deliveries on deliveryQueue (see UnhealthyCircuitsQuery).
func HealthQueueTrusted(deliveryQueue, queue string) bool {
	return queue == HealthTaskQueue(deliveryQueue) || queue == deliveryQueue
}

// queryString quotes s as a string of Temporal's list filter, whose
// strings are in single quotes with a backslash escaping a quote or itself.
func queryString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// CircuitOf reads HookrelayCircuit from a health workflow's search
// attributes (a listing's or a description's); "" when it is absent.
// Search attributes are never encrypted: the default converter reads them.
func CircuitOf(attrs *commonpb.SearchAttributes) CircuitState {
	var state string
	if p := attrs.GetIndexedFields()[CircuitAttr.GetName()]; p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &state)
	}
	return CircuitState(state)
}

// AccountOf reads HookrelayAccount from a delivery's search attributes (a
// listing's or a description's); "" when it is absent.
func AccountOf(attrs *commonpb.SearchAttributes) string {
	var account string
	if p := attrs.GetIndexedFields()[AccountAttr.GetName()]; p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &account)
	}
	return account
}

// CircuitState is where an endpoint's circuit stands.
type CircuitState string

const (
	CircuitHealthy  CircuitState = "healthy"
	CircuitOpen     CircuitState = "open"     // failing: no POSTs but probes
	CircuitDraining CircuitState = "draining" // recovered: releasing parked deliveries in order
	CircuitPaused   CircuitState = "paused"   // by an operator
	CircuitDisabled CircuitState = "disabled" // open for DisableAfter, or by an operator
)

// Parks reports whether a delivery that would POST parks instead.
func (s CircuitState) Parks() bool { return s != "" && s != CircuitHealthy }

// FailureReport is the failure signal's payload: one failed attempt.
type FailureReport struct {
	EndpointID string    `json:"endpoint_id"`
	AccountID  string    `json:"account_id,omitempty"`
	DeliveryID string    `json:"delivery_id"`
	Outcome    Outcome   `json:"outcome"`
	At         time.Time `json:"at"`
	// LastSuccessAt is the latest success the reporting worker saw to the
	// endpoint: failures before it are not consecutive.
	LastSuccessAt time.Time        `json:"last_success_at,omitzero"`
	Circuit       endpoint.Circuit `json:"circuit"`
}

// HealthInput starts (or continues as new) an endpoint's health workflow.
type HealthInput struct {
	Provenance
	EndpointID string           `json:"endpoint_id"`
	AccountID  string           `json:"account_id,omitempty"`
	Circuit    endpoint.Circuit `json:"circuit"`
	// State carries the health across continue-as-new; nil starts healthy.
	State *HealthState `json:"state,omitempty"`
}

// HealthState is the health query's answer.
type HealthState struct {
	EndpointID          string       `json:"endpoint_id"`
	State               CircuitState `json:"state"`
	Parked              int          `json:"parked"`
	ConsecutiveFailures int          `json:"consecutive_failures"`
	// Since is when the circuit entered State.
	Since time.Time `json:"since"`
	// OpenedAt is when the circuit last opened; DisableAfter counts from it
	// while it stays open.
	OpenedAt    *time.Time `json:"opened_at,omitempty"`
	NextProbeAt *time.Time `json:"next_probe_at"`
	// LastSuccessAt is the latest success any report said a worker saw.
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
	ProbeStep     int       `json:"probe_step"`
	// Actions are the operators' signals with their reasons, and the
	// circuit's own transitions, newest last (the last 50).
	Actions []Action `json:"actions,omitempty"`
}

// ReleaseInput asks the release activity to release parked deliveries of
// one endpoint, oldest event first: one for a probe (Limit 1), or all of
// them at PerSecond for a drain, stopping after OpenAfter consecutive failures.
type ReleaseInput struct {
	Provenance
	EndpointID string  `json:"endpoint_id"`
	Limit      int     `json:"limit,omitempty"` // 0: all
	PerSecond  float64 `json:"per_second"`
	OpenAfter  int     `json:"open_after"`
}

// ReleaseResult is what a release did.
type ReleaseResult struct {
	Released  int `json:"released"`
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
	// Reopen: OpenAfter consecutive released attempts failed.
	Reopen bool `json:"reopen,omitempty"`
	// Parked is how many were still parked when it stopped.
	Parked int `json:"parked"`
	// MaxInFlight is the most releases that were in flight at once (1: each
	// POST ended before the next delivery was released).
	MaxInFlight int `json:"max_in_flight,omitempty"`
}

// NoticeInput is an endpoint's change of state, for the notice activity:
// an audit line, and a signed webhook to the operations endpoint if any.
type NoticeInput struct {
	Provenance
	EndpointID          string       `json:"endpoint_id"`
	AccountID           string       `json:"account_id,omitempty"`
	State               CircuitState `json:"state"`
	Since               time.Time    `json:"since"`
	Reason              string       `json:"reason"`
	ConsecutiveFailures int          `json:"consecutive_failures"`
	Parked              int          `json:"parked"`
}
