package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// drainRetrySchedule: a delivery that failed before the circuit opened
// parks at its next attempt, within 30 s. (30 steps, the bound: a failed
// probe takes no step of the probed delivery's schedule.)
var drainRetrySchedule = append([]time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second},
	slices.Repeat([]time.Duration{30 * time.Second}, 26)...)

// drainFigures are the drain's, from the first 2xx after the receiver
// healed (the probe's) to the last.
type drainFigures struct {
	// FirstAfterHealSeconds: from the switch to 200 to the first 2xx (the probe).
	FirstAfterHealSeconds float64 `json:"first_2xx_after_heal_seconds"`
	Seconds               float64 `json:"seconds"` // first 2xx to the last
	PerSecond             float64 `json:"per_second"`
	TargetSeconds         float64 `json:"target_seconds"` // events / drain_per_second
	WithinTarget          bool    `json:"within_25_percent"`
	// Clean deliveries never answered 503 (never POSTed before the circuit
	// opened, never a failed probe): parked the whole outage, their order
	// is the drain's.
	Clean         int     `json:"clean_deliveries"`
	CleanSeconds  float64 `json:"clean_seconds"` // first to last 2xx of the clean ones
	CleanPerSec   float64 `json:"clean_per_second"`
	OutOfOrder    int     `json:"out_of_order"` // clean deliveries some later event overtook
	MaxOvertaken  int     `json:"max_overtaken"`
	MaxInFlight   int     `json:"max_releases_in_flight"` // from the workers' release log lines
	Releases      int     `json:"release_activities"`     // release activities logged (probes and drains)
	SecondsByTens []int   `json:"deliveries_per_10s"`     // 2xx per 10 s of the drain
}

// healthFigures are the health workflow's, over all its runs.
type healthFigures struct {
	WorkflowID       string  `json:"workflow_id"`
	Runs             int     `json:"runs"`
	ContinuedAsNew   int     `json:"continued_as_new"`
	HistoryLengths   []int64 `json:"history_lengths"` // per run, oldest first
	MaxHistoryLength int64   `json:"max_history_length"`
	State            string  `json:"state_at_end"`
	OpenedAfter      float64 `json:"opened_after_seconds"` // first request to the circuit opening
}

type drainReport struct {
	header
	Events            int           `json:"events"`
	Circuit           string        `json:"circuit"`
	RetrySchedule     string        `json:"retry_schedule"`
	AcceptSeconds     float64       `json:"accept_seconds"`
	AcceptedPerSecond float64       `json:"accepted_per_second"`
	Refused503        int64         `json:"refused_503"`
	ParkSeconds       float64       `json:"park_seconds"` // first request to all parked
	ParkedAtHeal      int64         `json:"parked_at_heal"`
	RetryingAtHeal    int64         `json:"retrying_at_heal"`
	FailedAttempts    int           `json:"failed_attempts"` // 503s the receiver answered, probes included
	Delivered         int           `json:"delivered"`
	Lost              int           `json:"lost"` // not delivered by --timeout
	Duplicates        int           `json:"duplicates"`
	Drain             drainFigures  `json:"drain"`
	Health            healthFigures `json:"health_workflow"`
	Workers           drainMemory   `json:"workers"`
	Samples           []rssSample   `json:"samples"`
}

// drainMemory is the workers' summed VmRSS over the run.
type drainMemory struct {
	Idle          int64 `json:"idle_rss_bytes"`
	PeakParking   int64 `json:"peak_while_parking_rss_bytes"`
	AtHeal        int64 `json:"at_heal_rss_bytes"`
	PeakDraining  int64 `json:"peak_while_draining_rss_bytes"`
	AtEnd         int64 `json:"at_end_rss_bytes"`
	PeakHWM       int64 `json:"peak_hwm_bytes"`
	ServePeakHWM  int64 `json:"serve_peak_hwm_bytes"`
	WorkflowCache int   `json:"workflow_cache_size_note,omitempty"`
}

