package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// EventsClient posts to `starter serve` with its API token, as a producer
// should: PostEvents retries a 503 after its Retry-After.
type EventsClient struct {
	URL   string // http://host:port
	Token string
	HTTP  *http.Client
	// TransportRetries retries a request that got no answer this many times,
	// a second apart (0: none; the error is returned).
	TransportRetries int

	Refused atomic.Int64 // 503s answered
}

// NewEventsClient keeps connections for up to concurrency requests at once.
func NewEventsClient(url, token string, concurrency int) *EventsClient {
	return &EventsClient{URL: url, Token: token, HTTP: &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency, IdleConnTimeout: time.Minute},
	}}
}

// Response is an answer of serve's.
type Response struct {
	Code   int
	Header http.Header
	Body   []byte
}

// Do sends a request with the token and Content-Type: application/json;
// header entries replace those, and an empty value removes the header.
func (c *EventsClient) Do(ctx context.Context, method, path string, body []byte, header map[string]string) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, bytes.NewReader(body))
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return Response{Code: resp.StatusCode, Header: resp.Header, Body: b}, err
}

// PostEvents POSTs body to /v1/events, sending it again after each 503's
// Retry-After, until another answer or ctx ends; a 503 without a usable
// Retry-After is an error. refused counts this body's 503s.
func (c *EventsClient) PostEvents(ctx context.Context, body []byte) (r Response, refused int, err error) {
	for tries := 0; ; tries++ {
		r, err := c.Do(ctx, http.MethodPost, "/v1/events", body, nil)
		switch {
		case err != nil && ctx.Err() == nil && tries < c.TransportRetries:
			if err := Sleep(ctx, time.Second); err != nil {
				return r, refused, err
			}
			continue
		case err != nil:
			return r, refused, fmt.Errorf("POST /v1/events: %w", err)
		case r.Code != http.StatusServiceUnavailable:
			return r, refused, nil
		}
		refused++
		c.Refused.Add(1)
		wait, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || wait < 1 {
			return r, refused, fmt.Errorf("503 without a usable Retry-After: %q", r.Header.Get("Retry-After"))
		}
		if err := Sleep(ctx, time.Duration(wait)*time.Second); err != nil { // the server asked for this pause
			return r, refused, fmt.Errorf("still refused (%s): %w", r.Body, err)
		}
	}
}

// Sleep waits d, or less if ctx ends first (its error then).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
