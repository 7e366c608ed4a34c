package temporalcluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one run of one service. A restart is a new process.
type process struct {
	service Service
	cmd     *exec.Cmd
	// logOffset is where this run's output starts in the service's log.
	logOffset int64
	killed    bool          // by Kill or Restart: its exit is expected
	done      chan struct{} // closed once the process has exited and been reaped
	exitErr   error         // set before done closes
}

func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to the process group and waits until the process is gone.
func (p *process) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop asks the process group to stop (SIGTERM) and kills it after grace.
func (p *process) stop(grace time.Duration) {
	if !p.running() {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
}

// The service's command line: service.sh in the config directory, the
// script compose's Temporal services run too, which execs the server (so
// the process is the server's) with the config beside it.
func (c *Cluster) serviceArgs(s Service) []string {
	return []string{filepath.Join(c.opts.ConfigDir, "service.sh"), string(s)}
}

// processEnv is the environment deploy/temporal/config.yaml reads, the same
// for every process but PPROF_PORT and PROMETHEUS_ENDPOINT (see serviceEnv).
// Nothing of the caller's environment is passed on, so a variable set there
// cannot change a default of the file.
func (c *Cluster) processEnv() []string {
	env := map[string]string{
		"LOG_LEVEL":                  "info",
		"NUM_HISTORY_SHARDS":         "4",
		"DB":                         plugin,
		"POSTGRES_SEEDS":             c.pg.host,
		"DB_PORT":                    strconv.Itoa(c.pg.port),
		"POSTGRES_USER":              c.pg.user,
		"POSTGRES_PWD":               c.pg.password,
		"DBNAME":                     c.dbs.temporal,
		"VISIBILITY_DBNAME":          c.dbs.visibility,
		"BIND_ON_IP":                 host,
		"TEMPORAL_BROADCAST_ADDRESS": host,
		"DYNAMIC_CONFIG_FILE_PATH":   filepath.Join(c.opts.ConfigDir, "dynamicconfig.yaml"),
		"TEMPORAL_SERVER":            c.serverBin,
		"PATH":                       os.Getenv("PATH"), // for service.sh's tools
		"FRONTEND_HTTP_PORT":         strconv.Itoa(c.ports[Frontend].HTTP),
		// The certificates (config.yaml's global.tls).
		"TEMPORAL_TLS_SERVER_CA_CERT":        c.tls.CA,
		"TEMPORAL_TLS_SERVER_CERT":           c.tls.Internode,
		"TEMPORAL_TLS_SERVER_KEY":            c.tls.InternodeKey,
		"TEMPORAL_TLS_INTERNODE_SERVER_NAME": InternodeServerName,
		"TEMPORAL_TLS_FRONTEND_CERT":         c.tls.Frontend,
		"TEMPORAL_TLS_FRONTEND_KEY":          c.tls.FrontendKey,
		"TEMPORAL_TLS_CLIENT1_CA_CERT":       c.tls.ClientCA,
		"TEMPORAL_TLS_SYSTEM_WORKER_CERT":    c.tls.SystemWorker,
		"TEMPORAL_TLS_SYSTEM_WORKER_KEY":     c.tls.SystemWorkerKey,
		"TEMPORAL_TLS_FRONTEND_SERVER_NAME":  FrontendServerName,
	}
	for _, s := range Services {
		name := strings.ToUpper(string(s))
		env[name+"_GRPC_PORT"] = strconv.Itoa(c.ports[s].GRPC)
		env[name+"_MEMBERSHIP_PORT"] = strconv.Itoa(c.ports[s].Membership)
	}
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// serviceEnv adds what differs per process: the ports of the listeners
// every process opens whatever its service.
func (c *Cluster) serviceEnv(s Service) []string {
	return append(append([]string(nil), c.env...),
		"PPROF_PORT="+strconv.Itoa(c.ports[s].PProf),
		"PROMETHEUS_ENDPOINT="+host+":"+strconv.Itoa(c.ports[s].Metrics),
	)
}

func (c *Cluster) logPath(s Service) string { return filepath.Join(c.opts.LogDir, string(s)+".log") }

// startProcess starts service in a process group of its own, appending its
// output to <LogDir>/<service>.log, and records its environment and command
// line in <LogDir>/<service>.env (enough to start it again by hand).
func (c *Cluster) startProcess(s Service) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return fmt.Errorf("start %s: cluster stopped", s)
	}
	env := c.serviceEnv(s)
	args := c.serviceArgs(s)
	envFile := "# /bin/sh " + strings.Join(args, " ") + "\n" + strings.Join(env, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(c.opts.LogDir, string(s)+".env"), []byte(envFile), 0o600); err != nil {
		return fmt.Errorf("start %s: %w", s, err)
	}
	logFile, err := os.OpenFile(c.logPath(s), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: log: %w", s, err)
	}
	defer logFile.Close() // the child has its own descriptor
	fmt.Fprintf(logFile, "---- temporalcluster: starting %s at %s\n", s, time.Now().Format(time.RFC3339Nano))
	offset, err := logFile.Seek(0, 2)
	if err != nil {
		return fmt.Errorf("start %s: log: %w", s, err)
	}

	cmd := exec.Command("/bin/sh", args...)
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s, err)
	}
	p := &process{service: s, cmd: cmd, logOffset: offset, done: make(chan struct{})}
	go func() {
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	c.procs[s] = p
	return nil
}

// exited describes a process that ended while it was expected to run.
func (c *Cluster) exited(p *process) error {
	log, _ := os.ReadFile(c.logPath(p.service))
	if int64(len(log)) > p.logOffset {
		log = log[p.logOffset:]
	}
	return fmt.Errorf("%s exited (%v); end of %s:\n%s", p.service, p.exitErr, c.logPath(p.service), lastLines(log, 10))
}
