package main

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/internal/signing"
	"github.com/hookrelay/hookrelay/webhookverify"
)

// The example receiver accepts what hookrelay signs and refuses the rest,
// telling a stale timestamp from a bad signature.
func TestReceiverVerifies(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // the Standard Webhooks test vector's
	v, err := webhookverify.New(secret)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	rc := &receiver{verifier: v, flakyFailures: 1, seen: map[string]int{}, log: slog.New(slog.NewJSONHandler(&logged, nil))}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	sec, _ := signing.ParseSecret(secret)
	other, _ := signing.ParseSecret("whsec_" + strings.Repeat("C", 32))
	body := []byte(`{"event_name":"api_mail_log_delivered","payload":{"id":5,"subject":"Fake subject"}}`)

	post := func(path string, at time.Time, s signing.Secret) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		signing.Headers(req.Header, "acme:evt"+path, at, body, s)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := post("/ok", time.Now(), sec); code != http.StatusOK {
		t.Fatalf("signed request: %d", code)
	}
	if code, out := post("/ok", time.Now().Add(-10*time.Minute), sec); code != http.StatusUnauthorized || !strings.Contains(out, "replayed or delayed") {
		t.Fatalf("stale request: %d %s", code, out)
	}
	if code, out := post("/ok", time.Now(), other); code != http.StatusUnauthorized || !strings.Contains(out, "signature") {
		t.Fatalf("wrong secret: %d %s", code, out)
	}
	if code, _ := post("/flaky", time.Now(), sec); code != http.StatusServiceUnavailable {
		t.Fatalf("/flaky first attempt: %d", code)
	}
	if resp, err := http.Get(srv.URL + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz: %v %v", resp, err)
	}
	if strings.Contains(logged.String(), "Fake subject") {
		t.Fatal("the receiver logged the payload")
	}
}
