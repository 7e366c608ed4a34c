package activities

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/internal/netguard"
	"github.com/hookrelay/hookrelay/workflows"
)

// classify turns an HTTP exchange into an attempt outcome. It never
// includes the URL in the error text: URLs may carry customers' tokens.
func classify(resp *http.Response, err error) (workflows.Outcome, string) {
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		var blocked *netguard.BlockedError
		if errors.As(err, &blocked) {
			return workflows.OutcomeBlockedDestination, blocked.Error()
		}
		var port *netguard.PortError
		if errors.As(err, &port) {
			return workflows.OutcomeBlockedDestination, port.Error()
		}
		var netErr net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout() {
			return workflows.OutcomeTimeout, err.Error()
		}
		return workflows.OutcomeConnectionError, err.Error()
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return workflows.OutcomeDelivered, ""
	case code == http.StatusGone:
		return workflows.OutcomeGone, "410 Gone: the receiver asked for no further deliveries"
	case code >= 300 && code < 400:
		return workflows.OutcomeRedirect, "redirect to " + redactedLocation(resp.Header.Get("Location")) + " not followed; update the endpoint URL"
	default:
		return workflows.OutcomeHTTPError, resp.Status
	}
}

// redactedLocation keeps a redirect target's scheme, host and path, dropping any query.
func redactedLocation(loc string) string {
	u, err := url.Parse(loc)
	if err != nil || loc == "" {
		return "an unreadable location"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// retryAfter reads Retry-After on a 429 or 503: delay-seconds or an HTTP
// date, capped at workflows.MaxRetryAfter. It returns 0 when absent, in the
// past or unreadable, and the schedule's delay then applies.
func retryAfter(resp *http.Response, now time.Time) time.Duration {
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	return parseRetryAfter(resp.Header.Get("Retry-After"), now)
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(workflows.MaxRetryAfter/time.Second) {
			return workflows.MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0
	}
	if d <= 0 {
		return 0
	}
	// Whole seconds, rounded up, so the receiver is never asked early.
	d = time.Duration(math.Ceil(d.Seconds())) * time.Second
	return min(d, workflows.MaxRetryAfter)
}