// sampler reads the workers' and serve's resident sets every second.
type sampler struct {
	workers []*testenv.Process
	serve   *testenv.Process
	begin   time.Time
	count   func() (accepted, parked int64)

	mu      sync.Mutex
	samples []rssSample
	stop    chan struct{}
	done    chan struct{}
}

func startSampler(workers []*testenv.Process, serve *testenv.Process, begin time.Time, count func() (int64, int64)) *sampler {
	s := &sampler{workers: workers, serve: serve, begin: begin, count: count, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.sample()
			case <-s.stop:
				return
			}
		}
	}()
	return s
}

func (s *sampler) sample() rssSample {
	w, _ := rssOf(s.workers)
	sv, _ := rssOf([]*testenv.Process{s.serve})
	a, p := s.count()
	smp := rssSample{Seconds: round(time.Since(s.begin).Seconds(), 1), Workers: w, Serve: sv, Accepted: a, Parked: p}
	s.mu.Lock()
	s.samples = append(s.samples, smp)
	s.mu.Unlock()
	return smp
}

// peak is the largest workers' sample from..to seconds since begin.
func (s *sampler) peak(from, to float64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var p int64
	for _, smp := range s.samples {
		if smp.Seconds >= from && smp.Seconds <= to {
			p = max(p, smp.Workers)
		}
	}
	return p
}

func (s *sampler) close() []rssSample {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.samples)
}

