package testenv

import (
	"testing"
	"time"
)

// Overtaken counts deliveries that arrived after a later event, and the
// most later events ahead of one.
func TestOvertaken(t *testing.T) {
	for _, c := range []struct {
		order     []int
		out, most int
	}{
		{nil, 0, 0},
		{[]int{0, 1, 2, 3}, 0, 0},
		{[]int{1, 0, 2, 3}, 1, 1},
		{[]int{3, 2, 1, 0}, 3, 3},
		{[]int{0, 4, 1, 2, 3, 5}, 3, 1},
		{[]int{2, 3, 0, 1}, 2, 2},
	} {
		out, most := Overtaken(c.order)
		if out != c.out || most != c.most {
			t.Errorf("Overtaken(%v) = %d, %d; want %d, %d", c.order, out, most, c.out, c.most)
		}
	}
}

// ReadDrain: the drain runs from the first 2xx to the last; deliveries left
// out are not in the order, and a missing one is not counted.
func TestReadDrain(t *testing.T) {
	heal := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return heal.Add(time.Duration(s * float64(time.Second))) }
	// Event 0 was the failed probe, delivered last; event 3 overtook event 2.
	delivered := []time.Time{at(5), at(1), at(2.5), at(2), at(3)}
	probe := func(i int) bool { return i == 0 }
	d := ReadDrain(delivered, probe, heal)
	if d.FirstAfterHealSeconds != 1 || d.Seconds != 4 || d.PerSecond != 1 || d.Clean != 4 || d.CleanSeconds != 2 || d.OutOfOrder != 1 || d.MaxOvertaken != 1 {
		t.Fatalf("%+v", d)
	}
	delivered[4] = time.Time{}
	if d := ReadDrain(delivered, func(int) bool { return false }, heal); d.Clean != 4 || d.Seconds != 4 || d.OutOfOrder != 2 || d.MaxOvertaken != 3 {
		t.Errorf("one delivery missing, none left out: %+v", d)
	}
}
