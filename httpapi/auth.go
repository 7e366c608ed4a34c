package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/apikey"
)

// Who may call an operation. Every operation of routeTable declares one;
// routes panics on one that does not, and the authorization matrix test
// holds each declaration to the scope the test expects.
type accessKind int

const (
	undeclared accessKind = iota
	// publicAccess needs no credential: the probes and the document.
	publicAccess
	// adminOnly is for the admin token alone: to an API key the route does
	// not exist (404, as for an unknown path).
	adminOnly
	// accountScoped is for the admin token, or an API key of the path's
	// {account_id} holding the operation's scope.
	accountScoped
)

type access struct {
	kind  accessKind
	scope apikey.Scope // accountScoped only
}

// op is one method of a route: its handler and who may call it.
type op struct {
	handler http.HandlerFunc
	access  access
}

// public is an operation anyone may call.
func public(h http.HandlerFunc) op { return op{h, access{kind: publicAccess}} }

// admin is an operation only the admin token may call.
func admin(h http.HandlerFunc) op { return op{h, access{kind: adminOnly}} }

// scoped is an operation on /v1/accounts/{account_id}/... that the admin
// token, or a key of that account with scope, may call.
func scoped(scope apikey.Scope, h http.HandlerFunc) op {
	return op{h, access{kind: accountScoped, scope: scope}}
}

// adminToken is one live admin token: its hash, compared in constant
// time, and its id for audit records.
type adminToken struct {
	hash [sha256.Size]byte
	id   string
}

func newAdminToken(token string) adminToken {
	h := sha256.Sum256([]byte(token))
	// The id is a fingerprint: it tells the two live tokens apart and
	// survives a restart, and 48 bits of a hash give nothing of the token.
	return adminToken{hash: h, id: "admin:" + hex.EncodeToString(h[:6])}
}

// credential is who a request acts as: the admin (key nil), an API key or
// a portal session (a key whose id is a session's).
type credential struct {
	id  string
	key *apikey.Key
}

type credentialKey struct{}

// CredentialID is the id of the credential a request of the API acts with,
// for audit records: "admin:<fingerprint>" (the first 12 hex digits of the
// admin token's SHA-256), "key:<key id>", "session:<portal session id>",
// or "insecure-no-auth" when the server runs without authentication; ""
// outside an authorized request. It is never a secret.
func CredentialID(ctx context.Context) string {
	if c, ok := ctx.Value(credentialKey{}).(credential); ok {
		return c.id
	}
	return ""
}

// authorize wraps an operation's handler in its access rule. A request
// that passes gets its span (traced) and its credential in the context.
func (s *Server) authorize(pattern, method string, o op) http.HandlerFunc {
	switch o.access.kind {
	case publicAccess:
		return o.handler
	case adminOnly, accountScoped:
	default:
		panic(fmt.Sprintf("httpapi: %s %s declares no access: use public, admin or scoped in routeTable", method, pattern))
	}
	h := s.traced(o.handler)
	return func(w http.ResponseWriter, r *http.Request) {
		cred, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		annotate(r, slog.String("credential", cred.id))
		if k := cred.key; k != nil {
			switch {
			case o.access.kind != accountScoped || r.PathValue("account_id") != k.AccountID:
				// Beyond its account a key finds nothing: not the admin's
				// routes, not another account's paths.
				writeNoSuchPath(w, r)
				return
			case !k.Has(o.access.scope):
				writeError(w, r, http.StatusForbidden, "this API key lacks the scope "+string(o.access.scope)+" this operation needs", "Authorization")
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), credentialKey{}, cred)))
	}
}

// authenticate finds the request's credential, or answers 401 (503 if the
// registry cannot say whether a key is valid) and reports false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (credential, bool) {
	if s.noAuth {
		return credential{id: "insecure-no-auth"}, true
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hookrelay"`)
		writeError(w, r, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>", "Authorization")
		return credential{}, false
	}
	if apikey.IsKey(token) {
		return s.authenticateKey(w, r, token)
	}
	got := sha256.Sum256([]byte(token))
	match := -1
	for i, t := range s.admin { // every token compared, whichever matches
		if subtle.ConstantTimeCompare(got[:], t.hash[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		writeInvalidToken(w, r, "wrong bearer token")
		return credential{}, false
	}
	return credential{id: s.admin[match].id}, true
}

// authenticateKey checks an API key or a portal session token: its hash in constant time, then
// whether it is revoked or expired. Lookups share the requests' slots, so
// a flood of made-up keys cannot queue queries on the registry.
func (s *Server) authenticateKey(w http.ResponseWriter, r *http.Request, token string) (credential, bool) {
	id, ok := apikey.IDOf(token)
	if !ok || s.keys == nil {
		writeInvalidToken(w, r, "wrong bearer token")
		return credential{}, false
	}
	release, ok := s.acquire()
	if !ok {
		writeUnavailable(w, r, retryAfterBusy, "too many requests in flight; retry after Retry-After seconds")
		return credential{}, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout)
	k, err := s.keys.LookupKey(ctx, id)
	cancel()
	release()
	switch {
	case errors.Is(err, apikey.ErrNotFound), err == nil && !apikey.Verify(token, k.Hash):
		writeInvalidToken(w, r, "wrong bearer token")
		return credential{}, false
	case err != nil:
		annotate(r, slog.String("error", err.Error()))
		writeUnavailable(w, r, retryAfterUnavailable, "the API key could not be checked now; retry after Retry-After seconds")
		return credential{}, false
	}
	if err := k.Usable(time.Now()); err != nil {
		annotate(r, slog.String("credential", k.CredentialID()))
		msg := err.Error() + "; ask the account's administrator for a new one"
		if apikey.IsSessionID(k.ID) {
			msg = "the portal session has ended (expired or signed out); open the portal again from your account"
		}
		writeInvalidToken(w, r, msg)
		return credential{}, false
	}
	k.Hash = nil
	return credential{id: k.CredentialID(), key: &k}, true
}

func writeInvalidToken(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="hookrelay", error="invalid_token"`)
	writeError(w, r, http.StatusUnauthorized, msg, "Authorization")
}

// writeNoSuchPath is the answer to a path the API does not know, and to a
// key's request beyond its account: the same, so a key learns nothing of
// what lies beyond.
func writeNoSuchPath(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, http.StatusNotFound, "no such path; GET /v1/openapi.json lists the API's routes", "")
}