// runDrain: an endpoint answers 503 while cfg.events events arrive through
// serve; its circuit opens after --open-after failures and the deliveries
// park. Once every one is parked the receiver answers 200: a probe
// succeeds and the health workflow drains them at --drain-rate, oldest
// event first. It measures the drain, the order, duplicates, the health
// workflow's history and the workers' memory; a delivery lost or
// delivered twice fails the run.
func runDrain(ctx context.Context, h *harness, rep *drainReport) error {
	cfg := h.cfg
	events, err := makeEvents(cfg.events, time.Now().UTC().Truncate(time.Millisecond))
	if err != nil {
		return err
	}
	endpointID := "drain-" + strings.ReplaceAll(h.runID, "-", "")
	taskQueue := "bench-drain-" + h.runID
	rep.Events = cfg.events
	rep.Circuit = fmt.Sprintf("open_after: %d, probe_every: [5s], drain_per_second: %g", cfg.openAfter, cfg.drainRate)
	rep.RetrySchedule = scheduleText(drainRetrySchedule)
	endpoints := h.tmp + "/endpoints-drain.yaml"
	if err := testenv.WriteEndpoints(endpoints, testenv.Endpoint{ID: endpointID, URL: h.rc.URL, Secret: h.secret, Timeout: 15 * time.Second,
		RetrySchedule: drainRetrySchedule, Extra: "    circuit: {" + rep.Circuit + "}\n"}); err != nil {
		return err
	}
	fmt.Fprintf(h.out, "== drain: %d deliveries to endpoint %s, down (503) until all parked; circuit {%s}; %d worker(s), task queue %s\n",
		cfg.events, endpointID, rep.Circuit, cfg.workers, taskQueue)
	workers, serve, sc, err := h.startHookrelay(ctx, cfg.workers, taskQueue, endpoints, cfg.concurrency)
	if err != nil {
		return err
	}
	wid := func(ev fakeEvent) string { return workflows.WorkflowID(endpointID, ev.id) }
	wids := ids(events, wid)
	index := make(map[string]int, len(wids))
	for i, id := range wids {
		index[id] = i
	}
	inQueue := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = 'Running' AND WorkflowType = '%s'", taskQueue, workflows.DeliveryWorkflowName)
	parkedQ := inQueue + fmt.Sprintf(" AND %s = '%s'", workflows.StatusAttr.GetName(), workflows.StatusParked)
	retryingQ := inQueue + fmt.Sprintf(" AND %s = '%s'", workflows.StatusAttr.GetName(), workflows.StatusRetrying)
	closedQ := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus != 'Running' AND WorkflowType = '%s'", taskQueue, workflows.DeliveryWorkflowName)

	var accepted, parked atomic.Int64
	rep.Workers.Idle, _ = rssOf(workers)
	begin := time.Now()
	smp := startSampler(workers, serve.Process, begin, func() (int64, int64) { return accepted.Load(), parked.Load() })
	defer smp.close()

	// The outage begins as the traffic arrives: the first events fail and
	// open the circuit while the rest are still being submitted and
	// attempted, and those park. (The health workflow's tasks have their own
	// task queue, so they do not wait behind the burst's: docs/endpoint-health.md.)
	started := make([]time.Time, len(events))
	sub := submitInBackground(h.out, "drain", len(events), begin, sc, func() error {
		return submitAll(ctx, len(events), cfg.batch, cfg.concurrency, cfg.rate, started, &accepted,
			func(ctx context.Context, idx []int) error { return sc.send(ctx, events, idx, wid) })
	})
	if err := h.waitCircuitOpen(ctx, workers, endpointID); err != nil {
		return err
	}
	fmt.Fprintf(h.out, "   drain: the circuit opened and every worker sees it %.1fs after the first request, %d of %d accepted by then\n",
		time.Since(begin).Seconds(), accepted.Load(), len(events))
	var retrying, closedEarly int64
	lastProgress := begin
	for {
		if err := sub.wait(ctx); err != nil {
			return err
		}
		p, err := testenv.CountWorkflows(ctx, h.client, parkedQ)
		if err != nil {
			return err
		}
		if retrying, err = testenv.CountWorkflows(ctx, h.client, retryingQ); err != nil {
			return err
		}
		if closedEarly, err = testenv.CountWorkflows(ctx, h.client, closedQ); err != nil {
			return err
		}
		parked.Store(p)
		// A few deliveries that failed before the circuit opened may still
		// wait in their retry schedule; the rest must all be parked. One that
		// closed already (its schedule ran out) is lost: counted at the end.
		if sub.done == nil && p+retrying+closedEarly == int64(len(events)) && p >= int64(len(events))-20 {
			break
		}
		if time.Since(begin) > cfg.timeout {
			return fmt.Errorf("drain: %d of %d parked (%d retrying) after --timeout %s: %w", p, len(events), retrying, cfg.timeout, errIncomplete)
		}
		if time.Since(lastProgress) >= 5*time.Second {
			lastProgress = time.Now()
			w, _ := rssOf(workers)
			fmt.Fprintf(h.out, "   drain: %5.0fs  accepted %d/%d, 503s %d, parked %d, retrying %d, closed %d, workers RSS %s\n",
				time.Since(begin).Seconds(), accepted.Load(), len(events), h.rc.Stats().ByStatus[http.StatusServiceUnavailable], p, retrying, closedEarly, mb(w))
		}
	}
	rep.AcceptSeconds = round(sub.accepted.Sub(begin).Seconds(), 3)
	rep.AcceptedPerSecond = round(float64(len(events))/sub.accepted.Sub(begin).Seconds(), 1)
	rep.Refused503 = sc.refused.Load()
	rep.ParkSeconds = round(time.Since(begin).Seconds(), 3)
	rep.ParkedAtHeal, rep.RetryingAtHeal = parked.Load(), retrying
	st, err := h.healthState(ctx, endpointID)
	if err != nil {
		return err
	}
	if st.State != workflows.CircuitOpen || st.OpenedAt == nil {
		return fmt.Errorf("drain: every delivery parked, yet the circuit is %s", st.State)
	}
	rep.Health.OpenedAfter = round(st.OpenedAt.Sub(begin).Seconds(), 1)
	// Hold a few seconds: memory once parked, and a probe or two fail.
	if err := sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	rep.Workers.AtHeal = smp.sample().Workers
	rep.Workers.PeakParking = smp.peak(0, time.Since(begin).Seconds())
	fmt.Fprintf(h.out, "   drain: all parked after %.1fs (circuit opened at %.1fs; %d parked, %d still in their retry schedule); workers RSS %s; the receiver answers 200 now\n",
		rep.ParkSeconds, rep.Health.OpenedAfter, rep.ParkedAtHeal, rep.RetryingAtHeal, mb(rep.Workers.AtHeal))

	// Heal, and wait for every delivery.
	healAt := time.Now()
	healSecond := healAt.Sub(begin).Seconds()
	h.healed.Store(true)
	var delivered []time.Time
	lastProgress = healAt
	for {
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
		var n int
		delivered, n = h.rc.Accepted(wids)
		rep.Delivered = n
		if n == len(wids) {
			break
		}
		if time.Since(begin) > cfg.timeout {
			rep.Lost = len(wids) - n
			fmt.Fprintf(h.out, "   drain: %d of %d delivered after --timeout %s\n", n, len(wids), cfg.timeout)
			break
		}
		if time.Since(lastProgress) >= 5*time.Second {
			lastProgress = time.Now()
			w, _ := rssOf(workers)
			fmt.Fprintf(h.out, "   drain: %5.0fs after heal  delivered %d/%d, workers RSS %s\n", time.Since(healAt).Seconds(), n, len(wids), mb(w))
		}
	}
	endSecond := time.Since(begin).Seconds()
	rep.Workers.PeakDraining = smp.peak(healSecond, endSecond+1)
	rep.Workers.AtEnd = smp.sample().Workers
	rep.Samples = smp.close()
	if rep.Workers.PeakHWM, err = hwmOf(workers); err != nil {
		return err
	}
	if rep.Workers.ServePeakHWM, err = hwmOf([]*testenv.Process{serve.Process}); err != nil {
		return err
	}
	stats := h.rc.Stats()
	rep.Duplicates = stats.Duplicates
	rep.FailedAttempts = stats.ByStatus[http.StatusServiceUnavailable]

	// The drain's figures, from the receiver's clock.
	failed := map[string]bool{}
	for _, id := range wids {
		if h.rc.Count(id) > 1 { // answered 503 at least once before its 2xx
			failed[id] = true
		}
	}
	rep.Drain = drainOf(wids, delivered, index, failed, healAt, cfg.drainRate)

	// The health workflow: back to healthy, and its runs.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := h.healthState(ctx, endpointID)
		if err == nil {
			rep.Health.State = string(st.State)
		}
		if (err == nil && st.State == workflows.CircuitHealthy) || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	// The drain logs its last line once it found nothing left: read it now.
	rep.Drain.Releases, rep.Drain.MaxInFlight = releasesLogged(workers)
	return h.healthRuns(ctx, endpointID, &rep.Health)
}

