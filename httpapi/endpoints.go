package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/audit"
	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/registry"
)

// Endpoints is what the endpoint routes need, in package endpoint's types:
// hookrelay's endpoint registry, or a read-only view of the endpoints file
// (its writes fail with an error wrapping ErrReadOnly, answered 409).
type Endpoints interface {
	Create(ctx context.Context, accountID string, f endpoint.Fields) (endpoint.Entry, string, error)
	Get(ctx context.Context, accountID, id string) (endpoint.Entry, error)
	List(ctx context.Context, accountID string, limit int, cursor string) (endpoint.Page, error)
	Update(ctx context.Context, accountID, id string, f endpoint.Fields) (endpoint.Entry, error)
	Delete(ctx context.Context, accountID, id string) error
	RotateSecret(ctx context.Context, accountID, id string, overlap time.Duration) (endpoint.Rotated, error)
	RevealSecret(ctx context.Context, accountID, id string) (string, error)
}

// ErrReadOnly is what an Endpoints refusing writes wraps.
var ErrReadOnly = registry.ErrReadOnly

type endpointList struct {
	Endpoints  []listedEndpoint `json:"endpoints"`
	NextCursor string           `json:"next_cursor,omitempty"`
}

// listedEndpoint is an endpoint in the list, with how many of its
// deliveries are parked when Temporal's visibility answered.
type listedEndpoint struct {
	registry.View
	Parked *int `json:"parked,omitempty"`
}

// ParkedCounter counts the parked deliveries of an account's endpoints, in
// visibility (*deliveries.Client); the endpoint list shows the counts when
// the API's Deliveries is one.
type ParkedCounter interface {
	ParkedCounts(ctx context.Context, accountID string, endpointIDs []string) (map[string]int, error)
}

type rotatedView struct {
	Secret            string     `json:"secret"`
	PreviousExpiresAt *time.Time `json:"previous_expires_at"`
}

// postEndpoint is POST /v1/accounts/{account_id}/endpoints: register an
// endpoint; the answer holds its id and secret, the secret shown only here.
func (s *Server) postEndpoint(w http.ResponseWriter, r *http.Request) {
	f, ref := readFields(w, r)
	if ref != nil {
		writeAPIError(w, r, ref.status, ref.body)
		return
	}
	change := &audit.Record{Action: audit.EndpointCreate, Changes: changedFields(f)}
	s.onEndpoints(w, r, http.StatusCreated, change, func(ctx context.Context, account, _ string) (any, error) {
		e, secret, err := s.endpoints.Create(ctx, account, f)
		if err != nil {
			return nil, err
		}
		annotate(r, slog.String("endpoint_id", e.ID))
		v := e.View()
		v.Secret = secret
		return v, nil
	})
}

// listEndpoints is GET /v1/accounts/{account_id}/endpoints?limit=&cursor=.
func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > registry.MaxListLimit {
			writeError(w, r, http.StatusUnprocessableEntity, fmt.Sprintf("limit: must be a whole number from 1 to %d", registry.MaxListLimit), "limit")
			return
		}
		limit = n
	}
	s.onEndpoints(w, r, http.StatusOK, nil, func(ctx context.Context, account, _ string) (any, error) {
		page, err := s.endpoints.List(ctx, account, limit, q.Get("cursor"))
		if err != nil {
			return nil, err
		}
		out := endpointList{Endpoints: make([]listedEndpoint, 0, len(page.Entries)), NextCursor: page.NextCursor}
		ids := make([]string, 0, len(page.Entries))
		for _, e := range page.Entries {
			out.Endpoints = append(out.Endpoints, listedEndpoint{View: e.View()})
			ids = append(ids, e.ID)
		}
		s.addParked(ctx, r, account, out.Endpoints, ids)
		annotate(r, slog.Int("endpoints", len(out.Endpoints)))
		return out, nil
	})
}

