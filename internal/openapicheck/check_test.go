package openapicheck

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const doc = `
openapi: 3.1.0
info: {title: t, version: "1"}
security: [{bearer: []}]
paths:
  /things/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses:
        "200":
          description: ok
          content: {application/json: {schema: {$ref: "#/components/schemas/Thing"}}}
    post:
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      requestBody:
        required: true
        content: {application/json: {schema: {type: object, required: [name], additionalProperties: false, properties: {name: {type: string}}}}}
      responses:
        "204": {description: done}
        "422":
          description: refused
          content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}
components:
  securitySchemes: {bearer: {type: http, scheme: bearer}}
  schemas:
    Error: {type: object, required: [error], properties: {error: {type: string}}}
    Thing: {type: object, required: [name], properties: {name: {type: string}}}
`

func exchange(method, path, body string, status int, answer string, header ...string) Exchange {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer fake-token")
	r.Header.Set("Content-Type", "application/json")
	h := http.Header{"Content-Type": {"application/json"}}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return Exchange{Request: r, RequestBody: []byte(body), Status: status, Header: h, Body: []byte(answer)}
}

// What the checker lets pass and what it fails, each with the reason it names.
func TestCheck(t *testing.T) {
	c := New(t, []byte(doc), Options{})
	tests := []struct {
		name string
		e    Exchange
		want string // "" passes
	}{
		{"documented answer", exchange("GET", "/things/a", "", 200, `{"name":"x"}`), ""},
		{"undocumented field", exchange("GET", "/things/a", "", 200, `{"name":"x","extra":1}`), "extra"},
		{"missing field", exchange("GET", "/things/a", "", 200, `{}`), "name"},
		{"undocumented status", exchange("GET", "/things/a", "", 418, `{"error":"x"}`), "status is not supported"},
		{"valid request accepted", exchange("POST", "/things/a", `{"name":"x"}`, 204, ""), ""},
		{"invalid request refused", exchange("POST", "/things/a", `{"nome":"x"}`, 422, `{"error":"nome"}`), ""},
		{"invalid request accepted", exchange("POST", "/things/a", `{"nome":"x"}`, 204, ""), "yet the server accepted it"},
		{"unknown path answered 404", exchange("GET", "/other", "", 404, `{"error":"no such path"}`), ""},
		{"undocumented route answered", exchange("GET", "/other", "", 200, `{}`), "document the route"},
		{"unknown path with a body of another shape", exchange("GET", "/other", "", 404, `{"message":"x"}`), "Error schema"},
		{"wrong method answered 405", exchange("DELETE", "/things/a", "", 405, `{"error":"x"}`, "Allow", "GET, POST"), ""},
		{"Allow other than documented", exchange("DELETE", "/things/a", "", 405, `{"error":"x"}`, "Allow", "GET, PATCH, POST"), `lists "GET, POST"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Check(tt.e)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("want a pass, got %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("passed; want a failure naming %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("failure %q does not name %q", err, tt.want)
			}
		})
	}
}

// Without a token the request is invalid, and must be refused; a server
// running without authentication may accept it.
func TestCheckAuth(t *testing.T) {
	e := exchange("GET", "/things/a", "", 200, `{"name":"x"}`)
	e.Request.Header.Del("Authorization")
	if err := New(t, []byte(doc), Options{}).Check(e); err == nil || !strings.Contains(err.Error(), "accepted") {
		t.Errorf("a request without a token answered 200: %v, want a failure", err)
	}
	if err := New(t, []byte(doc), Options{NoAuth: true}).Check(e); err != nil {
		t.Errorf("without authentication: %v", err)
	}
}

// The handler and the transport pass requests and answers on unchanged.
func TestWrappersPassThrough(t *testing.T) {
	c := New(t, []byte(doc), Options{})
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"name":"` + r.PathValue("id") + `"}`))
	}))
	mux := http.NewServeMux()
	mux.Handle("/things/{id}", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{Transport: c.Transport(nil)}
	req, _ := http.NewRequest("GET", srv.URL+"/things/abc", nil)
	req.Header.Set("Authorization", "Bearer fake-token")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || string(b) != `{"name":"abc"}` {
		t.Fatalf("got %d %s", resp.StatusCode, b)
	}
}

// recordingTB keeps what a Checker reports and the cleanups it registers.
type recordingTB struct {
	testing.TB
	errors   []string
	cleanups []func()
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// A mismatch through either wrapper fails the test when it ends (the
// wrappers only record, so the server under test answers at full speed).
func TestWrappersFailTheTestAtItsEnd(t *testing.T) {
	rec := &recordingTB{TB: t}
	c := New(rec, []byte(doc), Options{})
	h := c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot) // documented nowhere
		w.Write([]byte(`{"error":"tea"}`))
	}))
	mux := http.NewServeMux()
	mux.Handle("/things/{id}", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := &http.Client{Transport: c.Transport(nil)}
	req, _ := http.NewRequest("GET", srv.URL+"/things/abc", nil)
	req.Header.Set("Authorization", "Bearer fake-token")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(rec.errors) != 0 {
		t.Fatalf("reported before the test ended: %q", rec.errors)
	}
	if len(rec.cleanups) != 1 {
		t.Fatalf("%d cleanups registered, want 1", len(rec.cleanups))
	}
	rec.cleanups[0]()
	if len(rec.errors) != 2 || !strings.Contains(rec.errors[0], "418") || !strings.Contains(rec.errors[1], "418") {
		t.Fatalf("reported %q, want the 418 once from the handler and once from the transport", rec.errors)
	}
}
