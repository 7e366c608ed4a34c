package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/codec"

	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// eventTexts renders each history event as Temporal stores it (binary proto)
// and as the UI and CLI show it (proto JSON), for searching.
func eventTexts(t *testing.T, events []*historypb.HistoryEvent) []string {
	t.Helper()
	var out []string
	for _, e := range events {
		bin, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		js, err := protojson.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(bin), string(js))
	}
	return out
}

// decryptHistory returns copies of events with every payload decoded by this run's key.
func decryptHistory(t *testing.T, events []*historypb.HistoryEvent) []*historypb.HistoryEvent {
	t.Helper()
	c, err := codec.Load(codecKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	var out []*historypb.HistoryEvent
	for _, e := range events {
		e = proto.Clone(e).(*historypb.HistoryEvent)
		err := proxy.VisitPayloads(context.Background(), e, proxy.VisitPayloadsOptions{
			SkipSearchAttributes: true,
			Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
				return c.Decode(ps)
			},
		})
		if err != nil {
			t.Fatalf("decrypt event %d: %v", e.GetEventId(), err)
		}
		out = append(out, e)
	}
	return out
}

// A delivery's history holds no personal field of its event in plain text,
// every payload in it is sealed with this run's key, and the receiver still
// gets the event's original bytes.
func TestHistoryHoldsNoPlaintext(t *testing.T) {
	rc := newReceiver(t, failFirst(1, http.StatusBadGateway)) // a retry puts the payload in history a second time
	endpoints := endpointsFile(t, "acme", rc.URL, "    retry_schedule: [200ms]\n")
	startWorker(t, endpoints)

	personal := map[string]string{
		"subject":       "Fake subject: lab results ready 7741",
		"to":            "patient7741@recipient.example.com",
		"from":          "clinic7741@sender.example.com",
		"custom header": "fake-chart-ref-7741-qzx",
	}
	ev := fmt.Sprintf(`{"event_name":%q,"payload":{"id":7741,"time":"2026-04-18T20:27:25.379Z","subject":%q,"from":%q,"to":%q,"custom_headers":{"X-Chart-Ref":%q}}}`,
		event.Delivered, personal["subject"], personal["from"], personal["to"], personal["custom header"])
	id := send(t, endpoints, ev)[0].WorkflowID
	if st := result(t, id); st.Status != workflows.StatusDelivered || len(st.Attempts) != 2 {
		t.Fatalf("result = %+v", st)
	}

	parsed, err := event.Parse([]byte(ev))
	if err != nil {
		t.Fatal(err)
	}
	reqs := rc.Requests()
	if len(reqs) != 2 || !bytes.Equal(reqs[1].Body, parsed.Body()) || reqs[1].VerifyErr != nil {
		t.Fatalf("receiver got %d requests; last body %s (verify %v), want %s", len(reqs), reqs[len(reqs)-1].Body, reqs[len(reqs)-1].VerifyErr, parsed.Body())
	}

	events := rawHistory(t, id)
	for _, text := range eventTexts(t, events) {
		for field, value := range personal {
			if strings.Contains(text, value) {
				t.Errorf("the %s %q is in the stored history:\n%.400s", field, value, text)
			}
		}
	}
	payloads := 0
	for _, e := range events {
		proxy.VisitPayloads(context.Background(), e, proxy.VisitPayloadsOptions{
			SkipSearchAttributes: true,
			Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
				for _, p := range ps {
					payloads++
					if string(p.Metadata[converter.MetadataEncoding]) != codec.EncodingEncrypted || string(p.Metadata[codec.MetadataKeyID]) != codecKeyID {
						t.Errorf("event %d (%s): a payload is not sealed with key %q: metadata %q", e.GetEventId(), e.GetEventType(), codecKeyID, p.Metadata)
					}
				}
				return ps, nil
			},
		})
	}
	if payloads < 4 {
		t.Fatalf("found %d payloads in the history, want at least input, two attempts and the result", payloads)
	}

	// The same history, decrypted, does hold them: the search above looked where they would be.
	var decrypted strings.Builder
	for _, text := range eventTexts(t, decryptHistory(t, events)) {
		decrypted.WriteString(text)
	}
	for field, value := range personal {
		if !strings.Contains(decrypted.String(), value) {
			t.Errorf("the %s is not in the decrypted history either; the check above proves nothing", field)
		}
	}
}

// The endpoint's signing secret appears nowhere: not in the stored or the
// decrypted history, the worker's log, the starter's output or logs.
func TestSecretNeverLeaks(t *testing.T) {
	prev := make([]byte, 32)
	rand.Read(prev)
	previous := "whsec_" + base64.StdEncoding.EncodeToString(prev)
	rc := newReceiver(t, failFirst(1, http.StatusInternalServerError))
	endpoints := endpointsFile(t, "acme", rc.URL, fmt.Sprintf("    previous_secrets: [%s]\n    retry_schedule: [200ms]\n", previous))
	w := startWorker(t, endpoints)

	var outputs []string
	out, errOut, code := starter(t, sampleEvent(event.Delivered, 7742), "send", "--endpoints", endpoints, "--output", "json")
	if code != 0 {
		t.Fatalf("send: exit %d: %s", code, errOut)
	}
	var started startedLine
	if err := json.Unmarshal([]byte(out), &started); err != nil {
		t.Fatalf("send output %q: %v", out, err)
	}
	outputs = append(outputs, out, errOut)
	for _, args := range [][]string{
		{"status", started.WorkflowID, "--wait", "--output", "json"},
		{"status", started.WorkflowID},
		{"status", started.WorkflowID, "--output", "json"},
	} {
		out, errOut, code := starter(t, "", args...)
		if code != 0 {
			t.Fatalf("starter %v: exit %d: %s", args, code, errOut)
		}
		outputs = append(outputs, out, errOut)
	}
	if !strings.Contains(outputs[2], `"status":"delivered"`) || !strings.Contains(outputs[2], `"key_ids":["key_`) || !strings.Contains(outputs[4], "delivered") {
		t.Fatalf("status output does not show the delivery:\n%s\n%s", outputs[2], outputs[4])
	}
	testenv.Eventually(t, 10*time.Second, "both attempts in the worker's log", func() bool { return attempts(w) == 2 })

	events := rawHistory(t, started.WorkflowID)
	places := map[string]string{"worker log": w.Log(), "starter output": strings.Join(outputs, "\n")}
	for i, text := range eventTexts(t, events) {
		places[fmt.Sprintf("stored history event %d", i/2+1)] = text
	}
	for i, text := range eventTexts(t, decryptHistory(t, events)) {
		places[fmt.Sprintf("decrypted history event %d", i/2+1)] = text
	}
	for _, secret := range []string{testSecret, previous} {
		key := strings.TrimPrefix(secret, "whsec_")
		for where, text := range places {
			if strings.Contains(text, secret) || strings.Contains(text, key) || strings.Contains(text, key[:16]) {
				t.Errorf("a signing secret is in the %s", where)
			}
		}
	}
	if !strings.Contains(places["worker log"], `"key_ids":"key_`) {
		t.Fatalf("the worker log lacks the audit lines this test searched:\n%s", places["worker log"])
	}
}
