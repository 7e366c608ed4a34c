package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/accountrate"
)

// How long a refused client should wait: a full server frees a slot within
// a request's time; an outage usually lasts longer.
const (
	retryAfterBusy        = 1 * time.Second
	retryAfterUnavailable = 5 * time.Second
)

const unavailableMsg = "Temporal is unavailable or too slow; nothing was lost: send the same request again after Retry-After seconds (deliveries already started answer duplicate: true)"

// temporalUp is false only when the last start found Temporal unavailable
// and a health check still fails. While the server is down a start call
// retries until the request's deadline, but a health check on a refused
// connection fails at once: so an outage costs one slow request, and the
// rest are refused at once instead of holding connections and slots.
func (s *Server) temporalUp(ctx context.Context) bool {
	if !s.temporalDown.Load() {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := s.deliveries.Ready(ctx); err != nil {
		return false
	}
	s.temporalDown.Store(false)
	return true
}

// delivery is one delivery in a 202 answer.
type delivery struct {
	DeliveryID string `json:"delivery_id"`
	// WorkflowID repeats DeliveryID under its former name. Deprecated.
	WorkflowID string `json:"workflow_id"`
	EndpointID string `json:"endpoint_id"`
	EventID    string `json:"event_id"`
	Duplicate  bool   `json:"duplicate"`
	// RoutingError: the endpoint was refused (its registry row failed its
	// check); nothing started for it, the event's other endpoints unaffected.
	RoutingError string `json:"routing_error,omitempty"`
}

func deliveryOf(s deliveries.Started) delivery {
	return delivery{DeliveryID: s.DeliveryID, WorkflowID: s.DeliveryID, EndpointID: s.EndpointID, EventID: s.EventID, Duplicate: s.Duplicate,
		RoutingError: s.RoutingError}
}

// accepted answers one event: {"deliveries": [...]}.
type accepted struct {
	Deliveries []delivery `json:"deliveries"`
}

// batchAccepted answers a batch: one entry per event, in request order.
type batchAccepted struct {
	Events []eventAccepted `json:"events"`
}

type eventAccepted struct {
	EventID    string     `json:"event_id"`
	Deliveries []delivery `json:"deliveries"`
}

// refusal is a request refused before anything started.
type refusal struct {
	status int
	body   apiError
}

func refuse(status int, field, format string, args ...any) *refusal {
	return &refusal{status: status, body: apiError{Error: fmt.Sprintf(format, args...), Field: field}}
}

// postEvents is POST /v1/events: checks run cheapest first, every event is
// validated before any delivery starts, and the answer is 202 only once
// Temporal has confirmed every delivery of the request.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	evs, batch, ref := readEvents(w, r)
	if ref != nil {
		writeAPIError(w, r, ref.status, ref.body)
		return
	}
	annotate(r, slog.Int("events", len(evs)), slog.Bool("batch", batch))

	counts := accountCounts(evs)
	if ref := s.takeAccountRate(w, r, counts); ref != nil {
		writeAPIError(w, r, ref.status, ref.body)
		return
	}
	answered := false
	defer func() {
		if !answered { // the request's events do not count against the rate
			s.accountRate.Give(counts)
		}
	}()

	release, ok := s.acquire()
	if !ok {
		annotate(r, slog.String("refused", "busy"))
		writeUnavailable(w, r, retryAfterBusy, "too many requests in flight; send the same request again after Retry-After seconds")
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout)
	defer cancel()
	if !s.temporalUp(ctx) {
		annotate(r, slog.String("refused", "temporal unavailable"))
		writeUnavailable(w, r, retryAfterUnavailable, unavailableMsg)
		return
	}

	answers := make([]eventAccepted, len(evs))
	var started, duplicates, refused int
	for i, ev := range evs {
		ds, err := s.deliveries.Publish(ctx, ev)
		s.temporalDown.Store(errors.Is(err, deliveries.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded))
		if err != nil {
			annotate(r, slog.Int("started", started), slog.Int("duplicates", duplicates))
			s.publishFailed(w, r, err)
			return
		}
		answers[i] = eventAccepted{EventID: ev.ID, Deliveries: make([]delivery, 0, len(ds))}
		for _, d := range ds {
			answers[i].Deliveries = append(answers[i].Deliveries, deliveryOf(d))
			switch {
			case d.RoutingError != "":
				refused++
			case d.Duplicate:
				duplicates++
			default:
				started++
			}
		}
	}
	annotate(r, slog.Int("started", started), slog.Int("duplicates", duplicates), slog.Int("refused_endpoints", refused))
	answered = true
	if batch {
		writeJSON(w, http.StatusAccepted, batchAccepted{Events: answers})
		return
	}
	writeJSON(w, http.StatusAccepted, accepted{Deliveries: answers[0].Deliveries})
}

