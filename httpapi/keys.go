package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/hookrelay/hookrelay/audit"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/apikey"
	"github.com/hookrelay/hookrelay/event"
)

// keyRequest is the body of POST /v1/accounts/{account_id}/api-keys.
type keyRequest struct {
	Name      *string   `json:"name"`
	Scopes    *[]string `json:"scopes"`
	ExpiresAt *string   `json:"expires_at"`
}

type keyList struct {
	APIKeys []apikey.View `json:"api_keys"`
}

// postKey is POST /v1/accounts/{account_id}/api-keys: make a key of the
// account; the answer holds the key, shown only here.
func (s *Server) postKey(w http.ResponseWriter, r *http.Request) {
	f, ref := readKeyFields(w, r)
	if ref != nil {
		writeAPIError(w, r, ref.status, ref.body)
		return
	}
	changes := []string{"name", "scopes"}
	if f.ExpiresAt != nil {
		changes = append(changes, "expires_at")
	}
	s.onKeys(w, r, http.StatusCreated, &audit.Record{Action: audit.APIKeyCreate, Changes: changes}, func(ctx context.Context, account string) (any, error) {
		k, key, err := s.keys.CreateKey(ctx, account, f)
		if err != nil {
			return nil, err
		}
		annotate(r, slog.String("key_id", k.ID))
		v := k.View()
		v.Key = key
		return v, nil
	})
}

// listKeys is GET /v1/accounts/{account_id}/api-keys: the account's keys
// not revoked, expired ones included, without the keys themselves.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	s.onKeys(w, r, http.StatusOK, nil, func(ctx context.Context, account string) (any, error) {
		keys, err := s.keys.ListKeys(ctx, account)
		if err != nil {
			return nil, err
		}
		out := keyList{APIKeys: make([]apikey.View, 0, len(keys))}
		for _, k := range keys {
			out.APIKeys = append(out.APIKeys, k.View())
		}
		return out, nil
	})
}

// deleteKey is DELETE /v1/accounts/{account_id}/api-keys/{key_id}: revoke
// the key, at once here and within the key cache's bound everywhere.
func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("key_id")
	annotate(r, slog.String("key_id", id))
	s.onKeys(w, r, http.StatusNoContent, &audit.Record{Action: audit.APIKeyRevoke, Target: id}, func(ctx context.Context, account string) (any, error) {
		return nil, s.keys.RevokeKey(ctx, account, id)
	})
}

// onKeys runs one call on the account's keys under the API's limits and
// maps its errors to answers. A change (non-nil) is recorded in the audit
// trail before it is made, or not made; a created key's id is added to its
// record once known.
func (s *Server) onKeys(w http.ResponseWriter, r *http.Request, okStatus int, change *audit.Record, call func(ctx context.Context, account string) (any, error)) {
	if s.keys == nil {
		writeError(w, r, http.StatusNotFound, "this server manages no API keys: they live in the endpoint registry (--endpoints-db)", "")
		return
	}
	ctx, done, ok := s.bounded(w, r)
	if !ok {
		return
	}
	defer done()
	account := r.PathValue("account_id")
	settle, ok := s.audited(w, r, ctx, change, account, "")
	if !ok {
		return
	}
	v, err := call(ctx, account)
	target := ""
	switch made := v.(type) {
	case apikey.View:
		target = made.ID
	case interface{ auditTarget() string }:
		target = made.auditTarget()
	}
	settle(answerKeys(w, r, okStatus, v, err), target)
}

// answerKeys writes the answer to a call on keys and returns its status.
func answerKeys(w http.ResponseWriter, r *http.Request, okStatus int, v any, err error) int {
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
	case errors.Is(err, apikey.ErrNotFound):
		writeError(w, r, http.StatusNotFound, "the account has no API key with this key_id (or it was revoked)", "key_id")
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded), r.Context().Err() != nil:
		annotate(r, slog.String("error", err.Error()))
		writeUnavailable(w, r, retryAfterUnavailable, "the registry did not answer in time; retry after Retry-After seconds")
		return http.StatusServiceUnavailable
	default:
		annotate(r, slog.String("error", err.Error()))
		writeError(w, r, http.StatusInternalServerError, "internal error; nothing was half-written: retry later", "")
		return http.StatusInternalServerError
	}
}

// readKeyFields reads a key's body: {"name", "scopes", "expires_at"?}, each
// of its JSON type; an unknown field is refused, naming it. The bounds are
// the registry's to check (apikey.Fields.Check).
func readKeyFields(w http.ResponseWriter, r *http.Request) (apikey.Fields, *refusal) {
	var f apikey.Fields
	if ref := checkContentHeaders(r.Header); ref != nil {
		return f, ref
	}
	body, ref := readBody(w, r)
	if ref != nil {
		return f, ref
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return f, refuse(http.StatusBadRequest, "body", `body is empty; send {"name": "...", "scopes": ["deliveries:read"]}`)
	}
	var req keyRequest
	if ref := decodeObject(body, &req, "an API key, which has name, scopes and expires_at", `{"name", "scopes", "expires_at"?}`); ref != nil {
		return f, ref
	}
	if req.Name != nil {
		f.Name = *req.Name
	}
	if req.Scopes != nil {
		f.Scopes = *req.Scopes
	}
	if req.ExpiresAt != nil {
		at, err := time.Parse(time.RFC3339, *req.ExpiresAt)
		if err != nil {
			return f, refuse(http.StatusUnprocessableEntity, "expires_at", "expires_at: must be an RFC 3339 time such as %s", time.Now().UTC().Add(90*24*time.Hour).Format(time.RFC3339))
		}
		f.ExpiresAt = &at
	}
	return f, nil
}

// decodeObject decodes a JSON object body into v, refusing what v does not
// hold: invalid JSON (400, body), a field of the wrong type or one v has
// not (422, naming it; what says what has which fields), anything else
// (422, body; shape shows the object).
func decodeObject(body []byte, v any, what, shape string) *refusal {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return refuse(http.StatusBadRequest, "body", "body is not valid JSON: %v", err)
	case errors.As(err, &typ) && typ.Field != "":
		return refuse(http.StatusUnprocessableEntity, typ.Field, "%s: has the wrong JSON type", typ.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return refuse(http.StatusUnprocessableEntity, field, "%s: is not a field of %s", field, what)
	default:
		return refuse(http.StatusUnprocessableEntity, "body", "body must be a JSON object %s", shape)
	}
}