// waitCircuitOpen waits (up to two minutes) until the endpoint's health
// workflow says open and every worker logged that it sees it so.
func (h *harness) waitCircuitOpen(ctx context.Context, workers []*testenv.Process, endpointID string) error {
	line := fmt.Sprintf(`"msg":"endpoint circuit changed","endpoint_id":%q,"state":%q`, endpointID, workflows.CircuitOpen)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		seen := 0
		for _, w := range workers {
			if strings.Contains(w.Log(), line) {
				seen++
			}
		}
		st, err := h.healthState(ctx, endpointID)
		if err == nil && st.State == workflows.CircuitOpen && seen == len(workers) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("drain: the circuit is not open 2 minutes after the first failures (state %q, %v; %d of %d workers see it open)",
				st.State, err, seen, len(workers))
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}

// healthState queries an endpoint's health workflow.
func (h *harness) healthState(ctx context.Context, endpointID string) (workflows.HealthState, error) {
	var st workflows.HealthState
	v, err := h.client.QueryWorkflow(ctx, workflows.HealthWorkflowID(endpointID), "", workflows.HealthQuery)
	if err == nil {
		err = v.Get(&st)
	}
	if err != nil {
		return st, fmt.Errorf("query %s: %w", workflows.HealthWorkflowID(endpointID), err)
	}
	return st, nil
}

// healthRun is one run of a health workflow, as visibility lists it.
type healthRun struct {
	runID   string
	start   time.Time
	status  enumspb.WorkflowExecutionStatus
	history int64
}

