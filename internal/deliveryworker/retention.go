package deliveryworker

import (
	"context"

	"github.com/hookrelay/hookrelay/internal/deliverylog"
)

// startRetention runs the delivery log's retention in the background, once
// a day across every process on the log's database, until the process
// closes; its failures are logged and retried, never the process's end.
// Call it after opening the log, so it stops before the log closes.
func (p *Process) startRetention(ctx context.Context, l *deliverylog.Log, o deliverylog.RetentionOptions) {
	o.Logger = p.Logger
	p.onClose(deliverylog.StartRetention(ctx, l, o))
}
