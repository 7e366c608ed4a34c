package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// drainRetrySchedule: a delivery that failed before the circuit opened
// parks at its next attempt, within 30 s. (30 steps, the bound: a failed
// probe takes no step of the probed delivery's schedule.)
var drainRetrySchedule = append([]time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second},
	slices.Repeat([]time.Duration{30 * time.Second}, 26)...)

// drainFigures are the drain's: what the receiver saw, and what the
// workers logged of it.
type drainFigures struct {
	testenv.DrainReading
	TargetSeconds float64 `json:"target_seconds"`         // events / drain_per_second
	MaxInFlight   int     `json:"max_releases_in_flight"` // from the workers' release log lines
	Releases      int     `json:"release_activities"`     // release activities logged (probes and drains)
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
	w, _ := testenv.SumRSS(s.workers...)
	sv, _ := testenv.SumRSS(s.serve)
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
// workflow's history and the workers' memory, and counts deliveries lost
// or delivered twice (the tests assert there are none).
func runDrain(ctx context.Context, h *harness, rep *drainReport) error {
	cfg := h.cfg
	events, err := makeEvents("", cfg.events)
	if err != nil {
		return err
	}
	endpointID := "drain-" + strings.ReplaceAll(h.runID, "-", "")
	taskQueue := "bench-drain-" + h.runID
	rep.Events = cfg.events
	rep.Circuit = fmt.Sprintf("open_after: %d, probe_every: [5s], drain_per_second: %g", cfg.openAfter, cfg.drainRate)
	rep.RetrySchedule = scheduleText(drainRetrySchedule)
	endpoints, err := h.writeEndpoints("endpoints-drain.yaml", endpointID, drainRetrySchedule, rep.Circuit)
	if err != nil {
		return err
	}
	fmt.Fprintf(h.out, "== drain: %d deliveries to endpoint %s, down (503) until all parked; circuit {%s}; %d worker(s), task queue %s\n",
		cfg.events, endpointID, rep.Circuit, cfg.workers, taskQueue)
	workers, serve, sc, err := h.startHookrelay(ctx, cfg.workers, taskQueue, endpoints, cfg.concurrency)
	if err != nil {
		return err
	}
	wid := func(ev testenv.Event) string { return workflows.WorkflowID(endpointID, ev.ID) }
	wids := ids(events, wid)
	o := h.outage(workers, endpointID, taskQueue)

	var accepted, parked atomic.Int64
	rep.Workers.Idle, _ = testenv.SumRSS(workers...)
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
			func(ctx context.Context, idx []int) error { return postEvents(ctx, sc, events, idx) })
	})
	if err := o.WaitOpen(ctx, 2*time.Minute); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	fmt.Fprintf(h.out, "   drain: the circuit opened and every worker sees it %.1fs after the first request, %d of %d accepted by then\n",
		time.Since(begin).Seconds(), accepted.Load(), len(events))
	var d testenv.Deliveries
	lastProgress := begin
	for {
		if err := sub.wait(ctx); err != nil {
			return err
		}
		if d, err = o.Count(ctx); err != nil {
			return err
		}
		parked.Store(d.Parked)
		// A few deliveries that failed before the circuit opened may still
		// wait in their retry schedule; the rest must all be parked. One that
		// closed already (its schedule ran out) is lost: counted at the end.
		if sub.done == nil && d.Parked+d.Retrying+d.Closed == int64(len(events)) && d.Parked >= int64(len(events))-20 {
			break
		}
		if time.Since(begin) > cfg.timeout {
			return fmt.Errorf("drain: %+v of %d after --timeout %s: %w", d, len(events), cfg.timeout, errIncomplete)
		}
		if time.Since(lastProgress) >= 5*time.Second {
			lastProgress = time.Now()
			w, _ := testenv.SumRSS(workers...)
			fmt.Fprintf(h.out, "   drain: %5.0fs  accepted %d/%d, 503s %d, %+v, workers RSS %s\n",
				time.Since(begin).Seconds(), accepted.Load(), len(events), h.rc.Stats().ByStatus[http.StatusServiceUnavailable], d, mb(w))
		}
	}
	rep.AcceptSeconds = round(sub.accepted.Sub(begin).Seconds(), 3)
	rep.AcceptedPerSecond = round(float64(len(events))/sub.accepted.Sub(begin).Seconds(), 1)
	rep.Refused503 = sc.Refused.Load()
	rep.ParkSeconds = round(time.Since(begin).Seconds(), 3)
	rep.ParkedAtHeal, rep.RetryingAtHeal = d.Parked, d.Retrying
	st, err := o.HealthState(ctx)
	if err != nil {
		return err
	}
	if st.State != workflows.CircuitOpen || st.OpenedAt == nil {
		return fmt.Errorf("drain: every delivery parked, yet the circuit is %s", st.State)
	}
	rep.Health.OpenedAfter = round(st.OpenedAt.Sub(begin).Seconds(), 1)
	// Hold a few seconds: memory once parked, and a probe or two fail.
	if err := testenv.Sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	rep.Workers.AtHeal = smp.sample().Workers
	rep.Workers.PeakParking = smp.peak(0, time.Since(begin).Seconds())
	fmt.Fprintf(h.out, "   drain: all parked after %.1fs (circuit opened at %.1fs; %d parked, %d still in their retry schedule); workers RSS %s; the receiver answers 200 now\n",
		rep.ParkSeconds, rep.Health.OpenedAfter, rep.ParkedAtHeal, rep.RetryingAtHeal, mb(rep.Workers.AtHeal))

	// Heal, and wait for every delivery.
	healAt := h.heal()
	healSecond := healAt.Sub(begin).Seconds()
	var delivered []time.Time
	lastProgress = healAt
	for {
		if err := testenv.Sleep(ctx, 500*time.Millisecond); err != nil {
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
			w, _ := testenv.SumRSS(workers...)
			fmt.Fprintf(h.out, "   drain: %5.0fs after heal  delivered %d/%d, workers RSS %s\n", time.Since(healAt).Seconds(), n, len(wids), mb(w))
		}
	}
	endSecond := time.Since(begin).Seconds()
	rep.Workers.PeakDraining = smp.peak(healSecond, endSecond+1)
	rep.Workers.AtEnd = smp.sample().Workers
	rep.Samples = smp.close()
	if rep.Workers.PeakHWM, err = testenv.SumPeakRSS(workers...); err != nil {
		return err
	}
	if rep.Workers.ServePeakHWM, err = testenv.SumPeakRSS(serve.Process); err != nil {
		return err
	}
	stats := h.rc.Stats()
	rep.Duplicates = stats.Duplicates
	rep.FailedAttempts = stats.ByStatus[http.StatusServiceUnavailable]

	// The drain's figures, from the receiver's clock; its order on the
	// deliveries never answered 503 (before the circuit opened, or as a failed probe).
	rep.Drain.DrainReading = testenv.ReadDrain(delivered, func(i int) bool { return h.rc.Count(wids[i]) > 1 }, healAt)
	rep.Drain.TargetSeconds = round(float64(len(wids))/cfg.drainRate, 1)

	// The health workflow: back to healthy, and its runs.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := o.HealthState(ctx)
		if err == nil {
			rep.Health.State = string(st.State)
		}
		if (err == nil && st.State == workflows.CircuitHealthy) || time.Now().After(deadline) {
			break
		}
		if err := testenv.Sleep(ctx, time.Second); err != nil {
			return err
		}
	}
	// The drain logs its last line once it found nothing left: read it now.
	rep.Drain.Releases, rep.Drain.MaxInFlight = testenv.ReleasesLogged(workers...)
	return h.healthRuns(ctx, o, &rep.Health)
}

