// Package httpapi is hookrelay's HTTP API: the mail service POSTs events to it
// and reads deliveries from it. It holds routing, authentication, the request
// rules, backpressure and the server's lifecycle; `starter serve` only wires
// it to a deliveries.Client.
//
// Backpressure without loss: a request that would wait on Temporal beyond
// MaxInFlight, or whose Temporal calls miss RequestTimeout, is refused with
// 503 and Retry-After instead of being queued in memory, and a 202 is written
// only after Temporal has confirmed every delivery of the request exists.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/hookrelay/hookrelay/apikey"
	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/accountrate"
	"github.com/hookrelay/hookrelay/internal/tracing"
	"github.com/hookrelay/hookrelay/workflows"
)

// Limits of the API.
const (
	// MaxEvents is the most events one POST /v1/events may hold.
	MaxEvents = 100
	// MaxRequestBytes caps any request body, a batch included.
	MaxRequestBytes = event.MaxBodyBytes
	// MinTokenLength refuses tokens short enough to guess.
	MinTokenLength = 16
)

// Defaults for Config's zero values.
const (
	DefaultMaxInFlight     = 64
	DefaultRequestTimeout  = 10 * time.Second
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultAccountRate and DefaultAccountBurst are `starter serve`'s
	// quota on events per account: far above what one clinic's mail makes
	// (a burst of a thousand absorbs a mailing's first minute), low enough
	// that one account's runaway producer cannot fill the task queue ahead
	// of everyone.
	DefaultAccountRate  = 100
	DefaultAccountBurst = 1000
)

// Server timeouts. Writing may take as long as reading the body plus the
// Temporal calls, so WriteTimeout is derived from RequestTimeout in Serve.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	readyTimeout      = 2 * time.Second
)

// Deliveries is what the API needs from hookrelay: *deliveries.Client.
type Deliveries interface {
	Publish(ctx context.Context, ev event.Event) ([]deliveries.Started, error)
	Status(ctx context.Context, deliveryID string) (workflows.DeliveryState, error)
	Cancel(ctx context.Context, deliveryID, reason string) (workflows.DeliveryState, error)
	Resend(ctx context.Context, deliveryID string) (deliveries.Started, error)
	RetryNow(ctx context.Context, deliveryID string) (workflows.DeliveryState, error)
	// Account is the delivery's account, for the routes under an account.
	Account(ctx context.Context, deliveryID string) (string, error)
	Ready(ctx context.Context) error
}

// Keys are the account API keys: the registry behind its key cache
// (registry.KeyCache), whose bound is how long a revoked key may still be
// accepted by another process. LookupKey answers a key whatever its
// account, with its hash, or an error wrapping apikey.ErrNotFound.
type Keys interface {
	CreateKey(ctx context.Context, accountID string, f apikey.Fields) (apikey.Key, string, error)
	ListKeys(ctx context.Context, accountID string) ([]apikey.Key, error)
	RevokeKey(ctx context.Context, accountID, id string) error
	LookupKey(ctx context.Context, id string) (apikey.Key, error)
	// CreateSession and RevokeSessions make and end portal sessions, which
	// LookupKey answers as keys (apikey.IsSessionID).
	CreateSession(ctx context.Context, accountID string, f apikey.SessionFields) (apikey.Key, string, error)
	RevokeSessions(ctx context.Context, accountID string) (int64, error)
}

