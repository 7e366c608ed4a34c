package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Machine describes where the figures were measured.
type Machine struct {
	CPU          string `json:"cpu"`
	Cores        int    `json:"cores"`
	MemoryBytes  int64  `json:"memory_bytes"`
	OS           string `json:"os"`
	Kernel       string `json:"kernel"`
	GoVersion    string `json:"go_version"`
	TemporalCLI  string `json:"temporal_cli,omitempty"`
	Date         string `json:"date"`
	LoadAvgStart string `json:"loadavg_start"` // /proc/loadavg: other work on the machine shows here
	LoadAvgEnd   string `json:"loadavg_end"`
	GitCommit    string `json:"git_commit"`
}

// DescribeMachine describes this machine, the repository's commit at
// root, and the Temporal CLI temporalCLI ("": none) with its version.
func DescribeMachine(root, temporalCLI string) Machine {
	m := Machine{
		Cores:        runtime.NumCPU(),
		OS:           runtime.GOOS + "/" + runtime.GOARCH,
		GoVersion:    runtime.Version(),
		Date:         time.Now().UTC().Format(time.RFC3339),
		LoadAvgStart: LoadAvg(),
	}
	m.CPU = procField("/proc/cpuinfo", "model name")
	if kb := procField("/proc/meminfo", "MemTotal"); kb != "" {
		var n int64
		fmt.Sscanf(kb, "%d", &n)
		m.MemoryBytes = n << 10
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.GitCommit = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			m.GitCommit += "-dirty"
		}
	}
	if temporalCLI != "" {
		if out, err := exec.Command(temporalCLI, "--version").Output(); err == nil {
			m.TemporalCLI = strings.TrimSpace(string(out))
		}
	}
	return m
}

// procField is the first "name : value" line's value in a /proc file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
