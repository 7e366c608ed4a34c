package testenv

import (
	"strings"
	"testing"
)

// pprof -top's output keeps the sample line and the table.
func TestParsePprofTop(t *testing.T) {
	out := `File: worker
Type: cpu
Time: 2026-11-29 14:00:00 UTC
Duration: 20s, Total samples = 3.10s (15.50%)
Showing nodes accounting for 1.2s, 38.71% of 3.10s total
Dropped 400 nodes (cum <= 0.02s)
Showing top 2 nodes out of 700
      flat  flat%   sum%        cum   cum%
     0.80s 25.81% 25.81%      0.80s 25.81%  runtime/internal/syscall.Syscall6
     0.40s 12.90% 38.71%      0.50s 16.13%  runtime.mallocgc
`
	got := parsePprofTop(out)
	if len(got) != 4 || !strings.HasPrefix(got[0], "Duration: 20s") || !strings.Contains(got[1], "flat%") || !strings.HasSuffix(got[3], "runtime.mallocgc") {
		t.Fatalf("%q", got)
	}
}
