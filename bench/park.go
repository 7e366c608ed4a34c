package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"github.com/hookrelay/hookrelay/internal/billable"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// rssSample is one second of the park run.
type rssSample struct {
	Seconds  float64 `json:"t"` // since the first request
	Workers  int64   `json:"workers_rss_bytes"`
	Serve    int64   `json:"serve_rss_bytes"`
	Accepted int64   `json:"accepted"`
	Parked   int64   `json:"parked"`
}

// parkMemory is the worker processes' summed resident set (VmRSS) over the run.
type parkMemory struct {
	Idle         int64   `json:"idle_rss_bytes"`       // before the first request
	Peak         int64   `json:"peak_rss_bytes"`       // the largest sample
	PeakHWM      int64   `json:"peak_hwm_bytes"`       // VmHWM summed, at the end: peaks between samples too
	AtPark       int64   `json:"at_park_rss_bytes"`    // when the last delivery parked
	AtEnd        int64   `json:"at_end_rss_bytes"`     // --hold later
	Drift        int64   `json:"drift_bytes"`          // AtEnd - AtPark
	DriftPercent float64 `json:"drift_percent"`        // of AtPark
	ServePeakHWM int64   `json:"serve_peak_hwm_bytes"` // serve's VmHWM
}

// timerCheck shows the server, not the worker, holds the parked deliveries.
type timerCheck struct {
	RunningBefore int64 `json:"running_before_stop"`
	// RunningAfterStop counts Running workflows on the queue with every
	// worker (and serve) stopped.
	RunningAfterStop int64 `json:"running_after_stop"`
	Described        int   `json:"described"`
	// WithPendingTimer counts described workflows that are Running with no
	// activity or workflow task pending and an unfired timer in history.
	WithPendingTimer int     `json:"with_pending_timer"`
	TimerFiresInMin  float64 `json:"timer_fires_in_min_seconds"`
	TimerFiresInMax  float64 `json:"timer_fires_in_max_seconds"`
	// A fresh worker process started afterwards, watched for --fresh-watch.
	FreshWatchSeconds float64 `json:"fresh_watch_seconds"`
	FreshPeakRSS      int64   `json:"fresh_worker_peak_rss_bytes"`
	FreshEndRSS       int64   `json:"fresh_worker_end_rss_bytes"`
	AttemptsDuring    int     `json:"attempts_during_fresh_watch"`
	ParkedAfter       int64   `json:"parked_after_fresh_watch"`
}

type parkReport struct {
	header
	Events            int              `json:"events"`
	RetrySchedule     string           `json:"retry_schedule"`
	AcceptSeconds     float64          `json:"accept_seconds"`
	AcceptedPerSecond float64          `json:"accepted_per_second"`
	ParkSeconds       float64          `json:"park_seconds"` // first request to all parked
	Refused503        int64            `json:"refused_503"`
	Attempts          int              `json:"attempts"` // 503s the receiver answered
	Actions           billable.Summary `json:"actions_per_parked_delivery"`
	Workers           parkMemory       `json:"workers"`
	ServerHoldsTimers timerCheck       `json:"server_holds_timers"`
	Samples           []rssSample      `json:"samples"`
}

