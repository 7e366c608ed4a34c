package testenv

import "testing"

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
