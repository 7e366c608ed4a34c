// Command receiver is an example customer endpoint for demos and local
// testing. It verifies every request's Standard Webhooks signature with
// package webhookverify, as a customer's Go receiver would, and answers:
//
//	POST /ok      200 once verified
//	POST /flaky   503 (with Retry-After: --flaky-retry-after, if positive) for the first
//	              --flaky-failures attempts of each webhook-id, then 200
//	POST /down    503, always
//	POST /gone    410, asking hookrelay to stop
//	GET /healthz  200, for health checks
//
// It logs ids and outcomes only, never the payload's personal fields.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/webhookverify"
)

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := pflag.NewFlagSet("receiver", pflag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9000", "address to listen on")
	secretFile := fs.String("secret-file", "", "file holding the endpoint's whsec_ secrets, one per line: during a rotation the new and the old (or env HOOKRELAY_RECEIVER_SECRET)")
	flakyFailures := fs.Int("flaky-failures", 2, "how many attempts /flaky refuses before accepting")
	flakyRetryAfter := fs.Int("flaky-retry-after", 1, "Retry-After seconds /flaky sends with its 503s; 0 sends none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw := os.Getenv("HOOKRELAY_RECEIVER_SECRET")
	if *secretFile != "" {
		data, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("--secret-file: %w", err)
		}
		raw = string(data)
	}
	if raw == "" {
		return errors.New("--secret-file: required (or set HOOKRELAY_RECEIVER_SECRET)")
	}
	verifier, err := webhookverify.New(strings.Fields(raw)...)
	if err != nil {
		return fmt.Errorf("--secret-file: %w", err)
	}
	r := &receiver{verifier: verifier, flakyFailures: *flakyFailures, flakyRetryAfter: *flakyRetryAfter, seen: map[string]int{}, log: slog.New(slog.NewJSONHandler(os.Stdout, nil))}
	srv := &http.Server{Addr: *listen, Handler: r, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	r.log.Info("receiver listening", "addr", *listen)
	return srv.ListenAndServe()
}

type receiver struct {
	verifier        *webhookverify.Verifier
	flakyFailures   int
	flakyRetryAfter int
	log             *slog.Logger

	mu   sync.Mutex
	seen map[string]int // attempts per webhook-id
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" && r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok"}` + "\n"))
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	id := r.Header.Get(webhookverify.HeaderID)
	if err := rc.verifier.Verify(r.Header, body); err != nil {
		// Each failure has its own error; a real receiver might alert on
		// stale timestamps (clock skew, replays) differently from bad signatures.
		note := "signature: " + err.Error()
		if errors.Is(err, webhookverify.ErrStaleTimestamp) {
			note = "replayed or delayed: " + err.Error()
		}
		rc.answer(w, r, id, "", http.StatusUnauthorized, note)
		return
	}
	var ev struct {
		EventName string `json:"event_name"`
		Payload   struct {
			ID json.Number `json:"id"`
		} `json:"payload"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		rc.answer(w, r, id, "", http.StatusBadRequest, "body is not an event")
		return
	}
	rc.mu.Lock()
	rc.seen[id]++
	n := rc.seen[id]
	rc.mu.Unlock()

	what := ev.EventName + " mail log " + ev.Payload.ID.String()
	switch r.URL.Path {
	case "/ok":
		rc.answer(w, r, id, what, http.StatusOK, "accepted")
	case "/flaky":
		if n <= rc.flakyFailures {
			if rc.flakyRetryAfter > 0 {
				w.Header().Set("Retry-After", fmt.Sprint(rc.flakyRetryAfter))
			}
			rc.answer(w, r, id, what, http.StatusServiceUnavailable, fmt.Sprintf("refusing attempt %d of %d", n, rc.flakyFailures))
			return
		}
		rc.answer(w, r, id, what, http.StatusOK, "accepted after retries")
	case "/down":
		rc.answer(w, r, id, what, http.StatusServiceUnavailable, "down for maintenance")
	case "/gone":
		rc.answer(w, r, id, what, http.StatusGone, "this endpoint is retired")
	default:
		rc.answer(w, r, id, what, http.StatusNotFound, "no such path")
	}
}

func (rc *receiver) answer(w http.ResponseWriter, r *http.Request, id, what string, code int, note string) {
	rc.log.Info("webhook", "path", r.URL.Path, "webhook_id", id, "event", what, "status", code, "note", note)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"result": note})
}
