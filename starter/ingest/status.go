package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/hookrelay/hookrelay/starter/deliveries"
	"github.com/hookrelay/hookrelay/workflows"
)

// getDelivery is GET /v1/deliveries/{workflow_id}: the delivery's status and
// attempts, as `starter status --output json` prints them.
func (s *Server) getDelivery(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("workflow_id")
	if _, _, err := workflows.ParseWorkflowID(id); err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error(), "workflow_id")
		return
	}
	release, ok := s.acquire()
	if !ok {
		writeUnavailable(w, r, retryAfterBusy, "too many requests in flight; retry after Retry-After seconds")
		return
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout)
	defer cancel()

	st, err := s.deliveries.Status(ctx, id)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, st)
	case errors.Is(err, deliveries.ErrNotFound):
		writeError(w, r, http.StatusNotFound, "no delivery has this workflow_id", "workflow_id")
	case errors.Is(err, deliveries.ErrNoWorker):
		annotate(r, slog.String("error", err.Error()))
		writeUnavailable(w, r, retryAfterUnavailable, "the delivery exists but no worker answered its status query; retry later")
	case errors.Is(err, deliveries.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), r.Context().Err() != nil:
		annotate(r, slog.String("error", err.Error()))
		writeUnavailable(w, r, retryAfterUnavailable, "Temporal is unavailable or too slow; retry after Retry-After seconds")
	default:
		annotate(r, slog.String("error", err.Error()))
		writeError(w, r, http.StatusInternalServerError, "internal error reading the delivery", "")
	}
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