// addParked sets each listed endpoint's parked count. Without Temporal the
// list still answers, without counts: the log line says why.
func (s *Server) addParked(ctx context.Context, r *http.Request, account string, list []listedEndpoint, ids []string) {
	pc, ok := s.deliveries.(ParkedCounter)
	if !ok || len(ids) == 0 {
		return
	}
	counts, err := pc.ParkedCounts(ctx, account, ids)
	if err != nil {
		annotate(r, slog.String("parked_error", err.Error()))
		return
	}
	for i := range list {
		if n, ok := counts[list[i].ID]; ok {
			list[i].Parked = &n
		}
	}
}

// getEndpoint is GET /v1/accounts/{account_id}/endpoints/{endpoint_id}.
func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request) {
	s.onEndpoints(w, r, http.StatusOK, nil, func(ctx context.Context, account, id string) (any, error) {
		e, err := s.endpoints.Get(ctx, account, id)
		if err != nil {
			return nil, err
		}
		return e.View(), nil
	})
}

// patchEndpoint is PATCH /v1/accounts/{account_id}/endpoints/{endpoint_id}:
// change the fields given, leave the rest.
func (s *Server) patchEndpoint(w http.ResponseWriter, r *http.Request) {
	f, ref := readFields(w, r)
	if ref != nil {
		writeAPIError(w, r, ref.status, ref.body)
		return
	}
	change := &audit.Record{Action: audit.EndpointUpdate, Changes: changedFields(f)}
	s.onEndpoints(w, r, http.StatusOK, change, func(ctx context.Context, account, id string) (any, error) {
		e, err := s.endpoints.Update(ctx, account, id, f)
		if err != nil {
			return nil, err
		}
		return e.View(), nil
	})
}

// deleteEndpoint is DELETE /v1/accounts/{account_id}/endpoints/{endpoint_id}:
// its open deliveries end with endpoint_deleted at their next attempt.
func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request) {
	s.onEndpoints(w, r, http.StatusNoContent, &audit.Record{Action: audit.EndpointDelete}, func(ctx context.Context, account, id string) (any, error) {
		return nil, s.endpoints.Delete(ctx, account, id)
	})
}

// rotateSecret is POST /v1/accounts/{account_id}/endpoints/{endpoint_id}/rotate-secret?overlap=24h.
func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) {
	overlap := registry.DefaultOverlap
	if v := r.URL.Query().Get("overlap"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			writeError(w, r, http.StatusUnprocessableEntity, "overlap: must be a duration such as 24h, or 0 to drop the old secret at once", "overlap")
			return
		}
		overlap = d
	}
	change := &audit.Record{Action: audit.EndpointRotateSecret, Changes: []string{"secret"}}
	s.onEndpoints(w, r, http.StatusOK, change, func(ctx context.Context, account, id string) (any, error) {
		rot, err := s.endpoints.RotateSecret(ctx, account, id, overlap)
		if err != nil {
			return nil, err
		}
		return rotatedView{Secret: rot.Secret, PreviousExpiresAt: rot.PreviousExpiresAt}, nil
	})
}

// secretView is the answer of GET .../secret.
type secretView struct {
	Secret string `json:"secret"`
}

// revealSecret is GET /v1/accounts/{account_id}/endpoints/{endpoint_id}/secret:
// the endpoint's current signing secret. It changes nothing, but who read a
// secret is recorded in the audit trail like a change.
func (s *Server) revealSecret(w http.ResponseWriter, r *http.Request) {
	change := &audit.Record{Action: audit.EndpointRevealSecret}
	s.onEndpoints(w, r, http.StatusOK, change, func(ctx context.Context, account, id string) (any, error) {
		secret, err := s.endpoints.RevealSecret(ctx, account, id)
		if err != nil {
			return nil, err
		}
		return secretView{Secret: secret}, nil
	})
}

