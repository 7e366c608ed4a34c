package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/hookrelay/hookrelay/audit"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/apikey"
)

// PortalPath is where `starter serve` serves the portal; a portal
// session's URL is the portal base URL, this path, and the token in the
// fragment.
const PortalPath = "/portal/"

// sessionRequest is the body of POST /v1/accounts/{account_id}/portal-sessions.
type sessionRequest struct {
	Scopes    json.RawMessage `json:"scopes"`
	ExpiresIn *int64          `json:"expires_in"`
}

// sessionView is the answer: the portal URL, which holds the token in its
// fragment, and when the session ends.
type sessionView struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	id        string    // the session's id, for the audit trail
}

func (v sessionView) auditTarget() string { return v.id }

// postSession is POST /v1/accounts/{account_id}/portal-sessions: make a
// portal session of the account and answer the URL that opens the portal
// with it, "#token=<token>&account=<account_id>&scopes=<scope>,...". The
// scopes only tell the page which controls to show: the API checks them on
// each call. The token is in the
// URL's fragment, which browsers never send to a server, so it reaches no
// request log.
func (s *Server) postSession(w http.ResponseWriter, r *http.Request) {
	f, ref := readSessionFields(w, r)
	if ref != nil {
		writeAPIError(w, r, ref.status, ref.body)
		return
	}
	base := s.portalBaseURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	s.onKeys(w, r, http.StatusCreated, &audit.Record{Action: audit.PortalSessionCreate, Changes: []string{"scopes", "expires_in"}}, func(ctx context.Context, account string) (any, error) {
		k, token, err := s.keys.CreateSession(ctx, account, f)
		if err != nil {
			return nil, err
		}
		annotate(r, slog.String("session_id", k.ID))
		frag := "token=" + url.QueryEscape(token) + "&account=" + url.QueryEscape(account) + "&scopes=" + url.QueryEscape(scopeList(k.Scopes))
		return sessionView{URL: base + PortalPath + "#" + frag, ExpiresAt: *k.ExpiresAt, id: k.ID}, nil
	})
}

// scopeList is scopes as the fragment carries them: comma-separated.
func scopeList(scopes []apikey.Scope) string {
	out := make([]string, len(scopes))
	for i, sc := range scopes {
		out[i] = string(sc)
	}
	return strings.Join(out, ",")
}

// deleteSessions is DELETE /v1/accounts/{account_id}/portal-sessions: end
// every session of the account, at once here and within the key cache's
// bound everywhere.
func (s *Server) deleteSessions(w http.ResponseWriter, r *http.Request) {
	s.onKeys(w, r, http.StatusNoContent, &audit.Record{Action: audit.PortalSessionRevoke, Target: "*"}, func(ctx context.Context, account string) (any, error) {
		n, err := s.keys.RevokeSessions(ctx, account)
		annotate(r, slog.Int64("sessions_ended", n))
		return nil, err
	})
}

// readSessionFields reads a session's body, {"scopes"?, "expires_in"?}
// with expires_in in seconds; an empty body takes the defaults. The bounds
// are apikey.SessionFields.Check's.
func readSessionFields(w http.ResponseWriter, r *http.Request) (apikey.SessionFields, *refusal) {
	var f apikey.SessionFields
	body, ref := readBody(w, r)
	if ref != nil {
		return f, ref
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return f, nil
	}
	if ref := checkContentHeaders(r.Header); ref != nil {
		return f, ref
	}
	var req sessionRequest
	if ref := decodeObject(body, &req, "a portal session, which has scopes and expires_in", `{"scopes"?, "expires_in"?}`); ref != nil {
		if ref.body.Field == "expires_in" { // the only way: a wrong type
			ref = refuse(http.StatusUnprocessableEntity, "expires_in", "expires_in: must be a whole number of seconds, such as 3600")
		}
		return f, ref
	}
	if req.Scopes != nil {
		if err := json.Unmarshal(req.Scopes, &f.Scopes); err != nil || f.Scopes == nil {
			return f, refuse(http.StatusUnprocessableEntity, "scopes", "scopes: must be an array of scopes, or left out for all four")
		}
	}
	if req.ExpiresIn != nil {
		if *req.ExpiresIn > int64(apikey.MaxSessionLifetime/time.Second) || *req.ExpiresIn < 0 {
			return f, refuse(http.StatusUnprocessableEntity, "expires_in", "expires_in: must be at most %d seconds (%d days)", int(apikey.MaxSessionLifetime.Seconds()), int(apikey.MaxSessionLifetime.Hours()/24))
		}
		d := time.Duration(*req.ExpiresIn) * time.Second
		f.ExpiresIn = &d
	}
	return f, nil
}

// CheckPortalBaseURL checks a Config.PortalBaseURL: an absolute http(s) URL
// without query or fragment.
func CheckPortalBaseURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("portal base URL: %w", err)
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("portal base URL %q: give an absolute http or https URL, such as https://hooks.example.com", s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return fmt.Errorf("portal base URL %q: give it without user, query or fragment", s)
	}
	return nil
}
