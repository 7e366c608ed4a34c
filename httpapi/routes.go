package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/apikey"
)

// methods maps the HTTP methods a path answers to their operations.
type methods map[string]op

// route is one path of the API and what it answers.
type route struct {
	pattern string
	methods methods
}

// routeTable is the API: the mux is built from it and nothing else, so a
// new endpoint is one row here, and the OpenAPI test, which compares these
// rows with openapi.yaml both ways, fails until the document has it too.
// Each operation declares who may call it (public, admin, or scoped to the
// path's account with a key's scope); the authorization matrix test fails
// for an operation whose declaration it does not expect.
func (s *Server) routeTable() []route {
	const (
		dr, dw = apikey.DeliveriesRead, apikey.DeliveriesWrite
		er, ew = apikey.EndpointsRead, apikey.EndpointsWrite
	)
	return []route{
		{"/v1/events", methods{http.MethodPost: admin(s.postEvents)}},
		{"/v1/deliveries/{delivery_id}", methods{http.MethodGet: admin(s.getDelivery)}},
		{"/v1/deliveries/{delivery_id}/cancel", methods{http.MethodPost: admin(s.postCancel)}},
		{"/v1/deliveries/{delivery_id}/resend", methods{http.MethodPost: admin(s.postResend)}},
		{"/v1/accounts/{account_id}/deliveries/{delivery_id}/cancel", methods{http.MethodPost: scoped(dw, s.postCancel)}},
		{"/v1/accounts/{account_id}/deliveries/{delivery_id}/resend", methods{http.MethodPost: scoped(dw, s.postResend)}},
		{"/v1/accounts/{account_id}/deliveries/{delivery_id}/retry-now", methods{http.MethodPost: scoped(dw, s.postRetryNow)}},
		{"/v1/accounts/{account_id}/endpoints", methods{http.MethodPost: scoped(ew, s.postEndpoint), http.MethodGet: scoped(er, s.listEndpoints)}},
		{"/v1/accounts/{account_id}/endpoints/{endpoint_id}", methods{http.MethodGet: scoped(er, s.getEndpoint),
			http.MethodPatch: scoped(ew, s.patchEndpoint), http.MethodDelete: scoped(ew, s.deleteEndpoint)}},
		{"/v1/accounts/{account_id}/endpoints/{endpoint_id}/rotate-secret", methods{http.MethodPost: scoped(ew, s.rotateSecret)}},
		{"/v1/accounts/{account_id}/endpoints/{endpoint_id}/secret", methods{http.MethodGet: scoped(ew, s.revealSecret)}},
		{"/v1/accounts/{account_id}/endpoints/{endpoint_id}/recover", methods{http.MethodPost: scoped(dw, s.postRecover)}},
		{"/v1/accounts/{account_id}/endpoints/{endpoint_id}/test", methods{http.MethodPost: scoped(dw, s.postTest)}},
		{"/v1/accounts/{account_id}/recoveries/{recover_id}", methods{http.MethodGet: scoped(dr, s.getRecovery)}},
		{"/v1/accounts/{account_id}/deliveries", methods{http.MethodGet: scoped(dr, s.listLogDeliveries)}},
		{"/v1/accounts/{account_id}/deliveries/{delivery_id}", methods{http.MethodGet: scoped(dr, s.getLogDelivery)}},
		{"/v1/accounts/{account_id}/deliveries/{delivery_id}/attempts", methods{http.MethodGet: scoped(dr, s.getLogAttempts)}},
		// Keys are made and revoked by the admin only: a key cannot mint a
		// broader or longer-lived one.
		{"/v1/accounts/{account_id}/api-keys", methods{http.MethodPost: admin(s.postKey), http.MethodGet: admin(s.listKeys)}},
		{"/v1/accounts/{account_id}/api-keys/{key_id}", methods{http.MethodDelete: admin(s.deleteKey)}},
		{"/v1/audit", methods{http.MethodGet: admin(s.getAudit)}},
		// Portal sessions too: the admin (the mail service) opens the portal
		// for a customer it has signed in.
		{"/v1/accounts/{account_id}/portal-sessions", methods{http.MethodPost: admin(s.postSession), http.MethodDelete: admin(s.deleteSessions)}},
		{"/v1/openapi.json", methods{http.MethodGet: public(s.getOpenAPI)}},
		{"/healthz", methods{http.MethodGet: public(s.healthz)}},
		{"/readyz", methods{http.MethodGet: public(s.readyz)}},
	}
}

// routes is the API's handler: routeTable, a JSON 404 for any other path,
// and one log line per request.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routeTable() {
		s.route(mux, rt.pattern, rt.methods)
	}
	if s.portal != nil {
		mux.Handle(PortalPath, s.portal)
		mux.Handle("GET "+strings.TrimSuffix(PortalPath, "/"), http.RedirectHandler(PortalPath, http.StatusMovedPermanently))
	}
	mux.HandleFunc("/", writeNoSuchPath)
	return s.logRequests(mux)
}

// route registers pattern without a method, so a wrong method gets the
// API's JSON 405 with Allow rather than the mux's plain-text one.
func (s *Server) route(mux *http.ServeMux, pattern string, m methods) {
	allow := make([]string, 0, len(m))
	handlers := make(map[string]http.HandlerFunc, len(m))
	for method, o := range m {
		allow = append(allow, method)
		handlers[method] = s.authorize(pattern, method, o)
	}
	slices.Sort(allow)
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		h, ok := handlers[r.Method]
		if !ok {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, r, http.StatusMethodNotAllowed, r.Method+" is not allowed here; use "+strings.Join(allow, " or "), "")
			return
		}
		h(w, r)
	})
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
var knownField = regexp.MustCompile(`^(events\[[0-9]+\]\.)?(body|events|event_name|event_id|account_id|payload|payload\.id|payload\.time|delivery_id|endpoint_id|recover_id|status|since|until|limit|cursor|key_id|name|scopes|scopes\[[0-9]+\]|expires_at|reason|Authorization|Content-Type|Content-Encoding|expires_in)$`)

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
