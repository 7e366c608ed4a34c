package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// methods maps the HTTP methods a path answers to their handlers.
type methods map[string]http.HandlerFunc

// route is one path of the API and what it answers.
type route struct {
	pattern string
	methods methods
}

// routeTable is the API: the mux is built from it and nothing else, so a
// new endpoint is one row here, and the OpenAPI test, which compares these
// rows with openapi.yaml both ways, fails until the document has it too.
func (s *Server) routeTable() []route {
	return []route{
		{"/v1/events", methods{http.MethodPost: s.authed(s.postEvents)}},
		{"/v1/deliveries/{delivery_id}", methods{http.MethodGet: s.authed(s.getDelivery)}},
		{"/v1/deliveries/{delivery_id}/cancel", methods{http.MethodPost: s.authed(s.postCancel)}},
		{"/v1/deliveries/{delivery_id}/resend", methods{http.MethodPost: s.authed(s.postResend)}},
		{"/v1/accounts/{account_id}/endpoints", methods{http.MethodPost: s.authed(s.postEndpoint), http.MethodGet: s.authed(s.listEndpoints)}},
		{"/v1/accounts/{account_id}/endpoints/{endpoint_id}", methods{http.MethodGet: s.authed(s.getEndpoint),
			http.MethodPatch: s.authed(s.patchEndpoint), http.MethodDelete: s.authed(s.deleteEndpoint)}},
		{"/v1/accounts/{account_id}/endpoints/{endpoint_id}/rotate-secret", methods{http.MethodPost: s.authed(s.rotateSecret)}},
		{"/v1/accounts/{account_id}/endpoints/{endpoint_id}/recover", methods{http.MethodPost: s.authed(s.postRecover)}},
		{"/v1/accounts/{account_id}/endpoints/{endpoint_id}/test", methods{http.MethodPost: s.authed(s.postTest)}},
		{"/v1/accounts/{account_id}/recoveries/{recover_id}", methods{http.MethodGet: s.authed(s.getRecovery)}},
		{"/v1/openapi.json", methods{http.MethodGet: s.getOpenAPI}},
		{"/healthz", methods{http.MethodGet: s.healthz}},
		{"/readyz", methods{http.MethodGet: s.readyz}},
	}
}

// routes is the API's handler: routeTable, a JSON 404 for any other path,
// and one log line per request.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routeTable() {
		s.route(mux, rt.pattern, rt.methods)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, "no such path; the API is POST /v1/events, GET /v1/deliveries/{delivery_id}, POST /v1/deliveries/{delivery_id}/cancel and /resend, "+
			"/v1/accounts/{account_id}/endpoints[/{endpoint_id}[/rotate-secret|/recover|/test]] and /v1/accounts/{account_id}/recoveries/{recover_id}; GET /v1/openapi.json describes it", "")
	})
	return s.logRequests(mux)
}

// route registers pattern without a method, so a wrong method gets the
// API's JSON 405 with Allow rather than the mux's plain-text one.
func (s *Server) route(mux *http.ServeMux, pattern string, m methods) {
	allow := make([]string, 0, len(m))
	for method := range m {
		allow = append(allow, method)
	}
	slices.Sort(allow)
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		h, ok := m[r.Method]
		if !ok {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, r, http.StatusMethodNotAllowed, r.Method+" is not allowed here; use "+strings.Join(allow, " or "), "")
			return
		}
		h(w, r)
	})
}

// authed requires the bearer token, unless the server runs without
// authentication; only then does the request get its span (traced).
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	h = s.traced(h)
	if s.tokenHash == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hookrelay"`)
			writeError(w, r, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>", "Authorization")
			return
		}
		got := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hookrelay", error="invalid_token"`)
			writeError(w, r, http.StatusUnauthorized, "wrong bearer token", "Authorization")
			return
		}
		h(w, r)
	}
}

// apiError is every error the API answers: what went wrong and, when one
// field or header is at fault, which. A refused batch also lists each bad event.
type apiError struct {
	Error  string       `json:"error"`
	Field  string       `json:"field,omitempty"`
	Events []eventError `json:"events,omitempty"`
}

// eventError is one refused event of a batch; Field is within that event.
type eventError struct {
	Index int    `json:"index"`
	Error string `json:"error"`
	Field string `json:"field"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, msg, field string) {
	writeAPIError(w, r, status, apiError{Error: msg, Field: field})
}

func writeAPIError(w http.ResponseWriter, r *http.Request, status int, e apiError) {
	if e.Field != "" {
		annotate(r, slog.String("field", loggedField(e.Field)))
	}
	writeJSON(w, status, e)
}

// knownField matches the field names hookrelay itself defines, alone or in
// a batch (events[3].payload.id). Any other field name is a key the client
// chose (an unknown or repeated key): the answer names it, the log does not.
var knownField = regexp.MustCompile(`^(events\[[0-9]+\]\.)?(body|events|event_name|event_id|account_id|payload|payload\.id|payload\.time|delivery_id|reason|since|until|recover_id|endpoint_id|Authorization|Content-Type|Content-Encoding)$`)

// unknownField is what the log says instead of a client's key.
const unknownField = "unknown"

func loggedField(field string) string {
	if knownField.MatchString(field) {
		return field
	}
	return unknownField
}

// writeUnavailable refuses a request Temporal could not serve now: nothing
// is lost, and the same request later completes without duplicating.
func writeUnavailable(w http.ResponseWriter, r *http.Request, retryAfter time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
	writeError(w, r, http.StatusServiceUnavailable, msg, "")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // answers are read by programs and people, not put in HTML
	enc.Encode(v)            // the client may be gone; nothing to do about it
}