// outage is the drain scenario's driver for endpointID on taskQueue.
func (h *harness) outage(workers []*testenv.Process, endpointID, taskQueue string) testenv.Outage {
	return testenv.Outage{Client: h.client, Workers: workers, EndpointID: endpointID, TaskQueue: taskQueue}
}

// healthRuns fills in the health workflow's runs and history lengths.
func (h *harness) healthRuns(ctx context.Context, o testenv.Outage, hf *healthFigures) error {
	hf.WorkflowID = workflows.HealthWorkflowID(o.EndpointID)
	runs, err := o.HealthRuns(ctx)
	if err != nil {
		return err
	}
	hf.Runs, hf.HistoryLengths, hf.ContinuedAsNew, hf.MaxHistoryLength = len(runs), nil, 0, 0
	for _, r := range runs {
		if r.Status == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
			hf.ContinuedAsNew++
		}
		hf.HistoryLengths = append(hf.HistoryLengths, r.HistoryLength)
		hf.MaxHistoryLength = max(hf.MaxHistoryLength, r.HistoryLength)
	}
	return nil
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
	fmt.Fprintf(w, "drain: first 2xx (the probe) %.1fs after the receiver healed; %d delivered in %.1fs, %.1f/s (target %.0fs)\n",
		d.FirstAfterHealSeconds, r.Delivered, d.Seconds, d.PerSecond, d.TargetSeconds)
	fmt.Fprintf(w, "  parked all along (never answered 503): %d, delivered over %.1fs at %.1f/s; out of event-time order %d, at most %d later events ahead of one; at most %d releases in flight\n",
		d.Clean, d.CleanSeconds, d.CleanPerSec, d.OutOfOrder, d.MaxOvertaken, d.MaxInFlight)
	fmt.Fprintf(w, "  2xx per 10 s: %v\n", d.SecondsByTens)
	fmt.Fprintf(w, "503s answered: %d (before the circuit opened, and failed probes); duplicates %d; lost %d\n", r.FailedAttempts, r.Duplicates, r.Lost)
	fmt.Fprintf(w, "health workflow %s: %d run(s), %d continued as new, history lengths %v (max %d); %s at the end\n",
		hf.WorkflowID, hf.Runs, hf.ContinuedAsNew, hf.HistoryLengths, hf.MaxHistoryLength, hf.State)
	fmt.Fprintf(w, "worker RSS (VmRSS summed over %d worker(s)): idle %s, peak while parking %s, at heal %s, peak while draining %s, at end %s (VmHWM %s); serve VmHWM %s\n",
		r.Config.Workers, mb(m.Idle), mb(m.PeakParking), mb(m.AtHeal), mb(m.PeakDraining), mb(m.AtEnd), mb(m.PeakHWM), mb(m.ServePeakHWM))
}
