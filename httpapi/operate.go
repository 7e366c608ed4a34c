package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hookrelay/hookrelay/audit"
	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/workflows"
)

// cancelRequest is the optional body of POST /v1/deliveries/{id}/cancel.
type cancelRequest struct {
	Reason string `json:"reason"`
}

// postCancel is POST /v1/deliveries/{delivery_id}/cancel, and the same
// under /v1/accounts/{account_id}/: stop an open delivery, waiting for it to close, and answer its final state.
func (s *Server) postCancel(w http.ResponseWriter, r *http.Request) {
	var req cancelRequest
	if r.ContentLength != 0 {
		if ref := checkContentHeaders(r.Header); ref != nil {
			writeAPIError(w, r, ref.status, ref.body)
			return
		}
		body, ref := readBody(w, r)
		if ref != nil {
			writeAPIError(w, r, ref.status, ref.body)
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if len(body) > 0 {
			if err := dec.Decode(&req); err != nil {
				writeError(w, r, http.StatusUnprocessableEntity, `the body must be {"reason": "..."} or empty`, "reason")
				return
			}
		}
		if utf8.RuneCountInString(req.Reason) > workflows.MaxReasonLength {
			writeError(w, r, http.StatusUnprocessableEntity, "reason is longer than 500 characters", "reason")
			return
		}
	}
	var changes []string
	if req.Reason != "" {
		changes = []string{"reason"}
	}
	s.onDelivery(w, r, http.StatusOK, &audit.Record{Action: audit.DeliveryCancel, Changes: changes}, func(ctx context.Context, id string) (any, error) {
		return s.deliveries.Cancel(ctx, id, req.Reason)
	})
}

// postResend is POST /v1/deliveries/{delivery_id}/resend, and the same
// under /v1/accounts/{account_id}/: send the event
// again with the same webhook-id; a closed delivery gets a new run.
func (s *Server) postResend(w http.ResponseWriter, r *http.Request) {
	s.onDelivery(w, r, http.StatusAccepted, &audit.Record{Action: audit.DeliveryResend}, func(ctx context.Context, id string) (any, error) {
		started, err := s.deliveries.Resend(ctx, id)
		return deliveryOf(started), err
	})
}

// postRetryNow is POST /v1/accounts/{account_id}/deliveries/{delivery_id}/retry-now:
// cut an open delivery's current wait short and answer its status.
func (s *Server) postRetryNow(w http.ResponseWriter, r *http.Request) {
	s.onDelivery(w, r, http.StatusOK, &audit.Record{Action: audit.DeliveryRetryNow}, func(ctx context.Context, id string) (any, error) {
		return s.deliveries.RetryNow(ctx, id)
	})
}

// onDelivery runs one call about the delivery in the path, under the same
// limits as any Temporal call, and maps its errors to answers. Under
// /v1/accounts/{account_id}/ the delivery must be that account's: another
// account's answers 404, as one that does not exist. A change (non-nil) is
// recorded in the audit trail, under the account of the delivery's endpoint,
// before it is made, or not made.
func (s *Server) onDelivery(w http.ResponseWriter, r *http.Request, okStatus int, change *audit.Record, call func(ctx context.Context, id string) (any, error)) {
	id := r.PathValue("delivery_id")
	if _, _, err := workflows.ParseDeliveryID(id); err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error(), "delivery_id")
		return
	}
	ctx, done, ok := s.bounded(w, r)
	if !ok {
		return
	}
	defer done()
	if err := s.ofAccount(ctx, r, id); err != nil {
		answerDelivery(w, r, okStatus, nil, err)
		return
	}
	account := ""
	if change != nil && s.audit != nil {
		account = s.deliveryAccount(ctx, id)
	}
	settle, ok := s.audited(w, r, ctx, change, account, id)
	if !ok {
		return
	}
	v, err := call(ctx, id)
	settle(answerDelivery(w, r, okStatus, v, err), "")
}

// answerDelivery writes the answer to a delivery call and returns its status.
func answerDelivery(w http.ResponseWriter, r *http.Request, okStatus int, v any, err error) int {
	switch {
	case err == nil:
		writeJSON(w, okStatus, v)
		return okStatus
	case errors.Is(err, deliveries.ErrNotFound):
		writeError(w, r, http.StatusNotFound, "no delivery has this delivery_id", "delivery_id")
		return http.StatusNotFound
	case errors.Is(err, deliveries.ErrPlaintextInput):
		writeError(w, r, http.StatusConflict, "the delivery's input did not arrive sealed (a plaintext start): it is not resent; an operator may resend it with starter resend --reseal-plaintext", "delivery_id")
		return http.StatusConflict
	case errors.Is(err, deliveries.ErrOperatorLimit):
		writeOperatorLimit(w, r, err)
		return http.StatusTooManyRequests
	case errors.Is(err, deliveries.ErrFinished):
		writeError(w, r, http.StatusConflict, "the delivery has already finished; resend it instead", "delivery_id")
		return http.StatusConflict
	default:
		return answerTemporalError(w, r, err, "the delivery exists but no worker answered; retry later")
	}
}

// writeOperatorLimit answers a resend or retry-now over the delivery's
// bound: 429, with Retry-After the seconds until the next is accepted.
func writeOperatorLimit(w http.ResponseWriter, r *http.Request, err error) {
	retryAfter := time.Hour
	var limit *deliveries.OperatorLimitError
	if errors.As(err, &limit) {
		retryAfter = limit.RetryAfter
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(max(retryAfter.Round(time.Second)/time.Second, 1))))
	writeError(w, r, http.StatusTooManyRequests, fmt.Sprintf(
		"the delivery has had %d resends and retry-nows in the last hour, its limit; nothing was done: send again after Retry-After seconds",
		workflows.MaxOperatorAttempts), "delivery_id")
}

// answerTemporalError answers a Temporal call's error that is not the
// caller's to name: no worker answered a query or update (noWorker says
// what), Temporal unavailable or too slow, or anything else (500). It
// returns the status.
func answerTemporalError(w http.ResponseWriter, r *http.Request, err error, noWorker string) int {
	annotate(r, slog.String("error", err.Error()))
	switch {
	case errors.Is(err, deliveries.ErrNoWorker):
		writeUnavailable(w, r, retryAfterUnavailable, noWorker)
		return http.StatusServiceUnavailable
	case errors.Is(err, deliveries.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), r.Context().Err() != nil:
		writeUnavailable(w, r, retryAfterUnavailable, "Temporal is unavailable or too slow; retry after Retry-After seconds")
		return http.StatusServiceUnavailable
	default:
		writeError(w, r, http.StatusInternalServerError, "internal error", "")
		return http.StatusInternalServerError
	}
}

// ofAccount is nil when the path names no account or the delivery is the
// path's account's, and otherwise an error wrapping deliveries.ErrNotFound.
func (s *Server) ofAccount(ctx context.Context, r *http.Request, id string) error {
	want := r.PathValue("account_id")
	if want == "" {
		return nil
	}
	got, err := s.deliveries.Account(ctx, id)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("delivery %s is not of account %s: %w", id, want, deliveries.ErrNotFound)
	}
	return nil
}
