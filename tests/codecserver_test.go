package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hookrelay/hookrelay/event"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/workflows"
)

// worker codec-server decrypts a payload straight from the stored history,
// for callers with the token only.
func TestCodecServerDecodesHistory(t *testing.T) {
	token := strings.TrimRight(base64.URLEncoding.EncodeToString([]byte("integration-test-token-not-secret-0123")), "=")
	tokenFile := writeFile(t, "codec-token", token+"\n")
	spec := hookrelay(t).Spec("codec-server", "worker", "codec-server", "--listen", "127.0.0.1:0",
		"--codec-key-file", codecKeyFile, "--token-file", tokenFile, "--ui-origin", "http://127.0.0.1:8233")
	spec.Ready = `"msg":"codec server listening"`
	p := testenv.StartT(t, spec)
	addr, err := p.LoggedAddr("codec server listening")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr

	// A workflow started by the test's (encrypting) client; no worker needed
	// for its input to be in history.
	id := workflows.WorkflowID("acme", "evt_codec_server_test")
	_, err = temporal.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: taskQueue(t)},
		workflows.DeliveryWorkflowName, workflows.DeliveryInput{
			EndpointID: "acme", EventID: "evt_codec_server_test", EventName: event.Delivered, MailLogID: 1,
			Payload: json.RawMessage(`{"id":1,"subject":"Fake subject via codec server"}`), Timeout: time.Second,
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { temporal.TerminateWorkflow(context.Background(), id, "", "test over") })
	input := rawHistory(t, id)[0].GetWorkflowExecutionStartedEventAttributes().GetInput()
	if bytes.Contains(input.GetPayloads()[0].GetData(), []byte("Fake subject")) {
		t.Fatal("the stored input is plain text")
	}
	body, err := protojson.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}

	post := func(auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/decode", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, out := post(""); code != http.StatusUnauthorized || strings.Contains(out, "Fake subject") {
		t.Fatalf("without the token: %d %s", code, out)
	}
	code, out := post("Bearer " + token)
	var decoded commonpb.Payloads
	if code != http.StatusOK || protojson.Unmarshal([]byte(out), &decoded) != nil || len(decoded.Payloads) != 1 {
		t.Fatalf("with the token: %d %s", code, out)
	}
	var in workflows.DeliveryInput
	if err := converter.GetDefaultDataConverter().FromPayload(decoded.Payloads[0], &in); err != nil || !strings.Contains(string(in.Payload), "Fake subject via codec server") {
		t.Fatalf("decoded input %+v: %v", in, err)
	}

	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("codec server after SIGTERM: %v\n%s", err, p.Log())
	}
	if strings.Contains(p.Log(), token) {
		t.Fatal("the codec server logged its token")
	}
}

// --accept-path-token is for the local dev UI: the codec server says so in
// its log when started with it, and not without it.
func TestCodecServerWarnsOfThePathToken(t *testing.T) {
	token := strings.TrimRight(base64.URLEncoding.EncodeToString([]byte("integration-test-token-not-secret-4567")), "=")
	tokenFile := writeFile(t, "codec-token", token+"\n")
	for _, pathToken := range []bool{true, false} {
		args := []string{"codec-server", "--listen", "127.0.0.1:0", "--codec-key-file", codecKeyFile, "--token-file", tokenFile,
			"--ui-origin", "http://127.0.0.1:8233"}
		if pathToken {
			args = append(args, "--accept-path-token")
		}
		spec := hookrelay(t).Spec(fmt.Sprintf("codec-server-path-token-%t", pathToken), "worker", args...)
		spec.Ready = `"msg":"codec server listening"`
		p := testenv.StartT(t, spec)
		warned := strings.Contains(p.Log(), `"msg":"--accept-path-token: the token travels in the codec URL`) &&
			strings.Contains(p.Log(), "for the local dev UI only")
		if warned != pathToken {
			t.Errorf("--accept-path-token %t: warned %t; log:\n%s", pathToken, warned, p.Log())
		}
		if strings.Contains(p.Log(), token) {
			t.Errorf("the log holds the token:\n%s", p.Log())
		}
	}
}