// listHealthRuns lists every run of an endpoint's health workflow, oldest first.
func (h *harness) listHealthRuns(ctx context.Context, endpointID string) ([]healthRun, error) {
	var out []healthRun
	var token []byte
	for {
		resp, err := h.client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("WorkflowId = '%s'", workflows.HealthWorkflowID(endpointID)), PageSize: 1000, NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list the runs of %s: %w", workflows.HealthWorkflowID(endpointID), err)
		}
		for _, e := range resp.GetExecutions() {
			out = append(out, healthRun{runID: e.GetExecution().GetRunId(), start: e.GetStartTime().AsTime(), status: e.GetStatus(), history: e.GetHistoryLength()})
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out, nil
}

// healthRuns fills in the health workflow's runs and history lengths; a
// running run's length comes from describing it (visibility lags).
func (h *harness) healthRuns(ctx context.Context, endpointID string, hf *healthFigures) error {
	hf.WorkflowID = workflows.HealthWorkflowID(endpointID)
	runs, err := h.listHealthRuns(ctx, endpointID)
	if err != nil {
		return err
	}
	hf.Runs, hf.HistoryLengths, hf.ContinuedAsNew, hf.MaxHistoryLength = len(runs), nil, 0, 0
	for _, r := range runs {
		n := r.history
		if r.status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			if d, err := h.client.DescribeWorkflowExecution(ctx, hf.WorkflowID, r.runID); err == nil {
				n = d.GetWorkflowExecutionInfo().GetHistoryLength()
			}
		}
		if r.status == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
			hf.ContinuedAsNew++
		}
		hf.HistoryLengths = append(hf.HistoryLengths, n)
		hf.MaxHistoryLength = max(hf.MaxHistoryLength, n)
	}
	return nil
}

// drainOf computes the drain's figures from when each delivery was first
// answered 2xx (zero: never). failed deliveries answered 503 at least once
// (before the circuit opened, or as a failed probe): the order is checked
// on the others, which waited parked for the whole outage.
func drainOf(wids []string, delivered []time.Time, index map[string]int, failed map[string]bool, healAt time.Time, rate float64) drainFigures {
	type hit struct {
		at    time.Time
		index int
		clean bool
	}
	var hits []hit
	for i, at := range delivered {
		if !at.IsZero() {
			hits = append(hits, hit{at, index[wids[i]], !failed[wids[i]]})
		}
	}
	d := drainFigures{TargetSeconds: round(float64(len(wids))/rate, 1)}
	if len(hits) == 0 {
		return d
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].at.Before(hits[j].at) })
	first, last := hits[0].at, hits[len(hits)-1].at
	d.FirstAfterHealSeconds = round(first.Sub(healAt).Seconds(), 3)
	d.Seconds = round(last.Sub(first).Seconds(), 3)
	if d.Seconds > 0 {
		d.PerSecond = round(float64(len(hits)-1)/d.Seconds, 1)
	}
	d.WithinTarget = len(hits) == len(wids) && d.Seconds >= 0.75*d.TargetSeconds && d.Seconds <= 1.25*d.TargetSeconds
	for _, x := range hits {
		bucket := int(x.at.Sub(first) / (10 * time.Second))
		for len(d.SecondsByTens) <= bucket {
			d.SecondsByTens = append(d.SecondsByTens, 0)
		}
		d.SecondsByTens[bucket]++
	}
	var order []int
	var cleanFirst, cleanLast time.Time
	for _, x := range hits {
		if !x.clean {
			continue
		}
		if cleanFirst.IsZero() {
			cleanFirst = x.at
		}
		cleanLast = x.at
		order = append(order, x.index)
	}
	d.Clean = len(order)
	d.CleanSeconds = round(cleanLast.Sub(cleanFirst).Seconds(), 3)
	if d.CleanSeconds > 0 {
		d.CleanPerSec = round(float64(d.Clean-1)/d.CleanSeconds, 1)
	}
	d.OutOfOrder, d.MaxOvertaken = overtaken(order)
	return d
}