// accountCounts counts the events of each account, in order of first
// appearance; events without an account are not counted.
func accountCounts(evs []event.Event) []accountrate.Count {
	var counts []accountrate.Count
	at := map[string]int{}
	for _, ev := range evs {
		if ev.AccountID == "" {
			continue
		}
		i, ok := at[ev.AccountID]
		if !ok {
			i = len(counts)
			at[ev.AccountID] = i
			counts = append(counts, accountrate.Count{AccountID: ev.AccountID})
		}
		counts[i].N++
	}
	return counts
}

// takeAccountRate takes the request's events from each account's rate,
// all or none. A request over an account's rate is refused whole (429 with
// Retry-After, whole seconds, at least 1), a batch too, so nothing of it
// starts; one holding more events of an account than its burst can never
// pass, and is 422.
func (s *Server) takeAccountRate(w http.ResponseWriter, r *http.Request, counts []accountrate.Count) *refusal {
	no := s.accountRate.Take(counts)
	if no == nil {
		return nil
	}
	annotate(r, slog.String("refused", "account rate"))
	if no.OverBurst {
		return refuse(http.StatusUnprocessableEntity, "events", "events: %d events of account %s, more than the %d an account may send at once (its burst); send fewer per request",
			no.Events, no.AccountID, s.accountBurst)
	}
	secs := max(1, int((no.Wait+time.Second-1)/time.Second))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return refuse(http.StatusTooManyRequests, "account_id", "account %s is over its rate of %g events a second (burst %d); nothing of this request was started: send it again after Retry-After seconds",
		no.AccountID, s.accountRateCfg, s.accountBurst)
}

