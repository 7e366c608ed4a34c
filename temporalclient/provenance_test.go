package temporalclient

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/hookrelay/hookrelay/workflows"
)

func keyFile(t *testing.T, id string) string {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	path := filepath.Join(t.TempDir(), id+".key")
	if err := os.WriteFile(path, []byte(id+":"+base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A keyed client's converter marks an input that arrived in plaintext, or
// sealed by a key it does not hold, and only those; so does every
// context-bound copy the SDK makes. A plaintext client marks nothing.
func TestConverterMarksUnsealedInputs(t *testing.T) {
	ours, err := Options{CodecKeyFile: keyFile(t, "ours")}.DataConverter()
	if err != nil {
		t.Fatal(err)
	}
	theirs, _ := Options{CodecKeyFile: keyFile(t, "theirs")}.DataConverter()
	plain, _ := Options{InsecurePlaintext: true}.DataConverter()
	in := workflows.DeliveryInput{EndpointID: "acme", EventID: "evt_1"}

	sealed, _ := ours.ToPayload(in)
	forged, _ := converter.GetDefaultDataConverter().ToPayload(in)
	for name, dc := range map[string]converter.DataConverter{
		"client":        ours,
		"context-bound": ours.(converter.ContextAware).WithContext(context.Background()),
		"serialization": ours.(converter.DataConverterWithSerializationContext).WithSerializationContext(converter.WorkflowSerializationContext{Namespace: "default", WorkflowID: "acme:evt_1"}),
	} {
		var got workflows.DeliveryInput
		if err := dc.FromPayload(sealed, &got); err != nil || got.Unsealed() || got.EndpointID != "acme" {
			t.Errorf("%s: sealed input decoded %+v, unsealed %t, %v; want unmarked", name, got, got.Unsealed(), err)
		}
		got = workflows.DeliveryInput{}
		if err := dc.FromPayload(forged, &got); err != nil || !got.Unsealed() || got.EndpointID != "acme" {
			t.Errorf("%s: plaintext input decoded %+v, unsealed %t, %v; want marked", name, got, got.Unsealed(), err)
		}
		var many [2]workflows.AttemptInput
		ps := commonpbPayloads{sealed, forged}
		if err := dc.FromPayloads(ps.payloads(), &many[0], &many[1]); err != nil || many[0].Unsealed() || !many[1].Unsealed() {
			t.Errorf("%s: FromPayloads marked %t, %t; want false, true (%v)", name, many[0].Unsealed(), many[1].Unsealed(), err)
		}
	}
	if Sealed(ours) == nil || !Sealed(ours)(sealed) || Sealed(ours)(forged) || Sealed(plain) != nil {
		t.Error("Sealed: want a checker for a keyed converter only, true for its own payloads")
	}
	// Sealed by another key file: this one cannot open it at all.
	other, _ := theirs.ToPayload(in)
	var got workflows.DeliveryInput
	if err := ours.FromPayload(other, &got); err == nil {
		t.Error("a payload sealed by a key this file lacks decoded")
	}
	// --insecure-plaintext marks nothing: such a worker accepts plaintext.
	got = workflows.DeliveryInput{}
	if err := plain.FromPayload(forged, &got); err != nil || got.Unsealed() {
		t.Errorf("plaintext converter: unsealed %t, %v", got.Unsealed(), err)
	}
}

type commonpbPayloads []*commonpb.Payload

func (p commonpbPayloads) payloads() *commonpb.Payloads { return &commonpb.Payloads{Payloads: p} }
