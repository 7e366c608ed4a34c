package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/endpoint"
	"github.com/hookrelay/hookrelay/workflows"
)

// BenchmarkAttempt measures the attempt path outside Temporal: resolve the
// endpoint, sign, POST to a loopback server over a reused connection, read
// and classify the answer.
func BenchmarkAttempt(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	cfg, err := endpoint.Parse([]byte(fmt.Sprintf("endpoints:\n  - {id: acme, url: %q, events: ['*'], secret: %s}\n", srv.URL, currentSecret)), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	// attempt is the activity without its audit line, metrics and heartbeats,
	// which need an activity context.
	a := New(cfg, NewHTTPClient(HTTPOptions{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}))
	in := workflows.AttemptInput{DeliveryID: "acme:evt_1", EndpointID: "acme", Attempt: 1, EventName: "api_mail_log_delivered",
		Payload: json.RawMessage(`{"id":42,"time":"2026-01-02T03:04:05Z","subject":"` + strings.Repeat("s", 900) + `"}`)}
	b.ReportAllocs()
	for b.Loop() {
		rec, _, err := a.attempt(context.Background(), in)
		if err != nil || rec.Outcome != workflows.OutcomeDelivered {
			b.Fatalf("attempt = %+v, %v", rec, err)
		}
	}
}