// publishFailed answers a request whose deliveries did not all start. Some
// may have; the same request sent again finds them (duplicate: true) and
// starts the rest, so every failure here is safe to retry.
func (s *Server) publishFailed(w http.ResponseWriter, r *http.Request, err error) {
	var fe *event.FieldError
	switch {
	case errors.As(err, &fe): // events were parsed already; kept for other Deliveries
		writeError(w, r, http.StatusUnprocessableEntity, fe.Error(), fe.Field)
	case r.Context().Err() != nil:
		annotate(r, slog.String("refused", "client went away"))
		writeUnavailable(w, r, retryAfterUnavailable, "request canceled")
	case errors.Is(err, deliveries.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		annotate(r, slog.String("refused", "temporal unavailable"), slog.String("error", err.Error()))
		writeUnavailable(w, r, retryAfterUnavailable, unavailableMsg)
	default:
		annotate(r, slog.String("error", err.Error()))
		writeError(w, r, http.StatusInternalServerError, "internal error starting deliveries; sending the same request again is safe", "")
	}
}

// readEvents applies the request rules: content type, size, JSON, and the
// shape of one event or a batch. It returns every event validated, or why not.
func readEvents(w http.ResponseWriter, r *http.Request) (evs []event.Event, batch bool, ref *refusal) {
	if ref := checkContentHeaders(r.Header); ref != nil {
		return nil, false, ref
	}
	body, ref := readBody(w, r)
	if ref != nil {
		return nil, false, ref
	}
	return parseEvents(body)
}

func checkContentHeaders(h http.Header) *refusal {
	ct := h.Get("Content-Type")
	if ct == "" {
		return refuse(http.StatusUnsupportedMediaType, "Content-Type", "Content-Type is missing; send application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return refuse(http.StatusUnsupportedMediaType, "Content-Type", "Content-Type must be application/json")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return refuse(http.StatusUnsupportedMediaType, "Content-Type", "charset must be utf-8")
	}
	if ce := h.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return refuse(http.StatusUnsupportedMediaType, "Content-Encoding", "Content-Encoding is not supported; send the body uncompressed")
	}
	return nil
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *refusal) {
	tooLarge := refuse(http.StatusRequestEntityTooLarge, "body", "body is over the %d byte limit (a batch shares it; send fewer events per request)", MaxRequestBytes)
	if r.ContentLength > MaxRequestBytes {
		return nil, tooLarge // refused without reading it
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	var over *http.MaxBytesError
	switch {
	case errors.As(err, &over):
		return nil, tooLarge
	case err != nil:
		return nil, refuse(http.StatusBadRequest, "body", "could not read the body: %v", err)
	}
	return body, nil
}

// parseEvents tells one event from a batch, {"events": [...]}, and validates
// every event. A batch with any invalid event is refused whole, listing each
// invalid one, so nothing of it starts and the producer can fix or drop them.
func parseEvents(body []byte) ([]event.Event, bool, *refusal) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, false, refuse(http.StatusBadRequest, "body", `body is empty; send one event, or {"events": [...]}`)
	}
	if !utf8.Valid(trimmed) {
		// Like malformed JSON: a receiver's parser would reject or mangle it.
		return nil, false, refuse(http.StatusBadRequest, "body", "body is not valid UTF-8")
	}
	// The one decode of the request: a single event is validated from its
	// top level as decoded here, a batch's events each from their own bytes.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &top); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, false, refuse(http.StatusBadRequest, "body", "body is not valid JSON: %v", err)
		}
		return nil, false, refuse(http.StatusUnprocessableEntity, "body", `body must be a JSON object: one event, or {"events": [...]}`)
	}
	if top == nil {
		return nil, false, refuse(http.StatusUnprocessableEntity, "body", `body must be a JSON object: one event, or {"events": [...]}`)
	}
	// The decoded map kept only the last of a repeated key: look in the bytes.
	if path, dup := event.DuplicateKey(trimmed); dup {
		return nil, false, refuse(http.StatusUnprocessableEntity, path, "%s: is a duplicate key: one object may hold each key once (receivers' parsers disagree on which value wins)", path)
	}
	rawEvents, batch := top["events"]
	if !batch {
		ev, err := event.FromObject(top)
		if err != nil {
			return nil, false, fieldRefusal(err)
		}
		return []event.Event{ev}, false, nil
	}

	keys := make([]string, 0, len(top))
	for k := range top {
		if k != "events" {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		slices.Sort(keys)
		return nil, true, refuse(http.StatusUnprocessableEntity, keys[0], "%s: is not a known field of a batch, which holds only events", keys[0])
	}
	var items []json.RawMessage
	if err := json.Unmarshal(rawEvents, &items); err != nil {
		return nil, true, refuse(http.StatusUnprocessableEntity, "events", "events: must be a JSON array of events")
	}
	if len(items) == 0 || len(items) > MaxEvents {
		return nil, true, refuse(http.StatusUnprocessableEntity, "events", "events: holds %d events; a batch holds 1 to %d", len(items), MaxEvents)
	}
	evs := make([]event.Event, len(items))
	var bad []eventError
	for i, item := range items {
		ev, err := event.Parse(item)
		if err != nil {
			var fe *event.FieldError
			if !errors.As(err, &fe) {
				fe = &event.FieldError{Field: "body", Problem: err.Error()}
			}
			bad = append(bad, eventError{Index: i, Error: fe.Problem, Field: fe.Field})
			continue
		}
		evs[i] = ev
	}
	if len(bad) > 0 {
		first := bad[0]
		field := fmt.Sprintf("events[%d].%s", first.Index, first.Field)
		return nil, true, &refusal{status: http.StatusUnprocessableEntity, body: apiError{
			Error:  fmt.Sprintf("%s: %s (%d of %d events invalid; none was started)", field, first.Error, len(bad), len(items)),
			Field:  field,
			Events: bad,
		}}
	}
	return evs, true, nil
}

// fieldRefusal turns event.Parse's error into a 422 naming the field.
func fieldRefusal(err error) *refusal {
	var fe *event.FieldError
	if errors.As(err, &fe) {
		return refuse(http.StatusUnprocessableEntity, fe.Field, "%s", fe.Error())
	}
	return refuse(http.StatusUnprocessableEntity, "body", "%v", err)
}
