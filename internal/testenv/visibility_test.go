package testenv

import (
	"os"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
)

// PendingTimer on recorded histories: every timer fired; a timer
// canceled by retry-now; and the same history cut while it waited.
func TestPendingTimer(t *testing.T) {
	load := func(file string) []*historypb.HistoryEvent {
		f, err := os.Open("../../workflows/testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return h.GetEvents()
	}
	if _, ok := PendingTimer(load("delivery_retried_history.json")); ok {
		t.Error("retried: every timer fired, yet one is pending")
	}
	retryNow := load("delivery_retry_now_history.json")
	if _, ok := PendingTimer(retryNow); ok {
		t.Error("retry-now: the timer was canceled, yet one is pending")
	}
	for i, e := range retryNow {
		if e.GetEventType() != enumspb.EVENT_TYPE_TIMER_STARTED {
			continue
		}
		fires, ok := PendingTimer(retryNow[:i+1])
		a := e.GetTimerStartedEventAttributes()
		if want := e.GetEventTime().AsTime().Add(a.GetStartToFireTimeout().AsDuration()); !ok || !fires.Equal(want) {
			t.Errorf("cut at the timer: %v %v, want pending until %v", fires, ok, want)
		}
		return
	}
	t.Fatal("the retry-now history has no timer")
}
