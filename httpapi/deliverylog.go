package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/workflows"
)

// DeliveryLog is what the delivery log routes need: *LogDB. Every call is
// scoped to one account: another account's delivery is an error wrapping
// ErrDeliveryNotFound, a bad filter an *event.FieldError.
type DeliveryLog interface {
	List(ctx context.Context, accountID string, f LogFilter) (LogPage, error)
	Get(ctx context.Context, accountID, deliveryID string) (LoggedDelivery, error)
	Attempts(ctx context.Context, accountID, deliveryID string) ([]LoggedAttempt, error)
}

type attemptList struct {
	Attempts []LoggedAttempt `json:"attempts"`
}

// listParams are the query parameters GET .../deliveries takes; any other
// is refused, since a misspelt filter would silently widen the answer.
var listParams = []string{"endpoint_id", "status", "event_name", "since", "until", "limit", "cursor"}

// listLogDeliveries is GET /v1/accounts/{account_id}/deliveries: a page of
// the account's deliveries from the delivery log, newest first.
func (s *Server) listLogDeliveries(w http.ResponseWriter, r *http.Request) {
	f, ref := logFilter(r.URL.Query())
	if ref != nil {
		writeAPIError(w, r, ref.status, ref.body)
		return
	}
	s.onLog(w, r, func(ctx context.Context, account, _ string) (any, error) {
		page, err := s.deliveryLog.List(ctx, account, f)
		if err != nil {
			return nil, err
		}
		if page.Deliveries == nil {
			page.Deliveries = []LoggedDelivery{}
		}
		annotate(r, slog.Int("deliveries", len(page.Deliveries)))
		return page, nil
	})
}

// getLogDelivery is GET /v1/accounts/{account_id}/deliveries/{delivery_id}.
func (s *Server) getLogDelivery(w http.ResponseWriter, r *http.Request) {
	s.onLog(w, r, func(ctx context.Context, account, id string) (any, error) {
		return s.deliveryLog.Get(ctx, account, id)
	})
}

// getLogAttempts is GET /v1/accounts/{account_id}/deliveries/{delivery_id}/attempts:
// every attempt the log holds, oldest first, response excerpts opened.
func (s *Server) getLogAttempts(w http.ResponseWriter, r *http.Request) {
	s.onLog(w, r, func(ctx context.Context, account, id string) (any, error) {
		as, err := s.deliveryLog.Attempts(ctx, account, id)
		if err != nil {
			return nil, err
		}
		if as == nil {
			as = []LoggedAttempt{}
		}
		return attemptList{Attempts: as}, nil
	})
}

// logFilter reads the list route's query: each parameter at most once and
// not empty, times in RFC 3339.
func logFilter(q url.Values) (LogFilter, *refusal) {
	f := LogFilter{Limit: DefaultLogLimit}
	for _, k := range slices.Sorted(maps.Keys(q)) { // the first bad one by name, the same every time
		vs := q[k]
		switch {
		case !slices.Contains(listParams, k):
			return f, refuse(http.StatusUnprocessableEntity, k, "%s: is not a parameter of this route, which takes %s", k, strings.Join(listParams, ", "))
		case len(vs) > 1:
			return f, refuse(http.StatusUnprocessableEntity, k, "%s: is given %d times; give it once", k, len(vs))
		case vs[0] == "":
			return f, refuse(http.StatusUnprocessableEntity, k, "%s: is empty; leave it out to not filter by it", k)
		}
	}
	f.EndpointID, f.EventName, f.Cursor = q.Get("endpoint_id"), q.Get("event_name"), q.Get("cursor")
	if v := q.Get("status"); v != "" {
		if !slices.Contains(LogStatuses, v) {
			return f, refuse(http.StatusUnprocessableEntity, "status", "status: %q is none of %s", v, strings.Join(LogStatuses, ", "))
		}
		f.Status = v
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLogLimit {
			return f, refuse(http.StatusUnprocessableEntity, "limit", "limit: must be a whole number from 1 to %d", MaxLogLimit)
		}
		f.Limit = n
	}
	var ref *refusal
	if f.Since, ref = queryTime(q, "since"); ref != nil {
		return f, ref
	}
	if f.Until, ref = queryTime(q, "until"); ref != nil {
		return f, ref
	}
	if err := f.Validate(); err != nil {
		return f, logFieldRefusal(err)
	}
	return f, nil
}

// queryTime reads an RFC 3339 time. A "+" of an offset sent unencoded
// arrives as a space: the refusal says to encode it.
func queryTime(q url.Values, name string) (time.Time, *refusal) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, refuse(http.StatusUnprocessableEntity, name, "%s: %q is not an RFC 3339 time such as 2026-04-18T20:27:25Z (encode a + offset as %%2B)", name, v)
	}
	return t, nil
}

// logFieldRefusal is an *event.FieldError as a 422 naming its field.
func logFieldRefusal(err error) *refusal {
	var fe *event.FieldError
	if errors.As(err, &fe) {
		return refuse(http.StatusUnprocessableEntity, fe.Field, "%s", fe.Error())
	}
	return refuse(http.StatusUnprocessableEntity, "", "%s", err.Error())
}

// onLog runs one call on the account's delivery log under the API's limits
// and maps its errors to answers; id is the path's delivery_id, if any.
func (s *Server) onLog(w http.ResponseWriter, r *http.Request, call func(ctx context.Context, account, id string) (any, error)) {
	account, id := r.PathValue("account_id"), r.PathValue("delivery_id")
	if err := event.CheckAccountID(account); err != nil {
		writeError(w, r, http.StatusUnprocessableEntity, "account_id: "+err.Error(), "account_id")
		return
	}
	if id != "" { // the routes of one delivery
		if _, _, err := workflows.ParseDeliveryID(id); err != nil {
			writeError(w, r, http.StatusBadRequest, err.Error(), "delivery_id")
			return
		}
		annotate(r, slog.String("delivery_id", id))
	}
	if s.deliveryLog == nil {
		writeError(w, r, http.StatusNotFound, "this server keeps no delivery log: start it with --log-db (or --endpoints-db)", "")
		return
	}
	ctx, done, ok := s.bounded(w, r)
	if !ok {
		return
	}
	defer done()

	v, err := call(ctx, account, id)
	var fe *event.FieldError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.As(err, &fe):
		writeAPIError(w, r, http.StatusUnprocessableEntity, logFieldRefusal(err).body)
	case errors.Is(err, ErrDeliveryNotFound):
		writeError(w, r, http.StatusNotFound, "the account has no delivery with this delivery_id in the delivery log", "delivery_id")
	case errors.Is(err, context.DeadlineExceeded), r.Context().Err() != nil:
		annotate(r, slog.String("error", err.Error()))
		writeUnavailable(w, r, retryAfterUnavailable, "the delivery log did not answer in time; retry after Retry-After seconds")
	default:
		annotate(r, slog.String("error", err.Error()))
		writeError(w, r, http.StatusInternalServerError, "internal error reading the delivery log; retry later", "")
	}
}