// overtaken reads a delivery order (event indexes, in the order they
// arrived): how many arrived after some later event had, and the most
// later events that arrived before one.
func overtaken(order []int) (outOfOrder, most int) {
	if len(order) == 0 {
		return 0, 0
	}
	// A Fenwick tree over event indexes counts the later events seen so far.
	size := slices.Max(order) + 2
	tree := make([]int, size+1)
	add := func(i int) {
		for i++; i <= size; i += i & -i {
			tree[i]++
		}
	}
	upTo := func(i int) int { // events seen with index <= i
		s := 0
		for i++; i > 0; i -= i & -i {
			s += tree[i]
		}
		return s
	}
	for seen, i := range order {
		later := seen - upTo(i)
		if later > 0 {
			outOfOrder++
			most = max(most, later)
		}
		add(i)
	}
	return outOfOrder, most
}

// releasesLogged reads the workers' logs for release activities (probes
// and drains) and the most releases one had in flight.
func releasesLogged(workers []*testenv.Process) (releases, maxInFlight int) {
	for _, w := range workers {
		for _, l := range strings.Split(w.Log(), "\n") {
			if !strings.Contains(l, `"released parked deliveries"`) {
				continue
			}
			var line struct {
				Released    int `json:"released"`
				MaxInFlight int `json:"max_in_flight"`
			}
			if json.Unmarshal([]byte(l), &line) == nil {
				releases++
				if line.Released > 1 {
					maxInFlight = max(maxInFlight, line.MaxInFlight)
				}
			}
		}
	}
	return releases, maxInFlight
}

func scheduleText(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// printDrain prints the drain run's figures.
func printDrain(w io.Writer, r *drainReport) {
	fmt.Fprintf(w, "\n== results: %d deliveries parked behind an open circuit {%s}, then drained; %d worker(s), %d concurrent submitters\n",
		r.Events, r.Circuit, r.Config.Workers, r.Config.Concurrency)
	printMachine(w, r.header)
	d, hf, m := r.Drain, r.Health, r.Workers
	fmt.Fprintf(w, "\naccepted in %.1fs (%.1f/s, %d refused with 503 and retried); circuit open %.1fs after the first request; all parked after %.1fs (%d parked, %d still in their retry schedule)\n",
		r.AcceptSeconds, r.AcceptedPerSecond, r.Refused503, hf.OpenedAfter, r.ParkSeconds, r.ParkedAtHeal, r.RetryingAtHeal)
	fmt.Fprintf(w, "drain: first 2xx (the probe) %.1fs after the receiver healed; %d delivered in %.1fs, %.1f/s (target %.0fs ± 25%%: %s)\n",
		d.FirstAfterHealSeconds, r.Delivered, d.Seconds, d.PerSecond, d.TargetSeconds, yes(d.WithinTarget))
	fmt.Fprintf(w, "  parked all along (never answered 503): %d, delivered over %.1fs at %.1f/s; out of event-time order %d, at most %d later events ahead of one; at most %d releases in flight\n",
		d.Clean, d.CleanSeconds, d.CleanPerSec, d.OutOfOrder, d.MaxOvertaken, d.MaxInFlight)
	fmt.Fprintf(w, "  2xx per 10 s: %v\n", d.SecondsByTens)
	fmt.Fprintf(w, "503s answered: %d (before the circuit opened, and failed probes); duplicates %d; lost %d\n", r.FailedAttempts, r.Duplicates, r.Lost)
	fmt.Fprintf(w, "health workflow %s: %d run(s), %d continued as new, history lengths %v (max %d); %s at the end\n",
		hf.WorkflowID, hf.Runs, hf.ContinuedAsNew, hf.HistoryLengths, hf.MaxHistoryLength, hf.State)
	fmt.Fprintf(w, "worker RSS (VmRSS summed over %d worker(s)): idle %s, peak while parking %s, at heal %s, peak while draining %s, at end %s (VmHWM %s); serve VmHWM %s\n",
		r.Config.Workers, mb(m.Idle), mb(m.PeakParking), mb(m.AtHeal), mb(m.PeakDraining), mb(m.AtEnd), mb(m.PeakHWM), mb(m.ServePeakHWM))
}

func yes(b bool) string {
	if b {
		return "met"
	}
	return "missed"
}