// onEndpoints runs one call on the account's endpoints under the API's
// limits and maps its errors to answers. A change (non-nil) is recorded in
// the audit trail before the call, or not made.
func (s *Server) onEndpoints(w http.ResponseWriter, r *http.Request, okStatus int, change *audit.Record, call func(ctx context.Context, account, id string) (any, error)) {
	account, id := r.PathValue("account_id"), r.PathValue("endpoint_id")
	if id != "" {
		annotate(r, slog.String("endpoint_id", id))
	}
	if s.endpoints == nil {
		writeError(w, r, http.StatusNotFound, "this server manages no endpoints", "")
		return
	}
	if change != nil {
		if err := event.CheckAccountID(account); err != nil {
			writeError(w, r, http.StatusUnprocessableEntity, "account_id: "+err.Error(), "account_id")
			return
		}
		if len(id) > maxPathID {
			writeError(w, r, http.StatusNotFound, "the account has no endpoint with this endpoint_id", "endpoint_id")
			return
		}
	}
	ctx, done, ok := s.bounded(w, r)
	if !ok {
		return
	}
	defer done()
	settle, ok := s.audited(w, r, ctx, change, account, id)
	if !ok {
		return
	}
	v, err := call(ctx, account, id)
	target := ""
	if view, ok := v.(registry.View); ok {
		target = view.ID
	}
	settle(s.answerEndpoints(w, r, okStatus, v, err), target)
}

// maxPathID bounds an id in a path the audit trail records.
const maxPathID = 256

// answerEndpoints writes the answer to an endpoint call and returns its status.
func (s *Server) answerEndpoints(w http.ResponseWriter, r *http.Request, okStatus int, v any, err error) int {
	var fe *event.FieldError
	switch {
	case err == nil && okStatus == http.StatusNoContent:
		w.WriteHeader(okStatus)
		return okStatus
	case err == nil:
		writeJSON(w, okStatus, v)
		return okStatus
	case errors.As(err, &fe):
		writeError(w, r, http.StatusUnprocessableEntity, fe.Error(), fe.Field)
		return http.StatusUnprocessableEntity
	case errors.Is(err, endpoint.ErrNotFound):
		writeError(w, r, http.StatusNotFound, "the account has no endpoint with this endpoint_id", "endpoint_id")
		return http.StatusNotFound
	case errors.Is(err, registry.ErrReadOnly):
		writeError(w, r, http.StatusConflict, registry.ErrReadOnly.Error(), "")
		return http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded), r.Context().Err() != nil:
		annotate(r, slog.String("error", err.Error()))
		writeUnavailable(w, r, retryAfterUnavailable, "the endpoint registry did not answer in time; retry after Retry-After seconds")
		return http.StatusServiceUnavailable
	default:
		annotate(r, slog.String("error", err.Error()))
		writeError(w, r, http.StatusInternalServerError, "internal error; nothing was half-written: retry later", "")
		return http.StatusInternalServerError
	}
}

// endpointFields are the keys an endpoint's body may hold.
var endpointFields = []string{"url", "events", "description", "timeout", "retry_schedule", "enabled", "circuit", "trace_context", "max_in_flight", "rate_limit", "account_id"}

