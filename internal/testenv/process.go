package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultReadyTimeout bounds the wait for a ready line when a Spec sets none.
const DefaultReadyTimeout = 90 * time.Second

// Spec is a process to start.
type Spec struct {
	// Name names it in errors; its output goes to LogDir/Name.log.
	Name string
	Path string
	Args []string
	// Env is its whole environment; nil passes on this process's.
	Env    []string
	LogDir string
	// Ready is part of the log line that says it is ready, such as
	// `"msg":"worker started"`; empty, Start does not wait.
	Ready string
	// ReadyTimeout bounds the wait for Ready (DefaultReadyTimeout if zero).
	ReadyTimeout time.Duration
}

// Process is a child process in its own process group, its output (stdout
// and stderr) in a log file. Its own group keeps a Ctrl-C in the terminal
// from reaching it before its parent has read what it needs from it; the
// parent stops it, and on Linux it is killed if the parent dies.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	watch   *logWatch
	done    chan struct{}
	err     error // from Wait, once done is closed
}

// Start starts s and, when s.Ready is set, waits until a line of its log
// contains it. If the process exits first, or the wait times out, or ctx
// ends, Start stops it and returns an error with the end of its log.
func Start(ctx context.Context, s Spec) (*Process, error) {
	if s.LogDir == "" {
		return nil, fmt.Errorf("%s: no directory for its log", s.Name)
	}
	f, err := os.OpenFile(filepath.Join(s.LogDir, s.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", s.Name, err)
	}
	p := &Process{name: s.Name, logPath: f.Name(), watch: &logWatch{f: f, want: s.Ready, found: make(chan struct{})}, done: make(chan struct{})}
	p.cmd = exec.Command(s.Path, s.Args...)
	p.cmd.Env = s.Env
	p.cmd.Stdout, p.cmd.Stderr = p.watch, p.watch
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	if s.Ready == "" {
		return p, nil
	}
	timeout := s.ReadyTimeout
	if timeout == 0 {
		timeout = DefaultReadyTimeout
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.watch.found:
		return p, nil
	case <-p.done:
		err = fmt.Errorf("%s exited before it was ready (%v)", s.Name, p.err)
	case <-timer.C:
		err = fmt.Errorf("%s not ready after %s", s.Name, timeout)
	case <-ctx.Done():
		err = fmt.Errorf("%s: %w", s.Name, ctx.Err())
	}
	p.Stop(5 * time.Second)
	return nil, fmt.Errorf("%w; its log %s ends:\n%s", err, p.logPath, lastLines(p.Log(), 40))
}

func (p *Process) Name() string    { return p.name }
func (p *Process) PID() int        { return p.cmd.Process.Pid }
func (p *Process) LogPath() string { return p.logPath }

// Log is everything the process has written so far.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(log %s: %v)", p.logPath, err)
	}
	return string(b)
}

// ReadyLine is the first line that held Spec.Ready, once seen.
func (p *Process) ReadyLine() string { return p.watch.readyLine() }

// LoggedAddr reads the "addr" of the first JSON log line whose "msg" is
// msg: where the process said it listens.
func (p *Process) LoggedAddr(msg string) (string, error) {
	for _, l := range strings.Split(p.Log(), "\n") {
		var line struct{ Msg, Addr string }
		if json.Unmarshal([]byte(l), &line) == nil && line.Msg == msg && line.Addr != "" {
			return line.Addr, nil
		}
	}
	return "", fmt.Errorf("%s logged no %q line with an address; see %s", p.name, msg, p.logPath)
}

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err waits for the process to exit and says how it ended: Wait's error,
// nil for exit status 0.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Stop sends SIGTERM to the process group and waits up to grace for it to
// exit, then sends SIGKILL. It reports an exit status other than 0, and a
// process it had to kill. A process that has exited already is left as it is.
func (p *Process) Stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	syscall.Kill(-p.PID(), syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s (pid %d) exited with %v after SIGTERM; see %s", p.name, p.PID(), p.err, p.logPath)
		}
		return nil
	case <-time.After(grace):
		syscall.Kill(-p.PID(), syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s (pid %d) still running %s after SIGTERM: killed", p.name, p.PID(), grace)
	}
}

// Kill sends SIGKILL, as a crash or the OOM killer would: no shutdown, no
// last word to anyone. It waits up to timeout until the process is gone and
// checks the signal ended it.
func (p *Process) Kill(timeout time.Duration) error {
	if err := syscall.Kill(-p.PID(), syscall.SIGKILL); err != nil {
		return fmt.Errorf("%s (pid %d): SIGKILL: %w", p.name, p.PID(), err)
	}
	select {
	case <-p.done:
		var exit *exec.ExitError
		if errors.As(p.err, &exit) {
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				return nil
			}
		}
		return fmt.Errorf("%s (pid %d) after SIGKILL: %v, want killed by the signal", p.name, p.PID(), p.err)
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running %s after SIGKILL", p.name, p.PID(), timeout)
	}
}

// ExitCode reads the exit status from the error of exec.Cmd's Run or Wait:
// 0 for nil, the status for an *exec.ExitError. Any other error (the
// program did not start) is returned.
func ExitCode(err error) (int, error) {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exit):
		return exit.ExitCode(), nil
	default:
		return -1, err
	}
}

// lastLines is the end of a log, for an error message.
func lastLines(log string, n int) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// logWatch writes a process's output to its log file and notices the first
// line containing want.
type logWatch struct {
	f     *os.File
	want  string
	found chan struct{} // closed once a line held want

	mu      sync.Mutex
	partial []byte
	line    string
}

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
			close(w.found)
			break
		}
	}
	if len(w.partial) > 1<<20 { // a line this long is not the one we wait for
		w.partial = nil
	}
	return len(b), nil
}