// runPark parks cfg.events deliveries in backoff against an endpoint that
// always answers 503, watching the workers' memory, then stops them and
// shows the workflows wait on the server.
func runPark(ctx context.Context, h *harness, rep *parkReport) error {
	cfg := h.cfg
	schedule, err := parseSchedule(cfg.retrySchedule)
	if err != nil {
		return err
	}
	events, err := makeEvents("", cfg.events)
	if err != nil {
		return err
	}
	rep.Events, rep.RetrySchedule = cfg.events, cfg.retrySchedule
	taskQueue := "bench-park-" + h.runID
	// The circuit held closed: every delivery waits on its own backoff timer.
	endpoints, err := h.writeEndpoints("endpoints-park.yaml", parkEndpoint, schedule, "open_after: 10000")
	if err != nil {
		return err
	}
	fmt.Fprintf(h.out, "== park: %d deliveries to an endpoint that always answers 503, retry_schedule [%s]; %d worker(s), task queue %s\n",
		cfg.events, cfg.retrySchedule, cfg.workers, taskQueue)
	workers, serve, sc, err := h.startHookrelay(ctx, cfg.workers, taskQueue, endpoints, cfg.concurrency)
	if err != nil {
		return err
	}
	parkID := func(ev testenv.Event) string { return workflows.WorkflowID(parkEndpoint, ev.ID) }
	wids := ids(events, parkID)
	retrying := fmt.Sprintf("TaskQueue = '%s' AND %s", taskQueue, workflows.StatusRetrying.VisibilityQuery())
	runningQuery := fmt.Sprintf("TaskQueue = '%s' AND ExecutionStatus = 'Running'", taskQueue)

	// Memory every second, from before the first request to the end of the hold.
	hosts := append(slices.Clone(workers), serve.Process) // serve may host a worker too (--serve-args)
	rep.Workers.Idle, _ = testenv.SumRSS(workers...)
	var accepted, parked atomic.Int64
	begin := time.Now()
	smp := startSampler(workers, serve.Process, begin, func() (int64, int64) { return accepted.Load(), parked.Load() })
	defer smp.close()

	// Submit, and poll visibility until every delivery is parked.
	subCtx, cancelSubmit := context.WithCancel(ctx)
	defer cancelSubmit()
	started := make([]time.Time, len(events))
	sub := submitInBackground(h.out, "park", len(events), begin, sc, func() error {
		return submitAll(subCtx, len(events), cfg.batch, cfg.concurrency, cfg.rate, started, &accepted,
			func(ctx context.Context, idx []int) error { return postEvents(ctx, sc, events, idx) })
	})
	lastProgress := begin
	for parked.Load() < int64(len(events)) || sub.done != nil {
		if err := sub.wait(ctx); err != nil {
			return err
		}
		n, err := testenv.CountWorkflows(ctx, h.client, retrying)
		if err != nil {
			return err
		}
		parked.Store(n)
		if time.Since(begin) > cfg.timeout {
			return fmt.Errorf("park: %d of %d parked after --timeout %s: %w", n, len(events), cfg.timeout, errIncomplete)
		}
		if time.Since(lastProgress) >= 5*time.Second {
			lastProgress = time.Now()
			attempts := h.parkAttempts()
			w, _ := testenv.SumRSS(workers...)
			fmt.Fprintf(h.out, "   park: %5.0fs  accepted %d/%d, attempts %d, parked %d, workers RSS %s\n",
				time.Since(begin).Seconds(), accepted.Load(), len(events), attempts, n, mb(w))
		}
	}
	parkedAt := time.Now()
	rep.Workers.AtPark = smp.sample().Workers
	rep.AcceptSeconds = round(sub.accepted.Sub(begin).Seconds(), 3)
	rep.AcceptedPerSecond = round(float64(len(events))/sub.accepted.Sub(begin).Seconds(), 1)
	rep.ParkSeconds = round(parkedAt.Sub(begin).Seconds(), 3)
	rep.Refused503 = sc.Refused.Load()
	fmt.Fprintf(h.out, "   park: all %d parked after %.1fs, workers RSS %s; holding %s\n", len(events), rep.ParkSeconds, mb(rep.Workers.AtPark), cfg.hold)

	if err := testenv.Sleep(ctx, cfg.hold); err != nil {
		return err
	}
	rep.Workers.AtEnd = smp.sample().Workers
	rep.Samples = smp.close()
	rep.Workers.Peak = smp.peak(0, math.Inf(1))
	rep.Workers.Drift = rep.Workers.AtEnd - rep.Workers.AtPark
	if rep.Workers.AtPark > 0 {
		rep.Workers.DriftPercent = round(100*float64(rep.Workers.Drift)/float64(rep.Workers.AtPark), 1)
	}
	if rep.Workers.PeakHWM, err = testenv.SumPeakRSS(workers...); err != nil {
		return err
	}
	if rep.Workers.ServePeakHWM, err = testenv.SumPeakRSS(serve.Process); err != nil {
		return err
	}
	rep.Attempts = h.parkAttempts()

	fmt.Fprintf(h.out, "   park: counting actions in %d histories\n", min(cfg.sample, len(wids)))
	if rep.Actions, err = h.sampleActions(ctx, wids, false); err != nil {
		return fmt.Errorf("park: %w", err)
	}
	if err := h.checkServerHoldsTimers(ctx, &rep.ServerHoldsTimers, hosts, wids, taskQueue, endpoints, runningQuery, retrying); err != nil {
		return err
	}
	if cfg.serverMode == testenv.ModeCluster {
		return h.terminateAll(ctx, wids)
	}
	return nil
}