// readFields reads a POST or PATCH body: an object of endpoint fields, each
// of its JSON type, none null. A field of the wrong type, an unknown one or
// an account_id other than the path's is refused, naming it.
func readFields(w http.ResponseWriter, r *http.Request) (registry.Fields, *refusal) {
	var f registry.Fields
	if ref := checkContentHeaders(r.Header); ref != nil {
		return f, ref
	}
	body, ref := readBody(w, r)
	if ref != nil {
		return f, ref
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return f, refuse(http.StatusBadRequest, "body", `body is empty; send a JSON object such as {"url": "https://...", "events": ["*"]}`)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return f, refuse(http.StatusBadRequest, "body", "body is not valid JSON: %v", err)
		}
		return f, refuse(http.StatusUnprocessableEntity, "body", "body must be a JSON object of endpoint fields")
	}
	if top == nil {
		return f, refuse(http.StatusUnprocessableEntity, "body", "body must be a JSON object of endpoint fields")
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		raw := top[k]
		if !slices.Contains(endpointFields, k) {
			if k == "id" || k == "secret" || k == "created_at" || k == "updated_at" {
				return f, refuse(http.StatusUnprocessableEntity, k, "%s: is set by hookrelay, not by requests (rotate a secret with POST .../rotate-secret)", k)
			}
			return f, refuse(http.StatusUnprocessableEntity, k, "%s: is not a field of an endpoint, which has %s", k, strings.Join(endpointFields[:8], ", "))
		}
		if string(bytes.TrimSpace(raw)) == "null" {
			return f, refuse(http.StatusUnprocessableEntity, k, "%s: must not be null; leave it out to keep it as it is", k)
		}
		var err error
		switch k {
		case "url":
			f.URL, err = decodeAs[string](raw, "a string")
		case "events":
			f.Events, err = decodeAs[[]string](raw, "an array of event names")
		case "description":
			f.Description, err = decodeAs[string](raw, "a string")
		case "timeout":
			f.Timeout, err = decodeAs[string](raw, "a duration string such as \"15s\"")
		case "retry_schedule":
			f.RetrySchedule, err = decodeAs[[]string](raw, "an array of duration strings such as [\"5s\", \"5m\"]")
		case "enabled":
			f.Enabled, err = decodeAs[bool](raw, "true or false")
		case "trace_context":
			f.TraceContext, err = decodeAs[bool](raw, "true or false")
		case "max_in_flight":
			f.MaxInFlight, err = decodeAs[int](raw, "a whole number")
		case "rate_limit":
			f.RateLimit, err = decodeAs[float64](raw, "a number of requests a second")
		case "circuit":
			var ref *refusal
			if f.Circuit, ref = readCircuit(raw); ref != nil {
				return f, ref
			}
		case "account_id":
			var account *string
			account, err = decodeAs[string](raw, "a string")
			if err == nil && *account != r.PathValue("account_id") {
				err = errors.New("differs from the account in the path; an endpoint cannot move between accounts")
			}
		}
		if err != nil {
			return f, refuse(http.StatusUnprocessableEntity, k, "%s: %v", k, err)
		}
	}
	return f, nil
}

func decodeAs[T any](raw json.RawMessage, want string) (*T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("must be %s", want)
	}
	return &v, nil
}

// circuitFields are the keys of an endpoint's circuit object.
var circuitFields = []string{"open_after", "probe_every", "drain_per_second", "disable_after", "park_limit"}

// readCircuit reads the circuit object, naming a bad key as circuit.KEY.
func readCircuit(raw json.RawMessage) (*endpoint.RawCircuit, *refusal) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil || top == nil {
		return nil, refuse(http.StatusUnprocessableEntity, "circuit", "circuit: must be an object of %s", strings.Join(circuitFields, ", "))
	}
	var c endpoint.RawCircuit
	keys := slices.Sorted(maps.Keys(top))
	for _, k := range keys {
		field := "circuit." + k
		if !slices.Contains(circuitFields, k) {
			return nil, refuse(http.StatusUnprocessableEntity, field, "%s: is not a circuit setting, which are %s", field, strings.Join(circuitFields, ", "))
		}
		var err error
		switch k {
		case "open_after":
			c.OpenAfter, err = decodeAs[int](top[k], "a whole number")
		case "probe_every":
			var v *[]string
			if v, err = decodeAs[[]string](top[k], "an array of duration strings"); err == nil {
				c.ProbeEvery = *v
			}
		case "drain_per_second":
			c.DrainPerSecond, err = decodeAs[float64](top[k], "a number")
		case "disable_after":
			c.DisableAfter, err = decodeAs[string](top[k], "a duration string such as \"120h\"")
		case "park_limit":
			c.ParkLimit, err = decodeAs[string](top[k], "a duration string such as \"168h\"")
		}
		if err == nil && string(bytes.TrimSpace(top[k])) == "null" {
			err = errors.New("must not be null; leave it out to keep it as it is")
		}
		if err != nil {
			return nil, refuse(http.StatusUnprocessableEntity, field, "%s: %v", field, err)
		}
	}
	return &c, nil
}
