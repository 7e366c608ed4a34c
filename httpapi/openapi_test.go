package httpapi

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/hookrelay/hookrelay/internal/openapicheck"
)

// The document loads and validates as OpenAPI 3.1 with kin-openapi, from
// its YAML source and as served.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	for name, doc := range map[string][]byte{"openapi.yaml": openAPIYAML, "OpenAPI()": OpenAPI()} {
		if _, err := openapicheck.Load(doc); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	var fromJSON any
	if err := json.Unmarshal(OpenAPI(), &fromJSON); err != nil {
		t.Fatalf("OpenAPI() is not JSON: %v", err)
	}
	if !bytes.Contains(OpenAPI(), []byte("Bearer <token>")) {
		t.Errorf("OpenAPI() escapes or loses the description's <token>")
	}
}

// Every route the server answers is in the document, with the same methods,
// and every path of the document is a route: routeTable is what the mux is
// built from.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, err := openapicheck.Load(openAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	documented := openapicheck.Operations(doc)
	s := newTestServer(t, &fakeDeliveries{}, nil)
	var served []string
	for _, rt := range s.routeTable() {
		for method := range rt.methods {
			served = append(served, method+" "+rt.pattern)
		}
	}
	slices.Sort(served)
	for _, op := range served {
		if !slices.Contains(documented, op) {
			t.Errorf("the server answers %s, which httpapi/openapi.yaml does not document: add it to the document", op)
		}
	}
	for _, op := range documented {
		if !slices.Contains(served, op) {
			t.Errorf("httpapi/openapi.yaml documents %s, which the server does not answer", op)
		}
	}
}

// GET /v1/openapi.json serves the document without a token.
func TestOpenAPIServed(t *testing.T) {
	h := newTestServer(t, &fakeDeliveries{}, nil).Handler()
	w := do(t, h, "GET", "/v1/openapi.json", "", "Authorization", "")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/openapi.json: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if !bytes.Equal(w.Body.Bytes(), OpenAPI()) {
		t.Fatalf("GET /v1/openapi.json served another document than OpenAPI()")
	}
	if _, err := openapicheck.Load(w.Body.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// Each operation's security and x-hookrelay-scope in the document say what
// routeTable declares: a key's scheme and scope only on account-scoped
// operations, no security on public ones.
func TestOpenAPIDocumentsEveryScope(t *testing.T) {
	doc, err := openapicheck.Load(openAPIYAML)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, &fakeDeliveries{}, nil)
	for _, rt := range s.routeTable() {
		for method, o := range rt.methods {
			item := doc.Paths.Find(rt.pattern)
			if item == nil || item.GetOperation(method) == nil {
				continue // TestOpenAPIDocumentsEveryRoute says so
			}
			docOp := item.GetOperation(method)
			scope, _ := docOp.Extensions["x-hookrelay-scope"].(string)
			schemes := map[string]bool{}
			security := doc.Security
			if docOp.Security != nil {
				security = *docOp.Security
			}
			for _, req := range security {
				for name := range req {
					schemes[name] = true
				}
			}
			where := method + " " + rt.pattern
			switch o.access.kind {
			case publicAccess:
				if len(schemes) != 0 || scope != "" {
					t.Errorf("%s is public; the document gives it security %v, scope %q", where, schemes, scope)
				}
			case adminOnly:
				if !schemes["bearer"] || schemes["apiKey"] || scope != "" {
					t.Errorf("%s is the admin's only; the document gives it security %v, scope %q", where, schemes, scope)
				}
			case accountScoped:
				if !schemes["bearer"] || !schemes["apiKey"] || scope != string(o.access.scope) {
					t.Errorf("%s needs %s; the document gives it security %v, scope %q", where, o.access.scope, schemes, scope)
				}
			}
		}
	}
}
