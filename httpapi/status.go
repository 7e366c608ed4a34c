package httpapi

import (
	"context"
	"log/slog"
	"net/http"
)

// getDelivery is GET /v1/deliveries/{delivery_id}: the delivery's status and
// attempts, as `starter status --output json` prints them.
func (s *Server) getDelivery(w http.ResponseWriter, r *http.Request) {
	s.onDelivery(w, r, http.StatusOK, nil, func(ctx context.Context, id string) (any, error) {
		return s.deliveries.Status(ctx, id)
	})
}

// healthz is GET /healthz: the process is up and serving.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is GET /readyz: Temporal answers, so a POST can be accepted now.
// It fails while shutting down, so a load balancer stops sending requests.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeUnavailable(w, r, retryAfterUnavailable, "shutting down")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.deliveries.Ready(ctx); err != nil {
		annotate(r, slog.String("error", err.Error()))
		writeUnavailable(w, r, retryAfterUnavailable, "Temporal is unreachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
