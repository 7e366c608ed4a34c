// Package codecserver serves the payload codec over HTTP, so the Temporal UI
// and CLI can show decrypted payloads to whoever holds the token: POST
// /encode and /decode (converter.NewPayloadCodecHTTPHandler), callable from
// browsers on one configured UI origin only, and only with the token (or,
// for /decode only, a signed-in user's access token carrying the required
// claim); and GET /healthz, without the token, for health checks. Every
// decode is recorded (who, when, how many payloads) before it is made.
package codecserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.temporal.io/sdk/converter"

	"github.com/hookrelay/hookrelay/audit"
	"github.com/hookrelay/hookrelay/internal/redact"
)

// MaxRequestBytes bounds a request body: a batch of payloads, each at most
// Temporal's 2 MiB blob limit in practice.
const MaxRequestBytes = 8 << 20

// MinTokenLength keeps tokens out of guessing range.
const MinTokenLength = 32

// tokenPattern admits characters safe in both a header and a URL path.
var tokenPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)

// Options configure the handler.
type Options struct {
	// Origin is the Temporal UI's origin, such as http://127.0.0.1:8233: the
	// only origin browsers may call from. Requests without an Origin header
	// (the CLI, scripts) are not browsers and need only the token.
	Origin string
	// Token must come as "Authorization: Bearer <token>".
	Token string
	// PathToken also accepts the token as the first path segment
	// (/<token>/decode). The dev server's UI cannot add an Authorization
	// header, so `make dev` points it at such a URL; the token then shows in
	// the UI's settings to whoever can open the UI. For the local dev UI only.
	PathToken bool
	// OIDC, if set, also accepts the access token of a user the Temporal UI
	// signed in ("Authorization: Bearer <JWT>", TEMPORAL_CODEC_PASS_ACCESS_TOKEN).
	OIDC *OIDC
	// Logger hears why a request was refused (never a token); nil logs nothing.
	Logger *slog.Logger
	// Audit records every decode before it is made (*audit.Store); a decode
	// it cannot record is refused (503). Nil: each decode is a log line
	// ("payloads decoded") on Logger instead.
	Audit Auditor
}

// Auditor records decodes: *audit.Store.
type Auditor interface {
	Record(ctx context.Context, r audit.Record) (int64, error)
}

// StaticCredential is who decoded with the token (the CLI's), in records.
const StaticCredential = "static token"

// Handler wraps the codec's HTTP handler with the origin and token checks.
func Handler(codec converter.PayloadCodec, o Options) (http.Handler, error) {
	origin, err := ParseOrigin(o.Origin)
	if err != nil {
		return nil, err
	}
	if err := CheckToken(o.Token); err != nil {
		return nil, err
	}
	if o.OIDC != nil {
		if err := o.OIDC.Check(); err != nil {
			return nil, err
		}
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sum := sha256.Sum256([]byte(o.Token))
	return &handler{origin: origin, tokenSum: sum, pathToken: o.PathToken, oidc: o.OIDC, log: logger, audit: o.Audit,
		codec: converter.NewPayloadCodecHTTPHandler(codec)}, nil
}

// ParseOrigin checks s is an origin: scheme, host and optional port, nothing else.
func ParseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--ui-origin: %q is not an origin such as http://127.0.0.1:8233", redact.URL(s))
	}
	return u.Scheme + "://" + u.Host, nil
}

// CheckToken refuses tokens that are short or unsafe in a header or path.
func CheckToken(token string) error {
	if len(token) < MinTokenLength || !tokenPattern.MatchString(token) {
		return fmt.Errorf("token must be at least %d characters of A-Z a-z 0-9 . _ ~ - (generate one with: head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')", MinTokenLength)
	}
	return nil
}

// ReadToken reads a token file, trimming surrounding white space.
func ReadToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if err := CheckToken(token); err != nil {
		return "", fmt.Errorf("--token-file %s: %w", path, err)
	}
	return token, nil
}

type handler struct {
	origin    string
	tokenSum  [32]byte
	pathToken bool
	oidc      *OIDC
	log       *slog.Logger
	audit     Auditor
	codec     http.Handler
}

// caller is who a request authenticated as.
type caller struct {
	user bool   // a signed-in user's access token, not the static token
	sub  string // the user's subject
}