// checkServerHoldsTimers stops every process that could run a workflow,
// then shows the workflows still Running with a pending timer on the
// server, and that a fresh worker stays small: nothing is owed to it
// until a timer fires.
func (h *harness) checkServerHoldsTimers(ctx context.Context, tc *timerCheck, hosts []*testenv.Process, wids []string, taskQueue, endpoints, runningQuery, retrying string) error {
	var err error
	if tc.RunningBefore, err = testenv.CountWorkflows(ctx, h.client, runningQuery); err != nil {
		return err
	}
	fmt.Fprintf(h.out, "== server holds the timers: stopping serve and the worker(s); %d Running\n", tc.RunningBefore)
	h.stopAll(hosts)
	if err := testenv.Sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	if tc.RunningAfterStop, err = testenv.CountWorkflows(ctx, h.client, runningQuery); err != nil {
		return err
	}
	tc.TimerFiresInMin = -1
	for _, i := range testenv.Spread(len(wids), h.cfg.timerSample) {
		tc.Described++
		desc, err := h.client.DescribeWorkflowExecution(ctx, wids[i], "")
		if err != nil {
			return fmt.Errorf("describe %s: %w", wids[i], err)
		}
		if desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING ||
			len(desc.GetPendingActivities()) > 0 || desc.GetPendingWorkflowTask() != nil {
			continue
		}
		events, err := testenv.History(ctx, h.client, wids[i], "")
		if err != nil {
			return err
		}
		fires, ok := testenv.PendingTimer(events)
		if !ok {
			continue
		}
		tc.WithPendingTimer++
		in := time.Until(fires).Seconds()
		if tc.TimerFiresInMin < 0 || in < tc.TimerFiresInMin {
			tc.TimerFiresInMin = round(in, 1)
		}
		tc.TimerFiresInMax = max(tc.TimerFiresInMax, round(in, 1))
	}
	fmt.Fprintf(h.out, "   %d Running with no worker; %d of %d described are waiting on a server timer; starting a fresh worker for %s\n",
		tc.RunningAfterStop, tc.WithPendingTimer, tc.Described, h.cfg.freshWatch)

	attemptsBefore := h.parkAttempts()
	fresh, err := h.startWorker(ctx, "worker-fresh", taskQueue, endpoints)
	if err != nil {
		return err
	}
	begin := time.Now()
	for time.Since(begin) < h.cfg.freshWatch {
		if err := testenv.Sleep(ctx, time.Second); err != nil {
			return err
		}
		m, err := testenv.ReadMemory(fresh.PID())
		if err != nil {
			return err
		}
		tc.FreshPeakRSS, tc.FreshEndRSS = max(tc.FreshPeakRSS, m.RSS), m.RSS
	}
	tc.FreshWatchSeconds = round(time.Since(begin).Seconds(), 1)
	attemptsAfter := h.parkAttempts()
	tc.AttemptsDuring = attemptsAfter - attemptsBefore
	if tc.ParkedAfter, err = testenv.CountWorkflows(ctx, h.client, retrying); err != nil {
		return err
	}
	h.stopAll([]*testenv.Process{fresh})
	return nil
}

// terminateAll ends the parked workflows on a server the bench did not start.
func (h *harness) terminateAll(ctx context.Context, wids []string) error {
	fmt.Fprintf(h.out, "== terminating the %d parked workflows on %s\n", len(wids), h.hr.Address)
	started := make([]time.Time, len(wids))
	var done atomic.Int64
	return submitAll(ctx, len(wids), 1, h.cfg.concurrency, 0, started, &done, func(ctx context.Context, idx []int) error {
		if err := h.client.TerminateWorkflow(ctx, wids[idx[0]], "", "hookrelay bench park mode: cleanup"); err != nil {
			return fmt.Errorf("terminate %s: %w", wids[idx[0]], err)
		}
		return nil
	})
}

// parkAttempts counts the attempts the parking endpoint answered (503, always).
func (h *harness) parkAttempts() int {
	return h.rc.Stats().ByStatus[http.StatusServiceUnavailable]
}
