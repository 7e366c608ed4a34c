package main

import (
	"testing"
	"time"
)

// drainOf: the drain runs from the first 2xx to the last; deliveries that
// answered 503 once are left out of the order, and a missing one is not counted.
func TestDrainOf(t *testing.T) {
	heal := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	wids := []string{"e:0", "e:1", "e:2", "e:3", "e:4"}
	index := map[string]int{"e:0": 0, "e:1": 1, "e:2": 2, "e:3": 3, "e:4": 4}
	at := func(s float64) time.Time { return heal.Add(time.Duration(s * float64(time.Second))) }
	// e:0 was the failed probe, delivered last; e:3 overtook e:2.
	delivered := []time.Time{at(5), at(1), at(2.5), at(2), at(3)}
	d := drainOf(wids, delivered, index, map[string]bool{"e:0": true}, heal, 1)
	if d.FirstAfterHealSeconds != 1 || d.Seconds != 4 || d.PerSecond != 1 || d.TargetSeconds != 5 || d.Clean != 4 || d.OutOfOrder != 1 || d.MaxOvertaken != 1 {
		t.Fatalf("%+v", d)
	}
	delivered[4] = time.Time{}
	if d := drainOf(wids, delivered, index, nil, heal, 1); d.Clean != 4 || d.Seconds != 4 {
		t.Errorf("one delivery missing: %+v", d)
	}
}
