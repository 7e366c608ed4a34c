package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hookrelay/hookrelay/webhookverify"
)

// Receiver paths: one endpoint that accepts, one that never does.
const (
	pathOK          = "/ok"
	pathUnavailable = "/unavailable"
)

// receiver is the loopback endpoint both workflow kinds POST to. It verifies
// every signature and timestamps each verified 2xx: the end of a delivery's
// latency.
type receiver struct {
	url      string
	srv      *http.Server
	verifier *webhookverify.Verifier

	mu          sync.Mutex
	delivered   map[string]time.Time // webhook-id -> first verified 2xx
	duplicates  int                  // verified 2xx beyond the first per webhook-id
	rejected    int                  // signature verification failed
	firstReject error
	unavailable int // 503s answered
}

func startReceiver(secret string) (*receiver, error) {
	v, err := webhookverify.New(secret)
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: listen: %w", err)
	}
	rc := &receiver{url: "http://" + ln.Addr().String(), verifier: v, delivered: map[string]time.Time{}}
	rc.srv = &http.Server{Handler: http.HandlerFunc(rc.serve), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go rc.srv.Serve(ln)
	return rc, nil
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	if err := rc.verifier.Verify(r.Header, body); err != nil {
		rc.mu.Lock()
		rc.rejected++
		if rc.firstReject == nil {
			rc.firstReject = err
		}
		rc.mu.Unlock()
		http.Error(w, "signature", http.StatusUnauthorized)
		return
	}
	switch r.URL.Path {
	case pathOK:
		now := time.Now()
		id := r.Header.Get(webhookverify.HeaderID)
		rc.mu.Lock()
		if _, seen := rc.delivered[id]; seen {
			rc.duplicates++
		} else {
			rc.delivered[id] = now
		}
		rc.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	case pathUnavailable:
		rc.mu.Lock()
		rc.unavailable++
		rc.mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable) // no Retry-After: the schedule decides
	default:
		http.NotFound(w, r)
	}
}

// deliveredAt returns when each of ids was first delivered (zero if not
// yet) and how many were.
func (rc *receiver) deliveredAt(ids []string) ([]time.Time, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]time.Time, len(ids))
	n := 0
	for i, id := range ids {
		if t, ok := rc.delivered[id]; ok {
			out[i] = t
			n++
		}
	}
	return out, n
}

// counts returns the receiver's counters.
func (rc *receiver) counts() (duplicates, rejected, unavailable int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.duplicates, rc.rejected, rc.unavailable
}

// checkSignatures fails if any request failed verification.
func (rc *receiver) checkSignatures() error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.rejected > 0 {
		return fmt.Errorf("receiver: %d requests failed signature verification, first: %w", rc.rejected, rc.firstReject)
	}
	return nil
}

func (rc *receiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rc.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		rc.srv.Close()
	}
}
