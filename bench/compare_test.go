package main

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// gitRoot is fakeRoot as a git repository with one commit, whose hash it returns.
func gitRoot(t *testing.T) (root, head string) {
	root = fakeRoot(t)
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-c", "user.name=bench", "-c", "user.email=bench@example.com"}, args...)...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", "go.mod")
	git("commit", "-q", "-m", "one")
	git("tag", "v0.1.0")
	return root, git("rev-parse", "HEAD")
}

// --compare resolves its revision to a commit, and leaves out the baseline
// and the delivery log unless asked for.
func TestParseFlagsCompare(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "")
	t.Setenv(testenv.EnvServer, "")
	root, head := gitRoot(t)
	for _, rev := range []string{"HEAD", "v0.1.0", head[:7], head} {
		c, err := parseFlags([]string{"--compare", rev}, root)
		if err != nil {
			t.Fatalf("--compare %s: %v", rev, err)
		}
		if c.compare != rev || c.compareCommit != head || c.compareRounds != 2 || c.baseline || c.logDB != logNone {
			t.Errorf("--compare %s: compare %q commit %q rounds %d baseline %v log-db %q; want commit %s, 2 rounds, no baseline, no log",
				rev, c.compare, c.compareCommit, c.compareRounds, c.baseline, c.logDB, head)
		}
	}
	c, err := parseFlags([]string{"--compare", "HEAD", "--compare-rounds", "5", "--baseline"}, root)
	if err != nil || c.compareRounds != 5 || !c.baseline {
		t.Fatalf("--compare-rounds 5 --baseline: rounds %d baseline %v, %v", c.compareRounds, c.baseline, err)
	}
	if c, err := parseFlags(nil, root); err != nil || c.compare != "" || c.compareCommit != "" || c.logDB != logPostgres || !c.baseline {
		t.Fatalf("without --compare: %+v, %v", c, err)
	}
}

// A bad --compare (or a flag that cannot go with it) is a usage error naming the flag.
func TestParseFlagsRefusesCompare(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "")
	t.Setenv(testenv.EnvServer, "")
	root, _ := gitRoot(t)
	for _, tt := range []struct {
		args []string
		flag string
	}{
		{[]string{"--compare", "no-such-revision"}, "--compare"},
		{[]string{"--compare", "HEAD~5"}, "--compare"},
		{[]string{"--compare", "0123456789abcdef0123456789abcdef01234567"}, "--compare"},
		{[]string{"--compare", "--output=/tmp/x"}, "--compare"},
		{[]string{"--compare", "HEAD HEAD"}, "--compare"},
		{[]string{"--compare", "HEAD", "--mode", "park"}, "--compare"},
		{[]string{"--compare", "HEAD", "--log-db", "postgres"}, "--log-db"},
		{[]string{"--compare", "HEAD", "--endpoints-db", "sqlite"}, "--endpoints-db"},
		{[]string{"--compare", "HEAD", "--compare-rounds", "0"}, "--compare-rounds"},
		{[]string{"--compare-rounds", "21"}, "--compare-rounds"},
	} {
		_, err := parseFlags(tt.args, root)
		if !errors.Is(err, cmdline.ErrUsage) || !strings.Contains(err.Error(), tt.flag) {
			t.Errorf("%q: error %v, want a usage error naming %s", tt.args, err, tt.flag)
		}
	}
	// Outside a git repository no revision resolves.
	if _, err := parseFlags([]string{"--compare", "HEAD"}, fakeRoot(t)); !errors.Is(err, cmdline.ErrUsage) || !strings.Contains(err.Error(), "--compare") {
		t.Errorf("--compare HEAD outside a repository: %v, want a usage error naming --compare", err)
	}
}

// A revision that does not exist stops the run before anything is built or
// started, and exits 2.
func TestRunBadCompareStartsNothing(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "")
	t.Setenv(testenv.EnvServer, "")
	cli := filepath.Join(t.TempDir(), "temporal")
	if err := os.WriteFile(cli, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run(context.Background(), []string{"--compare", "no-such-revision-of-hookrelay", "--temporal-cli", cli, "--out", filepath.Join(t.TempDir(), "r.json")}, &out)
	var stderr bytes.Buffer
	if code := cmdline.Exit(&stderr, "bench", err); code != 2 || !strings.Contains(stderr.String(), "--compare") || !strings.Contains(stderr.String(), "no-such-revision-of-hookrelay") {
		t.Fatalf("exit %d, %q; want 2 and an error naming --compare and the revision", code, stderr.String())
	}
	if out.Len() != 0 {
		t.Fatalf("the run printed %q: it got past the flags", out.String())
	}
}

// The rounds' ratios are combined as a geometric mean: a round at half and
// one at double cancel out.
func TestGeoMean(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{0.5, 2}, 1},
		{[]float64{0.9, 0.9, 0.9}, 0.9},
		{[]float64{1.0625, 0.642, 0.733, 1}, 0.841},
		{[]float64{4, 0, math.NaN(), math.Inf(1)}, 4},
		{nil, 0},
	} {
		if got := round(geoMean(c.xs), 3); got != c.want {
			t.Errorf("geoMean(%v) = %g, want %g", c.xs, got, c.want)
		}
	}
}