// Config configures a Server.
type Config struct {
	Deliveries Deliveries
	// Endpoints serves /v1/accounts/{account_id}/endpoints: the registry, or
	// registry.FileView over the endpoints file. Nil: those routes answer 404.
	Endpoints Endpoints
	// Audit records every change made through the API before it is made
	// (a change it cannot record is refused with 503) and serves GET
	// /v1/audit: *audit.Store on the registry's database. Nil: nothing is
	// recorded, and /v1/audit answers 404.
	Audit AuditTrail
	// Recoveries serves the recover and test routes: a deliveries.Client,
	// set when the deployment keeps a delivery log (its workers serve
	// recoveries). Nil: those routes answer 404.
	Recoveries Recoveries
	// DeliveryLog serves /v1/accounts/{account_id}/deliveries: the delivery
	// log. Nil: those routes answer 404.
	DeliveryLog DeliveryLog
	// Keys serves /v1/accounts/{account_id}/api-keys and checks the keys
	// presented as bearer tokens. Nil: those routes answer 404 and no key
	// is accepted.
	Keys Keys
	// Token is the admin token: it may call every route. An empty token is
	// refused unless NoAuth is set.
	Token string
	// SecondToken, if set, is a second admin token live beside Token, so
	// the admin token can be rotated without downtime.
	SecondToken string
	NoAuth      bool
	// PortalBaseURL is where the portal's URLs point (scheme, host, and a
	// path prefix if a proxy adds one); "" takes each request's own origin.
	PortalBaseURL string
	// Portal, if set, is served under PortalPath: the portal's page and
	// assets, public (they hold no data).
	Portal http.Handler
	// MaxInFlight bounds the requests waiting on Temporal at once; the next
	// one is refused with 503 rather than queued.
	MaxInFlight int
	// RequestTimeout bounds the Temporal calls of one request; past it the
	// request is refused with 503.
	RequestTimeout time.Duration
	// AccountRate is how many events a second each account may send to
	// POST /v1/events, with AccountBurst at once; over it the request is
	// refused with 429 and Retry-After, and starts nothing. Events without
	// an account are not limited. The buckets are this process's: N
	// processes behind a load balancer admit up to N times the rate. 0: no
	// limit.
	AccountRate  float64
	AccountBurst int
	// ShutdownTimeout is how long requests in flight may finish after the
	// context given to Serve is done.
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// TracerProvider records a server span per authenticated request, named
	// by its route (POST /v1/events), continuing the caller's traceparent;
	// nil: none.
	TracerProvider trace.TracerProvider
}

// Validate names the first unusable setting.
func (c Config) Validate() error {
	switch {
	case c.NoAuth && c.Token != "":
		return errors.New("a token and no authentication were both asked for")
	case !c.NoAuth && c.Token == "":
		return errors.New("no API token configured, and authentication is not explicitly turned off")
	case !c.NoAuth && len(c.Token) < MinTokenLength:
		return fmt.Errorf("the API token is %d characters; use at least %d random ones", len(c.Token), MinTokenLength)
	case c.NoAuth && c.SecondToken != "":
		return errors.New("a second token and no authentication were both asked for")
	case c.SecondToken != "" && len(c.SecondToken) < MinTokenLength:
		return fmt.Errorf("the second API token is %d characters; use at least %d random ones", len(c.SecondToken), MinTokenLength)
	case c.SecondToken != "" && c.SecondToken == c.Token:
		return errors.New("the second API token is the first one again; give two different tokens, or one")
	case apikey.IsKey(c.Token) || apikey.IsKey(c.SecondToken):
		return fmt.Errorf("an admin token may not start with %q or %q, which mark account API keys and portal sessions", apikey.Prefix, apikey.SessionPrefix)
	case CheckPortalBaseURL(c.PortalBaseURL) != nil:
		return CheckPortalBaseURL(c.PortalBaseURL)
	case c.MaxInFlight < 0:
		return fmt.Errorf("max in flight: %d is negative", c.MaxInFlight)
	case c.RequestTimeout < 0:
		return fmt.Errorf("request timeout: %s is negative", c.RequestTimeout)
	case c.AccountRate < 0:
		return fmt.Errorf("account rate: %g is negative (0 is no limit)", c.AccountRate)
	case c.AccountRate > 0 && c.AccountBurst < 1:
		return fmt.Errorf("account burst: %d; with an account rate, at least 1", c.AccountBurst)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("shutdown timeout: %s is negative", c.ShutdownTimeout)
	}
	return nil
}

