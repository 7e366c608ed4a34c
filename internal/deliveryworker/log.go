package deliveryworker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookrelay/hookrelay/internal/cmdline"
	"github.com/hookrelay/hookrelay/internal/codec"
	"github.com/hookrelay/hookrelay/internal/deliverylog"
	"github.com/hookrelay/hookrelay/internal/logrecorder"
	"github.com/hookrelay/hookrelay/internal/sqldb"
	"github.com/hookrelay/hookrelay/temporalclient"
)

// LogOptions say where the delivery log is (package deliverylog) and how
// attempts write it.
type LogOptions struct {
	// DB is --log-db; "" is the --endpoints-db database, if any.
	DB string
	// WriteTimeout bounds each attempt's write (--log-write-timeout).
	WriteTimeout time.Duration
	// ReconcileEvery is the time between the reconciler's passes
	// (--log-reconcile-every).
	ReconcileEvery time.Duration
}

// AddFlags defines --log-db and, for a process that runs attempts,
// --log-write-timeout and --log-reconcile-every.
func (o *LogOptions) AddFlags(fs *pflag.FlagSet, attempts bool) {
	cmdline.LogDB(fs, &o.DB)
	if attempts {
		cmdline.Duration(fs, &o.WriteTimeout, "log-write-timeout", "HOOKRELAY_LOG_WRITE_TIMEOUT", logrecorder.DefaultWriteTimeout,
			fmt.Sprintf("longest an attempt waits for its delivery log write (%s to %s); a missed write is retried in the background",
				logrecorder.MinWriteTimeout, logrecorder.MaxWriteTimeout))
		cmdline.Duration(fs, &o.ReconcileEvery, "log-reconcile-every", "HOOKRELAY_LOG_RECONCILE_EVERY", logrecorder.ReconcileEvery,
			fmt.Sprintf("time between passes of the reconciler that writes from history what no worker wrote to the delivery log (%s to %s)",
				logrecorder.MinReconcileEvery, logrecorder.MaxReconcileEvery))
	}
}

// Check names the first unusable option, before anything is opened;
// conn is the Temporal connection's flags.
func (o LogOptions) Check(conn *temporalclient.Options) error {
	if o.WriteTimeout != 0 && (o.WriteTimeout < logrecorder.MinWriteTimeout || o.WriteTimeout > logrecorder.MaxWriteTimeout) {
		return cmdline.Usagef("--log-write-timeout: %s is outside %s to %s", o.WriteTimeout, logrecorder.MinWriteTimeout, logrecorder.MaxWriteTimeout)
	}
	if o.ReconcileEvery != 0 && (o.ReconcileEvery < logrecorder.MinReconcileEvery || o.ReconcileEvery > logrecorder.MaxReconcileEvery) {
		return cmdline.Usagef("--log-reconcile-every: %s is outside %s to %s", o.ReconcileEvery, logrecorder.MinReconcileEvery, logrecorder.MaxReconcileEvery)
	}
	if o.DB == "" {
		return nil
	}
	if err := sqldb.CheckDSN("--log-db", o.DB); err != nil {
		return cmdline.Usage(err)
	}
	if conn.CodecKeyFile == "" {
		return cmdline.Usagef("--log-db: response excerpts are stored encrypted with the payload keys: give --codec-key-file (or set %s); --insecure-plaintext does not cover them", temporalclient.EnvCodecKeyFile)
	}
	return nil
}

// dsn is the log's database: --log-db, else --endpoints-db; "" none.
func (o LogOptions) dsn(endpointsDB string) string {
	if o.DB != "" {
		return o.DB
	}
	return endpointsDB
}

// openLog opens the delivery log, or says in the process's log why there
// is none.
func (b Boot) openLog(ctx context.Context, p *Process) error {
	dsn := b.Log.dsn(b.Endpoints.DB)
	if dsn == "" {
		p.Logger.Info("delivery log: off (neither --log-db nor --endpoints-db is set); attempts are recorded in Temporal history and audit lines only")
		return nil
	}
	keys, err := b.Conn.Codec()
	if err != nil {
		return err
	}
	c, ok := keys.(*codec.Codec)
	if !ok {
		return fmt.Errorf("delivery log: payload keys of type %T cannot seal response excerpts", keys)
	}
	l, err := deliverylog.Open(ctx, dsn, deliverylog.Options{Codec: c, NoMigrate: b.Endpoints.NoMigrate})
	if err != nil {
		return err
	}
	p.Log = l
	p.onClose(func() { l.Close() })
	if b.RunRetention {
		auditDB := b.AuditDB
		if auditDB == "" {
			auditDB = b.Endpoints.DB
		}
		if err := p.startRetention(ctx, l, b.LogRetention, auditDB, b.Endpoints.NoMigrate); err != nil {
			return err
		}
	}
	p.Logger.Info("delivery log: open", "db", sqldb.Redact(dsn), "dialect", l.Dialect())
	return nil
}

// logWriters are a worker's writers of the delivery log: the attempts'
// recorder with its spool, and the reconciler.
type logWriters struct {
	recorder   *logrecorder.Recorder
	reconciler *logrecorder.Reconciler
	stop       context.CancelFunc
	done       chan struct{}
}

func newLogWriters(l *deliverylog.Log, d Deps, timeout, reconcileEvery time.Duration) *logWriters {
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &logWriters{
		recorder: logrecorder.New(l, logrecorder.Options{WriteTimeout: timeout, Logger: logger}),
		reconciler: &logrecorder.Reconciler{Client: d.Client, Namespace: d.Namespace, TaskQueue: d.TaskQueue,
			Log: l, Logger: logger, Every: reconcileEvery},
	}
}

func (w *logWriters) start() {
	ctx, stop := context.WithCancel(context.Background())
	w.stop, w.done = stop, make(chan struct{})
	go func() {
		defer close(w.done)
		done := make(chan struct{})
		go func() { w.reconciler.Run(ctx); close(done) }()
		w.recorder.Run(ctx)
		<-done
	}()
}

// close stops the spool's retries and the reconciler, then writes what it
// can of the spool within drain.
func (w *logWriters) close(drain time.Duration) {
	if w.stop == nil {
		return
	}
	w.stop()
	<-w.done
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	w.recorder.Drain(ctx)
}
