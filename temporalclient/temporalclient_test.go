package temporalclient

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestFlagsFallBackToEnvironment(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "temporal.example.com:7233")
	t.Setenv("TEMPORAL_NAMESPACE", "mail")
	t.Setenv("HOOKRELAY_TASK_QUEUE", "")
	var o Options
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if o.Address != "temporal.example.com:7233" || o.Namespace != "mail" || o.TaskQueue != DefaultTaskQueue {
		t.Fatalf("from environment: %+v", o)
	}
	if err := fs.Parse([]string{"--namespace", "other"}); err != nil || o.Namespace != "other" {
		t.Fatalf("a flag must win over the environment: %+v, %v", o, err)
	}
}

func TestValidate(t *testing.T) {
	ok := Options{Address: DefaultAddress, Namespace: "default", TaskQueue: "webhooks"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for flag, o := range map[string]Options{
		"--temporal-address": {Address: "localhost", Namespace: "default", TaskQueue: "webhooks"},
		"--namespace":        {Address: DefaultAddress, Namespace: " ", TaskQueue: "webhooks"},
		"--task-queue":       {Address: DefaultAddress, Namespace: "default"},
	} {
		if err := o.Validate(); err == nil || !strings.HasPrefix(err.Error(), flag) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", o, err, flag)
		}
	}
}