// Server is the HTTP API.
type Server struct {
	deliveries      Deliveries
	endpoints       Endpoints
	recoveries      Recoveries
	deliveryLog     DeliveryLog
	keys            Keys
	portalBaseURL   string
	portal          http.Handler
	admin           []adminToken // the live admin tokens
	noAuth          bool
	slots           chan struct{} // one per request waiting on Temporal
	audit           AuditTrail
	requestTimeout  time.Duration
	shutdownTimeout time.Duration
	log             *slog.Logger
	tracer          trace.Tracer // nil: tracing off
	draining        atomic.Bool
	temporalDown    atomic.Bool          // the last start found Temporal unavailable
	accountRate     *accountrate.Limiter // nil: no limit
	accountRateCfg  float64
	accountBurst    int
	handler         http.Handler
}

// New checks cfg and builds the server.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Deliveries == nil {
		return nil, errors.New("ingest: Config.Deliveries is nil")
	}
	s := &Server{
		deliveries:      cfg.Deliveries,
		endpoints:       cfg.Endpoints,
		recoveries:      cfg.Recoveries,
		deliveryLog:     cfg.DeliveryLog,
		keys:            cfg.Keys,
		portalBaseURL:   strings.TrimSuffix(cfg.PortalBaseURL, "/"),
		portal:          cfg.Portal,
		noAuth:          cfg.NoAuth,
		audit:           cfg.Audit,
		slots:           make(chan struct{}, orDefault(cfg.MaxInFlight, DefaultMaxInFlight)),
		requestTimeout:  orDefault(cfg.RequestTimeout, DefaultRequestTimeout),
		shutdownTimeout: orDefault(cfg.ShutdownTimeout, DefaultShutdownTimeout),
		log:             cfg.Logger,
		accountRate:     accountrate.New(cfg.AccountRate, cfg.AccountBurst, accountrate.Options{}),
		accountRateCfg:  cfg.AccountRate,
		accountBurst:    cfg.AccountBurst,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.TracerProvider != nil {
		s.tracer = tracing.Tracer(cfg.TracerProvider, "httpapi")
	}
	// Comparing hashes keeps the comparison constant-time whatever the
	// presented token's length.
	for _, t := range []string{cfg.Token, cfg.SecondToken} {
		if t != "" {
			s.admin = append(s.admin, newAdminToken(t))
		}
	}
	s.handler = s.routes()
	return s, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Handler is the API's http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers on ln until ctx is done, then stops accepting connections,
// lets requests in flight finish (up to ShutdownTimeout) and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      readTimeout + s.requestTimeout + 5*time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		// Requests get a context of their own, not ctx: SIGTERM must not
		// cancel the Temporal calls of requests already in flight.
		BaseContext: func(net.Listener) context.Context { return context.Background() },
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if s.noAuth {
		s.log.Warn("ingest serving WITHOUT authentication: anyone who reaches the address can start deliveries")
	}
	s.log.Info("ingest serving", "addr", ln.Addr().String(), "auth", !s.noAuth, "admin_tokens", len(s.admin), "api_keys", s.keys != nil,
		"max_in_flight", cap(s.slots), "request_timeout", s.requestTimeout.String())

	select {
	case err := <-served:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("ingest stopping: no new connections; requests in flight may finish", "shutdown_timeout", s.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		return fmt.Errorf("shutdown: requests still in flight after %s: %w", s.shutdownTimeout, err)
	}
	<-served // http.ErrServerClosed
	s.log.Info("ingest stopped")
	return nil
}

// bounded holds a request that calls Temporal (or the registry) to the
// API's limits: a slot of MaxInFlight, and RequestTimeout for its calls.
// When no slot is free it answers 503 and reports false.
func (s *Server) bounded(w http.ResponseWriter, r *http.Request) (ctx context.Context, done func(), ok bool) {
	release, ok := s.acquire()
	if !ok {
		writeUnavailable(w, r, retryAfterBusy, "too many requests in flight; retry after Retry-After seconds")
		return nil, nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout)
	return ctx, func() { cancel(); release() }, true
}

// acquire takes a slot for a request that will wait on Temporal. When none
// is free it fails at once: waiting would queue requests in memory.
func (s *Server) acquire() (release func(), ok bool) {
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, true
	default:
		return nil, false
	}
}