// credential names the caller in records and logs: the subject, never a token.
func (c caller) credential() string {
	if !c.user {
		return StaticCredential
	}
	if c.sub == "" {
		return "oidc:(no sub)"
	}
	return "oidc:" + c.sub
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		// For container health checks: no token, and nothing to learn from it.
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}` + "\n"))
		return
	}
	w.Header().Add("Vary", "Origin")
	if origin := r.Header.Get("Origin"); origin != "" {
		if origin != h.origin {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
	}
	if r.Method == http.MethodOptions {
		h.preflight(w, r)
		return
	}
	path, who, err := h.authorize(r)
	switch {
	case errors.Is(err, ErrMissingClaim):
		// Generic: the answer does not say which claim would do.
		http.Error(w, "not allowed to use the codec server", http.StatusForbidden)
		return
	case err != nil:
		w.Header().Set("WWW-Authenticate", `Bearer realm="hookrelay codec"`)
		http.Error(w, "missing or wrong token", http.StatusUnauthorized)
		return
	}
	if path != "/encode" && path != "/decode" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if path == "/encode" && who.user {
		// Sealing lets its caller make input a worker signs: the CLI's token only.
		h.log.Warn("codec request refused", "auth", "oidc", "sub", who.sub, "path", path, "reason", "encode is for the static token only")
		http.Error(w, "not allowed to use the codec server", http.StatusForbidden)
		return
	}
	r.URL.Path = path
	r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
	if path == "/decode" && !h.recordDecode(w, r, who) {
		return
	}
	h.codec.ServeHTTP(w, r)
}

// recordDecode records a decode before it is made: who, and how many
// payloads (never the payloads). A body that is not payloads is left to the
// codec handler to refuse, unrecorded, since nothing is decoded; a record
// that cannot be written refuses the decode (503).
func (h *handler) recordDecode(w http.ResponseWriter, r *http.Request, who caller) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var batch struct {
		Payloads []json.RawMessage `json:"payloads"`
	}
	if json.Unmarshal(body, &batch) != nil {
		return true
	}
	n := len(batch.Payloads)
	if h.audit == nil {
		h.log.Info("payloads decoded", "credential", who.credential(), "payloads", n)
		return true
	}
	rec := audit.Record{AccountID: audit.AllAccounts, Credential: who.credential(), Action: audit.PayloadDecode, Target: strconv.Itoa(n)}
	if _, err := h.audit.Record(r.Context(), rec); err != nil {
		h.log.Error("decode refused: the audit trail did not take its record", "credential", who.credential(), "error", err.Error())
		w.Header().Set("Retry-After", "5")
		http.Error(w, "the decode could not be recorded; nothing was decoded: retry later", http.StatusServiceUnavailable)
		return false
	}
	return true
}

// preflight answers a browser's CORS preflight. It carries no credentials,
// so it is answered before the token check, and only for the UI's origin.
func (h *handler) preflight(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Origin") == "" {
		http.Error(w, "not a CORS preflight", http.StatusForbidden)
		return
	}
	w.Header().Set("Access-Control-Allow-Methods", http.MethodPost)
	w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// errUnauthenticated: no credential, or a wrong one (401).
var errUnauthenticated = errors.New("missing or wrong token")

// authorize checks the token, in the Authorization header or (if enabled)
// the path, and returns the path that remains and who called. Tokens are
// compared as SHA-256 sums in constant time, so neither their content nor
// their length leaks through timing. With OIDC, a bearer JWT is verified as
// a signed-in user's access token; a valid one without the required claim
// is ErrMissingClaim (403).
func (h *handler) authorize(r *http.Request) (string, caller, error) {
	if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		if h.matches(token) {
			return r.URL.Path, caller{}, nil
		}
		if h.oidc != nil && strings.Count(token, ".") == 2 {
			sub, err := h.oidc.Verify(r.Context(), token)
			if err == nil {
				h.log.Info("codec request", "auth", "oidc", "sub", sub, "path", r.URL.Path)
				return r.URL.Path, caller{user: true, sub: sub}, nil
			}
			h.log.Warn("codec request refused", "auth", "oidc", "sub", sub, "reason", err.Error())
			if errors.Is(err, ErrMissingClaim) {
				return "", caller{}, err
			}
		}
	}
	if h.pathToken {
		if token, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/"); ok && h.matches(token) {
			return "/" + rest, caller{}, nil
		}
	}
	return "", caller{}, errUnauthenticated
}

func (h *handler) matches(token string) bool {
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) == 1
}
