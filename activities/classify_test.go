package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/workflows"
)

func TestClassify(t *testing.T) {
	resp := func(code int) *http.Response {
		return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d X", code), Header: http.Header{}}
	}
	tests := []struct {
		resp *http.Response
		err  error
		want workflows.Outcome
	}{
		{resp(200), nil, workflows.OutcomeDelivered},
		{resp(201), nil, workflows.OutcomeDelivered},
		{resp(299), nil, workflows.OutcomeDelivered},
		{resp(301), nil, workflows.OutcomeRedirect},
		{resp(307), nil, workflows.OutcomeRedirect},
		{resp(400), nil, workflows.OutcomeHTTPError},
		{resp(404), nil, workflows.OutcomeHTTPError},
		{resp(410), nil, workflows.OutcomeGone},
		{resp(429), nil, workflows.OutcomeHTTPError},
		{resp(500), nil, workflows.OutcomeHTTPError},
		{resp(503), nil, workflows.OutcomeHTTPError},
		{nil, &url.Error{Op: "Post", URL: "https://x.example.com/?t=secret", Err: context.DeadlineExceeded}, workflows.OutcomeTimeout},
		{nil, &url.Error{Op: "Post", URL: "https://x.example.com/?t=secret", Err: errors.New("connection refused")}, workflows.OutcomeConnectionError},
	}
	for _, tt := range tests {
		got, msg := classify(tt.resp, tt.err)
		if got != tt.want {
			t.Errorf("classify(%v, %v) = %s, want %s", tt.resp, tt.err, got, tt.want)
		}
		if tt.err != nil && msg == "" || strings.Contains(msg, "t=secret") {
			t.Errorf("classify message %q", msg)
		}
		if got.Retryable() != (got != workflows.OutcomeDelivered && got != workflows.OutcomeGone) {
			t.Errorf("%s.Retryable() = %v", got, got.Retryable())
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"120", 120 * time.Second},
		{" 7 ", 7 * time.Second},
		{"86400", 24 * time.Hour},
		{"999999999999", 24 * time.Hour},
		{"soon", 0},
		{"1.5", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(1500 * time.Millisecond).Format(time.RFC850), 1 * time.Second}, // RFC 850 dates have whole seconds
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(72 * time.Hour).Format(http.TimeFormat), 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestRetryAfterOnlyOn429And503(t *testing.T) {
	now := time.Now()
	for code, want := range map[int]time.Duration{429: 5 * time.Second, 503: 5 * time.Second, 500: 0, 502: 0, 200: 0} {
		resp := &http.Response{StatusCode: code, Header: http.Header{"Retry-After": {"5"}}}
		if got := retryAfter(resp, now); got != want {
			t.Errorf("retryAfter(%d) = %s, want %s", code, got, want)
		}
	}
}
