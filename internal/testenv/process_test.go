package testenv

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envChild makes the test binary act as a child process (see TestMain).
const envChild = "TESTENV_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// child is a program for the process tests, by mode.
func child(mode string) int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	switch mode {
	case "ready": // a log line, then the ready line in two writes; exit 0 on SIGTERM
		fmt.Println(`{"msg":"starting"}`)
		fmt.Print(`{"msg":"worker `)
		time.Sleep(20 * time.Millisecond)
		fmt.Println(`started","addr":"127.0.0.1:4242"}`)
		<-term
		return 0
	case "crash": // exits before it is ready
		fmt.Fprintln(os.Stderr, "config: bad endpoint")
		return 3
	case "failstop": // ready, but exits 1 on SIGTERM
		fmt.Println(`{"msg":"worker started"}`)
		<-term
		return 1
	case "stubborn": // ready, and ignores SIGTERM
		fmt.Println(`{"msg":"worker started"}`)
		for range term {
		}
	case "mute": // never ready
		<-term
		return 0
	}
	return 2
}

func childSpec(t *testing.T, mode string) Spec {
	return Spec{Name: mode, Path: os.Args[0], Env: append(os.Environ(), envChild+"="+mode), LogDir: t.TempDir(), Ready: WorkerReady}
}

// Start returns once the ready line is written, even when it arrives in
// pieces, and the process logs to its file; SIGTERM then ends it cleanly.
func TestStartWaitsForTheReadyLine(t *testing.T) {
	p, err := Start(context.Background(), childSpec(t, "ready"))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.ReadyLine(); got != `{"msg":"worker started","addr":"127.0.0.1:4242"}` {
		t.Fatalf("ready line %q", got)
	}
	if !strings.Contains(p.Log(), `"msg":"starting"`) {
		t.Fatalf("log %q lacks the first line", p.Log())
	}
	if addr, err := p.LoggedAddr("worker started"); err != nil || addr != "127.0.0.1:4242" {
		t.Fatalf("LoggedAddr = %q, %v", addr, err)
	}
	if _, err := p.LoggedAddr("metrics serving"); err == nil {
		t.Fatal("LoggedAddr found a line that is not there")
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Running() || p.Err() != nil {
		t.Fatalf("after Stop: running %v, err %v", p.Running(), p.Err())
	}
	if err := p.Stop(time.Second); err != nil {
		t.Fatalf("Stop of a stopped process: %v", err)
	}
}

func TestStartFails(t *testing.T) {
	for _, c := range []struct {
		mode    string
		timeout time.Duration
		want    []string
	}{
		{"crash", time.Minute, []string{"crash exited before it was ready", "exit status 3", "config: bad endpoint"}},
		{"mute", 300 * time.Millisecond, []string{"mute not ready after 300ms"}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			s := childSpec(t, c.mode)
			s.ReadyTimeout = c.timeout
			p, err := Start(context.Background(), s)
			if err == nil {
				p.Stop(time.Second)
				t.Fatal("started")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestStopReportsAnUncleanExit(t *testing.T) {
	p := StartT(t, childSpec(t, "failstop"))
	if err := p.Stop(10 * time.Second); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("Stop = %v, want exit status 1", err)
	}
	code, err := ExitCode(p.Err())
	if code != 1 || err != nil {
		t.Fatalf("ExitCode = %d, %v", code, err)
	}
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	p, err := Start(context.Background(), childSpec(t, "stubborn"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(300 * time.Millisecond); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Stop = %v, want killed", err)
	}
}

func TestKill(t *testing.T) {
	p, err := Start(context.Background(), childSpec(t, "ready"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(time.Second); err == nil {
		t.Fatal("a second Kill found the process")
	}
}

func TestExitCode(t *testing.T) {
	if code, err := ExitCode(nil); code != 0 || err != nil {
		t.Fatalf("ExitCode(nil) = %d, %v", code, err)
	}
	if _, err := ExitCode(os.ErrNotExist); err == nil {
		t.Fatal("ExitCode of a start failure returned no error")
	}
}
