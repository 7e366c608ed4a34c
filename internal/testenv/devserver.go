package testenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
)

// DevServerOptions configure a dev server of bin/temporal.
type DevServerOptions struct {
	// CLI is bin/temporal (`make tools`); it is never downloaded.
	CLI string
	// Namespace is the one it serves besides "default" (default "default").
	Namespace string
	// HostPort fixes its address, so a restart comes back on it; empty
	// picks a free port on 127.0.0.1.
	HostPort string
	// DBFilename makes it persist to that SQLite file; empty keeps it in memory.
	DBFilename string
	// ExtraArgs are appended to `temporal server start-dev`.
	ExtraArgs []string
	// Log receives its output; nil discards it.
	Log io.Writer
}

// FairnessArgs turn on task-queue fairness in a dev server, as
// deploy/temporal's dynamic config does in the cluster: each account's
// deliveries (keyed by workflows.Priority) get their share of the queue.
var FairnessArgs = []string{"--dynamic-config-value", "matching.enableFairness=true"}

// DevServer is a dev server started through testsuite.StartDevServer.
type DevServer struct {
	*testsuite.DevServer
	namespace string
	pid       int
}

// StartDevServer starts bin/temporal's dev server and returns once it answers.
func StartDevServer(ctx context.Context, o DevServerOptions) (*DevServer, error) {
	if _, err := os.Stat(o.CLI); err != nil {
		return nil, fmt.Errorf("the Temporal CLI at %q: %w (run `make tools`)", o.CLI, err)
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	ds, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  o.CLI,
		ClientOptions: &client.Options{HostPort: o.HostPort, Namespace: o.Namespace, Logger: quietLogger()},
		DBFilename:    o.DBFilename,
		LogLevel:      "warn",
		ExtraArgs:     append(slices.Clone(FairnessArgs), o.ExtraArgs...),
		Stdout:        o.Log,
		Stderr:        o.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("start dev server %s: %w", o.CLI, err)
	}
	return &DevServer{DevServer: ds, namespace: o.Namespace, pid: devServerPID(ds.FrontendHostPort())}, nil
}

func (d *DevServer) Namespace() string { return d.namespace }

// PID is the server process's id, for reading its CPU and memory from
// /proc; 0 where it could not be found (no /proc).
func (d *DevServer) PID() int { return d.pid }

// devServerPID finds the dev server on hostPort among this process's
// children: testsuite keeps its process to itself, and the bench reports
// the server's CPU and memory.
func devServerPID(hostPort string) int {
	_, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return 0
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parentPID(pid) != os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if i := slices.Index(args, "--port"); slices.Contains(args, "start-dev") && i >= 0 && i+1 < len(args) && args[i+1] == port {
			return pid
		}
	}
	return 0
}

// parentPID reads a process's parent from /proc/PID/stat (field 4, counted
// after the command name, which may hold spaces); -1 if unreadable.
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // state, ppid, ...
	if len(fields) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(fields[1])
	if err != nil {
		return -1
	}
	return ppid
}
