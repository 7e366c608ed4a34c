package tests

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/hookrelay/hookrelay/httpapi"
	"github.com/hookrelay/hookrelay/internal/openapicheck"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// checkedClient is base for the test t, holding every request it sends to
// `starter serve` and every answer to the API's OpenAPI document: an answer
// the document does not describe, or a request it refuses that the server
// accepted, fails t.
func checkedClient(t *testing.T, base *http.Client) *http.Client {
	c := *base
	c.Transport = openapicheck.New(t, httpapi.OpenAPI(), openapicheck.Options{}).Transport(base.Transport)
	return &c
}

// checkedHandler is h, the API's handler, held to its OpenAPI document.
func checkedHandler(t *testing.T, h http.Handler, noAuth bool) http.Handler {
	return openapicheck.New(t, httpapi.OpenAPI(), openapicheck.Options{NoAuth: noAuth}).Handler(h)
}

// `starter serve` serves its OpenAPI document without a token.
func TestServeServesItsOpenAPIDocument(t *testing.T) {
	srv := startServe(t, hookrelay(t), writeEndpoints(t, testenv.Endpoint{ID: "crm", URL: "https://hooks.example.com/"}))
	r, err := srv.do(http.MethodGet, "/v1/openapi.json", nil, map[string]string{"Authorization": "", "Content-Type": ""})
	if err != nil {
		t.Fatal(err)
	}
	if r.code != http.StatusOK || r.header.Get("Content-Type") != "application/json" || !bytes.Equal(r.body, httpapi.OpenAPI()) {
		t.Fatalf("GET /v1/openapi.json: %d %q, %d bytes; want 200 and the document", r.code, r.header.Get("Content-Type"), len(r.body))
	}
}
