package metrics

import (
	"maps"
	"sync"

	"go.temporal.io/sdk/client"
)

// DefaultEndpointLabels is how many endpoints get a label of their own.
const DefaultEndpointLabels = 100

// Other is the endpoint label the endpoints past the bound share.
const Other = "other"

// endpointLabels bounds the values of the endpoint label: each series is
// kept for the process's life, so one per endpoint would grow with the
// registry. The first max endpoints to carry traffic (an attempt or a
// delivery counted) keep their own label; the rest are counted as Other.
type endpointLabels struct {
	mu  sync.Mutex
	max int
	own map[string]bool
}

// label is id's label value; traffic admits id while there is room.
func (l *endpointLabels) label(id string, traffic bool) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.own[id] {
		return id
	}
	if traffic && len(l.own) < l.max {
		l.own[id] = true
		return id
	}
	return Other
}

// boundedHandler holds back the endpoint tag until a metric is named, so
// only traffic (counters, timers) admits an endpoint; a state gauge of an
// endpoint without its own label is reported under Other.
type boundedHandler struct {
	client.MetricsHandler
	labels   *endpointLabels
	endpoint string // "" until a WithTags sets it
}

func (h boundedHandler) WithTags(tags map[string]string) client.MetricsHandler {
	id, ok := tags["endpoint"]
	if !ok {
		h.MetricsHandler = h.MetricsHandler.WithTags(tags)
		return h
	}
	rest := maps.Clone(tags)
	delete(rest, "endpoint")
	h.MetricsHandler = h.MetricsHandler.WithTags(rest)
	h.endpoint = id
	return h
}

func (h boundedHandler) resolve(traffic bool) client.MetricsHandler {
	if h.endpoint == "" {
		return h.MetricsHandler
	}
	return h.MetricsHandler.WithTags(map[string]string{"endpoint": h.labels.label(h.endpoint, traffic)})
}

func (h boundedHandler) Counter(name string) client.MetricsCounter {
	return h.resolve(true).Counter(name)
}

func (h boundedHandler) Timer(name string) client.MetricsTimer {
	return h.resolve(true).Timer(name)
}

func (h boundedHandler) Gauge(name string) client.MetricsGauge {
	return h.resolve(false).Gauge(name)
}

// Unwrap is the handler underneath, as the SDK's wrappers expose theirs.
func (h boundedHandler) Unwrap() client.MetricsHandler { return h.MetricsHandler }
