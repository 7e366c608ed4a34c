package codecserver

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

const (
	uiOrigin = "http://127.0.0.1:8233"
	token    = "test-token-0123456789abcdefghijklmnopqrstuvwxyz"
)

// serve starts the handler on a real listener on 127.0.0.1:0.
func serve(t *testing.T, c *codec.Codec, o Options) string {
	t.Helper()
	h, err := Handler(c, o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func request(t *testing.T, method, url string, header map[string]string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func payloadsJSON(t *testing.T, ps ...*commonpb.Payload) []byte {
	t.Helper()
	b, err := protojson.Marshal(&commonpb.Payloads{Payloads: ps})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readPayloads(t *testing.T, resp *http.Response) []*commonpb.Payload {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var out commonpb.Payloads
	if err := protojson.Unmarshal(body, &out); err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
	return out.Payloads
}

func TestPreflight(t *testing.T) {
	url := serve(t, testenv.NewCodecT(t, "t1"), Options{Origin: uiOrigin, Token: token})
	resp := request(t, http.MethodOptions, url+"/decode", map[string]string{
		"Origin":                         uiOrigin,
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "authorization,content-type,x-namespace",
	}, nil)
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != uiOrigin ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}
	for _, want := range []string{"Authorization", "Content-Type", "X-Namespace"} {
		if !strings.Contains(h.Get("Access-Control-Allow-Headers"), want) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", h.Get("Access-Control-Allow-Headers"), want)
		}
	}
	if h.Get("Access-Control-Allow-Origin") == "*" || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Errorf("CORS headers must name the one origin and vary on it: %v", h)
	}
}

func TestWrongOrigin(t *testing.T) {
	c := testenv.NewCodecT(t, "t1")
	url := serve(t, c, Options{Origin: uiOrigin, Token: token})
	enc, _ := c.Encode([]*commonpb.Payload{{Data: []byte(`"x"`)}})
	for _, origin := range []string{"http://evil.example.com", "http://localhost:8233", "http://127.0.0.1:8234", "null"} {
		pre := request(t, http.MethodOptions, url+"/decode", map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST"}, nil)
		if pre.StatusCode != http.StatusForbidden || pre.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from %s: %d, ACAO %q", origin, pre.StatusCode, pre.Header.Get("Access-Control-Allow-Origin"))
		}
		// Even with the token, a browser page on another origin gets nothing.
		post := request(t, http.MethodPost, url+"/decode", map[string]string{"Origin": origin, "Authorization": "Bearer " + token}, payloadsJSON(t, enc...))
		body, _ := io.ReadAll(post.Body)
		if post.StatusCode != http.StatusForbidden || bytes.Contains(body, []byte("payloads")) {
			t.Errorf("POST from %s: %d %s", origin, post.StatusCode, body)
		}
	}
}

func TestTokenRequired(t *testing.T) {
	c := testenv.NewCodecT(t, "t1")
	url := serve(t, c, Options{Origin: uiOrigin, Token: token})
	enc, _ := c.Encode([]*commonpb.Payload{{Data: []byte(`"Fake subject"`)}})
	for name, auth := range map[string]string{
		"missing":        "",
		"wrong":          "Bearer " + strings.Repeat("x", len(token)),
		"prefix":         "Bearer " + token[:len(token)-1],
		"longer":         "Bearer " + token + "x",
		"not bearer":     "Basic " + token,
		"bare token":     token,
		"token in path?": "",
	} {
		t.Run(name, func(t *testing.T) {
			path := "/decode"
			if name == "token in path?" {
				path = "/" + token + "/decode" // PathToken is off
			}
			h := map[string]string{"Origin": uiOrigin}
			if auth != "" {
				h["Authorization"] = auth
			}
			resp := request(t, http.MethodPost, url+path, h, payloadsJSON(t, enc...))
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusUnauthorized || bytes.Contains(body, []byte("Fake subject")) {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			// The browser may read the refusal, so the UI can say why.
			if resp.Header.Get("Access-Control-Allow-Origin") != uiOrigin {
				t.Errorf("401 without CORS headers: %v", resp.Header)
			}
		})
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	c := testenv.NewCodecT(t, "t1")
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
	p, err := dc.ToPayload(map[string]string{"subject": "Fake subject 42"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.Data, []byte("Fake subject")) {
		t.Fatal("payload was not encrypted")
	}
	url := serve(t, c, Options{Origin: uiOrigin, Token: token, PathToken: true})

	for name, call := range map[string]struct{ path, auth string }{
		"bearer":     {"/decode", "Bearer " + token},
		"path token": {"/" + token + "/decode", ""},
	} {
		t.Run(name, func(t *testing.T) {
			h := map[string]string{"Origin": uiOrigin, "Content-Type": "application/json", "X-Namespace": "default"}
			if call.auth != "" {
				h["Authorization"] = call.auth
			}
			resp := request(t, http.MethodPost, url+call.path, h, payloadsJSON(t, p))
			if resp.Header.Get("Access-Control-Allow-Origin") != uiOrigin {
				t.Errorf("ACAO %q", resp.Header.Get("Access-Control-Allow-Origin"))
			}
			out := readPayloads(t, resp)
			var got map[string]string
			if len(out) != 1 || json.Unmarshal(out[0].Data, &got) != nil || got["subject"] != "Fake subject 42" {
				t.Fatalf("decoded %v", out)
			}

			// And /encode gives back a payload the codec (and so the worker) can read.
			resp = request(t, http.MethodPost, url+strings.Replace(call.path, "decode", "encode", 1), h, payloadsJSON(t, out...))
			enc := readPayloads(t, resp)
			if string(enc[0].Metadata[codec.MetadataKeyID]) != "t1" || bytes.Contains(enc[0].Data, []byte("Fake subject")) {
				t.Fatalf("encode returned %v", enc)
			}
			var back map[string]string
			if err := dc.FromPayload(enc[0], &back); err != nil || back["subject"] != "Fake subject 42" {
				t.Fatalf("re-encoded payload: %v, %v", back, err)
			}
		})
	}
}

func TestOtherPathsAndMethods(t *testing.T) {
	url := serve(t, testenv.NewCodecT(t, "t1"), Options{Origin: uiOrigin, Token: token})
	auth := map[string]string{"Authorization": "Bearer " + token}
	if resp := request(t, http.MethodGet, url+"/decode", auth, nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /decode: %d", resp.StatusCode)
	}
	if resp := request(t, http.MethodPost, url+"/metrics", auth, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}
	if resp := request(t, http.MethodPost, url+"/decode", auth, []byte("not json")); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad body: %d", resp.StatusCode)
	}
	big := bytes.Repeat([]byte(" "), MaxRequestBytes+1)
	if resp := request(t, http.MethodPost, url+"/decode", auth, big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", resp.StatusCode)
	}
}

// /healthz answers without the token, and decodes nothing.
func TestHealthz(t *testing.T) {
	url := serve(t, testenv.NewCodecT(t, "t1"), Options{Origin: uiOrigin, Token: token})
	resp := request(t, http.MethodGet, url+"/healthz", nil, nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Fatalf("GET /healthz: %d %s", resp.StatusCode, body)
	}
	if resp := request(t, http.MethodPost, url+"/healthz", nil, []byte(`{"payloads":[]}`)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /healthz without the token: %d", resp.StatusCode)
	}
}

func TestOptionsAreChecked(t *testing.T) {
	c := testenv.NewCodecT(t, "t1")
	for _, o := range []Options{
		{Origin: "127.0.0.1:8233", Token: token},
		{Origin: "http://127.0.0.1:8233/namespaces", Token: token},
		{Origin: "*", Token: token},
		{Origin: uiOrigin, Token: "short"},
		{Origin: uiOrigin, Token: strings.Repeat("a", 31) + " "},
		{Origin: uiOrigin},
	} {
		if _, err := Handler(c, o); err == nil {
			t.Errorf("Handler accepted %+v", o)
		}
	}
	if _, err := ParseOrigin("http://127.0.0.1:8233/?token=fake-token-7741"); err == nil || strings.Contains(err.Error(), "fake-token") {
		t.Errorf("ParseOrigin with a query: %v, want an error without the query", err)
	}
	if o, err := ParseOrigin("http://127.0.0.1:8233/"); err != nil || o != uiOrigin {
		t.Errorf("ParseOrigin with a trailing slash = %q, %v", o, err)
	}
	path := filepath.Join(t.TempDir(), "token")
	os.WriteFile(path, []byte(token+"\n"), 0o600)
	if got, err := ReadToken(path); err != nil || got != token {
		t.Errorf("ReadToken = %q, %v", got, err)
	}
	os.WriteFile(path, []byte("hunter2\n"), 0o600)
	if _, err := ReadToken(path); err == nil || !strings.Contains(err.Error(), "--token-file") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("ReadToken(short) = %v", err)
	}
}
