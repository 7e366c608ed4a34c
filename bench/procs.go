package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process in its own process group, its output in a log
// file. Its own group keeps a Ctrl-C in the terminal from reaching it
// before the bench has read its figures; the bench stops every group it
// started on the way out, and Pdeathsig kills the child if the bench dies.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	watch   *logWatch
	done    chan struct{}
	waitErr error
}

// procs is every process the bench started, for cleanup.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

// start runs path with args, output to logDir/name.log. When ready is
// non-empty, it waits up to readyTimeout for a log line containing it.
func (ps *procs) start(ctx context.Context, name, logDir, path string, args, env []string, ready string) (*proc, error) {
	f, err := os.OpenFile(filepath.Join(logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	p := &proc{name: name, logPath: f.Name(), watch: &logWatch{f: f, want: ready}, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.watch, p.watch
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	go func() {
		p.waitErr = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	if ready == "" {
		return p, nil
	}
	const readyTimeout = 90 * time.Second
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case <-p.watch.found():
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before it was ready (%v); see %s", name, p.waitErr, p.logPath)
	case <-timer.C:
		return nil, fmt.Errorf("%s not ready after %s; see %s", name, readyTimeout, p.logPath)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group and waits up to grace before
// SIGKILL. It reports a non-zero exit after SIGTERM.
func (p *proc) stop(grace time.Duration) error {
	if !p.running() {
		return nil
	}
	syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		var exit *exec.ExitError
		if errors.As(p.waitErr, &exit) {
			return fmt.Errorf("%s exited with %v after SIGTERM; see %s", p.name, p.waitErr, p.logPath)
		}
		return nil
	case <-time.After(grace):
		syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s still running %s after SIGTERM: killed", p.name, grace)
	}
}

// stopAll stops every process still running, in reverse start order (the
// dev server last), each group with SIGTERM then SIGKILL.
func (ps *procs) stopAll(grace time.Duration) []error {
	ps.mu.Lock()
	list := append([]*proc(nil), ps.list...)
	ps.mu.Unlock()
	var errs []error
	for i := len(list) - 1; i >= 0; i-- {
		if err := list[i].stop(grace); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// logWatch writes a process's output to its log file and notices the first
// line containing want.
type logWatch struct {
	f    *os.File
	want string

	mu      sync.Mutex
	partial []byte
	line    string
	ch      chan struct{}
}

func (w *logWatch) found() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// readyLine is the first line that contained want, once seen.
func (w *logWatch) readyLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.line
}

func (w *logWatch) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.f.Write(b); err != nil {
		return 0, err
	}
	if w.want == "" || w.line != "" {
		return len(b), nil
	}
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		if strings.Contains(line, w.want) {
			w.line, w.partial = line, nil
			if w.ch == nil {
				w.ch = make(chan struct{})
			}
			close(w.ch)
			break
		}
	}
	if len(w.partial) > 1<<20 { // a line this long is not the one we wait for
		w.partial = nil
	}
	return len(b), nil
}

// memory is a process's resident set now and at its peak (VmRSS, VmHWM).
type memory struct {
	RSS  int64 `json:"rss_bytes"`
	Peak int64 `json:"peak_rss_bytes"`
}

// readMemory reads VmRSS and VmHWM from /proc/PID/status.
func readMemory(pid int) (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		fields := strings.Fields(value) // "123456 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return memory{}, fmt.Errorf("pid %d: %s: unexpected %q", pid, name, value)
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("pid %d: %s: %w", pid, name, err)
		}
		if name == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.Peak = kb << 10
		}
	}
	return m, sc.Err()
}

// clockTicks is USER_HZ, 100 on every Linux the bench runs on.
const clockTicks = 100

// cpuSeconds reads the user and system CPU time a process has used from /proc/PID/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of pid %d: %w", pid, err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (fields 14 and 15) from a /proc/PID/stat
// line. The command name (field 2) may hold spaces and parentheses, so
// fields are counted from the last ')'.
func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no command name", stat)
	}
	fields := strings.Fields(stat[i+1:]) // fields[0] is field 3 (state)
	if len(fields) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	return float64(utime+stime) / clockTicks, nil
}
