package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/hookrelay/hookrelay/audit"
	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/internal/registry"
	"github.com/hookrelay/hookrelay/workflows"
)

// AuditTrail records the changes made through the API, and lists them:
// *audit.Store, on the endpoint registry's database.
type AuditTrail interface {
	Record(ctx context.Context, r audit.Record) (int64, error)
	Settle(ctx context.Context, id int64, made bool, target string) error
	List(ctx context.Context, q audit.Query) (audit.Page, error)
}

// credentialOf names the credential that made r, as records show it: an
// id, never the secret (admin:<hash prefix>, key:<key id>).
func credentialOf(r *http.Request) string { return CredentialID(r.Context()) }

// settleTimeout bounds settling a record after its change, whatever is
// left of the request's own time.
const settleTimeout = 5 * time.Second

// audited records a change before it is made. A change that cannot be
// recorded is not made: audited answers 503 and reports false. The
// returned settle is told whether the change was refused (its record is
// removed) or made (with the target, if only known now); an outcome not
// known for sure (a timeout) keeps the record, so the trail may list a
// change that did not happen, never miss one that did.
//
// change nil is a call that changes nothing: nothing is recorded. account
// and target fill the record's (a target "" keeps change's own).
func (s *Server) audited(w http.ResponseWriter, r *http.Request, ctx context.Context, change *audit.Record, account, target string) (settle func(status int, target string), ok bool) {
	if s.audit == nil || change == nil {
		return func(int, string) {}, true
	}
	rec := *change
	rec.AccountID = account
	if target != "" {
		rec.Target = target
	}
	rec.Credential = credentialOf(r)
	id, err := s.audit.Record(ctx, rec)
	if err != nil {
		annotate(r, slog.String("error", err.Error()))
		writeUnavailable(w, r, retryAfterUnavailable, "the change could not be recorded in the audit trail, so it was not made; retry after Retry-After seconds")
		return nil, false
	}
	return func(status int, target string) {
		refused := status >= 400 && status < 500
		if !refused && (target == "" || target == rec.Target) {
			return
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), settleTimeout)
		defer cancel()
		if err := s.audit.Settle(sctx, id, !refused, target); err != nil {
			annotate(r, slog.String("audit_error", err.Error()))
		}
	}, true
}

// changedFields names the fields f sets, as the API spells them.
func changedFields(f registry.Fields) []string {
	var out []string
	for _, set := range []struct {
		name string
		ok   bool
	}{
		{"url", f.URL != nil}, {"events", f.Events != nil}, {"description", f.Description != nil}, {"timeout", f.Timeout != nil},
		{"retry_schedule", f.RetrySchedule != nil}, {"enabled", f.Enabled != nil}, {"trace_context", f.TraceContext != nil},
		{"max_in_flight", f.MaxInFlight != nil}, {"rate_limit", f.RateLimit != nil},
	} {
		if set.ok {
			out = append(out, set.name)
		}
	}
	if c := f.Circuit; c != nil {
		for _, set := range []struct {
			name string
			ok   bool
		}{
			{"open_after", c.OpenAfter != nil}, {"probe_every", c.ProbeEvery != nil}, {"drain_per_second", c.DrainPerSecond != nil},
			{"disable_after", c.DisableAfter != nil}, {"park_limit", c.ParkLimit != nil},
		} {
			if set.ok {
				out = append(out, "circuit."+set.name)
			}
		}
	}
	return out
}

// resolver finds an endpoint whatever its account: the registry does.
type resolver interface {
	Resolve(ctx context.Context, id string) (endpoint.Endpoint, error)
}

// deliveryAccount is the account of a delivery's endpoint, for its record:
// AllAccounts when the endpoint no longer resolves (deleted) or this
// server has no registry to ask.
func (s *Server) deliveryAccount(ctx context.Context, deliveryID string) string {
	endpointID, _, err := workflows.ParseDeliveryID(deliveryID)
	if err != nil {
		return audit.AllAccounts
	}
	if res, ok := s.endpoints.(resolver); ok {
		if ep, err := res.Resolve(ctx, endpointID); err == nil && ep.AccountID != "" {
			return ep.AccountID
		}
	}
	return audit.AllAccounts
}

// auditList is the answer of GET /v1/audit.
type auditList struct {
	Records    []audit.Record `json:"records"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

// getAudit is GET /v1/audit?account_id=&since=&limit=&cursor=: the trail,
// oldest first, for the admin only.
func (s *Server) getAudit(w http.ResponseWriter, r *http.Request) {
	if s.audit == nil {
		writeError(w, r, http.StatusNotFound, "this server keeps no audit trail (it runs without an endpoint registry or --audit-db)", "")
		return
	}
	q, ok := auditQuery(w, r)
	if !ok {
		return
	}
	ctx, done, ok := s.bounded(w, r)
	if !ok {
		return
	}
	defer done()
	page, err := s.audit.List(ctx, q)
	var fe *audit.FieldError
	switch {
	case err == nil:
		out := auditList{Records: page.Records, NextCursor: page.Next}
		if out.Records == nil {
			out.Records = []audit.Record{}
		}
		annotate(r, slog.Int("records", len(out.Records)))
		writeJSON(w, http.StatusOK, out)
	case errors.As(err, &fe):
		writeError(w, r, http.StatusUnprocessableEntity, fe.Error(), fe.Field)
	case errors.Is(err, context.DeadlineExceeded), r.Context().Err() != nil:
		annotate(r, slog.String("error", err.Error()))
		writeUnavailable(w, r, retryAfterUnavailable, "the audit trail did not answer in time; retry after Retry-After seconds")
	default:
		annotate(r, slog.String("error", err.Error()))
		writeError(w, r, http.StatusInternalServerError, "internal error", "")
	}
}

// auditQuery reads GET /v1/audit's query, refusing a bad value by name.
func auditQuery(w http.ResponseWriter, r *http.Request) (audit.Query, bool) {
	v := r.URL.Query()
	q := audit.Query{AccountID: v.Get("account_id"), Cursor: v.Get("cursor")}
	if len(q.AccountID) > 1024 {
		writeError(w, r, http.StatusUnprocessableEntity, "account_id: at most 1024 bytes", "account_id")
		return q, false
	}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeError(w, r, http.StatusUnprocessableEntity, "since: must be an RFC 3339 time such as 2026-04-18T20:00:00Z", "since")
			return q, false
		}
		q.Since = t
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > audit.MaxLimit {
			writeError(w, r, http.StatusUnprocessableEntity, fmt.Sprintf("limit: must be a whole number from 1 to %d", audit.MaxLimit), "limit")
			return q, false
		}
		q.Limit = n
	}
	return q, true
}
