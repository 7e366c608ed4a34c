package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/hookrelay/hookrelay/audit"
	"log/slog"
	"net/http"
	"time"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/workflows"
)

// Recoveries is what the recover and test routes need: *deliveries.Client
// on a server whose workers keep the delivery log.
type Recoveries interface {
	Recover(ctx context.Context, accountID, endpointID string, since, until time.Time) (string, error)
	Recovery(ctx context.Context, accountID, recoverID string) (workflows.RecoverState, error)
	SendTest(ctx context.Context, accountID, endpointID, eventName string) (deliveries.Started, error)
}

// recoverRequest is the body of POST .../endpoints/{endpoint_id}/recover.
type recoverRequest struct {
	Since string  `json:"since"`
	Until *string `json:"until"`
}

// recoveryView is a recovery as the API answers it.
type recoveryView struct {
	RecoverID         string              `json:"recover_id"`
	EndpointID        string              `json:"endpoint_id"`
	Since             time.Time           `json:"since"`
	Until             time.Time           `json:"until"`
	State             string              `json:"state"`
	Matched           int                 `json:"matched"`
	Resent            int                 `json:"resent"`
	Skipped           int                 `json:"skipped"`
	SkippedDeliveries []workflows.Skipped `json:"skipped_deliveries,omitempty"`
}

// postRecover is POST /v1/accounts/{account_id}/endpoints/{endpoint_id}/recover:
// resend, once each, the endpoint's deliveries that ended failed in the window.
func (s *Server) postRecover(w http.ResponseWriter, r *http.Request) {
	var req recoverRequest
	if ref := readJSONBody(w, r, &req, `{"since": "2026-01-02T15:04:05Z", "until": "..."}`); ref != nil {
		writeAPIError(w, r, ref.status, ref.body)
		return
	}
	since, until, ref := recoverWindow(req, time.Now())
	if ref != nil {
		writeAPIError(w, r, ref.status, ref.body)
		return
	}
	changes := []string{"since"}
	if req.Until != nil {
		changes = append(changes, "until")
	}
	s.onRecoveries(w, r, http.StatusAccepted, &audit.Record{Action: audit.EndpointRecover, Changes: changes}, func(ctx context.Context, account string) (any, error) {
		id, err := s.recoveries.Recover(ctx, account, r.PathValue("endpoint_id"), since, until)
		annotate(r, slog.String("recover_id", id))
		return map[string]string{"recover_id": id}, err
	})
}

