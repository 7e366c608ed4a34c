package deliveryworker

import (
	"context"
	"fmt"

	"github.com/hookrelay/hookrelay/internal/auditstore"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/sqldb"
)

// startRetention runs the delivery log's retention in the background, once
// a day across every process on the log's database, until the process
// closes; its failures are logged and retried, never the process's end.
// Call it after opening the log, so it stops before the log closes. The
// audit trail in auditDB ("" none) is kept as long as the log's records
// and pruned by the same run; with noMigrate (--migrate=false) its schema
// is only checked.
func (p *Process) startRetention(ctx context.Context, l *deliverylog.Log, o deliverylog.RetentionOptions, auditDB string, noMigrate bool) error {
	o.Logger = p.Logger
	if auditDB != "" {
		trail, err := auditstore.Open(ctx, auditDB, auditstore.Options{NoMigrate: noMigrate})
		if err != nil {
			return fmt.Errorf("--audit-db: %w", err)
		}
		p.onClose(func() { trail.Close() })
		o.Trail = trail
		p.Logger.Info("audit trail: pruned with the delivery log", "db", sqldb.Redact(auditDB))
	}
	p.onClose(deliverylog.StartRetention(ctx, l, o))
	return nil
}
