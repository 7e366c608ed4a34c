package workflows

import (
	"strings"
	"testing"
)

// An account id is its fairness key up to Temporal's 64 bytes; a longer
// one is shortened to 64, keeping accounts that share a prefix apart.
func TestFairnessKey(t *testing.T) {
	if k := FairnessKey("acct-42"); k != "acct-42" {
		t.Fatalf("short id: %q", k)
	}
	a, b := strings.Repeat("a", 100)+"1", strings.Repeat("a", 100)+"2"
	ka, kb := FairnessKey(a), FairnessKey(b)
	if len(ka) != 64 || len(kb) != 64 || ka == kb || !strings.HasPrefix(ka, strings.Repeat("a", 47)+"#") {
		t.Fatalf("long ids: %q %q, want 64 bytes each, apart", ka, kb)
	}
	if k := FairnessKey(strings.Repeat("b", 64)); k != strings.Repeat("b", 64) {
		t.Fatalf("64 bytes: %q", k)
	}
	if p := Priority("acct-42"); p.FairnessKey != "acct-42" || p.PriorityKey != 0 || p.FairnessWeight != 0 {
		t.Fatalf("priority: %+v, want the key alone", p)
	}
}
