package deliveryworker

import (
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/workflow"

	"github.com/hookrelay/hookrelay/workflows"
)

// sealedSignals keeps signals that did not arrive sealed by a payload key
// this worker holds from EndpointHealthWorkflow: failure reports (which
// open circuits and carry circuit settings) and operators' pause, resume,
// enable and disable (whose reason a disable notice signs). Workers and the
// deliveries package always seal them; a plaintext signal came past the
// codec. It is dropped before the workflow sees it, the same way on every
// replay, with a warning. Deliveries' own signals (cancel, retry-now,
// resend) carry nothing that is sent or signed, are what any frontend
// client may already do by cancelling or terminating, and are documented
// for the Temporal CLI: they pass.
type sealedSignals struct {
	interceptor.WorkerInterceptorBase
	sealed func(*commonpb.Payload) bool
}

func (s *sealedSignals) InterceptWorkflow(ctx workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	if workflow.GetInfo(ctx).WorkflowType.Name != workflows.HealthWorkflowName {
		return next
	}
	i := &healthSignals{sealed: s.sealed}
	i.Next = next
	return i
}

type healthSignals struct {
	interceptor.WorkflowInboundInterceptorBase
	sealed func(*commonpb.Payload) bool
}

func (h *healthSignals) HandleSignal(ctx workflow.Context, in *interceptor.HandleSignalInput) error {
	ps := in.Arg.GetPayloads()
	ok := len(ps) > 0
	for _, p := range ps {
		ok = ok && h.sealed(p)
	}
	if !ok {
		workflow.GetLogger(ctx).Warn("signal ignored: it did not arrive sealed by a payload key this worker holds",
			"audit", true, "signal", in.SignalName, "outcome", string(workflows.OutcomeInvalidInput))
		return nil
	}
	return h.Next.HandleSignal(ctx, in)
}
