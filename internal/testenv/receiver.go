package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookrelay/hookrelay/webhookverify"
)

// Answer gives the status for a verified request: id is its webhook-id and
// n counts the requests with that id so far, this one included. It may set
// headers on w (Retry-After), but not write the status or a body.
type Answer func(id string, n int, w http.ResponseWriter) int

// Always answers code.
func Always(code int) Answer {
	return func(string, int, http.ResponseWriter) int { return code }
}

// Healable answers code until heal is called, and 200 after: an endpoint
// that is down, then comes back. heal returns when it healed.
func Healable(code int) (answer Answer, heal func() time.Time) {
	var healed atomic.Bool
	answer = func(string, int, http.ResponseWriter) int {
		if healed.Load() {
			return http.StatusOK
		}
		return code
	}
	return answer, func() time.Time {
		healed.Store(true)
		return time.Now()
	}
}

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	// Secret is the endpoints' signing secret (whsec_...).
	Secret string
	// Answer answers verified requests; nil answers 200.
	Answer Answer
	// KeepRequests keeps every request, headers and body too, for Requests.
	// A long run leaves it off and reads the counts.
	KeepRequests bool
}

// Request is one request a Receiver answered.
type Request struct {
	ID        string // webhook-id
	N         int    // requests with this webhook-id so far, this one included
	Header    http.Header
	Body      []byte
	VerifyErr error // the signature did not verify; it was answered 401
	Status    int
	At        time.Time // when it was answered
}

// Stats counts what a Receiver answered.
type Stats struct {
	Requests int
	// Rejected failed signature verification.
	Rejected int
	// Duplicates are verified 2xx answers beyond the first per webhook-id.
	Duplicates int
	ByStatus   map[int]int
}

// Receiver is a customer endpoint on 127.0.0.1: a real HTTP server that
// verifies every request's Standard Webhooks signature with package
// webhookverify, answers 401 to one that does not verify and the others as
// its Answer says, and counts them by webhook-id.
type Receiver struct {
	URL  string // http://127.0.0.1:port
	Addr string // 127.0.0.1:port

	srv      *http.Server
	verifier *webhookverify.Verifier
	answer   Answer
	keep     bool

	mu          sync.Mutex
	seen        map[string]int       // requests per webhook-id
	accepted    map[string]time.Time // first verified 2xx per webhook-id
	kept        []Request
	stats       Stats
	firstReject error
}

// NewReceiver starts a receiver on a free port of 127.0.0.1.
func NewReceiver(o ReceiverOptions) (*Receiver, error) {
	v, err := webhookverify.New(o.Secret)
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: listen: %w", err)
	}
	rc := &Receiver{
		URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String(), verifier: v, answer: o.Answer, keep: o.KeepRequests,
		seen: map[string]int{}, accepted: map[string]time.Time{}, stats: Stats{ByStatus: map[int]int{}},
	}
	if rc.answer == nil {
		rc.answer = Always(http.StatusOK)
	}
	rc.srv = &http.Server{Handler: http.HandlerFunc(rc.serve), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go rc.srv.Serve(ln)
	return rc, nil
}

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	req := Request{ID: r.Header.Get(webhookverify.HeaderID), VerifyErr: rc.verifier.Verify(r.Header, body), Status: http.StatusUnauthorized}
	rc.mu.Lock()
	rc.seen[req.ID]++
	req.N = rc.seen[req.ID]
	rc.mu.Unlock()
	if req.VerifyErr == nil {
		req.Status = rc.answer(req.ID, req.N, w)
	}
	req.At = time.Now()
	if rc.keep {
		req.Header, req.Body = r.Header.Clone(), body
	}

	rc.mu.Lock()
	rc.stats.Requests++
	rc.stats.ByStatus[req.Status]++
	switch {
	case req.VerifyErr != nil:
		rc.stats.Rejected++
		if rc.firstReject == nil {
			rc.firstReject = req.VerifyErr
		}
	case req.Status/100 == 2:
		if _, ok := rc.accepted[req.ID]; ok {
			rc.stats.Duplicates++
		} else {
			rc.accepted[req.ID] = req.At
		}
	}
	if rc.keep {
		rc.kept = append(rc.kept, req)
	}
	rc.mu.Unlock()
	w.WriteHeader(req.Status)
}

// Requests are the requests answered so far, in the order answered (with
// KeepRequests only).
func (rc *Receiver) Requests() []Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Request(nil), rc.kept...)
}

// Count is how many requests carried webhook-id id.
func (rc *Receiver) Count(id string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.seen[id]
}

// Accepted says when each of ids was first answered a verified 2xx (zero if
// not yet), and how many were.
func (rc *Receiver) Accepted(ids []string) ([]time.Time, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]time.Time, len(ids))
	n := 0
	for i, id := range ids {
		if t, ok := rc.accepted[id]; ok {
			out[i] = t
			n++
		}
	}
	return out, n
}

// Stats are the counts so far.
func (rc *Receiver) Stats() Stats {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	s := rc.stats
	s.ByStatus = maps.Clone(rc.stats.ByStatus)
	return s
}

// Verified fails if any request failed signature verification.
func (rc *Receiver) Verified() error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.stats.Rejected > 0 {
		return fmt.Errorf("receiver: %d requests failed signature verification, first: %w", rc.stats.Rejected, rc.firstReject)
	}
	return nil
}

// Close stops the server, letting requests in flight finish for a few seconds.
func (rc *Receiver) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rc.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		rc.srv.Close()
	}
}
