package workflows

import (
	"encoding/base64"
	"os"
	"reflect"
	"testing"
	"time"

	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/hookrelay/hookrelay/internal/codec"
)

func loadTimeline(t *testing.T, file string) Timeline {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tl, err := TimelineFromHistory(h.GetEvents(), converter.GetDefaultDataConverter())
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// The recorded history of a delivery that got 503, 503, 200: the attempts
// rebuilt from its events alone equal the workflow's own result.
func TestTimelineRebuildsTheRecordedRun(t *testing.T) {
	tl := loadTimeline(t, "testdata/delivery_retried_history.json")
	if tl.Result == nil || tl.Result.Status != StatusDelivered {
		t.Fatalf("result = %+v", tl.Result)
	}
	if !reflect.DeepEqual(tl.Attempts, tl.Result.Attempts) {
		t.Fatalf("rebuilt attempts\n%+v\nwant the result's\n%+v", tl.Attempts, tl.Result.Attempts)
	}
	if tl.Input.EndpointID != "billing" || tl.Input.EventName != "api_mail_log_delivered" || tl.LastAttempt() != 3 {
		t.Fatalf("input = %+v, last attempt %d", tl.Input, tl.LastAttempt())
	}
	if len(tl.Waits) != 2 || tl.Waits[0].Duration != time.Second || tl.Waits[0].Ended != "fired" || tl.Waits[0].Summary == "" {
		t.Fatalf("waits = %+v", tl.Waits)
	}
}

// Operator actions and how each wait ended are in the history too.
func TestTimelineOfOperatorActions(t *testing.T) {
	canceled := loadTimeline(t, "testdata/delivery_canceled_history.json")
	if canceled.Result.Status != StatusCanceled || len(canceled.Actions) != 1 || canceled.Actions[0].Name != CancelSignal ||
		canceled.Actions[0].Reason != "recorded for the replay test" || canceled.Result.Actions[0].Reason != canceled.Actions[0].Reason {
		t.Fatalf("canceled: actions %+v, result %+v", canceled.Actions, canceled.Result)
	}
	if len(canceled.Waits) != 1 || canceled.Waits[0].Ended != "canceled" || canceled.Waits[0].Summary != "wait 1h after 503" {
		t.Fatalf("canceled: waits %+v", canceled.Waits)
	}

	retried := loadTimeline(t, "testdata/delivery_retry_now_history.json")
	if retried.Result.Status != StatusDelivered || !reflect.DeepEqual(retried.Attempts, retried.Result.Attempts) ||
		len(retried.Actions) != 1 || retried.Actions[0].Name != RetryNowUpdate {
		t.Fatalf("retry-now: %+v", retried)
	}

	resent := loadTimeline(t, "testdata/delivery_resent_history.json")
	if resent.Input.FirstAttempt != 2 || resent.Input.ResendOf == "" || resent.LastAttempt() != 2 ||
		len(resent.Attempts) != 1 || resent.Attempts[0].Number != 2 || resent.Actions[0].Name != ResendSignal {
		t.Fatalf("resent: %+v", resent)
	}
}

// With encryption on, a failure's message is sealed in history; the
// timeline reads it through the codec.
func TestFailureMessageIsDecrypted(t *testing.T) {
	c, err := codec.Parse([]byte("k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	dc := converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
	f := &failurepb.Failure{Message: "activity lost with worker-7"}
	if err := converter.EncodeCommonFailureAttributes(dc, f); err != nil {
		t.Fatal(err)
	}
	if f.GetMessage() == "activity lost with worker-7" {
		t.Fatal("the message was not sealed; the test proves nothing")
	}
	if got := failureMessage(dc, f); got != "activity lost with worker-7" {
		t.Fatalf("failureMessage = %q", got)
	}
}

// A first attempt run as a local activity is a marker in history; the
// timeline reads it like an activity's result.
func TestTimelineReadsLocalFirstAttempts(t *testing.T) {
	first := loadTimeline(t, "testdata/delivery_first_try_local-first_history.json")
	if !first.Input.FirstAttemptLocal || first.Result.Status != StatusDelivered || len(first.Attempts) != 1 ||
		!reflect.DeepEqual(first.Attempts, first.Result.Attempts) {
		t.Fatalf("first try: %+v", first)
	}
	retried := loadTimeline(t, "testdata/delivery_retry_now_local-first_history.json")
	if len(retried.Attempts) != 2 || !reflect.DeepEqual(retried.Attempts, retried.Result.Attempts) {
		t.Fatalf("local then ordinary attempt:\n%+v\nresult:\n%+v", retried.Attempts, retried.Result.Attempts)
	}
}
