// Package openapicheck holds tests to an OpenAPI document: every request a
// test sends through a Checker, and every answer it gets, is checked against
// the document with kin-openapi, and a mismatch fails the test.
//
// A request the document refuses may be sent on purpose (a test of the API's
// refusals): the check is then that the server refused it too, with no 2xx.
// An answer is always checked: its status must be documented for the
// operation, its headers and body must match. In tests an object schema
// that lists its properties admits no others, so a field the server writes
// and the document does not name fails. A path the document does not know
// must answer 404, a method it does not list for a path 405 with that
// path's methods in Allow, both with the document's Error body.
package openapicheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Load parses and validates an OpenAPI 3.1 document (JSON or YAML).
func Load(doc []byte) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("load the OpenAPI document: %w", err)
	}
	if !t.IsOpenAPI31OrLater() {
		return nil, fmt.Errorf("the OpenAPI document is version %s, want 3.1", t.OpenAPI)
	}
	if err := t.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is invalid: %w", err)
	}
	return t, nil
}

// Operations lists the document's operations as "METHOD /path", sorted.
func Operations(doc *openapi3.T) []string {
	var ops []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+path)
		}
	}
	slices.Sort(ops)
	return ops
}

// Options tune a Checker to the server under test.
type Options struct {
	// NoAuth: the server runs without a token, so a request without one
	// is valid there.
	NoAuth bool
}

// Checker checks exchanges against one document for one test.
type Checker struct {
	t      testing.TB
	doc    *openapi3.T
	router routers.Router
	opts   Options

	mu      sync.Mutex
	pending []Exchange // seen by Handler or Transport, checked when the test ends
}

// New loads doc for t, failing t if it does not load.
func New(t testing.TB, doc []byte, opts Options) *Checker {
	t.Helper()
	d, err := Load(doc)
	if err != nil {
		t.Fatal(err)
	}
	strict(d)
	router, err := legacy.NewRouter(d)
	if err != nil {
		t.Fatalf("route the OpenAPI document: %v", err)
	}
	c := &Checker{t: t, doc: d, router: router, opts: opts}
	t.Cleanup(c.checkPending)
	return c
}

// keep queues an exchange for checkPending. Validating costs milliseconds
// an exchange (kin-openapi compiles each schema it checks), so the wrappers
// only record, and the test's server answers as fast as it would unchecked.
func (c *Checker) keep(e Exchange) {
	e.Request = e.Request.Clone(context.Background())
	c.mu.Lock()
	c.pending = append(c.pending, e)
	c.mu.Unlock()
}

// checkPending checks every exchange kept so far, failing the test on each
// mismatch; New registers it to run when the test and its servers end.
func (c *Checker) checkPending() {
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, e := range pending {
		if err := c.Check(e); err != nil {
			c.t.Errorf("openapicheck: %v", err)
		}
	}
}

// Exchange is one request and its answer.
type Exchange struct {
	Request     *http.Request // its Body is not read: RequestBody holds it
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte
}

// Check reports whether e matches the document, and if not, how it does not.
func (c *Checker) Check(e Exchange) error {
	where := e.Request.Method + " " + e.Request.URL.Path
	req := e.Request.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(e.RequestBody))
	req.ContentLength = int64(len(e.RequestBody))
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if err := c.checkUnrouted(req, e); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		return nil
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: c.filterOptions()}
	// Only an accepted request must match: a refused one may be a test's
	// bad input, which the answer's own check covers.
	if e.Status >= 200 && e.Status < 300 {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			return fmt.Errorf("%s: the request does not match the OpenAPI document, yet the server accepted it (%d %s): %w", where, e.Status, e.Body, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: e.Status, Header: e.Header, Options: c.filterOptions()}
	out.SetBodyBytes(e.Body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("%s: the answer %d %s does not match the OpenAPI document: %w", where, e.Status, bytes.TrimSpace(e.Body), err)
	}
	return nil
}

func (c *Checker) filterOptions() *openapi3filter.Options {
	auth := bearerPresent
	if c.opts.NoAuth {
		auth = openapi3filter.NoopAuthenticationFunc
	}
	return &openapi3filter.Options{
		IncludeResponseStatus: true, // an undocumented status fails
		SkipSettingDefaults:   true, // never change what the server gets
		MultiError:            true,
		AuthenticationFunc:    auth,
	}
}

// bearerPresent holds a request to the bearer scheme: the token's value is
// the server's to judge (401), its presence the document's.
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s == nil || s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return in.NewError(fmt.Errorf("security scheme %q is not checked here", in.SecuritySchemeName))
	}
	scheme, token, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return in.NewError(fmt.Errorf("no Authorization: Bearer <token>"))
	}
	return nil
}

// checkUnrouted checks the answer to a request the document has no
// operation for: 405 with Allow if the path is documented, else 404.
func (c *Checker) checkUnrouted(req *http.Request, e Exchange) error {
	var allowed []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"} {
		probe := req.Clone(context.Background())
		probe.Method = m
		if _, _, err := c.router.FindRoute(probe); err == nil {
			allowed = append(allowed, m)
		}
	}
	slices.Sort(allowed) // as the server writes Allow
	want := http.StatusNotFound
	if len(allowed) > 0 {
		want = http.StatusMethodNotAllowed
		if got := e.Header.Get("Allow"); got != strings.Join(allowed, ", ") {
			return fmt.Errorf("answered Allow %q, but the OpenAPI document lists %q for this path", got, strings.Join(allowed, ", "))
		}
	}
	if e.Status != want {
		return fmt.Errorf("the OpenAPI document has no such operation, so the answer must be %d, not %d %s (document the route in the OpenAPI document)",
			want, e.Status, bytes.TrimSpace(e.Body))
	}
	return c.checkError(e)
}

// checkError checks a body against the document's Error schema.
func (c *Checker) checkError(e Exchange) error {
	ref := c.doc.Components.Schemas["Error"]
	if ref == nil {
		return fmt.Errorf("the OpenAPI document has no Error schema")
	}
	if ct := e.Header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("error answer with Content-Type %q, want application/json", ct)
	}
	var v any
	if err := decodeJSON(e.Body, &v); err != nil {
		return fmt.Errorf("error answer %s: %w", e.Body, err)
	}
	if err := ref.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return fmt.Errorf("error answer %s does not match the Error schema: %w", bytes.TrimSpace(e.Body), err)
	}
	return nil
}