// recoverWindow checks a recover request's window: since is required, and
// not in the future; until, if given, is after since.
func recoverWindow(req recoverRequest, now time.Time) (since, until time.Time, ref *refusal) {
	if req.Since == "" {
		return since, until, refuse(http.StatusUnprocessableEntity, "since", "since: is required, an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	since, err := time.Parse(time.RFC3339Nano, req.Since)
	if err != nil {
		return since, until, refuse(http.StatusUnprocessableEntity, "since", "since: must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	if since.After(now) {
		return since, until, refuse(http.StatusUnprocessableEntity, "since", "since: is in the future")
	}
	if req.Until != nil {
		if until, err = time.Parse(time.RFC3339Nano, *req.Until); err != nil {
			return since, until, refuse(http.StatusUnprocessableEntity, "until", "until: must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
		}
		if !until.After(since) {
			return since, until, refuse(http.StatusUnprocessableEntity, "until", "until: must be after since")
		}
	}
	return since, until, nil
}

// getRecovery is GET /v1/accounts/{account_id}/recoveries/{recover_id}.
func (s *Server) getRecovery(w http.ResponseWriter, r *http.Request) {
	s.onRecoveries(w, r, http.StatusOK, nil, func(ctx context.Context, account string) (any, error) {
		st, err := s.recoveries.Recovery(ctx, account, r.PathValue("recover_id"))
		return recoveryView{RecoverID: st.RecoverID, EndpointID: st.EndpointID, Since: st.Since, Until: st.Until, State: st.State,
			Matched: st.Matched, Resent: st.Resent, Skipped: st.Skipped, SkippedDeliveries: st.SkippedDeliveries}, err
	})
}

// testRequest is the body of POST .../endpoints/{endpoint_id}/test.
type testRequest struct {
	EventName string `json:"event_name"`
}

// postTest is POST /v1/accounts/{account_id}/endpoints/{endpoint_id}/test:
// deliver an example event (fake data, "test": true) to the endpoint alone.
func (s *Server) postTest(w http.ResponseWriter, r *http.Request) {
	var req testRequest
	if ref := readJSONBody(w, r, &req, `{"event_name": "api_mail_log_delivered"}`); ref != nil {
		writeAPIError(w, r, ref.status, ref.body)
		return
	}
	if !event.Known(req.EventName) {
		writeError(w, r, http.StatusUnprocessableEntity, "event_name: must be one of api_mail_log_delivered, api_mail_log_temporary_failure, "+
			"api_mail_log_permanent_failure, api_mail_log_opened", "event_name")
		return
	}
	s.onRecoveries(w, r, http.StatusAccepted, &audit.Record{Action: audit.EndpointTest, Changes: []string{"event_name"}}, func(ctx context.Context, account string) (any, error) {
		started, err := s.recoveries.SendTest(ctx, account, r.PathValue("endpoint_id"), req.EventName)
		return deliveryOf(started), err
	})
}

// readJSONBody reads a required JSON object body into v, refusing unknown
// fields by name.
func readJSONBody(w http.ResponseWriter, r *http.Request, v any, example string) *refusal {
	if ref := checkContentHeaders(r.Header); ref != nil {
		return ref
	}
	body, ref := readBody(w, r)
	if ref != nil {
		return ref
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return refuse(http.StatusBadRequest, "body", "body is empty; send %s", example)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return refuse(http.StatusBadRequest, "body", "body is not valid JSON: %v", err)
		case errors.As(err, &typ) && typ.Field != "":
			return refuse(http.StatusUnprocessableEntity, typ.Field, "%s: must be a string", typ.Field)
		}
		return refuse(http.StatusUnprocessableEntity, "body", "body must be %s", example)
	}
	return nil
}

// onRecoveries runs one recover or test call for the account in the path,
// under the API's limits, and maps its errors to answers. A change (non-nil)
// is recorded in the audit trail, against the endpoint, before it is made,
// or not made.
func (s *Server) onRecoveries(w http.ResponseWriter, r *http.Request, okStatus int, change *audit.Record, call func(ctx context.Context, account string) (any, error)) {
	if id := r.PathValue("endpoint_id"); id != "" {
		annotate(r, slog.String("endpoint_id", id))
	}
	if s.recoveries == nil {
		writeError(w, r, http.StatusNotFound, "this server keeps no delivery log (see --log-db), so it recovers and tests nothing", "")
		return
	}
	ctx, done, ok := s.bounded(w, r)
	if !ok {
		return
	}
	defer done()
	account := r.PathValue("account_id")
	settle, ok := s.audited(w, r, ctx, change, account, r.PathValue("endpoint_id"))
	if !ok {
		return
	}
	v, err := call(ctx, account)
	settle(answerRecoveries(w, r, okStatus, v, err), "")
}

// answerRecoveries writes the answer to a recover or test call and returns
// its status.
func answerRecoveries(w http.ResponseWriter, r *http.Request, okStatus int, v any, err error) int {
	var fe *event.FieldError
	switch {
	case err == nil:
		writeJSON(w, okStatus, v)
		return okStatus
	case errors.As(err, &fe):
		writeError(w, r, http.StatusUnprocessableEntity, fe.Error(), fe.Field)
		return http.StatusUnprocessableEntity
	case errors.Is(err, endpoint.ErrNotFound), errors.Is(err, endpoint.ErrDeleted):
		writeError(w, r, http.StatusNotFound, "the account has no endpoint with this endpoint_id", "endpoint_id")
		return http.StatusNotFound
	case errors.Is(err, deliveries.ErrRecoveryNotFound):
		writeError(w, r, http.StatusNotFound, "the account has no recovery with this recover_id", "recover_id")
		return http.StatusNotFound
	default:
		return answerTemporalError(w, r, err, "the recovery exists but no worker with the delivery log answered; retry later")
	}
}
